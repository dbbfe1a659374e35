//! When an account is polled next: its interval (fixed or adaptive), the server's
//! LOGIN-DELAY, and backoff with jitter after a failure. Pure: time and randomness come in as
//! arguments.

use std::time::Duration;

use pop3_async::ResponseCode;

use crate::error::CliError;

/// The default interval.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The default bounds of `interval = "auto"`.
pub(crate) const DEFAULT_AUTO_MIN: Duration = Duration::from_secs(2 * 60);
/// See [`DEFAULT_AUTO_MIN`].
pub(crate) const DEFAULT_AUTO_MAX: Duration = Duration::from_secs(60 * 60);
/// The longest backoff after failures (or the interval, if longer).
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// The first backoff, unless the interval is shorter.
const FIRST_BACKOFF: Duration = Duration::from_secs(60);

/// An account's `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interval {
    /// Always the same.
    Fixed(Duration),
    /// Halved after a poll that stored mail, doubled after one that found none, within
    /// `min..=max`.
    Auto {
        /// The shortest.
        min: Duration,
        /// The longest.
        max: Duration,
    },
}

impl Interval {
    /// `interval`, `interval-min` and `interval-max` of an account.
    pub(crate) fn from_keys(
        interval: Option<&str>,
        min: Option<&str>,
        max: Option<&str>,
    ) -> Result<Self, String> {
        let bound = |key: &str, text: Option<&str>, default: Duration| match text {
            Some(text) => parse_duration(text).map_err(|e| format!("{key}: {e}")),
            None => Ok(default),
        };
        match interval {
            Some(text) if text.eq_ignore_ascii_case("auto") => {
                let min = bound("interval-min", min, DEFAULT_AUTO_MIN)?;
                let max = bound("interval-max", max, DEFAULT_AUTO_MAX)?;
                if min > max {
                    return Err(format!(
                        "interval-min ({}) is longer than interval-max ({})",
                        show(min),
                        show(max)
                    ));
                }
                Ok(Self::Auto { min, max })
            }
            _ if min.is_some() || max.is_some() => {
                Err("interval-min and interval-max need interval = \"auto\"".to_owned())
            }
            Some(text) => parse_duration(text)
                .map(Self::Fixed)
                .map_err(|e| format!("interval: {e}")),
            None => Ok(Self::Fixed(DEFAULT_INTERVAL)),
        }
    }
}

/// A duration written as numbers with units, `"90s"`, `"5m"`, `"1h30m"`, `"2d"` (a bare
/// number is seconds): at least one second, at most 366 days.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"90s\", \"5m\" or \"1h30m\"");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if let Some(n) = number {
        total = total.checked_add(n).ok_or_else(bad)?;
    }
    if !(1..=366 * 86_400).contains(&total) {
        return Err(format!("{text:?}: a duration must be 1s to 366d"));
    }
    Ok(Duration::from_secs(total))
}

/// `d` as `"1h30m"`, `"1m30s"`, `"2d5s"`; below a minute to the millisecond (`"1.742s"`,
/// `"250ms"`).
pub(crate) fn show(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    if secs < 60 && d.subsec_millis() > 0 {
        return format!("{secs}.{:03}s", d.subsec_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        let n = secs / size;
        secs %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// What a failed poll means for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Try again later, backing off: `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`, network,
    /// TLS and timeouts, local I/O, a `-ERR` without a code.
    Transient,
    /// `[LOGIN-DELAY]`: as transient, but never sooner than the server's delay.
    LoginDelay,
    /// Stop polling until the config changes or a manual check (SIGUSR1): `[AUTH]`,
    /// `[SYS/PERM]`, and usage errors (a config that cannot work as written).
    Pause,
}

impl Failure {
    /// Sorts an error.
    pub(crate) fn of(error: &CliError) -> Self {
        match error {
            CliError::ServerCode(code, _) => match code {
                ResponseCode::Auth | ResponseCode::SysPerm => Self::Pause,
                ResponseCode::LoginDelay => Self::LoginDelay,
                _ => Self::Transient,
            },
            CliError::Usage(_) => Self::Pause,
            _ => Self::Transient,
        }
    }
}

/// What comes after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Poll again after this long.
    After(Duration),
    /// Paused: only a reload that changes the account, or SIGUSR1, polls it again.
    Paused,
}

/// One account's schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    interval: Interval,
    /// The current interval of `Auto` (the fixed one otherwise).
    current: Duration,
    /// Failures in a row.
    failures: u32,
    /// The server's LOGIN-DELAY, as last announced: no login sooner than this after the
    /// previous one.
    login_delay: Option<Duration>,
}

