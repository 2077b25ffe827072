//! TLS for the tests: a self-signed certificate for 127.0.0.1, the relay's server configuration
//! from its PEM files, and clients (HTTP/2 or HTTP/1.1 by ALPN) whose reading can be paused, to
//! play a viewer on a link that stops taking data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::TIMEOUT;

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub der: CertificateDer<'static>,
}

impl TestCert {
    pub fn new() -> Result<TestCert> {
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem())?;
        Ok(TestCert {
            der: cert.cert.der().clone(),
            dir,
        })
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The relay's configuration, built from the files as `--tls-cert`/`--tls-key` would.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        mjpeg_relay::net::tls::server_config(&self.cert_path(), &self.key_path())
            .map_err(anyhow::Error::msg)
    }
}

/// Pauses a connection's reads: while paused, the client takes nothing from its socket, so the
/// kernel's receive buffer fills and the sender's backs up, like a link that has stalled.
#[derive(Default)]
pub struct ReadGate {
    paused: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ReadGate {
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// A TCP stream whose reads a [`ReadGate`] can hold.
pub struct Gated {
    inner: TcpStream,
    gate: Arc<ReadGate>,
}

impl AsyncRead for Gated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.gate.paused.load(Ordering::SeqCst) {
            *this.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            // Re-check: a resume between the load and storing the waker must not be lost.
            if this.gate.paused.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A TLS connection to `addr` trusting `cert`, offering `alpn`; reads held by `gate`.
/// Returns the stream and the protocol the server chose.
pub async fn connect(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    alpn: &[&[u8]],
    rcvbuf: Option<u32>,
    gate: Arc<ReadGate>,
) -> Result<(tokio_rustls::client::TlsStream<Gated>, Option<Vec<u8>>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from("127.0.0.1")?;
    let handshake = async {
        let tcp = socket.connect(addr).await?;
        let tls = connector
            .connect(server_name, Gated { inner: tcp, gate })
            .await
            .context("TLS handshake")?;
        anyhow::Ok(tls)
    };
    let tls = tokio::time::timeout(TIMEOUT, handshake)
        .await
        .with_context(|| format!("no TLS connection within {TIMEOUT:?}"))??;
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    Ok((tls, alpn))
}

/// An HTTP/2 client connection over TLS.
pub struct H2Client {
    pub sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    pub addr: SocketAddr,
}

impl H2Client {
    pub async fn connect(
        addr: SocketAddr,
        cert: &CertificateDer<'static>,
        rcvbuf: Option<u32>,
        gate: Arc<ReadGate>,
    ) -> Result<H2Client> {
        let (tls, alpn) = connect(addr, cert, &[b"h2"], rcvbuf, gate).await?;
        anyhow::ensure!(
            alpn.as_deref() == Some(b"h2"),
            "the server did not choose h2"
        );
        let (sender, conn) = tokio::time::timeout(
            TIMEOUT,
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)),
        )
        .await
        .context("no HTTP/2 handshake")??;
        tokio::spawn(conn);
        Ok(H2Client { sender, addr })
    }

    /// GET `path` as a new stream on this connection; the response head within [`TIMEOUT`].
    pub async fn get(&mut self, path: &str) -> Result<hyper::Response<Incoming>> {
        let req = hyper::Request::get(format!("https://{}{path}", self.addr))
            .body(Empty::<Bytes>::new())?;
        let exchange = async {
            self.sender.ready().await?;
            anyhow::Ok(self.sender.send_request(req).await?)
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .with_context(|| format!("GET {path}: no response within {TIMEOUT:?}"))?
    }
}
