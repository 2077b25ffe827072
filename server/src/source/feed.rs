//! The feed: how a live source hands frames to its stream, written once for every producer
//! (camera threads, the upstream pump, the ffmpeg pump, ingest requests).
//!
//! - A **one-slot channel**: the producer replaces the newest frame; nothing queues, so a
//!   producer faster than the stream never builds a backlog, and a frame that arrived while nobody
//!   asked is not news to the next viewer ([`Feed::pause`]).
//! - A **demand clock**: each time the stream asks for a frame the feed notes when, so a producer
//!   runs only while someone watches (plus its own linger or idle time), and wakes a producer
//!   that waits for demand ([`Feeder::wanted`], [`Feeder::until_wanted`], [`Feeder::on_demand`]).
//! - **Patience and NO SIGNAL**: while the producer delivers nothing (still opening, stalled,
//!   failed), the stream gets a NO SIGNAL picture once a second naming the cause, so viewers stay
//!   connected and see live frames again on the same connection when the producer recovers. The
//!   cause is also what the API shows as `last_error`, and errors count in `/metrics`. A producer
//!   that finished (a file played once) leaves its last frame, without NO SIGNAL.
//!
//! A producer reports its state with [`Feeder::set_live`] and [`Feeder::set_error`]; publishing
//! a frame means it is live and well. An async producer (a connection, a child process) runs in
//! [`Feeder::pump`], the one retry loop: attempt while wanted, back off after a failure. Dropping
//! the [`Feed`] (the stream's side) cancels [`Feeder::stopped`], which every producer watches.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mjpeg_shared::multipart::MultipartParser;
use mjpeg_shared::wire;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::options::plausible_size;
use super::{draw, Pipeline, SourceError, SourceFrame, SourceInfo};
use crate::backoff::Backoff;
use crate::clock::unix_micros_now;
use crate::jpeg;

/// While the producer delivers nothing, a NO SIGNAL frame goes out this often.
const NO_SIGNAL_EVERY: Duration = Duration::from_secs(1);
/// How often a waiting stream refreshes its demand (and re-checks its patience, which shrinks
/// as soon as a producer reports an error).
const DEMAND_EVERY: Duration = Duration::from_millis(200);
/// Demand refreshed within this long still counts, on top of a producer's linger: the stream
/// refreshes it every [`DEMAND_EVERY`] while it waits, and between frames it may not wait at all.
const DEMAND_GRACE: Duration = Duration::from_secs(1);
/// Size of NO SIGNAL before any frame or hint says better.
const DEFAULT_SIZE: (u32, u32) = (640, 480);
/// A measured frame interval counts for patience up to this (a source that sent one frame a
/// minute ago must not make the next stall wait three minutes).
const MAX_MEASURED_INTERVAL: Duration = Duration::from_secs(10);
/// `last_demand_ms` before anyone has asked for a frame.
const NEVER: u64 = u64::MAX;
/// A pump's restart backoff: doubles from 250 ms up to 5 s; reset by an attempt that delivered.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

/// How one attempt of a pumped producer ended, when it did not fail.
pub enum Ended {
    /// Nobody watches any more (past the linger): stopped on purpose.
    Released,
    /// Delivered all it will (a file played once): the last frame stays and no NO SIGNAL
    /// follows; the producer is not started again.
    Finished,
}

/// Why an attempt failed, and whether it delivered any frame first (the backoff then starts
/// over: the producer worked, and the next failure is news).
pub type Failure = (String, bool);

/// How long the stream waits for a live frame before NO SIGNAL.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// While the producer is starting (no frame and no error yet): opening a camera, connecting.
    pub opening: Duration,
    /// Once it was live or has failed: at least this, and at least three frame intervals (a
    /// 1 fps camera is not "lost" between two frames).
    pub stalled: Duration,
}

/// What a producer reported.
#[derive(Default)]
struct Status {
    /// The device, URL or input as shown to people (never with credentials).
    what: String,
    live: bool,
    /// When `live` last turned true, for "no frame for N s" before any frame.
    live_since: Option<Instant>,
    error: Option<String>,
    /// Delivered all it will (a file played once): no NO SIGNAL any more.
    ended: bool,
    /// Nominal time between frames, from the producer (a camera's mode).
    period: Option<Duration>,
    /// Size to draw NO SIGNAL at before any frame came (a camera's mode, a configured size).
    size_hint: Option<(u32, u32)>,
    /// Parts received and dropped (not a JPEG, too large).
    dropped: u64,
    /// Errors reported, and recoveries (a frame after an error), for the stream's counters.
    errors: u64,
    recoveries: u64,
}

