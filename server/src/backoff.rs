//! Retry delays: doubling from a start up to a cap, and back to the start once things work.
//! Every loop that retries uses it: a stream's driver, a camera's reader, a feed's pump.

use std::time::Duration;

/// The delays of one retry loop.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The delay before the next try; the one after it is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }

    /// Things work again: the next failure waits the start delay.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_on_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(250), ms(1000));
        let delays: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(250), ms(500), ms(1000), ms(1000)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(250));
    }
}
