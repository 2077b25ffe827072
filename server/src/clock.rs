//! Wall-clock time as the relay states it everywhere: Unix microseconds (capture times,
//! `X-Timestamp`, `/api/time`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as Unix microseconds.
pub fn unix_micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