impl Status {
    fn set_live(&mut self, live: bool) {
        if live && !self.live {
            self.live_since = Some(Instant::now());
        }
        self.live = live;
    }
}

struct Shared {
    stream: String,
    /// What NO SIGNAL says while the producer starts ("opening camera 0").
    starting: String,
    status: Mutex<Status>,
    last_demand_ms: AtomicU64,
    epoch: Instant,
    demand: Notify,
    on_demand: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    stop: CancellationToken,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The stream asks for a frame now.
    fn note_demand(&self) {
        self.last_demand_ms.store(self.now_ms(), Ordering::Release);
    }

    /// The status, even if a producer thread panicked while holding it (it holds plain data).
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_producer(&self) {
        self.demand.notify_one();
        if let Some(wake) = self
            .on_demand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            wake();
        }
    }
}

/// The producer's side. Cheap to clone; every clone feeds the same stream.
#[derive(Clone)]
pub struct Feeder {
    shared: Arc<Shared>,
    tx: Arc<watch::Sender<Option<Arc<SourceFrame>>>>,
}

/// The stream's side: what its source's `next_frame` waits on.
pub struct Feed {
    shared: Arc<Shared>,
    rx: watch::Receiver<Option<Arc<SourceFrame>>>,
    /// `None`: no NO SIGNAL at all (pushed frames: nothing to wait for but the pusher).
    patience: Option<Patience>,
    /// When the feed last returned a frame (live or NO SIGNAL).
    last_returned: Instant,
    /// When it last returned a live frame.
    last_live: Option<Instant>,
    /// The time between the last two live frames, measured only when nothing (a pause, NO
    /// SIGNAL) came between them.
    interval: Option<Duration>,
    /// The previous live frame, while the next one's interval can be measured.
    interval_from: Option<Instant>,
    showing_no_signal: bool,
    /// Size of the last live frame, if plausible (an untrusted upstream's JPEG header may claim
    /// 65535x65535), so NO SIGNAL matches it.
    last_size: Option<(u32, u32)>,
    /// Set by `pause`: the next `next_frame` starts a new wait.
    paused: bool,
    /// Frames that arrived while paused are old news on resume (a camera's or upstream's, which
    /// run on for their idle time or linger); a pusher's newest frame is not.
    drop_on_resume: bool,
}

/// A new feed for stream `stream`. `what` names the device or input as shown (no credentials);
/// `starting` is what NO SIGNAL says before the producer has been live or failed.
pub fn channel(
    stream: &str,
    what: String,
    starting: String,
    patience: Option<Patience>,
) -> (Feed, Feeder) {
    let (tx, rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        stream: stream.to_string(),
        starting,
        status: Mutex::new(Status {
            what,
            ..Status::default()
        }),
        last_demand_ms: AtomicU64::new(NEVER),
        epoch: Instant::now(),
        demand: Notify::new(),
        on_demand: Mutex::new(None),
        stop: CancellationToken::new(),
    });
    let feed = Feed {
        shared: shared.clone(),
        rx,
        patience,
        last_returned: Instant::now(),
        last_live: None,
        interval: None,
        interval_from: None,
        showing_no_signal: false,
        last_size: None,
        // The first request starts the NO SIGNAL clock, as after a pause.
        paused: true,
        drop_on_resume: true,
    };
    let feeder = Feeder {
        shared,
        tx: Arc::new(tx),
    };
    (feed, feeder)
}

impl Feeder {
    /// Publishes a frame as the newest, replacing one not taken yet. Frames flow: the producer is
    /// live and whatever went wrong before is over.
    pub fn publish(&self, frame: SourceFrame) {
        {
            let mut status = self.shared.status();
            status.set_live(true);
            if status.error.take().is_some() {
                status.recoveries += 1;
            }
        }
        self.tx.send_replace(Some(Arc::new(frame)));
    }

    /// Live (a device open, a connection up; clears the error) or not (closed, released; the
    /// error stays for the API).
    pub fn set_live(&self, live: bool) {
        let mut status = self.shared.status();
        status.set_live(live);
        if live {
            status.error = None;
        }
    }

