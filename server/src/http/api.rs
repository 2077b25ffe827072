//! The JSON routes: `/api/streams`, `/api/streams/NAME`, `/api/time`, `POST /api/sign`, and
//! `/healthz`. Their types are [`mjpeg_shared::api`], which the dashboard and tests read back.

use std::sync::Arc;
use std::time::Duration;

use mjpeg_shared::api::{Health, ServerTime, SignRequest, SignedUrl, StreamInfo, StreamList};
use poem::web::{Data, Json, Path};
use poem::{handler, IntoResponse, Response};

use super::error::ApiError;
use super::Site;
use crate::clock::unix_micros_now;
use crate::signed::Grant;

#[handler]
pub fn list_streams(site: Data<&Arc<Site>>) -> Json<StreamList> {
    Json(StreamList {
        streams: site.streams.iter().map(|s| s.info()).collect(),
    })
}

#[handler]
pub fn stream_info(
    Path(name): Path<String>,
    site: Data<&Arc<Site>>,
) -> poem::Result<Json<StreamInfo>> {
    Ok(Json(site.stream(&name)?.info()))
}

/// `GET /api/streams/NAME/meta`: the newest metadata a frame of the stream carried, with that
/// frame's sequence number and capture time; 404 saying so when none has. An idle push stream
/// is woken for its newest frame first, as a snapshot wakes it (its waiting frame is then
/// delivered), so the answer is current whether or not anyone watches.
#[handler]
pub async fn stream_meta(
    Path(name): Path<String>,
    site: Data<&Arc<Site>>,
) -> poem::Result<Response> {
    let stream = site.stream(&name)?;
    // Only push streams carry metadata: others are not woken (a camera opened, an ffmpeg
    // started) to answer 404. A pushed frame waiting for a viewer comes within milliseconds;
    // none within a second (no pusher): the newest metadata there was still holds.
    if stream.ingest.is_some() {
        let _ = super::streams::newest_frame(&site, &stream, Duration::from_secs(1)).await;
    }
    let (sequence, captured_micros, meta) = stream
        .last_meta()
        .ok_or_else(|| ApiError::NoMeta { name: name.clone() })?;
    // The metadata goes out as it came (it was checked to be JSON when pushed): built around it
    // rather than parsed and printed again.
    let body = format!(
        "{{\"sequence\":{sequence},\"captured_micros\":{captured_micros},\"meta\":{}}}",
        String::from_utf8_lossy(&meta)
    );
    Ok(Response::builder()
        .content_type("application/json")
        .header("Cache-Control", "no-store")
        .body(body))
}

#[handler]
pub fn server_time() -> Response {
    Json(ServerTime {
        unix_micros: unix_micros_now(),
    })
    .with_header("Cache-Control", "no-store")
    .into_response()
}

#[handler]
pub fn healthz(site: Data<&Arc<Site>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        streams: site.streams.len() as u64,
    })
}

/// `POST /api/sign`: a signed URL for one stream, for whoever holds the relay's credentials (the
/// access check guards `/api/` like the rest of the API). The dashboard puts these in its
/// `<img>`s instead of its token.
#[handler]
pub fn sign(
    site: Data<&Arc<Site>>,
    body: poem::Result<Json<SignRequest>>,
) -> poem::Result<Json<SignedUrl>> {
    let Json(want) = body.map_err(|e| {
        ApiError::BadQuery(format!(
            "the body must be JSON {{\"stream\": NAME, \"ttl_seconds\": N, \"fps\": N (optional)}}: {e}"
        ))
    })?;
    let key = site.access.signing_key().ok_or_else(|| {
        ApiError::SigningUnavailable(
            "this relay signs no URLs: start it with --signing-key (or MJPEG_RELAY_SIGNING_KEY)"
                .into(),
        )
    })?;
    site.stream(&want.stream)?;
    let grant = Grant::new(
        &want.stream,
        want.ttl_seconds,
        want.fps,
        unix_micros_now() / 1_000_000,
        super::streams::MAX_VIEWER_FPS as u32,
    )
    .map_err(ApiError::BadQuery)?;
    Ok(Json(SignedUrl {
        query: key.sign(&grant),
        expires: grant.expires,
    }))
}
