//! File descriptors: every viewer holds one, and so does every source (a camera, an upstream
//! socket, ffmpeg's pipes, a frame file being read). Linux starts processes with a soft limit of
//! 1024 (systemd too, unless the unit says `LimitNOFILE`), which would cap a relay below a
//! thousand viewers; the hard limit is usually far higher and raising the soft limit to it needs
//! no privilege.
//!
//! [`raise_limit`] does that at startup; [`default_max_connections`] then keeps a share of the
//! descriptors for the sources, so that a flood of connections is refused at the door
//! ([`super::conn`]) rather than making the next `open` of a source fail.

/// Descriptors kept for sources, logs, the listener and the runtime: at least this many, and at
/// least one in [`HEADROOM_SHARE`] of the limit.
pub const MIN_HEADROOM: u64 = 128;
pub const HEADROOM_SHARE: u64 = 16;

/// The soft limit before and after raising it to the hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub after: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the `rlimit` crate: one audited call,
/// which keeps this crate free of `unsafe`).
pub fn raise_limit() -> std::io::Result<Raised> {
    let before = soft_limit()?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(Raised { before, after })
}

/// The soft descriptor limit now in force.
pub fn soft_limit() -> std::io::Result<u64> {
    Ok(rlimit::Resource::NOFILE.get()?.0)
}

/// Connections to allow when `--max-connections` is not given: the descriptor limit less the
/// headroom for sources.
pub fn default_max_connections(limit: u64) -> usize {
    let headroom = MIN_HEADROOM.max(limit / HEADROOM_SHARE);
    usize::try_from(limit.saturating_sub(headroom).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_kept_for_sources() {
        assert_eq!(default_max_connections(1024), 896);
        assert_eq!(default_max_connections(20_000), 18_750);
        assert_eq!(default_max_connections(100), 1);
    }
}
