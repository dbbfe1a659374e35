//! Retention and size rules: given the server's listing, what the state knows of each UID,
//! the account's rules and the time, what happens to each message. Pure: the header filter
//! comes in as a closure, the time as a number; `fetch` carries the decisions out.
//!
//! The order of the checks, per message:
//! 1. A stored UID (not marked deleting) is left on the server, or deleted: with `--delete`
//!    at once, with `keep` once it was first seen more than `keep` ago and the server still
//!    lists the size it had when it was stored (a different size means a different message
//!    under a reused UID: never deleted on that UID's record).
//! 2. A UID marked seen (`only-new`) is left alone for good; on first use (no state file
//!    yet) with `only-new`, every listed message is marked seen.
//! 3. Anything else is a candidate (new, seen before but left by a rule, or listed under a
//!    UID marked deleting, which is fetched again and compared with what the target holds):
//!    `delete-larger-than` deletes it unread, `skip-larger-than` leaves it, a message
//!    larger than the session's byte cap is left (it could never fit), and once a session cap
//!    is reached every later candidate is left for the next session (in server order, so a
//!    message is never passed over by later ones). Otherwise the header filter decides:
//!    fetch, delete unread, or leave for now; a filter that fails leaves the message (never
//!    deletes it).
//!
//! The server's `EXPIRE` (RFC 2449 §6.7) bounds how long a stored UID can be trusted. Under
//! `EXPIRE n` (n ≥ 1 days) the server may delete a message about n days after it was
//! retrieved, and then give its UID to a new message. We count from the UID's first-seen
//! time (the first run that listed it: never later than our own first retrieval, so never
//! later than the server's start for that message when we were its first reader), less a
//! margin of one day for the clocks' skew and the "about": a stored UID is trusted for
//! `n - 1` days after it was first seen ([`expire_trusts`]). After that, step 1 does not apply
//! to it: it is a candidate like a UID marked deleting, downloaded again and compared with
//! what the target holds (stored only if different), and `keep` cannot delete it on the
//! strength of its UID. `EXPIRE 0` (each retrieved message is deleted when the session
//! ends) is carried out by `fetch` itself, which records those UIDs as deleted; `EXPIRE
//! NEVER` or none changes nothing.

use std::fmt;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Whether a stored UID first seen at `first_seen` can still be trusted at `now` on a server
/// that announces `EXPIRE days` (`days` ≥ 1): for `days - 1` days after it was first seen (one
/// day of margin for clock skew and for the server's "about n days"). Someone else's
/// retrieval before our first listing is not covered: the server's period may then have
/// started earlier than we can see.
pub(crate) fn expire_trusts(days: u32, first_seen: u64, now: u64) -> bool {
    let trusted = u64::from(days.saturating_sub(1)).saturating_mul(DAY);
    now < first_seen.saturating_add(trusted)
}

/// The rules of one account (or one `fetch` run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    /// `--delete`: delete each message once it is stored.
    pub(crate) delete: bool,
    /// `keep`: leave stored messages on the server for this many seconds after they were
    /// first seen, then delete them.
    pub(crate) keep: Option<u64>,
    /// Leave messages larger than this on the server, unread.
    pub(crate) skip_larger_than: Option<u64>,
    /// Delete messages larger than this on the server, unread.
    pub(crate) delete_larger_than: Option<u64>,
    /// At most this many messages fetched per session.
    pub(crate) max_messages: Option<usize>,
    /// At most this many bytes (as listed) fetched per session.
    pub(crate) max_bytes: Option<u64>,
    /// On first use, mark every message already on the server seen without fetching it.
    pub(crate) only_new: bool,
}

impl Rules {
    /// Checks that the rules make sense together.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.delete && self.keep.is_some() {
            return Err("--delete and keep contradict each other (keep leaves messages on the server for a while; --delete removes them at once)".to_owned());
        }
        if self.max_messages == Some(0) {
            return Err("the per-session message cap must be at least 1".to_owned());
        }
        if self.max_bytes == Some(0) {
            return Err("the per-session byte cap must be at least 1".to_owned());
        }
        Ok(())
    }

    /// Whether the rules need UIDs (a server without UIDL cannot follow them).
    pub(crate) fn need_uids(&self) -> Option<&'static str> {
        if self.keep.is_some() {
            Some("keep")
        } else if self.only_new {
            Some("only-new")
        } else {
            None
        }
    }
}

