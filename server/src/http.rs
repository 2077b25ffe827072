//! The HTTP surface: routes, query parsing, and the response headers streams need.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /streams/NAME.mjpg` | classic multipart for `<img>`; `?layout=strict`, `?fps=N` |
//! | `GET /streams/NAME.frames` | fetch-readable stream; `?fps=N` |
//! | `GET /streams/NAME.jpg` | latest frame |
//! | `POST /streams/NAME/ingest` | frames pushed into a `push` stream ([`crate::ingest`]) |
//! | `GET /api/streams`, `/api/streams/NAME`, `/api/time` | JSON |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus / OpenMetrics text ([`crate::metrics`]) |
//! | `GET /` | the dashboard from `dist/`, or a built-in page |
//!
//! Credentials are checked for every route before it runs ([`crate::auth`]). CORS only with
//! `--allow-origin` ([`cors`]); a request from the relay's own origin is never treated as
//! cross-origin.
//!
//! Stream responses are never compressed (there is no compression middleware at all: an encoder
//! holds bytes back and turns a live stream into bursts), carry `Cache-Control: no-cache,
//! no-store` and `X-Accel-Buffering: no` (so nginx passes them through unbuffered).

use std::sync::Arc;
use std::time::Duration;

use mjpeg_shared::api::{Health, ServerTime, StreamList};
use mjpeg_shared::wire::{self, Layout};
use poem::endpoint::StaticFilesEndpoint;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::web::{Data, Html, Json, Path};
use poem::{get, handler, Body, EndpointExt, IntoResponse, Request, Response, Route};

use crate::config::parse_fps;
use crate::conn::ConnState;
use crate::error::ApiError;
use crate::frame::unix_micros_now;
use crate::page::builtin_index;
use crate::viewer::{self, ViewerOptions};
use crate::Relay;

/// A viewer may ask for any rate up to this; above the source's rate it changes nothing.
const MAX_VIEWER_FPS: f64 = 1000.0;
/// How long a snapshot of an idle stream waits for its source to produce a frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole route tree.
pub fn routes(relay: Arc<Relay>) -> impl poem::Endpoint {
    let mut route = Route::new()
        .at("/streams/:file", get(stream_endpoint))
        .at("/streams/:name/ingest", poem::post(crate::ingest::ingest))
        .at("/api/streams", get(list_streams))
        .at("/api/streams/:name", get(stream_info))
        .at("/api/time", get(server_time))
        .at("/healthz", get(healthz))
        .at("/metrics", get(metrics));
    if relay.dashboard.join("index.html").is_file() {
        route = route.nest(
            "/",
            StaticFilesEndpoint::new(&relay.dashboard).index_file("index.html"),
        );
    } else {
        route = route.at("/", get(builtin_page));
    }
    let cors = cors(&relay.allow_origins);
    let guarded = relay.clone();
    // Every error answers JSON: ours already do; poem's own (no such route, wrong method, a
    // static file missing, a refused origin) are re-dressed with their status kept.
    route
        // Credentials are checked before routing, in one place for every route (crate::auth);
        // inside the CORS layer, so preflights need none and refusals still carry CORS headers.
        .before(move |req: Request| {
            let relay = guarded.clone();
            async move {
                let authorization = req
                    .headers()
                    .get(poem::http::header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap_or("\u{fffd}"));
                relay
                    .access
                    .check(req.uri().path(), authorization, req.uri().query())
                    .await?;
                Ok(req)
            }
        })
        .with_if(cors.is_some(), cors.unwrap_or_default())
        // A same-origin request that carries Origin (a browser's POST from the relay's own page)
        // is not a CORS request: drop the header so the CORS layer lets it through as one.
        .before(|mut req: Request| async move {
            if is_same_origin(&req) {
                req.headers_mut().remove(poem::http::header::ORIGIN);
            }
            Ok(req)
        })
        .data(relay)
        .catch_all_error(|err: poem::Error| async move {
            if let Some(api) = err.downcast_ref::<ApiError>() {
                return api.as_response();
            }
            match err.status() {
                StatusCode::NOT_FOUND => ApiError::NotFound.as_response(),
                StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed.as_response(),
                status => Json(mjpeg_shared::api::ErrorBody {
                    error: err.to_string(),
                })
                .with_status(status)
                .into_response(),
            }
        })
}

