//! Accepting and serving TCP connections, and what a viewer knows about its own connection.
//!
//! Latest-frame-wins only works if frames cannot pile up *below* the viewer's loop: in the
//! writer's buffer (hyper's, or the relay's own once it has taken a stream over,
//! [`super::takeover`]), or in the kernel's send queue (which autotunes to megabytes). Two
//! measures bound both:
//!
//! - every socket gets `TCP_NOTSENT_LOWAT`, so the kernel accepts new bytes only while little of
//!   what it already holds is still unsent; the rest waits in the writer;
//! - [`TrackedStream`] counts `poll_flush` calls. hyper calls its IO's `poll_flush` only once its own
//!   write buffer is empty (hyper `proto/h1/io.rs`, `Buffered::poll_flush`), and the relay's
//!   writer after each chunk it wrote whole, so a flush after a chunk was handed over means the
//!   chunk is in the kernel. A viewer hands over its next frame only then
//!   ([`ConnState::poll_flushed_since`]), and picks the newest frame at that moment.
//!
//! Below that, what the kernels hold for a viewer (unsent, in flight, in its receive buffer) is
//! read from the socket's `TCP_INFO` ([`ConnState::link`]), and the viewer's pacer
//! (`fanout::pace`) holds its next frame until its link has nearly delivered the one before.
//!
//! Over TLS ([`super::tls`]) a client that offers `h2` gets HTTP/2, where many viewers share one
//! connection and a flush says nothing about any one of them. There the gate is h2's own send
//! buffer, held to [`H2_SEND_BUFFER`]: hyper (1.12) takes a viewer's next chunk as soon as it has
//! handed the previous one to h2, then holds it until the stream's unsent data is under that
//! size. So a viewer whose link stalls has, below its loop, one frame picked ahead in hyper, at
//! most one more in h2's buffer, rustls' record buffer and the kernel's `TCP_NOTSENT_LOWAT`; it
//! skips everything published meanwhile and resumes a few frames behind, not seconds (measured
//! in `tests/tests/tls.rs`). The frame picked ahead is counted as sent (and its age recorded)
//! when hyper takes it, so over h2 `/metrics` sees a stalled viewer's frames as fresher than
//! they arrive.
//!
//! HTTP/2 has no request-head timeout in hyper: a connection with no request open for
//! [`HEADER_TIMEOUT`] is closed here instead ([`Activity`]), and one connection may open at most
//! [`H2_MAX_STREAMS`] streams. At most [`MAX_HANDSHAKES`] TLS handshakes run at once, so a flood
//! of them cannot take the cores from the viewers; a connection takes its handshake slot only once
//! its ClientHello has arrived (within [`CLIENT_HELLO_TIMEOUT`]), so sockets that send nothing
//! cannot hold the slots and stall every real client.
//!
//! At most `max_connections` connections are open at once ([`serve`]); beyond that a new one is
//! answered 503 (plain HTTP) or closed (TLS) at once, before anything is read from it, so the
//! descriptors left serve the viewers already admitted and the sources ([`super::descriptors`]).
//!
//! Connections are served here with hyper directly rather than `poem::Server`: poem boxes every
//! connection in a wrapper that hides vectored writes from hyper, which then copies each body
//! chunk into its own buffer, one 48 KB memcpy per frame per viewer and a frame-sized buffer kept
//! per connection. Served directly, hyper writes each frame from the shared buffer with `writev`
//! (and the relay's writer, after a takeover, the shared buffer with its chunk framing in it).
//! poem still does everything above the connection: routes, extractors, responses.
//!
//! Memory per viewer is mostly what its connection holds for as long as it is open (profiled in
//! docs/benchmarks.md, "Where the memory goes"): so the request's routing is boxed and freed
//! once the response has started, a plain HTTP connection's task is not sized for TLS, and over
//! HTTP/1.x a viewer's stream is written by the relay itself once hyper has sent its head
//! ([`super::takeover`]), which frees hyper's per-connection buffers. From then on the flushes
//! counted are that writer's, one after each chunk.

use http_body_util::combinators::BoxBody;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::takeover;

