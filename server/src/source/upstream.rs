//! `http://HOST[:PORT]/PATH` or `https://...`: an upstream MJPEG stream (an IP camera, or another relay's `.mjpg`
//! or `.frames`), fetched once however many viewers watch.
//!
//! A pump task holds the one upstream connection while someone watches (and for `linger` after
//! the last viewer leaves), parses it with the shared parser, and leaves the newest frame in a
//! one-slot channel. Upstream timestamps (`X-Timestamp`) are kept; without them the arrival time
//! is the capture time. While the upstream is down, refuses, answers non-2xx or sends garbage,
//! the stream shows NO SIGNAL naming the cause once a second and the pump reconnects with
//! backoff; viewers stay connected and get live frames again when the upstream returns.
//! Credentials in the URL (`http://user:pass@host/...`) are sent as Basic auth and appear
//! nowhere else: not in the API, not in logs, not on NO SIGNAL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mjpeg_shared::multipart::MultipartParser;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::camera::capture::render_no_signal;
use super::{SetupError, Source, SourceError, SourceFrame, SourceInfo};
use crate::frame::unix_micros_now;
use crate::jpeg;

/// How an upstream stream is set up (from `--stream NAME=http://...`).
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// The URL as given, credentials included.
    pub url: String,
    /// Keep the upstream connection this long after the last viewer leaves.
    pub linger: Duration,
    /// Largest part accepted; bigger ones are dropped and counted.
    pub max_part_bytes: usize,
    /// Extra certificate authority (PEM) to trust for `https://`, e.g. a camera's self-signed
    /// certificate; the public web roots are always trusted.
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for UpstreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOptions")
            .field("url", &redact(&self.url))
            .field("linger", &self.linger)
            .finish()
    }
}

/// The URL without its credentials, for everything that shows it.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// The parts of an `http://` or `https://` URL the pump needs.
#[derive(Clone)]
struct Target {
    authority: String,
    path: String,
    basic_auth: Option<String>,
    /// For https: the TLS client and the name the certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// A TLS client trusting the public web roots (bundled: no system store or network needed) and
/// the extra authority given, if any.
fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Anything the HTTP client can run over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn parse_target(url: &str, ca: Option<&std::path::Path>) -> Result<Target, String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(format!("{} is not an http:// or https:// URL", redact(url))),
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(format!("{} has no host", redact(url)));
    }
    // Userinfo is percent-encoded, not a form: `+` stays `+`, `&` is just a byte.
    let basic_auth = userinfo.map(|u| {
        use base64::Engine;
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(u).collect();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(decoded)
        )
    });
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    // Without a port, the scheme's; a bracketed IPv6 host keeps its brackets.
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(h, p)| p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')));
    let authority = if has_port {
        host.to_string()
    } else {
        format!("{host}:{}", if https { 443 } else { 80 })
    };
    let tls = if https {
        let name = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| format!("{}: bad host name for TLS: {e}", redact(url)))?;
        Some((tls_connector(ca)?, server_name))
    } else {
        None
    };
    Ok(Target {
        authority,
        path,
        basic_auth,
        tls,
    })
}

/// NO SIGNAL after this long without an upstream frame, then once a second.
const PATIENCE: Duration = Duration::from_secs(2);
const NO_SIGNAL_EVERY: Duration = Duration::from_secs(1);
/// An upstream that sends nothing for this long is treated as gone.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const NEVER: u64 = u64::MAX;

#[derive(Debug)]
struct Captured {
    jpeg: Bytes,
    captured_micros: u64,
    width: u32,
    height: u32,
}

#[derive(Default)]
struct Status {
    connected: bool,
    last_error: Option<String>,
    parts_dropped: u64,
}

struct Shared {
    status: Mutex<Status>,
    last_demand_ms: AtomicU64,
    epoch: Instant,
    demand: Notify,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    fn set_error(&self, err: String) {
        let mut status = self.status.lock().unwrap();
        status.last_error = Some(err);
        status.connected = false;
    }
}

pub struct UpstreamSource {
    name: String,
    display: String,
    shared: Arc<Shared>,
    frames: watch::Receiver<Option<Arc<Captured>>>,
    stop: CancellationToken,
    last_returned: Instant,
    showing_no_signal: bool,
    last_size: Option<(u32, u32)>,
    paused: bool,
}

