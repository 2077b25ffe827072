//! One viewer of a stream: the response body of `/streams/NAME.mjpg` or `.frames`.
//!
//! The loop, per frame: wait out this viewer's `?fps` cap, wait for a frame newer than the last
//! one sent, make sure the connection has taken the previous frame ([`crate::net::conn`]), wait
//! until the viewer has nearly read what is queued ahead of it ([`super::pace`]), then send the
//! *newest* frame, at the rung its link carries when it asked for `?adapt`. Whatever was
//! published in between is skipped, never queued, so what a slow viewer sees is late by about
//! the time one frame takes to cross its own link.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use mjpeg_shared::wire::Layout;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::frame::Frame;
use super::pace::{self, Adapt, Pacer, RUNGS};
use super::stream::{Latest, RenditionGuard, Stream, ViewerGuard};
use super::waiters::Registration;
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

/// Where a viewer is in sending its next chunk (module docs): the steps, in order, of the
/// loop its body runs once per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A new viewer's preamble goes first.
    Preamble,
    /// This viewer's rate cap: whether to wait it out.
    Cap,
    /// Waiting out the rate cap (`sleep`).
    Capped,
    /// A frame newer than the last one sent.
    Frame,
    /// The connection has not taken the previous frame yet.
    Flush,
    /// Just in time: whether to hold the frame while what is queued ahead of it is read.
    Pace,
    /// Holding it (`sleep`), then looking at the link again.
    Held,
    /// The frame goes now, at the rung or rendition it is sent at.
    Send,
    /// Its rendition's part is being made (`making`).
    Making,
    /// Shutdown, or the stream's driver ended.
    Ended,
}

/// One viewer's body: a stream written out by hand, one step per wait (module docs). A
/// generator (`async_stream`) laid out its locals, the waits' futures and the viewer's fields
/// as the compiler chose, spread over some ten cache lines that every frame touched; at a
/// thousand viewers each is a likely miss (docs/benchmarks.md, "The viewer as a state
/// machine").
///
/// `repr(C)` and cache-line aligned, in this order: what every frame of a viewer that keeps up
/// reads and writes, in its first four lines (the pacer's first fields among them); what only
/// some viewers or some frames need after; the waits' futures, boxed, and what lives as long as
/// the viewer, last.
#[repr(C, align(64))]
struct Viewer {
    step: Step,
    /// Polled inside its span: only when that is enabled (above the default log level).
    in_span: bool,
    /// This frame waited (for the connection, or held by the pacer).
    waited: bool,
    /// The connection was slow to take the previous frame: its link was busy.
    backed_up: bool,
    rx: watch::Receiver<Latest>,
    last_seq: Option<u64>,
    /// The connection's flush count when the last chunk was handed over (`None` once a flush
    /// since has been seen).
    flushes_at_send: Option<u64>,
    conn: Option<Arc<ConnState>>,
    stream: Arc<Stream>,
    /// Its place on the stream's list of viewers waiting for a frame.
    registration: Registration,
    next_allowed: Option<Instant>,
    /// The frame on its way, from the wait for it until it is handed over.
    held: Option<Arc<Frame>>,
    sent: u64,
    skipped: u64,
    opts: ViewerOptions,
    /// Boxed: most viewers do not adapt, and its ladder would sit among the fields above.
    adaptive: Option<Box<Adaptive>>,
    /// The rendition it watches (`None`: the source's frames), counted while it does.
    rendition: Option<RenditionGuard>,
    pacer: Pacer,
    /// The longest the frame may be held: its first look at the link plus `MAX_TOTAL_HOLD`.
    /// Set only while it is held (the look that lets it go clears it), so that a viewer that
    /// keeps up never writes it.
    give_up: Option<Instant>,
    /// When the wait for the connection's flush began.
    flush_from: Instant,
    /// The cap's and the pacer's waits: one timer, reset for each, made at the first.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A rendition's part being made (`Step::Making`).
    making: Option<Pin<Box<dyn Future<Output = Chunk> + Send>>>,
    /// Made once, not per wait: each one made registers with the token that every viewer
    /// shares, under its lock.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    span: tracing::Span,
    /// Its place in the stream's viewer count and under the viewer caps: let go as soon as its
    /// body ends, not when its writer is done with the body (the end of a chunked body may take
    /// a slow link a while).
    places: Option<(ViewerGuard, Admission)>,
}

