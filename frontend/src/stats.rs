//! Per-viewer frame statistics: what the overlay and the chart show.
//!
//! A viewer feeds events in as they happen (a part received, a frame painted, main-thread work
//! done) with times from the local clock, in microseconds; the overlay asks for a [`Snapshot`] a
//! few times a second. Latencies are stored as "transit" (local time minus the frame's capture
//! time on the relay's clock) and turned into latencies at snapshot time with the current clock
//! estimate, so frames painted before the first clock probe returned still count, and a better
//! estimate corrects the whole window at once.
//!
//! Two latencies per frame: *drawn* (capture to the moment the picture was put on the canvas,
//! or, on the `<img>` path, first read back from it) and *presented* (capture to the timestamp
//! of the next animation frame after that, [`FrameStats::on_presented`]: the frame that puts the
//! drawing on screen). Presented is the headline; a frame counts in either only once it is
//! presented, so both are taken over the same frames and presented is never below drawn.
//!
//! Windows: FPS over the last 1 s, latency percentiles over the last 2 s, bitrate over the last
//! 1 s, jitter as in RFC 3550 (J += (|D| - J) / 16 over successive transit differences, which needs
//! no clock sync). Plain Rust, no browser.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::clock::Estimate;
use crate::waterfall::{self, Waterfall};

const FPS_WINDOW_US: f64 = 1e6;
const LATENCY_WINDOW_US: f64 = 2e6;
/// The longest wait from a draw to the next animation frame that still counts as presenting
/// it. Longer, animation frames had stopped (a hidden tab): when the picture reached the
/// screen, if at all, is not known, so the frame counts in neither latency.
const MAX_PRESENT_WAIT_US: f64 = 100_000.0;
/// Chart points kept: one a second, the last minute.
pub const HISTORY_POINTS: usize = 60;
const HISTORY_STEP_US: f64 = 1e6;

/// Median and p95 latency over the window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Some frame in the window came out below zero by more than the clock's error bound.
    pub flagged: bool,
}

/// One chart point (a second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub fps: f64,
    pub latency_ms: Option<f64>,
}

/// What the overlay shows.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Snapshot {
    /// Frames painted since the viewer started.
    pub frames: u64,
    /// Frames painted in the last second.
    pub fps: f64,
    /// Capture to presented (module docs). None until a frame with a capture time was
    /// presented and the clock is known.
    pub latency: Option<LatencySummary>,
    /// Capture to drawn, over the same frames as `latency`.
    pub drawn_latency: Option<LatencySummary>,
    /// RFC 3550 interarrival jitter, ms; None before two timed frames.
    pub jitter_ms: Option<f64>,
    /// Size of the newest frame, bytes.
    pub last_bytes: usize,
    /// Bitrate over the last second, kbit/s.
    pub kbps: f64,
    pub width: u32,
    pub height: u32,
    pub last_seq: Option<u64>,
    /// Frames this viewer never got: sequence-number gaps (the relay skipped them for this
    /// connection, or, on the `<img>` path, the browser never showed them).
    pub skipped_upstream: u64,
    /// Frames that arrived but were superseded by a newer one before they could be painted.
    pub skipped_here: u64,
    /// Main-thread time per painted frame over the latency window, ms.
    pub main_thread_ms: Option<f64>,
    /// No paint for longer than max(3 x mean interval, mean + 150 ms) (WebRTC's freeze rule).
    pub frozen: bool,
    /// Last minute, oldest first.
    pub history: Rc<Vec<Point>>,
    /// Capture to painted, checkpoint by checkpoint (fetch path, frames with a capture time).
    pub waterfall: Option<waterfall::Summary>,
}

