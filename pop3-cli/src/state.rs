//! The fetch state file: the UIDs already stored, the UIDs whose deletion is not known to be
//! committed, the UIDs seen (with the time each was first listed, for `keep`), and the names
//! reserved for the batch in flight, written atomically (temporary file, fsync, rename,
//! directory fsync) under a lock. The text format is in [`format`](mod@format) (version 3; versions 1
//! and 2 are read and migrated by the next write).
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
//! so it downloads it again and compares the content with the target (the Maildir's files,
//! else the digests of `crate::deliver::Digests`), and its first-seen time starts again (see
//! [`crate::rules`]): `keep` never counts a new message's days from an old one's.

pub(crate) mod format;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::CliError;
use crate::maildir::sync_dir;
pub(crate) use format::{Entry, Kind};

/// What a damaged state file's error adds.
const DAMAGED: &str =
    "; the state file is damaged (fix or remove it; without it every message is fetched again)";

/// `FILE:LINE: why; the state file is damaged ...`.
fn damaged(shown: &str, line: usize, why: &str) -> CliError {
    CliError::failure(format!("{shown}:{line}: {why}{DAMAGED}"))
}

/// Where each UID is in `records`.
fn index_of(records: &[(String, Entry)]) -> HashMap<String, usize> {
    records
        .iter()
        .enumerate()
        .map(|(at, (uid, _))| (uid.clone(), at))
        .collect()
}

/// The lines of the records as last rendered: `text` holds those of `records[..ends.len()]`,
/// record `i`'s ending at `ends[i]`, except that the records from `changed.0` to `changed.1`
/// may have changed since. The fetch state is written whole after every batch (5,000 UIDs: 78
/// writes of up to 5,000 records): rendering only the batch's records makes a write one copy
/// of the text, as cheap as the floor's (BENCHMARKS.md).
#[derive(Debug, Default)]
struct Rendered {
    text: String,
    ends: Vec<usize>,
    changed: Option<(usize, usize)>,
}

impl Rendered {
    /// Record `at` changes.
    fn changed(&mut self, at: usize) {
        if at < self.ends.len() {
            self.changed = Some(match self.changed {
                Some((first, last)) => (first.min(at), last.max(at)),
                None => (at, at),
            });
        }
    }

    /// The lines of `records` (the records this was rendered from, with the changes it was
    /// told of, and new records after them).
    fn render(&mut self, records: &[(String, Entry)]) -> &str {
        if self.ends.len() > records.len() {
            // (Records were removed without a reset: render them all again.)
            *self = Self::default();
        }
        if let Some((first, last)) = self.changed.take() {
            let start = first.checked_sub(1).map_or(0, |before| self.ends[before]);
            let end = self.ends[last];
            let mut middle = String::with_capacity(end - start + 64);
            for (at, (uid, entry)) in records.iter().enumerate().take(last + 1).skip(first) {
                format::write_record(&mut middle, uid, entry);
                self.ends[at] = start + middle.len();
            }
            self.text.replace_range(start..end, &middle);
            let new_end = start + middle.len();
            if new_end != end {
                for later in &mut self.ends[last + 1..] {
                    *later = *later - end + new_end;
                }
            }
        }
        for (uid, entry) in &records[self.ends.len()..] {
            format::write_record(&mut self.text, uid, entry);
            self.ends.push(self.text.len());
        }
        &self.text
    }
}

/// The state of one (user, server) pair.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    /// The records, in the order their UIDs were first recorded (the file's order, so that
    /// a save walks them without a lookup per UID).
    records: Vec<(String, Entry)>,
    /// Where each UID is in `records`.
    index: HashMap<String, usize>,
    /// The records' lines as last written, so that a save renders only what changed.
    rendered: Rendered,
    /// (Maildir name, UID) of the batch in flight.
    pending: Vec<(String, String)>,
    /// Whether the file existed when opened (`only-new` acts on first use only).
    existed: bool,
    /// The time of this run (Unix seconds): first-seen times of new UIDs, and of UIDs
    /// migrated from v1 and v2.
    now: u64,
    /// Whether a UID was noted, marked, restarted or forgotten since the file was read.
    dirty: bool,
    /// Held for the life of the state: one fetch per state file at a time (`None` for a
    /// read-only look, as `--dry-run` takes).
    _lock: Option<File>,
}

