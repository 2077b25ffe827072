//! Accepting and serving TCP connections, and what a viewer knows about its own connection.
//!
//! Latest-frame-wins only works if frames cannot pile up *below* the viewer's loop: in hyper's
//! write buffer, or in the kernel's send queue (which autotunes to megabytes). Two measures bound
//! both:
//!
//! - every socket gets `TCP_NOTSENT_LOWAT`, so the kernel accepts new bytes only while little of
//!   what it already holds is still unsent; the rest waits in hyper's buffer;
//! - [`TrackedStream`] counts `poll_flush` calls. hyper calls its IO's `poll_flush` only once its own
//!   write buffer is empty (hyper `proto/h1/io.rs`, `Buffered::poll_flush`), so a flush after a
//!   chunk was handed over means the chunk is in the kernel. A viewer hands over its next frame only
//!   then ([`ConnState::flushed_since`]), and picks the newest frame at that moment.
//!
//! Connections are served here with hyper directly rather than `poem::Server`: poem boxes every
//! connection in a wrapper that hides vectored writes from hyper, which then copies each body
//! chunk into its own buffer, one 48 KB memcpy per frame per viewer and a frame-sized buffer kept
//! per connection. Served directly, hyper writes each frame from the shared buffer with `writev`.
//! poem still does everything above the connection: routes, extractors, responses.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

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

/// Per-connection state shared between the socket wrapper and the handlers serving on it; found
/// in each request's extensions.
#[derive(Debug, Default)]
pub struct ConnState {
    flushes: AtomicU64,
    /// Tasks inside `flushed_since`; hyper flushes on every poll, so skip the notify (and its
    /// lock) when nobody waits, which is always for a viewer that keeps up.
    waiting: AtomicUsize,
    flushed: Notify,
}

impl ConnState {
    /// How many times hyper has flushed this connection with an empty write buffer.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Waits until a flush has happened after the count `seen` was read, i.e. until everything
    /// handed to hyper before that read has been written into the kernel.
    pub async fn flushed_since(&self, seen: u64) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let notified = self.flushed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.flushes() > seen {
                return;
            }
            notified.await;
        }
    }

    fn on_flush(&self) {
        // SeqCst on both counters: this store and the load of `waiting` below must not pass the
        // waiter's store to `waiting` and its load of `flushes`, or a wake-up could be lost.
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.flushed.notify_waiters();
        }
    }
}

/// A TCP connection that reports hyper's flushes to its [`ConnState`].
pub struct TrackedStream {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
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

/// Accepts connections on `listener` and serves `app` on each until `shutdown` fires; then gives
/// open connections `grace` to finish (streams end at once on shutdown) and returns.
pub async fn serve(
    listener: TcpListener,
    app: impl IntoEndpoint<Endpoint: 'static>,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let app = Arc::new(app.into_endpoint().map_to_response());
    let local = listener.local_addr()?;
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
        configure(&stream);
        let span = tracing::debug_span!("conn", %peer);
        connections.spawn(
            serve_connection(stream, local, peer, app.clone(), shutdown.clone(), grace)
                .instrument(span),
        );
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

async fn serve_connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    app: Arc<E>,
    shutdown: CancellationToken,
    grace: Duration,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let state = Arc::new(ConnState::default());
    let io = TrackedStream {
        inner: stream,
        state: state.clone(),
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (app, state) = (app.clone(), state.clone());
        async move {
            let mut req = poem::Request::from((
                req,
                LocalAddr(local.into()),
                RemoteAddr(peer.into()),
                Scheme::HTTP,
            ));
            req.extensions_mut().insert(state);
            let resp = app.get_response(req).await;
            Ok::<_, Infallible>(hyper::Response::from(resp))
        }
    });
    // HTTP/1.1 only: the flush accounting above is hyper's HTTP/1 behaviour, and one connection
    // carries one stream. (Browsers use HTTP/2 only over TLS, which is not served yet.)
    let conn = hyper::server::conn::http1::Builder::new()
        // Frames go out from their shared buffers with writev, never copied (see the module docs).
        .writev(true)
        // A connection must deliver a complete request head within HEADER_TIMEOUT of opening
        // (or of its previous response): idle and slow-loris connections are closed.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // Request heads over this are refused with 431; bodies still stream through in chunks.
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%err, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn).await;
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