/// Unsent bytes the kernel may hold per connection before it refuses more. Small enough that a
/// slow viewer's backlog stays well under one frame period of its link; large enough that a fast
/// link never waits on the application (the kernel's notes on TCP_NOTSENT_LOWAT: <= 128 KB).
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Time a connection has to send a complete request head, counted from when it opened or from
/// its previous response: closes idle keep-alive connections and slow-loris senders.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Hyper's read buffer limit: a request head that does not fit is refused with 431. Hyper reads
/// in growing steps and checks between them, so heads up to about twice this can get through
/// (measured: 100 KB accepted, 300 KB refused). Real requests here are well under 2 KB; ingest
/// bodies are streamed through in chunks, never held whole.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// HTTP/2: unsent bytes a stream may hold in h2's buffer before hyper stops handing it more; as
/// small as the kernel's allowance (hyper's default, 400 KB, let a stalled viewer queue 8 frames
/// and more: `tests/tests/tls.rs` fails with it).
pub const H2_SEND_BUFFER: usize = NOTSENT_LOWAT as usize;

/// Time a TLS client has to send its ClientHello, counted from accepting. A real client sends it
/// in its first packet; nothing is held for a socket waiting here but the socket itself.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a TLS client has to complete its handshake once its ClientHello is in, waiting for a
/// handshake slot included (the slow-loris limit before any request).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS handshakes in progress at once (each past its ClientHello); more wait, within their
/// timeout.
pub const MAX_HANDSHAKES: usize = 32;

/// What a plain-HTTP connection over the cap is told before it is closed.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 5\r\nConnection: close\r\nContent-Length: 74\r\n\r\n\
{\"error\":\"the relay has its maximum of open connections; try again later\"}";

/// Streams one HTTP/2 connection may have open at once: a page of many streams fits (the
/// dashboard plays at most 32). A wall counts each stream on it as a viewer (up to
/// `MAX_WALL_STREAMS` per request), so a client's viewer places are bounded by the relay's
/// `--max-viewers` and `--max-viewers-per-stream`, not by this.
pub const H2_MAX_STREAMS: u32 = 128;

/// Requests open on an HTTP/2 connection: a watch channel so that the idle check sleeps until the
/// count changes.
#[derive(Clone)]
struct Activity(Arc<tokio::sync::watch::Sender<usize>>);

/// Held while a request is open: from its start until its response body is dropped.
struct Open(Activity);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(tokio::sync::watch::channel(0).0))
    }

    fn open(&self) -> Open {
        self.0.send_modify(|n| *n += 1);
        Open(self.clone())
    }

    /// Returns once no request has been open for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let mut rx = self.0.subscribe();
        loop {
            if *rx.borrow_and_update() == 0 {
                if tokio::time::timeout(idle, rx.changed()).await.is_err() {
                    return;
                }
            } else if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n -= 1);
    }
}

/// Per-connection state shared between the socket wrapper and the handlers serving on it; found
/// in each request's extensions.
#[derive(Debug, Default)]
pub struct ConnState {
    flushes: AtomicU64,
    /// A task waits in `poll_flushed_since`; hyper flushes on every poll, so the wake-up is
    /// skipped when nobody waits, which is most of the time for a viewer that keeps up.
    waiting: AtomicBool,
    flushed: AtomicWaker,
    /// The TCP socket's descriptor while the connection holds it: cleared (under this lock)
    /// before the socket closes, so [`ConnState::link`] never asks about a reused number.
    socket: Mutex<Option<RawFd>>,
    /// An endless body waiting to be written by the relay rather than hyper ([`super::takeover`]).
    handover: takeover::Handover,
}

impl ConnState {
    fn for_socket(socket: Option<RawFd>) -> Self {
        ConnState {
            socket: Mutex::new(socket),
            ..Default::default()
        }
    }

