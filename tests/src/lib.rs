//! Helpers for the black-box tests in `tests/tests/`: start the real relay on port 0 (in this
//! process, or as the real binary), talk to it with a real HTTP client (hyper), read streams with
//! the shared parser, decode what arrives.
//!
//! Every wait here is bounded: helpers take a deadline and fail the test when it passes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mjpeg_relay::config::StreamSpec;
use mjpeg_relay::{Relay, RelayOptions};
use mjpeg_shared::multipart::{MultipartParser, Part};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod browser;
pub mod camera;
pub mod proxy;
pub mod tls;

/// A relay running inside the test process on a free loopback port.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub relay: Arc<Relay>,
    server: JoinHandle<std::io::Result<()>>,
}

impl TestRelay {
    /// Starts a relay serving `specs` (`NAME=SOURCE` strings), with no dashboard.
    pub async fn start(specs: &[&str]) -> Result<Self> {
        Self::start_with_dashboard(specs, PathBuf::from("/nonexistent-dashboard")).await
    }

    pub async fn start_with_dashboard(specs: &[&str], dashboard: PathBuf) -> Result<Self> {
        Self::start_with(
            specs,
            RelayOptions {
                dashboard,
                ..RelayOptions::default()
            },
        )
        .await
    }

    /// Starts a relay on a given address (to restart one where its clients expect it).
    pub async fn start_at(specs: &[&str], addr: SocketAddr) -> Result<Self> {
        Self::start_on(
            specs,
            RelayOptions {
                dashboard: PathBuf::from("/nonexistent-dashboard"),
                ..RelayOptions::default()
            },
            addr,
        )
        .await
    }

    /// Starts a relay with the given options (a fake camera backend, say).
    pub async fn start_with(specs: &[&str], options: RelayOptions) -> Result<Self> {
        Self::start_on(specs, options, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a relay with the given options on a given address.
    pub async fn start_on(specs: &[&str], options: RelayOptions, addr: SocketAddr) -> Result<Self> {
        let specs: Vec<StreamSpec> = specs
            .iter()
            .map(|s| s.parse().map_err(|e: String| anyhow!(e)))
            .collect::<Result<_>>()?;
        let relay = Relay::start(&specs, options, CancellationToken::new())?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(mjpeg_relay::run(listener, relay.clone()));
        Ok(TestRelay {
            addr,
            relay,
            server,
        })
    }

    /// Shuts down and waits for the server to return; returns how long that took.
    pub async fn stop(self) -> Result<Duration> {
        let started = std::time::Instant::now();
        self.relay.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .context("server did not stop within 10 s")???;
        Ok(started.elapsed())
    }

    /// GET `path` and read the whole body.
    pub async fn get(&self, path: &str) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes)> {
        get(self.addr, path).await
    }

    /// GET `path`, read the status, headers and the first bytes of the body (streams are endless).
    pub async fn get_head(
        &self,
        path: &str,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes)> {
        let resp = tokio::time::timeout(Duration::from_secs(10), send(self.addr, path, None, &[]))
            .await
            .context("no response within 10 s")??;
        let (parts, mut body) = resp.into_parts();
        let first = match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
            Ok(Some(frame)) => frame?.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        };
        Ok((parts.status, parts.headers, first))
    }

    /// GET `path` and parse the body as JSON.
    pub async fn json(&self, path: &str) -> Result<serde_json::Value> {
        let (status, _, body) = self.get(path).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Opens a stream reader on `path`.
    pub async fn open(&self, path: &str) -> Result<StreamReader> {
        StreamReader::open(self.addr, path, None).await
    }
}

/// Sends a GET with hyper's HTTP/1.1 client on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    path: &str,
    rcvbuf: Option<u32>,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let stream: TcpStream = socket.connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("Host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Ok(sender
        .send_request(req.body(Empty::<Bytes>::new())?)
        .await?)
}

/// Sends `method path` with no body on a fresh connection; the status.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<u16> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send_request(req.body(Empty::<Bytes>::new())?),
    )
    .await
    .context("no response within 10 s")??;
    Ok(resp.status().as_u16())
}