impl Schedule {
    /// A fresh schedule: `Auto` starts at its shortest interval.
    pub(crate) fn new(interval: Interval) -> Self {
        let current = match interval {
            Interval::Fixed(d) => d,
            Interval::Auto { min, .. } => min,
        };
        Self {
            interval,
            current,
            failures: 0,
            login_delay: None,
        }
    }

    /// The interval that applies now (the adapted one for `auto`).
    pub(crate) fn current(&self) -> Duration {
        self.current
    }

    /// The server's LOGIN-DELAY, if it announced one.
    pub(crate) fn login_delay(&self) -> Option<Duration> {
        self.login_delay
    }

    /// Records the LOGIN-DELAY the server announced (after login, where the per-user value
    /// is known).
    pub(crate) fn set_login_delay(&mut self, delay: Option<Duration>) {
        self.login_delay = delay;
    }

    /// After a successful poll that stored `stored` messages.
    pub(crate) fn succeeded(&mut self, stored: usize) -> Next {
        self.failures = 0;
        if let Interval::Auto { min, max } = self.interval {
            self.current = if stored > 0 {
                (self.current / 2).max(min)
            } else {
                self.current.saturating_mul(2).min(max)
            };
        }
        Next::After(self.floor(self.current))
    }

    /// After a failed poll; `unit` in `0.0..1.0` picks the jitter.
    pub(crate) fn failed(&mut self, failure: &Failure, unit: f64) -> Next {
        if *failure == Failure::Pause {
            return Next::Paused;
        }
        self.failures = self.failures.saturating_add(1);
        let first = FIRST_BACKOFF.min(self.current);
        let cap = MAX_BACKOFF.max(self.current);
        let exponent = self.failures.saturating_sub(1).min(20);
        let full = first.saturating_mul(1 << exponent).min(cap);
        // Jitter: between half and all of the backoff, so that accounts failing together
        // (one server restarting) do not come back together.
        let jittered = full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        let mut wait = self.floor(jittered);
        if *failure == Failure::LoginDelay {
            // Without a known delay, at least the first backoff.
            wait = wait.max(self.login_delay.unwrap_or(first));
        }
        Next::After(wait)
    }

    /// Never sooner than the server's LOGIN-DELAY.
    fn floor(&self, wait: Duration) -> Duration {
        wait.max(self.login_delay.unwrap_or_default())
    }
}

