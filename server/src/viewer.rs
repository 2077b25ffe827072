//! One viewer of a stream: the response body of `/streams/NAME.mjpg` or `.frames`.
//!
//! The loop, per frame: wait until the connection has taken the previous frame
//! ([`crate::conn`]), wait out this viewer's `?fps` cap, then take the *newest* frame that is
//! newer than the last one sent. Whatever was published in between is skipped, never queued, so
//! what a slow viewer sees is late by at most about one frame on its own link.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream as FuturesStream;
use mjpeg_shared::wire::Layout;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::conn::ConnState;
use crate::frame::Frame;
use crate::stream::{Latest, Stream, ViewerGuard};

/// What a viewer asked for.
#[derive(Clone, Copy, Debug)]
pub struct ViewerOptions {
    pub layout: Layout,
    /// At most this many frames per second, if set.
    pub max_fps: Option<f64>,
}

struct Viewer {
    stream: Arc<Stream>,
    rx: watch::Receiver<Latest>,
    opts: ViewerOptions,
    conn: Option<Arc<ConnState>>,
    shutdown: CancellationToken,
    last_seq: Option<u64>,
    /// The connection's flush count when the last chunk was handed over.
    flushes_at_send: Option<u64>,
    next_allowed: Option<Instant>,
    sent: u64,
    skipped: u64,
    span: tracing::Span,
    _guard: ViewerGuard,
}

/// The body stream of one viewer. Ends when the server shuts down or the stream's driver goes
/// away; hyper drops it (and the viewer stops counting) when the client disconnects.
pub fn body(
    stream: Arc<Stream>,
    opts: ViewerOptions,
    conn: Option<Arc<ConnState>>,
    shutdown: CancellationToken,
    span: tracing::Span,
) -> impl FuturesStream<Item = std::io::Result<Bytes>> + Send + 'static {
    let viewer = Viewer {
        rx: stream.subscribe(),
        _guard: stream.add_viewer(),
        stream,
        opts,
        conn,
        shutdown,
        last_seq: None,
        flushes_at_send: None,
        next_allowed: None,
        sent: 0,
        skipped: 0,
        span,
    };
    futures_util::stream::unfold(viewer, move |mut v| {
        let span = v.span.clone();
        async move {
            let chunk = v.next_chunk().await?;
            Some((Ok(chunk), v))
        }
        .instrument(span)
    })
}

impl Viewer {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let shutdown = self.shutdown.clone();
        // 1. The previous frame must have left hyper's buffer for the kernel.
        if let (Some(conn), Some(seen)) = (&self.conn, self.flushes_at_send) {
            tokio::select! {
                _ = conn.flushed_since(seen) => {}
                _ = shutdown.cancelled() => return None,
            }
        }
        // 2. This viewer's rate cap.
        if let Some(at) = self.next_allowed {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = shutdown.cancelled() => return None,
            }
        }
        // 3. The newest frame, once there is one newer than the last sent.
        let frame = tokio::select! {
            f = self.newest() => f?,
            _ = shutdown.cancelled() => return None,
        };

        let skipped = self
            .last_seq
            .map_or(0, |last| frame.seq.saturating_sub(last + 1));
        self.skipped += skipped;
        self.sent += 1;
        let part = frame.part(self.opts.layout);
        let chunk = if self.last_seq.is_none() {
            let preamble = self.opts.layout.preamble();
            let mut first = BytesMut::with_capacity(preamble.len() + part.len());
            first.extend_from_slice(preamble);
            first.extend_from_slice(&part);
            first.freeze()
        } else {
            part
        };
        self.stream.record_sent(chunk.len(), skipped);
        self.last_seq = Some(frame.seq);
        self.flushes_at_send = self.conn.as_ref().map(|c| c.flushes());
        if let Some(fps) = self.opts.max_fps {
            self.next_allowed = Some(Instant::now() + Duration::from_secs_f64(1.0 / fps));
        }
        Some(chunk)
    }

    /// Waits for a current frame newer than the last one sent. `None` if the stream is gone.
    async fn newest(&mut self) -> Option<Arc<Frame>> {
        loop {
            {
                let latest = self.rx.borrow_and_update();
                if let Some(frame) = latest.as_ref() {
                    let newer = self.last_seq.is_none_or(|last| frame.seq > last);
                    if newer && self.stream.is_fresh(frame) {
                        return Some(frame.clone());
                    }
                }
            }
            self.rx.changed().await.ok()?;
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _span = self.span.enter();
        tracing::debug!(sent = self.sent, skipped = self.skipped, "viewer left");
    }
}
