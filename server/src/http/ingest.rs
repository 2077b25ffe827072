//! `POST /streams/NAME/ingest`: frames pushed by another process into a `push` stream.
//!
//! Three ways to push, told apart by the request's `Content-Type`:
//! - one JPEG per request (`image/jpeg`, or anything not multipart), its metadata, if any, in an
//!   `X-Frame-Meta` header (JSON, at most 8 KB);
//! - one frame with its metadata as `multipart/mixed`: the JPEG part, then a JSON part;
//! - one long request whose body is a multipart stream of JPEGs (`multipart/x-mixed-replace;
//!   boundary=...`, what a Python generator passed to `requests.post` or ffmpeg's `mpjpeg` muxer
//!   sends), read part by part with the shared parser as it arrives; a JSON part right after a
//!   JPEG part is that frame's metadata.
//!
//! Capture time (`X-Timestamp`) and pipeline stages (`X-Stage-NAME`) come from the part's
//! headers, or the request's for a single frame; the relay adds its receipt as the last stage
//! (`docs/metadata.md`). Metadata that is not JSON or over the stream's `max_meta` (64 KB by
//! default) is a 400 for a single frame; in a long stream the frame is kept, the metadata dropped
//! and counted (`meta_dropped` in the API).
//!
//! The push stream's token (as `Authorization: Bearer TOKEN` or `?token=TOKEN`) is checked
//! before this handler runs, by the same access check as every route ([`super::auth`]): missing
//! is 401, wrong 403. A body that stalls for 20 s is 408. A body that is not a JPEG is 415, one
//! over the stream's limit 413; the stream stays up either way. One pusher at a time per stream (409), unless the stream lets a newer one replace
//! the older.

use std::sync::Arc;

use mjpeg_shared::api::IngestResult;
use mjpeg_shared::multipart::{MultipartParser, ParseError, Part};
use mjpeg_shared::wire::META_CONTENT_TYPE;
use poem::web::{Data, Json, Path};
use poem::{handler, Body, Request};

use super::body::{next_chunk_within, read_capped, Unread};
use super::error::ApiError;
use super::Site;
use crate::clock::unix_micros_now;
use crate::fanout::stream::Stream;
use crate::jpeg;
use crate::source::push::IngestHub;
use crate::source::{BadMeta, Pipeline, SourceFrame};

#[handler]
pub async fn ingest(
    req: &Request,
    Path(name): Path<String>,
    body: Body,
    site: Data<&Arc<Site>>,
) -> poem::Result<Json<IngestResult>> {
    let stream = site.stream(&name)?;
    let hub = stream
        .ingest
        .clone()
        .ok_or_else(|| ApiError::NotPushStream {
            name: name.clone(),
            source_spec: stream.spec.clone(),
        })?;
    let lease = hub.begin().map_err(|_| ApiError::PusherBusy)?;
    let content_type = req.content_type().unwrap_or_default().to_ascii_lowercase();
    let pushed = async {
        if content_type.starts_with("multipart/") {
            let parser = MultipartParser::from_content_type(req.content_type().unwrap_or_default())
                .map_err(|e| ApiError::BadBody(e.to_string()))?
                .with_max_part_size(hub.max_bytes);
            let single = content_type.starts_with("multipart/mixed");
            push_parts(body, parser, &hub, &stream, single).await
        } else {
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let described = Part {
                headers,
                body: bytes::Bytes::new(),
            };
            // As bytes: JSON may hold non-ASCII text, which poem's `header` would hide.
            let meta = match req.headers().get(HEADER_FRAME_META).map(|v| v.as_bytes()) {
                None => None,
                Some(value) if value.len() > MAX_META_HEADER => {
                    return Err(ApiError::BadMeta(format!(
                        "{HEADER_FRAME_META} is {} bytes; at most {MAX_META_HEADER} (send larger \
                         metadata as a JSON part: multipart/mixed)",
                        value.len()
                    )))
                }
                Some(value) => Some(check_meta(value, hub.max_meta)?),
            };
            let jpeg = read_capped(body, hub.max_bytes, BODY_IDLE)
                .await
                .map_err(unread)?;
            publish(&hub, jpeg, &described, meta, "the body").map(|()| 1)
        }
    };
    // Whichever comes first: the body ends, a newer pusher takes over, or the relay stops.
    let frames = tokio::select! {
        r = pushed => r?,
        _ = lease.replaced.cancelled() => return Err(ApiError::PusherReplaced.into()),
        _ = site.shutdown.cancelled() => return Err(ApiError::ShuttingDown.into()),
    };
    Ok(Json(IngestResult { frames }))
}