/// A small pseudo-random source for jitter (xorshift64*): jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from `seed` (an account's name hash, the time, the process id).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in `0.0..1.0`.
    pub(crate) fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let n = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        n as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(S(90)));
        assert_eq!(parse_duration("5m"), Ok(S(300)));
        assert_eq!(parse_duration("1h30m"), Ok(S(5400)));
        assert_eq!(parse_duration("2d"), Ok(S(172_800)));
        assert_eq!(parse_duration("42"), Ok(S(42)));
        for bad in [
            "",
            "m",
            "5x",
            "0s",
            "-5m",
            "367d",
            "99999999999999999999s",
            "5 m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show(S(5400)), "1h30m");
        assert_eq!(show(S(90)), "1m30s");
        assert_eq!(show(S(86_400 * 2 + 5)), "2d5s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1742)), "1.742s");
        assert_eq!(show(Duration::from_millis(61_742)), "1m1s");
    }

    #[test]
    fn interval_keys() {
        assert_eq!(
            Interval::from_keys(None, None, None),
            Ok(Interval::Fixed(DEFAULT_INTERVAL))
        );
        assert_eq!(
            Interval::from_keys(Some("auto"), None, Some("30m")),
            Ok(Interval::Auto {
                min: DEFAULT_AUTO_MIN,
                max: S(1800)
            })
        );
        assert!(Interval::from_keys(Some("auto"), Some("2h"), Some("1h")).is_err());
        assert!(Interval::from_keys(Some("5m"), Some("1m"), None).is_err());
        assert!(Interval::from_keys(Some("often"), None, None).is_err());
    }

    #[test]
    fn auto_shortens_while_mail_arrives_and_lengthens_while_empty() {
        let mut s = Schedule::new(Interval::Auto {
            min: S(120),
            max: S(3600),
        });
        let waits: Vec<Next> = [0, 0, 0, 0, 0, 0, 3, 1, 1, 1, 1]
            .iter()
            .map(|&n| s.succeeded(n))
            .collect();
        let secs: Vec<u64> = waits
            .iter()
            .map(|n| match n {
                Next::After(d) => d.as_secs(),
                Next::Paused => 0,
            })
            .collect();
        assert_eq!(
            secs,
            [240, 480, 960, 1920, 3600, 3600, 1800, 900, 450, 225, 120]
        );
    }

    #[test]
    fn login_delay_is_a_floor() {
        let mut s = Schedule::new(Interval::Fixed(S(60)));
        s.set_login_delay(Some(S(900)));
        assert_eq!(s.succeeded(5), Next::After(S(900)));
        assert_eq!(s.failed(&Failure::Transient, 0.0), Next::After(S(900)));
        s.set_login_delay(None);
        assert_eq!(s.failed(&Failure::LoginDelay, 0.0), Next::After(S(60)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut s = Schedule::new(Interval::Fixed(S(300)));
        let at = |s: &mut Schedule, unit| match s.failed(&Failure::Transient, unit) {
            Next::After(d) => d.as_secs(),
            Next::Paused => 0,
        };
        assert_eq!(at(&mut s, 0.999_999), 59); // 60 s with full jitter (truncated)
        assert_eq!(at(&mut s, 0.0), 60); // 120 s, half
        assert_eq!(at(&mut s, 1.0), 240);
        for _ in 0..30 {
            at(&mut s, 0.5);
        }
        assert_eq!(at(&mut s, 1.0), 3600);
        assert_eq!(s.succeeded(0), Next::After(S(300)));
        assert_eq!(at(&mut s, 1.0), 60);
        // A short interval backs off from itself.
        let mut s = Schedule::new(Interval::Fixed(S(2)));
        assert_eq!(at(&mut s, 1.0), 2);
        assert_eq!(at(&mut s, 1.0), 4);
    }

    #[test]
    fn auth_and_perm_pause() {
        let mut s = Schedule::new(Interval::Fixed(S(60)));
        assert_eq!(s.failed(&Failure::Pause, 0.3), Next::Paused);
        let sort = |code| Failure::of(&CliError::ServerCode(code, String::new()));
        assert_eq!(sort(ResponseCode::Auth), Failure::Pause);
        assert_eq!(sort(ResponseCode::SysPerm), Failure::Pause);
        assert_eq!(sort(ResponseCode::InUse), Failure::Transient);
        assert_eq!(sort(ResponseCode::SysTemp), Failure::Transient);
        assert_eq!(sort(ResponseCode::LoginDelay), Failure::LoginDelay);
        assert_eq!(Failure::of(&CliError::usage("x")), Failure::Pause);
        assert_eq!(Failure::of(&CliError::failure("x")), Failure::Transient);
        assert_eq!(
            Failure::of(&CliError::Server("x".into())),
            Failure::Transient
        );
    }

    #[test]
    fn jitter_spreads_in_the_unit_interval() {
        let mut j = Jitter::new(42);
        let xs: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
