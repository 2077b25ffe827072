//! Pacing one viewer by what its link carries: when to hand over its next frame, and, with
//! `?adapt`, at which rung of a ladder of renditions.
//!
//! Latest-frame-wins keeps frames from queueing in the relay, but not in the buffers between the
//! relay and the viewer: its socket's unsent bytes, the bytes on the way, and its receive buffer,
//! which the peer's kernel fills before the viewer reads. A frame handed over as soon as the
//! socket takes it waits behind all of that (measured before this module: frames 1.5 s old at
//! 100 KB/s with a 64 KB receive buffer). From `TCP_INFO` ([`crate::net::conn::ConnState::link`])
//! the [`Pacer`] keeps, per viewer:
//!
//! - the **queue**: bytes handed to the kernel that the viewer has not read yet: unsent, in
//!   flight, and in its receive buffer. The last is the largest window it ever advertised minus
//!   the one it advertised last, as of its last acknowledgement; a receiver announces the room
//!   its reading frees only in lumps (in Linux, when that at least doubles its window), so it
//!   drains at the measured rate from the acknowledgement on, and counts for nothing while no
//!   rate is known (a viewer is taken to keep up until it is seen not to);
//! - the **rate** at which it reads: the growth of (acknowledged - buffered) over intervals of at
//!   least [`MIN_SAMPLE`] in which it was behind: it had not read up to where the interval
//!   began, bytes waited unsent or queued on the path, or its connection was slow to take a
//!   frame (an idle link says nothing of its speed; an interval in which a frame was sent and
//!   everything was read says the link is at least that fast).
//!
//! Just in time: the next frame is held until the queue is down to about [`LEAD`] of the link,
//! then the newest frame goes; so it waits behind almost nothing. A viewer that keeps up never
//! waits, and is asked about only every [`CHECK_EVERY`] (one `getsockopt` each).
//!
//! With `?adapt`, each frame goes at the largest rung whose size crosses the link within
//! [`FRAME_BUDGET`] (so at least 10 frames a second get through, each fresh). A rate is only ever
//! measured as fast as the frames sent, so a viewer that reads up everything at every look for
//! [`CALM_FOR`] is taken to be twice as fast, never past twice the fastest it was seen to read:
//! it steps up a rung when that fits, and a rung too big for its link is measured, and left,
//! within a few samples.
//!
//! Bytes in flight up to one round trip of the rate are the link itself, not a queue: a viewer
//! far away that keeps up always has its last frame on the way.

use std::time::Duration;

use mjpeg_tcpinfo::TcpInfo;
use tokio::time::Instant;

use crate::source::rendition::{Rendition, Target, MIN_SIDE};

/// How much of the link's time may be queued ahead of a new frame when it is handed over: a
/// little, so that the link does not idle between frames.
pub const LEAD: Duration = Duration::from_millis(80);
/// A queue this small never holds a frame back (request and part headers, a TLS record).
const MIN_ALLOWANCE: u64 = 2048;
/// How often a viewer that keeps up is asked about.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a viewer found behind is asked about on every frame.
const WATCH_FOR: Duration = Duration::from_secs(2);
/// Rate samples over shorter spans are noise: acknowledgements and windows move in lumps, and a
/// reader may take a receive buffer's worth at once.
const MIN_SAMPLE: Duration = Duration::from_millis(200);
/// How long a viewer must read up everything it is sent before its rate is taken to be double.
const CALM_FOR: Duration = Duration::from_secs(1);
/// Rates beyond this (bytes per second) make no difference to any rung.
const MAX_RATE: f64 = 1.0e10;
/// Weight of a new busy-interval rate sample (above the estimate, and below it).
const GAIN: f64 = 0.25;
const GAIN_DOWN: f64 = 0.35;
/// The longest a frame is held in all: an estimate gone wrong costs at most this, never a stall.
pub const MAX_TOTAL_HOLD: Duration = Duration::from_secs(1);
/// The longest a held frame waits before the link is asked about again.
const MAX_HOLD: Duration = Duration::from_millis(200);
const MIN_HOLD: Duration = Duration::from_millis(5);
/// Time a frame may take to cross the link, at the rung chosen for it.
pub const FRAME_BUDGET: Duration = Duration::from_millis(100);
/// A connection that took this long to take a frame was held back by its link.
pub const BACKED_UP: Duration = Duration::from_millis(20);
/// Up the ladder one rung at most this often (down is at once).
pub const STEP_UP_EVERY: Duration = Duration::from_millis(500);

