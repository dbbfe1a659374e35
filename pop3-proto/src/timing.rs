//! Read deadlines, decided once for every adapter: how long the server may take with what the
//! client waits for. Clock-free like the rest of the core: the adapter passes `now` in.
//!
//! Two rules, chosen by [`Client::awaiting`](crate::Client::awaiting):
//!
//! - **A status line** (the greeting, the first line of a reply, each line of an AUTH exchange)
//!   must be complete within the timeout, counted from when the client started waiting for it.
//!   Bytes that arrive in the meantime do not restart it, so a server that trickles `+OK ` one
//!   byte a second cannot hold the session. (An AUTH exchange counts as one wait: its
//!   challenges and the final reply together get one timeout.)
//! - **The rest of a multi-line reply** (a RETR/TOP body, and every line of a LIST, UIDL, CAPA
//!   or LANG listing: a listing of a million entries is as long as a large message) is held to
//!   a low-speed limit in the manner of curl's `--speed-limit`/`--speed-time`: at least
//!   `speed_limit × speed_time` bytes must arrive within `speed_time`, counted from the start
//!   of the multi-line part and again from each moment that quota is met. A complete stall
//!   (no byte at all for the timeout) also ends it, as it always did.
//!
//! With nothing awaited (only writing, say) each wait gets the plain timeout.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pop3_proto::{Awaiting, Expired, ReadClock};
//!
//! let start = Instant::now();
//! let mut clock = ReadClock::new(Duration::from_secs(30), 10, Duration::from_secs(60));
//! clock.observe(Awaiting::Greeting, start);
//! // One byte a second does not move the deadline of a status line.
//! for s in 1..30 {
//!     clock.on_input(1, start + Duration::from_secs(s));
//!     clock.observe(Awaiting::Greeting, start + Duration::from_secs(s));
//! }
//! assert_eq!(clock.wait(start + Duration::from_secs(29)), Ok(Duration::from_secs(1)));
//! let expired = clock.wait(start + Duration::from_secs(30)).unwrap_err();
//! assert_eq!(expired.to_string(), "timed out after 30 s waiting for the greeting");
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use crate::command::{Command, CommandId, CommandKind};

/// What the client waits for from the server: see [`Client::awaiting`](crate::Client::awaiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Awaiting {
    /// Nothing: no command in flight (the session is idle, closed or failed).
    Nothing,
    /// The TCP connection (adapters use this for the connect; the client never returns it).
    Connect,
    /// The TLS handshake (after the `+OK` to STLS, or for implicit TLS).
    TlsHandshake,
    /// The server's greeting.
    Greeting,
    /// A status line of the reply to this command (its first line, or an AUTH challenge).
    Status(Awaited),
    /// The rest of this command's multi-line reply: a body or the lines of a listing.
    MultiLine(Awaited),
}

/// The command whose reply is awaited: its kind and message number, which is what a timeout
/// names ("the reply to RETR 3"). Never carries an argument that could be secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Awaited {
    /// The command's id.
    pub id: CommandId,
    /// The command.
    pub kind: CommandKind,
    /// Its message number, for LIST n, RETR, DELE, TOP and UIDL n.
    pub msg: Option<u32>,
}

