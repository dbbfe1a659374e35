//! The fetch state file: the UIDs already stored, the UIDs whose deletion is not known to be
//! committed, and the names reserved for the batch in flight, written atomically (temporary
//! file, fsync, rename, directory fsync) under a lock.
//!
//! ```text
//! pop3-cli fetch state v2
//! S <uid>            a message stored in the Maildir
//! D <uid>            ... and marked deleted on the server (DELE sent or about to be), the
//!                    QUIT that commits it not yet answered +OK
//! P <name> <uid>     a message of the batch in flight, to be delivered as new/<name>
//! ```
//!
//! The `P` lines make a crash harmless: after a kill between the rename into `new/` and the
//! next state write, the next run finds `new/<name>` (or `cur/<name>:2,...`) and records the
//! UID instead of storing the message again; a name that was not delivered is discarded
//! (with its partial file in `tmp/`) and the message fetched again.
//!
//! The `D` lines make UID reuse harmless: a server may give the UID of a deleted message to a
//! new one (RFC 1939 forbids reuse only while the message exists). Once the QUIT that
//! commits our DELEs is answered `+OK`, their UIDs leave the state (a reused UID is then
//! simply new). Until then (a crash, a dropped connection, a `-ERR` to QUIT, a server that
//! deletes on disconnect) the UID is marked `D`, written before the DELE is sent: the next run
//! cannot know whether the message it lists under that UID is the one stored or a new one,
//! so it downloads it again and compares the content with the Maildir (see `fetch`).
//! Version 1 files (no `D` lines) are read as well.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::maildir::sync_dir;

const HEADER: &str = "pop3-cli fetch state v2";
/// The header of version 1 (no `D` lines), still read.
const HEADER_V1: &str = "pop3-cli fetch state v1";

/// The state of one (user, server) pair.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    stored: Vec<String>,
    stored_set: HashSet<String>,
    /// Stored UIDs whose deletion is not known to be committed.
    deleting: HashSet<String>,
    /// (Maildir name, UID) of the batch in flight.
    pending: Vec<(String, String)>,
    /// Held for the life of the state: one fetch per state file at a time.
    _lock: File,
}

/// The default state file inside the Maildir: `DIR/.pop3-state.USER@HOST-PORT.HASH`, where
/// USER and HOST keep only `[A-Za-z0-9._-]` (anything else becomes `_`) and HASH (FNV-1a of
/// the exact user, host and port) keeps names apart that the sanitizing would merge. Keyed by
/// the port too: two servers behind one host name (SSH tunnels on localhost, a test and a
/// production server) have unrelated UIDs. A file, not a directory: dot-directories in a
/// Maildir are Maildir++ folders to Dovecot and Courier.
pub(crate) fn default_path(maildir: &Path, user: &str, host: &str, port: u16) -> PathBuf {
    let host = host.to_ascii_lowercase();
    let port = port.to_string();
    maildir.join(format!(
        ".pop3-state.{}@{}-{port}.{:08x}",
        sanitize(user),
        sanitize(&host),
        fnv1a(&[user, &host, &port])
    ))
}

