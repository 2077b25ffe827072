//! `ffmpeg:PATH_OR_URL`: anything ffmpeg reads (a video file, an RTSP camera) as a live MJPEG
//! stream, through an `ffmpeg` child process whose stdout is a multipart JPEG stream (ffmpeg's
//! `mpjpeg` muxer) read with the shared parser.
//!
//! Files play at real time (`-re`) and loop by default; URLs are live already. A pump task runs
//! one child while someone watches: started when frames are first asked for, killed
//! (`kill_on_drop`) `linger` (10 s by default) after the last viewer left, or when the relay shuts
//! down. The linger is what lets a snapshot loop or viewers coming and going reuse one child: an
//! RTSP camera then sees one session, not one set up and torn down (by SIGKILL, without
//! TEARDOWN) per request. It
//! cannot outlive the relay either: if the relay dies, the pipe ffmpeg writes to closes and ffmpeg
//! ends on its next frame (a write error on the closed pipe), and init reaps it.
//!
//! Frames go through the source's [`super::feed`], like a camera's: when ffmpeg cannot read its
//! input or its child dies (a file gone, an RTSP camera unplugged), viewers see NO SIGNAL naming
//! the cause (ffmpeg's last error line) and the API's `last_error` says it, while the pump starts
//! ffmpeg again with backoff; live frames return on the same connections when the input does.
//! Credentials in an RTSP URL are never shown (API, logs, ffmpeg's own error lines are cleaned).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjpeg_shared::multipart::MultipartParser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::process::Command;
use tracing::Instrument;

use super::feed::{self, Ended, Failure, Feed, Feeder, Patience, RelayedParts};
use super::options::{
    parse_flag, parse_fps, parse_params, parse_quality, parse_seconds, parse_size, unknown_param,
    Parts, MAX_SOURCE_FPS,
};
use super::{SetupError, Source, SourceError, SourceFrame, SourceInfo};

/// NO SIGNAL after this long without a frame: 5 s for ffmpeg to start and open its input (an
/// RTSP camera's session setup takes seconds), 2 s once frames flowed.
const PATIENCE: Patience = Patience {
    opening: Duration::from_secs(5),
    stalled: Duration::from_secs(2),
};
/// A live input that sends nothing for this long is treated as gone (ffmpeg itself may wait
/// forever on a vanished RTSP camera): its ffmpeg is stopped and started again.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the pump looks up from a silent ffmpeg to see whether anyone still watches.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// How long ffmpeg keeps running after the last viewer left, unless `linger=S` says otherwise.
const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// The ffmpeg program; tests point it elsewhere to see what happens without one.
const FFMPEG: &str = "ffmpeg";
const BOUNDARY: &str = "ffmpeg";

/// How an ffmpeg stream is set up (from `--stream NAME=ffmpeg:INPUT?...`).
#[derive(Clone, PartialEq)]
pub struct FfmpegOptions {
    /// A path or a URL (`rtsp://...`), as ffmpeg's `-i` takes it.
    pub input: String,
    /// Output rate; the input's own when unset.
    pub fps: Option<f64>,
    /// Output size; the input's own when unset.
    pub size: Option<(u32, u32)>,
    /// JPEG quality 1..=100 (mapped onto ffmpeg's -q:v 31..2).
    pub quality: u8,
    /// Loop a file at its end (default for files; live URLs never end on their own).
    pub loop_input: bool,
    /// How long the child keeps running after the last viewer left.
    pub linger: Duration,
}

impl std::fmt::Debug for FfmpegOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegOptions")
            .field("input", &self.shown())
            .field("quality", &self.quality)
            .finish()
    }
}

impl std::str::FromStr for FfmpegOptions {
    type Err = String;

