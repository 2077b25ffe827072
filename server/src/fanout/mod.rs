//! Fan-out: one source's frames to every viewer, each getting the newest frame its connection
//! can take, none queued.
//!
//! - [`stream`]: one named stream: its newest frame, its demand, the driver task that pulls from
//!   the source only while someone watches, its counters.
//! - [`frame`]: a published frame; its wire bytes built once per layout and shared.
//! - [`viewer`]: one viewer's response body.
//! - [`pace`]: when a viewer's next frame goes, and at which rung, by what its link carries.
//! - [`sent`]: what a stream's viewers were sent, counted per worker thread.
//! - [`reports`]: what viewers report of their own experience (latency, fps), per stream.
//! - [`waiters`]: the viewers waiting for a stream's next frame, woken together.

pub mod frame;
pub mod pace;
pub mod reports;
pub mod sent;
pub mod stream;
pub mod viewer;
pub mod waiters;

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Caps on viewers; beyond them a stream request is refused (503 with `Retry-After`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Over all streams together.
    pub max_viewers: Option<u64>,
    /// On each stream.
    pub max_viewers_per_stream: Option<u64>,
    /// Renditions live at once on each stream ([`DEFAULT_MAX_RENDITIONS`] when unset).
    pub max_renditions: Option<usize>,
}

/// Renditions a stream makes at once by default: each costs a decode and an encode per frame.
pub const DEFAULT_MAX_RENDITIONS: usize = 8;

/// The places under a cap of `n` viewers; a viewer holds one while connected. (tokio's
/// semaphores hold at most `MAX_PERMITS`, far beyond any real cap.)
pub fn viewer_cap(n: u64) -> Arc<Semaphore> {
    let permits = usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS);
    Arc::new(Semaphore::new(permits))
}