/// The current time in Unix seconds (0 before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
        Self::read(path, Some(lock), unix_now())
    }

    /// Reads the state file without locking or creating anything (`--dry-run`): it may be
    /// stale by the time it is used, but it is never half-written (writes are renames).
    pub(crate) fn open_read_only(path: &Path, legacy: Option<&Path>) -> Result<Self, CliError> {
        let path_for_read = match legacy {
            Some(legacy) if fs::symlink_metadata(path).is_err() && legacy.exists() => legacy,
            _ => path,
        };
        let mut state = Self::read(path_for_read, None, unix_now())?;
        state.path = path.to_owned();
        Ok(state)
    }

    /// Reads `path` (at most [`format::MAX_STATE_BYTES`]), taking `now` as this run's time.
    pub(crate) fn read(path: &Path, lock: Option<File>, now: u64) -> Result<Self, CliError> {
        let shown = path.display().to_string();
        let mut state = Self {
            path: path.to_owned(),
            records: Vec::new(),
            index: HashMap::new(),
            rendered: Rendered::default(),
            pending: Vec::new(),
            existed: false,
            now,
            dirty: false,
            _lock: lock,
        };
        let bytes = match File::open(path) {
            Ok(file) => {
                let mut bytes = Vec::new();
                // One byte past the limit, so that a file over it is told apart.
                file.take(format::MAX_STATE_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| CliError::local(&shown, &e))?;
                bytes
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(CliError::local(&shown, &e)),
        };
        let parsed = format::parse(&bytes, format::MAX_STATE_BYTES, now).map_err(|e| {
            let place = match &e {
                format::FormatError::Line { line, why } => return damaged(&shown, *line, why),
                format::FormatError::NotAStateFile => "1".to_owned(),
                format::FormatError::Truncated => {
                    (bytes.iter().filter(|b| **b == b'\n').count() + 1).to_string()
                }
                format::FormatError::TooLarge { .. } | format::FormatError::NotText => {
                    String::new()
                }
            };
            let why = match e {
                format::FormatError::Truncated => "truncated".to_owned(),
                other => other.to_string(),
            };
            if place.is_empty() {
                CliError::failure(format!("{shown}: {why}{DAMAGED}"))
            } else {
                CliError::failure(format!("{shown}:{place}: {why}{DAMAGED}"))
            }
        })?;
        if parsed.version < 3 {
            tracing::info!(target: "pop3_cli", "{shown}: a v{} state file, rewritten as v3 by the next write (its UIDs count as first seen now)", parsed.version);
        }
        state.index = index_of(&parsed.records);
        state.records = parsed.records;
        state.pending = parsed.pending;
        state.existed = true;
        Ok(state)
    }

    /// The state file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// This run's time (Unix seconds).
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// Whether the state file existed when it was opened.
    pub(crate) fn existed(&self) -> bool {
        self.existed
    }

    /// What the state knows of `uid`.
    pub(crate) fn entry(&self, uid: &str) -> Option<&Entry> {
        self.index.get(uid).map(|&at| &self.records[at].1)
    }

    /// `uid`'s record, to change it (its lines are rendered again by the next save).
    fn entry_mut(&mut self, uid: &str) -> Option<&mut Entry> {
        let at = *self.index.get(uid)?;
        self.rendered.changed(at);
        Some(&mut self.records[at].1)
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.records.iter().map(|(_, entry)| entry)
    }

    /// Whether `uid` is recorded as stored. (`fetch` asks [`entry`](Self::entry); the
    /// delivery targets' recovery and the digests of `fetch::prepare` ask this.)
    pub(crate) fn is_stored(&self, uid: &str) -> bool {
        self.entry(uid).is_some_and(|e| e.kind == Kind::Stored)
    }

    /// The UIDs recorded as stored (to tell which ones a recovery added).
    pub(crate) fn stored_uids(&self) -> HashSet<String> {
        self.records
            .iter()
            .filter(|(_, e)| e.kind == Kind::Stored)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Whether a UID was noted as seen, marked seen, given a new first-seen time or forgotten
    /// since the file was read (the file is then out of date).
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn insert(&mut self, uid: &str, entry: Entry) {
        self.dirty = true;
        match self.entry_mut(uid) {
            Some(old) => *old = entry,
            None => {
                self.index.insert(uid.to_owned(), self.records.len());
                self.records.push((uid.to_owned(), entry));
            }
        }
    }

    /// Records `uid` as stored. Its first-seen time is kept if it was seen before.
    pub(crate) fn add_stored(&mut self, uid: &str) {
        self.add_stored_sized(uid, None);
    }

    /// Records `uid` as stored, with the size the server listed for it (`keep` deletes it
    /// only while the server lists that size under the UID).
    pub(crate) fn add_stored_sized(&mut self, uid: &str, size: Option<u64>) {
        let now = self.now;
        match self.entry_mut(uid) {
            Some(entry) => {
                entry.kind = Kind::Stored;
                if size.is_some() {
                    entry.size = size;
                }
            }
            None => self.insert(
                uid,
                Entry {
                    kind: Kind::Stored,
                    first_seen: now,
                    size,
                    deleting: false,
                },
            ),
        }
    }

    /// Records that the server listed `uid` with `size` (first seen now unless known). The
    /// size is kept for the message's record once it is stored (`keep` deletes a message only
    /// while the server lists that size under its UID); a stored UID without a recorded size
    /// (migrated from v1 or v2) gets this one.
    pub(crate) fn note_seen(&mut self, uid: &str, size: u64) {
        let now = self.now;
        match self.entry_mut(uid) {
            Some(entry) => match entry.kind {
                // (Not written for a seen UID: only a stored one's size is on record.)
                Kind::Seen => entry.size = Some(size),
                Kind::Stored if entry.size.is_none() && !entry.deleting => {
                    entry.size = Some(size);
                    self.dirty = true;
                }
                Kind::Stored | Kind::MarkedSeen => {}
            },
            None => self.insert(
                uid,
                Entry {
                    kind: Kind::Seen,
                    first_seen: now,
                    size: Some(size),
                    deleting: false,
                },
            ),
        }
    }

    /// Starts `uid`'s record again, first seen now with the `size` listed now: a message
    /// listed under a UID marked deleting may be a new message reusing the UID.
    pub(crate) fn restart_first_seen(&mut self, uid: &str, size: u64) {
        let now = self.now;
        if let Some(entry) = self.entry_mut(uid) {
            entry.first_seen = now;
            entry.size = Some(size);
            self.dirty = true;
        }
    }

    /// Marks `uid` seen without downloading it (`only-new` on first use): never fetched,
    /// never deleted.
    pub(crate) fn mark_seen(&mut self, uid: &str) {
        let now = self.now;
        match self.entry_mut(uid) {
            Some(entry) if entry.kind == Kind::Stored => {}
            Some(entry) => {
                entry.kind = Kind::MarkedSeen;
                self.dirty = true;
            }
            None => self.insert(
                uid,
                Entry {
                    kind: Kind::MarkedSeen,
                    first_seen: now,
                    size: None,
                    deleting: false,
                },
            ),
        }
    }

    /// Whether the state knows any stored UID, or one reserved by an interrupted run: the
    /// server had UIDL for this account before.
    pub(crate) fn has_uids(&self) -> bool {
        !self.records.is_empty() || !self.pending.is_empty()
    }

    /// Whether `uid` is stored and its deletion not known to be committed: a message listed
    /// under it may be the one stored or a new one that reuses the UID.
    pub(crate) fn is_deleting(&self, uid: &str) -> bool {
        self.entry(uid).is_some_and(|e| e.deleting)
    }

    /// Whether any UID is marked [`is_deleting`](Self::is_deleting).
    pub(crate) fn any_deleting(&self) -> bool {
        self.entries().any(|e| e.deleting)
    }

    /// Marks a stored UID as about to be deleted (before its DELE is sent; written with the
    /// next [`save`](Self::save)).
    pub(crate) fn mark_deleting(&mut self, uid: &str) {
        if let Some(entry) = self.entry_mut(uid) {
            if entry.kind == Kind::Stored {
                entry.deleting = true;
            }
        }
    }

    /// Clears the deletion mark of `uid` (the message is known to exist on the server).
    pub(crate) fn clear_deleting(&mut self, uid: &str) {
        if let Some(entry) = self.entry_mut(uid) {
            entry.deleting = false;
        }
    }

    /// Forgets `uids` entirely: their deletion was committed (QUIT answered `+OK`), so a
    /// message listed under one of them later is a new message.
    pub(crate) fn forget(&mut self, uids: &[String]) {
        let gone: HashSet<&str> = uids.iter().map(String::as_str).collect();
        self.records.retain(|(uid, _)| !gone.contains(uid.as_str()));
        self.index = index_of(&self.records);
        self.rendered = Rendered::default();
    }

    /// Forgets the UIDs the server no longer lists (deleted there); returns how many of them
    /// were stored.
    pub(crate) fn retain_stored(&mut self, listed: &HashSet<&str>) -> usize {
        let stored_before = self.stored_count();
        let before = self.records.len();
        self.records
            .retain(|(uid, _)| listed.contains(uid.as_str()));
        if self.records.len() != before {
            self.dirty = true;
            self.index = index_of(&self.records);
            self.rendered = Rendered::default();
        }
        stored_before - self.stored_count()
    }

    fn stored_count(&self) -> usize {
        self.entries().filter(|e| e.kind == Kind::Stored).count()
    }

    /// Takes the reserved names of the batch that was in flight when the last run ended.
    pub(crate) fn take_pending(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.pending)
    }

    /// Reserves names for the next batch (written with the next [`save`](Self::save)).
    pub(crate) fn set_pending(&mut self, pending: Vec<(String, String)>) {
        self.pending = pending;
    }

    /// The file's text as [`save`](Self::save) writes it (the same as
    /// [`format::write`] of the records, rendering only the records changed since the last
    /// time).
    pub(crate) fn text(&mut self) -> String {
        let records = self.rendered.render(&self.records);
        let mut text = String::with_capacity(
            format::HEADER.len() + 1 + records.len() + self.pending.len() * 64,
        );
        text.push_str(format::HEADER);
        text.push('\n');
        text.push_str(records);
        format::write_pending(&mut text, &self.pending);
        text
    }

    /// Writes the state atomically: `FILE.tmp`, fsync, rename over `FILE`, fsync the
    /// directory. Refused on a read-only state.
    pub(crate) fn save(&mut self) -> io::Result<()> {
        if self._lock.is_none() {
            return Err(io::Error::other("the state was opened read-only"));
        }
        let text = self.text();
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
        fs::write(&legacy, format!("{}\nS u1\n", format::HEADER_V1)).expect("write");
        {
            let state = State::open_migrating(&path, Some(&legacy)).expect("open");
            assert!(state.is_stored("u1"));
            assert!(!legacy.exists() && path.exists());
        }
        // An old file next to a new one is left alone (the new one wins).
        fs::write(&legacy, format!("{}\nS old\n", format::HEADER_V1)).expect("write");
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

    use proptest::prelude::*;

    /// One change to a state, as `fetch` makes them.
    #[derive(Debug, Clone)]
    enum Op {
        Seen(u8, u64),
        Stored(u8, Option<u64>),
        MarkSeen(u8),
        Restart(u8, u64),
        Deleting(u8),
        NotDeleting(u8),
        Forget(Vec<u8>),
        Retain(Vec<u8>),
        Pending(Vec<u8>),
        Save,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let uid = 0u8..40;
        prop_oneof![
            4 => (uid.clone(), any::<u64>()).prop_map(|(u, s)| Op::Seen(u, s)),
            4 => (uid.clone(), proptest::option::of(any::<u64>())).prop_map(|(u, s)| Op::Stored(u, s)),
            1 => uid.clone().prop_map(Op::MarkSeen),
            1 => (uid.clone(), any::<u64>()).prop_map(|(u, s)| Op::Restart(u, s)),
            2 => uid.clone().prop_map(Op::Deleting),
            1 => uid.clone().prop_map(Op::NotDeleting),
            1 => proptest::collection::vec(uid.clone(), 0..4).prop_map(Op::Forget),
            1 => proptest::collection::vec(uid.clone(), 0..40).prop_map(Op::Retain),
            1 => proptest::collection::vec(uid, 0..3).prop_map(Op::Pending),
            3 => Just(Op::Save),
        ]
    }

    proptest! {
        /// Whatever the changes, the text a save writes (rendering only changed records) is
        /// the reference writer's text of the records, and reads back as them.
        #[test]
        fn the_rendered_text_is_the_reference_text(ops in proptest::collection::vec(arb_op(), 0..120)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut state = State::read(&dir.path().join("state"), None, 1_000).expect("empty");
            let name = |u: &u8| format!("uid-{u}");
            for op in ops {
                match op {
                    Op::Seen(u, size) => state.note_seen(&name(&u), size),
                    Op::Stored(u, size) => state.add_stored_sized(&name(&u), size),
                    Op::MarkSeen(u) => state.mark_seen(&name(&u)),
                    Op::Restart(u, size) => state.restart_first_seen(&name(&u), size),
                    Op::Deleting(u) => state.mark_deleting(&name(&u)),
                    Op::NotDeleting(u) => state.clear_deleting(&name(&u)),
                    Op::Forget(uids) => state.forget(&uids.iter().map(name).collect::<Vec<_>>()),
                    Op::Retain(uids) => {
                        let names: Vec<String> = uids.iter().map(name).collect();
                        state.retain_stored(&names.iter().map(String::as_str).collect());
                    }
                    Op::Pending(uids) => state.set_pending(
                        uids.iter().map(|u| (format!("{u}.M1.host"), name(u))).collect(),
                    ),
                    Op::Save => {
                        let text = state.text();
                        prop_assert_eq!(&text, &format::write(&state.records, &state.pending));
                        let read = format::parse(text.as_bytes(), usize::MAX, 2_000).expect("reads");
                        // (A seen UID's listed size is not written: what reads back writes
                        // the same text.)
                        prop_assert_eq!(format::write(&read.records, &read.pending), text);
                    }
                }
            }
            let text = state.text();
            prop_assert_eq!(text, format::write(&state.records, &state.pending));
        }
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        fs::write(&path, "something else\n").expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{}\nS a\nX b\n", format::HEADER_V2)).expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{}\nP ../x uid\n", format::HEADER_V2)).expect("write");
        assert!(State::open(&path).is_err());
        fs::write(&path, format!("{}\nS a", format::HEADER_V2)).expect("write");
        assert!(State::open(&path).is_err());
    }
}
