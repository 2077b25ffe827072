//! The `mjpeg-relay` command: parse the command line and the config file, run a subcommand
//! (`cameras`, `hash-password`, `sign`) or start the relay, log, and serve until Ctrl-C or
//! SIGTERM (the one shutdown signal every endless stream watches).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mjpeg_shared::api::Endpoints;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Cli, Command, Settings};
use crate::http::dashboard::Dashboard;
use crate::net::{descriptors, tls};
use crate::relay::{run, Relay, RelayOptions};
use crate::source::camera::device::{CameraBackend, CameraError};
use crate::source::camera::nokhwa::NokhwaBackend;

/// The `mjpeg-relay` command: parse, start, serve until Ctrl-C or SIGTERM.
pub fn main() -> ExitCode {
    // clap exits with code 2 and names the bad argument.
    let cli = Cli::parse();
    if let Some(ms) = cli.clock_shift_ms {
        crate::clock::shift_by_micros(ms.saturating_mul(1000));
    }
    match cli.command {
        Some(Command::Cameras) => {
            init_tracing(cli.log.as_deref().unwrap_or("warn"));
            return list_cameras(&NokhwaBackend);
        }
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::Sign { .. }) | None => {}
    }
    // A config file that does not hold is an argument error too: exit code 2, like clap's.
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("mjpeg-relay: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Sign { stream, ttl, fps }) = &cli.command {
        return sign(&settings, stream, *ttl, *fps);
    }
    init_tracing(&settings.log);
    // Each viewer is a descriptor: take all the process may have (module docs of descriptors).
    match descriptors::raise_limit() {
        Ok(r) => tracing::info!(
            before = r.before,
            now = r.after,
            "open file limit (RLIMIT_NOFILE) raised to its maximum"
        ),
        Err(err) => tracing::warn!(%err, "cannot raise the open file limit"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mjpeg-relay: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let dashboard = Dashboard::choose(settings.dashboard.clone());
        tracing::info!("{}", dashboard.describe());
        let options = RelayOptions {
            dashboard,
            max_connections: settings.max_connections,
            allow_hosts: settings.allow_hosts.clone(),
            frame_ancestors: settings.frame_ancestors.clone(),
            require_camera: settings.require_camera,
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
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let scheme = if relay.tls.is_some() { "https" } else { "http" };
        tracing::info!(
            max_connections = relay.max_connections,
            "connections beyond this are refused (--max-connections)"
        );
        // Scripts and tests read this line to find the port (with --listen ...:0).
        println!("mjpeg-relay listening on {scheme}://{addr}/");
        if !settings.listen.ip().is_loopback() && !settings.access.protects_viewers() {
            tracing::warn!(
                "listening on {addr}, beyond this machine, and anyone who can reach it can watch \
                 the streams (all but those with their own auth_token) and read the API: set \
                 --auth-token (or --basic-user/--basic-password), or listen on 127.0.0.1 behind \
                 a proxy that checks access"
            );
        }
        for s in &relay.site.streams {
            let url = Endpoints::for_stream(&s.name).classic;
            tracing::info!(stream = %s.name, source = %s.spec, "{scheme}://{addr}{url}");
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

/// `mjpeg-relay sign`: the query string that opens `stream` for `ttl`.
fn sign(settings: &Settings, stream: &str, ttl: Duration, fps: Option<u32>) -> ExitCode {
    use crate::signed::{Grant, SigningKey};
    let Some(key) = settings.access.signing_key.clone() else {
        eprintln!(
            "mjpeg-relay: sign needs the relay's signing key: --signing-key KEY, \
             MJPEG_RELAY_SIGNING_KEY, or signing_key in --config"
        );
        return ExitCode::from(2);
    };
    let key = match SigningKey::new(key) {
        Ok(key) => key,
        Err(err) => {
            eprintln!("mjpeg-relay: {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = crate::source::spec::validate_name(stream) {
        eprintln!("mjpeg-relay: --stream: {err}");
        return ExitCode::from(2);
    }
    let now = crate::clock::unix_micros_now() / 1_000_000;
    let max_fps = crate::http::streams::MAX_VIEWER_FPS as u32;
    let grant = match Grant::new(stream, ttl.as_secs(), fps, now, max_fps) {
        Ok(grant) => grant,
        Err(err) => {
            eprintln!("mjpeg-relay: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{}", key.sign(&grant));
    ExitCode::SUCCESS
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
    match crate::http::auth::hash_password(password) {
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
    // Colours only on a terminal: a journal or a log file would keep the escape codes.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
