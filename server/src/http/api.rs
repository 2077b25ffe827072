//! The JSON routes: `/api/streams`, `/api/streams/NAME`, `/api/time`, and `/healthz`. Their
//! types are [`mjpeg_shared::api`], which the dashboard and tests read back.

use std::sync::Arc;

use mjpeg_shared::api::{Health, ServerTime, StreamInfo, StreamList};
use poem::web::{Data, Json, Path};
use poem::{handler, IntoResponse, Response};

use super::Site;
use crate::clock::unix_micros_now;

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
