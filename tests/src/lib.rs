//! Helpers for the black-box tests in `tests/tests/`: start the real relay on port 0 (in this
//! process, or as the real binary), talk to it with a real HTTP client (hyper), read streams with
//! the shared parser, decode what arrives.
//!
//! Every wait here is bounded: helpers take a deadline and fail the test when it passes. Every
//! HTTP/1.1 request goes through one function (`respond`), which bounds the connection and the
//! response head by [`TIMEOUT`]; finite bodies are read whole into a [`Reply`] (bounded too) and
//! decoded into the relay's own `mjpeg_shared::api` types, streams part by part through
//! [`StreamReader`], whose every read takes a timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mjpeg_relay::http::dashboard::Dashboard;
use mjpeg_relay::source::spec::StreamSpec;
use mjpeg_relay::{Relay, RelayOptions};
use mjpeg_shared::api::{ErrorBody, StreamInfo, StreamList};
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
        Self::start_with(
            specs,
            RelayOptions {
                dashboard: Dashboard::Page,
                ..RelayOptions::default()
            },
        )
        .await
    }

    pub async fn start_with_dashboard(specs: &[&str], dashboard: PathBuf) -> Result<Self> {
        Self::start_with(
            specs,
            RelayOptions {
                dashboard: Dashboard::choose(Some(dashboard)),
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
                dashboard: Dashboard::Page,
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
    pub async fn get(&self, path: &str) -> Result<Reply> {
        get(self.addr, path).await
    }

    /// GET `path`: the status, the headers and the first bytes of the body (streams are
    /// endless), or no bytes when none came within [`TIMEOUT`].
    pub async fn get_head(&self, path: &str) -> Result<Reply> {
        let resp = send(self.addr, path, None, &[]).await?;
        let (parts, mut body) = resp.into_parts();
        let first = match tokio::time::timeout(TIMEOUT, body.frame()).await {
            Ok(Some(frame)) => frame?.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        };
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: first,
        })
    }

    /// GET `path`, which must succeed, and decode its body as `T`.
    pub async fn json<T: Json>(&self, path: &str) -> Result<T> {
        let reply = self.get(path).await?;
        if !reply.status.is_success() {
            bail!("GET {path}: {}: {}", reply.status, reply.text());
        }
        reply.json()
    }

    /// `GET /api/streams/NAME`, typed.
    pub async fn info(&self, name: &str) -> Result<StreamInfo> {
        self.json(&format!("/api/streams/{name}")).await
    }

    /// Viewers connected now, over all streams, as the relay counts them.
    pub fn viewers(&self) -> u64 {
        self.relay.site.streams.iter().map(|s| s.viewers()).sum()
    }

    /// Each stream's viewers as `GET /api/streams` lists them, in its order (the streams' names).
    pub async fn viewers_per_stream(&self) -> Result<Vec<u64>> {
        Ok(self
            .list()
            .await?
            .streams
            .iter()
            .map(|s| s.viewers)
            .collect())
    }

    /// `GET /api/streams`, typed.
    pub async fn list(&self) -> Result<StreamList> {
        self.json("/api/streams").await
    }

    /// Opens a stream reader on `path`.
    pub async fn open(&self, path: &str) -> Result<StreamReader> {
        StreamReader::open(self.addr, path, None).await
    }
}

/// How long each step of a test request may take: connecting and getting the response head,
/// then reading a finite body. A relay that hangs fails the test instead of holding it up.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The client side of a test connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Socket {
    /// The receive buffer, if not the kernel's default.
    pub rcvbuf: Option<u32>,
    /// The local address to connect from (another loopback address is another client).
    pub from: Option<std::net::IpAddr>,
}

/// The one place the helpers make a request: `method path` with `headers` and `body` on a
/// fresh HTTP/1.1 connection (hyper's client, from `socket`), returning the response head within
/// [`TIMEOUT`]. `Host` is the relay's address unless `headers` name one. The body is the
/// caller's to read: whole through [`Reply::read`], part by part through [`StreamReader`], both
/// bounded.
pub async fn respond(
    addr: SocketAddr,
    socket: Socket,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Response<Incoming>> {
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("Host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body))?;
    let exchange = async {
        let tcp = TcpSocket::new_v4()?;
        if let Some(size) = socket.rcvbuf {
            tcp.set_recv_buffer_size(size)?;
        }
        if let Some(ip) = socket.from {
            tcp.bind(SocketAddr::new(ip, 0))?;
        }
        let socket = tcp;
        let stream: TcpStream = socket.connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        anyhow::Ok(sender.send_request(req).await?)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} {path}: no response within {TIMEOUT:?}"))?
        .with_context(|| format!("{method} {path}"))
}

/// What a finite request got back: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: hyper::StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads the rest of `resp`, the body within [`TIMEOUT`].
    pub async fn read(what: &str, resp: Response<Incoming>) -> Result<Reply> {
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(TIMEOUT, body.collect())
            .await
            .with_context(|| format!("{what}: body not complete within {TIMEOUT:?}"))??
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// The body as text (lossy: for messages and assertions).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as `T`. The relay must send exactly the fields `T` has: the decoded
    /// value, written back as JSON, must equal what was received, so that a field renamed or
    /// added on one side (even an optional one, which would otherwise decode as `None`) fails.
    pub fn json<T: Json>(&self) -> Result<T> {
        let raw: serde_json::Value = serde_json::from_slice(&self.body)
            .with_context(|| format!("{}: not JSON: {}", self.status, self.text()))?;
        let typed: T = serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "{}: not a {}: {}",
                self.status,
                std::any::type_name::<T>(),
                self.text()
            )
        })?;
        let back = serde_json::to_value(&typed)?;
        anyhow::ensure!(
            back == raw,
            "the relay sent fields {} does not have (or not as it writes them): {raw} is read as {}",
            std::any::type_name::<T>(),
            back
        );
        Ok(typed)
    }

    /// The message of an error answer (`{"error": "..."}`, [`ErrorBody`]).
    pub fn error(&self) -> Result<String> {
        Ok(self.json::<ErrorBody>()?.error)
    }
}