    /// `ffmpeg:PATH_OR_URL?fps=N&size=WxH&quality=Q&loop=0&linger=S`, or, for an input URL with
    /// a query of its own (`rtsp://cam/live?channel=1`), the options after a `#` instead:
    /// `ffmpeg:rtsp://cam/live?channel=1#fps=10&linger=30`. A file path keeps its `#`.
    fn from_str(spec: &str) -> Result<Self, String> {
        // Before any split: a '/', '?' or '#' in a password would cut it there.
        crate::redact::check_userinfo(spec)?;
        let url = spec.contains("://");
        let (input, params) = match spec.split_once('#').filter(|_| url) {
            Some((head, options)) => {
                let input = head.strip_prefix("ffmpeg:").unwrap_or_default();
                (input, parse_params(Some(options))?)
            }
            None => {
                let parts = Parts::split(spec)?;
                (parts.arg.unwrap_or_default(), parts.params)
            }
        };
        if input.is_empty() {
            return Err(
                "source \"ffmpeg\" needs an input: ffmpeg:PATH or ffmpeg:rtsp://...".into(),
            );
        }
        let mut o = FfmpegOptions {
            input: input.to_string(),
            fps: None,
            size: None,
            quality: 80,
            loop_input: true,
            linger: DEFAULT_LINGER,
        };
        for (key, value) in params {
            match key {
                "fps" => o.fps = Some(parse_fps(value, MAX_SOURCE_FPS)?),
                "size" => o.size = Some(parse_size(value)?),
                "quality" => o.quality = parse_quality(value)?,
                "loop" => o.loop_input = parse_flag("loop", value)?,
                "linger" => o.linger = parse_seconds("linger", value, 0..=86_400)?,
                other => {
                    return Err(unknown_param(
                        "ffmpeg",
                        other,
                        "fps, size, quality, loop, linger",
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// The input without credentials: specs are shown in the API and the logs.
impl std::fmt::Display for FfmpegOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options after '#' when the input has a query of its own, as they were given.
        let sep = if self.input.contains('?') { '#' } else { '?' };
        write!(
            f,
            "ffmpeg:{}{sep}quality={}&loop={}&linger={}",
            self.shown(),
            self.quality,
            u8::from(self.loop_input),
            self.linger.as_secs()
        )?;
        if let Some(fps) = self.fps {
            write!(f, "&fps={fps}")?;
        }
        if let Some((w, h)) = self.size {
            write!(f, "&size={w}x{h}")?;
        }
        Ok(())
    }
}

impl FfmpegOptions {
    /// The input without credentials (`rtsp://user:pass@cam/...` is how RTSP cameras are
    /// addressed), for everything that shows it.
    pub fn shown(&self) -> String {
        crate::redact::redact(&self.input)
    }

    fn is_url(&self) -> bool {
        self.input.contains("://")
    }

    /// ffmpeg's arguments: read (at real time for files), convert to MJPEG, write `mpjpeg`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
            .map(String::from)
            .to_vec();
        if !self.is_url() {
            args.push("-re".into());
            if self.loop_input {
                args.extend(["-stream_loop".into(), "-1".into()]);
            }
        }
        args.extend(["-i".into(), self.input.clone()]);
        let mut filters = Vec::new();
        if let Some(fps) = self.fps {
            filters.push(format!("fps={fps}"));
        }
        if let Some((w, h)) = self.size {
            filters.push(format!("scale={w}:{h}"));
        }
        if !filters.is_empty() {
            args.extend(["-vf".into(), filters.join(",")]);
        }
        let q = 2 + (u32::from(100 - self.quality.clamp(1, 100)) * 29) / 99;
        args.extend(["-an", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v"].map(String::from));
        args.push(q.to_string());
        args.extend(["-f", "mpjpeg", "-boundary_tag", BOUNDARY, "pipe:1"].map(String::from));
        args
    }
}

pub struct FfmpegSource {
    options: FfmpegOptions,
    feed: Feed,
}

impl FfmpegSource {
    /// Checks that ffmpeg runs and a file input exists, so that neither is a surprise later, and
    /// starts the pump (idle until frames are asked for).
    pub fn new(name: &str, options: FfmpegOptions) -> Result<FfmpegSource, SetupError> {
        let program = std::env::var("MJPEG_RELAY_FFMPEG").unwrap_or_else(|_| FFMPEG.into());
        match std::process::Command::new(&program).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(SetupError::Invalid(format!(
                    "ffmpeg is not installed (no {program:?} on PATH); install the Debian package ffmpeg: apt-get install ffmpeg"
                )))
            }
            Err(err) => return Err(SetupError::Invalid(format!("cannot run {program}: {err}"))),
        }
        if !options.is_url() && !std::path::Path::new(&options.input).is_file() {
            return Err(SetupError::Invalid(format!(
                "no such file: {}",
                options.input
            )));
        }
        let shown = options.shown();
        let (feed, feeder) = feed::channel(
            name,
            shown.clone(),
            format!("starting ffmpeg for {shown}"),
            Some(PATIENCE),
        );
        let period = options.fps.map(|fps| Duration::from_secs_f64(1.0 / fps));
        feeder.set_format(period, options.size);
        let span = tracing::info_span!("ffmpeg", input = %shown);
        let pump = {
            let options = options.clone();
            async move {
                feeder
                    .pump(options.linger, || run_once(&program, &options, &feeder))
                    .await
            }
        };
        tokio::spawn(pump.instrument(span));
        Ok(FfmpegSource { options, feed })
    }
}

#[async_trait::async_trait]
impl Source for FfmpegSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.feed.next_frame().await
    }

    fn pause(&mut self) {
        self.feed.pause();
    }

    fn info(&self) -> SourceInfo {
        let info = self.feed.info("ffmpeg");
        SourceInfo {
            fps: self.options.fps.unwrap_or(0.0),
            width: info.width.or(self.options.size.map(|s| s.0)),
            height: info.height.or(self.options.size.map(|s| s.1)),
            ..info
        }
    }
}

/// One ffmpeg child, read until nobody wants frames, it ends, or it goes silent. Errors carry
/// why and whether any frame was delivered.
async fn run_once(
    program: &str,
    options: &FfmpegOptions,
    feeder: &Feeder,
) -> Result<Ended, Failure> {
    let mut child = Command::new(program)
        .args(options.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| (format!("cannot start ffmpeg: {e}"), false))?;
    tracing::debug!(pid = child.id(), "ffmpeg started");
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| ("ffmpeg has no stdout".to_string(), false))?;
    // ffmpeg's last error line, kept by a task reading its stderr.
    let last_stderr: Arc<Mutex<Option<String>>> = Arc::default();
    let stderr_task = child.stderr.take().map(|stderr| {
        let last = last_stderr.clone();
        let (raw, shown) = (options.input.clone(), options.shown());
        tokio::spawn(async move {
            // Read as bytes (ffmpeg may print non-UTF-8), always to the end (a full pipe would
            // block ffmpeg), and with the input's credentials cut out of every line kept.
            let mut reader = tokio::io::BufReader::new(stderr);
            let mut line = Vec::new();
            while reader
                .read_until(b'\n', &mut line)
                .await
                .is_ok_and(|n| n > 0)
            {
                let text = crate::redact::scrub(
                    &String::from_utf8_lossy(&line)
                        .trim_end()
                        .replace(&raw, &shown),
                );
                tracing::debug!(ffmpeg = %text);
                *last.lock().unwrap() = Some(text);
                line.clear();
            }
        })
    });
    let mut parts = RelayedParts::new(MultipartParser::new(BOUNDARY));
    let mut buf = vec![0; 64 * 1024];
    let mut delivered = false;
    let mut heard = Instant::now();
    loop {
        // ffmpeg's parts carry no X-Timestamp: a frame is captured when it comes out.
        delivered |= feeder.publish_parts(&mut parts);
        // Dropping the child on return kills it.
        if !feeder.wanted(options.linger) {
            return Ok(Ended::Released);
        }
        let n = match tokio::time::timeout(CHECK_EVERY, stdout.read(&mut buf)).await {
            Err(_) if heard.elapsed() < READ_TIMEOUT => continue,
            Err(_) => {
                return Err((
                    format!(
                        "ffmpeg produced nothing from {} for {} s",
                        options.shown(),
                        READ_TIMEOUT.as_secs()
                    ),
                    delivered,
                ))
            }
            Ok(Err(e)) => return Err((format!("reading ffmpeg's output: {e}"), delivered)),
            Ok(Ok(n)) => n,
        };
        if n > 0 {
            heard = Instant::now();
            parts.push(&buf[..n]);
            continue;
        }
        // ffmpeg closed its output: it has ended, or is about to.
        let status = child.wait().await.ok();
        if status.is_some_and(|s| s.success()) && !options.loop_input && !options.is_url() {
            // A file played once, as asked (`loop=0`).
            return Ok(Ended::Finished);
        }
        // Its stderr closes as it exits: let the reader take the last line before quoting it.
        if let Some(task) = stderr_task {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let why = last_stderr
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "no error message".into());
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        return Err((format!("ffmpeg ended ({status}): {why}"), delivered));
    }
}