    /// The device as shown from now on (a camera's name once it is open).
    pub fn set_what(&self, what: String) {
        self.shared.status().what = what;
    }

    /// Something went wrong: NO SIGNAL and the API say so until a frame is published or the
    /// producer is live again.
    /// URLs in it are redacted ([`crate::redact::scrub`]): the text reaches every viewer.
    pub fn set_error(&self, error: impl Into<String>) {
        let error = crate::redact::scrub(&error.into());
        let mut status = self.shared.status();
        status.set_live(false);
        status.error = Some(error);
        status.errors += 1;
    }

    /// The producer delivered all it will (a file played once): viewers keep the last frame
    /// and no NO SIGNAL follows.
    pub fn set_ended(&self) {
        self.shared.status().ended = true;
    }

    /// What the producer knows of its frames before they come: the nominal interval between
    /// them and their size.
    pub fn set_format(&self, period: Option<Duration>, size: Option<(u32, u32)>) {
        let mut status = self.shared.status();
        status.period = period;
        status.size_hint = size;
    }

    /// Publishes every complete part `parser` holds that is a JPEG, with its `X-Timestamp` as
    /// the capture time when it has one (a relayed stream's), else now, and its pipeline stages
    /// when it has any (another relay's pipeline stream; this relay's receipt is added after
    /// them); counts and logs the others (not a JPEG, too large, malformed) as dropped. True if
    /// any frame was published. For producers that read a multipart stream: an upstream's body,
    /// ffmpeg's output.
    pub fn publish_parts(&self, parts: &mut RelayedParts) -> bool {
        let mut published = false;
        loop {
            let why = match parts.parser.next_part() {
                Ok(Some(part)) if jpeg::looks_like_jpeg(&part.body) => {
                    let captured_micros = part.timestamp_micros().unwrap_or_else(unix_micros_now);
                    let (width, height) = jpeg::dimensions(&part.body).unwrap_or((0, 0));
                    let stages = part.stages();
                    // Its metadata, if the part just before was that, for this frame.
                    // (Only by number: a part without one names no frame.)
                    let meta = parts
                        .meta
                        .take()
                        .filter(|(seq, _)| seq.is_some() && *seq == part.sequence())
                        .map(|(_, meta)| meta);
                    let pipeline = if stages.is_empty() && meta.is_none() {
                        Pipeline::default()
                    } else {
                        Pipeline::received(stages, meta)
                    };
                    self.publish(SourceFrame {
                        jpeg: part.body,
                        captured_micros,
                        width,
                        height,
                        pipeline,
                    });
                    published = true;
                    continue;
                }
                // Another relay's metadata (`.frames?meta=1`): kept for the JPEG part after it,
                // checked as a push's is.
                Ok(Some(part))
                    if part.content_type().as_deref() == Some(wire::META_CONTENT_TYPE) =>
                {
                    match Pipeline::check_meta(&part.body, Pipeline::DEFAULT_MAX_META) {
                        Ok(meta) => {
                            parts.meta = Some((part.sequence(), meta));
                            continue;
                        }
                        Err(e) => e.to_string(),
                    }
                }
                Ok(Some(_)) => "a part that is not a JPEG".to_string(),
                Ok(None) => return published,
                Err(err) => err.to_string(),
            };
            self.shared.status().dropped += 1;
            tracing::warn!(why, "part dropped");
        }
    }

