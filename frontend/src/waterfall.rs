//! Where a frame's time goes, capture to screen: the pipeline's stages (`X-Stage-*`, the relay's
//! `received` among them), then `arrived` (its last byte read here), `painted` (drawn onto
//! the canvas) and `presented` (the next animation frame after the draw: see `stats`), as
//! medians over the last 2 s of frames presented.
//!
//! Each checkpoint's median is taken of the time from capture to it, and a segment is the step
//! from one checkpoint's median to the next: so the segments add up to the total exactly, and
//! each bar of the waterfall starts where the frame typically was at the checkpoint before.
//! (Medians of the segments themselves would not add up to the median total.)
//!
//! Stage times are on the pusher's or the relay's clock, like the capture time; `arrived`,
//! `painted` and `presented` are local and go through the clock estimate, as the latency does. A segment may come
//! out negative when those clocks disagree by more than it lasts; it is shown as it is.
//!
//! Checkpoint names are unique within a frame: a stage named again (`received` once per relay
//! hop) or named like the dashboard's own (`arrived`, `painted`, `presented`, `total`) gets `-2`, `-3`, ...
//! Plain Rust, no browser.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::clock::Estimate;

const WINDOW_US: f64 = 2e6;
/// The checkpoints the dashboard adds after the relay's, and the name of the whole.
pub const ARRIVED: &str = "arrived";
pub const PAINTED: &str = "painted";
pub const PRESENTED: &str = "presented";
pub const TOTAL: &str = "total";

/// The waterfall at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// (checkpoint, ms from the checkpoint before it, capture first), in order.
    pub segments: Vec<(Rc<str>, f64)>,
    /// Capture to presented, ms: the median of the frames it was taken over.
    pub total_ms: f64,
    /// Frames it was taken over.
    pub frames: usize,
}

/// One painted frame's checkpoints, microseconds after its capture; the local ones as transit
/// (local time minus capture time), turned into latencies at summary time.
#[derive(Debug)]
struct Frame {
    names: Names,
    source_us: Vec<f64>,
    arrived_transit: f64,
    painted_transit: f64,
    /// None until the next animation frame after the paint.
    presented_transit: Option<f64>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Waterfall {
    /// (local paint time, frame), the last 2 s.
    frames: VecDeque<(f64, Frame)>,
    /// The last frame's stage names as they came, and its checkpoint names, shared with the
    /// frames that have the same (the usual case: a steady stream allocates no names).
    last_names: Option<(Vec<String>, Names)>,
}

/// A frame's checkpoint names, in order.
type Names = Rc<[Rc<str>]>;

/// The checkpoints of a frame with these stages, made unique (module docs).
fn checkpoint_names(stages: &[(String, u64)]) -> Names {
    let mut taken: Vec<String> = [ARRIVED, PAINTED, PRESENTED, TOTAL]
        .map(String::from)
        .to_vec();
    let mut names: Vec<Rc<str>> = Vec::with_capacity(stages.len() + 3);
    for (stage, _) in stages {
        let mut name = stage.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{stage}-{n}");
            n += 1;
        }
        names.push(Rc::from(name.as_str()));
        taken.push(name);
    }
    names.extend([Rc::from(ARRIVED), Rc::from(PAINTED), Rc::from(PRESENTED)]);
    names.into()
}

impl Waterfall {
    /// A frame captured at `capture_us` (relay clock) with `stages`, arrived at local time
    /// `arrived_at` and painted at `at`.
    pub fn on_painted(
        &mut self,
        at: f64,
        capture_us: f64,
        stages: &[(String, u64)],
        arrived_at: f64,
    ) {
        let names = match &self.last_names {
            Some((raw, names))
                if raw.len() == stages.len()
                    && raw.iter().zip(stages).all(|(a, (b, _))| a == b) =>
            {
                names.clone()
            }
            _ => {
                let names = checkpoint_names(stages);
                let raw = stages.iter().map(|(n, _)| n.clone()).collect();
                self.last_names = Some((raw, names.clone()));
                names
            }
        };
        self.frames.push_back((
            at,
            Frame {
                names,
                source_us: stages.iter().map(|(_, t)| *t as f64 - capture_us).collect(),
                arrived_transit: arrived_at - capture_us,
                painted_transit: at - capture_us,
                presented_transit: None,
            },
        ));
        self.prune(at);
    }

