//! Clock offset to the relay, estimated NTP-style from `/api/time` probes.
//!
//! A probe sent at local time t0 and answered at t3 carries the server's time s (the relay stamps
//! one instant, so t1 = t2 = s). Then offset = s - (t0 + t3) / 2 and the true offset lies within
//! half the round trip of it. Of the last [`KEEP`] probes the one with the smallest round trip
//! wins: queueing delays only ever add to a round trip, so the fastest probe is the most honest.
//!
//! Plain Rust, no browser: the probing itself lives in `hooks::use_clock`.

use std::collections::VecDeque;

/// Probes remembered; the best of these is the estimate.
pub const KEEP: usize = 8;

/// One probe's result, microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    offset_us: f64,
    rtt_us: f64,
}

/// The current estimate: server clock = local clock + `offset_us`, within ±`error_us`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub offset_us: f64,
    pub error_us: f64,
}

/// The last [`KEEP`] probes.
#[derive(Clone, Debug, Default)]
pub struct ClockEstimator {
    probes: VecDeque<Probe>,
}

impl ClockEstimator {
    /// Records a probe sent at local `t0_us`, answered with server time `server_us`, received at
    /// local `t3_us`. A probe whose round trip is negative (the local clock jumped) is ignored.
    pub fn add(&mut self, t0_us: f64, server_us: f64, t3_us: f64) {
        let rtt_us = t3_us - t0_us;
        if rtt_us.is_nan() || rtt_us < 0.0 || !server_us.is_finite() {
            return;
        }
        let new = Probe {
            offset_us: server_us - (t0_us + t3_us) / 2.0,
            rtt_us,
        };
        // Each probe bounds the true offset to offset ± rtt/2. If an older probe's bound and
        // this one's do not overlap, one of the clocks jumped (the machine slept, NTP stepped):
        // the older probes describe a clock that no longer exists.
        self.probes
            .retain(|p| (p.offset_us - new.offset_us).abs() <= (p.rtt_us + new.rtt_us) / 2.0);
        if self.probes.len() == KEEP {
            self.probes.pop_front();
        }
        self.probes.push_back(new);
    }

    /// The estimate from the fastest remembered probe, or None before the first.
    pub fn estimate(&self) -> Option<Estimate> {
        self.probes
            .iter()
            .min_by(|a, b| a.rtt_us.total_cmp(&b.rtt_us))
            .map(|p| Estimate {
                offset_us: p.offset_us,
                error_us: p.rtt_us / 2.0,
            })
    }
}

/// A latency as shown: never negative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Milliseconds, clamped at 0.
    pub ms: f64,
    /// The raw estimate was below zero by more than the clock's error bound: the clock offset (or
    /// the source's capture time) is wrong, and the figure should not be trusted.
    pub flagged: bool,
}

impl Estimate {
    /// Latency of a frame captured at server time `capture_us` and painted at local time
    /// `local_us`, given as `local_us - capture_us` (the "transit").
    pub fn latency(&self, transit_us: f64) -> Latency {
        let raw = transit_us + self.offset_us;
        Latency {
            ms: raw.max(0.0) / 1000.0,
            flagged: raw < -self.error_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_probe_gives_the_exact_offset_and_half_the_round_trip_as_error() {
        let mut c = ClockEstimator::default();
        // Server is 5 s ahead; 2 ms each way.
        c.add(1_000_000.0, 6_002_000.0, 1_004_000.0);
        let e = c.estimate().unwrap();
        assert_eq!(e.offset_us, 5_000_000.0);
        assert_eq!(e.error_us, 2_000.0);
    }

    #[test]
    fn the_fastest_probe_wins_and_the_true_offset_is_within_its_bound() {
        let mut c = ClockEstimator::default();
        let true_offset = -250_000.0;
        // Asymmetric delays (queueing on the way back); the error bound must still hold.
        for (i, (up, down)) in [(300.0, 9_000.0), (200.0, 400.0), (5_000.0, 100.0)]
            .into_iter()
            .enumerate()
        {
            let t0 = 10_000_000.0 * (i + 1) as f64;
            let server = t0 + up + true_offset;
            c.add(t0, server, t0 + up + down);
            let e = c.estimate().unwrap();
            assert!((e.offset_us - true_offset).abs() <= e.error_us, "{e:?}");
        }
        assert_eq!(c.estimate().unwrap().error_us, 300.0);
    }

    #[test]
    fn only_the_last_probes_count() {
        let mut c = ClockEstimator::default();
        c.add(0.0, 0.0, 10.0); // very fast, but old
        for i in 0..KEEP {
            let t0 = 1e6 * (i + 1) as f64;
            c.add(t0, t0 + 1000.0, t0 + 2000.0);
        }
        let e = c.estimate().unwrap();
        assert_eq!(e.error_us, 1000.0, "the old fast probe was forgotten");
        assert_eq!(e.offset_us, 0.0);
    }

    #[test]
    fn a_clock_jump_discards_the_probes_from_before_it() {
        let mut c = ClockEstimator::default();
        // Fast probes agreeing on offset 0.
        for i in 0..4 {
            let t0 = 1e6 * i as f64;
            c.add(t0, t0 + 100.0, t0 + 200.0);
        }
        assert_eq!(c.estimate().unwrap().offset_us, 0.0);
        // The local clock lost 30 s (slept); a slower probe now sees offset +30 s.
        let t0 = 10e6;
        c.add(t0, t0 + 30e6 + 1000.0, t0 + 2000.0);
        let e = c.estimate().unwrap();
        assert_eq!(e.offset_us, 30e6, "the old, faster probes no longer win");
        assert_eq!(e.error_us, 1000.0);
    }

    #[test]
    fn a_backwards_local_clock_is_ignored() {
        let mut c = ClockEstimator::default();
        c.add(100.0, 50.0, 90.0);
        assert_eq!(c.estimate(), None);
    }

    #[test]
    fn latency_is_never_negative_and_flagged_beyond_the_error_bound() {
        let e = Estimate {
            offset_us: 1_000.0,
            error_us: 500.0,
        };
        assert_eq!(
            e.latency(9_000.0),
            Latency {
                ms: 10.0,
                flagged: false
            }
        );
        // -200 us: within the bound, shown as 0, not flagged.
        assert_eq!(
            e.latency(-1_200.0),
            Latency {
                ms: 0.0,
                flagged: false
            }
        );
        // -2 ms: the clock estimate cannot explain it.
        assert_eq!(
            e.latency(-3_000.0),
            Latency {
                ms: 0.0,
                flagged: true
            }
        );
    }
}