/// A painted frame: its transit when drawn (local time minus capture time; None without a
/// capture time) and how long after the draw it was presented (None until the next animation
/// frame).
#[derive(Clone, Copy, Debug)]
struct Paint {
    transit: Option<f64>,
    presented_after: Option<f64>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct FrameStats {
    /// (local time drawn, paint) of the last 2 s.
    painted: VecDeque<(f64, Paint)>,
    /// (local time, bytes) of parts received in the last 1 s.
    received: VecDeque<(f64, usize)>,
    /// (local time, microseconds) of main-thread work in the last 2 s.
    work: VecDeque<(f64, f64)>,
    last_transit: Option<f64>,
    jitter_us: Option<f64>,
    last_seq: Option<u64>,
    /// Set by [`FrameStats::restart`]: the next sequence number is not compared with the last.
    new_run: bool,
    last_paint: Option<f64>,
    frames: u64,
    skipped_upstream: u64,
    skipped_here: u64,
    last_bytes: usize,
    width: u32,
    height: u32,
    history: VecDeque<Point>,
    last_history: Option<f64>,
    waterfall: Waterfall,
}

impl FrameStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// A part arrived (fetch path): counts sequence gaps, bitrate, jitter.
    pub fn on_received(
        &mut self,
        at: f64,
        seq: Option<u64>,
        capture_us: Option<f64>,
        bytes: usize,
    ) {
        self.observe_seq(seq);
        self.observe_transit(at, capture_us);
        self.last_bytes = bytes;
        self.received.push_back((at, bytes));
        prune(&mut self.received, at - FPS_WINDOW_US);
    }

    /// A received frame was dropped for a newer one before it was painted.
    pub fn on_superseded(&mut self) {
        self.skipped_here += 1;
    }

    /// A frame was painted at local time `at`.
    pub fn on_painted(&mut self, at: f64, capture_us: Option<f64>, width: u32, height: u32) {
        self.frames += 1;
        self.width = width;
        self.height = height;
        self.last_paint = Some(at);
        let paint = Paint {
            transit: capture_us.map(|c| at - c),
            presented_after: None,
        };
        self.painted.push_back((at, paint));
        prune(&mut self.painted, at - LATENCY_WINDOW_US);
    }

    /// An animation frame began at local time `at` (its callback's timestamp): the frames drawn
    /// before it are on screen with it. Call it before drawing anything in that frame. A
    /// timestamp before the draw (a late callback's frame began earlier) counts as the draw's
    /// own moment, so presented is never below drawn; one more than [`MAX_PRESENT_WAIT_US`]
    /// after it presents nothing known.
    pub fn on_presented(&mut self, at: f64) {
        for (drawn, paint) in self.painted.iter_mut().rev() {
            if paint.presented_after.is_some() {
                break;
            }
            let after = (at - *drawn).max(0.0);
            if after > MAX_PRESENT_WAIT_US {
                paint.transit = None;
            }
            paint.presented_after = Some(after);
        }
        self.waterfall.on_presented(at, MAX_PRESENT_WAIT_US);
    }

    /// A frame painted at `at` passed these checkpoints (fetch path): its capture time, its
    /// stages and the local time it arrived.
    pub fn on_timeline(
        &mut self,
        at: f64,
        capture_us: f64,
        stages: &[(String, u64)],
        arrived_at: f64,
    ) {
        self.waterfall
            .on_painted(at, capture_us, stages, arrived_at);
    }

    /// A new frame was seen on screen where only pixels are known (the `<img>` path, by its
    /// stamp): a paint, and the sequence and jitter bookkeeping of a receipt.
    pub fn on_shown(&mut self, at: f64, seq: u64, capture_us: f64, width: u32, height: u32) {
        self.observe_seq(Some(seq));
        self.observe_transit(at, Some(capture_us));
        self.on_painted(at, Some(capture_us), width, height);
    }

    /// `us` of main-thread work done at local time `at`.
    pub fn on_work(&mut self, at: f64, us: f64) {
        self.work.push_back((at, us));
        prune(&mut self.work, at - LATENCY_WINDOW_US);
    }

    /// The next frame starts a new run (a reconnect): neither a sequence gap nor a jitter step
    /// is counted across the break. Counters and the last sequence number shown stay.
    pub fn restart(&mut self) {
        self.new_run = true;
        self.last_transit = None;
    }

    fn observe_seq(&mut self, seq: Option<u64>) {
        let Some(seq) = seq else { return };
        if let (Some(last), false) = (self.last_seq, self.new_run) {
            // A lower number means the relay restarted its count: a new run, not a gap.
            if seq > last {
                self.skipped_upstream += seq - last - 1;
            }
        }
        self.last_seq = Some(seq);
        self.new_run = false;
    }

