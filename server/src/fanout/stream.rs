//! One named stream: its source, its newest frame, who is watching, and the driver task that
//! pulls frames from the source only while someone does.
//!
//! Fan-out is a `tokio::sync::watch` channel holding the newest [`Frame`]: publishing replaces it,
//! and each viewer takes whatever is newest when its connection can take a frame. There is no
//! per-viewer queue, so a slow viewer skips frames and never slows the source or other viewers.
//! Viewers wait for the next frame on the stream's [`super::waiters`], woken at each publish.
//! The driver task owns the sending side: if it ever ends (shutdown, or a bug that kills it),
//! the channel closes, the waiters are woken, and every viewer's stream ends instead of hanging
//! without frames.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mjpeg_shared::api::{Endpoints, RenditionInfo, StreamInfo};
use mjpeg_shared::wire;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::frame::Frame;
use super::sent::Sent;
use super::waiters::Waiters;
use crate::backoff::Backoff;
use crate::source::push::IngestHub;
use crate::source::rendition::Rendition;
use crate::source::{Opened, Source, SourceInfo};

/// The newest frame of a stream, if any yet.
pub type Latest = Option<Arc<Frame>>;

/// Shared state of one stream. Handlers hold it by `Arc`; the driver task feeds it.
pub struct Stream {
    pub name: String,
    /// The spec it was started with, for the API.
    pub spec: String,
    /// Where `POST /streams/NAME/ingest` delivers, for push streams.
    pub ingest: Option<Arc<IngestHub>>,
    rx: watch::Receiver<Latest>,
    info: Mutex<SourceInfo>,
    last_error: Mutex<Option<String>>,
    /// Viewers connected now.
    viewers: AtomicU64,
    /// Admission on this stream (`--max-viewers-per-stream`): a viewer holds a permit.
    pub viewer_permits: Option<Arc<tokio::sync::Semaphore>>,
    /// Snapshot requests waiting now, and the highest sequence number one of them needs.
    snapshot_waiters: AtomicU64,
    snapshot_need: AtomicU64,
    /// Sequence number of the last published frame (0 before the first).
    last_seq: AtomicU64,
    /// Woken whenever someone starts wanting frames.
    demand: Notify,
    /// Frames with a sequence number below this are stale: published before the stream last went
    /// idle or before its source last failed. They are never handed out as current.
    fresh_from: AtomicU64,
    active: AtomicBool,
    frames_produced: AtomicU64,
    source_errors: AtomicU64,
    source_recoveries: AtomicU64,
    /// Pushed metadata dropped from a long ingest stream (the frame kept).
    meta_dropped: AtomicU64,
    /// Frames rendered with their metadata drawn in (`overlay=1`): once per frame, however many
    /// viewers ask.
    pub overlays_rendered: AtomicU64,
    /// The renditions someone watches now, each with its counters; at most `max_renditions`.
    renditions: Mutex<Vec<(Rendition, Arc<RenditionStats>)>>,
    max_renditions: usize,
    /// The newest frame that carried metadata: (sequence, capture time, the JSON).
    last_meta: Mutex<Option<(u64, u64, bytes::Bytes)>>,
    /// What its viewers were sent, and each frame's age then (capture to a viewer's
    /// connection; `/metrics` shows it as a histogram).
    pub sent: Sent,
    /// What its viewers report they saw.
    pub reports: super::reports::Reports,
    /// Viewers waiting for the next frame, woken at each publish and when the driver ends.
    pub waiters: Waiters,
}

/// A stream's counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Counters {
    pub frames_produced: u64,
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub bytes_sent: u64,
    pub source_errors: u64,
    pub source_recoveries: u64,
}

