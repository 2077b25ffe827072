//! One viewer of a stream: the response body of `/streams/NAME.mjpg` or `.frames`.
//!
//! The loop, per frame: wait out this viewer's `?fps` cap, wait for a frame newer than the last
//! one sent, make sure the connection has taken the previous frame ([`crate::net::conn`]), wait
//! until the viewer has nearly read what is queued ahead of it ([`super::pace`]), then send the
//! *newest* frame, at the rung its link carries when it asked for `?adapt`. Whatever was
//! published in between is skipped, never queued, so what a slow viewer sees is late by about
//! the time one frame takes to cross its own link.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::Stream as FuturesStream;
use mjpeg_shared::wire::Layout;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::frame::Frame;
use super::pace::{self, Adapt, Pacer, RUNGS};
use super::stream::{Latest, RenditionGuard, Stream, ViewerGuard};
use crate::clock::unix_micros_now;
use crate::net::conn::ConnState;
use crate::net::takeover::Chunk;

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
    /// Send each frame at the rung of a ladder its link carries (`?adapt`).
    pub adapt: Option<Adapt>,
}

/// `repr(C)`, in this order: the fields of the common per-frame path first and together; the
/// span, the guards and the admission, which only live as long as the viewer, last. At a
/// thousand viewers a viewer's memory has left the cache by its next frame, so every line a
/// frame touches is a likely miss (docs/benchmarks.md, "Counting instead of timing").
#[repr(C)]
struct Viewer {
    rx: watch::Receiver<Latest>,
    last_seq: Option<u64>,
    /// The connection's flush count when the last chunk was handed over (`None` once a flush
    /// since has been seen).
    flushes_at_send: Option<u64>,
    conn: Option<Arc<ConnState>>,
    stream: Arc<Stream>,
    next_allowed: Option<Instant>,
    sent: u64,
    skipped: u64,
    opts: ViewerOptions,
    preamble_sent: bool,
    /// Boxed: most viewers do not adapt, and its ladder would sit between the fields above and
    /// below.
    adaptive: Option<Box<Adaptive>>,
    /// The rendition it watches (`None`: the source's frames), counted while it does.
    rendition: Option<RenditionGuard>,
    pacer: Pacer,
    span: tracing::Span,
    _guard: ViewerGuard,
    _admission: Admission,
}

/// The body stream of one viewer. Ends when the server shuts down or the stream's driver ends
/// (its channel closes); its writer (hyper, or the relay's own after a takeover,
/// `net::takeover`) drops it, and the viewer stops counting, when the client disconnects.
pub fn body(
    stream: Arc<Stream>,
    opts: ViewerOptions,
    conn: Option<Arc<ConnState>>,
    shutdown: CancellationToken,
    span: tracing::Span,
    admission: Admission,
    rendition: Option<RenditionGuard>,
) -> impl FuturesStream<Item = std::io::Result<Chunk>> + Send + 'static {
    let adaptive = opts.adapt.map(|kind| {
        Box::new(Adaptive {
            kind,
            rung: 0,
            sizes: [None; RUNGS],
            guard: None,
            changed: Instant::now(),
        })
    });
    let viewer = Viewer {
        _admission: admission,
        pacer: Pacer::default(),
        adaptive,
        rendition,
        rx: stream.subscribe(),
        _guard: stream.add_viewer(),
        stream,
        opts,
        conn,
        last_seq: None,
        preamble_sent: false,
        flushes_at_send: None,
        next_allowed: None,
        sent: 0,
        skipped: 0,
        span,
    };
    // The shutdown future is made once, not per frame: each one made registers with the token
    // that every viewer shares, under its lock.
    let mut shutdown = Box::pin(shutdown.cancelled_owned());
    let span = viewer.span.clone();
    // One loop for the viewer's life, polled where it lies: a stream made of a future per chunk
    // (`stream::unfold`) moved the viewer into each one and that future into place, a copy of
    // over a kilobyte per frame per viewer (perf: 3% of the relay's CPU at 1000 viewers).
    let chunks = async_stream::stream! {
        let mut viewer = viewer;
        while let Some(chunk) = viewer.next_chunk(shutdown.as_mut()).await {
            yield Ok::<_, std::io::Error>(chunk);
        }
    };
    // Inside the viewer's span only when it is enabled (above the default log level): the
    // wrapper's span would be one more cache line read at every poll.
    if span.is_disabled() {
        Either::Left(chunks)
    } else {
        Either::Right(InSpan { chunks, span })
    }
}

