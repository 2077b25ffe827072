//! `NAME=SOURCE`: a stream's name and its source spec, as `--stream` and the config file's
//! `[[stream]]` give them, and [`SourceSpec::open`], which starts the source a spec names.
//!
//! This module only picks the source by its kind; each source parses and prints its own options
//! (`FromStr` and `Display` on its options type, beside its code), so adding a source is one
//! variant here and its own module. A spec that does not parse is refused before anything
//! starts, with a message naming the bad part and what is accepted there.

use std::fmt;
use std::str::FromStr;

use super::camera::{CameraOptions, CameraSource};
use super::ffmpeg::{FfmpegOptions, FfmpegSource};
use super::files::{FilesOptions, FilesSource};
use super::push::{PushOptions, PushSource};
use super::test_pattern::{TestOptions, TestPattern};
use super::upstream::{UpstreamOptions, UpstreamSource};
use super::{Opened, SetupError, Source, SourceContext};

/// One `--stream NAME=SOURCE`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub name: String,
    pub source: SourceSpec,
}

/// A parsed SOURCE. `Display` gives it back in full, without secrets (the API and the log show
/// it).
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    Test(TestOptions),
    Files(FilesOptions),
    Camera(CameraOptions),
    Push(PushOptions),
    Ffmpeg(FfmpegOptions),
    Upstream(UpstreamOptions),
}

const KNOWN_SOURCES: &str =
    "test, files:DIR, camera[:INDEX|:/dev/videoN], push, ffmpeg:PATH_OR_URL, http://...";

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, String> {
        // An upstream URL keeps its own query string: its kind is its scheme.
        if source.starts_with("http://") || source.starts_with("https://") {
            return source.parse().map(SourceSpec::Upstream);
        }
        let kind = source.split(['?', ':']).next().unwrap_or_default();
        match kind {
            "test" => source.parse().map(SourceSpec::Test),
            "files" => source.parse().map(SourceSpec::Files),
            "camera" => source.parse().map(SourceSpec::Camera),
            "push" => source.parse().map(SourceSpec::Push),
            "ffmpeg" => source.parse().map(SourceSpec::Ffmpeg),
            "" => Err(format!("empty source; known sources: {KNOWN_SOURCES}")),
            other => Err(format!(
                "unknown source {other:?}; known sources: {KNOWN_SOURCES}"
            )),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test(o) => o.fmt(f),
            SourceSpec::Files(o) => o.fmt(f),
            SourceSpec::Camera(o) => o.fmt(f),
            SourceSpec::Push(o) => o.fmt(f),
            SourceSpec::Ffmpeg(o) => o.fmt(f),
            SourceSpec::Upstream(o) => o.fmt(f),
        }
    }
}

impl SourceSpec {
    /// Starts the source this spec names for stream `name`. Fails for things that can never
    /// work (an empty folder; no ffmpeg; with `--require-camera`, a camera that does not open),
    /// not for things that may come back (those are retried while running).
    pub fn open(&self, name: &str, ctx: &SourceContext) -> Result<Opened, SetupError> {
        let source: Box<dyn Source> = match self {
            SourceSpec::Test(o) => Box::new(TestPattern::new(o)),
            SourceSpec::Files(o) => Box::new(FilesSource::open(o)?),
            SourceSpec::Camera(o) => Box::new(
                CameraSource::start(name, o.clone(), ctx.cameras.clone(), ctx.require_camera)
                    .map_err(|e| SetupError::Invalid(e.to_string()))?,
            ),
            SourceSpec::Ffmpeg(o) => Box::new(FfmpegSource::new(name, o.clone())?),
            SourceSpec::Upstream(o) => Box::new(UpstreamSource::new(name, o.clone())?),
            SourceSpec::Push(o) => {
                let (source, hub) = PushSource::new(name, o);
                return Ok(Opened {
                    source: Box::new(source),
                    ingest: Some(hub),
                });
            }
        };
        Ok(Opened {
            source,
            ingest: None,
        })
    }
}

impl FromStr for StreamSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, source) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?} is not NAME=SOURCE (e.g. main=test)"))?;
        validate_name(name)?;
        let source = source
            .parse::<SourceSpec>()
            .map_err(|e| format!("stream {name:?}: {e}"))?;
        Ok(StreamSpec {
            name: name.to_string(),
            source,
        })
    }
}

