//! Where frames come from. Every kind of source sits behind [`Source`], so the fan-out
//! ([`crate::fanout`]) never knows whether it serves a test pattern, a camera or pushed frames.
//! Nothing here knows of HTTP, access control or the command line.
//!
//! A source paces itself: `next_frame` returns when the next frame is due. The stream driver
//! calls it only while someone watches, so a source that is not asked produces nothing.
//!
//! - [`spec`]: `NAME=SOURCE`, picking the source by its kind, and starting it.
//! - [`options`]: the pieces of every source's option grammar (sizes, rates, flags, limits).
//! - [`feed`]: how live sources hand over frames: one-slot channel, demand clock, NO SIGNAL.
//! - [`test_pattern`]: the built-in moving pattern with a clock and a machine-readable stamp.
//! - [`files`]: JPEG files from a folder, looped in name order, not re-encoded.
//! - [`camera`]: a webcam (nokhwa), behind a device trait with fakes for tests.
//! - [`ffmpeg`]: anything ffmpeg reads (files, RTSP), through an ffmpeg child process.
//! - [`upstream`]: another server's MJPEG stream over HTTP, fetched once for every viewer.
//! - [`push`]: frames pushed by another process (the HTTP side is `crate::http::ingest`).
//! - [`draw`]: rectangles, text and JPEG encoding for the sources that draw pictures.
//! - [`rendition`]: a frame at another size or quality, or with its metadata drawn in
//!   ([`overlay`]), for viewers who ask; made by the fan-out once per frame.

pub mod camera;
pub mod draw;
pub mod feed;
pub mod ffmpeg;
pub mod files;
pub mod options;
pub mod overlay;
pub mod push;
pub mod rendition;
pub mod spec;
pub mod test_pattern;
pub mod upstream;

use bytes::Bytes;

/// A frame as a source delivers it, before the stream numbers it.
#[derive(Clone, Debug)]
pub struct SourceFrame {
    /// When the picture was taken, Unix microseconds.
    pub captured_micros: u64,
    pub jpeg: Bytes,
    pub width: u32,
    pub height: u32,
    /// What a pipeline said about it (pushed frames, frames from another relay, the test
    /// pattern's square and stage).
    pub pipeline: Pipeline,
}

/// What a vision pipeline sends beside a frame (`docs/metadata.md`): the times of its stages and
/// the frame's metadata, passed on as they came.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pipeline {
    /// (stage name, Unix microseconds), in order; the relay's receipt last
    /// ([`mjpeg_shared::wire::STAGE_RECEIVED`]).
    pub stages: Vec<(String, u64)>,
    /// JSON, checked to parse and to be within the stream's limit, never rewritten.
    pub meta: Option<Bytes>,
}

impl Pipeline {
    /// The most stages a frame keeps (the rest are dropped): a header block stays small.
    pub const MAX_STAGES: usize = 16;
    /// Default limit on one frame's metadata (`docs/metadata.md`): a push stream's unless it
    /// sets `max_meta`, and what an edge accepts from another relay.
    pub const DEFAULT_MAX_META: usize = 64 * 1024;

    /// `stages` (at most [`Pipeline::MAX_STAGES`]) with the relay's receipt, now, after them.
    pub fn received(mut stages: Vec<(String, u64)>, meta: Option<Bytes>) -> Pipeline {
        stages.truncate(Self::MAX_STAGES - 1);
        stages.push((
            mjpeg_shared::wire::STAGE_RECEIVED.to_string(),
            crate::clock::unix_micros_now(),
        ));
        Pipeline { stages, meta }
    }

    /// `meta` if it is JSON within `limit` bytes: what every way in (a push, another relay's
    /// `.frames?meta=1`) checks before a frame carries it.
    pub fn check_meta(meta: &[u8], limit: usize) -> Result<Bytes, BadMeta> {
        if meta.len() > limit {
            return Err(BadMeta::TooLarge {
                len: meta.len(),
                limit,
            });
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(meta)
            .map_err(|e| BadMeta::NotJson(e.to_string()))?;
        Ok(Bytes::copy_from_slice(meta))
    }
}

/// Why a frame's metadata was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadMeta {
    #[error("the frame's metadata is {len} bytes, over this stream's limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("the frame's metadata is not JSON: {0}")]
    NotJson(String),
}

/// What a source reports about itself for `/api/streams`.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub kind: &'static str,
    /// The rate it is set to produce.
    pub fps: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The device it reads, for hardware sources.
    pub device: Option<String>,
    /// The negotiated capture format, for hardware sources (`mjpeg 1280x720 @ 30 fps`).
    pub format: Option<String>,
    /// The rate frames actually arrive at, measured.
    pub capture_fps: Option<f64>,
    /// Parts received and dropped (not a JPEG, too large), for sources that receive parts.
    pub dropped_parts: Option<u64>,
    /// Why the source is not delivering real frames, while it is not (a source that covers for
    /// itself, like a camera showing NO SIGNAL, still reports the cause here).
    pub last_error: Option<String>,
    /// Failures a source covered for itself (its feed's errors), and recoveries after them;
    /// the stream adds them to the failures its driver saw.
    pub errors: u64,
    pub recoveries: u64,
}

/// Why a source could not produce a frame. The stream logs it, shows it in the API and retries
/// with backoff; the viewers stay connected.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Failed(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A producer of frames. See the module docs.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Waits until the next frame is due and returns it.
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError>;

    /// Nobody is watching any more: release what can be released and, on the next
    /// `next_frame`, start afresh instead of catching up on missed frames.
    fn pause(&mut self) {}

    /// Kind, nominal rate and size.
    fn info(&self) -> SourceInfo;
}

/// Why a source could not be set up at startup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Invalid(String),
}

/// What sources may need from the relay to start: the camera backend (the real one, or a fake in
/// tests) and whether a missing camera is a startup error.
#[derive(Clone)]
pub struct SourceContext {
    pub cameras: std::sync::Arc<dyn camera::device::CameraBackend>,
    pub require_camera: bool,
}

/// A started source, and for `push` streams the hub its ingest endpoint feeds.
pub struct Opened {
    pub source: Box<dyn Source>,
    pub ingest: Option<std::sync::Arc<push::IngestHub>>,
}

/// A pacing clock for sources that produce at a fixed rate: ticks at `fps`, skips ticks that
/// were missed (a late frame is not followed by a burst), and restarts on `reset` so a stream
/// that resumes after a pause produces its first frame at once.
#[derive(Debug)]
pub struct Pacer {
    period: std::time::Duration,
    interval: Option<tokio::time::Interval>,
}

impl Pacer {
    pub fn new(fps: f64) -> Self {
        Pacer {
            period: std::time::Duration::from_secs_f64(1.0 / fps),
            interval: None,
        }
    }

    pub async fn tick(&mut self) {
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut i = tokio::time::interval(period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            i
        });
        interval.tick().await;
    }

    pub fn reset(&mut self) {
        self.interval = None;
    }
}
