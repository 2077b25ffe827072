//! The JSON routes: `/api/streams`, `/api/streams/NAME`, `/api/time`, `POST /api/sign`,
//! `POST /api/streams/NAME/report` (a viewer's figures, [`crate::fanout::reports`]), and
//! `/healthz`. Their types are [`mjpeg_shared::api`], which the dashboard and tests read back.

use std::sync::Arc;
use std::time::Duration;

use mjpeg_shared::api::{
    Health, ServerTime, SignRequest, SignedUrl, StreamInfo, StreamList, ViewerReport,
    REPORT_MAX_BYTES,
};
use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{handler, Body, IntoResponse, Response};

use super::body::{read_capped, Unread};
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
    let stream = site.stream(&name)?;
    Ok(Json(StreamInfo {
        viewer_reports: stream.reports.current(std::time::Instant::now()),
        ..stream.info()
    }))
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

/// How long a report's body may take to arrive.
const REPORT_BODY_WAIT: Duration = Duration::from_secs(5);

/// `POST /api/streams/NAME/report`: one viewer's figures (JSON [`ViewerReport`]). 204 when
/// taken; 400 saying what is wrong, 408 a body slower than [`REPORT_BODY_WAIT`], 413 over
/// [`REPORT_MAX_BYTES`], 415 not `application/json`, 429 (with `Retry-After`) too soon after
/// the same viewer's last; nothing is recorded from a refused one.
#[handler]
pub async fn report(
    Path(name): Path<String>,
    site: Data<&Arc<Site>>,
    req: &poem::Request,
    body: Body,
) -> poem::Result<StatusCode> {
    let stream = site.stream(&name)?;
    // Only JSON: a browser sends any other body (text/plain, a form) from any page without
    // asking the relay first (no CORS preflight), so another site could write viewers' figures.
    let json = req
        .content_type()
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::ReportNotJson.into());
    }
    // A report is small: one that trickles in is not waited for, however its chunks are spaced
    // (the whole body's wait ends first, so both ways out are the same 408).
    let read = read_capped(body, REPORT_MAX_BYTES, REPORT_BODY_WAIT);
    let data = match tokio::time::timeout(REPORT_BODY_WAIT, read).await {
        Ok(Ok(data)) => data,
        Ok(Err(Unread::Io(e))) => {
            return Err(ApiError::BadReport(format!("reading the body: {e}")).into())
        }
        Ok(Err(Unread::TooLarge { limit, .. })) => {
            return Err(ApiError::ReportTooLarge { limit }.into())
        }
        Ok(Err(Unread::Idle)) | Err(_) => {
            return Err(ApiError::BodySlow {
                seconds: REPORT_BODY_WAIT.as_secs(),
            }
            .into())
        }
    };
    let report: ViewerReport =
        serde_json::from_slice(&data).map_err(|e| ApiError::BadReport(e.to_string()))?;
    report.check().map_err(ApiError::BadReport)?;
    stream
        .reports
        .record(report, std::time::Instant::now())
        .map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT)
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