/// The body stream of one viewer. Ends when the server shuts down or the stream's driver ends;
/// its writer (hyper, or the relay's own after a takeover, `net::takeover`) drops it, and the
/// viewer stops counting, when the client disconnects.
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
    Viewer {
        step: Step::Preamble,
        // The span's own field would be one more cache line read at every poll.
        in_span: !span.is_disabled(),
        waited: false,
        backed_up: false,
        rx: stream.subscribe(),
        last_seq: None,
        flushes_at_send: None,
        conn,
        registration: Registration::new(),
        next_allowed: None,
        sent: 0,
        skipped: 0,
        held: None,
        opts,
        adaptive,
        rendition,
        pacer: Pacer::default(),
        give_up: None,
        flush_from: Instant::now(),
        sleep: None,
        making: None,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        span,
        places: Some((stream.add_viewer(), admission)),
        stream,
    }
}

impl FuturesStream for Viewer {
    type Item = std::io::Result<Chunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let chunk = if this.in_span {
            // What the viewer logs, the pacing's traces among it, carries the viewer's fields.
            let span = this.span.clone();
            let _entered = span.enter();
            this.poll_chunk(cx)
        } else {
            this.poll_chunk(cx)
        };
        chunk.map(|chunk| chunk.map(Ok))
    }
}