impl UpstreamSource {
    pub fn new(name: &str, options: UpstreamOptions) -> Result<UpstreamSource, SetupError> {
        let target =
            parse_target(&options.url, options.ca.as_deref()).map_err(SetupError::Invalid)?;
        let shared = Arc::new(Shared {
            status: Mutex::default(),
            last_demand_ms: AtomicU64::new(NEVER),
            epoch: Instant::now(),
            demand: Notify::new(),
        });
        let (tx, rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let shown = redact(&options.url);
        let span = tracing::info_span!("upstream", url = %shown);
        tokio::spawn(pump(target, options, shared.clone(), tx, stop.clone()).instrument(span));
        Ok(UpstreamSource {
            name: name.to_string(),
            display: shown,
            shared,
            frames: rx,
            stop,
            last_returned: Instant::now(),
            showing_no_signal: false,
            last_size: None,
            paused: true,
        })
    }

    fn no_signal(&mut self) -> Result<SourceFrame, SourceError> {
        let reason = {
            let mut status = self.shared.status.lock().unwrap();
            match &status.last_error {
                Some(err) => err.clone(),
                None if status.connected => {
                    let err = format!(
                        "{} sent no frame for {} s",
                        self.display,
                        PATIENCE.as_secs()
                    );
                    status.last_error = Some(err.clone());
                    err
                }
                None => format!("connecting to {}", self.display),
            }
        };
        let (w, h) = self.last_size.unwrap_or((640, 480));
        let captured_micros = unix_micros_now();
        let jpeg = render_no_signal(&self.name, &reason, w as usize, h as usize, captured_micros)
            .map_err(|e| SourceError::Failed(format!("cannot draw NO SIGNAL: {e}")))?;
        Ok(SourceFrame {
            captured_micros,
            jpeg: Bytes::from(jpeg),
            width: w,
            height: h,
        })
    }
}

impl Drop for UpstreamSource {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait::async_trait]
impl Source for UpstreamSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        if std::mem::take(&mut self.paused) {
            self.last_returned = Instant::now();
            self.showing_no_signal = false;
            self.frames.borrow_and_update();
        }
        loop {
            self.shared
                .last_demand_ms
                .store(self.shared.now_ms(), Ordering::Release);
            self.shared.demand.notify_one();
            let patience = if self.showing_no_signal {
                NO_SIGNAL_EVERY
            } else {
                PATIENCE
            };
            let no_signal_at = self.last_returned + patience;
            let wake = no_signal_at.min(Instant::now() + Duration::from_millis(200));
            tokio::select! {
                changed = self.frames.changed() => {
                    changed.map_err(|_| SourceError::Failed("the upstream pump has ended".into()))?;
                    let Some(frame) = self.frames.borrow_and_update().clone() else { continue };
                    self.last_returned = Instant::now();
                    self.showing_no_signal = false;
                    // Only a plausible size is remembered for NO SIGNAL: the header of an untrusted
                    // upstream's JPEG may claim 65535x65535.
                    let (min, max) = (crate::config::MIN_SIZE, crate::config::MAX_SIZE);
                    self.last_size = Some((frame.width, frame.height))
                        .filter(|&(w, h)| (min.0..=max.0).contains(&w) && (min.1..=max.1).contains(&h));
                    return Ok(SourceFrame {
                        captured_micros: frame.captured_micros,
                        jpeg: frame.jpeg.clone(),
                        width: frame.width,
                        height: frame.height,
                    });
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    // The error (a refused connection, say) may have arrived meanwhile: say so
                    // as soon as the patience is up.
                    if Instant::now() < no_signal_at {
                        continue;
                    }
                    self.last_returned = Instant::now();
                    self.showing_no_signal = true;
                    return self.no_signal();
                }
            }
        }
    }

    fn pause(&mut self) {
        self.paused = true;
    }

    fn info(&self) -> SourceInfo {
        let status = self.shared.status.lock().unwrap();
        SourceInfo {
            kind: "upstream",
            fps: 0.0,
            width: self.last_size.map(|s| s.0),
            height: self.last_size.map(|s| s.1),
            device: Some(self.display.clone()),
            dropped_parts: Some(status.parts_dropped),
            last_error: status.last_error.clone(),
            ..Default::default()
        }
    }
}

