//! The HTTP surface: routes, query parsing, and the response headers streams need.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /streams/NAME.mjpg` | classic multipart for `<img>`; `?layout=strict`, `?fps=N` |
//! | `GET /streams/NAME.frames` | fetch-readable stream; `?fps=N` |
//! | `GET /streams/NAME.jpg` | latest frame |
//! | `POST /streams/NAME/ingest` | frames pushed into a `push` stream ([`ingest`]) |
//! | `GET /api/streams`, `/api/streams/NAME`, `/api/time` | JSON |
//! | `GET /api/streams/NAME/meta` | the newest metadata a frame carried ([`api::stream_meta`]) |
//! | `POST /api/streams/NAME/report` | a dashboard viewer's figures ([`api::report`]) |
//! | `POST /api/sign` | a signed embed URL for one stream ([`api::sign`]) |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus / OpenMetrics text ([`metrics`]) |
//! | `GET /` | the dashboard ([`dashboard`]: `--dashboard DIR`, built in, or a small page) |
//!
//! Before anything else a request's `Host` is checked ([`guard`]); then its credentials, for every
//! route, ingest included ([`auth`]), with failures counted per address ([`failures`]). Every
//! response carries the security headers ([`guard::secure`]). CORS only
//! with `--allow-origin` ([`cors`]); a request from the relay's own origin is never treated as
//! cross-origin. Every error is an [`error::ApiError`], answered as JSON with its status.
//!
//! - [`streams`]: `.mjpg`, `.frames` and `.jpg`: query parsing, viewer admission, snapshots.
//! - [`api`]: the JSON routes and `/healthz`.
//! - [`ingest`]: frames pushed into a `push` stream. [`body`]: request bodies, a chunk within a
//!   wait or read whole, capped.
//! - [`metrics`]: the Prometheus exposition at `/metrics`.
//! - [`auth`]: the one access check. [`failures`]: wrong credentials counted per address.
//!   [`guard`]: allowed hosts and security headers. [`error`]: errors and their statuses.
//! - [`dashboard`]: where `/` comes from. [`page`]: the built-in page.
//!
//! Stream responses are never compressed (there is no compression middleware at all: an encoder
//! holds bytes back and turns a live stream into bursts), carry `Cache-Control: no-cache,
//! no-store` and `X-Accel-Buffering: no` (so nginx passes them through unbuffered).

pub mod api;
pub mod auth;
pub mod body;
pub mod dashboard;
pub mod error;
pub mod failures;
pub mod guard;
pub mod ingest;
pub mod metrics;
pub mod page;
pub mod streams;

use std::collections::HashMap;
use std::sync::Arc;

use mjpeg_shared::wire;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::web::Json;
use poem::{get, EndpointExt, IntoResponse, Request, Response, Route};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use self::auth::{Access, Asked};
use self::dashboard::Dashboard;
use self::error::ApiError;
use self::guard::Hosts;
use crate::fanout::stream::Stream;
use crate::fanout::{viewer_cap, Limits};

/// Everything the routes share: the streams and the settings that decide how they are served.
pub struct Site {
    /// Streams in the order they were configured.
    pub streams: Vec<Arc<Stream>>,
    by_name: HashMap<String, Arc<Stream>>,
    /// Fires once, when the relay shuts down; every endless response watches it.
    pub shutdown: CancellationToken,
    /// Where `/` comes from.
    pub dashboard: Dashboard,
    pub limits: Limits,
    /// Admission over all streams (`--max-viewers`): a viewer holds a permit while connected.
    pub viewer_permits: Option<Arc<Semaphore>>,
    /// Origins allowed to read from script (`--allow-origin`); empty: same origin only.
    pub allow_origins: Vec<String>,
    /// Credentials each route needs.
    pub access: Access,
    /// `--allow-host` names.
    pub allow_hosts: Vec<String>,
    /// CSP `frame-ancestors` (`--frame-ancestors`).
    pub frame_ancestors: String,
}

/// How the site serves, besides its streams and access.
#[derive(Clone, Debug)]
pub struct SiteOptions {
    pub dashboard: Dashboard,
    pub limits: Limits,
    pub allow_origins: Vec<String>,
    pub allow_hosts: Vec<String>,
    pub frame_ancestors: String,
}

impl Site {
    pub fn new(
        streams: Vec<Arc<Stream>>,
        shutdown: CancellationToken,
        options: SiteOptions,
        access: Access,
    ) -> Site {
        Site {
            by_name: streams
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            streams,
            shutdown,
            dashboard: options.dashboard,
            viewer_permits: options.limits.max_viewers.map(viewer_cap),
            limits: options.limits,
            allow_origins: options.allow_origins,
            access,
            allow_hosts: options.allow_hosts,
            frame_ancestors: options.frame_ancestors,
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

/// The whole route tree, for a relay bound to a loopback address or not (which decides the
/// hosts it answers to, [`guard`]).
pub fn routes(site: Arc<Site>, loopback: bool) -> impl poem::Endpoint {
    let mut route = Route::new()
        .at("/streams/:file", get(streams::stream_endpoint))
        .at("/streams/:name/ingest", poem::post(ingest::ingest))
        .at("/api/streams", get(api::list_streams))
        .at("/api/streams/:name", get(api::stream_info))
        .at("/api/streams/:name/meta", get(api::stream_meta))
        .at("/api/streams/:name/report", poem::post(api::report))
        .at("/api/time", get(api::server_time))
        .at("/api/sign", poem::post(api::sign))
        .at("/healthz", get(api::healthz))
        .at("/metrics", get(metrics::metrics));
    for path in dashboard::PAGES {
        if let Some(page) = site.dashboard.page_endpoint() {
            route = route.at(*path, get(page));
        }
    }
    route = match site.dashboard.endpoint() {
        Some(dashboard) => route.nest("/", dashboard),
        None => route.at("/", get(page::builtin_page)),
    };
    let cors = cors(&site.allow_origins);
    let guarded = site.clone();
    let hosts = Hosts::new(loopback, &site.allow_hosts);
    let secured = site.clone();
    // Every error answers JSON: ours already do; poem's own (no such route, wrong method, a
    // static file missing, a refused origin) are re-dressed with their status kept.
    route
        // Credentials are checked before routing, in one place for every route (auth);
        // inside the CORS layer, so preflights need none and refusals still carry CORS headers.
        .before(move |req: Request| {
            let site = guarded.clone();
            async move {
                let header = |name| {
                    req.headers()
                        .get(name)
                        .map(|v: &poem::http::HeaderValue| v.to_str().unwrap_or("\u{fffd}"))
                };
                let client = req
                    .remote_addr()
                    .as_socket_addr()
                    .map(|peer| site.access.client(peer.ip(), header("x-real-ip")));
                site.access
                    .check(&Asked {
                        path: req.uri().path(),
                        authorization: header("authorization"),
                        query: req.uri().query(),
                        client,
                    })
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
        // First of all: a request for a host this relay is not is refused before it is read.
        .before(move |mut req: Request| {
            guard::whole_pages(&mut req);
            let checked = hosts.check(&req).map(|()| req);
            async move { Ok(checked?) }
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
        // Outermost, so errors and refusals carry the headers too.
        .map(move |resp: Response| {
            let site = secured.clone();
            async move { guard::secure(resp, &site.frame_ancestors).await }
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
