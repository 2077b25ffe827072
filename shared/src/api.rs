//! JSON bodies of the relay's `/api/*` endpoints and of its error responses.
//!
//! Field names are part of the public API (`docs/api.md` describes them); add fields, do not
//! rename them. Optional fields are omitted when unknown rather than sent as `null`.

use serde::{Deserialize, Serialize};

/// `GET /api/streams`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamList {
    pub streams: Vec<StreamInfo>,
}

/// `GET /api/streams/NAME`, and each entry of [`StreamList`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream's name, as in `/streams/NAME.mjpg`.
    pub name: String,
    /// The source spec it was started with, e.g. `test?size=640x480&fps=30` (secrets removed).
    pub source: String,
    /// The source kind: `test`, `files`, ...
    pub kind: String,
    /// Frame width in pixels, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Frame height in pixels, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The rate the source is configured to produce, frames per second.
    pub source_fps: f64,
    /// True while the source is producing (someone watches, or a snapshot was asked for).
    pub active: bool,
    /// Viewers connected now, over both stream endpoints.
    pub viewers: u64,
    /// Frames the source has produced since start.
    pub frames_produced: u64,
    /// Frames handed to viewers' connections, summed over viewers.
    pub frames_sent: u64,
    /// Frames viewers skipped, summed: newer frames arrived while a viewer's connection was still
    /// busy, or before its `?fps` cap allowed another.
    pub frames_skipped: u64,
    /// Bytes of stream parts handed to viewers' connections, summed.
    pub bytes_sent: u64,
    /// Sequence number of the newest frame, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// Size in bytes of the newest frame, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_bytes: Option<u64>,
    /// The device a hardware source reads (`/dev/video0`, a camera's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The negotiated capture format of a hardware source, e.g. `mjpeg 1280x720 @ 30 fps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The rate frames actually arrive from the source, measured over the last second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_fps: Option<f64>,
    /// Parts an upstream sent that were dropped (not a JPEG, over the size limit, unparseable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_parts: Option<u64>,
    /// Why the source is not delivering (a failing attempt, or a camera shown as NO SIGNAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Frames' metadata a pusher sent in a long ingest stream that was dropped (not JSON, over
    /// the limit) while the frame was kept; push streams only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_dropped: Option<u64>,
    /// Frames rendered with their metadata drawn in (`overlay=1`), once per frame however many
    /// viewers asked; omitted while none was.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overlays_rendered: u64,
    /// The renditions viewers watch now (`?width=`, `?size=`, `?quality=`, `?overlay=1`), each
    /// made once per frame whatever the number of its viewers; omitted while there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<RenditionInfo>,
    /// What the viewers that report (the dashboard's) saw lately: each one's newest report of
    /// the last [`REPORT_TTL_SECS`]; only in `/api/streams/NAME`, omitted while there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub viewer_reports: Vec<ReportedFigures>,
    /// Paths of this stream's endpoints.
    pub endpoints: Endpoints,
}

/// One live rendition of a stream, in [`StreamInfo::renditions`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenditionInfo {
    /// What its viewers asked, as a query: `width=320&quality=50`.
    pub asked: String,
    /// What the newest frame made of it is, as `X-Rendition` says it (`320x180;q=50`); absent
    /// before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made: Option<String>,
    /// Viewers (and snapshots being answered) of it now.
    pub viewers: u64,
    /// Frames made of it since it went live.
    pub frames_made: u64,
    /// CPU time making them (decode, resize, draw, encode), seconds.
    pub cpu_seconds: f64,
}

/// `POST /api/streams/NAME/report`: what one viewer of a stream saw over its last few seconds,
/// sent by the dashboard every [`REPORT_EVERY_SECS`] while it plays. Fields it does not know
/// are ignored (a newer dashboard may send more).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewerReport {
    /// The viewer's own random id, kept while it plays (1 to 32 of `A-Z a-z 0-9 - _`): its next
    /// report replaces this one. Never shown back.
    pub viewer: String,
    #[serde(flatten)]
    pub figures: ReportedFigures,
}