    fn observe_transit(&mut self, at: f64, capture_us: Option<f64>) {
        let Some(capture) = capture_us else { return };
        let transit = at - capture;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            let j = self.jitter_us.unwrap_or(0.0);
            self.jitter_us = Some(j + (d - j) / 16.0);
        }
        self.last_transit = Some(transit);
    }

    /// The overlay's figures at local time `now`; also advances the chart history.
    pub fn snapshot(&mut self, now: f64, clock: Option<Estimate>) -> Snapshot {
        prune(&mut self.painted, now - LATENCY_WINDOW_US);
        prune(&mut self.received, now - FPS_WINDOW_US);
        prune(&mut self.work, now - LATENCY_WINDOW_US);

        let fps = self
            .painted
            .iter()
            .filter(|(at, _)| *at > now - FPS_WINDOW_US)
            .count() as f64
            / (FPS_WINDOW_US / 1e6);
        // Both over the frames presented: the same frames, so presented >= drawn holds for
        // every percentile too.
        let presented = || {
            self.painted
                .iter()
                .filter(|(_, p)| p.presented_after.is_some())
        };
        let drawn = presented().filter_map(|(_, p)| p.transit);
        let latency = summary(
            clock,
            presented().filter_map(|(_, p)| Some(p.transit? + p.presented_after?)),
        );
        let drawn_latency = summary(clock, drawn);
        let bytes: usize = self.received.iter().map(|(_, b)| b).sum();
        let main_thread_ms = (!self.painted.is_empty()).then(|| {
            self.work.iter().map(|(_, us)| us).sum::<f64>() / self.painted.len() as f64 / 1000.0
        });

        if self.last_history.is_none_or(|t| now - t >= HISTORY_STEP_US) {
            if self.history.len() == HISTORY_POINTS {
                self.history.pop_front();
            }
            self.history.push_back(Point {
                fps,
                latency_ms: latency.map(|l| l.p50_ms),
            });
            // Step by exactly a second (the overlay asks every 250 ms, so `now` overshoots),
            // unless far behind (a hidden tab): then start again from now.
            self.last_history = Some(match self.last_history {
                Some(t) if now - t < 2.0 * HISTORY_STEP_US => t + HISTORY_STEP_US,
                _ => now,
            });
        }

        Snapshot {
            frames: self.frames,
            fps,
            latency,
            drawn_latency,
            jitter_ms: self.jitter_us.map(|j| j / 1000.0),
            last_bytes: self.last_bytes,
            kbps: bytes as f64 * 8.0 / 1000.0 / (FPS_WINDOW_US / 1e6),
            width: self.width,
            height: self.height,
            last_seq: self.last_seq,
            skipped_upstream: self.skipped_upstream,
            skipped_here: self.skipped_here,
            main_thread_ms,
            frozen: self.frozen(now),
            history: Rc::new(self.history.iter().copied().collect()),
            waterfall: self.waterfall.summary(now, clock),
        }
    }

    fn frozen(&self, now: f64) -> bool {
        let Some(last) = self.last_paint else {
            return false;
        };
        let n = self.painted.len();
        if n < 2 {
            return now - last > LATENCY_WINDOW_US;
        }
        let mean = (self.painted[n - 1].0 - self.painted[0].0) / (n - 1) as f64;
        now - last > (3.0 * mean).max(mean + 150_000.0)
    }
}

/// Drops entries older than `cutoff` from the front of a time-ordered queue.
fn prune<T>(q: &mut VecDeque<(f64, T)>, cutoff: f64) {
    while q.front().is_some_and(|(at, _)| *at <= cutoff) {
        q.pop_front();
    }
}

/// Median and p95 of these transits as latencies; None without a clock or a transit.
fn summary(clock: Option<Estimate>, transits: impl Iterator<Item = f64>) -> Option<LatencySummary> {
    let clock = clock?;
    let mut transits: Vec<f64> = transits.collect();
    if transits.is_empty() {
        return None;
    }
    transits.sort_by(f64::total_cmp);
    Some(LatencySummary {
        p50_ms: clock.latency(percentile(&transits, 50.0)).ms,
        p95_ms: clock.latency(percentile(&transits, 95.0)).ms,
        flagged: clock.latency(transits[0]).flagged,
    })
}