    /// Called whenever the stream asks for a frame: for a producer thread that parks while nobody
    /// asks (an async producer uses [`Feeder::until_wanted`] instead).
    pub fn on_demand(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self
            .shared
            .on_demand
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(wake));
    }

    /// True if the stream asked for a frame within `linger`, plus a second's grace (so that
    /// `linger` 0 means "while watched": the stream asks only every so often).
    pub fn wanted(&self, linger: Duration) -> bool {
        self.asked_within(linger + DEMAND_GRACE)
    }

    /// True if the stream asked for a frame within `window`, exactly (a camera's idle time).
    pub fn asked_within(&self, window: Duration) -> bool {
        let last = self.shared.last_demand_ms.load(Ordering::Acquire);
        last != NEVER && self.shared.now_ms().saturating_sub(last) < window.as_millis() as u64
    }

    /// Counts as asked for now (`--require-camera` opens the camera before any viewer).
    pub fn want_now(&self) {
        self.shared.note_demand();
    }

    /// Waits until [`Feeder::wanted`]; false if the feed was dropped first.
    pub async fn until_wanted(&self, linger: Duration) -> bool {
        while !self.wanted(linger) {
            tokio::select! {
                _ = self.shared.demand.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.shared.stop.cancelled() => return false,
            }
        }
        true
    }

    /// Cancelled when the stream's side is dropped (the relay shuts down): producers end.
    pub fn stopped(&self) -> &CancellationToken {
        &self.shared.stop
    }

    /// The loop of an async producer, until the feed is dropped: wait until frames are wanted
    /// (within `linger`), make one `attempt` (connect and read, run a child process), and after
    /// a failure say why (NO SIGNAL, the API, the log) and try again with backoff.
    pub async fn pump<F, Fut>(&self, linger: Duration, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Ended, Failure>>,
    {
        let mut backoff = BACKOFF;
        while self.until_wanted(linger).await {
            let result = tokio::select! {
                r = attempt() => r,
                _ = self.shared.stop.cancelled() => return,
            };
            let pause = match result {
                Ok(Ended::Released) => {
                    tracing::debug!("released: nobody watching");
                    self.set_live(false);
                    backoff.reset();
                    continue;
                }
                Ok(Ended::Finished) => {
                    // Stays, so the channel stays open and the last frame with it.
                    tracing::info!("delivered all it will");
                    self.set_ended();
                    self.shared.stop.cancelled().await;
                    return;
                }
                Err((err, delivered)) => {
                    let err = crate::redact::scrub(&err);
                    if delivered {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%err, retry_in_ms = delay.as_millis() as u64, "source unavailable");
                    self.set_error(err);
                    delay
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shared.stop.cancelled() => return,
            }
        }
    }
}

impl Feed {
    /// Waits for the next live frame; while none comes within the patience, returns NO SIGNAL
    /// once a second.
    pub async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        if std::mem::take(&mut self.paused) {
            self.last_returned = Instant::now();
            self.showing_no_signal = false;
            self.interval_from = None;
            if self.drop_on_resume {
                // Frames from before the pause (a producer runs on for its linger) are old by
                // now: only what arrives from here on counts.
                self.rx.borrow_and_update();
            }
        }
        loop {
            self.shared.note_demand();
            self.shared.wake_producer();
            let no_signal_at = self.patience().map(|p| self.last_returned + p);
            let wake = Instant::now() + DEMAND_EVERY;
            let wake = no_signal_at.map_or(wake, |at| at.min(wake));
            tokio::select! {
                changed = self.rx.changed() => {
                    changed.map_err(|_| SourceError::Failed(format!("{} has stopped", self.shared.status().what)))?;
                    let Some(frame) = self.rx.borrow_and_update().clone() else { continue };
                    let now = Instant::now();
                    if let Some(from) = self.interval_from.replace(now) {
                        self.interval = Some(now - from);
                    }
                    self.last_live = Some(now);
                    self.last_returned = now;
                    self.showing_no_signal = false;
                    if plausible_size((frame.width, frame.height)) {
                        self.last_size = Some((frame.width, frame.height));
                    }
                    return Ok(SourceFrame::clone(&frame));
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    if no_signal_at.is_some_and(|at| Instant::now() >= at) {
                        self.last_returned = Instant::now();
                        self.showing_no_signal = true;
                        self.interval_from = None;
                        return self.no_signal();
                    }
                }
            }
        }
    }

    /// Nobody watches any more. When someone does again, the producer (which may have closed
    /// meanwhile) gets its full opening patience before NO SIGNAL.
    pub fn pause(&mut self) {
        self.paused = true;
        if !self.drop_on_resume {
            // What was there at the pause has been shown; what comes while paused has not.
            self.rx.borrow_and_update();
        }
    }

    /// Frames published while paused are shown on resume (pushed frames: the pusher's newest
    /// picture is current however long ago it came), instead of dropped.
    pub fn keep_frames_from_pause(mut self) -> Self {
        self.drop_on_resume = false;
        self
    }

    /// What the feed knows for `/api/streams`: the last live frame's size (if plausible), the
    /// device as shown, why the producer is not live, parts dropped, failures and recoveries.
    /// Sources fill in the rest (rates, formats) over it.
    pub fn info(&self, kind: &'static str) -> SourceInfo {
        let status = self.shared.status();
        SourceInfo {
            kind,
            width: self.last_size.map(|s| s.0),
            height: self.last_size.map(|s| s.1),
            device: Some(status.what.clone()),
            dropped_parts: Some(status.dropped),
            last_error: status.error.clone(),
            errors: status.errors,
            recoveries: status.recoveries,
            ..SourceInfo::default()
        }
    }

    /// True while the last frame returned was NO SIGNAL.
    pub fn showing_no_signal(&self) -> bool {
        self.showing_no_signal
    }

    /// How long to wait for a live frame before NO SIGNAL; `None`: wait for ever.
    fn patience(&self) -> Option<Duration> {
        let patience = self.patience?;
        let status = self.shared.status();
        if status.ended {
            return None;
        }
        if self.showing_no_signal {
            return Some(NO_SIGNAL_EVERY);
        }
        if !status.live && status.error.is_none() {
            return Some(patience.opening);
        }
        // The nominal period when the producer knows it, else the measured one, capped.
        let period = status
            .period
            .or(self.interval.map(|i| i.min(MAX_MEASURED_INTERVAL)));
        Some(period.map_or(patience.stalled, |p| patience.stalled.max(p * 3)))
    }

    fn no_signal(&mut self) -> Result<SourceFrame, SourceError> {
        let (reason, size_hint) = {
            let mut status = self.shared.status();
            let reason = match (&status.error, status.live) {
                (Some(err), _) => err.clone(),
                (None, true) => {
                    let since = self.last_live.max(status.live_since);
                    let since = since.map_or(0, |t| t.elapsed().as_secs()).max(1);
                    let reason = format!("no frame from {} for {since} s", status.what);
                    status.error = Some(reason.clone());
                    reason
                }
                (None, false) => self.shared.starting.clone(),
            };
            (reason, status.size_hint)
        };
        let (w, h) = self.last_size.or(size_hint).unwrap_or(DEFAULT_SIZE);
        let captured_micros = unix_micros_now();
        let jpeg = render_no_signal(
            &self.shared.stream,
            &reason,
            w as usize,
            h as usize,
            captured_micros,
        )
        .map_err(|e| SourceError::Failed(format!("cannot draw NO SIGNAL: {e}")))?;
        Ok(SourceFrame {
            captured_micros,
            jpeg: Bytes::from(jpeg),
            width: w,
            height: h,
            pipeline: Default::default(),
        })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        // A producer thread parked waiting for demand sees the stop now, not at its next timeout.
        self.shared.wake_producer();
    }
}

