//! The viewers of a stream waiting for its next frame: one list of wakers, woken all at once
//! when a frame is published or the stream's driver ends.
//!
//! Why not the `watch` channel's own `changed()`: its waiting future must live in the viewer's
//! state, and tokio links such futures into a list through each other, so a wait writes a line
//! of another viewer's memory and a publish walks a thousand viewers' states. Here a wait is
//! one push onto a vector and a publish reads that vector, so neither touches another viewer's
//! state (at a thousand viewers every such line is a likely cache miss: docs/benchmarks.md,
//! "The viewer as a state machine").
//! The frame itself still goes through the `watch` channel; this only says when to look.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Waker;

/// Tasks to wake at the next publish ([`Waiters::wake_all`]).
///
/// On cache lines of its own (128 bytes: the prefetcher pulls pairs of 64-byte lines on x86):
/// every viewer writes its lock once a frame, and the stream's fields beside it, which every
/// viewer reads once a frame, would bounce between the cores with it.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Waiters {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Publishes so far: a registration is for the round it was made in.
    round: u64,
    /// By the registration's id, so that one that leaves can be taken off.
    wakers: Vec<(u64, Waker)>,
}

/// A waiter's registration, kept by the waiter: who it is, and the round it last registered in.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    /// [`NEVER`] before the first (not an `Option`: eight bytes fewer in a viewer's hottest
    /// cache lines).
    round: u64,
}

/// A round no stream reaches (one publish a nanosecond would take 584 years).
const NEVER: u64 = u64::MAX;

impl Registration {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Registration {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            round: NEVER,
        }
    }
}

impl Default for Registration {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiters {
    /// Wakes `waker` at the next publish. Registers once per round: a waiter polled again before
    /// the next publish (its socket woke it, say) is already on the list. That relies on a
    /// waiter being polled by one task, whose waker does not change: a viewer's body is polled
    /// by its connection's task for its whole life. Returns whether it registered now.
    ///
    /// The caller looks for a new frame again after registering: one published between its
    /// last look and the registration woke the list without it.
    pub fn register(&self, waker: &Waker, registration: &mut Registration) -> bool {
        let mut inner = self.lock();
        if registration.round == inner.round {
            return false;
        }
        registration.round = inner.round;
        inner.wakers.push((registration.id, waker.clone()));
        true
    }

    /// Takes a waiter that leaves off the list. Without this a stream that publishes nothing for
    /// long (its source is down) would keep a waker, and the task memory it holds, for every
    /// viewer that came and went meanwhile.
    pub fn leave(&self, registration: &Registration) {
        if registration.round == NEVER {
            return;
        }
        let mut inner = self.lock();
        if registration.round == inner.round {
            if let Some(i) = inner
                .wakers
                .iter()
                .position(|(id, _)| *id == registration.id)
            {
                inner.wakers.swap_remove(i);
            }
        }
    }

    /// Wakes everyone registered and starts a new round. `spare` is an empty vector the caller
    /// keeps between calls: the list is swapped with it, so neither is grown again each round,
    /// and the wakers are woken outside the lock.
    pub fn wake_all(&self, spare: &mut Vec<(u64, Waker)>) {
        {
            let mut inner = self.lock();
            inner.round += 1;
            std::mem::swap(&mut inner.wakers, spare);
        }
        for (_, waker) in spare.drain(..) {
            waker.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakers on the list now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().wakers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Wakes;

    #[test]
    fn a_registered_waiter_is_woken_once_by_the_next_publish_only() {
        let waiters = Waiters::default();
        let (wakes, waker) = Wakes::waker();
        let mut reg = Registration::new();
        assert!(waiters.register(&waker, &mut reg));
        let mut spare = Vec::new();
        waiters.wake_all(&mut spare);
        assert_eq!(wakes.count(), 1);
        waiters.wake_all(&mut spare);
        assert_eq!(wakes.count(), 1, "not registered again");
    }

    #[test]
    fn registering_twice_in_a_round_wakes_once() {
        let waiters = Waiters::default();
        let (wakes, waker) = Wakes::waker();
        let mut reg = Registration::new();
        assert!(waiters.register(&waker, &mut reg));
        assert!(!waiters.register(&waker, &mut reg));
        assert_eq!(waiters.len(), 1);
        waiters.wake_all(&mut Vec::new());
        assert_eq!(wakes.count(), 1);
        // A new round takes a new registration.
        assert!(waiters.register(&waker, &mut reg));
        waiters.wake_all(&mut Vec::new());
        assert_eq!(wakes.count(), 2);
    }

    #[test]
    fn every_waiter_is_woken_and_the_list_is_empty_after() {
        let waiters = Waiters::default();
        let all: Vec<_> = (0..5)
            .map(|_| {
                let (wakes, waker) = Wakes::waker();
                waiters.register(&waker, &mut Registration::new());
                wakes
            })
            .collect();
        let mut spare = Vec::new();
        waiters.wake_all(&mut spare);
        assert!(all.iter().all(|w| w.count() == 1));
        assert_eq!(waiters.len(), 0);
        assert!(
            spare.is_empty() && spare.capacity() >= 5,
            "the list's room is kept"
        );
    }

    #[test]
    fn a_waiter_that_leaves_is_taken_off_and_not_woken() {
        let waiters = Waiters::default();
        let (stays, stays_waker) = Wakes::waker();
        let (leaves, leaves_waker) = Wakes::waker();
        let mut staying = Registration::new();
        let mut leaving = Registration::new();
        waiters.register(&stays_waker, &mut staying);
        waiters.register(&leaves_waker, &mut leaving);
        waiters.leave(&leaving);
        assert_eq!(waiters.len(), 1);
        waiters.wake_all(&mut Vec::new());
        assert_eq!(stays.count(), 1);
        assert_eq!(leaves.count(), 0);
        // Registered in an earlier round: nothing of it is on the list to take off.
        waiters.register(&stays_waker, &mut staying);
        waiters.leave(&leaving);
        assert_eq!(waiters.len(), 1);
    }
}
