//! `ffmpeg:PATH_OR_URL`: anything ffmpeg reads (a video file, an RTSP camera) as a live MJPEG
//! stream, through an `ffmpeg` child process whose stdout is a multipart JPEG stream (ffmpeg's
//! `mpjpeg` muxer) read with the shared parser.
//!
//! Files play at real time (`-re`) and loop by default; URLs are live already. The child runs only
//! while someone watches: started on the first frame asked for, killed (`kill_on_drop`) when the
//! stream pauses or the relay shuts down. It cannot outlive the relay either: if the relay dies,
//! the pipe ffmpeg writes to closes and ffmpeg ends on its next frame (a write error on the
//! closed pipe), and init reaps it. Credentials in an RTSP URL are never shown (API, logs, ffmpeg's
//! own error lines are cleaned). When ffmpeg exits (end of a non-looping file, a camera gone), the stream reports why
//! (ffmpeg's last error line) and the driver starts it again with backoff.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mjpeg_shared::multipart::MultipartParser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// A live input that sends nothing for this long is treated as gone (ffmpeg itself may wait
/// forever on a vanished RTSP camera).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
use tokio::process::{Child, ChildStdout, Command};

use super::{SetupError, Source, SourceError, SourceFrame, SourceInfo};
use crate::frame::unix_micros_now;
use crate::jpeg;

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
}

impl std::fmt::Debug for FfmpegOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegOptions")
            .field("input", &self.shown())
            .field("quality", &self.quality)
            .finish()
    }
}

impl FfmpegOptions {
    /// The input without credentials (`rtsp://user:pass@cam/...` is how RTSP cameras are
    /// addressed), for everything that shows it.
    pub fn shown(&self) -> String {
        super::upstream::redact(&self.input)
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

struct Running {
    child: Child,
    stdout: ChildStdout,
    parser: MultipartParser,
}

pub struct FfmpegSource {
    options: FfmpegOptions,
    program: String,
    running: Option<Running>,
    /// ffmpeg's last error line, kept by a task reading its stderr.
    last_stderr: Arc<Mutex<Option<String>>>,
    size: Option<(u32, u32)>,
    buf: Vec<u8>,
    /// A non-looping file has played to its end.
    finished: bool,
}

impl FfmpegSource {
    /// Checks that ffmpeg runs and a file input exists, so that neither is a surprise later.
    pub fn new(options: FfmpegOptions) -> Result<FfmpegSource, SetupError> {
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
        Ok(FfmpegSource {
            options,
            program,
            running: None,
            last_stderr: Arc::default(),
            size: None,
            buf: vec![0; 64 * 1024],
            finished: false,
        })
    }

    fn spawn(&mut self) -> Result<Running, SourceError> {
        let mut child = Command::new(&self.program)
            .args(self.options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SourceError::Failed(format!("cannot start ffmpeg: {e}")))?;
        tracing::debug!(pid = child.id(), "ffmpeg started");
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SourceError::Failed("ffmpeg has no stdout".into()))?;
        if let Some(stderr) = child.stderr.take() {
            let last = self.last_stderr.clone();
            let (raw, shown) = (self.options.input.clone(), self.options.shown());
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
                    let text = String::from_utf8_lossy(&line)
                        .trim_end()
                        .replace(&raw, &shown);
                    tracing::debug!(ffmpeg = %text);
                    *last.lock().unwrap() = Some(text);
                    line.clear();
                }
            });
        }
        let parser = MultipartParser::new(BOUNDARY);
        Ok(Running {
            child,
            stdout,
            parser,
        })
    }
}

#[async_trait::async_trait]
impl Source for FfmpegSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        if self.finished {
            std::future::pending::<()>().await;
        }
        if self.running.is_none() {
            *self.last_stderr.lock().unwrap() = None;
            self.running = Some(self.spawn()?);
        }
        let running = self.running.as_mut().expect("just started");
        loop {
            match running.parser.next_part() {
                Ok(Some(part)) if jpeg::looks_like_jpeg(&part.body) => {
                    let (width, height) = jpeg::dimensions(&part.body).unwrap_or((0, 0));
                    self.size = Some((width, height));
                    let jpeg: Bytes = part.body;
                    return Ok(SourceFrame {
                        captured_micros: unix_micros_now(),
                        jpeg,
                        width,
                        height,
                    });
                }
                Ok(Some(_)) => tracing::warn!("ffmpeg sent a part that is not a JPEG; skipped"),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(%err, "ffmpeg's stream did not parse; skipping to the next part")
                }
            }
            let n = match tokio::time::timeout(READ_TIMEOUT, running.stdout.read(&mut self.buf))
                .await
            {
                Ok(n) => n?,
                Err(_) => {
                    // Dropping the child kills it; the driver starts a new one with backoff.
                    self.running = None;
                    return Err(SourceError::Failed(format!(
                        "ffmpeg produced nothing from {} for {} s",
                        self.options.shown(),
                        READ_TIMEOUT.as_secs()
                    )));
                }
            };
            if n == 0 {
                let status = running.child.wait().await.ok();
                self.running = None;
                if status.is_some_and(|s| s.success())
                    && !self.options.loop_input
                    && !self.options.is_url()
                {
                    // A file played once, as asked: the last frame stays; a new viewer after a
                    // pause starts it again.
                    self.finished = true;
                    tracing::info!("played to the end (loop=0)");
                    std::future::pending::<()>().await;
                }
                let why = self
                    .last_stderr
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| "no error message".into());
                let status = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown status".into());
                return Err(SourceError::Failed(format!(
                    "ffmpeg ended ({status}): {why}"
                )));
            }
            running.parser.push(&self.buf[..n]);
        }
    }

    fn pause(&mut self) {
        self.finished = false;
        // Nobody watches: stop decoding (dropping the child kills it).
        if self.running.take().is_some() {
            tracing::debug!("ffmpeg stopped: no viewers");
        }
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "ffmpeg",
            fps: self.options.fps.unwrap_or(0.0),
            width: self.size.map(|s| s.0).or(self.options.size.map(|s| s.0)),
            height: self.size.map(|s| s.1).or(self.options.size.map(|s| s.1)),
            device: Some(self.options.shown()),
            last_error: None,
            ..Default::default()
        }
    }
}
