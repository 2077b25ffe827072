//! Accepted TCP connections, and what a viewer needs to know about its own.
//!
//! Latest-frame-wins only works if frames cannot pile up *below* the viewer's loop: in hyper's
//! write buffer (which would take up to ~400 KB of body chunks before it pushes back) or in the
//! kernel's send queue (which autotunes to megabytes). Two measures bound both:
//!
//! - every socket gets `TCP_NOTSENT_LOWAT`, so the kernel accepts new bytes only while little of
//!   what it already holds is still unsent; the rest stays in hyper's buffer;
//! - [`TrackedStream`] counts `poll_flush` calls. hyper calls its IO's `poll_flush` only once its own
//!   write buffer is empty (hyper `proto/h1/io.rs`, `Buffered::poll_flush`), so a flush after a
//!   chunk was handed over means the chunk is in the kernel. A viewer hands over its next frame only
//!   then ([`ConnState::flushed_since`]), and picks the newest frame at that moment.
//!
//! The handler finds its connection by the peer address, which is unique among open connections.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Unsent bytes the kernel may hold per connection before it refuses more. Small enough that a
/// slow viewer's backlog stays well under one frame period of its link; large enough that a fast
/// link never waits on the application (see the kernel's tcp_notsent_lowat notes: <= 128 KB).
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Per-connection state shared between the socket wrapper and the handler serving on it.
#[derive(Debug, Default)]
pub struct ConnState {
    flushes: AtomicU64,
    flushed: Notify,
}

impl ConnState {
    /// How many times hyper has flushed this connection with an empty write buffer.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Acquire)
    }

    /// Waits until a flush has happened after the count `seen` was read, i.e. until everything
    /// handed to hyper before that read has been written into the kernel.
    pub async fn flushed_since(&self, seen: u64) {
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
        self.flushes.fetch_add(1, Ordering::AcqRel);
        self.flushed.notify_waiters();
    }
}

/// Open connections by peer address.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    conns: Mutex<HashMap<SocketAddr, Weak<ConnState>>>,
}

impl ConnRegistry {
    /// The state of the open connection from `peer`, if it is one of ours.
    pub fn get(&self, peer: &SocketAddr) -> Option<Arc<ConnState>> {
        self.conns.lock().unwrap().get(peer).and_then(Weak::upgrade)
    }

    fn insert(&self, peer: SocketAddr, state: &Arc<ConnState>) {
        self.conns
            .lock()
            .unwrap()
            .insert(peer, Arc::downgrade(state));
    }

    fn remove(&self, peer: &SocketAddr, state: &Arc<ConnState>) {
        let mut conns = self.conns.lock().unwrap();
        if conns
            .get(peer)
            .is_some_and(|w| w.as_ptr() == Arc::as_ptr(state))
        {
            conns.remove(peer);
        }
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A TCP connection that reports hyper's flushes to its [`ConnState`].
pub struct TrackedStream {
    inner: TcpStream,
    peer: SocketAddr,
    state: Arc<ConnState>,
    registry: Arc<ConnRegistry>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.registry.remove(&self.peer, &self.state);
    }
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

/// poem acceptor over a bound TCP listener: configures each socket for streaming and registers it.
pub struct RelayAcceptor {
    listener: TcpListener,
    local: SocketAddr,
    registry: Arc<ConnRegistry>,
}

impl RelayAcceptor {
    pub fn new(listener: TcpListener, registry: Arc<ConnRegistry>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(RelayAcceptor {
            listener,
            local,
            registry,
        })
    }
}

impl Acceptor for RelayAcceptor {
    type Io = TrackedStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![LocalAddr(self.local.into())]
    }

    async fn accept(&mut self) -> io::Result<(TrackedStream, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    configure(&stream);
                    let state = Arc::new(ConnState::default());
                    self.registry.insert(peer, &state);
                    let io = TrackedStream {
                        inner: stream,
                        peer,
                        state,
                        registry: self.registry.clone(),
                    };
                    return Ok((
                        io,
                        LocalAddr(self.local.into()),
                        RemoteAddr(peer.into()),
                        Scheme::HTTP,
                    ));
                }
                // Out of file descriptors or memory: the pending connection stays in the backlog.
                // Back off instead of spinning, and keep serving the viewers we have.
                Err(err) => {
                    tracing::warn!(%err, "accept failed; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn configure(stream: &TcpStream) {
    // Frames are written whole; Nagle would only hold the tail of each one back.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY");
    }
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(%err, "TCP_NOTSENT_LOWAT");
    }
}