/// What a viewer's link looks like now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Bytes handed over that the viewer has not read yet.
    pub queue: u64,
    /// Bytes per second the viewer reads, once measured.
    pub rate: Option<f64>,
}

/// `repr(C)`: `queue`, which every frame adds to ([`Pacer::sent`]), next to `at`, where
/// `Option` keeps whether there is one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Point {
    at: Instant,
    /// Unread then (as of the last acknowledgement), and what was handed over since.
    queue: u64,
    consumed: u64,
    acked: u64,
    /// The connection was backed up at a look since (the interval was busy).
    backed_up: bool,
}

/// One viewer's link estimate (module docs).
///
/// `repr(C)`, in this order: what every frame reads ([`Pacer::due`]) and writes
/// ([`Pacer::sent`]) first, so that a viewer that keeps up touches one cache line of it.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Pacer {
    /// When the link is next due a look ([`CHECK_EVERY`] after the last), kept as a deadline so
    /// that the check once a frame is one comparison.
    next_check: Option<Instant>,
    watch_until: Option<Instant>,
    last: Option<Point>,
    max_window: u64,
    rate: Option<f64>,
    /// Since when every look found the queue read up.
    calm_since: Option<Instant>,
    /// The fastest rate sample seen, bytes per second.
    best: f64,
}

impl Pacer {
    /// Whether the link should be asked about before the next frame: always while the viewer
    /// was recently behind or its connection has not taken the previous frame yet
    /// (`connection_waited`), else every [`CHECK_EVERY`].
    pub fn due(&self, now: Instant, connection_waited: bool) -> bool {
        connection_waited
            || self.watch_until.is_some_and(|t| now < t)
            || self.next_check.is_none_or(|t| now >= t)
    }