/// The default state file of versions before 0.2 (keyed by user and host only), which
/// [`State::open_migrating`] renames to [`default_path`].
pub(crate) fn legacy_path(maildir: &Path, user: &str, host: &str) -> PathBuf {
    let host = host.to_ascii_lowercase();
    maildir.join(format!(
        ".pop3-state.{}@{}.{:08x}",
        sanitize(user),
        sanitize(&host),
        fnv1a(&[user, &host])
    ))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// FNV-1a (64 bits, truncated to 32) of the parts, NUL-separated.
fn fnv1a(parts: &[&str]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (index, part) in parts.iter().enumerate() {
        let sep: &[u8] = if index == 0 { b"" } else { b"\0" };
        for &byte in sep.iter().chain(part.as_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash as u32
}

/// Takes `FILE.lock` (exclusive, non-blocking).
fn lock_file(path: &Path) -> Result<File, CliError> {
    let lock_path = with_suffix(path, ".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| CliError::local(lock_path.display(), &e))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(lock),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(CliError::failure(format!(
            "{} is locked: another pop3 fetch is running on it",
            path.display()
        ))),
        Err(e) => Err(CliError::local(lock_path.display(), &e.into())),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl State {
    /// Locks (`FILE.lock`) and reads the state file; a missing file is an empty state.
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> Result<Self, CliError> {
        Self::open_migrating(path, None)
    }

    /// Locks (`FILE.lock`) and reads the state file (a missing file is an empty state); but
    /// when `path` does not exist and `legacy` (the default name of an earlier version) does,
    /// `legacy` is renamed to `path` first, under both locks: the record of what was stored is
    /// carried over, never dropped.
    pub(crate) fn open_migrating(path: &Path, legacy: Option<&Path>) -> Result<Self, CliError> {
        let shown = path.display().to_string();
        fs::create_dir_all(parent_dir(path)).map_err(|e| CliError::local(&shown, &e))?;
        let lock = lock_file(path)?;
        if let Some(legacy) = legacy.filter(|l| *l != path) {
            if fs::symlink_metadata(path).is_err() && fs::symlink_metadata(legacy).is_ok() {
                let _legacy_lock = lock_file(legacy)?;
                // Checked again under the old lock: an older pop3 may have been running.
                if fs::symlink_metadata(legacy).is_ok() {
                    fs::rename(legacy, path)
                        .and_then(|()| sync_dir(parent_dir(path)))
                        .map_err(|e| CliError::local(legacy.display(), &e))?;
                    tracing::info!(target: "pop3_cli", "renamed the state file {} to {shown}", legacy.display());
                }
            }
        }
        let mut state = Self {
            path: path.to_owned(),
            stored: Vec::new(),
            stored_set: HashSet::new(),
            deleting: HashSet::new(),
            pending: Vec::new(),
            _lock: lock,
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(CliError::local(&shown, &e)),
        };
        let corrupt = |line: usize, why: &str| {
            CliError::failure(format!(
                "{shown}:{line}: {why}; the state file is damaged (fix or remove it; without it every message is fetched again)"
            ))
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, HEADER | HEADER_V1)) => {}
            _ => return Err(corrupt(1, "not a pop3-cli state file (v1 or v2)")),
        }
        for (index, line) in lines {
            let number = index + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(' ') {
                Some(("S", uid)) if !uid.is_empty() => state.add_stored(uid),
                Some(("D", uid)) if !uid.is_empty() => {
                    state.deleting.insert(uid.to_owned());
                }
                Some(("P", rest)) => match rest.split_once(' ') {
                    Some((name, uid)) if valid_name(name) && !uid.is_empty() => {
                        state.pending.push((name.to_owned(), uid.to_owned()));
                    }
                    _ => return Err(corrupt(number, "malformed P line")),
                },
                _ => return Err(corrupt(number, "unknown line")),
            }
        }
        if !text.ends_with('\n') {
            return Err(corrupt(text.lines().count(), "truncated"));
        }
        // A D line without its S line (written by hand?) still means "not known to be gone".
        let orphans: Vec<String> = state
            .deleting
            .iter()
            .filter(|uid| !state.stored_set.contains(*uid))
            .cloned()
            .collect();
        for uid in orphans {
            state.add_stored(&uid);
        }
        Ok(state)
    }

    /// The state file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `uid` is recorded as stored.
    pub(crate) fn is_stored(&self, uid: &str) -> bool {
        self.stored_set.contains(uid)
    }

    /// Records `uid` as stored.
    pub(crate) fn add_stored(&mut self, uid: &str) {
        if self.stored_set.insert(uid.to_owned()) {
            self.stored.push(uid.to_owned());
        }
    }

    /// Whether the state knows any UID (stored, or reserved by an interrupted run): the server
    /// had UIDL for this account before.
    pub(crate) fn has_uids(&self) -> bool {
        !self.stored.is_empty() || !self.pending.is_empty()
    }

    /// Whether `uid` is stored and its deletion not known to be committed: a message listed
    /// under it may be the one stored or a new one that reuses the UID.
    pub(crate) fn is_deleting(&self, uid: &str) -> bool {
        self.deleting.contains(uid)
    }

    /// Whether any UID is marked [`is_deleting`](Self::is_deleting).
    pub(crate) fn any_deleting(&self) -> bool {
        !self.deleting.is_empty()
    }

    /// Marks a stored UID as about to be deleted (before its DELE is sent; written with the
    /// next [`save`](Self::save)).
    pub(crate) fn mark_deleting(&mut self, uid: &str) {
        if self.stored_set.contains(uid) {
            self.deleting.insert(uid.to_owned());
        }
    }

    /// Clears the deletion mark of `uid` (the message is known to exist on the server).
    pub(crate) fn clear_deleting(&mut self, uid: &str) {
        self.deleting.remove(uid);
    }

    /// Forgets `uids` entirely: their deletion was committed (QUIT answered `+OK`), so a
    /// message listed under one of them later is a new message.
    pub(crate) fn forget(&mut self, uids: &[String]) {
        let gone: HashSet<&str> = uids.iter().map(String::as_str).collect();
        self.stored.retain(|uid| !gone.contains(uid.as_str()));
        for uid in &gone {
            self.stored_set.remove(*uid);
            self.deleting.remove(*uid);
        }
    }

    /// Forgets the stored UIDs the server no longer lists (deleted there); returns how many.
    pub(crate) fn retain_stored(&mut self, listed: &HashSet<&str>) -> usize {
        let before = self.stored.len();
        self.stored.retain(|uid| listed.contains(uid.as_str()));
        self.stored_set.retain(|uid| listed.contains(uid.as_str()));
        self.deleting.retain(|uid| listed.contains(uid.as_str()));
        before - self.stored.len()
    }

    /// Takes the reserved names of the batch that was in flight when the last run ended.
    pub(crate) fn take_pending(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.pending)
    }

    /// Reserves names for the next batch (written with the next [`save`](Self::save)).
    pub(crate) fn set_pending(&mut self, pending: Vec<(String, String)>) {
        self.pending = pending;
    }

    /// Writes the state atomically: `FILE.tmp`, fsync, rename over `FILE`, fsync the
    /// directory.
    pub(crate) fn save(&self) -> io::Result<()> {
        let mut text = String::with_capacity(64 + self.stored.len() * 24);
        text.push_str(HEADER);
        text.push('\n');
        for uid in &self.stored {
            text.push_str("S ");
            text.push_str(uid);
            text.push('\n');
            if self.deleting.contains(uid) {
                text.push_str("D ");
                text.push_str(uid);
                text.push('\n');
            }
        }
        for (name, uid) in &self.pending {
            text.push_str("P ");
            text.push_str(name);
            text.push(' ');
            text.push_str(uid);
            text.push('\n');
        }
        let tmp = with_suffix(&self.path, ".tmp");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &self.path)?;
        sync_dir(parent_dir(&self.path))
    }
}

