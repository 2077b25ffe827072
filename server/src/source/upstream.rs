//! `http://HOST[:PORT]/PATH` or `https://...`: an upstream MJPEG stream (an IP camera, or another relay's `.mjpg`
//! or `.frames`), fetched once however many viewers watch.
//!
//! A pump task holds the one upstream connection while someone watches (and for `linger` after
//! the last viewer leaves), parses it with the shared parser, and leaves the newest frame in a
//! one-slot channel. Upstream timestamps (`X-Timestamp`) are kept; without them the arrival time
//! is the capture time. While the upstream is down, refuses, answers non-2xx or sends garbage,
//! the stream shows NO SIGNAL naming the cause once a second ([`super::feed`]) and the pump
//! reconnects with backoff; viewers stay connected and get live frames again when the upstream returns.
//! Credentials in the URL (`http://user:pass@host/...`) are sent as Basic auth and appear
//! nowhere else: not in the API, not in logs, not on NO SIGNAL.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mjpeg_shared::multipart::MultipartParser;
use tracing::Instrument;

use super::feed::{self, Ended, Failure, Feed, Feeder, Patience, RelayedParts};
use super::options::{parse_max_bytes, parse_params, parse_seconds, unknown_param};
use super::{SetupError, Source, SourceError, SourceFrame, SourceInfo};
use crate::redact::redact;

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

impl std::str::FromStr for UpstreamOptions {
    type Err = String;

    /// `http(s)://[user:pass@]host[:port]/path[?query][#linger=S&max_bytes=N&ca=PEM]`: the URL
    /// keeps its own query; the relay's options follow a `#`, which is never sent to servers.
    fn from_str(source: &str) -> Result<Self, String> {
        // Before the '#' split: a '#' in a password would otherwise cut it there.
        crate::redact::check_userinfo(source)?;
        let (url, options) = match source.split_once('#') {
            Some((u, o)) => (u, Some(o)),
            None => (source, None),
        };
        let mut o = UpstreamOptions {
            url: url.to_string(),
            linger: Duration::from_secs(10),
            max_part_bytes: 16 * 1024 * 1024,
            ca: None,
        };
        for (key, value) in parse_params(options)? {
            match key {
                "linger" => o.linger = parse_seconds("linger", value, 0..=86_400)?,
                "max_bytes" => o.max_part_bytes = parse_max_bytes(value)?,
                "ca" => o.ca = Some(std::path::PathBuf::from(value)),
                other => {
                    return Err(unknown_param(
                        &redact(url),
                        other,
                        "linger, max_bytes, ca (after #)",
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// Credentials are removed: specs are shown in the API and the logs.
impl std::fmt::Display for UpstreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}#linger={}&max_bytes={}",
            redact(&self.url),
            self.linger.as_secs(),
            self.max_part_bytes
        )?;
        if let Some(ca) = &self.ca {
            write!(f, "&ca={}", ca.display())?;
        }
        Ok(())
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
    // Split as redact splits it, so what is shown and what is sent agree (a URL whose userinfo
    // a '/', '?' or '#' would cut is refused when the spec is parsed).
    let parts = crate::redact::split(url)
        .filter(|p| matches!(p.scheme, "http" | "https"))
        .ok_or_else(|| format!("{} is not an http:// or https:// URL", redact(url)))?;
    let https = parts.scheme == "https";
    let (userinfo, host, path) = (parts.userinfo, parts.host, parts.rest);
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
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
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

/// NO SIGNAL after this long without an upstream frame (while connecting, too).
const PATIENCE: Patience = Patience {
    opening: Duration::from_secs(2),
    stalled: Duration::from_secs(2),
};
/// An upstream that sends nothing for this long is treated as gone.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct UpstreamSource {
    feed: Feed,
}

impl UpstreamSource {
    pub fn new(name: &str, options: UpstreamOptions) -> Result<UpstreamSource, SetupError> {
        let target =
            parse_target(&options.url, options.ca.as_deref()).map_err(SetupError::Invalid)?;
        let shown = redact(&options.url);
        let (feed, feeder) = feed::channel(
            name,
            shown.clone(),
            format!("connecting to {shown}"),
            Some(PATIENCE),
        );
        let span = tracing::info_span!("upstream", url = %shown);
        let pump = async move {
            let linger = options.linger;
            feeder
                .pump(linger, || stream_once(&target, &options, &feeder))
                .await
        };
        tokio::spawn(pump.instrument(span));
        Ok(UpstreamSource { feed })
    }
}

#[async_trait::async_trait]
impl Source for UpstreamSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.feed.next_frame().await
    }

    fn pause(&mut self) {
        self.feed.pause();
    }

    fn info(&self) -> SourceInfo {
        self.feed.info("upstream")
    }
}

/// One connection, while wanted (and for `linger` after): `Released` when nobody wants frames
/// any more, a failure when the upstream failed.
async fn stream_once(
    target: &Target,
    options: &UpstreamOptions,
    feeder: &Feeder,
) -> Result<Ended, Failure> {
    let fail = |msg: String| (msg, false);
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // For messages: the query may hold credentials (`?pwd=`).
    let url = redact(&format!("{scheme}://{}{}", target.authority, target.path));
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
    let mut parts = RelayedParts::new(
        MultipartParser::from_content_type(&content_type)
            .map_err(|_| {
                fail(format!(
                    "{url} is not an MJPEG stream (Content-Type {content_type:?})"
                ))
            })?
            .with_max_part_size(options.max_part_bytes),
    );
    feeder.set_live(true);
    tracing::info!("upstream connected");
    let mut body = resp.into_body();
    let mut delivered = false;
    loop {
        if !feeder.wanted(options.linger) {
            return Ok(Ended::Released);
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
        parts.push(&data);
        // Upstream X-Timestamps are kept as capture times, stages and metadata as they came.
        delivered |= feeder.publish_parts(&mut parts);
        if parts.is_finished() {
            return Err((format!("{url} ended its stream"), delivered));
        }
    }
}