/// The NO SIGNAL picture: the stream's name, why, and the time (so a viewer can see it is the
/// relay talking, live, and not a frozen camera).
pub fn render_no_signal(
    stream: &str,
    reason: &str,
    width: usize,
    height: usize,
    now_micros: u64,
) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let mut rgb = vec![0u8; width * height * 3];
    draw::fill(&mut rgb, width, height, (0, 0, width, height), [24, 24, 32]);
    let big = (width / 160).clamp(1, 6);
    let small = (width / 480).clamp(1, 3);
    let x = width / 12;
    let secs = now_micros / 1_000_000;
    let clock = format!(
        "{:02}:{:02}:{:02} UTC - retrying",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
    // Lines from the top, each with its scale, colour and the gap below it; the reason wrapped
    // to the width, between words where it can.
    let per_line = ((width - x) / (8 * small)).max(8);
    let mut lines = vec![
        ("NO SIGNAL".to_string(), big, [255, 80, 80], 12 * big),
        (
            format!("stream {stream}"),
            small,
            [230, 230, 230],
            12 * small,
        ),
    ];
    let wrapped = wrap(reason, per_line).into_iter().take(6);
    lines.extend(wrapped.map(|l| (l, small, [200, 200, 120], 10 * small)));
    lines.push((String::new(), small, [0, 0, 0], 4 * small));
    lines.push((clock, small, [160, 160, 160], 0));
    let mut y = height / 6;
    for (text, scale, color, gap) in &lines {
        draw::text(&mut rgb, width, height, (x, y), *scale, text, *color);
        y += gap;
    }
    draw::encode_rgb(&rgb, width, height, 70, 32 * 1024)
}