impl Viewer {
    /// The loop of the module docs, resumed at `step`. Every wait but the one for a frame also
    /// ends on shutdown, polled last: polling the shutdown future takes the lock of the token
    /// every viewer shares, so it is polled only while such a wait is on.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        loop {
            match self.step {
                Step::Preamble => {
                    // A new viewer's preamble goes first, as its own static chunk (hyper writes
                    // it with the head or the first frame), so no frame is copied to glue them.
                    self.step = Step::Cap;
                    let preamble = self.opts.layout.preamble();
                    if !preamble.is_empty() {
                        return Poll::Ready(Some(Bytes::from_static(preamble).into()));
                    }
                }
                Step::Cap => {
                    // The previous frame may well be written already: this is polled right
                    // after the writer flushes. Looked at now, while the count is still in
                    // cache from that flush, rather than only after the wait for a newer frame.
                    self.note_flush();
                    self.step = match self.next_allowed {
                        Some(at) => {
                            self.start_sleep(at);
                            Step::Capped
                        }
                        None => Step::Frame,
                    };
                }
                Step::Capped => {
                    if ready!(self.poll_sleep(cx)).is_none() {
                        return self.end();
                    }
                    self.step = Step::Frame;
                }
                Step::Frame => {
                    // The one wait every frame goes through, so without shutdown: on shutdown
                    // the stream's driver ends, which ends this wait.
                    let Some(frame) = ready!(self.poll_newest(cx)) else {
                        return self.end();
                    };
                    self.held = Some(frame);
                    self.waited = false;
                    self.backed_up = false;
                    self.note_flush();
                    self.step = if self.conn.is_some() && self.flushes_at_send.is_some() {
                        self.flush_from = Instant::now();
                        Step::Flush
                    } else {
                        Step::Pace
                    };
                }
                Step::Flush => {
                    // The previous frame must have left the writer for the kernel. A viewer
                    // that keeps up has long flushed by now; one that does not waits here, and
                    // then takes whatever is newest at that moment, skipping what was
                    // published meanwhile.
                    if ready!(self.poll_flushed(cx)).is_none() {
                        return self.end();
                    }
                    self.waited = true;
                    self.backed_up = self.flush_from.elapsed() >= pace::BACKED_UP;
                    self.take_newer();
                    self.step = Step::Pace;
                }
                Step::Pace => {
                    self.step = match self.next_hold() {
                        Some(until) => {
                            self.start_sleep(until);
                            Step::Held
                        }
                        None => Step::Send,
                    };
                }
                Step::Held => {
                    if ready!(self.poll_sleep(cx)).is_none() {
                        return self.end();
                    }
                    self.take_newer();
                    self.step = Step::Pace;
                }
                Step::Send => {
                    let frame = self
                        .held
                        .take()
                        .expect("a frame is held from Frame to Send");
                    if self.adaptive.is_some() {
                        self.choose_rung(&frame);
                    }
                    let layout = self.opts.layout;
                    let Some(r) = self.watching() else {
                        let chunk = frame.part(layout);
                        return Poll::Ready(Some(self.hand_over(frame, chunk)));
                    };
                    if let Some(chunk) = frame.rendition_part_made(layout, r.rendition) {
                        return Poll::Ready(Some(self.hand_over(frame, chunk)));
                    }
                    // Not made yet: this viewer makes it, or waits for whoever does. A future
                    // kept in the viewer cannot borrow from it, so it owns what it needs.
                    let (making, rendition, counter) = (frame.clone(), r.rendition, r.counter());
                    self.making = Some(Box::pin(async move {
                        making.rendition_part(layout, rendition, || counter).await
                    }));
                    self.held = Some(frame);
                    self.step = Step::Making;
                }
                Step::Making => {
                    let making = self.making.as_mut().expect("made in Send");
                    let chunk = ready!(making.as_mut().poll(cx));
                    self.making = None;
                    let frame = self.held.take().expect("a frame is held while it is made");
                    return Poll::Ready(Some(self.hand_over(frame, chunk)));
                }
                Step::Ended => return Poll::Ready(None),
            }
        }
    }

    /// Ends the body, letting go now of what it holds: its writer may keep the body a while
    /// longer, writing the end of a chunked body to a slow link.
    fn end(&mut self) -> Poll<Option<Chunk>> {
        self.step = Step::Ended;
        self.held = None;
        self.making = None;
        self.sleep = None;
        self.stream.waiters.leave(&self.registration);
        self.adaptive = None;
        self.rendition = None;
        self.places = None;
        Poll::Ready(None)
    }

    /// Counts `chunk`, the part of `frame`, as handed over, and sets up the next frame's loop.
    fn hand_over(&mut self, frame: Arc<Frame>, chunk: Chunk) -> Chunk {
        let skipped = self
            .last_seq
            .map_or(0, |last| frame.seq.saturating_sub(last + 1));
        self.skipped += skipped;
        self.sent += 1;
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
        self.step = Step::Cap;
        chunk
    }

    /// A current frame newer than the last one sent. `None` once the driver has ended.
    fn poll_newest(&mut self, cx: &mut Context<'_>) -> Poll<Option<Arc<Frame>>> {
        loop {
            if let Some(frame) = self.newer_frame() {
                return Poll::Ready(Some(frame));
            }
            match self.rx.has_changed() {
                // Closed: the driver has ended. A frame it published just before is still
                // sent; the next look finds nothing newer and ends.
                Err(_) => return Poll::Ready(self.newer_frame()),
                Ok(true) => continue,
                Ok(false) => {}
            }
            if !self
                .stream
                .waiters
                .register(cx.waker(), &mut self.registration)
            {
                // On the list already: the publish that ends this round wakes it.
                return Poll::Pending;
            }
            // A frame published between the look above and the registration woke the list
            // without this viewer.
            if matches!(self.rx.has_changed(), Ok(false)) {
                return Poll::Pending;
            }
        }
    }

    /// The newest frame if it is current and newer than the last one sent.
    fn newer_frame(&mut self) -> Option<Arc<Frame>> {
        let latest = self.rx.borrow_and_update();
        let frame = latest.as_ref()?;
        let newer = self.last_seq.is_none_or(|last| frame.seq > last);
        (newer && self.stream.is_fresh(frame)).then(|| frame.clone())
    }

    /// Sets the timer of the next [`Viewer::poll_sleep`] to `until`.
    fn start_sleep(&mut self, until: Instant) {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(until),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(until))),
        }
    }

    /// Waits for the timer [`Viewer::start_sleep`] set, or shutdown (`None`).
    fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let sleep = self.sleep.as_mut().expect("set by start_sleep");
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(()));
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Waits until the connection has flushed since the last send, or shutdown (`None`).
    fn poll_flushed(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let (Some(conn), Some(seen)) = (&self.conn, self.flushes_at_send) else {
            return Poll::Ready(Some(()));
        };
        if conn.poll_flushed_since(cx, seen).is_ready() {
            return Poll::Ready(Some(()));
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Just in time: what is queued ahead of the frame in the kernels must be nearly read.
    /// Looks at the link when due and says until when to hold the frame before looking again;
    /// `None`: it goes now.
    fn next_hold(&mut self) -> Option<Instant> {
        self.conn.as_ref()?;
        // The clock is read once a look (the link's state is a syscall's age old anyway).
        let now = Instant::now();
        if !self.pacer.due(now, self.waited) {
            return None;
        }
        // A held frame is always due (`waited`), so it comes back to this point until a look
        // lets it go, and that look clears `give_up`.
        let hold = self.look_at_link(now);
        if hold.is_none() && self.give_up.is_some() {
            self.give_up = None;
        }
        hold
    }

    /// [`Viewer::next_hold`] once the link is due a look.
    fn look_at_link(&mut self, now: Instant) -> Option<Instant> {
        if self.give_up.is_some_and(|give_up| now >= give_up) {
            return None;
        }
        let info = self.conn.as_ref()?.link()?;
        let link = self.pacer.observe(&info, now, self.backed_up);
        self.backed_up = false;
        tracing::trace!(?info, ?link, "link");
        let hold = self.pacer.hold(&link)?;
        self.waited = true;
        // From the first look that holds the frame, which is its first look: one that lets it
        // go sends it.
        self.give_up.get_or_insert(now + pace::MAX_TOTAL_HOLD);
        Some(now + hold)
    }

    /// Replaces the held frame with the newest one if that is newer (after a wait).
    fn take_newer(&mut self) {
        let latest = self.rx.borrow_and_update();
        if let (Some(newer), Some(frame)) = (latest.as_ref(), &mut self.held) {
            if newer.seq > frame.seq && self.stream.is_fresh(newer) {
                *frame = newer.clone();
            }
        }
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

impl Drop for Viewer {
    fn drop(&mut self) {
        if self.step != Step::Ended {
            self.stream.waiters.leave(&self.registration);
        }
        let _span = self.span.enter();
        tracing::debug!(sent = self.sent, skipped = self.skipped, "viewer left");
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::*;
    use crate::source::push::{PushOptions, PushSource};
    use crate::source::{Opened, SourceFrame};
    use crate::testing::Wakes;

    const WAIT: Duration = Duration::from_secs(5);

    /// Polls `body` by hand until it yields a chunk that carries a frame or ends, each time it
    /// is pending waiting (boundedly) for its own wake-up: so a frame that would only be found
    /// by polling again, with nothing to wake the viewer, fails the test.
    async fn next_part(
        body: &mut Pin<Box<impl FuturesStream<Item = std::io::Result<Chunk>>>>,
    ) -> Option<Bytes> {
        let (woken, waker) = Wakes::waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match body.as_mut().poll_next(&mut cx) {
                Poll::Ready(None) => return None,
                Poll::Ready(Some(chunk)) => {
                    let chunk = chunk.unwrap().into_data();
                    if chunk.windows(6).any(|w| w == b"frame-") {
                        return Some(chunk);
                    }
                }
                Poll::Pending => tokio::time::timeout(WAIT, woken.next())
                    .await
                    .expect("a pending viewer is woken when there is something for it"),
            }
        }
    }

    /// A viewer waiting for a frame is woken by each publish (the stream's list of waiters), and
    /// by the driver's end alone, without its own shutdown firing; and its body lets go of its
    /// place in the viewer count as soon as it ends, while its writer still holds it.
    #[tokio::test]
    async fn a_waiting_viewer_is_woken_by_every_frame_pushed_and_by_the_drivers_end() {
        let options = PushOptions {
            token: None,
            replace: false,
            max_bytes: 1 << 20,
            max_meta: 1024,
        };
        let (source, hub) = PushSource::new("t", &options);
        let driver_stop = CancellationToken::new();
        let opened = Opened {
            source: Box::new(source),
            ingest: Some(hub.clone()),
        };
        let stream = Stream::spawn(
            "t".into(),
            "push".into(),
            opened,
            None,
            8,
            driver_stop.clone(),
        );
        let opts = ViewerOptions {
            layout: Layout::Frames,
            max_fps: None,
            adapt: None,
        };
        let admission = Admission {
            relay: None,
            stream: None,
        };
        let never = CancellationToken::new();
        let mut body = Box::pin(body(
            stream.clone(),
            opts,
            None,
            never,
            tracing::Span::none(),
            admission,
            None,
        ));
        for n in 1..=3u8 {
            let jpeg = Bytes::from(format!("frame-{n}"));
            // Pushed once the viewer waits (the delay), or before: either way it must come.
            let push = hub.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                push.publish(SourceFrame {
                    captured_micros: unix_micros_now(),
                    jpeg,
                    width: 0,
                    height: 0,
                    pipeline: Default::default(),
                });
            });
            let part = next_part(&mut body).await.expect("a frame, not the end");
            let wanted = format!("frame-{n}");
            assert!(
                part.windows(wanted.len()).any(|w| w == wanted.as_bytes()),
                "frame {n} in {part:?}"
            );
        }
        assert_eq!(stream.viewers(), 1);
        driver_stop.cancel();
        assert!(next_part(&mut body).await.is_none(), "ends with the driver");
        assert_eq!(stream.viewers(), 0, "let go at its end, not at its drop");
        drop(body);
    }

    /// What every frame of a viewer that keeps up reads or writes lies in its first four cache
    /// lines, the pacer's first fields in the fourth (docs/benchmarks.md, "The viewer as a
    /// state machine"): a field added among them, or a reordering, shows here.
    #[test]
    fn what_every_frame_touches_sits_in_the_first_four_cache_lines() {
        assert_eq!(align_of::<Viewer>(), 64);
        assert!(offset_of!(Viewer, skipped) + size_of::<u64>() <= 128);
        assert!(offset_of!(Viewer, rendition) + size_of::<Option<RenditionGuard>>() <= 192);
        assert_eq!(offset_of!(Viewer, pacer), 192);
    }
}
