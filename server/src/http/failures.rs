//! Failed credentials, counted per client address: after [`MAX_FAILURES`] (by default; the
//! config file's `max_auth_failures`) wrong tokens,
//! passwords or signatures within [`WINDOW`], that address gets 429 with `Retry-After` for any
//! request that needs credentials, without them being checked, until the oldest failure leaves
//! the window. Guessing a token or a password then takes years, and a flood of wrong Basic
//! passwords costs no Argon2 runs.
//!
//! Requests that succeed are never counted, so a dashboard polling with the right token never
//! meets the limit; other addresses are unaffected, and so is every stream already open (the
//! check runs when a request starts). A request without credentials (a browser's first try,
//! answered 401) is not a failure.
//!
//! The address is the peer's, or, from a `--trusted-proxy` (the nginx of `deploy/`), the
//! `X-Real-IP` it sets ([`super::auth::Access::client`]); never a header from anyone else, which
//! a client could set to dodge the limit or to lock someone else out. IPv6 clients are counted by
//! their /64, which is what one subscriber gets. Once the table holds [`PRUNE_AT`] addresses it
//! forgets those whose failures have left the window, at most once a second; at [`HARD_CAP`] it
//! starts afresh. Memory and the time under its lock stay bounded whatever the number of
//! addresses.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`] before it is refused, by default.
pub const MAX_FAILURES: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses the table holds before it drops those with no failure left in the window.
const PRUNE_AT: usize = 10_000;
/// Addresses it may hold at all (about 30 MB at 20 instants each).
const HARD_CAP: usize = 100_000;

/// Who a request comes from, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    /// The client at `ip` (an IPv6 address stands for its /64).
    pub fn new(ip: IpAddr) -> Client {
        Client(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    IpAddr::V6(octets.into())
                }
            },
            v4 => v4,
        })
    }
}

/// The failures of every client within the window.
pub struct Failures {
    /// Failures allowed per window; 0: no limit.
    max: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_client: HashMap<Client, VecDeque<Instant>>,
    pruned: Option<Instant>,
}

impl Failures {
    pub fn new(max: usize) -> Failures {
        Failures {
            max,
            table: Mutex::default(),
        }
    }

    /// How long `client` must wait, if it has failed too often.
    pub fn blocked(&self, client: Client) -> Option<Duration> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let times = table.by_client.get_mut(&client)?;
        forget_old(times, now);
        if self.max == 0 || times.len() < self.max {
            return None;
        }
        times
            .front()
            .map(|oldest| WINDOW.saturating_sub(now.saturating_duration_since(*oldest)))
    }

    /// Counts a failure of `client`.
    pub fn record(&self, client: Client) {
        if self.max == 0 {
            return;
        }
        let now = Instant::now();
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *guard;
        if table.by_client.len() >= PRUNE_AT
            && table
                .pruned
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            table.by_client.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
            table.pruned = Some(now);
        }
        if table.by_client.len() >= HARD_CAP {
            table.by_client.clear();
        }
        let times = table.by_client.entry(client).or_default();
        forget_old(times, now);
        if times.len() == self.max {
            times.pop_front();
        }
        times.push_back(now);
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let failures = Failures::new(MAX_FAILURES);
        let a = Client::new("203.0.113.7".parse().unwrap());
        let b = Client::new("203.0.113.8".parse().unwrap());
        for _ in 0..MAX_FAILURES - 1 {
            failures.record(a);
        }
        assert_eq!(failures.blocked(a), None);
        failures.record(a);
        let wait = failures.blocked(a).expect("blocked after the last failure");
        assert!(wait > WINDOW - Duration::from_secs(5) && wait <= WINDOW);
        assert_eq!(failures.blocked(b), None);
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(
            Client::new("2001:db8::1".parse().unwrap()),
            Client::new("2001:db8::ffff:1".parse().unwrap())
        );
        assert_ne!(
            Client::new("2001:db8::1".parse().unwrap()),
            Client::new("2001:db8:0:1::1".parse().unwrap())
        );
    }
}