/// Request header carrying a single pushed frame's metadata.
pub const HEADER_FRAME_META: &str = "X-Frame-Meta";
/// Longest `X-Frame-Meta` accepted: a header, not a body.
const MAX_META_HEADER: usize = 8 * 1024;

/// A pusher that sends nothing for this long loses the stream (408), so a hung process cannot
/// hold it against its own restart forever.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a frame waits for the rest of a part that has begun to arrive after it (its
/// metadata, split from it by the network); a frame with nothing after it is published at once.
const META_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The next chunk of the body, or the idle timeout.
async fn next_chunk(
    chunks: &mut (impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin),
) -> Result<Option<bytes::Bytes>, ApiError> {
    next_chunk_within(chunks, BODY_IDLE).await.map_err(unread)
}

/// What the pusher is told when its body could not be read.
fn unread(e: Unread) -> ApiError {
    match e {
        Unread::Io(e) => ApiError::BadBody(e.to_string()),
        Unread::TooLarge { size, limit } => ApiError::TooLarge { size, limit },
        Unread::Idle => ApiError::BodyIdle {
            seconds: BODY_IDLE.as_secs(),
        },
    }
}

/// A multipart body: every JPEG part is published as it arrives, with its metadata. `single`
/// (`multipart/mixed`): one frame, read whole, published once, and bad metadata is an error
/// instead of being dropped. Returns the count.
async fn push_parts(
    body: Body,
    parser: MultipartParser,
    hub: &IngestHub,
    stream: &Stream,
    single: bool,
) -> Result<u64, ApiError> {
    let mut push = Parts {
        hub,
        stream,
        single,
        frames: 0,
        pending: None,
        early_meta: None,
        expects_meta: false,
    };
    let result = push.read(body, parser).await;
    if result.is_err() && !single {
        // A complete frame still waiting for its metadata is not lost with the body's end.
        let _ = push.flush();
    }
    result.map(|()| push.frames)
}

/// The state of a multipart push.
struct Parts<'a> {
    hub: &'a IngestHub,
    stream: &'a Stream,
    single: bool,
    frames: u64,
    /// A JPEG part whose metadata may still be on its way, and until when it waits.
    pending: Option<(Part, tokio::time::Instant)>,
    /// Metadata that came first, naming its frame by `X-Timestamp` (what the Python client sends:
    /// then no frame ever waits).
    early_meta: Option<(u64, bytes::Bytes)>,
    /// This pusher has sent metadata after a frame: from now on every frame waits for the part
    /// after it (at most [`META_WAIT`]), however the network cut the body.
    expects_meta: bool,
}