impl Stream {
    /// Creates the stream and spawns its driver, which runs until `shutdown`.
    pub fn spawn(
        name: String,
        spec: String,
        opened: Opened,
        max_viewers: Option<u64>,
        max_renditions: usize,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let Opened { source, ingest } = opened;
        let (tx, rx) = watch::channel(None);
        let stream = Arc::new(Stream {
            name,
            spec,
            ingest,
            rx,
            info: Mutex::new(source.info()),
            last_error: Mutex::new(None),
            viewers: AtomicU64::new(0),
            viewer_permits: max_viewers.map(super::viewer_cap),
            snapshot_waiters: AtomicU64::new(0),
            snapshot_need: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            demand: Notify::new(),
            fresh_from: AtomicU64::new(1),
            active: AtomicBool::new(false),
            frames_produced: AtomicU64::new(0),
            source_errors: AtomicU64::new(0),
            source_recoveries: AtomicU64::new(0),
            meta_dropped: AtomicU64::new(0),
            overlays_rendered: AtomicU64::new(0),
            renditions: Mutex::new(Vec::new()),
            max_renditions,
            last_meta: Mutex::new(None),
            sent: Sent::default(),
            reports: Default::default(),
            waiters: Waiters::default(),
        });
        let span = tracing::info_span!("stream", name = %stream.name);
        let publisher = Publisher {
            tx: Some(tx),
            stream: stream.clone(),
            spare: Vec::new(),
        };
        tokio::spawn(drive(stream.clone(), publisher, source, shutdown).instrument(span));
        stream
    }

    /// A receiver of the newest frame; its `changed()` fails once the driver has ended.
    pub fn subscribe(&self) -> watch::Receiver<Latest> {
        self.rx.clone()
    }

    /// True if `frame` is current: produced since the stream last resumed and since its source
    /// last failed.
    pub fn is_fresh(&self, frame: &Frame) -> bool {
        frame.seq >= self.fresh_from.load(Ordering::Acquire)
    }

    /// The newest frame if it is current.
    pub fn current(&self) -> Option<Arc<Frame>> {
        self.rx
            .borrow()
            .as_ref()
            .filter(|f| self.is_fresh(f))
            .cloned()
    }

    /// Registers a viewer for as long as the guard lives; starts the source if it was idle.
    pub fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.fetch_add(1, Ordering::AcqRel);
        self.demand.notify_one();
        ViewerGuard {
            stream: self.clone(),
        }
    }

    /// Counts a viewer (or a snapshot) of rendition `r` for as long as the guard lives: `None`
    /// for the source's own frames; refused when `max_renditions` others are live already.
    pub fn join_rendition(
        self: &Arc<Self>,
        r: Rendition,
    ) -> Result<Option<RenditionGuard>, RenditionCap> {
        if r.is_source() {
            return Ok(None);
        }
        let mut live = self.renditions.lock().unwrap();
        let stats = match live.iter().find(|(k, _)| *k == r) {
            Some((_, stats)) => stats.clone(),
            None if live.len() >= self.max_renditions => {
                return Err(RenditionCap {
                    stream: self.name.clone(),
                    limit: self.max_renditions,
                })
            }
            None => {
                let stats = Arc::new(RenditionStats::default());
                live.push((r, stats.clone()));
                stats
            }
        };
        stats.viewers.fetch_add(1, Ordering::AcqRel);
        Ok(Some(RenditionGuard {
            stream: self.clone(),
            rendition: r,
            stats,
        }))
    }

    /// Asks the source for one new frame (for a snapshot of an idle stream). Returns the sequence
    /// number that frame will have at least; the demand lasts while the guard lives and ends as
    /// soon as that frame is published, so an idle stream renders exactly one frame.
    pub fn request_frame(self: &Arc<Self>) -> (u64, SnapshotGuard) {
        self.snapshot_waiters.fetch_add(1, Ordering::AcqRel);
        let need = self.last_seq.load(Ordering::Acquire) + 1;
        self.snapshot_need.fetch_max(need, Ordering::AcqRel);
        self.demand.notify_one();
        (
            need,
            SnapshotGuard {
                stream: self.clone(),
            },
        )
    }

    fn wanted(&self) -> bool {
        self.viewers.load(Ordering::Acquire) > 0
            || (self.snapshot_waiters.load(Ordering::Acquire) > 0
                && self.snapshot_need.load(Ordering::Acquire)
                    > self.last_seq.load(Ordering::Acquire))
    }

    /// Counts one frame handed to a viewer's connection, and the frames it skipped to get there
    /// (because its connection was busy or its `?fps` cap was not due); `age` is how long ago
    /// the frame was captured.
    pub fn record_sent(&self, bytes: usize, skipped: u64, age: Duration) {
        self.sent.record(bytes, skipped, age);
    }

    pub fn viewers(&self) -> u64 {
        self.viewers.load(Ordering::Acquire)
    }

    pub fn counters(&self) -> Counters {
        // Failures a source covered for itself (NO SIGNAL) count as much as those it returned.
        let (errors, recoveries) = {
            let info = self.info.lock().unwrap();
            (info.errors, info.recoveries)
        };
        let sent = self.sent.totals();
        Counters {
            frames_produced: self.frames_produced.load(Ordering::Relaxed),
            frames_sent: sent.frames,
            frames_skipped: sent.skipped,
            bytes_sent: sent.bytes,
            source_errors: self.source_errors.load(Ordering::Relaxed) + errors,
            source_recoveries: self.source_recoveries.load(Ordering::Relaxed) + recoveries,
        }
    }

    /// Counts a pushed frame's metadata dropped (not JSON, over the limit) in a long ingest.
    pub fn count_meta_dropped(&self) {
        self.meta_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The newest metadata a frame carried: (sequence, capture time, JSON).
    pub fn last_meta(&self) -> Option<(u64, u64, bytes::Bytes)> {
        self.last_meta.lock().unwrap().clone()
    }

    /// The stream as `/api/streams/NAME` shows it.
    pub fn info(&self) -> StreamInfo {
        let info = self.info.lock().unwrap().clone();
        let latest = self.rx.borrow().clone();
        let sent = self.sent.totals();
        StreamInfo {
            name: self.name.clone(),
            source: self.spec.clone(),
            kind: info.kind.to_string(),
            width: latest
                .as_ref()
                .map(|f| f.width)
                .filter(|w| *w > 0)
                .or(info.width),
            height: latest
                .as_ref()
                .map(|f| f.height)
                .filter(|h| *h > 0)
                .or(info.height),
            source_fps: info.fps,
            active: self.active.load(Ordering::Acquire),
            viewers: self.viewers(),
            frames_produced: self.frames_produced.load(Ordering::Relaxed),
            frames_sent: sent.frames,
            frames_skipped: sent.skipped,
            bytes_sent: sent.bytes,
            last_seq: latest.as_ref().map(|f| f.seq),
            last_frame_bytes: latest.as_ref().map(|f| f.jpeg.len() as u64),
            device: info.device.clone(),
            format: info.format.clone(),
            capture_fps: info.capture_fps,
            dropped_parts: info.dropped_parts,
            last_error: self
                .last_error
                .lock()
                .unwrap()
                .clone()
                .or(info.last_error.clone()),
            meta_dropped: self
                .ingest
                .is_some()
                .then(|| self.meta_dropped.load(Ordering::Relaxed)),
            overlays_rendered: self.overlays_rendered.load(Ordering::Relaxed),
            renditions: self.renditions(),
            // Only `/api/streams/NAME` lists them (`http::api`): the list is polled by every
            // dashboard.
            viewer_reports: Vec::new(),
            endpoints: Endpoints::for_stream(&self.name),
        }
    }
}