/// One message of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed<'a> {
    /// Its number in this session.
    pub(crate) msg: u32,
    /// Its UID (`None` without UIDL).
    pub(crate) uid: Option<&'a str>,
    /// Its size as LIST gives it.
    pub(crate) size: u64,
}

/// What the state knows of a UID, as far as the rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// Stored, first seen at this time, with this size recorded.
    Stored {
        /// When first seen (Unix seconds).
        first_seen: u64,
        /// The size listed when it was stored.
        size: Option<u64>,
    },
    /// Stored, and its deletion not known to be committed: maybe a new message.
    Deleting,
    /// Marked seen without being downloaded.
    MarkedSeen,
    /// Seen, not stored.
    Seen,
}

/// The header filter's answer for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Exit 0: fetch it.
    Fetch,
    /// Exit 1: delete it without fetching.
    Delete,
    /// Exit 2: leave it for now.
    Skip,
    /// Anything else (another status, a signal, a timeout, no headers): leave it, and say why.
    Failed(String),
}

/// What happens to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Download and store it; `verify`: listed under a UID marked deleting, so stored only
    /// if the Maildir holds no identical message.
    Fetch {
        /// Compare with the Maildir first.
        verify: bool,
    },
    /// Leave it on the server, untouched.
    Leave(Leave),
    /// Delete it on the server.
    Delete(Delete),
    /// Record it as seen without downloading it (`only-new` on first use).
    MarkSeen,
}

/// Why a message is left on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Already stored (and kept: no `--delete`, `keep` not yet due).
    Stored,
    /// Already stored; `keep` deletes it at this time (Unix seconds).
    KeptUntil(u64),
    /// Stored with one size, listed now with another: maybe another message under a reused
    /// UID, so `keep` does not delete it.
    SizeChanged {
        /// The size recorded when it was stored.
        recorded: u64,
    },
    /// Marked seen by `only-new`.
    MarkedSeen,
    /// Larger than `skip-larger-than`.
    TooLarge(u64),
    /// Larger than the whole per-session byte cap.
    LargerThanCap(u64),
    /// A per-session cap is reached: for a later session.
    SessionCap,
    /// The filter said "skip for now" (exit 2).
    Filter,
    /// The filter failed: never a reason to delete.
    FilterFailed(String),
}

/// Why a message is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delete {
    /// Stored before, and `--delete`.
    Stored,
    /// Stored, and first seen more than `keep` ago (at this time).
    Expired(u64),
    /// Larger than `delete-larger-than`: deleted without being downloaded.
    TooLarge(u64),
    /// The filter said "delete" (exit 1): deleted without being downloaded.
    Filter,
}

impl Delete {
    /// Whether the message is deleted without ever having been stored: an explicit delete
    /// rule, always logged.
    pub(crate) fn unread(&self) -> bool {
        matches!(self, Self::TooLarge(_) | Self::Filter)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch { verify: false } => f.write_str("fetch"),
            Self::Fetch { verify: true } => f.write_str(
                "fetch (its UID may have been reused: stored unless the target has it already)",
            ),
            Self::MarkSeen => f.write_str("mark seen (only-new)"),
            Self::Leave(leave) => match leave {
                Leave::Stored => f.write_str("leave (already stored)"),
                Leave::KeptUntil(t) => write!(
                    f,
                    "leave (already stored; keep deletes it after {})",
                    utc(*t)
                ),
                Leave::SizeChanged { recorded } => write!(
                    f,
                    "leave (stored with {recorded} octets, listed with another size: keep does not delete it)"
                ),
                Leave::MarkedSeen => f.write_str("leave (marked seen)"),
                Leave::TooLarge(limit) => write!(f, "skip (larger than skip-larger-than {limit})"),
                Leave::LargerThanCap(limit) => {
                    write!(f, "skip (larger than the session's byte cap {limit})")
                }
                Leave::SessionCap => f.write_str("skip (session cap reached)"),
                Leave::Filter => f.write_str("skip (filter: exit 2)"),
                Leave::FilterFailed(why) => write!(f, "skip (filter failed: {why})"),
            },
            Self::Delete(delete) => match delete {
                Delete::Stored => f.write_str("delete (already stored, --delete)"),
                Delete::Expired(t) => write!(f, "delete (kept since {}, keep expired)", utc(*t)),
                Delete::TooLarge(limit) => {
                    write!(f, "delete unread (larger than delete-larger-than {limit})")
                }
                Delete::Filter => f.write_str("delete unread (filter: exit 1)"),
            },
        }
    }
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc(seconds: u64) -> String {
    let days = seconds / DAY;
    let rem = seconds % DAY;
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a duration: a number followed by `s`, `m`, `h`, `d` or `w` (`"7d"`, `"12h"`); a
/// bare number is days. Returns seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "d"),
    };
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => {
            return Err(format!(
                "{text:?}: a duration is a number and one of s, m, h, d, w (e.g. \"7d\")"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?}: a duration is a number and one of s, m, h, d, w (e.g. \"7d\")")
    })?;
    n.checked_mul(per)
        .filter(|s| *s <= 100 * 365 * DAY)
        .ok_or_else(|| format!("{text:?}: at most 100 years"))
}