/// A reserved name must be one this tool makes (no path separators, no dots at the start).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && name.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_sanitized_and_distinct() {
        let root = Path::new("/m");
        let a = default_path(root, "alice", "pop.example.com", 995);
        assert_eq!(a.parent(), Some(root));
        let name = a.file_name().and_then(|n| n.to_str()).expect("utf-8");
        assert!(name.starts_with(".pop3-state.alice@pop.example.com-995."));
        let b = default_path(root, "a/../b", "x", 110);
        let c = default_path(root, "a_.._b", "x", 110);
        assert_eq!(b.parent(), Some(root));
        assert_ne!(b, c);
        assert_eq!(
            default_path(root, "alice", "POP.example.com", 995),
            default_path(root, "alice", "pop.example.com", 995)
        );
        assert_ne!(
            default_path(root, "alice", "localhost", 1110),
            default_path(root, "alice", "localhost", 2110)
        );
        // The name of earlier versions, unchanged (the migration looks for it).
        assert_eq!(
            legacy_path(root, "alice", "pop.example.com"),
            Path::new("/m/.pop3-state.alice@pop.example.com.3a7cc13f")
        );
    }

    #[test]
    fn a_legacy_file_is_renamed_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let legacy = legacy_path(dir.path(), "alice", "host");
        let path = default_path(dir.path(), "alice", "host", 110);
        fs::write(&legacy, format!("{HEADER_V1}\nS u1\n")).expect("write");
        {
            let state = State::open_migrating(&path, Some(&legacy)).expect("open");
            assert!(state.is_stored("u1"));
            assert!(!legacy.exists() && path.exists());
        }
        // An old file next to a new one is left alone (the new one wins).
        fs::write(&legacy, format!("{HEADER_V1}\nS old\n")).expect("write");
        let state = State::open_migrating(&path, Some(&legacy)).expect("open");
        assert!(state.is_stored("u1") && !state.is_stored("old"));
        assert!(legacy.exists());
        drop(state);
        // An older pop3 holding the old file's lock: no rename under its feet.
        let other = default_path(dir.path(), "alice", "host", 995);
        let held = lock_file(&legacy).expect("lock");
        let error = State::open_migrating(&other, Some(&legacy)).expect_err("locked");
        assert!(error.to_string().contains("locked"), "{error}");
        drop(held);
        assert!(legacy.exists() && !other.exists());
    }

    #[test]
    fn round_trip_and_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        {
            let mut state = State::open(&path).expect("open");
            state.add_stored("uid-1");
            state.add_stored("weird!uid");
            state.add_stored("gone");
            state.mark_deleting("gone");
            state.mark_deleting("never-stored");
            state.set_pending(vec![("1.M2P3Q4.host".to_owned(), "uid-2".to_owned())]);
            state.save().expect("save");
            assert!(State::open(&path).is_err(), "locked by the first");
        }
        let mut state = State::open(&path).expect("reopen");
        assert!(state.is_stored("uid-1") && state.is_stored("weird!uid"));
        assert!(state.is_deleting("gone") && !state.is_deleting("uid-1"));
        assert!(!state.is_stored("never-stored"));
        state.forget(&["gone".to_owned()]);
        assert!(!state.is_stored("gone") && !state.any_deleting());
        assert_eq!(
            state.take_pending(),
            vec![("1.M2P3Q4.host".to_owned(), "uid-2".to_owned())]
        );
        let listed: HashSet<&str> = ["uid-1"].into_iter().collect();
        assert_eq!(state.retain_stored(&listed), 1);
        assert!(!state.is_stored("weird!uid"));
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        fs::write(&path, "something else\n").expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{HEADER}\nS a\nX b\n")).expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{HEADER}\nP ../x uid\n")).expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{HEADER}\nS a")).expect("write");
        assert!(State::open(&path).is_err());
    }
}
