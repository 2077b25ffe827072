//! Connections: the relay accepts and serves them itself (hyper under poem's routes), so it can
//! see when a connection has taken a frame.
//!
//! - [`conn`]: the accept loop, per-connection flush tracking (the pacing viewers wait on),
//!   socket options, head and handshake timeouts, the connection cap, HTTP/1.1 and HTTP/2
//!   serving, graceful shutdown.
//! - [`takeover`]: a viewer's endless body written on the socket by the relay once hyper has
//!   sent its head (HTTP/1.x), so that hyper's per-connection buffers are freed.
//! - [`descriptors`]: the descriptor limit raised at startup, and the connection cap it allows.
//! - [`tls`]: HTTPS with rustls, ALPN `h2` then `http/1.1`.

pub mod conn;
pub mod descriptors;
pub mod takeover;
pub mod tls;
