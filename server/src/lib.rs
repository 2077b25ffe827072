//! mjpeg-relay: capture once, fan out to every viewer.
//!
//! Crate map, in the order a frame travels:
//!
//! - [`config`]: the command line, the `--config` TOML file and `NAME=SOURCE` stream specs.
//! - [`source`]: the [`source::Source`] trait and the sources (test pattern, files, camera).
//! - [`jpeg`]: reading sizes from JPEG headers.
//! - [`frame`]: a published frame, its wire bytes built once per layout.
//! - [`stream`]: one named stream: newest frame, demand, the driver task, counters.
//! - [`viewer`]: one viewer's response body: latest frame when its connection can take one.
//! - [`conn`]: accepting and serving connections; flush tracking that keeps frames from piling up.
//! - [`tls`]: HTTPS and, over it, HTTP/2.
//! - [`http`]: routes and response headers. [`error`]: errors and their HTTP statuses.
//! - [`auth`]: who may watch, read the API and scrape metrics.
//! - [`ingest`]: `POST /streams/NAME/ingest`, frames pushed by other processes.
//! - [`metrics`]: `GET /metrics`, the streams' counters for Prometheus.
//! - [`page`]: the built-in page at `/` when no dashboard is built.
//!
//! [`run`] serves an already-bound listener until a shutdown token fires, which is what lets
//! tests start the real server on port 0.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod conn;
pub mod error;
pub mod frame;
pub mod http;
pub mod ingest;
pub mod jpeg;
pub mod metrics;
pub mod page;
pub mod source;
pub mod stream;
pub mod tls;
pub mod viewer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Cli, Command, StreamSpec};
use crate::error::ApiError;
use crate::source::camera::device::{CameraBackend, CameraError};
use crate::source::camera::nokhwa::NokhwaBackend;
use crate::source::SourceContext;
use crate::stream::Stream;

/// How long graceful shutdown waits for connections after every stream has ended.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// Everything the handlers share.
pub struct Relay {
    /// Streams in the order they were configured.
    pub streams: Vec<Arc<Stream>>,
    by_name: HashMap<String, Arc<Stream>>,
    /// Fires once, when the relay shuts down; every endless stream watches it.
    pub shutdown: CancellationToken,
    /// Folder of the built dashboard.
    pub dashboard: PathBuf,
    /// Admission over all streams (`--max-viewers`): a viewer holds a permit while connected.
    pub viewer_permits: Option<Arc<tokio::sync::Semaphore>>,
    pub limits: config::Limits,
    /// Origins allowed to read from script (`--allow-origin`); empty: same origin only.
    pub allow_origins: Vec<String>,
    /// Credentials each route needs.
    pub access: auth::Access,
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
    /// The ingest token for push streams without their own.
    pub ingest_token: Option<crate::source::push::Secret>,
    /// Caps on viewers.
    pub limits: config::Limits,
    /// Origins allowed by CORS (`*` for any).
    pub allow_origins: Vec<String>,
    /// Who may watch, read the API and scrape metrics; default: everyone.
    pub access: auth::AccessConfig,
    /// HTTPS with HTTP/2 ([`tls::server_config`]); default: plain HTTP/1.1.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            dashboard: PathBuf::from("dist"),
            cameras: Arc::new(NokhwaBackend),
            require_camera: false,
            ingest_token: None,
            limits: config::Limits::default(),
            allow_origins: Vec::new(),
            access: auth::AccessConfig::default(),
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
            // --auth-token guards ingest too, unless ingest has a token of its own.
            ingest_token: options
                .ingest_token
                .clone()
                .or_else(|| options.access.token.clone()),
        };
        let push_streams = specs
            .iter()
            .filter(|s| matches!(s.source, config::SourceSpec::Push(_)))
            .map(|s| s.name.clone())
            .collect();
        let access =
            auth::Access::new(&options.access, push_streams).map_err(StartError::Access)?;
        let dashboard = options.dashboard;
        let mut streams = Vec::new();
        let mut by_name = HashMap::new();
        for spec in specs {
            if by_name.contains_key(&spec.name) {
                return Err(StartError::DuplicateStream {
                    name: spec.name.clone(),
                });
            }
            let opened =
                source::open(&spec.name, &spec.source, &ctx).map_err(|e| StartError::Source {
                    name: spec.name.clone(),
                    spec: spec.source.to_string(),
                    reason: e.to_string(),
                })?;
            let stream = Stream::spawn(
                spec.name.clone(),
                spec.source.to_string(),
                opened,
                options.limits.max_viewers_per_stream,
                shutdown.clone(),
            );
            by_name.insert(spec.name.clone(), stream.clone());
            streams.push(stream);
        }
        Ok(Arc::new(Relay {
            streams,
            by_name,
            shutdown,
            dashboard,
            viewer_permits: options
                .limits
                .max_viewers
                .map(|n| Arc::new(tokio::sync::Semaphore::new(permits(n)))),
            limits: options.limits,
            allow_origins: options.allow_origins,
            access,
            tls: options.tls,
        }))
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

