//! Connecting, sans-IO: the order of the addresses and when each attempt starts, per Happy
//! Eyeballs version 2 (RFC 8305). The adapters do the I/O (threads in `pop3-blocking`,
//! futures in `pop3-async`) and ask [`HappyEyeballs`] what to do next:
//!
//! ```text
//! let mut race = HappyEyeballs::new(addresses, delay, connect_timeout, now);
//! loop {
//!     match race.poll(now) {
//!         Step::Start(addr) => start an attempt to addr (bound to the source address if any),
//!         Step::Wait(until) => wait until `until` or until an attempt ends:
//!                              success: use that stream, drop the others;
//!                              failure: race.failed(addr, error, now),
//!         Step::Failed(error) => return error,
//!     }
//! }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// RFC 8305 §5: the recommended "Connection Attempt Delay", the time an attempt has alone
/// before the next address is tried too.
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// RFC 8305 §5: the delay is never shorter than this (10 ms), so a misconfiguration cannot
/// start every attempt at once.
pub const MIN_CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(10);

/// Sorts resolved addresses as RFC 8305 §4 says: the family of the first address (the
/// resolver's preference, IPv6 on a dual-stack host) first, then alternating families, each
/// family keeping the resolver's order. With a source address (`--bind`), only addresses of
/// its family remain.
///
/// ```
/// use pop3_tls::connect::interleave;
/// let addrs: Vec<std::net::SocketAddr> =
///     vec!["[::1]:1".parse()?, "[::2]:1".parse()?, "127.0.0.1:1".parse()?];
/// assert_eq!(interleave(addrs, None), vec![
///     "[::1]:1".parse()?, "127.0.0.1:1".parse()?, "[::2]:1".parse()?,
/// ]);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn interleave(addrs: Vec<SocketAddr>, bind: Option<IpAddr>) -> Vec<SocketAddr> {
    let mut unique = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if bind.is_none_or(|b| b.is_ipv6() == addr.is_ipv6()) && !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    let Some(first) = unique.first() else {
        return unique;
    };
    let first_v6 = first.is_ipv6();
    let (mut preferred, mut other): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|a| a.is_ipv6() == first_v6);
    preferred.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// What the adapter does next (see the module docs).
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// Start a connection attempt to this address now.
    Start(SocketAddr),
    /// Wait for an attempt to end, but no later than this.
    Wait(Instant),
    /// Give up: every attempt failed (the last failure), there was no address, or the
    /// connect timeout ran out (kind `TimedOut`).
    Failed(io::Error),
}

/// The schedule of one connect: which address is tried when (RFC 8305 §5). Attempts start
/// one [`CONNECTION_ATTEMPT_DELAY`] apart, or at once when the one before failed; earlier
/// attempts keep running; the first to succeed wins; the connect timeout bounds the whole.
#[derive(Debug)]
pub struct HappyEyeballs {
    addrs: Vec<SocketAddr>,
    next: usize,
    running: usize,
    next_start: Instant,
    delay: Duration,
    deadline: Option<Instant>,
    timeout: Duration,
    last_error: Option<io::Error>,
}

