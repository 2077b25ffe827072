//! How many streams the dashboard may hold open at once.
//!
//! Over HTTP/1.1 a browser opens at most six connections per host, shared by every stream,
//! `<img>` and API call of every tab (Chrome, Firefox and Safari alike). Each open stream holds
//! one for as long as it plays; the seventh request waits silently. So the dashboard hands out
//! [`HTTP1_STREAM_SLOTS`] slots (leaving two for its own API calls, clock probes and snapshots),
//! in the order the streams are listed; a viewer that does not fit stays paused on its last frame
//! and says why.
//! Over HTTP/2 or HTTP/3 one connection carries every stream, and the limit is the server's.
//!
//! Plain Rust, no browser.

/// Connections per host a browser opens over HTTP/1.1.
pub const HTTP1_CONNECTIONS: usize = 6;
/// Stream slots over HTTP/1.1: two connections stay free for API calls and snapshots.
pub const HTTP1_STREAM_SLOTS: usize = HTTP1_CONNECTIONS - 2;
/// Stream slots when the page came over a multiplexing protocol (h2, h3).
pub const MULTIPLEXED_STREAM_SLOTS: usize = 32;

/// Slots for a page that arrived over `protocol` (the navigation's `nextHopProtocol`).
pub fn slots_for(protocol: &str) -> usize {
    match protocol {
        "h2" | "h3" | "h2c" => MULTIPLEXED_STREAM_SLOTS,
        _ => HTTP1_STREAM_SLOTS,
    }
}

/// What a viewer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// The user wants it playing.
    pub playing: bool,
    /// Connections it needs while playing: 1, or 2 in compare mode (fetch and `<img>`).
    pub connections: usize,
}

/// What a viewer gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Play,
    /// Paused by the user.
    PausedByUser,
    /// Paused because the streams before it use up the browser's connections.
    PausedNoSlot {
        slots: usize,
    },
}

/// Grants in list order: a viewer plays if the user wants it and its connections still fit.
/// A viewer that does not fit does not stop a later, smaller one from playing.
pub fn allocate(wants: &[Want], slots: usize) -> Vec<Grant> {
    let mut free = slots;
    wants
        .iter()
        .map(|w| {
            if !w.playing {
                Grant::PausedByUser
            } else if w.connections <= free {
                free -= w.connections;
                Grant::Play
            } else {
                Grant::PausedNoSlot { slots }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAY: Want = Want {
        playing: true,
        connections: 1,
    };
    const COMPARE: Want = Want {
        playing: true,
        connections: 2,
    };
    const PAUSED: Want = Want {
        playing: false,
        connections: 1,
    };

    #[test]
    fn http1_leaves_two_of_six_connections_free() {
        let g = allocate(&[PLAY; 6], slots_for("http/1.1"));
        let playing = g.iter().filter(|g| **g == Grant::Play).count();
        assert_eq!(playing, 4);
        assert_eq!(g[4], Grant::PausedNoSlot { slots: 4 });
        assert_eq!(g[5], Grant::PausedNoSlot { slots: 4 });
    }

    #[test]
    fn compare_mode_takes_two_and_user_pauses_free_slots() {
        let g = allocate(&[COMPARE, COMPARE, PLAY], 4);
        assert_eq!(g[2], Grant::PausedNoSlot { slots: 4 });
        let g = allocate(&[COMPARE, PAUSED, COMPARE, PLAY], 4);
        assert_eq!(
            g,
            [
                Grant::Play,
                Grant::PausedByUser,
                Grant::Play,
                Grant::PausedNoSlot { slots: 4 }
            ]
        );
        // A compare viewer that no longer fits does not block a single one after it.
        let g = allocate(&[COMPARE, PLAY, COMPARE, PLAY], 4);
        assert_eq!(
            g,
            [
                Grant::Play,
                Grant::Play,
                Grant::PausedNoSlot { slots: 4 },
                Grant::Play
            ]
        );
    }

    #[test]
    fn multiplexed_protocols_lift_the_limit() {
        assert_eq!(slots_for("h2"), MULTIPLEXED_STREAM_SLOTS);
        assert_eq!(slots_for(""), HTTP1_STREAM_SLOTS);
        let g = allocate(&[PLAY; 10], slots_for("h2"));
        assert!(g.iter().all(|g| *g == Grant::Play));
    }
}