    /// Takes in what the kernel says of the link now; `backed_up`: the connection could not take
    /// all that was handed to it for at least [`BACKED_UP`] until just now (the link was busy).
    pub fn observe(&mut self, info: &TcpInfo, now: Instant, backed_up: bool) -> Link {
        self.next_check = Some(now + CHECK_EVERY);
        // In the receive buffer as of the last acknowledgement.
        let buffered = match info.peer_window {
            Some(window) => {
                self.max_window = self.max_window.max(window);
                self.max_window - window
            }
            None => 0,
        };
        let consumed = info.acked.saturating_sub(buffered);
        let since_ack = Duration::from_millis(u64::from(info.since_ack_ms));
        // Bytes on the way are the link itself, not a queue, up to a round trip of its rate (a
        // viewer far away that keeps up always has the last frame in flight): the kernel's own
        // delivery rate or the one measured here, whichever is higher, over the path's smallest
        // round trip (the smoothed one includes whatever queues on the path, which would hide
        // them).
        let pipe_rate = self.rate.unwrap_or(0.0).max(info.delivery_rate as f64);
        let pipe = (pipe_rate * f64::from(info.min_rtt_us) / 1e6) as u64;
        let in_flight = info.in_flight.saturating_sub(pipe);
        let unread_at_ack = info.notsent + in_flight + buffered;
        let here = Point {
            at: now,
            consumed,
            acked: info.acked,
            queue: unread_at_ack,
            backed_up: false,
        };
        match self.last {
            None => self.last = Some(here),
            // A rate needs an interval long enough to even out the lumps in which windows move,
            // and news from the peer within it (without an acknowledgement nothing is known).
            Some(p)
                if now.duration_since(p.at) >= MIN_SAMPLE
                    && (info.acked != p.acked || since_ack < now.duration_since(p.at)) =>
            {
                let sample = consumed.saturating_sub(p.consumed) as f64
                    / now.duration_since(p.at).as_secs_f64();
                // The receiver acknowledges what arrives before its reader takes it, so what
                // arrived lately counts as unread whether or not the reader is behind. Busy to
                // the end means it has not read up to where the interval began, or that bytes
                // still wait to be sent (its window, or the path, holds them back).
                let busy_to_end = backed_up
                    || p.backed_up
                    || consumed + self.allowance() < p.acked
                    || info.notsent + in_flight > self.allowance();
                if p.queue > 0 {
                    self.rate = match self.rate {
                        // Busy from end to end: the reading rate itself.
                        // Down faster than up: a frame too big for the link costs freshness now.
                        // (Never straight to the sample: acknowledgements come in lumps, and an
                        // interval between two may show next to nothing read.)
                        Some(r) if busy_to_end && sample < r => Some(r + GAIN_DOWN * (sample - r)),
                        Some(r) if busy_to_end => Some(r + GAIN * (sample - r)),
                        None if busy_to_end => Some(sample),
                        // Read up within (or as good as): at least this fast, which says nothing
                        // until a rate is known.
                        Some(r) => Some(r.max(sample)),
                        None => None,
                    };
                }
                if busy_to_end || p.queue > 0 {
                    self.best = self.best.max(sample);
                }
                self.last = Some(here);
            }
            // Too soon, or no news: keep the start of the interval, and whether it was busy.
            Some(ref mut p) => {
                p.queue = p.queue.max(unread_at_ack);
                p.backed_up |= backed_up;
            }
        }
        // What is still in the receive buffer now: read since the acknowledgement at the rate
        // measured; nothing while no rate is known (taken to keep up until seen not to).
        let still_buffered = self.rate.map_or(0, |r| {
            buffered.saturating_sub((r * since_ack.as_secs_f64()) as u64)
        });
        let queue = info.notsent + in_flight + still_buffered;
        if queue > self.allowance() {
            self.watch_until = Some(now + WATCH_FOR);
            self.calm_since = None;
        } else if let Some(r) = self.rate {
            // Read up at every look for CALM_FOR: the link may carry more than has been sent
            // (a rate measured only ever as fast as the frames sent). Double it; a rung that
            // turns out too big is measured, and left, within a few samples.
            match self.calm_since {
                Some(since) if now.duration_since(since) >= CALM_FOR => {
                    // Never past twice the fastest it was ever seen to read: a link that keeps
                    // up at one rung must not be taken for one that carries anything.
                    self.rate = Some((r * 2.0).min(2.0 * self.best).max(r).min(MAX_RATE));
                    self.calm_since = Some(now);
                }
                Some(_) => {}
                None => self.calm_since = Some(now),
            }
        }
        Link {
            queue,
            rate: self.rate,
        }
    }

    /// `bytes` were handed to the connection: the interval until the next look is busy.
    pub fn sent(&mut self, bytes: usize) {
        if let Some(p) = &mut self.last {
            p.queue += bytes as u64;
        }
    }

    /// The queue a new frame may go out behind.
    fn allowance(&self) -> u64 {
        self.rate
            .map_or(0, |r| (r * LEAD.as_secs_f64()) as u64)
            .max(MIN_ALLOWANCE)
    }

    /// How long to hold the next frame before looking again; `None`: send it now.
    pub fn hold(&self, link: &Link) -> Option<Duration> {
        let over = link
            .queue
            .checked_sub(self.allowance())
            .filter(|b| *b > 0)?;
        let wait = match link.rate {
            Some(rate) if rate > 0.0 => Duration::from_secs_f64(
                (over as f64 / rate).clamp(MIN_HOLD.as_secs_f64(), MAX_HOLD.as_secs_f64()),
            ),
            // Not measured yet (or stalled): look again soon.
            _ => Duration::from_millis(20),
        };
        Some(wait)
    }