/// Semaphore permits for a viewer cap (tokio's semaphores hold at most `MAX_PERMITS`).
pub(crate) fn permits(n: u64) -> usize {
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(tokio::sync::Semaphore::MAX_PERMITS)
}

/// Serves `relay` on `listener` until `relay.shutdown` fires; returns once connections are closed
/// (streams end at once on shutdown; stragglers get [`SHUTDOWN_GRACE`]).
pub async fn run(listener: TcpListener, relay: Arc<Relay>) -> std::io::Result<()> {
    let shutdown = relay.shutdown.clone();
    let tls = relay.tls.clone();
    conn::serve(listener, http::routes(relay), tls, shutdown, SHUTDOWN_GRACE).await
}

/// The `mjpeg-relay` command: parse, start, serve until Ctrl-C or SIGTERM.
pub fn main_entry() -> ExitCode {
    // clap exits with code 2 and names the bad argument.
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Cameras) => {
            init_tracing(cli.log.as_deref().unwrap_or("warn"));
            return list_cameras(&NokhwaBackend);
        }
        Some(Command::HashPassword) => return hash_password(),
        None => {}
    }
    // A config file that does not hold is an argument error too: exit code 2, like clap's.
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("mjpeg-relay: {err}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mjpeg-relay: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let options = RelayOptions {
            dashboard: settings.dashboard.clone(),
            require_camera: settings.require_camera,
            ingest_token: settings.ingest_token.clone(),
            limits: settings.limits,
            allow_origins: settings.allow_origins.clone(),
            access: settings.access.clone(),
            tls: match &settings.tls {
                None => None,
                Some((cert, key)) => match tls::server_config(cert, key) {
                    Ok(config) => Some(config),
                    Err(err) => {
                        eprintln!("mjpeg-relay: {err}");
                        return ExitCode::FAILURE;
                    }
                },
            },
            ..RelayOptions::default()
        };
        let relay = match Relay::start(&settings.streams, options, shutdown.clone()) {
            Ok(relay) => relay,
            Err(err) => {
                eprintln!("mjpeg-relay: {err}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match TcpListener::bind(settings.listen).await {
            Ok(l) => l,
            Err(err) => {
                eprintln!("mjpeg-relay: cannot listen on {}: {err}", settings.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        // Scripts and tests read this line to find the port (with --listen ...:0).
        if settings.ingest_token.is_none()
            && settings.access.token.is_some()
            && settings.streams.iter().any(|s| {
                matches!(&s.source, config::SourceSpec::Push(o) if o.token.is_none())
            })
        {
            tracing::warn!(
                "push streams without a token of their own take the viewers' --auth-token for \
                 ingest: anyone who can read a page with a ?token= <img> can push frames; set \
                 --ingest-token to keep pushing separate"
            );
        }
        let scheme = if relay.tls.is_some() { "https" } else { "http" };
        println!("mjpeg-relay listening on {scheme}://{addr}/");
        if !settings.listen.ip().is_loopback() && !settings.access.protects_viewers() {
            tracing::warn!(
                "listening on {addr}, beyond this machine, and anyone who can reach it can watch \
                 the streams (all but those with their own auth_token) and read the API: set \
                 --auth-token (or --basic-user/--basic-password), or listen on 127.0.0.1 behind \
                 a proxy that checks access"
            );
        }
        for s in &relay.streams {
            tracing::info!(stream = %s.name, source = %s.spec, "{scheme}://{addr}/streams/{}.mjpg", s.name);
        }
        tokio::spawn(signal_shutdown(shutdown));
        match run(listener, relay).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("mjpeg-relay: {err}");
                ExitCode::FAILURE
            }
        }
    });
    // Blocking work still in flight (a frame being encoded, a file being read from a slow disk)
    // must not hold the exit back.
    runtime.shutdown_timeout(Duration::from_millis(300));
    code
}

/// `mjpeg-relay hash-password`: one line from standard input, hashed for the config file.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(err) = std::io::stdin().read_line(&mut line) {
        eprintln!("mjpeg-relay: cannot read the password: {err}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("mjpeg-relay: the password is empty; type it on standard input");
        return ExitCode::from(2);
    }
    match auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("mjpeg-relay: cannot hash the password: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `mjpeg-relay cameras`: every device with its modes; none is not an error.
fn list_cameras(backend: &dyn CameraBackend) -> ExitCode {
    match backend.list() {
        Ok(devices) if devices.is_empty() => {
            println!("No camera found.");
            ExitCode::SUCCESS
        }
        Ok(devices) => {
            for d in devices {
                let path = d
                    .path
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                println!("camera:{}  {}{}", d.index, d.name, path);
                if let Some(err) = &d.modes_error {
                    println!("    modes unknown: {err}");
                }
                for m in &d.modes {
                    println!("    {m}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(CameraError::NotFound(reason)) => {
            println!("No camera found ({reason}).");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("No camera found: {err}");
            ExitCode::SUCCESS
        }
    }
}

async fn signal_shutdown(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
