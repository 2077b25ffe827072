//! One viewer of a stream: the response body of `/streams/NAME.mjpg` or `.frames`.
//!
//! The loop, per frame: wait out this viewer's `?fps` cap, wait for a frame newer than the last
//! one sent, make sure the connection has taken the previous frame ([`crate::net::conn`]), then send
//! the *newest* frame. Whatever was published in between is skipped, never queued, so
//! what a slow viewer sees is late by at most about one frame on its own link.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use mjpeg_shared::wire::Layout;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::frame::Frame;
use super::stream::{Latest, Stream, ViewerGuard};
use crate::clock::unix_micros_now;
use crate::net::conn::ConnState;

/// A viewer's places under the viewer caps (`--max-viewers`, `--max-viewers-per-stream`), held
/// in its body for as long as it is connected. Taken by the HTTP layer before the response
/// starts (`http::streams::admit`), without waiting.
pub struct Admission {
    pub relay: Option<OwnedSemaphorePermit>,
    pub stream: Option<OwnedSemaphorePermit>,
}

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
    preamble_sent: bool,
    /// The connection's flush count when the last chunk was handed over.
    flushes_at_send: Option<u64>,
    next_allowed: Option<Instant>,
    sent: u64,
    skipped: u64,
    span: tracing::Span,
    _guard: ViewerGuard,
    _admission: Admission,
}

/// The body stream of one viewer. Ends when the server shuts down or the stream's driver ends
/// (its channel closes); hyper drops it (and the viewer stops counting) when the client
/// disconnects.
pub fn body(
    stream: Arc<Stream>,
    opts: ViewerOptions,
    conn: Option<Arc<ConnState>>,
    shutdown: CancellationToken,
    span: tracing::Span,
    admission: Admission,
) -> impl FuturesStream<Item = std::io::Result<Bytes>> + Send + 'static {
    let viewer = Viewer {
        _admission: admission,
        rx: stream.subscribe(),
        _guard: stream.add_viewer(),
        stream,
        opts,
        conn,
        shutdown,
        last_seq: None,
        preamble_sent: false,
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
        // A new viewer's preamble goes first, as its own static chunk: hyper writes it together
        // with the first frame, and no frame is copied to glue them.
        if !self.preamble_sent {
            self.preamble_sent = true;
            let preamble = self.opts.layout.preamble();
            if !preamble.is_empty() {
                return Some(Bytes::from_static(preamble));
            }
        }
        let shutdown = self.shutdown.clone();
        // 1. This viewer's rate cap.
        if let Some(at) = self.next_allowed {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = shutdown.cancelled() => return None,
            }
        }
        // 2. A frame newer than the last one sent.
        let mut frame = tokio::select! {
            f = self.newest() => f?,
            _ = shutdown.cancelled() => return None,
        };
        // 3. The previous frame must have left hyper's buffer for the kernel. A viewer that keeps
        //    up has long flushed by now; one that does not waits here, and then takes whatever is
        //    newest at that moment, skipping what was published meanwhile.
        if let (Some(conn), Some(seen)) = (&self.conn, self.flushes_at_send) {
            if conn.flushes() <= seen {
                tokio::select! {
                    _ = conn.flushed_since(seen) => {}
                    _ = shutdown.cancelled() => return None,
                }
                if let Some(newer) = self.rx.borrow_and_update().as_ref() {
                    if newer.seq > frame.seq && self.stream.is_fresh(newer) {
                        frame = newer.clone();
                    }
                }
            }
        }

        let skipped = self
            .last_seq
            .map_or(0, |last| frame.seq.saturating_sub(last + 1));
        self.skipped += skipped;
        self.sent += 1;
        let chunk = frame.part(self.opts.layout);
        let age_us = unix_micros_now().saturating_sub(frame.captured_micros);
        self.stream
            .record_sent(chunk.len(), skipped, Duration::from_micros(age_us));
        self.last_seq = Some(frame.seq);
        self.flushes_at_send = self.conn.as_ref().map(|c| c.flushes());
        if let Some(fps) = self.opts.max_fps {
            // Step from the previous deadline, not from now, so timer rounding does not add up
            // into a lower rate; but never from more than one period back, so a stall is not
            // followed by a burst.
            let period = Duration::from_secs_f64(1.0 / fps);
            let now = Instant::now();
            let floor = now.checked_sub(period).unwrap_or(now);
            let base = self.next_allowed.map_or(now, |prev| prev.max(floor));
            self.next_allowed = Some(base + period);
        }
        Some(chunk)
    }

    /// Waits for a current frame newer than the last one sent. `None` once the driver has ended.
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
