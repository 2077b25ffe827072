//! Assembling and running a relay: every stream's source opened and its driver started, the
//! site the routes serve built around them, and [`run`] serving it on a listener until the
//! shutdown token fires.
//!
//! [`Relay::start`] takes parsed specs and [`RelayOptions`], not the command line: the binary
//! ([`crate::cli`]) and the tests (fake cameras, port 0) start relays the same way.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fanout::stream::Stream;
use crate::fanout::Limits;
use crate::http::auth::{Access, AccessConfig, IngestToken};
use crate::http::dashboard::Dashboard;
use crate::http::{Site, SiteOptions};
use crate::net::conn::ServeOptions;
use crate::net::descriptors;
use crate::source::camera::device::CameraBackend;
use crate::source::camera::nokhwa::NokhwaBackend;
use crate::source::spec::{SourceSpec, StreamSpec};
use crate::source::SourceContext;

/// How long graceful shutdown waits for connections after every stream has ended.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// A started relay: its site (streams and everything the routes share) and how it is served.
pub struct Relay {
    pub site: Arc<Site>,
    /// Fires once, when the relay shuts down; every endless stream watches it.
    pub shutdown: CancellationToken,
    /// Serve HTTPS (and HTTP/2) with this.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open at once; more are refused at once.
    pub max_connections: usize,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("stream {name:?} is configured twice")]
    DuplicateStream { name: String },
    #[error("{0}")]
    Access(String),
    #[error("stream {name:?} ({spec}): {reason}")]
    Source {
        name: String,
        spec: String,
        reason: String,
    },
}

/// How to start a relay, besides its streams.
#[derive(Clone)]
pub struct RelayOptions {
    /// Where `/` comes from.
    pub dashboard: Dashboard,
    /// Where cameras come from: the real devices, or a fake in tests.
    pub cameras: Arc<dyn CameraBackend>,
    /// Fail at startup when a camera does not open, instead of showing NO SIGNAL.
    pub require_camera: bool,
    /// Caps on viewers.
    pub limits: Limits,
    /// Origins allowed by CORS (`*` for any).
    pub allow_origins: Vec<String>,
    /// Who may watch, push, read the API and scrape metrics; default: everyone but pushers.
    pub access: AccessConfig,
    /// HTTPS with HTTP/2 ([`crate::net::tls::server_config`]); default: plain HTTP/1.1.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `--max-connections`; default: from the descriptor limit in force when the relay starts
    /// ([`descriptors::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// `--allow-host` names ([`crate::http::guard`]).
    pub allow_hosts: Vec<String>,
    /// CSP `frame-ancestors` for the dashboard and the API.
    pub frame_ancestors: String,
}

/// Who may frame the dashboard when `--frame-ancestors` is not given.
pub const DEFAULT_FRAME_ANCESTORS: &str = "'self'";

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            dashboard: Dashboard::choose(None),
            cameras: Arc::new(NokhwaBackend),
            require_camera: false,
            limits: Limits::default(),
            allow_origins: Vec::new(),
            access: AccessConfig::default(),
            tls: None,
            max_connections: None,
            allow_hosts: Vec::new(),
            frame_ancestors: DEFAULT_FRAME_ANCESTORS.into(),
        }
    }
}

impl Relay {
    /// Opens every stream's source and starts its driver. Must run inside a tokio runtime.
    pub fn start(
        specs: &[StreamSpec],
        options: RelayOptions,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StartError> {
        let ctx = SourceContext {
            cameras: options.cameras.clone(),
            require_camera: options.require_camera,
        };
        let mut push_streams = Vec::new();
        let mut viewers_token_pushes = false;
        for spec in specs {
            if let SourceSpec::Push(push) = &spec.source {
                let token = options
                    .access
                    .ingest_token(push.token.as_ref())
                    .ok_or_else(|| StartError::Source {
                        name: spec.name.clone(),
                        spec: spec.source.to_string(),
                        reason: "pushed frames need a token: --ingest-token TOKEN, or \
                                 push?token=TOKEN for this stream"
                            .into(),
                    })?;
                viewers_token_pushes |= matches!(token, IngestToken::Viewers(_));
                push_streams.push((spec.name.clone(), token.secret().clone()));
            }
        }
        if viewers_token_pushes {
            tracing::warn!(
                "push streams without a token of their own take the viewers' --auth-token for \
                 ingest: anyone who can read a page with a ?token= <img> can push frames; set \
                 --ingest-token to keep pushing separate"
            );
        }
        let access = Access::new(&options.access, push_streams).map_err(StartError::Access)?;
        let mut streams: Vec<Arc<Stream>> = Vec::new();
        for spec in specs {
            if streams.iter().any(|s| s.name == spec.name) {
                return Err(StartError::DuplicateStream {
                    name: spec.name.clone(),
                });
            }
            let opened = spec
                .source
                .open(&spec.name, &ctx)
                .map_err(|e| StartError::Source {
                    name: spec.name.clone(),
                    spec: spec.source.to_string(),
                    reason: e.to_string(),
                })?;
            streams.push(Stream::spawn(
                spec.name.clone(),
                spec.source.to_string(),
                opened,
                options.limits.max_viewers_per_stream,
                options
                    .limits
                    .max_renditions
                    .unwrap_or(crate::fanout::DEFAULT_MAX_RENDITIONS),
                shutdown.clone(),
            ));
        }
        let site = Site::new(
            streams,
            shutdown.clone(),
            SiteOptions {
                dashboard: options.dashboard,
                limits: options.limits,
                allow_origins: options.allow_origins,
                allow_hosts: options.allow_hosts,
                frame_ancestors: options.frame_ancestors,
            },
            access,
        );
        let max_connections = options.max_connections.unwrap_or_else(|| {
            descriptors::soft_limit()
                .map(descriptors::default_max_connections)
                .unwrap_or(1024)
        });
        Ok(Arc::new(Relay {
            site: Arc::new(site),
            shutdown,
            tls: options.tls,
            max_connections,
        }))
    }
}

/// Serves `relay` on `listener` until `relay.shutdown` fires; returns once connections are closed
/// (streams end at once on shutdown; stragglers get [`SHUTDOWN_GRACE`]).
pub async fn run(listener: TcpListener, relay: Arc<Relay>) -> std::io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let routes = crate::http::routes(relay.site.clone(), loopback);
    let options = ServeOptions {
        tls: relay.tls.clone(),
        max_connections: relay.max_connections,
        grace: SHUTDOWN_GRACE,
    };
    crate::net::conn::serve(listener, routes, options, relay.shutdown.clone()).await
}
