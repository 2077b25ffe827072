//! Wall-clock time as the relay states it everywhere: Unix microseconds (capture times,
//! `X-Timestamp`, `/api/time`).
//!
//! One process-wide shift can be set at startup (`--clock-shift-ms`, a test hook): a relay whose
//! machine clock is off, so tests can check that clients measure their offset to it.

use std::sync::atomic::{AtomicI64, Ordering};

static SHIFT_MICROS: AtomicI64 = AtomicI64::new(0);

/// From now on, states every time `micros` later than the machine's clock (earlier if negative).
pub fn shift_by_micros(micros: i64) {
    SHIFT_MICROS.store(micros, Ordering::Relaxed);
}

/// Now, as Unix microseconds.
pub fn unix_micros_now() -> u64 {
    machine_micros()
        .saturating_add(SHIFT_MICROS.load(Ordering::Relaxed))
        .max(0) as u64
}

/// The machine's clock. Read for every frame sent to every viewer (its age), so straight from
/// `clock_gettime`: `SystemTime::duration_since` took twice the instructions of the read itself
/// (callgrind).
fn machine_micros() -> i64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map_or(0, |t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1_000)
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_machine_clock_reads_as_system_time_does() {
        let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
        let before = micros(SystemTime::now());
        let read = machine_micros();
        let after = micros(SystemTime::now());
        assert!(
            (before..=after).contains(&read),
            "{read} not within {before}..={after}"
        );
    }
}