/// Parses a size: a number with an optional `k`, `M` or `G` (binary multiples: `10M` is
/// 10 MiB). Returns bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let per: u64 = match unit {
        "" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: a size is a number of bytes with an optional k, M or G"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: a size is a number of bytes with an optional k, M or G"))?;
    n.checked_mul(per)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// Decides every message of `listing`, in order. `known` says what the state knows of a
/// UID; `first_use`: there was no state file; `filter` is asked about candidates only, in
/// order, and not once a session cap is reached.
#[cfg(test)]
pub(crate) fn decide(
    listing: &[Listed<'_>],
    known: impl Fn(&str) -> Option<Known>,
    first_use: bool,
    rules: &Rules,
    now: u64,
    mut filter: impl FnMut(&Listed<'_>) -> Verdict,
) -> Vec<Action> {
    let mut decider = Decider::new(rules, first_use, now);
    listing
        .iter()
        .map(|item| match decider.step(item, item.uid.and_then(&known)) {
            Step::Decided(action) => action,
            Step::AskFilter { verify } => decider.filtered(item, verify, filter(item)),
        })
        .collect()
}

/// The next step for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Decided without the filter.
    Decided(Action),
    /// A candidate within the caps: the filter decides (with no filter: fetch); give its
    /// verdict to [`Decider::filtered`].
    AskFilter {
        /// Listed under a UID marked deleting.
        verify: bool,
    },
}

/// The decisions of `decide` one message at a time, for a caller whose filter runs asynchronously: call
/// [`step`](Self::step) for each message in server order, and [`filtered`](Self::filtered)
/// with the filter's verdict whenever it asks.
#[derive(Debug)]
pub(crate) struct Decider<'r> {
    rules: &'r Rules,
    first_use: bool,
    now: u64,
    messages: usize,
    bytes: u64,
    capped: bool,
    /// The server's `EXPIRE n` with n ≥ 1 (see [`expire_trusts`]).
    expire_days: Option<u32>,
}

impl<'r> Decider<'r> {
    /// Starts a session's decisions.
    pub(crate) fn new(rules: &'r Rules, first_use: bool, now: u64) -> Self {
        Self {
            rules,
            first_use,
            now,
            messages: 0,
            bytes: 0,
            capped: false,
            expire_days: None,
        }
    }

    /// The server announces `EXPIRE days` (ignored for 0, which `fetch` carries out itself):
    /// stored UIDs are trusted only as long as [`expire_trusts`] says.
    pub(crate) fn with_expire_days(mut self, days: u32) -> Self {
        self.expire_days = Some(days).filter(|d| *d > 0);
        self
    }

