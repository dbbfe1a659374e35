//! UID-safe decisions, free of I/O, shared by the adapters' `dele_uid` and `fetch_new`.
//!
//! Message numbers are only valid within one session, and another client (or the server's own
//! expiry) can delete messages between two sessions, so the number a program remembers may now
//! name another message. The unique ids of UIDL (RFC 1939 §7) are what stays stable:
//!
//! - [`check_uid`] says whether the server's `UIDL n` answer still names the message the
//!   caller believes in, before a `DELE n`;
//! - [`select_new`] picks, from a UIDL listing, the messages a [`SeenStore`] has not recorded
//!   yet, refusing a listing that gives one UID to two messages (or lists a number twice): with
//!   such a listing "what is new" has no safe answer.
//!
//! ```
//! use std::collections::HashSet;
//! use pop3_proto::login::UniqueIdListing;
//! use pop3_proto::uid::{select_new, SeenStore};
//!
//! let listing = vec![
//!     UniqueIdListing { msg: 1, uid: "a".into() },
//!     UniqueIdListing { msg: 2, uid: "b".into() },
//! ];
//! let mut seen = HashSet::new();
//! seen.record("a")?;
//! assert_eq!(select_new(&listing, &seen)?, vec![listing[1].clone()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;

use crate::login::{ServerError, UniqueIdListing};

/// Where a program records the UIDs of the messages it has stored: the "only what is not yet
/// recorded" memory of `fetch_new` in the adapters.
///
/// [`record`](Self::record) is called only after the message was handed over completely (its
/// `End` event, the caller's sink returned `Ok`): make the message durable in that sink before
/// returning, and the record durable here, so that a crash between the two fetches the message
/// again rather than loses it. Implemented for `HashSet<String>` and `BTreeSet<String>` (in
/// memory, for one process).
pub trait SeenStore {
    /// Whether `uid` was recorded.
    fn is_seen(&self, uid: &str) -> bool;
    /// Records `uid` as stored.
    ///
    /// # Errors
    ///
    /// The store could not be written; the adapters stop and return it.
    fn record(&mut self, uid: &str) -> io::Result<()>;
}

impl SeenStore for HashSet<String> {
    fn is_seen(&self, uid: &str) -> bool {
        self.contains(uid)
    }

    fn record(&mut self, uid: &str) -> io::Result<()> {
        self.insert(uid.to_owned());
        Ok(())
    }
}

impl SeenStore for BTreeSet<String> {
    fn is_seen(&self, uid: &str) -> bool {
        self.contains(uid)
    }

    fn record(&mut self, uid: &str) -> io::Result<()> {
        self.insert(uid.to_owned());
        Ok(())
    }
}

impl<T: SeenStore + ?Sized> SeenStore for &mut T {
    fn is_seen(&self, uid: &str) -> bool {
        (**self).is_seen(uid)
    }

    fn record(&mut self, uid: &str) -> io::Result<()> {
        (**self).record(uid)
    }
}

/// What the adapters' `fetch_new` did: the messages handed over completely and recorded in the
/// store, and those the server refused to send (not recorded: the next run tries again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchReport {
    /// Fetched and recorded, in listing order.
    pub fetched: Vec<UniqueIdListing>,
    /// Refused with `-ERR` (not recorded), with the server's answer.
    pub refused: Vec<(UniqueIdListing, ServerError)>,
}

/// Why a UID-safe operation refused to go on. Nothing was deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UidError {
    /// `UIDL msg` answered another UID (or another message number) than the caller expected:
    /// the message numbers moved since the caller learnt them.
    #[error(
        "message {msg} is no longer the one expected: the server's UID for it is {found:?}, not {expected:?}; nothing was deleted"
    )]
    Mismatch {
        /// The message number the caller gave.
        msg: u32,
        /// The UID the caller expected.
        expected: String,
        /// The UID the server gave (for the message number it answered with).
        found: String,
    },
    /// The UIDL listing gives the same UID to two messages.
    #[error("the server lists the UID {uid:?} for both message {first} and message {second}")]
    DuplicateUid {
        /// The UID.
        uid: String,
        /// The first message listed with it.
        first: u32,
        /// The next message listed with it.
        second: u32,
    },
    /// The UIDL listing lists a message number twice.
    #[error("the server lists message {msg} twice in its UIDL listing")]
    DuplicateMessage {
        /// The message number.
        msg: u32,
    },
}