impl Awaited {
    pub(crate) fn message_number(command: &Command) -> Option<u32> {
        match command {
            Command::List(n) | Command::Uidl(n) => *n,
            Command::Retr(n) | Command::Dele(n) | Command::Top { msg: n, .. } => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Awaited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.msg {
            Some(msg) => write!(f, "{} {msg}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl fmt::Display for Awaiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nothing => f.write_str("the server"),
            Self::Connect => f.write_str("the connection"),
            Self::TlsHandshake => f.write_str("the TLS handshake"),
            Self::Greeting => f.write_str("the greeting"),
            Self::Status(awaited) => write!(f, "the reply to {awaited}"),
            Self::MultiLine(awaited) => write!(f, "the rest of the reply to {awaited}"),
        }
    }
}

/// A read limit ran out. The connection is out of step with the server (a reply is still on
/// its way, or never coming) and cannot be used again: close it without QUIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Expired {
    /// Nothing (or not enough to complete a status line) arrived within the timeout.
    #[error("timed out after {} waiting for {awaiting}", Seconds(*after))]
    Timeout {
        /// The timeout.
        after: Duration,
        /// What was awaited.
        awaiting: Awaiting,
    },
    /// A multi-line reply came in slower than the speed limit.
    #[error(
        "{awaiting} came in slower than the speed limit of {limit} bytes/s over {} \
         (received {received} bytes)",
        Seconds(*time)
    )]
    TooSlow {
        /// The speed limit, in bytes per second.
        limit: u32,
        /// The time over which it is averaged.
        time: Duration,
        /// How many bytes arrived in that time.
        received: u64,
        /// What was awaited.
        awaiting: Awaiting,
    },
}

impl Expired {
    /// What was awaited.
    pub fn awaiting(&self) -> Awaiting {
        match self {
            Self::Timeout { awaiting, .. } | Self::TooSlow { awaiting, .. } => *awaiting,
        }
    }
}

/// A duration in seconds, as people write it: `30 s`, `0.2 s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.0.as_secs_f64())
    }
}

/// Where the current wait stands.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// A status line (or nothing) awaited since `since`.
    Line { awaiting: Awaiting, since: Instant },
    /// A multi-line reply: the last byte, and the current speed window.
    Data {
        awaiting: Awaiting,
        last_input: Instant,
        window_start: Instant,
        window_bytes: u64,
    },
}

/// The read deadlines of one connection (see the [module docs](self)).
///
/// An adapter calls [`observe`](Self::observe) with [`Client::awaiting`](crate::Client::awaiting)
/// before each wait, [`on_input`](Self::on_input) after each read, and uses
/// [`wait`](Self::wait) as its read timeout; when that timeout fires it reports
/// [`expired`](Self::expired).
#[derive(Debug, Clone)]
pub struct ReadClock {
    timeout: Duration,
    speed_limit: u32,
    speed_time: Duration,
    watch: Option<Watch>,
}