    /// The next message (in server order) and what the state knows of its UID.
    pub(crate) fn step(&mut self, item: &Listed<'_>, known: Option<Known>) -> Step {
        let rules = self.rules;
        let verify = match known {
            // The server may have expired it and reused its UID: compare by content.
            Some(Known::Stored { first_seen, .. })
                if self
                    .expire_days
                    .is_some_and(|days| !expire_trusts(days, first_seen, self.now)) =>
            {
                true
            }
            Some(Known::Stored { first_seen, size }) => {
                return Step::Decided(stored(rules, item.size, first_seen, size, self.now));
            }
            Some(Known::MarkedSeen) => return Step::Decided(Action::Leave(Leave::MarkedSeen)),
            None if self.first_use && rules.only_new && item.uid.is_some() => {
                return Step::Decided(Action::MarkSeen);
            }
            Some(Known::Deleting) => true,
            Some(Known::Seen) | None => false,
        };
        Step::Decided(
            if let Some(limit) = rules.delete_larger_than.filter(|l| item.size > *l) {
                Action::Delete(Delete::TooLarge(limit))
            } else if let Some(limit) = rules.skip_larger_than.filter(|l| item.size > *l) {
                Action::Leave(Leave::TooLarge(limit))
            } else if let Some(limit) = rules.max_bytes.filter(|l| item.size > *l) {
                Action::Leave(Leave::LargerThanCap(limit))
            } else if self.capped
                || rules.max_messages.is_some_and(|m| self.messages >= m)
                || rules
                    .max_bytes
                    .is_some_and(|b| self.bytes.saturating_add(item.size) > b)
            {
                self.capped = true;
                Action::Leave(Leave::SessionCap)
            } else {
                return Step::AskFilter { verify };
            },
        )
    }

    /// The filter's verdict on the message [`step`](Self::step) asked about.
    pub(crate) fn filtered(&mut self, item: &Listed<'_>, verify: bool, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Fetch => {
                self.messages += 1;
                self.bytes = self.bytes.saturating_add(item.size);
                Action::Fetch { verify }
            }
            Verdict::Delete => Action::Delete(Delete::Filter),
            Verdict::Skip => Action::Leave(Leave::Filter),
            Verdict::Failed(why) => Action::Leave(Leave::FilterFailed(why)),
        }
    }
}

