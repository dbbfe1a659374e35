//! The text of the fetch state file: parsing (versions 1, 2 and 3) and writing (version 3).
//!
//! Pure and self-contained (std only): the fuzz target `state_file` includes this file as it
//! is, so it must not name anything else of the crate (hence `pub` items in a private
//! module).
#![allow(unreachable_pub)]
//!
//! ```text
//! pop3-cli fetch state v3
//! S <first-seen> <size|-> <uid>   stored (delivered to the target); <size> is the server's LIST size then
//! M <first-seen> <uid>            marked seen without being downloaded (only-new)
//! T <first-seen> <uid>            seen on the server, not stored (not yet, or skipped by a rule)
//! D <uid>                         stored, and its deletion not known to be committed
//! P <name> <uid>                  a message of the batch in flight, to be delivered as new/<name>
//! ```
//!
//! `<first-seen>` is the time (Unix seconds) a run first listed the UID. Versions 1 and 2
//! have `S <uid>` (and, in v2, `D <uid>`) lines without times: their UIDs are read as first
//! seen at the time of reading (the migration), which is never earlier than the truth.

use std::collections::HashMap;
use std::fmt;

/// The header of the version written.
pub const HEADER: &str = "pop3-cli fetch state v3";
/// The header of version 2 (`S`, `D`, `P` lines), still read.
pub const HEADER_V2: &str = "pop3-cli fetch state v2";
/// The header of version 1 (`S`, `P` lines), still read.
pub const HEADER_V1: &str = "pop3-cli fetch state v1";

/// The largest state file read: 256 MiB, some four million UIDs at the longest UID length
/// RFC 1939 allows (70). A larger file is refused rather than read into memory.
pub const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;
/// The longest UID accepted in a state file (the protocol core's ceiling for a UID is 255).
pub const MAX_UID_LEN: usize = 255;
/// The longest reserved Maildir name accepted in a `P` line.
pub const MAX_NAME_LEN: usize = 255;

/// What the state knows of a UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Listed by the server, not stored (not yet fetched, or left by a rule).
    Seen,
    /// Marked seen without being downloaded (`only-new` on first use): never fetched, never
    /// deleted.
    MarkedSeen,
    /// Stored in the Maildir.
    Stored,
}

/// One UID's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// What is known.
    pub kind: Kind,
    /// When a run first listed it (Unix seconds).
    pub first_seen: u64,
    /// For a stored message: the size the server listed when it was stored (`None` when not
    /// recorded, as for UIDs migrated from v1 and v2).
    pub size: Option<u64>,
    /// Stored, and its deletion not known to be committed (a `D` line): a message listed under
    /// this UID may be the stored one or a new one that reuses the UID.
    pub deleting: bool,
}

/// The parsed content of a state file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The version read (1, 2 or 3).
    pub version: u8,
    /// The records, each UID once, in the order of the file.
    pub records: Vec<(String, Entry)>,
    /// (Maildir name, UID) of the batch in flight.
    pub pending: Vec<(String, String)>,
}

/// Why a state file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Larger than the limit given to [`parse`].
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8.
    NotText,
    /// The first line is not a known header.
    NotAStateFile,
    /// A line that does not parse (1-based line number).
    Line {
        /// Its number.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The last line has no line end: the file was cut.
    Truncated,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "larger than {limit} bytes"),
            Self::NotText => f.write_str("not UTF-8 text"),
            Self::NotAStateFile => f.write_str("not a pop3-cli state file (v1, v2 or v3)"),
            Self::Line { line, why } => write!(f, "line {line}: {why}"),
            Self::Truncated => f.write_str("truncated (no line end after the last line)"),
        }
    }
}

impl std::error::Error for FormatError {}

/// A UID as this tool records it: 1 to [`MAX_UID_LEN`] printable ASCII characters (the
/// protocol's `0x21..=0x7E`).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_LEN && uid.bytes().all(|b| b.is_ascii_graphic())
}

/// A reserved name must be one this tool makes (no path separators, no dot at the start).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && !name.contains('/')
        && name.bytes().all(|b| b.is_ascii_graphic())
}

/// A decimal number of at most 20 digits that fits a `u64`.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Seen => 0,
        Kind::MarkedSeen => 1,
        Kind::Stored => 2,
    }
}

/// [`Parsed`] while it is read: the records and where each UID is among them.
#[derive(Default)]
struct Reading {
    parsed: Parsed,
    index: HashMap<String, usize>,
}

