//! The fetch state file's reader (pop3-cli's `state/format.rs`, included as it is) on
//! arbitrary bytes: it never panics, refuses anything over its byte limit, accepts only
//! well-formed records, and what it accepts is written back (as v3) to a file that reads
//! the same.
//!
//! Input: a 1-byte header (the byte limit: 0 means `MAX_STATE_BYTES`, n means 16 * n) and
//! then the file's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../pop3-cli/src/state/format.rs"]
#[allow(dead_code)]
mod format;

use format::{Kind, MAX_STATE_BYTES, parse, valid_name, valid_uid, write};

/// The run's time given to v1 and v2 records.
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let limit = match selector {
        0 => MAX_STATE_BYTES,
        n => usize::from(n) * 16,
    };
    let parsed = match parse(file, limit, NOW) {
        Ok(parsed) => parsed,
        Err(format::FormatError::TooLarge { limit: l }) => {
            assert_eq!(l, limit);
            assert!(file.len() > limit, "refused as too large at {} bytes", file.len());
            return;
        }
        Err(_) => {
            assert!(file.len() <= limit);
            return;
        }
    };
    assert!(file.len() <= limit);
    assert!((1..=3).contains(&parsed.version));
    assert!(file.ends_with(b"\n"));
    // Every UID once, each record well-formed.
    let mut uids = std::collections::HashSet::new();
    for (uid, entry) in &parsed.records {
        assert!(valid_uid(uid), "{uid:?}");
        assert!(uids.insert(uid.as_str()), "{uid:?} twice");
        if entry.deleting {
            assert_eq!(entry.kind, Kind::Stored, "only a stored UID is being deleted");
        }
        if entry.kind != Kind::Stored {
            assert_eq!(entry.size, None);
        }
        if parsed.version < 3 {
            assert_eq!(entry.first_seen, NOW, "v1/v2 UIDs count as first seen now");
        }
    }
    for (name, uid) in &parsed.pending {
        assert!(valid_name(name) && valid_uid(uid));
    }
    // Written back, it reads the same (as v3), and writing that again is a fixed point.
    let text = write(&parsed.records, &parsed.pending);
    let again = parse(text.as_bytes(), usize::MAX, NOW + 1).expect("our own output reads");
    assert_eq!(again.version, 3);
    assert_eq!(again.records, parsed.records);
    assert_eq!(again.pending, parsed.pending);
    assert_eq!(write(&again.records, &again.pending), text);
});