/// Stream names become URL path segments and file-like names: keep them to a safe alphabet.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("stream name {name:?} must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "stream name {name:?} may contain only letters, digits, '-' and '_'"
        ));
    }
    if name == mjpeg_shared::wire::WALL {
        return Err(format!(
            "stream name {name:?} is taken: /streams/{name}.frames is the wall of several streams"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::camera::device::{DeviceSelector, PixelFormat};

    #[test]
    fn parses_the_documented_specs() {
        assert_eq!(
            "main=test".parse::<StreamSpec>().unwrap(),
            StreamSpec {
                name: "main".into(),
                source: SourceSpec::Test(TestOptions {
                    width: 640,
                    height: 480,
                    fps: 30.0
                })
            }
        );
        assert_eq!(
            "cam-2=test?size=1280x720&fps=12.5"
                .parse::<StreamSpec>()
                .unwrap()
                .source,
            SourceSpec::Test(TestOptions {
                width: 1280,
                height: 720,
                fps: 12.5
            })
        );
        assert_eq!(
            "f=files:/tmp/x?fps=5".parse::<StreamSpec>().unwrap().source,
            SourceSpec::Files(FilesOptions {
                dir: "/tmp/x".into(),
                fps: 5.0
            })
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = |s: &str| s.parse::<StreamSpec>().unwrap_err();
        assert!(err("main").contains("NAME=SOURCE"));
        assert!(err("a b=test").contains("\"a b\""));
        assert!(err("wall=test").contains("wall of several streams"));
        assert!(
            "Wall=test".parse::<StreamSpec>().is_ok(),
            "names are case-sensitive"
        );
        assert!(err("main=tset").contains("unknown source \"tset\""));
        assert!(err("main=test?size=10x10").contains("size \"10x10\""));
        assert!(err("main=test?size=640").contains("WIDTHxHEIGHT"));
        assert!(err("main=test?fps=0").contains("fps \"0\""));
        assert!(err("main=test?fps=1e-300").contains("from 0.01"));
        assert!(err("main=test?fps=abc").contains("fps \"abc\""));
        assert!(err("main=test?colour=red").contains("no option \"colour\""));
        assert!(err("main=test:x").contains("takes no \":x\""));
        assert!(err("main=files:").contains("needs a folder"));
        assert!(err("main=test?fps").contains("KEY=VALUE"));
        assert!(err("main=push:x").contains("takes no \":x\""));
        assert!(err("main=ffmpeg").contains("needs an input"));
        assert!(err("main=http://cam/x#linger=-1").contains("linger \"-1\""));
    }

    #[test]
    fn camera_specs() {
        let spec = |s: &str| match s.parse::<SourceSpec>() {
            Ok(SourceSpec::Camera(o)) => o,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(spec("camera"), CameraOptions::default());
        assert_eq!(spec("camera:2").selector, DeviceSelector::Index(2));
        assert_eq!(
            spec("camera:/dev/video4").selector,
            DeviceSelector::Path("/dev/video4".into())
        );
        let o = spec("camera?size=1280x720&fps=15&format=YUYV&quality=60&mirror=1&idle=3");
        assert_eq!(o.request.size, Some((1280, 720)));
        assert_eq!(o.request.fps, Some(15));
        assert_eq!(o.request.format, Some(PixelFormat::Yuyv));
        assert_eq!((o.quality, o.mirror, o.idle_close.as_secs()), (60, true, 3));
        let err = |s: &str| s.parse::<SourceSpec>().unwrap_err();
        assert!(err("camera:usb").contains("neither an index"));
        assert!(err("camera?format=h264").contains("formats: mjpeg, yuyv"));
        assert!(err("camera?quality=0").contains("quality \"0\""));
        assert!(err("camera?fps=0").contains("from 1 to 240"));
        assert!(err("camera?zoom=2").contains("no option \"zoom\""));
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "test?size=320x240&fps=7.5",
            "files:/a/b?fps=30",
            "camera:1?size=640x480&format=yuyv&quality=70&mirror=1&idle=5",
            "ffmpeg:/v/clip.mp4?quality=60&loop=0&fps=10&size=320x240",
            "push?max_bytes=4096&replace=1",
            "http://cam.local/video.mjpg?q=1#linger=3&max_bytes=2048",
        ] {
            let parsed: SourceSpec = spec.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<SourceSpec>().unwrap(), parsed);
        }
    }

    #[test]
    fn secrets_never_print() {
        let push: SourceSpec = "push?token=s3cret".parse().unwrap();
        assert!(!push.to_string().contains("s3cret"), "{push}");
        assert!(!format!("{push:?}").contains("s3cret"));
        let up: SourceSpec = "http://admin:pa55@cam/x".parse().unwrap();
        assert!(!up.to_string().contains("pa55"), "{up}");
        assert!(!format!("{up:?}").contains("pa55"));
    }
}