/// Nearest-rank percentile of sorted, non-empty `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCK: Estimate = Estimate {
        offset_us: 0.0,
        error_us: 100.0,
    };

    /// A 30 fps stream whose frames are painted `delay_ms(i)` after capture, each presented at
    /// once.
    fn run(stats: &mut FrameStats, frames: u64, delay_ms: impl Fn(u64) -> f64) -> f64 {
        let mut now = 0.0;
        for i in 0..frames {
            let capture = 1e9 + i as f64 * 33_333.0;
            now = capture + delay_ms(i) * 1000.0;
            stats.on_received(now - 1000.0, Some(i), Some(capture), 40_000);
            stats.on_painted(now, Some(capture), 640, 480);
            stats.on_presented(now);
        }
        now
    }

    #[test]
    fn fps_counts_the_last_second_and_falls_to_zero_when_frames_stop() {
        let mut s = FrameStats::new();
        let now = run(&mut s, 90, |_| 10.0);
        let snap = s.snapshot(now, Some(CLOCK));
        assert!((29.0..=31.0).contains(&snap.fps), "{}", snap.fps);
        assert!(!snap.frozen);
        let later = s.snapshot(now + 3e6, Some(CLOCK));
        assert_eq!(later.fps, 0.0);
        assert!(later.frozen);
        assert_eq!(later.frames, 90);
    }

    #[test]
    fn latency_percentiles_cover_the_last_two_seconds_only() {
        let mut s = FrameStats::new();
        // 3 s at 500 ms, then 3 s at 10..29 ms: the old frames (painted more than 2 s ago)
        // must not count.
        let now = run(&mut s, 180, |i| {
            if i < 90 {
                500.0
            } else {
                10.0 + (i % 20) as f64
            }
        });
        let l = s.snapshot(now, Some(CLOCK)).latency.unwrap();
        assert!((18.0..=21.0).contains(&l.p50_ms), "{l:?}");
        assert!((27.0..=29.0).contains(&l.p95_ms), "{l:?}");
        assert!(!l.flagged);
    }

    #[test]
    fn latency_needs_the_clock_and_applies_its_offset() {
        let mut s = FrameStats::new();
        let now = run(&mut s, 30, |_| 20.0);
        assert_eq!(s.snapshot(now, None).latency, None);
        let ahead = Estimate {
            offset_us: 5_000.0,
            error_us: 100.0,
        };
        assert_eq!(s.snapshot(now, Some(ahead)).latency.unwrap().p50_ms, 25.0);
        let behind = Estimate {
            offset_us: -30_000.0,
            error_us: 1_000.0,
        };
        let l = s.snapshot(now, Some(behind)).latency.unwrap();
        assert_eq!(
            (l.p50_ms, l.flagged),
            (0.0, true),
            "never negative; flagged"
        );
    }

    #[test]
    fn presented_is_the_next_animation_frame_and_counts_only_frames_it_presented() {
        let mut s = FrameStats::new();
        // Frames captured 33 ms apart, drawn 10 ms after capture, and the next animation frame
        // 6 ms after each draw; the last frame is drawn but not yet presented.
        let capture = |i: u32| 1e9 + f64::from(i) * 33_333.0;
        for i in 0..10 {
            s.on_painted(capture(i) + 10_000.0, Some(capture(i)), 640, 480);
            if i < 9 {
                s.on_presented(capture(i) + 16_000.0);
            }
        }
        let snap = s.snapshot(capture(9) + 11_000.0, Some(CLOCK));
        assert_eq!(snap.frames, 10, "every draw is a frame");
        let (p, d) = (snap.latency.unwrap(), snap.drawn_latency.unwrap());
        assert_eq!((p.p50_ms, p.p95_ms), (16.0, 16.0));
        assert_eq!((d.p50_ms, d.p95_ms), (10.0, 10.0));
        s.on_presented(capture(9) + 16_000.0);
        // One animation frame presents everything drawn before it, and a timestamp before the
        // draw (a late callback) counts as the draw itself: never below drawn.
        s.on_painted(capture(10) + 10_000.0, Some(capture(10)), 640, 480);
        s.on_presented(capture(10) + 9_000.0);
        s.on_painted(capture(11) + 10_000.0, Some(capture(11)), 640, 480);
        s.on_presented(capture(11) + 30_000.0);
        s.on_presented(capture(11) + 50_000.0);
        let snap = s.snapshot(capture(11) + 60_000.0, Some(CLOCK));
        let (p, d) = (snap.latency.unwrap(), snap.drawn_latency.unwrap());
        assert_eq!(d.p95_ms, 10.0);
        assert_eq!(
            p.p95_ms, 30.0,
            "the first frame after the draw presents it, not a later one"
        );
        // A frame drawn before animation frames stopped (a hidden tab) and "presented" when they
        // resumed counts as a frame, in neither latency.
        s.on_painted(capture(12) + 10_000.0, Some(capture(12)), 640, 480);
        s.on_presented(capture(12) + 400_000.0);
        let later = s.snapshot(capture(12) + 400_000.0, Some(CLOCK));
        assert_eq!(later.frames, snap.frames + 1);
        assert_eq!(later.latency.unwrap().p95_ms, 30.0);
        // No frames presented yet: no latency, whatever was drawn.
        let mut s = FrameStats::new();
        s.on_painted(1e9 + 10_000.0, Some(1e9), 640, 480);
        let snap = s.snapshot(1e9 + 12_000.0, Some(CLOCK));
        assert_eq!(
            (snap.latency, snap.drawn_latency, snap.frames),
            (None, None, 1)
        );
    }

    #[test]
    fn sequence_gaps_and_superseded_frames_are_counted_apart() {
        let mut s = FrameStats::new();
        for seq in [1, 2, 5, 6, 10] {
            s.on_received(0.0, Some(seq), None, 10);
        }
        s.on_superseded();
        // The relay restarted: numbers start again, which is not a gap.
        s.on_received(0.0, Some(0), None, 10);
        s.on_received(0.0, Some(1), None, 10);
        let snap = s.snapshot(1.0, None);
        assert_eq!(snap.skipped_upstream, 2 + 3);
        assert_eq!(snap.skipped_here, 1);
        assert_eq!(snap.last_seq, Some(1));
    }

    #[test]
    fn a_reconnect_is_not_a_gap_and_keeps_the_last_sequence_shown() {
        let mut s = FrameStats::new();
        s.on_received(0.0, Some(10), None, 1);
        s.restart();
        assert_eq!(s.snapshot(1.0, None).last_seq, Some(10));
        // The relay skipped nothing for this connection: the new run starts wherever it is.
        s.on_received(2.0, Some(50), None, 1);
        s.on_received(3.0, Some(52), None, 1);
        assert_eq!(s.snapshot(4.0, None).skipped_upstream, 1);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut s = FrameStats::new();
        // Transit alternates 10 ms / 14 ms: |D| = 4 ms every frame, J converges to 4 ms.
        for i in 0..400u64 {
            let capture = i as f64 * 33_333.0;
            let transit = if i % 2 == 0 { 10_000.0 } else { 14_000.0 };
            s.on_received(capture + transit, Some(i), Some(capture), 1);
        }
        let j = s.snapshot(1e9, None).jitter_ms.unwrap();
        assert!((j - 4.0).abs() < 0.01, "{j}");
        // Constant transit: no jitter at all.
        let mut s = FrameStats::new();
        run(&mut s, 30, |_| 7.0);
        assert_eq!(s.snapshot(2e9, None).jitter_ms, Some(0.0));
    }

    #[test]
    fn bitrate_size_resolution_and_main_thread_time() {
        let mut s = FrameStats::new();
        let now = run(&mut s, 60, |_| 10.0);
        for i in 0..60 {
            s.on_work(now - i as f64 * 33_333.0, 500.0);
        }
        let snap = s.snapshot(now, Some(CLOCK));
        assert_eq!(snap.last_bytes, 40_000);
        // 30 frames x 40 KB in the last second.
        assert!((9_000.0..=10_000.0).contains(&snap.kbps), "{}", snap.kbps);
        assert_eq!((snap.width, snap.height), (640, 480));
        assert!((snap.main_thread_ms.unwrap() - 0.5).abs() < 0.05);
    }

    #[test]
    fn history_keeps_one_point_a_second_for_a_minute() {
        let mut s = FrameStats::new();
        for i in 0..300 {
            s.snapshot(i as f64 * 250_000.0, None);
        }
        let snap = s.snapshot(75e6, None);
        assert_eq!(snap.history.len(), HISTORY_POINTS);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&[3.0], 95.0), 3.0);
    }
}