/// A viewer's figures, the overlay's: as reported, and as `/api/streams/NAME` shows them (without
/// the viewer's id, which would let anyone reading the API write over that viewer's reports).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportedFigures {
    /// `fetch`, `img` or `img-fallback`.
    pub transport: String,
    /// Frames shown per second, over the last second.
    pub fps: f64,
    /// Capture to presented on screen, median over the last 2 s, ms; absent while unknown (the
    /// clock not yet synced or off, frames without a capture time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    /// The same, 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
    /// Frames the relay skipped for this viewer (sequence gaps), since it started.
    pub skipped_relay: u64,
    /// Frames that arrived but were never shown (a newer one came first), since it started.
    pub skipped_browser: u64,
}

/// Largest report body taken, bytes.
pub const REPORT_MAX_BYTES: usize = 1024;
/// How often the dashboard reports, and how long a report counts as current.
pub const REPORT_EVERY_SECS: u64 = 5;
pub const REPORT_TTL_SECS: u64 = 15;
/// Transports a report may name.
pub const REPORT_TRANSPORTS: [&str; 3] = ["fetch", "img", "img-fallback"];

impl ViewerReport {
    /// The report if every figure is one a viewer can have seen, else what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = (1..=32).contains(&self.viewer.len())
            && self
                .viewer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err("viewer must be 1 to 32 of A-Z a-z 0-9 - _".into());
        }
        let f = &self.figures;
        if !REPORT_TRANSPORTS.contains(&f.transport.as_str()) {
            return Err(format!(
                "transport must be one of {}",
                REPORT_TRANSPORTS.join(", ")
            ));
        }
        if !(0.0..=1000.0).contains(&f.fps) {
            return Err("fps must be between 0 and 1000".into());
        }
        // An hour: anything later is a broken clock, not a latency.
        let ms = |v: Option<f64>| v.is_none_or(|v| (0.0..=3_600_000.0).contains(&v));
        if !ms(f.latency_p50_ms) || !ms(f.latency_p95_ms) {
            return Err("latencies must be between 0 and 3600000 ms".into());
        }
        if let (Some(p50), Some(p95)) = (f.latency_p50_ms, f.latency_p95_ms) {
            if p95 < p50 {
                return Err("latency_p95_ms must not be below latency_p50_ms".into());
            }
        }
        Ok(())
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a stream is served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Classic `multipart/x-mixed-replace`, for `<img src>`.
    pub classic: String,
    /// Fetch-readable variant.
    pub frames: String,
    /// Latest frame as one JPEG.
    pub snapshot: String,
    /// This stream's entry in the API.
    pub info: String,
}

impl Endpoints {
    /// The endpoint paths of stream `name`.
    pub fn for_stream(name: &str) -> Self {
        Endpoints {
            classic: format!("/streams/{name}.mjpg"),
            frames: format!("/streams/{name}.frames"),
            snapshot: format!("/streams/{name}.jpg"),
            info: format!("/api/streams/{name}"),
        }
    }
}

/// `GET /api/time`: the server's wall clock when it answered, for NTP-style clock-offset
/// estimation by viewers (offset = ((t1 - t0) + (t2 - t3)) / 2 with t1 = t2 = `unix_micros`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTime {
    /// Unix time in microseconds.
    pub unix_micros: u64,
}

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the process answers.
    pub status: String,
    /// Number of configured streams.
    pub streams: u64,
}

/// The body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, in words meant for the person who made the request.
    pub error: String,
}

/// `POST /streams/NAME/ingest` on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResult {
    /// Frames accepted from this request.
    pub frames: u64,
}

/// `GET /api/streams/NAME/meta`: the newest metadata a frame of the stream carried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The sequence number of the frame it belongs to.
    pub sequence: u64,
    /// That frame's capture time, Unix microseconds.
    pub captured_micros: u64,
    /// The metadata as the pusher sent it (`docs/metadata.md`).
    pub meta: serde_json::Value,
}

/// `POST /api/sign` body: a signed URL for one stream's `.mjpg`, `.frames` and `.jpg`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    pub stream: String,
    /// How long the URL opens the stream, in seconds (1 s to about a year).
    pub ttl_seconds: u64,
    /// Cap on the viewer's frame rate, enforced by the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
}

/// `POST /api/sign` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUrl {
    /// The query string to append to a stream's endpoint: `[fps=N&]exp=UNIX&sig=HEX`.
    pub query: String,
    /// Unix seconds after which it no longer opens the stream.
    pub expires: u64,
}