/// Greedy word wrap to `width` characters; words longer than a line are cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A multipart stream read into frames by [`Feeder::publish_parts`]: its parser, and a metadata
/// part (another relay's `.frames?meta=1`) waiting for the JPEG part right after it, which it
/// belongs to when their `X-Sequence`s match.
pub struct RelayedParts {
    parser: MultipartParser,
    meta: Option<(Option<u64>, Bytes)>,
}

impl RelayedParts {
    pub fn new(parser: MultipartParser) -> Self {
        RelayedParts { parser, meta: None }
    }

    /// More of the body.
    pub fn push(&mut self, data: &[u8]) {
        self.parser.push(data);
    }

    /// The body ended with the close delimiter.
    pub fn is_finished(&self) -> bool {
        self.parser.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_between_words() {
        assert_eq!(
            wrap("no such file or directory", 12),
            ["no such file", "or directory"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn no_signal_is_a_jpeg_of_the_asked_size() {
        let jpeg = render_no_signal("cam", "cannot open camera 0: gone", 320, 240, 0).unwrap();
        assert_eq!(crate::jpeg::dimensions(&jpeg), Some((320, 240)));
    }

    fn frame(width: u32) -> SourceFrame {
        let jpeg = render_no_signal("t", "x", width as usize, 120, 0).unwrap();
        SourceFrame {
            captured_micros: 1,
            jpeg: Bytes::from(jpeg),
            width,
            height: 120,
            pipeline: Default::default(),
        }
    }

    /// A producer that publishes `frame` once the stream asks (a frame published before the
    /// first ask is old news by then).
    fn publish_when_asked(feeder: &Feeder, frame: SourceFrame) {
        let producer = feeder.clone();
        tokio::spawn(async move {
            producer.until_wanted(Duration::ZERO).await;
            producer.publish(frame);
        });
    }

    const QUICK: Patience = Patience {
        opening: Duration::from_millis(300),
        stalled: Duration::from_millis(300),
    };

    #[tokio::test]
    async fn live_frames_then_no_signal_naming_the_cause_then_live_again() {
        let (mut feed, feeder) =
            channel("cam", "/dev/video9".into(), "opening".into(), Some(QUICK));
        assert!(!feeder.wanted(Duration::ZERO), "nobody asked yet");
        publish_when_asked(&feeder, frame(160));
        let live = feed.next_frame().await.unwrap();
        assert_eq!(live.width, 160);
        assert!(feeder.wanted(Duration::ZERO), "asking is demand");
        // The producer fails: NO SIGNAL says why, at the last frame's size, and so does the API.
        feeder.set_error("camera unplugged");
        let started = Instant::now();
        let no_signal = feed.next_frame().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!((no_signal.width, no_signal.height), (160, 120));
        let info = feed.info("camera");
        assert_eq!(info.last_error.as_deref(), Some("camera unplugged"));
        assert_eq!(
            (info.width, info.errors, info.recoveries),
            (Some(160), 1, 0)
        );
        assert!(feed.showing_no_signal());
        // A frame: live again, error gone.
        feeder.publish(frame(200));
        assert_eq!(feed.next_frame().await.unwrap().width, 200);
        let info = feed.info("camera");
        assert_eq!((info.last_error, info.recoveries), (None, 1));
    }

    #[tokio::test]
    async fn a_stall_is_named_and_an_ended_producer_is_not_no_signal() {
        let (mut feed, feeder) =
            channel("cam", "rtsp://cam/x".into(), "starting".into(), Some(QUICK));
        publish_when_asked(&feeder, frame(160));
        assert_eq!(feed.next_frame().await.unwrap().width, 160);
        // Live, then nothing: NO SIGNAL names the stall.
        feed.next_frame().await.unwrap();
        assert!(feed.showing_no_signal());
        let error = feed.info("ffmpeg").last_error.unwrap();
        assert!(error.contains("no frame from rtsp://cam/x"), "{error}");
        feeder.set_ended();
        let waited = tokio::time::timeout(Duration::from_millis(600), feed.next_frame()).await;
        assert!(waited.is_err(), "an ended producer's stream just waits");
    }

    #[tokio::test]
    async fn dropping_the_feed_stops_the_producer() {
        let (feed, feeder) = channel("cam", "x".into(), "starting".into(), None);
        drop(feed);
        assert!(feeder.stopped().is_cancelled());
        assert!(!feeder.until_wanted(Duration::ZERO).await);
    }
}
