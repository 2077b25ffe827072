//! `POST /streams/NAME/ingest`: frames pushed by another process into a `push` stream.
//!
//! Two ways to push, told apart by the request's `Content-Type`:
//! - one JPEG per request (`image/jpeg`, or anything not multipart);
//! - one long request whose body is a multipart stream of JPEGs (`multipart/x-mixed-replace;
//!   boundary=...`, what a Python generator passed to `requests.post` or ffmpeg's `mpjpeg` muxer
//!   sends), read part by part with the shared parser as it arrives.
//!
//! The push stream's token (as `Authorization: Bearer TOKEN` or `?token=TOKEN`) is checked
//! before this handler runs, by the same access check as every route ([`super::auth`]): missing
//! is 401, wrong 403. A body that stalls for 20 s is 408. A body that is not a JPEG is 415, one
//! over the stream's limit 413; the stream stays up either way. One pusher at a time per stream (409), unless the stream lets a newer one replace
//! the older.

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;
use mjpeg_shared::api::IngestResult;
use mjpeg_shared::multipart::{MultipartParser, ParseError, Part};
use mjpeg_shared::wire;
use poem::web::{Data, Json, Path};
use poem::{handler, Body, Request};

use super::error::ApiError;
use super::Site;
use crate::clock::unix_micros_now;
use crate::jpeg;
use crate::source::push::IngestHub;
use crate::source::SourceFrame;

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
    let content_type = req.content_type().unwrap_or_default().to_string();
    let pushed = async {
        if content_type.to_ascii_lowercase().starts_with("multipart/") {
            let parser = MultipartParser::from_content_type(&content_type)
                .map_err(|e| ApiError::BadBody(e.to_string()))?
                .with_max_part_size(hub.max_bytes);
            push_parts(body, parser, &hub).await
        } else {
            let captured = req
                .header(wire::HEADER_TIMESTAMP)
                .and_then(wire::parse_timestamp);
            push_one(body, captured, &hub).await.map(|()| 1)
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

/// A pusher that sends nothing for this long loses the stream (408), so a hung process cannot
/// hold it against its own restart forever.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// The next chunk of the body, or the idle timeout.
async fn next_chunk(
    chunks: &mut (impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin),
) -> Result<Option<bytes::Bytes>, ApiError> {
    match tokio::time::timeout(BODY_IDLE, chunks.next()).await {
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(ApiError::BadBody(e.to_string())),
        Ok(None) => Ok(None),
        Err(_) => Err(ApiError::BodyIdle {
            seconds: BODY_IDLE.as_secs(),
        }),
    }
}

/// A single JPEG body, read up to the stream's limit.
async fn push_one(body: Body, captured: Option<u64>, hub: &IngestHub) -> Result<(), ApiError> {
    let mut data = BytesMut::new();
    let mut chunks = Box::pin(body.into_bytes_stream());
    while let Some(chunk) = next_chunk(&mut chunks).await? {
        if data.len() + chunk.len() > hub.max_bytes {
            return Err(ApiError::TooLarge {
                size: data.len() + chunk.len(),
                limit: hub.max_bytes,
            });
        }
        data.extend_from_slice(&chunk);
    }
    publish(hub, data.freeze(), captured, "the body")
}

/// A multipart body: every complete part is published as it arrives. Returns the count.
async fn push_parts(
    body: Body,
    mut parser: MultipartParser,
    hub: &IngestHub,
) -> Result<u64, ApiError> {
    let mut frames = 0;
    let mut chunks = Box::pin(body.into_bytes_stream());
    while let Some(chunk) = next_chunk(&mut chunks).await? {
        parser.push(&chunk);
        loop {
            match parser.next_part() {
                Ok(Some(part)) => {
                    frames += 1;
                    publish_part(hub, part, frames)?;
                }
                Ok(None) => break,
                Err(ParseError::PartTooLarge { size, limit }) => {
                    return Err(ApiError::TooLarge { size, limit })
                }
                Err(err) => return Err(ApiError::BadBody(err.to_string())),
            }
        }
        if parser.is_finished() {
            break;
        }
    }
    Ok(frames)
}

fn publish_part(hub: &IngestHub, part: Part, n: u64) -> Result<(), ApiError> {
    // The pusher's capture time when it sends one, so latency is measured from the camera.
    let captured = part.timestamp_micros();
    publish(hub, part.body, captured, &format!("part {n}"))
}

fn publish(
    hub: &IngestHub,
    jpeg: bytes::Bytes,
    captured: Option<u64>,
    what: &str,
) -> Result<(), ApiError> {
    if !jpeg::looks_like_jpeg(&jpeg) {
        return Err(ApiError::NotJpeg(format!(
            "{what} is not a JPEG (it does not start with FF D8 FF); push JPEG frames, one per request or as a multipart stream"
        )));
    }
    let (width, height) = jpeg::dimensions(&jpeg).unwrap_or((0, 0));
    hub.publish(SourceFrame {
        jpeg,
        captured_micros: captured.unwrap_or_else(unix_micros_now),
        width,
        height,
    });
    Ok(())
}