impl ReadClock {
    /// A clock with these limits. A `speed_limit` of 0 turns the low-speed limit off; a
    /// zero `speed_time` does too.
    pub fn new(timeout: Duration, speed_limit: u32, speed_time: Duration) -> Self {
        Self {
            timeout,
            speed_limit,
            speed_time,
            watch: None,
        }
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout; a wait in progress keeps its start, so its deadline moves.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Changes the low-speed limit (bytes per second, over `time`); 0 turns it off.
    pub fn set_speed_limit(&mut self, limit: u32, time: Duration) {
        self.speed_limit = limit;
        self.speed_time = time;
    }

    /// Records what the client waits for now. A change of what is awaited starts a new wait
    /// at `now`; the same thing again changes nothing.
    pub fn observe(&mut self, awaiting: Awaiting, now: Instant) {
        let current = match self.watch {
            Some(Watch::Line { awaiting, .. } | Watch::Data { awaiting, .. }) => Some(awaiting),
            None => None,
        };
        if current == Some(awaiting) {
            return;
        }
        self.watch = Some(match awaiting {
            Awaiting::MultiLine(_) => Watch::Data {
                awaiting,
                last_input: now,
                window_start: now,
                window_bytes: 0,
            },
            _ => Watch::Line {
                awaiting,
                since: now,
            },
        });
    }

    /// Records `bytes` received at `now`.
    pub fn on_input(&mut self, bytes: usize, now: Instant) {
        if bytes == 0 {
            return;
        }
        let quota = self.quota();
        if let Some(Watch::Data {
            last_input,
            window_start,
            window_bytes,
            ..
        }) = &mut self.watch
        {
            *last_input = now;
            *window_bytes = window_bytes.saturating_add(bytes as u64);
            if quota.is_some_and(|quota| *window_bytes >= quota) {
                *window_start = now;
                *window_bytes = 0;
            }
        }
    }

    /// How long the adapter may wait for the next read, from `now`; `Err` once a limit ran
    /// out. With nothing observed (or [`Awaiting::Nothing`]), the plain timeout.
    pub fn wait(&self, now: Instant) -> Result<Duration, Expired> {
        match self.next() {
            Some((deadline, expired)) => match deadline.checked_duration_since(now) {
                Some(left) if !left.is_zero() => Ok(left),
                _ => Err(expired),
            },
            None => Ok(self.timeout),
        }
    }

    /// The nearest deadline, or `None` when only the plain per-wait timeout applies.
    pub fn deadline(&self) -> Option<Instant> {
        self.next().map(|(deadline, _)| deadline)
    }

    /// What ran out, for an adapter whose read timeout (from [`wait`](Self::wait)) fired: the
    /// limit of the nearest deadline.
    pub fn expired(&self) -> Expired {
        self.next().map_or(
            Expired::Timeout {
                after: self.timeout,
                awaiting: Awaiting::Nothing,
            },
            |(_, expired)| expired,
        )
    }

    /// The bytes a speed window must bring, if the limit is on.
    fn quota(&self) -> Option<u64> {
        if self.speed_limit == 0 || self.speed_time.is_zero() {
            return None;
        }
        let quota = u128::from(self.speed_limit) * self.speed_time.as_millis() / 1000;
        Some(u64::try_from(quota).unwrap_or(u64::MAX).max(1))
    }

    fn next(&self) -> Option<(Instant, Expired)> {
        let timeout = |awaiting| Expired::Timeout {
            after: self.timeout,
            awaiting,
        };
        match self.watch? {
            Watch::Line {
                awaiting: Awaiting::Nothing,
                ..
            } => None,
            Watch::Line { awaiting, since } => Some((add(since, self.timeout), timeout(awaiting))),
            Watch::Data {
                awaiting,
                last_input,
                window_start,
                window_bytes,
            } => {
                let stall = (add(last_input, self.timeout), timeout(awaiting));
                if self.quota().is_none() {
                    return Some(stall);
                }
                let slow = (
                    add(window_start, self.speed_time),
                    Expired::TooSlow {
                        limit: self.speed_limit,
                        time: self.speed_time,
                        received: window_bytes,
                        awaiting,
                    },
                );
                Some(if slow.0 <= stall.0 { slow } else { stall })
            }
        }
    }
}

/// `at + by`, saturating far in the future (a timeout of years must not panic).
fn add(at: Instant, by: Duration) -> Instant {
    [
        by,
        Duration::from_secs(100 * 365 * 86_400),
        Duration::from_secs(86_400),
    ]
    .into_iter()
    .find_map(|by| at.checked_add(by))
    .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn retr(msg: u32) -> Awaited {
        Awaited {
            id: CommandId(7),
            kind: CommandKind::Retr,
            msg: Some(msg),
        }
    }

    #[test]
    fn a_status_line_is_bounded_from_the_start_of_the_wait() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(30 * S, 10, 60 * S);
        clock.observe(Awaiting::Status(retr(3)), t0);
        for s in 1..30 {
            clock.on_input(1, t0 + s * S);
            clock.observe(Awaiting::Status(retr(3)), t0 + s * S);
            assert_eq!(clock.wait(t0 + s * S), Ok((30 - s) * S));
        }
        let expired = Expired::Timeout {
            after: 30 * S,
            awaiting: Awaiting::Status(retr(3)),
        };
        assert_eq!(clock.wait(t0 + 30 * S), Err(expired));
        assert_eq!(clock.wait(t0 + 31 * S), Err(expired));
        assert_eq!(clock.expired(), expired);
        assert_eq!(clock.deadline(), Some(t0 + 30 * S));
        assert_eq!(
            expired.to_string(),
            "timed out after 30 s waiting for the reply to RETR 3"
        );
    }