impl Stream {
    /// The live renditions as the API shows them.
    pub fn renditions(&self) -> Vec<RenditionInfo> {
        self.renditions
            .lock()
            .unwrap()
            .iter()
            .map(|(r, stats)| RenditionInfo {
                asked: r.to_string(),
                made: stats.made.lock().unwrap().map(|m| m.to_string()),
                viewers: stats.viewers.load(Ordering::Acquire),
                frames_made: stats.frames.load(Ordering::Relaxed),
                cpu_seconds: stats.cpu_micros.load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect()
    }
}

/// A rendition's viewers and what making it has cost.
#[derive(Debug, Default)]
pub struct RenditionStats {
    viewers: AtomicU64,
    frames: AtomicU64,
    cpu_micros: AtomicU64,
    made: Mutex<Option<wire::Rendition>>,
}

/// `max_renditions` renditions of the stream are live already.
#[derive(Debug, thiserror::Error)]
#[error("stream {stream:?} already serves {limit} renditions (max_renditions); ask for one of those (the API lists them) or try later")]
pub struct RenditionCap {
    pub stream: String,
    pub limit: usize,
}

/// A viewer's (or a snapshot's) place in one rendition; the rendition stops being made when the
/// last one goes.
pub struct RenditionGuard {
    stream: Arc<Stream>,
    pub rendition: Rendition,
    stats: Arc<RenditionStats>,
}

impl RenditionGuard {
    /// What counts one frame made of this rendition (what it is and the CPU time it took);
    /// owned, as the making outlives a viewer that leaves meanwhile.
    pub fn counter(&self) -> impl FnOnce(&wire::Rendition, Duration) + Send + 'static {
        let (stream, stats) = (self.stream.clone(), self.stats.clone());
        move |what, cpu| {
            stats.frames.fetch_add(1, Ordering::Relaxed);
            stats
                .cpu_micros
                .fetch_add(cpu.as_micros() as u64, Ordering::Relaxed);
            *stats.made.lock().unwrap() = Some(*what);
            if what.overlay {
                stream.overlays_rendered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for RenditionGuard {
    fn drop(&mut self) {
        let mut live = self.stream.renditions.lock().unwrap();
        if self.stats.viewers.fetch_sub(1, Ordering::AcqRel) == 1 {
            live.retain(|(_, stats)| !Arc::ptr_eq(stats, &self.stats));
        }
    }
}

/// Keeps a viewer counted; dropping it (the viewer left) may let the stream go idle.
pub struct ViewerGuard {
    stream: Arc<Stream>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.stream.viewers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Keeps a snapshot's request for a frame alive.
pub struct SnapshotGuard {
    stream: Arc<Stream>,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        self.stream.snapshot_waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Backoff between failed source attempts: doubles from 100 ms up to 5 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// The sending side of a stream's frames: publishing wakes the viewers waiting
/// ([`Stream::waiters`]); dropped with the driver, however it ends, it closes the channel and
/// wakes them to find that.
struct Publisher {
    tx: Option<watch::Sender<Latest>>,
    stream: Arc<Stream>,
    spare: Vec<(u64, std::task::Waker)>,
}

impl Publisher {
    fn publish(&mut self, frame: Frame) {
        let seq = frame.seq;
        if let Some(tx) = &self.tx {
            tx.send_replace(Some(Arc::new(frame)));
        }
        self.stream.last_seq.store(seq, Ordering::Release);
        self.stream.waiters.wake_all(&mut self.spare);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.stream.waiters.wake_all(&mut self.spare);
    }
}

/// The driver: waits for demand, pulls frames while there is any, publishes them.
async fn drive(
    stream: Arc<Stream>,
    mut publisher: Publisher,
    mut source: Box<dyn Source>,
    shutdown: CancellationToken,
) {
    let mut seq: u64 = 0;
    let mut backoff = BACKOFF;
    let name: Arc<str> = stream.name.as_str().into();
    loop {
        // The one place the stream goes idle, so pausing can never be skipped: everything
        // published so far turns stale (a viewer arriving later waits for a new frame rather than
        // being shown an old picture as live), and the source is told to pause.
        if !stream.wanted() {
            if stream.active.swap(false, Ordering::AcqRel) {
                stream.fresh_from.store(seq + 1, Ordering::Release);
                source.pause();
                *stream.info.lock().unwrap() = source.info();
                tracing::debug!("no viewers; source paused");
            }
            while !stream.wanted() {
                tokio::select! {
                    _ = stream.demand.notified() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
        if !stream.active.swap(true, Ordering::AcqRel) {
            tracing::debug!("source resumed");
        }

        let result = tokio::select! {
            r = source.next_frame() => r,
            _ = shutdown.cancelled() => return,
        };
        match result {
            Ok(f) => {
                seq += 1;
                backoff.reset();
                *stream.info.lock().unwrap() = source.info();
                if stream.last_error.lock().unwrap().take().is_some() {
                    stream.source_recoveries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("source recovered");
                }
                stream.frames_produced.fetch_add(1, Ordering::Relaxed);
                if let Some(meta) = &f.pipeline.meta {
                    *stream.last_meta.lock().unwrap() =
                        Some((seq, f.captured_micros, meta.clone()));
                }
                let frame = Frame::with_pipeline(
                    name.clone(),
                    seq,
                    f.captured_micros,
                    f.jpeg,
                    (f.width, f.height),
                    f.pipeline,
                );
                publisher.publish(frame);
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(%err, retry_in_ms = delay.as_millis() as u64, "source failed");
                stream.source_errors.fetch_add(1, Ordering::Relaxed);
                *stream.last_error.lock().unwrap() = Some(err.to_string());
                *stream.info.lock().unwrap() = source.info();
                // The last good frame no longer shows what the source sees: nobody new gets it
                // as current, and snapshots wait for a real frame (or time out naming the error).
                stream.fresh_from.store(seq + 1, Ordering::Release);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}