/// CORS for `--allow-origin`: the listed origins (or any, for `*`) may read streams, snapshots
/// and the API from script, and push. None listed: no CORS layer at all, so only same-origin
/// pages can read them (any page can still show a stream in an `<img>`, which needs no CORS).
fn cors(origins: &[String]) -> Option<poem::middleware::Cors> {
    if origins.is_empty() {
        return None;
    }
    let cors = poem::middleware::Cors::new()
        .allow_methods([
            poem::http::Method::GET,
            poem::http::Method::HEAD,
            poem::http::Method::POST,
        ])
        .allow_headers(["authorization", "content-type"])
        .expose_headers([wire::HEADER_STREAM])
        .max_age(600);
    // poem's Cors allows every origin when none is listed.
    Some(if origins.iter().any(|o| o == "*") {
        cors
    } else {
        cors.allow_origins(origins.iter().map(String::as_str))
    })
}

/// True when the request's `Origin` is this relay itself, as the browser reached it: the same
/// scheme and the same host (`Host`, or HTTP/2's `:authority`).
fn is_same_origin(req: &Request) -> bool {
    let origin = req
        .headers()
        .get(poem::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .strip_prefix(req.scheme().as_str())
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// The query's pairs, percent-decoded. A bare word (`?1700000000`, the cache buster many pages
/// append) becomes a key with an empty value, which nothing here looks at.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[handler]
async fn stream_endpoint(
    req: &Request,
    Path(file): Path<String>,
    relay: Data<&Arc<Relay>>,
) -> poem::Result<Response> {
    let (name, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| ApiError::BadStreamPath {
            path: req.uri().path().to_string(),
        })?;
    let bad_path = || ApiError::BadStreamPath {
        path: req.uri().path().to_string(),
    };
    let layout = match ext {
        "mjpg" | "mjpeg" => Some(Layout::Advance),
        "frames" => Some(Layout::Frames),
        "jpg" | "jpeg" => None,
        _ => return Err(bad_path().into()),
    };
    let stream = relay.stream(name)?;
    let params = query_pairs(req);
    match layout {
        Some(layout) => serve_stream(req, &relay, stream, layout, &params),
        None => snapshot(&relay, stream, &params).await,
    }
}

fn serve_stream(
    req: &Request,
    relay: &Relay,
    stream: Arc<crate::stream::Stream>,
    default_layout: Layout,
    params: &[(String, String)],
) -> poem::Result<Response> {
    let mut opts = ViewerOptions {
        layout: default_layout,
        max_fps: None,
    };
    for (key, value) in params {
        match key.as_str() {
            "fps" => opts.max_fps = Some(parse_fps(value, MAX_VIEWER_FPS).map_err(ApiError::BadQuery)?),
            "layout" if default_layout == Layout::Frames => {
                return Err(ApiError::BadQuery(
                    "layout applies to .mjpg only; .frames parts always carry Content-Length, X-Sequence and X-Timestamp".into(),
                )
                .into())
            }
            "layout" => {
                opts.layout = match value.to_ascii_lowercase().as_str() {
                    "advance" => Layout::Advance,
                    "strict" => Layout::Strict,
                    other => {
                        return Err(ApiError::BadQuery(format!(
                            "layout {other:?} is not known; accepted: advance (default, for browsers), strict (Content-Length on every part)"
                        ))
                        .into())
                    }
                }
            }
            "size" => check_size(&stream, value)?,
            // Anything else (cache busters such as ?t=123 that legacy pages append) is ignored.
            _ => {}
        }
    }
    let peer = req.remote_addr().as_socket_addr().copied();
    let conn = req.extensions().get::<Arc<ConnState>>().cloned();
    let span = tracing::debug_span!(
        "viewer",
        stream = %stream.name,
        peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
        layout = ?opts.layout,
    );
    span.in_scope(|| tracing::debug!(fps = ?opts.max_fps, "viewer connected"));
    let admission = viewer::admit(relay, &stream)?;
    let name = stream.name.clone();
    let body = viewer::body(stream, opts, conn, relay.shutdown.clone(), span, admission);
    Ok(Response::builder()
        .content_type(opts.layout.content_type())
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("X-Accel-Buffering", "no")
        .header(wire::HEADER_STREAM, name)
        .body(Body::from_bytes_stream(body)))
}

/// `?size` is refused unless it names the stream's own size: the relay does not resize per viewer.
fn check_size(stream: &crate::stream::Stream, value: &str) -> Result<(), ApiError> {
    let (w, h) = crate::config::parse_size(value).map_err(ApiError::BadQuery)?;
    let info = stream.info();
    match (info.width, info.height) {
        (Some(sw), Some(sh)) if (sw, sh) == (w, h) => Ok(()),
        (Some(sw), Some(sh)) => Err(ApiError::BadQuery(format!(
            "size {w}x{h}: this stream is {sw}x{sh} and the relay does not resize per viewer; \
             set the source's size instead, e.g. --stream {}=test?size={w}x{h}",
            stream.name
        ))),
        _ => Err(ApiError::BadQuery(format!(
            "size {w}x{h}: the relay does not resize per viewer, and this stream's size is not known yet"
        ))),
    }
}

async fn snapshot(
    relay: &Relay,
    stream: Arc<crate::stream::Stream>,
    params: &[(String, String)],
) -> poem::Result<Response> {
    for (key, value) in params {
        if key == "size" {
            check_size(&stream, value)?;
        }
    }
    let frame = match stream.current() {
        // Someone is watching: the cached newest frame, answered at once.
        Some(frame) => frame,
        // Idle: wake the source for one fresh frame.
        None => {
            let (need, _request) = stream.request_frame();
            let mut rx = stream.subscribe();
            let wait = async {
                loop {
                    // Any frame numbered `need` or later was produced after this request, so
                    // it is fresh by construction (the driver may already count it stale, since
                    // the stream went idle again right after producing it).
                    if let Some(f) = rx.borrow_and_update().as_ref().filter(|f| f.seq >= need) {
                        return Some(f.clone());
                    }
                    rx.changed().await.ok()?;
                }
            };
            tokio::select! {
                r = tokio::time::timeout(SNAPSHOT_TIMEOUT, wait) => match r {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Err(ApiError::ShuttingDown.into()),
                    Err(_) => return Err(ApiError::NoFrame {
                        name: stream.name.clone(),
                        seconds: SNAPSHOT_TIMEOUT.as_secs(),
                        last_error: stream.info().last_error,
                    }.into()),
                },
                _ = relay.shutdown.cancelled() => return Err(ApiError::ShuttingDown.into()),
            }
        }
    };
    Ok(Response::builder()
        .content_type(wire::JPEG_CONTENT_TYPE)
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header(
            wire::HEADER_TIMESTAMP,
            wire::format_timestamp(frame.captured_micros),
        )
        .header(wire::HEADER_SEQUENCE, frame.seq)
        .header(wire::HEADER_STREAM, stream.name.clone())
        .body(frame.jpeg.clone()))
}

#[handler]
fn list_streams(relay: Data<&Arc<Relay>>) -> Json<StreamList> {
    Json(StreamList {
        streams: relay.streams.iter().map(|s| s.info()).collect(),
    })
}

#[handler]
fn stream_info(
    Path(name): Path<String>,
    relay: Data<&Arc<Relay>>,
) -> poem::Result<Json<mjpeg_shared::api::StreamInfo>> {
    Ok(Json(relay.stream(&name)?.info()))
}

#[handler]
fn server_time() -> Response {
    Json(ServerTime {
        unix_micros: unix_micros_now(),
    })
    .with_header("Cache-Control", "no-store")
    .into_response()
}

#[handler]
fn healthz(relay: Data<&Arc<Relay>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        streams: relay.streams.len() as u64,
    })
}

#[handler]
fn metrics(relay: Data<&Arc<Relay>>) -> Response {
    Response::builder()
        .content_type(crate::metrics::CONTENT_TYPE)
        .header("Cache-Control", "no-store")
        .body(crate::metrics::render(&relay.streams))
}

#[handler]
fn builtin_page(relay: Data<&Arc<Relay>>) -> Response {
    let names: Vec<String> = relay.streams.iter().map(|s| s.name.clone()).collect();
    Html(builtin_index(
        &names,
        &relay.dashboard.display().to_string(),
    ))
    .with_header("Cache-Control", "no-cache")
    .with_status(StatusCode::OK)
    .into_response()
}