/// The pump: one connection at a time, only while wanted.
async fn pump(
    target: Target,
    options: UpstreamOptions,
    shared: Arc<Shared>,
    tx: watch::Sender<Option<Arc<Captured>>>,
    stop: CancellationToken,
) {
    // The source refreshes its demand every 200 ms while it waits for frames; a second of grace
    // on top of `linger` keeps `linger=0` meaning "only while watched", not "never".
    let wanted = |shared: &Shared| {
        let last = shared.last_demand_ms.load(Ordering::Acquire);
        last != NEVER
            && shared.now_ms().saturating_sub(last) < options.linger.as_millis() as u64 + 1000
    };
    let mut backoff = BACKOFF_START;
    loop {
        while !wanted(&shared) {
            tokio::select! {
                _ = shared.demand.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => return,
            }
        }
        let result = tokio::select! {
            r = stream_once(&target, &options, &shared, &tx, &wanted) => r,
            _ = stop.cancelled() => return,
        };
        match result {
            // Nobody wanted it any more: disconnected on purpose.
            Ok(()) => {
                shared.status.lock().unwrap().connected = false;
                tracing::debug!("upstream released: nobody watching");
                backoff = BACKOFF_START;
            }
            Err((err, delivered)) => {
                tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "upstream unavailable");
                shared.set_error(err);
                if delivered {
                    backoff = BACKOFF_START;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection: returns Ok when nobody wants frames any more, Err(why, whether any frame was
/// delivered) when the upstream failed.
async fn stream_once(
    target: &Target,
    options: &UpstreamOptions,
    shared: &Shared,
    tx: &watch::Sender<Option<Arc<Captured>>>,
    wanted: &impl Fn(&Shared) -> bool,
) -> Result<(), (String, bool)> {
    let fail = |msg: String| (msg, false);
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{}{}", target.authority, target.path);
    let connect = async {
        let stream = tokio::net::TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = match &target.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS with {url} failed: {e}"))?,
            ),
            None => Box::new(stream),
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| format!("{url}: {e}"))?;
        tokio::spawn(conn);
        // The Host header leaves out the scheme's default port, as browsers do.
        let default_port = if target.tls.is_some() { ":443" } else { ":80" };
        let host = target
            .authority
            .strip_suffix(default_port)
            .unwrap_or(&target.authority);
        let mut req = hyper::Request::get(target.path.as_str()).header("Host", host);
        if let Some(auth) = &target.basic_auth {
            req = req.header("Authorization", auth);
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("{url}: {e}"))
    };
    let resp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| {
            fail(format!(
                "{url} did not answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(fail)?;
    if !resp.status().is_success() {
        return Err(fail(format!("{url} answered {}", resp.status())));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut parser = MultipartParser::from_content_type(&content_type)
        .map_err(|_| {
            fail(format!(
                "{url} is not an MJPEG stream (Content-Type {content_type:?})"
            ))
        })?
        .with_max_part_size(options.max_part_bytes);
    {
        let mut status = shared.status.lock().unwrap();
        status.connected = true;
        status.last_error = None;
    }
    tracing::info!("upstream connected");
    let mut body = resp.into_body();
    let mut delivered = false;
    loop {
        if !wanted(shared) {
            return Ok(());
        }
        let frame = match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err((
                    format!("{url} sent nothing for {} s", READ_TIMEOUT.as_secs()),
                    delivered,
                ))
            }
            Ok(None) => return Err((format!("{url} closed the stream"), delivered)),
            Ok(Some(Err(e))) => return Err((format!("{url}: {e}"), delivered)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        parser.push(&data);
        loop {
            match parser.next_part() {
                Ok(Some(part)) if jpeg::looks_like_jpeg(&part.body) => {
                    let captured_micros = part.timestamp_micros().unwrap_or_else(unix_micros_now);
                    let (width, height) = jpeg::dimensions(&part.body).unwrap_or((0, 0));
                    tx.send_replace(Some(Arc::new(Captured {
                        jpeg: part.body,
                        captured_micros,
                        width,
                        height,
                    })));
                    if !delivered {
                        // Frames flow: whatever NO SIGNAL said (a slow first frame) is over.
                        shared.status.lock().unwrap().last_error = None;
                    }
                    delivered = true;
                }
                Ok(Some(_)) => drop_part(shared, "a part that is not a JPEG"),
                Ok(None) => break,
                Err(err) => drop_part(shared, &err.to_string()),
            }
        }
        if parser.is_finished() {
            return Err((format!("{url} ended its stream"), delivered));
        }
    }
}

fn drop_part(shared: &Shared, why: &str) {
    shared.status.lock().unwrap().parts_dropped += 1;
    tracing::warn!(why, "upstream part dropped");
}
