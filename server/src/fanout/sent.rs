//! What a stream's viewers were sent: frames, bytes, frames skipped, and how old each frame was
//! when it went (the `/metrics` histogram), counted without the viewers sharing a cache line.
//!
//! Every viewer counts every frame it is sent. With one set of atomics (and a locked histogram)
//! per stream, a thousand viewers on two worker threads write the same cache lines thirty
//! thousand times a second, and each write evicts them from the other core: the lines bounce,
//! and so do the stream's other fields next to them, which every viewer reads per frame. So
//! each worker thread counts into a shard of its own (a thread picks one the first time it
//! counts), padded to its own cache lines; a read sums the shards. Counts stay exact and
//! current: nothing is batched or flushed later.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Shards per stream: more than the worker threads of any likely machine is not needed (two
/// threads on one shard still count correctly, they only share its lines again).
const SHARDS: usize = 16;

/// Upper bound of the first frame-age bucket; each next one doubles it.
const FIRST_BUCKET_US: u64 = 250;
/// Frame-age buckets with a finite bound: 0.25 ms doubling to about 4 s; then `+Inf`.
const BUCKETS: usize = 15;

/// One thread's counts, on cache lines of its own (128 bytes: the prefetcher pulls pairs of
/// 64-byte lines on x86).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard {
    frames: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    /// Sum of the frames' ages in seconds, the bits of an `f64`: an age comes from a capture
    /// time a pusher or an upstream stated, and a clock never set makes it decades; a float
    /// sum takes that, where whole µs would wrap after some thousands of such frames.
    age_sum: AtomicU64,
    /// Frames per age bucket, not cumulative; the last is `+Inf`.
    age_buckets: [AtomicU64; BUCKETS + 1],
}

/// Sums of a stream's sending.
#[derive(Debug, Default)]
pub struct Sent {
    shards: [Shard; SHARDS],
}

/// Totals over the shards at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentTotals {
    pub frames: u64,
    pub bytes: u64,
    pub skipped: u64,
}

impl Sent {
    /// Counts one frame of `bytes` sent, `skipped` frames passed over before it, and its `age`.
    pub fn record(&self, bytes: usize, skipped: u64, age: Duration) {
        let shard = &self.shards[this_thread_shard()];
        let age_us = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
        shard.frames.fetch_add(1, Ordering::Relaxed);
        shard.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if skipped > 0 {
            shard.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        // Only this thread writes its shard (bar a shared one), so the loop runs once.
        let _ = shard
            .age_sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + age.as_secs_f64()).to_bits())
            });
        shard.age_buckets[bucket(age_us)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> SentTotals {
        SentTotals {
            frames: self.sum(|s| &s.frames),
            bytes: self.sum(|s| &s.bytes),
            skipped: self.sum(|s| &s.skipped),
        }
    }

    /// One counter of every shard, added up.
    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| counter(s).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The shard of the calling thread: threads take shards in turn as they first count.
fn this_thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// The bucket of a frame `age_us` old: the first whose bound it does not exceed.
fn bucket(age_us: u64) -> usize {
    // Bound of bucket i is FIRST_BUCKET_US << i; for ages over the first bound, i is the bit
    // length of (age - 1) / FIRST_BUCKET_US.
    let i = 64 - (age_us.saturating_sub(1) / FIRST_BUCKET_US).leading_zeros() as usize;
    i.min(BUCKETS)
}

/// `/metrics` shows the frame ages as a histogram in seconds.
impl EncodeMetric for Sent {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS + 1];
        for (i, b) in buckets.iter_mut().enumerate() {
            b.0 = if i < BUCKETS {
                (FIRST_BUCKET_US << i) as f64 / 1e6
            } else {
                f64::INFINITY
            };
            b.1 = self.sum(|s| &s.age_buckets[i]);
        }
        let count = buckets.iter().map(|b| b.1).fold(0, u64::wrapping_add);
        let sum: f64 = self
            .shards
            .iter()
            .map(|s| f64::from_bits(s.age_sum.load(Ordering::Relaxed)))
            .sum();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_fall_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        for (age_us, want) in [
            (0, 0),
            (250, 0),
            (251, 1),
            (500, 1),
            (501, 2),
            (1000, 2),
            (1001, 3),
            (250 << 14, 14),
            ((250 << 14) + 1, 15),
            (u64::MAX, 15),
        ] {
            assert_eq!(bucket(age_us), want, "{age_us} µs");
        }
    }

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let sent = Sent::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        sent.record(10, 1, Duration::from_micros(300));
                    }
                });
            }
        });
        assert_eq!(
            sent.totals(),
            SentTotals {
                frames: 4000,
                bytes: 40_000,
                skipped: 4000
            }
        );
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("age", "ages", sent);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("age_count 4000"), "{text}");
        assert!(text.contains("age_sum 1.2"), "{text}");
        assert!(text.contains("age_bucket{le=\"0.00025\"} 0"), "{text}");
        assert!(text.contains("age_bucket{le=\"0.0005\"} 4000"), "{text}");
        assert!(text.contains("age_bucket{le=\"+Inf\"} 4000"), "{text}");
    }
}
