//! `camera`, `camera:INDEX`, `camera:/dev/videoN`, with
//! `?size=WxH&fps=N&format=F&quality=Q&mirror=1&idle=S`: how a camera stream is set up, parsed
//! and printed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::device::{DeviceSelector, ModeRequest, PixelFormat};
use crate::source::options::{
    parse_flag, parse_quality, parse_seconds, parse_size, unknown_param, Parts,
};

/// How a camera stream is set up (from `--stream NAME=camera...`).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraOptions {
    pub selector: DeviceSelector,
    pub request: ModeRequest,
    /// JPEG quality for raw frames and for mirrored MJPEG.
    pub quality: u8,
    /// Flip horizontally, the mirror view webcam users expect.
    pub mirror: bool,
    /// Close the device after this long without anyone asking for frames.
    pub idle_close: Duration,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            selector: DeviceSelector::First,
            request: ModeRequest::default(),
            quality: 80,
            mirror: false,
            idle_close: Duration::from_secs(10),
        }
    }
}

impl std::str::FromStr for CameraOptions {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let parts = Parts::split(spec)?;
        let selector = match parts.arg {
            None | Some("") => DeviceSelector::First,
            Some(a) if a.starts_with('/') => DeviceSelector::Path(PathBuf::from(a)),
            Some(a) => DeviceSelector::Index(a.parse().map_err(|_| {
                format!("camera {a:?} is neither an index (camera:0) nor a device path (camera:/dev/video0)")
            })?),
        };
        let mut o = CameraOptions {
            selector,
            ..CameraOptions::default()
        };
        for (key, value) in parts.params {
            match key {
                "size" => o.request.size = Some(parse_size(value)?),
                "fps" => {
                    o.request.fps = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|f| (1..=240).contains(f))
                            .ok_or_else(|| {
                                format!("camera fps {value:?} is not a whole number from 1 to 240")
                            })?,
                    )
                }
                "format" => {
                    o.request.format = Some(PixelFormat::parse(value).ok_or_else(|| {
                        let known: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.name()).collect();
                        format!(
                            "camera format {value:?} is not known; formats: {}",
                            known.join(", ")
                        )
                    })?)
                }
                "quality" => o.quality = parse_quality(value)?,
                "mirror" => o.mirror = parse_flag("mirror", value)?,
                "idle" => o.idle_close = parse_seconds("idle", value, 1..=86_400)?,
                other => {
                    return Err(unknown_param(
                        "camera",
                        other,
                        "size, fps, format, quality, mirror, idle",
                    ))
                }
            }
        }
        Ok(o)
    }
}

impl fmt::Display for CameraOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            DeviceSelector::First => write!(f, "camera")?,
            DeviceSelector::Index(i) => write!(f, "camera:{i}")?,
            DeviceSelector::Path(p) => write!(f, "camera:{}", p.display())?,
        }
        let mut opts = Vec::new();
        if let Some((w, h)) = self.request.size {
            opts.push(format!("size={w}x{h}"));
        }
        if let Some(fps) = self.request.fps {
            opts.push(format!("fps={fps}"));
        }
        if let Some(format) = self.request.format {
            opts.push(format!("format={format}"));
        }
        opts.push(format!("quality={}", self.quality));
        if self.mirror {
            opts.push("mirror=1".into());
        }
        opts.push(format!("idle={}", self.idle_close.as_secs()));
        write!(f, "?{}", opts.join("&"))
    }
}