    /// An animation frame began at local time `at`: the frames painted before it are presented
    /// (never before their paint), and those painted more than `max_wait` before it are
    /// forgotten (`FrameStats::on_presented`).
    pub fn on_presented(&mut self, at: f64, max_wait: f64) {
        // The frames not yet presented are the newest ones.
        let mut presented = Vec::new();
        while let Some((painted_at, mut f)) = self.frames.pop_back() {
            if f.presented_transit.is_some() {
                self.frames.push_back((painted_at, f));
                break;
            }
            let after = (at - painted_at).max(0.0);
            if after <= max_wait {
                f.presented_transit = Some(f.painted_transit + after);
                presented.push((painted_at, f));
            }
        }
        self.frames.extend(presented.into_iter().rev());
    }

    /// The waterfall over the frames painted in the 2 s before `now` and presented that passed
    /// the same checkpoints as the newest of them; None before one or without a clock.
    pub fn summary(&mut self, now: f64, clock: Option<Estimate>) -> Option<Summary> {
        self.prune(now);
        let clock = clock?;
        let presented = self
            .frames
            .iter()
            .filter_map(|(_, f)| Some((f, f.presented_transit?)));
        let names = presented.clone().next_back()?.0.names.clone();
        let frames: Vec<(&Frame, f64)> = presented
            .filter(|(f, _)| Rc::ptr_eq(&f.names, &names) || f.names == names)
            .collect();
        let mut segments = Vec::with_capacity(names.len());
        let mut before = 0.0;
        for (k, name) in names.iter().enumerate() {
            let mut at: Vec<f64> = frames
                .iter()
                .map(|(f, presented)| match f.source_us.get(k) {
                    Some(us) => us / 1000.0,
                    None if k == f.source_us.len() => clock.latency(f.arrived_transit).ms,
                    None if k == f.source_us.len() + 1 => clock.latency(f.painted_transit).ms,
                    None => clock.latency(*presented).ms,
                })
                .collect();
            at.sort_by(f64::total_cmp);
            let median = at[(at.len() - 1) / 2];
            segments.push((name.clone(), median - before));
            before = median;
        }
        Some(Summary {
            segments,
            total_ms: before,
            frames: frames.len(),
        })
    }