/// A stored message: deleted with `--delete`, or by `keep` once due (and only while its
/// size is the one recorded), else left.
fn stored(rules: &Rules, listed: u64, first_seen: u64, recorded: Option<u64>, now: u64) -> Action {
    if rules.delete {
        return Action::Delete(Delete::Stored);
    }
    let Some(keep) = rules.keep else {
        return Action::Leave(Leave::Stored);
    };
    match recorded {
        Some(recorded) if recorded != listed => Action::Leave(Leave::SizeChanged { recorded }),
        // (No size recorded: the caller records the listed one before deciding.)
        None => Action::Leave(Leave::Stored),
        Some(_) => {
            let due = first_seen.saturating_add(keep);
            if now > due {
                Action::Delete(Delete::Expired(first_seen))
            } else {
                Action::Leave(Leave::KeptUntil(due))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn listed(uid: &str, msg: u32, size: u64) -> (u32, String, u64) {
        (msg, uid.to_owned(), size)
    }

    fn run(
        listing: &[(u32, String, u64)],
        state: &HashMap<&str, Known>,
        first_use: bool,
        rules: &Rules,
        verdict: impl Fn(u32) -> Verdict,
    ) -> (Vec<Action>, Vec<u32>) {
        let items: Vec<Listed<'_>> = listing
            .iter()
            .map(|(msg, uid, size)| Listed {
                msg: *msg,
                uid: Some(uid.as_str()),
                size: *size,
            })
            .collect();
        let mut asked = Vec::new();
        let actions = decide(
            &items,
            |uid| state.get(uid).copied(),
            first_use,
            rules,
            NOW,
            |item| {
                asked.push(item.msg);
                verdict(item.msg)
            },
        );
        (actions, asked)
    }

    #[test]
    fn expire_trusts_a_stored_uid_for_n_minus_one_days() {
        assert!(expire_trusts(5, NOW - 4 * DAY + 1, NOW));
        assert!(!expire_trusts(5, NOW - 4 * DAY, NOW));
        assert!(!expire_trusts(1, NOW, NOW), "EXPIRE 1: never trusted");
        assert!(expire_trusts(u32::MAX, 0, NOW));
        assert!(
            expire_trusts(2, NOW + DAY, NOW),
            "a time in the future (clock moved back)"
        );
    }

    #[test]
    fn expire_n_sends_untrusted_stored_uids_to_be_compared_and_keep_never_deletes_them() {
        let rules = Rules {
            keep: Some(30 * DAY),
            ..Rules::default()
        };
        let state: HashMap<&str, Known> = [
            (
                "old",
                Known::Stored {
                    first_seen: NOW - 40 * DAY,
                    size: Some(100),
                },
            ),
            (
                "young",
                Known::Stored {
                    first_seen: NOW - DAY,
                    size: Some(100),
                },
            ),
        ]
        .into_iter()
        .collect();
        let listing = [listed("old", 1, 100), listed("young", 2, 100)];
        let items: Vec<Listed<'_>> = listing
            .iter()
            .map(|(msg, uid, size)| Listed {
                msg: *msg,
                uid: Some(uid.as_str()),
                size: *size,
            })
            .collect();
        let mut decider = Decider::new(&rules, false, NOW).with_expire_days(10);
        assert_eq!(
            decider.step(&items[0], state.get("old").copied()),
            Step::AskFilter { verify: true }
        );
        assert_eq!(
            decider.step(&items[1], state.get("young").copied()),
            Step::Decided(Action::Leave(Leave::KeptUntil(NOW - DAY + 30 * DAY)))
        );
        // Without EXPIRE (or with EXPIRE 0, which fetch carries out itself) keep deletes it.
        for mut decider in [
            Decider::new(&rules, false, NOW),
            Decider::new(&rules, false, NOW).with_expire_days(0),
        ] {
            assert_eq!(
                decider.step(&items[0], state.get("old").copied()),
                Step::Decided(Action::Delete(Delete::Expired(NOW - 40 * DAY)))
            );
        }
    }

    #[test]
    fn keep_deletes_stored_messages_once_due_and_only_with_their_size() {
        let rules = Rules {
            keep: Some(7 * DAY),
            ..Rules::default()
        };
        let old = NOW - 7 * DAY - 1;
        let state: HashMap<&str, Known> = [
            (
                "old",
                Known::Stored {
                    first_seen: old,
                    size: Some(100),
                },
            ),
            (
                "exact",
                Known::Stored {
                    first_seen: NOW - 7 * DAY,
                    size: Some(100),
                },
            ),
            (
                "young",
                Known::Stored {
                    first_seen: NOW - DAY,
                    size: Some(100),
                },
            ),
            (
                "resized",
                Known::Stored {
                    first_seen: old,
                    size: Some(99),
                },
            ),
            (
                "unsized",
                Known::Stored {
                    first_seen: old,
                    size: None,
                },
            ),
            ("deleting", Known::Deleting),
            ("seen-long-ago", Known::Seen),
            ("marked", Known::MarkedSeen),
        ]
        .into_iter()
        .collect();
        let listing: Vec<_> = [
            "old",
            "exact",
            "young",
            "resized",
            "unsized",
            "deleting",
            "seen-long-ago",
            "marked",
        ]
        .iter()
        .zip(1..)
        .map(|(uid, msg)| listed(uid, msg, 100))
        .collect();
        let (actions, asked) = run(&listing, &state, false, &rules, |_| Verdict::Fetch);
        assert_eq!(
            actions,
            [
                Action::Delete(Delete::Expired(old)),
                Action::Leave(Leave::KeptUntil(NOW)),
                Action::Leave(Leave::KeptUntil(NOW + 6 * DAY)),
                Action::Leave(Leave::SizeChanged { recorded: 99 }),
                Action::Leave(Leave::Stored),
                // A UID marked deleting may be a new message: fetched and compared, never
                // deleted by keep on the old record.
                Action::Fetch { verify: true },
                Action::Fetch { verify: false },
                Action::Leave(Leave::MarkedSeen),
            ]
        );
        assert_eq!(asked, [6, 7], "the filter is asked about candidates only");
    }

    #[test]
    fn size_rules_caps_and_filter() {
        let rules = Rules {
            skip_larger_than: Some(1000),
            delete_larger_than: Some(5000),
            max_messages: Some(2),
            ..Rules::default()
        };
        let listing = vec![
            listed("huge", 1, 6000),
            listed("big", 2, 2000),
            listed("f-del", 3, 10),
            listed("f-skip", 4, 10),
            listed("f-fail", 5, 10),
            listed("a", 6, 10),
            listed("b", 7, 10),
            listed("c", 8, 10),
            listed("huge2", 9, 6000),
        ];
        let (actions, asked) = run(&listing, &HashMap::new(), false, &rules, |msg| match msg {
            3 => Verdict::Delete,
            4 => Verdict::Skip,
            5 => Verdict::Failed("exit status 7".to_owned()),
            _ => Verdict::Fetch,
        });
        assert_eq!(
            actions,
            [
                Action::Delete(Delete::TooLarge(5000)),
                Action::Leave(Leave::TooLarge(1000)),
                Action::Delete(Delete::Filter),
                Action::Leave(Leave::Filter),
                Action::Leave(Leave::FilterFailed("exit status 7".to_owned())),
                Action::Fetch { verify: false },
                Action::Fetch { verify: false },
                Action::Leave(Leave::SessionCap),
                // The size rules still apply past the cap (they need no filter).
                Action::Delete(Delete::TooLarge(5000)),
            ]
        );
        assert_eq!(
            asked,
            [3, 4, 5, 6, 7],
            "no filter run once the cap is reached"
        );
    }

    #[test]
    fn byte_cap_keeps_server_order_and_skips_what_never_fits() {
        let rules = Rules {
            max_bytes: Some(100),
            ..Rules::default()
        };
        let listing = vec![
            listed("a", 1, 60),
            listed("too-big-ever", 2, 101),
            listed("b", 3, 40),
            listed("c", 4, 1),
            listed("d", 5, 1),
        ];
        let (actions, _) = run(&listing, &HashMap::new(), false, &rules, |_| Verdict::Fetch);
        assert_eq!(
            actions,
            [
                Action::Fetch { verify: false },
                Action::Leave(Leave::LargerThanCap(100)),
                Action::Fetch { verify: false },
                Action::Leave(Leave::SessionCap),
                Action::Leave(Leave::SessionCap),
            ]
        );
    }

    #[test]
    fn only_new_marks_everything_on_first_use_only() {
        let rules = Rules {
            only_new: true,
            ..Rules::default()
        };
        let listing = vec![listed("a", 1, 10), listed("b", 2, 10)];
        let (actions, asked) = run(&listing, &HashMap::new(), true, &rules, |_| Verdict::Fetch);
        assert_eq!(actions, [Action::MarkSeen, Action::MarkSeen]);
        assert!(asked.is_empty());
        let state: HashMap<&str, Known> = [("a", Known::MarkedSeen)].into_iter().collect();
        let (actions, _) = run(&listing, &state, false, &rules, |_| Verdict::Fetch);
        assert_eq!(
            actions,
            [
                Action::Leave(Leave::MarkedSeen),
                Action::Fetch { verify: false }
            ]
        );
    }

    #[test]
    fn delete_deletes_stored_and_conflicts_with_keep() {
        let rules = Rules {
            delete: true,
            ..Rules::default()
        };
        let state: HashMap<&str, Known> = [
            (
                "a",
                Known::Stored {
                    first_seen: NOW,
                    size: Some(1),
                },
            ),
            ("m", Known::MarkedSeen),
        ]
        .into_iter()
        .collect();
        let (actions, _) = run(
            &[listed("a", 1, 1), listed("m", 2, 1)],
            &state,
            false,
            &rules,
            |_| Verdict::Fetch,
        );
        assert_eq!(
            actions,
            [
                Action::Delete(Delete::Stored),
                Action::Leave(Leave::MarkedSeen)
            ]
        );
        assert!(
            Rules {
                keep: Some(1),
                ..rules
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn durations_sizes_and_times() {
        assert_eq!(parse_duration("7d"), Ok(7 * DAY));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("2w"), Ok(14 * DAY));
        assert_eq!(parse_duration("30"), Ok(30 * DAY));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    fn arb_known() -> impl Strategy<Value = Option<Known>> {
        prop_oneof![
            Just(None),
            Just(Some(Known::Deleting)),
            Just(Some(Known::MarkedSeen)),
            Just(Some(Known::Seen)),
            (0..NOW + 10 * DAY, proptest::option::of(0u64..300))
                .prop_map(|(first_seen, size)| { Some(Known::Stored { first_seen, size }) }),
        ]
    }

    fn arb_rules() -> impl Strategy<Value = Rules> {
        (
            any::<bool>(),
            proptest::option::of(0..30 * DAY),
            proptest::option::of(0u64..300),
            proptest::option::of(0u64..300),
            proptest::option::of(1usize..10),
            proptest::option::of(1u64..1000),
            any::<bool>(),
        )
            .prop_map(|(delete, keep, skip, del, max_m, max_b, only_new)| Rules {
                delete,
                keep: if delete { None } else { keep },
                skip_larger_than: skip,
                delete_larger_than: del,
                max_messages: max_m,
                max_bytes: max_b,
                only_new,
            })
    }

    proptest! {
        /// The safety properties, whatever the listing, state, rules and filter:
        /// - a message is deleted only if it was stored (and not marked deleting) and
        ///   `--delete` or a due `keep` with the recorded size says so, or a delete rule
        ///   (delete-larger-than, filter exit 1) says so explicitly;
        /// - a failing filter never deletes;
        /// - the caps hold; a stored or marked-seen message is never fetched; a message
        ///   listed under a UID marked deleting is never deleted on its old record.
        #[test]
        fn decisions_are_safe(
            entries in proptest::collection::vec((arb_known(), 0u64..300, 0u8..4), 0..40),
            rules in arb_rules(),
            first_use in any::<bool>(),
        ) {
            let listing: Vec<(u32, String, u64)> = entries
                .iter()
                .enumerate()
                .map(|(i, (_, size, _))| (i as u32 + 1, format!("u{i}"), *size))
                .collect();
            let state: HashMap<String, Known> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, (known, _, _))| known.map(|k| (format!("u{i}"), k)))
                .collect();
            let verdicts: Vec<u8> = entries.iter().map(|(_, _, v)| *v).collect();
            let items: Vec<Listed<'_>> = listing
                .iter()
                .map(|(msg, uid, size)| Listed { msg: *msg, uid: Some(uid), size: *size })
                .collect();
            let verdict_of = |msg: u32| match verdicts[msg as usize - 1] {
                0 => Verdict::Fetch,
                1 => Verdict::Delete,
                2 => Verdict::Skip,
                _ => Verdict::Failed("crashed".to_owned()),
            };
            let actions = decide(&items, |uid| state.get(uid).copied(), first_use, &rules, NOW, |i| verdict_of(i.msg));
            prop_assert_eq!(actions.len(), items.len());
            let mut fetched = 0usize;
            let mut fetched_bytes = 0u64;
            for (item, action) in items.iter().zip(&actions) {
                let known = item.uid.and_then(|u| state.get(u).copied());
                match action {
                    Action::Delete(Delete::Stored) => {
                        let was_stored = matches!(known, Some(Known::Stored { .. }));
                        prop_assert!(rules.delete && was_stored);
                    }
                    Action::Delete(Delete::Expired(_)) => {
                        let keep = rules.keep.expect("keep");
                        match known {
                            Some(Known::Stored { first_seen, size }) => {
                                prop_assert_eq!(size, Some(item.size));
                                prop_assert!(NOW > first_seen + keep);
                            }
                            _ => prop_assert!(false, "expired a message not stored: {:?}", known),
                        }
                    }
                    Action::Delete(Delete::TooLarge(limit)) => {
                        prop_assert_eq!(Some(*limit), rules.delete_larger_than);
                        prop_assert!(item.size > *limit);
                    }
                    Action::Delete(Delete::Filter) => {
                        prop_assert_eq!(verdict_of(item.msg), Verdict::Delete);
                    }
                    Action::Fetch { verify } => {
                        let done = matches!(known, Some(Known::Stored { .. } | Known::MarkedSeen));
                        prop_assert!(!done);
                        prop_assert_eq!(*verify, known == Some(Known::Deleting));
                        prop_assert_eq!(verdict_of(item.msg), Verdict::Fetch);
                        prop_assert!(rules.skip_larger_than.is_none_or(|l| item.size <= l));
                        fetched += 1;
                        fetched_bytes += item.size;
                    }
                    Action::MarkSeen => {
                        prop_assert!(first_use && rules.only_new && known.is_none());
                    }
                    Action::Leave(_) => {}
                }
                if let Action::Delete(d) = action {
                    prop_assert!(!matches!(verdict_of(item.msg), Verdict::Failed(_)) || !matches!(d, Delete::Filter));
                    prop_assert!(known != Some(Known::Deleting) || d.unread());
                    prop_assert!(known != Some(Known::MarkedSeen));
                }
            }
            prop_assert!(rules.max_messages.is_none_or(|m| fetched <= m));
            prop_assert!(rules.max_bytes.is_none_or(|b| fetched_bytes <= b));
        }
    }
}