    /// The largest rung (index into `sizes`, estimated bytes per rung, largest first) whose frame
    /// crosses the link within [`FRAME_BUDGET`]; the smallest if none does; the first while the
    /// rate is unknown.
    pub fn fitting_rung(&self, sizes: &[u64]) -> usize {
        let Some(rate) = self.rate else { return 0 };
        let budget = rate * FRAME_BUDGET.as_secs_f64();
        sizes
            .iter()
            .position(|s| (*s as f64) <= budget)
            .unwrap_or(sizes.len().saturating_sub(1))
    }
}

/// What `?adapt` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapt {
    /// JPEG quality only: the picture's size never changes (what an `<img>` needs).
    Quality,
    /// Quality, then size (1/2, 1/4).
    Size,
}

/// Rungs of a ladder, largest first.
pub const RUNGS: usize = 4;
/// The quality of the lower rungs (a quality ladder goes lower still, its size being fixed).
const LOW_QUALITY: u8 = 50;
const QUALITY_RUNGS: [u8; RUNGS - 1] = [LOW_QUALITY, 30, 15];
/// What each rung is guessed to weigh against the first until one has been made (a rough share
/// for a 640x480 frame; each rung's real size replaces its guess once it is sent).
pub const GUESSED_SHARE: [f64; RUNGS] = [1.0, 0.5, 0.18, 0.06];

/// The ladder from `base` (what the viewer asked for) for a frame of `size`.
pub fn ladder(base: Rendition, adapt: Adapt, size: (u32, u32)) -> [Rendition; RUNGS] {
    let lower = |q: u8| Rendition {
        quality: Some(base.quality.map_or(q, |b| b.min(q))),
        ..base
    };
    match adapt {
        Adapt::Quality => [
            base,
            lower(QUALITY_RUNGS[0]),
            lower(QUALITY_RUNGS[1]),
            lower(QUALITY_RUNGS[2]),
        ],
        Adapt::Size => {
            let (w, h) = base.target.map_or(size, |t| t.resolve(size));
            let scaled = |d: u32| Rendition {
                target: Some(Target::Size(
                    even(w / d).max(MIN_SIDE).min(w),
                    even(h / d).max(MIN_SIDE).min(h),
                )),
                ..lower(LOW_QUALITY)
            };
            [base, lower(LOW_QUALITY), scaled(2), scaled(4)]
        }
    }
}