impl Reading {
    /// Adds or merges a record. A UID named twice (only by hand) keeps the strongest kind
    /// (stored over marked over seen) and the later first-seen time: never a reason to delete
    /// sooner.
    fn merge(&mut self, uid: &str, entry: Entry) {
        match self.index.get(uid) {
            Some(&at) => {
                let old = &mut self.parsed.records[at].1;
                if rank(entry.kind) > rank(old.kind) {
                    old.kind = entry.kind;
                    old.size = entry.size;
                }
                old.first_seen = old.first_seen.max(entry.first_seen);
                old.deleting |= entry.deleting;
            }
            None => {
                self.index.insert(uid.to_owned(), self.parsed.records.len());
                self.parsed.records.push((uid.to_owned(), entry));
            }
        }
    }
}

/// Parses a state file's bytes, refusing more than `limit` bytes. UIDs of versions 1 and 2
/// are given `now` as their first-seen time. A `D` line without its `S` line still means "not
/// known to be gone": its UID is read as stored.
pub fn parse(bytes: &[u8], limit: usize, now: u64) -> Result<Parsed, FormatError> {
    if bytes.len() > limit {
        return Err(FormatError::TooLarge { limit });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FormatError::NotText)?;
    let mut lines = text.split('\n');
    let version = match lines.next().map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        Some(HEADER) => 3,
        Some(HEADER_V2) => 2,
        Some(HEADER_V1) => 1,
        _ => return Err(FormatError::NotAStateFile),
    };
    if !text.ends_with('\n') {
        return Err(FormatError::Truncated);
    }
    let mut parsed = Reading {
        parsed: Parsed {
            version,
            ..Parsed::default()
        },
        ..Reading::default()
    };
    let mut deleting = Vec::new();
    for (index, line) in lines.enumerate() {
        let number_of_line = index + 2;
        let bad = |why| FormatError::Line {
            line: number_of_line,
            why,
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(' ');
        let tag = fields.next().unwrap_or_default();
        let fields: Vec<&str> = fields.take(4).collect();
        let uid_at = |i: usize| -> Result<&str, FormatError> {
            match fields.get(i) {
                Some(uid) if valid_uid(uid) => Ok(uid),
                _ => Err(bad("not a valid UID")),
            }
        };
        let time_at = |i: usize| -> Result<u64, FormatError> {
            fields
                .get(i)
                .and_then(|t| number(t))
                .ok_or(bad("not a valid time"))
        };
        match (tag, version) {
            ("S", 1 | 2) => {
                if fields.len() != 1 {
                    return Err(bad("an S line has one field in v1 and v2"));
                }
                let uid = uid_at(0)?;
                parsed.merge(uid, stored(now, None));
            }
            ("S", _) => {
                if fields.len() != 3 {
                    return Err(bad("an S line has three fields"));
                }
                let first_seen = time_at(0)?;
                let size = match fields[1] {
                    "-" => None,
                    text => Some(number(text).ok_or(bad("not a valid size"))?),
                };
                let uid = uid_at(2)?;
                parsed.merge(uid, stored(first_seen, size));
            }
            ("M" | "T", 3) => {
                if fields.len() != 2 {
                    return Err(bad("an M or T line has two fields"));
                }
                let first_seen = time_at(0)?;
                let uid = uid_at(1)?;
                let kind = if tag == "M" {
                    Kind::MarkedSeen
                } else {
                    Kind::Seen
                };
                parsed.merge(
                    uid,
                    Entry {
                        kind,
                        first_seen,
                        size: None,
                        deleting: false,
                    },
                );
            }
            ("D", 2 | 3) => {
                if fields.len() != 1 {
                    return Err(bad("a D line has one field"));
                }
                deleting.push(uid_at(0)?.to_owned());
            }
            ("P", _) => {
                if fields.len() != 2 {
                    return Err(bad("malformed P line"));
                }
                let name = fields[0];
                if !valid_name(name) {
                    return Err(bad("malformed P line"));
                }
                let uid = uid_at(1)?;
                parsed
                    .parsed
                    .pending
                    .push((name.to_owned(), uid.to_owned()));
            }
            _ => return Err(bad("unknown line")),
        }
    }
    for uid in deleting {
        // A D line without its S line (written by hand?) still means "not known to be gone".
        let mut entry = stored(now, None);
        entry.deleting = true;
        match parsed.index.get(&uid) {
            Some(&at) => {
                let old = &mut parsed.parsed.records[at].1;
                if old.kind == Kind::Stored {
                    entry = Entry {
                        deleting: true,
                        ..*old
                    };
                }
                *old = entry;
            }
            None => {
                parsed
                    .index
                    .insert(uid.clone(), parsed.parsed.records.len());
                parsed.parsed.records.push((uid, entry));
            }
        }
    }
    Ok(parsed.parsed)
}