    /// What the kernel knows of this connection's link now (`TCP_INFO`): `None` once it has
    /// closed, or where the kernel does not say.
    pub fn link(&self) -> Option<mjpeg_tcpinfo::TcpInfo> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        mjpeg_tcpinfo::read((*socket)?).ok()
    }

    /// How many times this connection has been flushed with nothing left to write: by hyper, with
    /// its write buffer empty, or by the relay's own writer after a chunk ([`super::takeover`]).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Ready once a flush has happened after the count `seen` was read, i.e. once everything
    /// handed to the connection's writer before that read has been written into the kernel.
    /// For one waiter at a time: the connection's one viewer.
    pub fn poll_flushed_since(&self, cx: &mut Context<'_>, seen: u64) -> Poll<()> {
        if self.flushes() > seen {
            return Poll::Ready(());
        }
        self.flushed.register(cx.waker());
        // SeqCst: this store and the load of `flushes` below must not pass the flusher's
        // increment of `flushes` and its load of `waiting`, or a wake-up could be lost.
        self.waiting.store(true, Ordering::SeqCst);
        if self.flushes() > seen {
            self.waiting.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn on_flush(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        // Looked at before it is swapped: hyper flushes on every poll, and a swap is a write.
        if self.waiting.load(Ordering::SeqCst) && self.waiting.swap(false, Ordering::SeqCst) {
            self.flushed.wake();
        }
    }
}

/// The response body for `chunks`, an endless stream (a viewer's). On a connection with a
/// [`ConnState`] (HTTP/1.x) it is parked there, and written by the relay once hyper has sent the
/// head ([`super::takeover`]); over HTTP/2 (no state) hyper serves it.
pub fn endless_body<S>(conn: Option<&Arc<ConnState>>, chunks: S) -> poem::Body
where
    S: futures_util::Stream<Item = io::Result<takeover::Chunk>> + Send + 'static,
{
    let Some(conn) = conn else {
        use futures_util::StreamExt;
        // hyper frames what it writes: it gets the data alone.
        let data = chunks.map(|chunk| chunk.map(takeover::Chunk::into_data));
        return poem::Body::from_bytes_stream(data);
    };
    conn.handover.park(Box::pin(chunks));
    poem::Body::from_bytes_stream(Parked(conn.clone()))
}

/// The body hyper polls while it holds the connection: the parked one, through the slot.
struct Parked(Arc<ConnState>);

impl futures_util::Stream for Parked {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.handover.poll_parked(cx, self.0.flushes())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.handover.clear();
    }
}