pin_project_lite::pin_project! {
    /// A stream polled inside a span (tracing's `Instrument` is for futures): what the viewer
    /// logs, the pacing's traces among it, carries the viewer's fields.
    struct InSpan<S> {
        #[pin]
        chunks: S,
        span: tracing::Span,
    }
}

impl<S: FuturesStream> FuturesStream for InSpan<S> {
    type Item = S::Item;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.chunks.poll_next(cx)
    }
}

impl Viewer {
    async fn next_chunk(
        &mut self,
        mut shutdown: Pin<&mut WaitForCancellationFutureOwned>,
    ) -> Option<Chunk> {
        // A new viewer's preamble goes first, as its own static chunk (hyper writes it with the
        // head or the first frame), so no frame is copied to glue them.
        if !self.preamble_sent {
            self.preamble_sent = true;
            let preamble = self.opts.layout.preamble();
            if !preamble.is_empty() {
                return Some(Bytes::from_static(preamble).into());
            }
        }
        // The previous frame may well be written already: this is polled right after the writer
        // flushes. Looked at now, while the count is still in cache from that flush, rather than
        // only after the wait for a newer frame.
        self.note_flush();
        // 1. This viewer's rate cap.
        if let Some(at) = self.next_allowed {
            // Biased, shutdown last, in every wait here: polling the shutdown future takes the
            // lock of the token every viewer shares, so it is polled only while the wait is on.
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(at) => {}
                _ = shutdown.as_mut() => return None,
            }
        }
        // 2. A frame newer than the last one sent. The one wait every frame goes through, so
        //    without a shutdown branch: polling the shutdown future takes the lock every viewer
        //    shares, once a frame for every viewer (with the writer's polls, 1-3% of the relay's
        //    CPU at 1000 viewers, perf).
        //    On shutdown the stream's driver ends and its channel closes, which ends this wait.
        let mut frame = self.newest().await?;
        // 3. The previous frame must have left the writer for the kernel. A viewer that keeps
        //    up has long flushed by now; one that does not waits here, and then takes whatever is
        //    newest at that moment, skipping what was published meanwhile.
        let mut waited = false;
        // The connection could not take the previous frame for a while: its link was busy.
        let mut backed_up = false;
        self.note_flush();
        if let (Some(conn), Some(seen)) = (&self.conn, self.flushes_at_send) {
            waited = true;
            let since = Instant::now();
            tokio::select! {
                biased;
                _ = conn.flushed_since(seen) => {}
                _ = shutdown.as_mut() => return None,
            }
            backed_up = since.elapsed() >= pace::BACKED_UP;
            take_newer(&mut self.rx, &self.stream, &mut frame);
        }
        // 4. Just in time: what is queued ahead of it in the kernels must be nearly read.
        if let Some(conn) = &self.conn {
            // The clock is read once a look (the link's state is a syscall's age old anyway).
            let mut now = Instant::now();
            let mut give_up = None;
            while self.pacer.due(now, waited)
                && now < *give_up.get_or_insert(now + pace::MAX_TOTAL_HOLD)
            {
                let Some(info) = conn.link() else { break };
                let link = self.pacer.observe(&info, now, backed_up);
                backed_up = false;
                tracing::trace!(?info, ?link, "link");
                let Some(hold) = self.pacer.hold(&link) else {
                    break;
                };
                waited = true;
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(hold) => {}
                    _ = shutdown.as_mut() => return None,
                }
                take_newer(&mut self.rx, &self.stream, &mut frame);
                now = Instant::now();
            }
        }

        let skipped = self
            .last_seq
            .map_or(0, |last| frame.seq.saturating_sub(last + 1));
        self.skipped += skipped;
        self.sent += 1;
        if self.adaptive.is_some() {
            self.choose_rung(&frame);
        }
        let chunk = match self.watching() {
            Some(r) => {
                frame
                    .rendition_part(self.opts.layout, r.rendition, || r.counter())
                    .await
            }
            None => frame.part(self.opts.layout),
        };
        if let Some(a) = &mut self.adaptive {
            a.sizes[a.rung] = Some(chunk.len() as u64);
        }
        self.pacer.sent(chunk.len());
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

    /// Forgets the flush count of the last send once the connection has flushed since: a flush
    /// once seen stays seen (the count only grows), so `flushes_at_send` still set means the
    /// previous chunk may still be with the writer.
    fn note_flush(&mut self) {
        if let (Some(conn), Some(seen)) = (&self.conn, self.flushes_at_send) {
            if conn.flushes() > seen {
                self.flushes_at_send = None;
            }
        }
    }

    /// The rendition this frame goes at: an adaptive viewer's rung below the first, else what
    /// it asked for (`None`: the source's frames).
    fn watching(&self) -> Option<&RenditionGuard> {
        match &self.adaptive {
            Some(a) if a.rung > 0 => a.guard.as_ref(),
            _ => self.rendition.as_ref(),
        }
    }

    /// Moves an adaptive viewer to the rung its link carries now (module docs of [`pace`]).
    /// Below the first rung it always holds the guard of the rung it is on.
    fn choose_rung(&mut self, frame: &Frame) {
        let base = self.rendition.as_ref().map(|g| g.rendition);
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        if frame.width == 0 || frame.height == 0 {
            // A JPEG whose size could not be read cannot be scaled either.
            return;
        }
        let rungs = pace::ladder(
            base.unwrap_or_default(),
            a.kind,
            (frame.width, frame.height),
        );
        let full = frame.jpeg.len() as f64;
        let sizes: [u64; RUNGS] =
            std::array::from_fn(|i| a.sizes[i].unwrap_or((full * pace::GUESSED_SHARE[i]) as u64));
        let fit = self.pacer.fitting_rung(&sizes);
        let now = Instant::now();
        let mut rung = a.rung;
        if fit > rung {
            // Down at once: the link no longer carries this rung.
            rung = fit;
        } else if fit < rung && now >= a.changed + pace::STEP_UP_EVERY {
            rung -= 1;
        }
        if rung != a.rung {
            if rung == 0 {
                // Back on its own: the rung it leaves stops being made for it.
                a.guard = None;
            } else if a.guard.as_ref().is_none_or(|g| g.rendition != rungs[rung]) {
                // Joined before the old one is let go; beyond the stream's rendition cap it
                // stays where it is.
                match self.stream.join_rendition(rungs[rung]) {
                    Ok(guard) => a.guard = guard,
                    // Its own frames need no place under the cap.
                    Err(_) if fit == 0 => {
                        rung = 0;
                        a.guard = None;
                    }
                    Err(_) => rung = a.rung,
                }
            }
            a.changed = now;
            a.rung = rung;
        } else if rung > 0 && a.guard.as_ref().is_some_and(|g| g.rendition != rungs[rung]) {
            // The frame's size changed under the same rung.
            if let Ok(guard) = self.stream.join_rendition(rungs[rung]) {
                a.guard = guard;
            }
        }
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

/// An adaptive viewer's place on its ladder.
struct Adaptive {
    kind: Adapt,
    /// The rung it is on (0: what it asked for).
    rung: usize,
    /// Bytes of the last part sent at each rung.
    sizes: [Option<u64>; RUNGS],
    /// Counts it as a viewer of the rendition it gets when below the first rung.
    guard: Option<RenditionGuard>,
    changed: Instant,
}

/// Replaces `frame` with the newest one of `stream` if that is newer (after a wait). A function
/// of the fields it needs, so that the pacing loop can call it while it holds the connection.
fn take_newer(rx: &mut watch::Receiver<Latest>, stream: &Stream, frame: &mut Arc<Frame>) {
    if let Some(newer) = rx.borrow_and_update().as_ref() {
        if newer.seq > frame.seq && stream.is_fresh(newer) {
            *frame = newer.clone();
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _span = self.span.enter();
        tracing::debug!(sent = self.sent, skipped = self.skipped, "viewer left");
    }
}