/// POSTs `body` on a fresh connection; the status, headers and body as text.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, hyper::HeaderMap, String)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::post(path).header("Host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Full::new(Bytes::from(body)))?)
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// GET `path` and read the whole body (for finite responses).
pub async fn get(
    addr: SocketAddr,
    path: &str,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes)> {
    let resp = tokio::time::timeout(Duration::from_secs(10), send(addr, path, None, &[]))
        .await
        .context("no response within 10 s")??;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .context("body not complete within 10 s")??
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// A viewer: reads a stream response part by part with the shared parser.
pub struct StreamReader {
    pub headers: hyper::HeaderMap,
    body: Incoming,
    parser: MultipartParser,
    /// Bytes received so far.
    pub bytes: u64,
}

impl StreamReader {
    /// Opens `path`, expecting 200 and a content type with a boundary.
    pub async fn open(addr: SocketAddr, path: &str, rcvbuf: Option<u32>) -> Result<Self> {
        let resp = tokio::time::timeout(Duration::from_secs(10), send(addr, path, rcvbuf, &[]))
            .await
            .context("no response within 10 s")??;
        Self::from_response(path, resp).await
    }

    /// Reads the stream in `resp` (any HTTP version), expecting 200 and a boundary.
    pub async fn from_response(path: &str, resp: Response<Incoming>) -> Result<Self> {
        let (parts, body) = resp.into_parts();
        if parts.status != hyper::StatusCode::OK {
            let body = body.collect().await?.to_bytes();
            bail!(
                "GET {path}: {}: {}",
                parts.status,
                String::from_utf8_lossy(&body)
            );
        }
        let ct = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .context("no content type")?;
        let parser = MultipartParser::from_content_type(ct)?;
        Ok(StreamReader {
            headers: parts.headers,
            body,
            parser,
            bytes: 0,
        })
    }

    /// The next complete part, waiting at most `timeout`. Errors if the stream ends first.
    pub async fn next_part(&mut self, timeout: Duration) -> Result<Part> {
        tokio::time::timeout(timeout, self.next_part_inner())
            .await
            .with_context(|| format!("no part within {timeout:?}"))?
    }

    /// Like [`next_part`](Self::next_part) but returns `None` at the end of the stream.
    pub async fn next_part_or_end(&mut self, timeout: Duration) -> Result<Option<Part>> {
        match tokio::time::timeout(timeout, self.next_part_inner()).await {
            Ok(Ok(part)) => Ok(Some(part)),
            Ok(Err(e)) if e.to_string().contains("stream ended") => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("neither a part nor the end within {timeout:?}"),
        }
    }

    async fn next_part_inner(&mut self) -> Result<Part> {
        loop {
            if let Some(part) = self.parser.next_part()? {
                return Ok(part);
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.bytes += data.len() as u64;
                        self.parser.push(&data);
                    }
                }
                None => bail!("stream ended"),
            }
        }
    }

    /// Reads parts until one whose payload satisfies `pred`, for at most `within` (each part
    /// within 10 s).
    pub async fn next_where(
        &mut self,
        within: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Result<Part> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let part = self.next_part(Duration::from_secs(10)).await?;
            if pred(&part.body) {
                return Ok(part);
            }
        }
        bail!("no such part within {within:?}")
    }

    /// Reads the next chunk of body bytes as they arrive (for slow, rate-limited readers).
    /// Returns the number of bytes read, 0 at the end.
    pub async fn read_chunk(&mut self) -> Result<(usize, Vec<Part>)> {
        let mut parts = Vec::new();
        match self.body.frame().await {
            Some(frame) => {
                let data = frame?.into_data().unwrap_or_default();
                self.bytes += data.len() as u64;
                self.parser.push(&data);
                while let Some(p) = self.parser.next_part()? {
                    parts.push(p);
                }
                Ok((data.len(), parts))
            }
            None => Ok((0, parts)),
        }
    }
}

/// A decoded JPEG: width, height, packed RGB.
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// Decodes a JPEG strictly (zune-jpeg), failing on anything malformed.
pub fn decode_jpeg(data: &[u8]) -> Result<Decoded> {
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(data),
        options,
    );
    let rgb = decoder
        .decode()
        .map_err(|e| anyhow!("JPEG does not decode: {e:?}"))?;
    let (width, height) = decoder.dimensions().context("no dimensions")?;
    Ok(Decoded { width, height, rgb })
}

/// Encodes a flat-colour JPEG of the given size (distinct `shade`s give distinct files).
pub fn make_jpeg(width: u16, height: u16, shade: u8) -> Vec<u8> {
    let rgb: Vec<u8> = (0..usize::from(width) * usize::from(height))
        .flat_map(|i| [shade, (i % 251) as u8, 255 - shade])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 75)
        .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    out
}

/// A temporary folder holding `n` JPEGs named frame-000.jpg, frame-001.jpg, ...; returns the
/// folder and the files' contents in name order.
pub fn jpeg_dir(n: usize) -> Result<(tempfile::TempDir, Vec<Vec<u8>>)> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for i in 0..n {
        let data = make_jpeg(160, 120, (i * 40) as u8);
        std::fs::write(dir.path().join(format!("frame-{i:03}.jpg")), &data)?;
        files.push(data);
    }
    Ok((dir, files))
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Now as Unix microseconds.
pub fn now_micros() -> u64 {
    mjpeg_relay::frame::unix_micros_now()
}

/// The relay binary running as a child process, on the port it chose (`--listen 127.0.0.1:0`);
/// killed on drop.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts `cmd` (the relay binary with its arguments, including `--listen 127.0.0.1:0`) and
    /// reads the address it prints first, which is how scripts find port 0's choice.
    pub fn spawn(cmd: std::process::Command) -> Result<Self> {
        Self::spawn_with_stderr(cmd, std::process::Stdio::null())
    }

    /// [`RelayProcess::spawn`], with the relay's log (its stderr) sent to `stderr`.
    pub fn spawn_with_stderr(
        mut cmd: std::process::Command,
        stderr: std::process::Stdio,
    ) -> Result<Self> {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("mjpeg-relay listening on ")
            .and_then(|s| {
                s.strip_prefix("http://")
                    .or_else(|| s.strip_prefix("https://"))
            })
            .and_then(|s| s.strip_suffix('/'))
            .with_context(|| format!("unexpected first line {line:?}"))?
            .parse()?;
        Ok(RelayProcess { child, addr })
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