    #[test]
    fn a_new_wait_starts_a_new_deadline() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(30 * S, 10, 60 * S);
        clock.observe(Awaiting::Greeting, t0);
        clock.observe(Awaiting::Status(retr(1)), t0 + 20 * S);
        assert_eq!(clock.wait(t0 + 45 * S), Ok(5 * S));
        let next = Awaited {
            id: CommandId(8),
            ..retr(2)
        };
        clock.observe(Awaiting::Status(next), t0 + 49 * S);
        assert_eq!(clock.wait(t0 + 50 * S), Ok(29 * S));
    }

    #[test]
    fn nothing_awaited_gets_the_plain_timeout() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(30 * S, 10, 60 * S);
        assert_eq!(clock.wait(t0), Ok(30 * S));
        assert_eq!(clock.deadline(), None);
        clock.observe(Awaiting::Nothing, t0);
        assert_eq!(clock.wait(t0 + 1000 * S), Ok(30 * S));
        assert_eq!(
            clock.expired().to_string(),
            "timed out after 30 s waiting for the server"
        );
    }

    #[test]
    fn a_body_below_the_speed_limit_is_cut() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(30 * S, 10, 60 * S);
        clock.observe(Awaiting::MultiLine(retr(3)), t0);
        // 5 bytes/s: never a stall, but 300 bytes in 60 s where 600 are needed.
        for s in 1..60 {
            clock.on_input(5, t0 + s * S);
            // The nearer of the stall timeout (30 s after the last byte) and the window's end.
            assert_eq!(clock.wait(t0 + s * S), Ok((60 - s).min(30) * S));
        }
        let expired = Expired::TooSlow {
            limit: 10,
            time: 60 * S,
            received: 295,
            awaiting: Awaiting::MultiLine(retr(3)),
        };
        assert_eq!(clock.wait(t0 + 60 * S), Err(expired));
        assert_eq!(clock.expired(), expired);
        assert_eq!(
            expired.to_string(),
            "the rest of the reply to RETR 3 came in slower than the speed limit of 10 bytes/s \
             over 60 s (received 295 bytes)"
        );
    }

    #[test]
    fn a_body_at_the_speed_limit_goes_on() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(30 * S, 10, 60 * S);
        clock.observe(Awaiting::MultiLine(retr(3)), t0);
        // Exactly 10 bytes/s for ten minutes: each window's quota is met at its last second.
        for s in 1..=600 {
            assert!(clock.wait(t0 + s * S - Duration::from_millis(1)).is_ok());
            clock.on_input(10, t0 + s * S);
            clock.observe(Awaiting::MultiLine(retr(3)), t0 + s * S);
        }
        assert!(clock.wait(t0 + 600 * S + 29 * S).is_ok());
        // Then a stall: the timeout, since the last byte.
        assert_eq!(
            clock.wait(t0 + 630 * S),
            Err(Expired::Timeout {
                after: 30 * S,
                awaiting: Awaiting::MultiLine(retr(3))
            })
        );
    }

    #[test]
    fn a_burst_meets_the_quota_for_a_whole_window() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(100 * S, 10, 60 * S);
        clock.observe(Awaiting::MultiLine(retr(1)), t0);
        clock.on_input(600, t0 + S);
        // A new window starts at the burst: 60 s from there, not from the start.
        assert_eq!(clock.wait(t0 + S), Ok(60 * S));
        clock.on_input(599, t0 + 30 * S);
        assert_eq!(clock.wait(t0 + 60 * S), Ok(S));
        assert!(matches!(
            clock.wait(t0 + 61 * S),
            Err(Expired::TooSlow { received: 599, .. })
        ));
    }

    #[test]
    fn the_speed_limit_can_be_off() {
        let t0 = Instant::now();
        for mut clock in [
            ReadClock::new(30 * S, 0, 60 * S),
            ReadClock::new(30 * S, 10, Duration::ZERO),
        ] {
            clock.observe(Awaiting::MultiLine(retr(1)), t0);
            for s in 1..1000 {
                clock.on_input(1, t0 + s * S);
            }
            assert_eq!(clock.wait(t0 + 1000 * S), Ok(29 * S));
        }
    }

    #[test]
    fn the_stall_timeout_is_nearer_than_the_window() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(S, 10, 60 * S);
        clock.observe(Awaiting::MultiLine(retr(1)), t0);
        assert_eq!(clock.deadline(), Some(t0 + S));
        assert!(matches!(clock.expired(), Expired::Timeout { .. }));
        clock.set_timeout(100 * S);
        assert_eq!(clock.deadline(), Some(t0 + 60 * S));
        assert!(matches!(clock.expired(), Expired::TooSlow { .. }));
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let t0 = Instant::now();
        let mut clock = ReadClock::new(Duration::MAX, u32::MAX, Duration::MAX);
        clock.observe(Awaiting::MultiLine(retr(1)), t0);
        clock.on_input(usize::MAX, t0);
        assert!(clock.wait(t0 + 1000 * S).is_ok());
        clock.observe(Awaiting::Greeting, t0);
        assert!(clock.wait(t0 + 1000 * S).is_ok());
    }

    #[test]
    fn messages_name_what_was_awaited() {
        let cases = [
            (Awaiting::Greeting, "the greeting"),
            (Awaiting::Connect, "the connection"),
            (Awaiting::TlsHandshake, "the TLS handshake"),
            (Awaiting::Nothing, "the server"),
            (
                Awaiting::Status(Awaited {
                    id: CommandId(1),
                    kind: CommandKind::Stat,
                    msg: None,
                }),
                "the reply to STAT",
            ),
        ];
        for (awaiting, text) in cases {
            assert_eq!(awaiting.to_string(), text);
        }
        let short = Expired::Timeout {
            after: Duration::from_millis(200),
            awaiting: Awaiting::Greeting,
        };
        assert_eq!(
            short.to_string(),
            "timed out after 0.2 s waiting for the greeting"
        );
        assert_eq!(short.awaiting(), Awaiting::Greeting);
    }

    #[test]
    fn the_client_says_what_it_awaits() {
        use crate::{Client, Config, Event};
        let mut client = Client::new(Config {
            auto_capa: false,
            allow_plaintext_auth: true,
            ..Config::default()
        });
        assert_eq!(client.awaiting(), Awaiting::Greeting);
        client.handle_input(b"+OK ready\r\n");
        while let Ok(Some(_)) = client.poll_event() {}
        assert_eq!(client.awaiting(), Awaiting::Nothing);
        client.enqueue(Command::user("u")).expect("valid");
        client.poll_transmit(&mut Vec::new());
        let Awaiting::Status(user) = client.awaiting() else {
            panic!("{:?}", client.awaiting());
        };
        assert_eq!((user.kind, user.msg), (CommandKind::User, None));
        client.handle_input(b"+OK\r\n");
        while let Ok(Some(_)) = client.poll_event() {}
        client.enqueue(Command::pass("p")).expect("valid");
        client.poll_transmit(&mut Vec::new());
        client.handle_input(b"+OK\r\n");
        while let Ok(Some(_)) = client.poll_event() {}
        client.enqueue(Command::retr(3)).expect("valid");
        client.poll_transmit(&mut Vec::new());
        let Awaiting::Status(retr) = client.awaiting() else {
            panic!("{:?}", client.awaiting());
        };
        assert_eq!(retr.to_string(), "RETR 3");
        client.handle_input(b"+OK\r\nabc");
        while let Ok(Some(event)) = client.poll_event() {
            assert!(!matches!(event, Event::Ok { .. }));
        }
        assert_eq!(client.awaiting(), Awaiting::MultiLine(retr));
        client.handle_input(b"\r\n.\r\n");
        while let Ok(Some(_)) = client.poll_event() {}
        assert_eq!(client.awaiting(), Awaiting::Nothing);
        client.handle_eof();
        assert!(client.poll_event().is_err());
        assert_eq!(client.awaiting(), Awaiting::Nothing);
    }
}
