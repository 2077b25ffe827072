//! Assembling and running a relay: every stream's source opened and its driver started, the
//! site the routes serve built around them, and [`run`] serving it on a listener until the
//! shutdown token fires.
//!
//! [`Relay::start`] takes parsed specs and [`RelayOptions`], not the command line: the binary
//! ([`crate::cli`]) and the tests (fake cameras, port 0) start relays the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fanout::stream::Stream;
use crate::fanout::Limits;
use crate::http::auth::{Access, AccessConfig, IngestToken};
use crate::http::Site;
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
    /// Folder of the built dashboard.
    pub dashboard: PathBuf,
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
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            dashboard: PathBuf::from("dist"),
            cameras: Arc::new(NokhwaBackend),
            require_camera: false,
            limits: Limits::default(),
            allow_origins: Vec::new(),
            access: AccessConfig::default(),
            tls: None,
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
                shutdown.clone(),
            ));
        }
        let site = Site::new(
            streams,
            shutdown.clone(),
            options.dashboard,
            options.limits,
            options.allow_origins,
            access,
        );
        Ok(Arc::new(Relay {
            site: Arc::new(site),
            shutdown,
            tls: options.tls,
        }))
    }
}

/// Serves `relay` on `listener` until `relay.shutdown` fires; returns once connections are closed
/// (streams end at once on shutdown; stragglers get [`SHUTDOWN_GRACE`]).
pub async fn run(listener: TcpListener, relay: Arc<Relay>) -> std::io::Result<()> {
    let routes = crate::http::routes(relay.site.clone());
    crate::net::conn::serve(
        listener,
        routes,
        relay.tls.clone(),
        relay.shutdown.clone(),
        SHUTDOWN_GRACE,
    )
    .await
}