fn stored(first_seen: u64, size: Option<u64>) -> Entry {
    Entry {
        kind: Kind::Stored,
        first_seen,
        size,
        deleting: false,
    }
}

/// Writes the records and the pending names as a version 3 file. (The reference: the fetch
/// state renders the same text a record at a time; its tests and the fuzz target compare.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn write(records: &[(String, Entry)], pending: &[(String, String)]) -> String {
    let mut text = String::with_capacity(
        HEADER.len() + 1 + records.iter().map(|(uid, _)| uid.len() + 36).sum::<usize>(),
    );
    text.push_str(HEADER);
    text.push('\n');
    for (uid, entry) in records {
        write_record(&mut text, uid, entry);
    }
    write_pending(&mut text, pending);
    text
}

/// Appends the line (or, for a stored UID being deleted, the two lines) of one record.
///
/// The fetch state is written whole after every batch, so this is on the hot path of a
/// large first fetch: it appends bytes and digits, without `format!`.
pub fn write_record(text: &mut String, uid: &str, entry: &Entry) {
    match entry.kind {
        Kind::Stored => {
            text.push_str("S ");
            push_number(text, entry.first_seen);
            text.push(' ');
            match entry.size {
                Some(size) => push_number(text, size),
                None => text.push('-'),
            }
            text.push(' ');
            text.push_str(uid);
            text.push('\n');
            if entry.deleting {
                text.push_str("D ");
                text.push_str(uid);
                text.push('\n');
            }
        }
        Kind::MarkedSeen | Kind::Seen => {
            text.push_str(if entry.kind == Kind::Seen { "T " } else { "M " });
            push_number(text, entry.first_seen);
            text.push(' ');
            text.push_str(uid);
            text.push('\n');
        }
    }
}

/// Appends the `P` lines.
pub fn write_pending(text: &mut String, pending: &[(String, String)]) {
    for (name, uid) in pending {
        text.push_str("P ");
        text.push_str(name);
        text.push(' ');
        text.push_str(uid);
        text.push('\n');
    }
}