/// The JSON bodies the tests decode: the relay's `mjpeg_shared::api` types (so that a renamed
/// field fails, as indexing a `serde_json::Value` would not), or `Value` for what has no type.
pub trait Json: serde::de::DeserializeOwned + serde::Serialize {}
impl<T: serde::de::DeserializeOwned + serde::Serialize> Json for T {}

/// Sends a GET with no body on a fresh connection; the response head, within [`TIMEOUT`] (the
/// body, a stream perhaps, is the caller's to read).
pub async fn send(
    addr: SocketAddr,
    path: &str,
    rcvbuf: Option<u32>,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>> {
    let socket = Socket { rcvbuf, from: None };
    respond(addr, socket, "GET", path, headers, Bytes::new()).await
}

/// Sends `method path` with `headers` and `body` on a fresh connection and reads the whole
/// answer, each within [`TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply> {
    let resp = respond(addr, Socket::default(), method, path, headers, body.into()).await?;
    Reply::read(&format!("{method} {path}"), resp).await
}

/// POSTs `body` on a fresh connection and reads the answer.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply> {
    request(addr, "POST", path, headers, body).await
}

/// GET `path` and read the whole body (for finite responses).
pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply> {
    request(addr, "GET", path, &[], Bytes::new()).await
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
        let resp = send(addr, path, rcvbuf, &[]).await?;
        Self::from_response(path, resp).await
    }

    /// Reads the stream in `resp` (any HTTP version), expecting 200 and a boundary.
    pub async fn from_response(path: &str, resp: Response<Incoming>) -> Result<Self> {
        if resp.status() != hyper::StatusCode::OK {
            let reply = Reply::read(path, resp).await?;
            bail!("GET {path}: {}: {}", reply.status, reply.text());
        }
        let (parts, body) = resp.into_parts();
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

    /// Reads parts until one whose payload satisfies `pred`, for at most `within` in all.
    pub async fn next_where(
        &mut self,
        within: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Result<Part> {
        let search = async {
            loop {
                let part = self.next_part_inner().await?;
                if pred(&part.body) {
                    return anyhow::Ok(part);
                }
            }
        };
        tokio::time::timeout(within, search)
            .await
            .with_context(|| format!("no such part within {within:?}"))?
    }

    /// Reads the next chunk of body bytes as they arrive (for slow, rate-limited readers),
    /// waiting at most `timeout`. Returns the number of bytes read (0 at the end) and the parts
    /// it completed.
    pub async fn read_chunk(&mut self, timeout: Duration) -> Result<(usize, Vec<Part>)> {
        let mut parts = Vec::new();
        let frame = tokio::time::timeout(timeout, self.body.frame())
            .await
            .with_context(|| format!("no bytes within {timeout:?}"))?;
        match frame {
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
    jpeg_dir_sized(n, 160, 120)
}

/// [`jpeg_dir`] with `width` x `height` JPEGs.
pub fn jpeg_dir_sized(
    n: usize,
    width: u16,
    height: u16,
) -> Result<(tempfile::TempDir, Vec<Vec<u8>>)> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for i in 0..n {
        let data = make_jpeg(width, height, (i * 40) as u8);
        std::fs::write(dir.path().join(format!("frame-{i:03}.jpg")), &data)?;
        files.push(data);
    }
    Ok((dir, files))
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`. A check that hangs
/// is given up after `timeout` too, so the whole wait ends within twice `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let checked = tokio::time::timeout(timeout, check())
            .await
            .with_context(|| format!("a check did not finish within {timeout:?}"))?;
        if let Some(v) = checked? {
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
    mjpeg_relay::clock::unix_micros_now()
}

/// The value of the sample that `line_start` (name and labels, e.g.
/// `mjpeg_relay_viewers{stream="a"}`) begins in a `/metrics` text.
pub fn metric_sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
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
        // The first line is read on a thread so that a relay that never prints it fails the
        // test within TIMEOUT instead of blocking it.
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(line) => line?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay printed no address within {TIMEOUT:?}");
            }
        };
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

/// Starts a long multipart push whose parts the test sends through the returned channel.
pub async fn long_push(
    relay: &TestRelay,
    path: &str,
    token: &str,
) -> anyhow::Result<(
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<anyhow::Result<u16>>,
)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let body =
        http_body_util::StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| {
                (
                    Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)),
                    rx,
                )
            })
        }));
    let stream =
        tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(relay.addr)).await??;
    let (mut sender, conn) = tokio::time::timeout(
        TIMEOUT,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await??;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("Host", relay.addr.to_string())
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        .body(body)?;
    let task = tokio::spawn(async move { Ok(sender.send_request(req).await?.status().as_u16()) });
    Ok((tx, task))
}
