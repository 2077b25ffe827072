//! Helpers shared by the unit tests of several modules (compiled for tests only).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use tokio::sync::Notify;

/// The wake-ups of a waker handed to code polled by hand: how many so far, and the next one to
/// wait for.
#[derive(Default)]
pub struct Wakes {
    count: AtomicUsize,
    next: Notify,
}

impl Wakes {
    /// A waker, and what it counts.
    pub fn waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (wakes.clone(), Waker::from(wakes))
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Until the next wake-up, or the first one not waited for yet.
    pub async fn next(&self) {
        self.next.notified().await;
    }
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        // A permit, if nobody waits yet: a wake-up before the wait is not lost.
        self.next.notify_one();
    }
}