    fn prune(&mut self, now: f64) {
        while self
            .frames
            .front()
            .is_some_and(|(at, _)| *at <= now - WINDOW_US)
        {
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest wait from paint to presentation counted.
    const WAIT: f64 = 100_000.0;

    const CLOCK: Estimate = Estimate {
        offset_us: 0.0,
        error_us: 100.0,
    };

    fn stages(inferred: f64, received: f64) -> Vec<(String, u64)> {
        vec![
            ("inferred".into(), (1e9 + inferred) as u64),
            ("received".into(), (1e9 + received) as u64),
        ]
    }

    #[test]
    fn segments_are_steps_between_checkpoint_medians_and_add_up_to_the_total() {
        let mut w = Waterfall::default();
        // Capture at 1e9 µs; inference 20-28 ms, receipt 2 ms later, arrival 1 ms later, paint
        // 3-19 ms after that: the segments vary independently, so their own medians would not
        // add up to the median total.
        for i in 0..9u32 {
            let inferred = 20_000.0 + f64::from(i % 3) * 4_000.0;
            let received = inferred + 2_000.0;
            let arrived = received + 1_000.0;
            let painted = arrived + 3_000.0 + f64::from((i * 5) % 9) * 2_000.0;
            w.on_painted(
                1e9 + painted,
                1e9,
                &stages(inferred, received),
                1e9 + arrived,
            );
            w.on_presented(1e9 + painted + 4_000.0, WAIT);
        }
        let s = w.summary(1e9 + 60_000.0, Some(CLOCK)).expect("a waterfall");
        let names: Vec<&str> = s.segments.iter().map(|(n, _)| &**n).collect();
        assert_eq!(
            names,
            ["inferred", "received", "arrived", "painted", "presented"]
        );
        let sum: f64 = s.segments.iter().map(|(_, ms)| ms).sum();
        assert!((sum - s.total_ms).abs() < 1e-9, "{sum} vs {}", s.total_ms);
        assert_eq!(s.segments[0].1, 24.0);
        assert_eq!(s.segments[1].1, 2.0);
        assert_eq!(s.segments[2].1, 1.0);
        assert_eq!(s.segments[4].1, 4.0);
        assert!(s.segments.iter().all(|(_, ms)| *ms >= 0.0));
        assert_eq!(s.frames, 9);
    }

    #[test]
    fn takes_the_newest_frames_checkpoints_and_forgets_after_two_seconds() {
        let mut w = Waterfall::default();
        assert_eq!(w.summary(0.0, Some(CLOCK)), None);
        w.on_painted(
            1e9 + 30_000.0,
            1e9,
            &stages(10_000.0, 12_000.0),
            1e9 + 13_000.0,
        );
        w.on_presented(1e9 + 40_000.0, WAIT);
        // A frame with no stages (the pusher stopped stamping): only the local checkpoints.
        w.on_painted(1e9 + 64_000.0, 1e9 + 33_000.0, &[], 1e9 + 40_000.0);
        // Not presented yet: the summary is of the frame before.
        let s = w.summary(1e9 + 64_000.0, Some(CLOCK)).unwrap();
        assert_eq!(s.segments.len(), 5);
        w.on_presented(1e9 + 70_000.0, WAIT);
        assert_eq!(
            w.summary(1e9 + 64_000.0, None),
            None,
            "no clock, no figures"
        );
        let s = w.summary(1e9 + 64_000.0, Some(CLOCK)).unwrap();
        assert_eq!(
            s.segments,
            vec![
                (Rc::from(ARRIVED), 7.0),
                (Rc::from(PAINTED), 24.0),
                (Rc::from(PRESENTED), 6.0)
            ]
        );
        assert_eq!(s.frames, 1);
        // A frame "presented" long after its paint (animation frames had stopped) is forgotten:
        // the summary is still of the frame before.
        w.on_painted(1e9 + 100_000.0, 1e9 + 66_000.0, &[], 1e9 + 80_000.0);
        w.on_presented(1e9 + 300_000.0, WAIT);
        assert_eq!(w.summary(1e9 + 300_000.0, Some(CLOCK)).unwrap(), s);
        assert_eq!(w.summary(1e9 + 3e6, Some(CLOCK)), None);
    }

    #[test]
    fn repeated_and_reserved_stage_names_get_a_number() {
        let stages: Vec<(String, u64)> = ["received", "received", "painted", "total"]
            .iter()
            .map(|n| (n.to_string(), 1_000_000_000))
            .collect();
        let names: Vec<String> = checkpoint_names(&stages)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "received",
                "received-2",
                "painted-2",
                "total-2",
                "arrived",
                "painted",
                "presented"
            ]
        );
    }

    #[test]
    fn the_clock_offset_moves_only_the_local_checkpoints() {
        let mut w = Waterfall::default();
        w.on_painted(
            1e9 + 30_000.0,
            1e9,
            &stages(10_000.0, 12_000.0),
            1e9 + 20_000.0,
        );
        w.on_presented(1e9 + 32_000.0, WAIT);
        // The relay's clock is 5 ms ahead of the browser's.
        let ahead = Estimate {
            offset_us: 5_000.0,
            error_us: 100.0,
        };
        let s = w.summary(1e9 + 30_000.0, Some(ahead)).unwrap();
        let ms: Vec<f64> = s.segments.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(ms, [10.0, 2.0, 13.0, 10.0, 2.0]);
        assert_eq!(s.total_ms, 37.0);
    }
}