impl Parts<'_> {
    async fn read(&mut self, body: Body, mut parser: MultipartParser) -> Result<(), ApiError> {
        let mut chunks = Box::pin(body.into_bytes_stream());
        loop {
            let waiting = self
                .pending
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|_| !self.single);
            let chunk = match waiting {
                // One deadline per frame, however many chunks come meanwhile.
                Some(until) => {
                    let wait = until.saturating_duration_since(tokio::time::Instant::now());
                    match next_chunk_within(&mut chunks, wait).await {
                        Ok(chunk) => chunk,
                        Err(Unread::Idle) => {
                            self.flush()?;
                            continue;
                        }
                        Err(e) => return Err(unread(e)),
                    }
                }
                None => next_chunk(&mut chunks).await?,
            };
            let Some(chunk) = chunk else { break };
            parser.push(&chunk);
            loop {
                match parser.next_part() {
                    Ok(Some(part)) => self.take(part)?,
                    Ok(None) => break,
                    Err(ParseError::PartTooLarge { size, limit }) => {
                        return Err(ApiError::TooLarge { size, limit })
                    }
                    Err(err) => return Err(ApiError::BadBody(err.to_string())),
                }
            }
            // Nothing of a next part here (a CRLF at most) from a pusher that has never sent
            // metadata after a frame: the frame goes now, not a part later.
            if !self.single && !self.expects_meta && parser.buffered() <= 2 {
                self.flush()?;
            }
            if parser.is_finished() {
                break;
            }
        }
        if self.single && self.pending.is_none() && self.frames == 0 {
            return Err(ApiError::BadBody(
                "multipart/mixed without a JPEG part".into(),
            ));
        }
        self.flush()
    }

    /// One complete part.
    fn take(&mut self, part: Part) -> Result<(), ApiError> {
        if part.content_type().as_deref() != Some(META_CONTENT_TYPE) {
            if self.single && (self.pending.is_some() || self.frames > 0) {
                return Err(ApiError::BadBody(
                    "multipart/mixed carries one frame: a JPEG part, then its JSON part".into(),
                ));
            }
            self.flush()?;
            let captured = part.timestamp_micros();
            match self.early_meta.take() {
                Some((at, meta)) if Some(at) == captured => {
                    return publish_counted(self.hub, part, Some(meta), &mut self.frames)
                }
                Some(_) => self.stream.count_meta_dropped(),
                None => {}
            }
            self.pending = Some((part, tokio::time::Instant::now() + META_WAIT));
            return Ok(());
        }
        let meta = match check_meta(&part.body, self.hub.max_meta) {
            Ok(meta) => meta,
            Err(err) if self.single => return Err(err),
            Err(_) => {
                self.stream.count_meta_dropped();
                return Ok(());
            }
        };
        // Metadata naming a frame still to come.
        if let Some(at) = part.timestamp_micros().filter(|_| self.pending.is_none()) {
            if self.early_meta.replace((at, meta)).is_some() {
                self.stream.count_meta_dropped();
            }
            return Ok(());
        }
        match self.pending.take() {
            Some((frame, _)) => {
                self.expects_meta = true;
                if self.single {
                    self.pending = Some((frame, tokio::time::Instant::now()));
                    self.early_meta = Some((0, meta));
                    return Ok(());
                }
                publish_counted(self.hub, frame, Some(meta), &mut self.frames)
            }
            None if self.single => Err(ApiError::BadMeta(
                "a JSON part must follow the JPEG part it describes".into(),
            )),
            // Its frame went already (the JSON came too late): never onto another frame.
            None => {
                self.stream.count_meta_dropped();
                Ok(())
            }
        }
    }

    /// Publishes the waiting frame, if any, with the metadata it has.
    fn flush(&mut self) -> Result<(), ApiError> {
        let Some((frame, _)) = self.pending.take() else {
            return Ok(());
        };
        // A single frame's metadata is kept aside until the body is complete.
        let meta = if self.single {
            self.early_meta.take().map(|(_, m)| m)
        } else {
            None
        };
        publish_counted(self.hub, frame, meta, &mut self.frames)
    }
}

/// Publishes a pushed JPEG part with its metadata, counting it in `frames`.
fn publish_counted(
    hub: &IngestHub,
    part: Part,
    meta: Option<bytes::Bytes>,
    frames: &mut u64,
) -> Result<(), ApiError> {
    *frames += 1;
    publish(
        hub,
        part.body.clone(),
        &part,
        meta,
        &format!("part {frames}"),
    )
}

/// `meta` if it is JSON within `limit` bytes, else a 400 saying why (and how to raise the limit).
fn check_meta(meta: &[u8], limit: usize) -> Result<bytes::Bytes, ApiError> {
    Pipeline::check_meta(meta, limit).map_err(|e| match e {
        BadMeta::TooLarge { .. } => ApiError::BadMeta(format!("{e} (push?max_meta=N)")),
        BadMeta::NotJson(_) => ApiError::BadMeta(e.to_string()),
    })
}

/// Publishes `jpeg` with what `described` (its part, or the request) says: capture time and
/// stages; the relay's receipt is added as the last stage.
fn publish(
    hub: &IngestHub,
    jpeg: bytes::Bytes,
    described: &Part,
    meta: Option<bytes::Bytes>,
    what: &str,
) -> Result<(), ApiError> {
    if !jpeg::looks_like_jpeg(&jpeg) {
        return Err(ApiError::NotJpeg(format!(
            "{what} is not a JPEG (it does not start with FF D8 FF); push JPEG frames, one per request or as a multipart stream"
        )));
    }
    let (width, height) = jpeg::dimensions(&jpeg).unwrap_or((0, 0));
    // The pusher's capture time when it sends one, so latency is measured from the camera.
    let captured = described.timestamp_micros();
    hub.publish(SourceFrame {
        jpeg,
        captured_micros: captured.unwrap_or_else(unix_micros_now),
        width,
        height,
        pipeline: Pipeline::received(described.stages(), meta),
    });
    Ok(())
}