/// A connection (TCP, or TLS over TCP) that reports hyper's flushes to its [`ConnState`].
pub struct TrackedStream<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> Drop for TrackedStream<S> {
    fn drop(&mut self) {
        // Runs before `inner` (the socket) is dropped and its descriptor closed.
        *self.state.socket.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TrackedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TrackedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        if res.is_ready() {
            this.state.on_flush();
        }
        res
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How a listener is served besides its routes.
#[derive(Clone)]
pub struct ServeOptions {
    /// HTTPS (and HTTP/2) with this; plain HTTP/1.1 without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open at once; more are refused at once ([`super::descriptors`] derives the
    /// default from the descriptor limit).
    pub max_connections: usize,
    /// Time open connections get to finish after `shutdown` (streams end at once on it).
    pub grace: Duration,
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown` fires; then gives
/// open connections the grace period and returns.
pub async fn serve(
    listener: TcpListener,
    app: impl IntoEndpoint<Endpoint: 'static>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let app = Arc::new(app.into_endpoint().map_to_response());
    let local = listener.local_addr()?;
    let grace = options.grace;
    let tls = options.tls.map(|config| Tls {
        config,
        handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES)),
    });
    let places = Arc::new(tokio::sync::Semaphore::new(
        options
            .max_connections
            .min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let mut refused = Refusals::default();
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                // Out of file descriptors or memory: the pending connection stays in the backlog.
                // Back off instead of spinning, and keep serving the viewers we have.
                Err(err) => {
                    tracing::warn!(%err, "accept failed; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            refused.refuse(stream, tls.is_none(), options.max_connections);
            continue;
        };
        configure(&stream);
        let fd = stream.as_raw_fd();
        let span = tracing::debug_span!("conn", %peer);
        let conn = Connection {
            local,
            peer,
            shutdown: shutdown.clone(),
            grace,
        };
        let app = app.clone();
        // One task type per kind of connection: a task is as large as its future, and a plain
        // HTTP viewer's must not carry room for a TLS handshake (9.6 KB a task before, 2.3 after).
        match tls.clone() {
            None => spawn_in(&connections, span, async move {
                let _place = place;
                conn.serve_http1(stream, Scheme::HTTP, app, fd).await
            }),
            Some(tls) => spawn_in(&connections, span, async move {
                let _place = place;
                conn.serve_tls(stream, tls, app, fd).await
            }),
        }
    }
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the grace period; closing"
        );
    }
    Ok(())
}

/// Spawns a connection's task inside its span, or without it when the span is disabled (at the
/// default log level): `Instrumented` keeps the span after the future, on a cache line of its
/// own that every poll reads, once a frame for every viewer (docs/benchmarks.md, "Counting
/// instead of timing").
fn spawn_in<F>(tasks: &TaskTracker, span: tracing::Span, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if span.is_disabled() {
        tasks.spawn(task);
    } else {
        tasks.spawn(task.instrument(span));
    }
}

/// The TLS side of a listener: its configuration and the handshake slots.
#[derive(Clone)]
struct Tls {
    config: Arc<rustls::ServerConfig>,
    handshakes: Arc<tokio::sync::Semaphore>,
}

/// Refusals being answered at once (each holds its socket for at most [`REFUSAL_TIME`]); more
/// are closed without an answer.
const MAX_REFUSING: usize = 64;
const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// Connections refused over the cap, logged at most once every ten seconds with how many.
struct Refusals {
    since_logged: u64,
    logged: Option<std::time::Instant>,
    answering: Arc<tokio::sync::Semaphore>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            since_logged: 0,
            logged: None,
            answering: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
        }
    }
}

impl Refusals {
    fn refuse(&mut self, stream: TcpStream, plain: bool, cap: usize) {
        // Over plain HTTP, answered on a task of its own: the request's head read first (a
        // client that gets an answer before it has asked may call it a broken connection:
        // hyper does), then 503, then the rest read and dropped, so that the close is a FIN
        // after the answer (closing on an unread request would send a reset, and the client
        // would see that instead of the 503).
        if let (true, Ok(slot)) = (plain, self.answering.clone().try_acquire_owned()) {
            tokio::spawn(async move {
                let _slot = slot;
                let _ = tokio::time::timeout(REFUSAL_TIME, answer_refused(stream)).await;
            });
        } else {
            drop(stream);
        }
        self.since_logged += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                refused = self.since_logged,
                max_connections = cap,
                "connections refused: the relay has --max-connections open"
            );
            self.since_logged = 0;
            self.logged = Some(std::time::Instant::now());
        }
    }
}

async fn answer_refused(mut stream: TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Up to the blank line that ends the head, or 8 KB of it: enough to know it was asked.
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        // Only the new bytes and the three before them can complete the blank line.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if head.len() >= 8192 || head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    stream.write_all(OVER_CAPACITY).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// One accepted connection.
struct Connection {
    local: SocketAddr,
    peer: SocketAddr,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Connection {
    /// The hyper service for this connection: poem's app, with the connection's state (HTTP/1
    /// only) in each request's extensions.
    fn service<E>(
        &self,
        app: Arc<E>,
        scheme: Scheme,
        state: Option<Arc<ConnState>>,
        activity: Option<Activity>,
    ) -> impl hyper::service::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = hyper::Response<BoxBody<bytes::Bytes, io::Error>>,
        Error = Infallible,
        Future: Send + 'static,
    > + Send
           + 'static
    where
        E: Endpoint<Output = Response> + 'static,
    {
        let (local, peer) = (self.local, self.peer);
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (app, state, scheme) = (app.clone(), state.clone(), scheme.clone());
            let open = activity.as_ref().map(Activity::open);
            // Boxed: over HTTP/1 hyper keeps a slot the size of this future for the whole
            // connection (over HTTP/2, in each stream's task), and poem's routes make it about
            // 11 KB; boxed, it is a pointer, and the routing's state is freed once the response
            // has started.
            Box::pin(async move {
                let (version, method) = (req.version(), req.method().clone());
                let mut req = poem::Request::from((
                    req,
                    LocalAddr(local.into()),
                    RemoteAddr(peer.into()),
                    scheme,
                ));
                if let Some(state) = &state {
                    req.extensions_mut().insert(state.clone());
                }
                let resp = hyper::Response::from(app.get_response(req).await);
                if let Some(state) = &state {
                    // A body parked to be handed over continues in the framing of this head.
                    state
                        .handover
                        .settle(version, &method, resp.status(), resp.headers());
                }
                // The request stays open until its body is done (a stream: until the viewer
                // leaves).
                let resp = match open {
                    None => resp,
                    Some(open) => resp.map(|body| {
                        BoxBody::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                            let _ = &open;
                            frame
                        }))
                    }),
                };
                Ok::<_, Infallible>(resp)
            })
        })
    }

    /// Serves `conn` until it ends, the relay shuts down or `idle` fires; then asks it to finish
    /// gracefully and gives it the grace period.
    async fn drive<C>(
        &self,
        conn: C,
        graceful: impl FnOnce(Pin<&mut C>),
        idle: impl Future<Output = ()>,
    ) where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(err) = res {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            _ = self.shutdown.cancelled() => {}
            _ = idle => tracing::debug!("idle HTTP/2 connection closed"),
        }
        graceful(conn.as_mut());
        let _ = tokio::time::timeout(self.grace, conn).await;
    }

    async fn serve_tls<E>(self, stream: TcpStream, tls: Tls, app: Arc<E>, fd: RawFd)
    where
        E: Endpoint<Output = Response> + 'static,
    {
        // First the ClientHello, holding nothing but the socket; then a handshake slot for the
        // rest, which is where the CPU goes.
        let hello =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let handshake = async {
            let start = match tokio::time::timeout(CLIENT_HELLO_TIMEOUT, hello).await {
                Ok(Ok(start)) => start,
                Ok(Err(err)) => return Err(format!("no TLS ClientHello: {err}")),
                Err(_) => return Err("no TLS ClientHello in time".to_string()),
            };
            let finish = async {
                let _slot = tls.handshakes.acquire().await;
                start.into_stream(tls.config.clone()).await
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, finish).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(err)) => Err(format!("TLS handshake failed: {err}")),
                Err(_) => Err("TLS handshake timed out".to_string()),
            }
        };
        let tls = tokio::select! {
            r = handshake => match r {
                Ok(tls) => tls,
                Err(err) => {
                    tracing::debug!(%err);
                    return;
                }
            },
            _ = self.shutdown.cancelled() => return,
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(super::tls::ALPN_H2);
        if h2 {
            self.serve_http2(tls, app).await
        } else {
            self.serve_http1(tls, Scheme::HTTPS, app, fd).await
        }
    }

    /// `fd`: the TCP socket under `io` (the TLS layer's, over TLS), for [`ConnState::link`].
    async fn serve_http1<S, E>(self, io: S, scheme: Scheme, app: Arc<E>, fd: RawFd)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: Endpoint<Output = Response> + 'static,
    {
        let state = Arc::new(ConnState::for_socket(Some(fd)));
        let io = TrackedStream {
            inner: io,
            state: state.clone(),
        };
        let service = self.service(app, scheme, Some(state.clone()), None);
        // One connection carries one stream at a time: the flush accounting above relies on it.
        let conn = hyper::server::conn::http1::Builder::new()
            // Frames go out from their shared buffers with writev, never copied (module docs).
            .writev(true)
            // A connection must deliver a complete request head within HEADER_TIMEOUT of opening
            // (or of its previous response): idle and slow-loris connections are closed.
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            // Request heads over this are refused with 431; bodies still stream through in chunks.
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        // Boxed: hyper's connection (over a kilobyte) is needed only until the takeover, and is
        // freed there. Inline, it would size this task's future for the viewer's whole life, with
        // the states polled once a frame (this function's, `takeover::write`'s) far apart in it.
        let mut conn = Box::new(conn);
        // hyper serves requests until the connection ends, or until a response's endless body
        // can be handed over (super::takeover). hyper's header_read_timeout closes idle
        // connections.
        let served = {
            let until_handover = std::future::poll_fn(|cx| match Pin::new(&mut *conn).poll(cx) {
                Poll::Ready(res) => Poll::Ready(Err(res)),
                // Only hyper's polls park a body or flush, so here is where to look.
                Poll::Pending => match state.handover.ready_to_take(state.flushes()) {
                    Some(body) => Poll::Ready(Ok(body)),
                    None => Poll::Pending,
                },
            });
            tokio::select! {
                served = until_handover => Some(served),
                _ = self.shutdown.cancelled() => None,
            }
        };
        let (chunks, framing) = match served {
            Some(Ok(body)) => body,
            Some(Err(res)) => {
                if let Err(err) = res {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            None => {
                Pin::new(&mut *conn).graceful_shutdown();
                let _ = tokio::time::timeout(self.grace, conn).await;
                return;
            }
        };
        // Everything hyper was given is in the kernel: its buffers are freed, the socket stays.
        // The box is taken into the block so that it is freed at its end: a box moved out of is
        // freed only when it goes out of scope, here the viewer's lifetime.
        let parts = {
            let conn = conn;
            (*conn).into_parts()
        };
        let unread = !parts.read_buf.is_empty();
        let io = parts.io.into_inner();
        // Dropped here, not with the connection: `read_buf` is a view of hyper's whole read
        // buffer (8 KB or more; the request head was split off it), and the fields of a value
        // moved out of in part live to the end of its scope, which is the viewer's lifetime.
        drop(parts.read_buf);
        drop(parts.service);
        // The body ends at once on shutdown; a write stalled on a dead link does not hold the
        // relay past its grace period. (The grace runs from the first poll after shutdown, when
        // a write is found under way: at most a frame later, as the bodies end at once.)
        let give_up = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(self.grace).await;
        };
        if let Err(err) = takeover::write(io, chunks, framing, unread, give_up).await {
            tracing::debug!(%err, "stream connection ended with an error");
        }
    }

    async fn serve_http2<S, E>(self, io: S, app: Arc<E>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: Endpoint<Output = Response> + 'static,
    {
        // No ConnState: a flush on a shared connection says nothing about one viewer. The gate
        // is h2's per-stream send buffer (module docs).
        let activity = Activity::new();
        let service = self.service(app, Scheme::HTTPS, None, Some(activity.clone()));
        let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            // A peer that stops answering pings is gone (Wi-Fi lost, laptop asleep): its streams
            // end and stop counting as viewers.
            .keep_alive_interval(Some(Duration::from_secs(15)))
            .keep_alive_timeout(Duration::from_secs(20))
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        // No request open for HEADER_TIMEOUT (none ever, or none since the last one ended):
        // closed, as an idle HTTP/1 connection is.
        self.drive(
            conn,
            |c| c.graceful_shutdown(),
            activity.idle_for(HEADER_TIMEOUT),
        )
        .await
    }
}

fn configure(stream: &TcpStream) {
    // Frames are written whole; Nagle would only hold the tail of each one back.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY");
    }
    let sock = socket2::SockRef::from(stream);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if let Err(err) = sock.set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!(%err, "TCP_NOTSENT_LOWAT");
        }
        // A viewer that vanishes without a FIN (Wi-Fi gone, laptop asleep) must stop counting as
        // a viewer, or its source would run on: give up on unacknowledged data after 20 s.
        if let Err(err) = sock.set_tcp_user_timeout(Some(Duration::from_secs(20))) {
            tracing::debug!(%err, "TCP_USER_TIMEOUT");
        }
    }
    // And probe idle connections (a stream whose source has stalled sends nothing to time out).
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive.with_retries(3);
    if let Err(err) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(%err, "TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Wakes;

    /// A viewer waiting for its last chunk's flush is woken by the next flush and not before; a
    /// flush that came before its wait lets it go at once; a flush with nobody waiting wakes
    /// nobody.
    #[test]
    fn a_flush_wait_is_woken_by_the_next_flush_and_sees_an_earlier_one_at_once() {
        let conn = ConnState::default();
        let (woken, waker) = Wakes::waker();
        let mut cx = Context::from_waker(&waker);
        let wakes = || woken.count();

        let seen = conn.flushes();
        assert!(conn.poll_flushed_since(&mut cx, seen).is_pending());
        assert!(conn.poll_flushed_since(&mut cx, seen).is_pending());
        assert_eq!(wakes(), 0);
        conn.on_flush();
        assert_eq!(wakes(), 1, "woken by the flush");
        assert!(conn.poll_flushed_since(&mut cx, seen).is_ready());

        conn.on_flush();
        assert_eq!(wakes(), 1, "nobody waits");

        let seen = conn.flushes();
        conn.on_flush();
        assert!(conn.poll_flushed_since(&mut cx, seen).is_ready());
        assert_eq!(wakes(), 1);
    }
}