fn even(v: u32) -> u32 {
    v & !1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(notsent: u64, acked: u64, window: u64) -> TcpInfo {
        TcpInfo {
            notsent,
            in_flight: 0,
            acked,
            peer_window: Some(window),
            min_rtt_us: 50,
            since_ack_ms: 0,
            delivery_rate: 0,
        }
    }

    #[test]
    fn a_viewer_that_keeps_up_is_never_held_and_rarely_asked() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert!(p.due(t0, false));
        let link = p.observe(&info(0, 0, 65536), t0, false);
        assert_eq!(p.hold(&link), None);
        p.sent(48_000);
        let t1 = t0 + Duration::from_millis(33);
        assert!(!p.due(t1, false), "asked again before CHECK_EVERY");
        assert!(
            p.due(t1, true),
            "asked when its connection was slow to take a frame"
        );
        let link = p.observe(&info(0, 48_000, 65536), t1, false);
        assert_eq!(link.queue, 0);
        assert_eq!(p.hold(&link), None);
        assert_eq!(
            link.rate, None,
            "read before anyone looked: still taken to keep up"
        );
    }

    #[test]
    fn a_full_receive_buffer_counts_as_queue_and_holds_the_next_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.observe(&info(0, 0, 65536), t0, false);
        p.sent(48_000);
        // 200 ms later it has read 20 KB of the 40 KB in its buffer; 8 KB could not be sent for
        // its window: the link was busy all along.
        let t1 = t0 + Duration::from_millis(200);
        let link = p.observe(&info(8_000, 40_000, 65536 - 20_000), t1, false);
        assert_eq!(link.queue, 8_000 + 20_000);
        assert_eq!(link.rate, Some(100_000.0));
        // (28 KB - 8 KB of lead) at 100 KB/s is 200 ms: held for that, then asked again.
        assert_eq!(p.hold(&link), Some(MAX_HOLD));
        p.sent(48_000);
        // 200 ms later it has read 20 KB more, and 20 KB wait in its buffer.
        let t2 = t1 + Duration::from_millis(200);
        let link = p.observe(&info(36_000, 60_000, 65536 - 20_000), t2, false);
        let rate = link.rate.unwrap();
        assert!((rate - 100_000.0).abs() < 1.0, "{rate}");
        assert_eq!(link.queue, 36_000 + 20_000);
        // (56 KB - 8 KB of lead) at 100 KB/s is 480 ms: held for at most MAX_HOLD, then asked again.
        assert_eq!(p.hold(&link), Some(MAX_HOLD));
        assert!(
            p.due(t2 + Duration::from_millis(40), false),
            "watched while behind"
        );
    }

    #[test]
    fn a_window_not_announced_again_holds_nothing_for_ever() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // Its receiver said its buffer was nearly full, then read it all without saying so.
        p.observe(&info(0, 0, 65536), t0, false);
        let link = p.observe(&info(0, 0, 4096), t0 + Duration::from_millis(1), false);
        assert_eq!(p.hold(&link), None, "no rate known: taken to keep up");
        // With a rate known, the buffer drains at it since the last acknowledgement.
        p.rate = Some(100_000.0);
        let mut stale = info(0, 0, 4096);
        stale.since_ack_ms = 301;
        let link = p.observe(&stale, t0 + Duration::from_millis(301), false);
        assert_eq!(link.queue, 61_440 - 30_100);
        stale.since_ack_ms = 701;
        let link = p.observe(&stale, t0 + Duration::from_millis(701), false);
        assert_eq!(link.queue, 0);
        assert_eq!(p.hold(&link), None);
    }

    #[test]
    fn busy_samples_follow_a_slower_link_and_quick_reads_a_faster_one() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.observe(&info(0, 0, 10_000), t0, false);
        p.sent(50_000);
        let (mut acked, mut t) = (0, t0);
        // 100 KB/s for a second, always something unread.
        for _ in 0..10 {
            t += Duration::from_millis(100);
            acked += 10_000;
            p.observe(&info(40_000, acked, 10_000), t, false);
            p.sent(10_000);
        }
        let slow = p.rate.unwrap();
        assert!((slow - 100_000.0).abs() < 5_000.0, "{slow}");
        // The throttle lifts: all that was unread, and 50 KB more, are read within the next look.
        t += Duration::from_millis(200);
        acked += 100_000;
        let link = p.observe(&info(0, acked, 10_000), t, false);
        assert!(link.rate.unwrap() > 400_000.0, "{link:?}");
    }

    #[test]
    fn a_slow_stream_read_up_at_once_is_never_taken_for_a_slow_link() {
        // 5 fps, 48 KB frames, each read as it arrives; the receiver's window, announced when
        // the frame arrives and not again after its reader takes it, shows the newest frame.
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.observe(&info(0, 0, 262_144), t0, false);
        for i in 1..=20u64 {
            p.sent(48_000);
            let t = t0 + Duration::from_millis(200 * i);
            let link = p.observe(&info(0, 48_000 * i, 262_144 - 48_000), t, false);
            assert_eq!(link.rate, None, "frame {i}: {link:?}");
            assert_eq!(p.hold(&link), None);
        }
        assert_eq!(p.fitting_rung(&[48_000, 24_000, 8_000, 3_000]), 0);
    }

    #[test]
    fn a_far_viewer_that_keeps_up_is_not_held_for_what_is_on_the_way() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        let mut far = info(0, 0, 262_144);
        far.in_flight = 48_000;
        far.min_rtt_us = 100_000;
        // At 1 MB/s (the kernel's delivery rate) a 100 ms round trip holds 100 KB on the way:
        // 48 KB in flight is no queue.
        far.delivery_rate = 1_000_000;
        let link = p.observe(&far, t0, false);
        assert_eq!((link.queue, p.hold(&link)), (0, None));
        // Nor at a rate measured here.
        far.delivery_rate = 0;
        p.rate = Some(1.0e6);
        let link = p.observe(&far, t0 + Duration::from_millis(1), false);
        assert_eq!((link.queue, p.hold(&link)), (0, None));
        // On a link that delivers 100 KB/s with a 5 ms round trip, 48 KB in flight are queued.
        let mut stuck = far;
        stuck.min_rtt_us = 5_000;
        stuck.delivery_rate = 100_000;
        let mut q = Pacer::default();
        let link = q.observe(&stuck, t0, false);
        assert_eq!(link.queue, 48_000 - 500);
    }

    #[test]
    fn a_link_that_reads_everything_for_a_second_is_taken_to_be_faster() {
        let t0 = Instant::now();
        // Measured at 100 KB/s; once seen reading at 150 KB/s.
        let mut p = Pacer {
            rate: Some(100_000.0),
            best: 150_000.0,
            ..Default::default()
        };
        let mut t = t0;
        for _ in 0..40 {
            t += Duration::from_millis(33);
            p.observe(&info(0, 0, 65536), t, false);
        }
        assert_eq!(p.rate, Some(200_000.0));
        // ... but never past twice the fastest it was seen to read.
        for _ in 0..100 {
            t += Duration::from_millis(33);
            p.observe(&info(0, 0, 65536), t, false);
        }
        assert_eq!(p.rate, Some(300_000.0));
        // Something unread again: no more doubling.
        let before = p.rate;
        p.observe(
            &info(50_000, 0, 65536),
            t + Duration::from_millis(33),
            false,
        );
        for _ in 0..20 {
            t += Duration::from_millis(100);
            p.observe(&info(50_000, 0, 65536), t, false);
        }
        assert!(p.rate <= before, "{:?} after {before:?}", p.rate);
    }

    #[test]
    fn the_rung_is_the_largest_that_crosses_in_the_budget() {
        let mut p = Pacer::default();
        let sizes = [48_000, 24_000, 8_000, 3_000];
        assert_eq!(p.fitting_rung(&sizes), 0, "unknown rate: full");
        p.rate = Some(100_000.0);
        assert_eq!(p.fitting_rung(&sizes), 2);
        p.rate = Some(10_000.0);
        assert_eq!(p.fitting_rung(&sizes), 3, "none fits: the smallest");
        p.rate = Some(1.0e7);
        assert_eq!(p.fitting_rung(&sizes), 0);
    }

    #[test]
    fn ladders_keep_the_size_or_halve_it() {
        let base = Rendition::default();
        let q = ladder(base, Adapt::Quality, (640, 480));
        assert!(q.iter().all(|r| r.target.is_none()));
        assert_eq!(q.map(|r| r.quality), [None, Some(50), Some(30), Some(15)]);
        let s = ladder(base, Adapt::Size, (640, 480));
        assert_eq!(s[2].target, Some(Target::Size(320, 240)));
        assert_eq!(s[3].target, Some(Target::Size(160, 120)));
        // From a rendition the viewer asked for, and never above its quality.
        let asked = Rendition {
            target: Some(Target::Width(320)),
            quality: Some(40),
            overlay: true,
        };
        let s = ladder(asked, Adapt::Size, (1280, 720));
        assert_eq!(s[3].target, Some(Target::Size(80, 44)));
        assert!(s.iter().skip(1).all(|r| r.quality == Some(40) && r.overlay));
    }
}
