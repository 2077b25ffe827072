//! The HTTP surface: routes, query parsing, and the response headers streams need.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /streams/NAME.mjpg` | classic multipart for `<img>`; `?layout=strict`, `?fps=N` |
//! | `GET /streams/NAME.frames` | fetch-readable stream; `?fps=N` |
//! | `GET /streams/NAME.jpg` | latest frame |
//! | `POST /streams/NAME/ingest` | frames pushed into a `push` stream ([`ingest`]) |
//! | `GET /api/streams`, `/api/streams/NAME`, `/api/time` | JSON |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus / OpenMetrics text ([`metrics`]) |
//! | `GET /` | the dashboard from `dist/`, or a built-in page ([`page`]) |
//!
//! Credentials are checked for every route before it runs, ingest included ([`auth`]). CORS only
//! with `--allow-origin` ([`cors`]); a request from the relay's own origin is never treated as
//! cross-origin. Every error is an [`error::ApiError`], answered as JSON with its status.
//!
//! - [`streams`]: `.mjpg`, `.frames` and `.jpg`: query parsing, viewer admission, snapshots.
//! - [`api`]: the JSON routes and `/healthz`.
//! - [`ingest`]: frames pushed into a `push` stream.
//! - [`metrics`]: the Prometheus exposition at `/metrics`.
//! - [`auth`]: the one access check. [`error`]: errors and their statuses. [`page`]: the
//!   built-in page.
//!
//! Stream responses are never compressed (there is no compression middleware at all: an encoder
//! holds bytes back and turns a live stream into bursts), carry `Cache-Control: no-cache,
//! no-store` and `X-Accel-Buffering: no` (so nginx passes them through unbuffered).

pub mod api;
pub mod auth;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod page;
pub mod streams;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mjpeg_shared::wire;
use poem::endpoint::StaticFilesEndpoint;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::web::Json;
use poem::{get, EndpointExt, IntoResponse, Request, Route};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::auth::Access;
use self::error::ApiError;
use crate::fanout::stream::Stream;
use crate::fanout::{viewer_cap, Limits};

/// Everything the routes share: the streams and the settings that decide how they are served.
pub struct Site {
    /// Streams in the order they were configured.
    pub streams: Vec<Arc<Stream>>,
    by_name: HashMap<String, Arc<Stream>>,
    /// Fires once, when the relay shuts down; every endless response watches it.
    pub shutdown: CancellationToken,
    /// Folder of the built dashboard.
    pub dashboard: PathBuf,
    pub limits: Limits,
    /// Admission over all streams (`--max-viewers`): a viewer holds a permit while connected.
    pub viewer_permits: Option<Arc<Semaphore>>,
    /// Origins allowed to read from script (`--allow-origin`); empty: same origin only.
    pub allow_origins: Vec<String>,
    /// Credentials each route needs.
    pub access: Access,
}

impl Site {
    pub fn new(
        streams: Vec<Arc<Stream>>,
        shutdown: CancellationToken,
        dashboard: PathBuf,
        limits: Limits,
        allow_origins: Vec<String>,
        access: Access,
    ) -> Site {
        Site {
            by_name: streams
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            streams,
            shutdown,
            dashboard,
            viewer_permits: limits.max_viewers.map(viewer_cap),
            limits,
            allow_origins,
            access,
        }
    }

    /// The stream called `name`, or the 404 that names the ones there are.
    pub fn stream(&self, name: &str) -> Result<Arc<Stream>, ApiError> {
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::UnknownStream {
                name: name.to_string(),
                available: self.streams.iter().map(|s| s.name.clone()).collect(),
            })
    }
}

/// The whole route tree.
pub fn routes(site: Arc<Site>) -> impl poem::Endpoint {
    let mut route = Route::new()
        .at("/streams/:file", get(streams::stream_endpoint))
        .at("/streams/:name/ingest", poem::post(ingest::ingest))
        .at("/api/streams", get(api::list_streams))
        .at("/api/streams/:name", get(api::stream_info))
        .at("/api/time", get(api::server_time))
        .at("/healthz", get(api::healthz))
        .at("/metrics", get(metrics::metrics));
    if site.dashboard.join("index.html").is_file() {
        route = route.nest(
            "/",
            StaticFilesEndpoint::new(&site.dashboard).index_file("index.html"),
        );
    } else {
        route = route.at("/", get(page::builtin_page));
    }
    let cors = cors(&site.allow_origins);
    let guarded = site.clone();
    // Every error answers JSON: ours already do; poem's own (no such route, wrong method, a
    // static file missing, a refused origin) are re-dressed with their status kept.
    route
        // Credentials are checked before routing, in one place for every route (auth);
        // inside the CORS layer, so preflights need none and refusals still carry CORS headers.
        .before(move |req: Request| {
            let site = guarded.clone();
            async move {
                let authorization = req
                    .headers()
                    .get(poem::http::header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap_or("\u{fffd}"));
                site.access
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
        .data(site)
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
