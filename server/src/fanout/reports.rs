//! What viewers report of their own experience: the dashboard sends, per stream it plays, its
//! overlay's figures every few seconds (`POST /api/streams/NAME/report`). A stream keeps each
//! reporting viewer's newest report for the API and feeds two histograms for `/metrics`: the
//! latency it saw (the report's median, capture to presented) and its frames per second.
//!
//! Bounded: at most [`MAX_REPORTERS`] viewers per stream are remembered (a new one pushes out
//! the one heard from longest ago, so a client making up ids cannot lock real viewers out), a
//! viewer reports at most once per [`MIN_INTERVAL`], and a report older than `REPORT_TTL_SECS`
//! is forgotten. Whoever may watch a stream may report on it: the figures are viewers' word.
//! Plain `<img>` viewers cannot report (no script sees their frames).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mjpeg_shared::api::{ReportedFigures, ViewerReport, REPORT_TTL_SECS};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Viewers remembered per stream.
pub const MAX_REPORTERS: usize = 256;
/// The shortest time between two reports of one viewer that are both taken.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(REPORT_TTL_SECS);

/// Why a well-formed report was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this viewer reported less than {} s ago", MIN_INTERVAL.as_secs())]
    TooSoon,
}

/// One stream's reports; see the module docs.
#[derive(Debug)]
pub struct Reports {
    /// By viewer id: when its newest report came, and the report.
    latest: Mutex<HashMap<String, (Instant, ViewerReport)>>,
    /// Each report's latency median, seconds.
    pub latency: Histogram,
    /// Each report's frames per second.
    pub fps: Histogram,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            latest: Mutex::new(HashMap::new()),
            // 5 ms to about 10 s.
            latency: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            fps: Histogram::new([
                1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 29.0, 31.0, 45.0, 60.0,
            ]),
        }
    }
}

impl Reports {
    /// Takes a checked report received at `now`.
    pub fn record(&self, report: ViewerReport, now: Instant) -> Result<(), Refused> {
        let mut latest = self.latest.lock().expect("reports lock");
        match latest.get(&report.viewer) {
            Some((at, _)) if now.duration_since(*at) < MIN_INTERVAL => {
                return Err(Refused::TooSoon)
            }
            Some(_) => {}
            None if latest.len() >= MAX_REPORTERS => {
                latest.retain(|_, (at, _)| now.duration_since(*at) < TTL);
                if latest.len() >= MAX_REPORTERS {
                    let oldest = latest
                        .iter()
                        .min_by_key(|(_, (at, _))| *at)
                        .map(|(id, _)| id.clone());
                    if let Some(id) = oldest {
                        latest.remove(&id);
                    }
                }
            }
            None => {}
        }
        if let Some(ms) = report.figures.latency_p50_ms {
            self.latency.observe(ms / 1000.0);
        }
        self.fps.observe(report.figures.fps);
        latest.insert(report.viewer.clone(), (now, report));
        Ok(())
    }

    /// The newest report of each viewer heard from in the last `REPORT_TTL_SECS`, the most
    /// recent first.
    pub fn current(&self, now: Instant) -> Vec<ReportedFigures> {
        let latest = self.latest.lock().expect("reports lock");
        let mut out: Vec<(Instant, ReportedFigures)> = latest
            .values()
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(at, r)| (*at, r.figures.clone()))
            .collect();
        out.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        out.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(viewer: &str, p50: f64) -> ViewerReport {
        ViewerReport {
            viewer: viewer.into(),
            figures: ReportedFigures {
                transport: "fetch".into(),
                fps: 30.0,
                latency_p50_ms: Some(p50),
                latency_p95_ms: Some(p50 + 5.0),
                skipped_relay: 0,
                skipped_browser: 1,
            },
        }
    }

    fn figures(p50: f64) -> ReportedFigures {
        report("any", p50).figures
    }

    #[test]
    fn a_viewers_next_report_replaces_its_last_and_old_ones_are_forgotten() {
        let r = Reports::default();
        let t = Instant::now();
        r.record(report("a", 20.0), t).unwrap();
        r.record(report("b", 40.0), t).unwrap();
        assert_eq!(
            r.record(report("a", 25.0), t + Duration::from_millis(500)),
            Err(Refused::TooSoon)
        );
        r.record(report("a", 30.0), t + Duration::from_secs(5))
            .unwrap();
        let now = r.current(t + Duration::from_secs(6));
        assert_eq!(now, vec![figures(30.0), figures(40.0)]);
        // b's report is 16 s old, a's 11 s.
        assert_eq!(r.current(t + Duration::from_secs(16)), vec![figures(30.0)]);
        // Three reports taken, one refused: the histograms hold three.
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("l", "l", r.latency.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("l_count 3"), "{text}");
    }

    #[test]
    fn at_most_max_reporters_are_remembered_and_a_new_one_pushes_out_the_oldest() {
        let r = Reports::default();
        let t = Instant::now();
        for i in 0..MAX_REPORTERS {
            let at = t + Duration::from_millis(i as u64);
            r.record(report(&format!("v{i}"), 10.0), at).unwrap();
        }
        // v0 is the one heard from longest ago: a new viewer takes its place.
        let later = t + Duration::from_secs(2);
        r.record(report("new", 20.0), later).unwrap();
        assert_eq!(r.current(later).len(), MAX_REPORTERS);
        assert_eq!(r.current(later)[0], figures(20.0));
        assert_eq!(
            r.current(later)
                .iter()
                .filter(|f| **f == figures(10.0))
                .count(),
            MAX_REPORTERS - 1
        );
    }
}