impl HappyEyeballs {
    /// A race over `addrs` in this order (see [`interleave`]), with this delay between
    /// starts (at least [`MIN_CONNECTION_ATTEMPT_DELAY`]) and this limit for the whole
    /// connect, from `now`.
    pub fn new(addrs: Vec<SocketAddr>, delay: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            addrs,
            next: 0,
            running: 0,
            next_start: now,
            delay: delay.max(MIN_CONNECTION_ATTEMPT_DELAY),
            deadline: now.checked_add(timeout),
            timeout,
            last_error: None,
        }
    }

    /// What to do now.
    pub fn poll(&mut self, now: Instant) -> Step {
        if self.deadline.is_some_and(|d| now >= d) {
            return Step::Failed(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {:?}", self.timeout),
            ));
        }
        let more = self.next < self.addrs.len();
        if more && (self.running == 0 || now >= self.next_start) {
            let addr = self.addrs[self.next];
            self.next += 1;
            self.running += 1;
            self.next_start = now + self.delay;
            return Step::Start(addr);
        }
        if self.running == 0 {
            return Step::Failed(self.last_error.take().unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the host name has no usable address",
                )
            }));
        }
        let wake = match (more, self.deadline) {
            (true, Some(deadline)) => self.next_start.min(deadline),
            (true, None) => self.next_start,
            (false, Some(deadline)) => deadline,
            // No deadline and nothing left to start: wait for the running attempts (the
            // adapter's wait has no timeout then); a far wake-up keeps the type simple.
            (false, None) => now + Duration::from_secs(3600),
        };
        Step::Wait(wake)
    }

    /// The attempt to `addr` failed: the next address is tried at once (RFC 8305 §5). When
    /// all fail, [`poll`](Self::poll) returns the last error as it is (the adapters add the
    /// host and port).
    pub fn failed(&mut self, addr: SocketAddr, error: io::Error, now: Instant) {
        self.running = self.running.saturating_sub(1);
        self.next_start = now;
        tracing::debug!(target: crate::TRACE_TARGET, "connecting to {addr}: {error}");
        self.last_error = Some(error);
    }

    /// How many attempts are running.
    pub fn running(&self) -> usize {
        self.running
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn starts_are_staggered_and_a_failure_starts_the_next_at_once() {
        let t0 = Instant::now();
        let addrs = vec![addr("[::1]:1"), addr("127.0.0.1:1"), addr("[::2]:1")];
        let mut race =
            HappyEyeballs::new(addrs, CONNECTION_ATTEMPT_DELAY, Duration::from_secs(5), t0);
        assert!(matches!(race.poll(t0), Step::Start(a) if a == addr("[::1]:1")));
        let Step::Wait(until) = race.poll(t0) else {
            panic!()
        };
        assert_eq!(until, t0 + CONNECTION_ATTEMPT_DELAY);
        let t1 = t0 + CONNECTION_ATTEMPT_DELAY;
        assert!(matches!(race.poll(t1), Step::Start(a) if a == addr("127.0.0.1:1")));
        let t2 = t1 + Duration::from_millis(10);
        race.failed(
            addr("127.0.0.1:1"),
            io::ErrorKind::ConnectionRefused.into(),
            t2,
        );
        assert!(matches!(race.poll(t2), Step::Start(a) if a == addr("[::2]:1")));
        assert_eq!(race.running(), 2);
        let Step::Wait(until) = race.poll(t2) else {
            panic!()
        };
        assert_eq!(until, t0 + Duration::from_secs(5));
        let end = t0 + Duration::from_secs(5);
        assert!(matches!(race.poll(end), Step::Failed(e) if e.kind() == io::ErrorKind::TimedOut));
    }

    #[test]
    fn all_failed_reports_the_last_failure() {
        let t0 = Instant::now();
        let mut race = HappyEyeballs::new(
            vec![addr("127.0.0.1:1")],
            CONNECTION_ATTEMPT_DELAY,
            Duration::from_secs(5),
            t0,
        );
        assert!(matches!(race.poll(t0), Step::Start(_)));
        race.failed(
            addr("127.0.0.1:1"),
            io::ErrorKind::ConnectionRefused.into(),
            t0,
        );
        assert!(
            matches!(race.poll(t0), Step::Failed(e) if e.kind() == io::ErrorKind::ConnectionRefused)
        );
        let mut empty = HappyEyeballs::new(
            Vec::new(),
            CONNECTION_ATTEMPT_DELAY,
            Duration::from_secs(5),
            t0,
        );
        assert!(matches!(empty.poll(t0), Step::Failed(e) if e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn interleave_alternates_families_and_filters_by_the_source_address() {
        let v4 = [addr("10.0.0.1:1"), addr("10.0.0.2:1")];
        let v6 = [addr("[fe80::1]:1"), addr("[fe80::2]:1")];
        let mixed = vec![v4[0], v4[1], v6[0], v6[1], v4[0]];
        assert_eq!(
            interleave(mixed.clone(), None),
            vec![v4[0], v6[0], v4[1], v6[1]]
        );
        let bind: IpAddr = "::1".parse().unwrap();
        assert_eq!(interleave(mixed, Some(bind)), vec![v6[0], v6[1]]);
    }
}