/// Appends `n` in decimal.
fn push_number(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // (n % 10 < 10: the cast cannot truncate.)
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        text.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn order(parsed: &Parsed) -> Vec<&str> {
        parsed.records.iter().map(|(uid, _)| uid.as_str()).collect()
    }

    fn entry(parsed: &Parsed, uid: &str) -> Entry {
        parsed
            .records
            .iter()
            .find(|(u, _)| u == uid)
            .map(|(_, e)| *e)
            .expect("a record")
    }

    #[test]
    fn reads_v1_and_v2_as_first_seen_now() {
        let v1 = parse(
            format!("{HEADER_V1}\nS a\nS b\nP 1.M2.h a\n").as_bytes(),
            1 << 20,
            NOW,
        )
        .expect("v1");
        assert_eq!(v1.version, 1);
        assert_eq!(order(&v1), ["a", "b"]);
        assert_eq!(entry(&v1, "a"), stored(NOW, None));
        assert_eq!(v1.pending, [("1.M2.h".to_owned(), "a".to_owned())]);
        // v1 has no D lines.
        assert!(parse(format!("{HEADER_V1}\nD a\n").as_bytes(), 1 << 20, NOW).is_err());
        let v2 = parse(
            format!("{HEADER_V2}\nS a\nD a\nD orphan\n").as_bytes(),
            1 << 20,
            NOW,
        )
        .expect("v2");
        assert!(entry(&v2, "a").deleting && entry(&v2, "orphan").deleting);
        assert_eq!(entry(&v2, "orphan").kind, Kind::Stored);
        // v2 has no M or T lines, and S lines with one field only.
        assert!(parse(format!("{HEADER_V2}\nT 5 a\n").as_bytes(), 1 << 20, NOW).is_err());
        assert!(parse(format!("{HEADER_V2}\nS 5 - a\n").as_bytes(), 1 << 20, NOW).is_err());
    }

    #[test]
    fn v3_round_trips() {
        let text =
            format!("{HEADER}\nS 100 2048 a\nD a\nS 200 - b\nM 300 c\nT 400 d\nP 1.M2.h d\n");
        let parsed = parse(text.as_bytes(), 1 << 20, NOW).expect("v3");
        assert_eq!(parsed.version, 3);
        assert_eq!(
            entry(&parsed, "a"),
            Entry {
                kind: Kind::Stored,
                first_seen: 100,
                size: Some(2048),
                deleting: true
            }
        );
        assert_eq!(entry(&parsed, "c").kind, Kind::MarkedSeen);
        assert_eq!(entry(&parsed, "d").kind, Kind::Seen);
        assert_eq!(write(&parsed.records, &parsed.pending), text);
    }

    #[test]
    fn refuses_damage_and_bounds_the_size() {
        let refused = |text: &str| parse(text.as_bytes(), 1 << 20, NOW).expect_err(text);
        assert_eq!(refused("something else\n"), FormatError::NotAStateFile);
        assert_eq!(
            refused(&format!("{HEADER}\nS 1 - a")),
            FormatError::Truncated
        );
        assert!(matches!(
            refused(&format!("{HEADER}\nS 1 - a\nX b\n")),
            FormatError::Line { line: 3, .. }
        ));
        refused(&format!("{HEADER}\nP ../x uid\n"));
        refused(&format!("{HEADER}\nS 1 - a b\n"));
        refused(&format!("{HEADER}\nS 99999999999999999999 - a\n"));
        refused(&format!("{HEADER}\nS 1 -5 a\n"));
        refused(&format!("{HEADER}\nT 1 \u{e9}\n"));
        refused(&format!(
            "{HEADER}\nS 1 - {}\n",
            "u".repeat(MAX_UID_LEN + 1)
        ));
        assert_eq!(
            parse(&[0xff, b'\n'], 1 << 20, NOW),
            Err(FormatError::NotText)
        );
        let text = format!("{HEADER}\nS 1 - a\n");
        assert_eq!(
            parse(text.as_bytes(), text.len() - 1, NOW),
            Err(FormatError::TooLarge {
                limit: text.len() - 1
            })
        );
        assert!(parse(text.as_bytes(), text.len(), NOW).is_ok());
    }

    #[test]
    fn a_uid_named_twice_never_gets_older() {
        let parsed = parse(
            format!("{HEADER}\nT 500 a\nS 100 7 a\nM 50 a\n").as_bytes(),
            1 << 20,
            NOW,
        )
        .expect("v3");
        assert_eq!(order(&parsed), ["a"]);
        assert_eq!(
            entry(&parsed, "a"),
            Entry {
                kind: Kind::Stored,
                first_seen: 500,
                size: Some(7),
                deleting: false
            }
        );
    }

    #[test]
    fn numbers_are_written_whole() {
        let records = [
            ("a".to_owned(), stored(0, Some(u64::MAX))),
            (
                "b".to_owned(),
                Entry {
                    kind: Kind::Seen,
                    first_seen: u64::MAX,
                    size: None,
                    deleting: false,
                },
            ),
            ("c".to_owned(), stored(1_000_000_000, None)),
        ];
        assert_eq!(
            write(&records, &[]),
            format!(
                "{HEADER}\nS 0 18446744073709551615 a\nT 18446744073709551615 b\nS 1000000000 - c\n"
            )
        );
    }

    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            0u8..3,
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            any::<bool>(),
        )
            .prop_map(|(kind, first_seen, size, deleting)| {
                let kind = [Kind::Seen, Kind::MarkedSeen, Kind::Stored][usize::from(kind)];
                let stored = kind == Kind::Stored;
                Entry {
                    kind,
                    first_seen,
                    size: size.filter(|_| stored),
                    deleting: deleting && stored,
                }
            })
    }

    proptest! {
        /// Whatever the records, what is written reads back the same, in the same order.
        #[test]
        fn written_state_reads_back(
            records in proptest::collection::vec(("[!-~]{1,40}", arb_entry()), 0..30),
            pending in proptest::collection::vec(("[0-9A-Za-z][!-.0-~]{0,30}", "[!-~]{1,20}"), 0..4),
        ) {
            // Each UID once (the state's invariant), the first of a repeated one kept.
            let mut seen = std::collections::HashSet::new();
            let records: Vec<(String, Entry)> =
                records.into_iter().filter(|(uid, _)| seen.insert(uid.clone())).collect();
            let text = write(&records, &pending);
            let parsed = parse(text.as_bytes(), usize::MAX, NOW).expect("reads back");
            prop_assert_eq!(parsed.version, 3);
            prop_assert_eq!(&parsed.records, &records);
            prop_assert_eq!(&parsed.pending, &pending);
        }
    }
}
