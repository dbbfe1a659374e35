//! The fetch state file: the UIDs already stored, and the names reserved for the batch in
//! flight, written atomically (temporary file, fsync, rename, directory fsync) under a lock.
//!
//! ```text
//! pop3-cli fetch state v1
//! S <uid>            a message stored in the Maildir
//! P <name> <uid>     a message of the batch in flight, to be delivered as new/<name>
//! ```
//!
//! The `P` lines make a crash harmless: after a kill between the rename into `new/` and the
//! next state write, the next run finds `new/<name>` (or `cur/<name>:2,...`) and records the
//! UID instead of storing the message again; a name that was not delivered is discarded
//! (with its partial file in `tmp/`) and the message fetched again.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::maildir::sync_dir;

const HEADER: &str = "pop3-cli fetch state v1";

/// The state of one (user, server) pair.
#[derive(Debug)]
pub(crate) struct State {
    path: PathBuf,
    stored: Vec<String>,
    stored_set: HashSet<String>,
    /// (Maildir name, UID) of the batch in flight.
    pending: Vec<(String, String)>,
    /// Held for the life of the state: one fetch per state file at a time.
    _lock: File,
}

/// The default state file inside the Maildir: `DIR/.pop3-state.USER@HOST.HASH`, where USER
/// and HOST keep only `[A-Za-z0-9._-]` (anything else becomes `_`) and HASH (FNV-1a of the
/// exact user and host) keeps names apart that the sanitizing would merge. A file, not a
/// directory: dot-directories in a Maildir are Maildir++ folders to Dovecot and Courier.
pub(crate) fn default_path(maildir: &Path, user: &str, host: &str) -> PathBuf {
    let sanitize = |s: &str| -> String {
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
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user
        .bytes()
        .chain([0])
        .chain(host.to_ascii_lowercase().bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    maildir.join(format!(
        ".pop3-state.{}@{}.{:08x}",
        sanitize(user),
        sanitize(&host.to_ascii_lowercase()),
        hash as u32
    ))
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
    pub(crate) fn open(path: &Path) -> Result<Self, CliError> {
        let shown = path.display().to_string();
        fs::create_dir_all(parent_dir(path)).map_err(|e| CliError::local(&shown, &e))?;
        let lock_path = with_suffix(path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CliError::local(lock_path.display(), &e))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(CliError::failure(format!(
                    "{shown} is locked: another pop3 fetch is running on it"
                )));
            }
            Err(e) => return Err(CliError::local(lock_path.display(), &e.into())),
        }
        let mut state = Self {
            path: path.to_owned(),
            stored: Vec::new(),
            stored_set: HashSet::new(),
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
            Some((_, HEADER)) => {}
            _ => return Err(corrupt(1, "not a pop3-cli state file (v1)")),
        }
        for (index, line) in lines {
            let number = index + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(' ') {
                Some(("S", uid)) if !uid.is_empty() => state.add_stored(uid),
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

    /// Forgets the stored UIDs the server no longer lists (deleted there); returns how many.
    pub(crate) fn retain_stored(&mut self, listed: &HashSet<&str>) -> usize {
        let before = self.stored.len();
        self.stored.retain(|uid| listed.contains(uid.as_str()));
        self.stored_set.retain(|uid| listed.contains(uid.as_str()));
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
        let a = default_path(root, "alice", "pop.example.com");
        assert_eq!(a.parent(), Some(root));
        let name = a.file_name().and_then(|n| n.to_str()).expect("utf-8");
        assert!(name.starts_with(".pop3-state.alice@pop.example.com."));
        let b = default_path(root, "a/../b", "x");
        let c = default_path(root, "a_.._b", "x");
        assert_eq!(b.parent(), Some(root));
        assert_ne!(b, c);
        assert_eq!(
            default_path(root, "alice", "POP.example.com"),
            default_path(root, "alice", "pop.example.com")
        );
    }

    #[test]
    fn round_trip_and_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        {
            let mut state = State::open(&path).expect("open");
            state.add_stored("uid-1");
            state.add_stored("weird!uid");
            state.set_pending(vec![("1.M2P3Q4.host".to_owned(), "uid-2".to_owned())]);
            state.save().expect("save");
            assert!(State::open(&path).is_err(), "locked by the first");
        }
        let mut state = State::open(&path).expect("reopen");
        assert!(state.is_stored("uid-1") && state.is_stored("weird!uid"));
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