/// Checks the server's answer to `UIDL msg` against what the caller believes: the same message
/// number and the same UID (compared byte for byte, as RFC 1939 §7 defines them).
///
/// # Errors
///
/// [`UidError::Mismatch`] when the answer names another message.
pub fn check_uid(answer: &UniqueIdListing, msg: u32, uid: &str) -> Result<(), UidError> {
    if answer.msg == msg && answer.uid == uid {
        return Ok(());
    }
    Err(UidError::Mismatch {
        msg,
        expected: uid.to_owned(),
        found: answer.uid.clone(),
    })
}

/// The entries of `listing` whose UID `store` has not recorded, in listing order.
///
/// # Errors
///
/// [`UidError::DuplicateUid`] or [`UidError::DuplicateMessage`] when the listing is not a
/// one-to-one map between numbers and UIDs; then nothing is selected.
pub fn select_new<St: SeenStore + ?Sized>(
    listing: &[UniqueIdListing],
    store: &St,
) -> Result<Vec<UniqueIdListing>, UidError> {
    let mut by_uid: HashMap<&str, u32> = HashMap::with_capacity(listing.len());
    let mut numbers: HashSet<u32> = HashSet::with_capacity(listing.len());
    for entry in listing {
        if let Some(&first) = by_uid.get(entry.uid.as_str()) {
            return Err(UidError::DuplicateUid {
                uid: entry.uid.clone(),
                first,
                second: entry.msg,
            });
        }
        if !numbers.insert(entry.msg) {
            return Err(UidError::DuplicateMessage { msg: entry.msg });
        }
        by_uid.insert(&entry.uid, entry.msg);
    }
    Ok(listing
        .iter()
        .filter(|entry| !store.is_seen(&entry.uid))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(msg: u32, uid: &str) -> UniqueIdListing {
        UniqueIdListing {
            msg,
            uid: uid.to_owned(),
        }
    }

    #[test]
    fn check_uid_accepts_only_the_same_number_and_uid() {
        assert_eq!(check_uid(&entry(2, "b"), 2, "b"), Ok(()));
        assert_eq!(
            check_uid(&entry(2, "c"), 2, "b"),
            Err(UidError::Mismatch {
                msg: 2,
                expected: "b".into(),
                found: "c".into()
            })
        );
        // Case matters: UIDs are compared byte for byte.
        assert!(check_uid(&entry(2, "B"), 2, "b").is_err());
        // A server answering for another number does not confirm the caller's.
        assert!(check_uid(&entry(3, "b"), 2, "b").is_err());
    }

    #[test]
    fn select_new_keeps_listing_order_and_skips_recorded() {
        let listing = [entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "d")];
        let mut seen = BTreeSet::new();
        assert_eq!(select_new(&listing, &seen).unwrap(), listing.to_vec());
        seen.record("c").unwrap();
        seen.record("a").unwrap();
        seen.record("zzz").unwrap();
        assert_eq!(
            select_new(&listing, &seen).unwrap(),
            vec![entry(2, "b"), entry(4, "d")]
        );
        assert_eq!(select_new(&[], &seen).unwrap(), vec![]);
    }

    #[test]
    fn select_new_refuses_duplicates_even_of_seen_uids() {
        let mut seen = HashSet::new();
        seen.record("a").unwrap();
        assert_eq!(
            select_new(&[entry(1, "a"), entry(2, "b"), entry(3, "a")], &seen),
            Err(UidError::DuplicateUid {
                uid: "a".into(),
                first: 1,
                second: 3
            })
        );
        assert_eq!(
            select_new(&[entry(1, "a"), entry(1, "b")], &seen),
            Err(UidError::DuplicateMessage { msg: 1 })
        );
    }
}
