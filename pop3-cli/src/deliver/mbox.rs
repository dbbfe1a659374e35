//! An mbox file in the mboxrd format, appended to under fcntl and dot-lock locks.
//!
//! Each message is written as `From SENDER DATE` (the envelope sender from Return-Path, else
//! `MAILER-DAEMON`), its lines with every `From `, `>From `, `>>From `... line given one more
//! `>` (mboxrd, so that readers can undo it exactly), a final LF if it had none, and a blank
//! line.
//!
//! **Exactly once, across a kill at any point.** Per batch, under both locks:
//! 1. the append is computed (a first pass over the staged messages: its length and an
//!    FNV-1a 64 hash) and a journal is written next to the state file (`STATE.mbox`: the
//!    offset the append starts at, its length, its hash and the batch's UIDs), durably;
//! 2. the append is written and the mbox synced;
//! 3. the UIDs are recorded in the state (one atomic write), then the journal is removed.
//!
//! [`Mbox::recover`] (under the state lock, before connecting) resolves a journal left by a
//! kill: if the mbox holds exactly the journal's bytes at its offset, the UIDs are recorded
//! (delivered, not yet recorded); if the mbox ends at the offset, nothing was appended; if it
//! ends inside the append, the partial append is cut off (truncated to the offset). Anything
//! else means someone rewrote the mbox since: the messages are fetched again (a possible
//! duplicate, never a loss) and a warning says so.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::{Ledger, Outcome, Staged, Target, envelope_sender, unnamed_stage};
use crate::error::CliError;
use crate::maildir::sync_dir;
use crate::state::State;

/// A dot-lock older than this is stale (its holder died): removed, as procmail and mutt do.
const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// The journal's first line.
const JOURNAL_HEADER: &str = "pop3-cli mbox journal v1";

/// An mbox target.
#[derive(Debug)]
pub(crate) struct Mbox {
    path: PathBuf,
    journal: PathBuf,
    spool: PathBuf,
    lock_timeout: Duration,
}

/// The journal of one append.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Journal {
    offset: u64,
    length: u64,
    hash: u64,
    uids: Vec<String>,
}

impl Journal {
    fn text(&self) -> String {
        let mut text = format!(
            "{JOURNAL_HEADER}\n{} {} {:016x}\n",
            self.offset, self.length, self.hash
        );
        for uid in &self.uids {
            text.push_str(uid);
            text.push('\n');
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        if !text.ends_with('\n') {
            return None;
        }
        let mut lines = text.lines();
        if lines.next()? != JOURNAL_HEADER {
            return None;
        }
        let mut numbers = lines.next()?.split(' ');
        let offset = numbers.next()?.parse().ok()?;
        let length = numbers.next()?.parse().ok()?;
        let hash = u64::from_str_radix(numbers.next()?, 16).ok()?;
        if numbers.next().is_some() {
            return None;
        }
        let uids = lines.map(str::to_owned).collect();
        Some(Self {
            offset,
            length,
            hash,
            uids,
        })
    }
}

/// FNV-1a, 64 bits: enough to recognise our own append (not a defence against an attacker,
/// who would need write access to the mbox anyway).
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Where the bytes of an append go: counted and hashed, and written when `out` is set.
struct Sink<'a> {
    out: Option<&'a mut dyn Write>,
    length: u64,
    hash: Fnv,
}

impl Sink<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.length += bytes.len() as u64;
        self.hash.update(bytes);
        match self.out.as_mut() {
            Some(out) => out.write_all(bytes),
            None => Ok(()),
        }
    }
}

/// The asctime-style date of a From_ line, in UTC: `Mon Dec  7 01:31:36 2026`.
fn from_line_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday} {month_name} {day:>2} {h:02}:{m:02}:{s:02} {year}")
}

/// The message is read in segments of at most this many bytes (a line longer than this is
/// written in pieces; only its start decides the quoting).
const SEGMENT: usize = 64 * 1024;

/// Writes one message in the mboxrd form: From_ line, quoted lines, final LF, blank line.
fn write_message(staged: &Staged, date: &str, sink: &mut Sink<'_>) -> io::Result<()> {
    let sender = match envelope_sender(staged)? {
        Some(s) if !s.is_empty() => s,
        _ => "MAILER-DAEMON".to_owned(),
    };
    sink.put(format!("From {sender} {date}\n").as_bytes())?;
    let mut reader = staged.reader()?;
    let mut segment = Vec::with_capacity(SEGMENT);
    // Whether the current line so far is only `>`s (true at a line start).
    let mut in_prefix = true;
    let mut last = b'\n';
    loop {
        segment.clear();
        let n = (&mut reader)
            .take(SEGMENT as u64)
            .read_until(b'\n', &mut segment)?;
        if n == 0 {
            break;
        }
        if in_prefix {
            let k = segment.iter().take_while(|&&b| b == b'>').count();
            // A segment cut inside "From " (a very long run of `>`): read the rest of it.
            while k < segment.len()
                && segment.len() - k < 5
                && !segment.ends_with(b"\n")
                && b"From ".starts_with(&segment[k..])
            {
                let wanted = (5 - (segment.len() - k)) as u64;
                if (&mut reader).take(wanted).read_until(b'\n', &mut segment)? == 0 {
                    break;
                }
            }
            // One more `>` anywhere in the leading run is the same as one at the line start.
            if segment[k..].starts_with(b"From ") {
                sink.put(b">")?;
            }
            in_prefix = k == segment.len();
        }
        sink.put(&segment)?;
        last = segment[segment.len() - 1];
        if last == b'\n' {
            in_prefix = true;
        }
    }
    if last != b'\n' {
        sink.put(b"\n")?;
    }
    sink.put(b"\n")
}

/// The mbox's fcntl lock and dot-lock, released on drop.
#[derive(Debug)]
struct Locked {
    file: File,
    dotlock: Option<PathBuf>,
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = rustix::fs::fcntl_lock(&self.file, rustix::fs::FlockOperation::NonBlockingUnlock);
        if let Some(dotlock) = &self.dotlock {
            let _ = fs::remove_file(dotlock);
        }
    }
}

/// Whether a dot-lock was left by a process that is gone: it names a PID (as ours do) that
/// no longer exists, or it is older than [`STALE_DOTLOCK`].
fn dotlock_is_stale(path: &Path) -> bool {
    let pid = fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // (EPERM: it exists, under another user.)
        if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) {
            return true;
        }
    }
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_DOTLOCK)
}

impl Mbox {
    /// An mbox at `path` (created on the first delivery); the journal lives next to `state`.
    pub(crate) fn new(path: &Path, state: &Path, lock_timeout: Duration) -> Self {
        let mut journal = state.as_os_str().to_owned();
        journal.push(".mbox");
        Self {
            path: path.to_owned(),
            journal: PathBuf::from(journal),
            spool: state
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned(),
            lock_timeout,
        }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Takes the dot-lock (`FILE.lock`, created exclusively) and the fcntl lock, waiting up to
    /// the lock timeout for each; a dot-lock older than [`STALE_DOTLOCK`] is removed.
    fn lock(&self) -> Result<Locked, CliError> {
        let deadline = Instant::now() + self.lock_timeout;
        let local = |e: &io::Error| CliError::local(self.shown(), e);
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| local(&e))?;
        }
        let mut dotlock_path = self.path.as_os_str().to_owned();
        dotlock_path.push(".lock");
        let dotlock_path = PathBuf::from(dotlock_path);
        let mut waited = false;
        // The dot-lock is made whole (our PID in it) under a private name, then linked to
        // FILE.lock, which fails if it exists (the NFS-safe way procmail and liblockfile use).
        let mut private = dotlock_path.as_os_str().to_owned();
        private.push(format!(".{}.tmp", std::process::id()));
        let private = PathBuf::from(private);
        let dotlock = loop {
            let made = fs::write(&private, format!("{}\n", std::process::id()))
                .and_then(|()| fs::hard_link(&private, &dotlock_path));
            let _ = fs::remove_file(&private);
            match made {
                Ok(()) => break Some(dotlock_path.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if dotlock_is_stale(&dotlock_path) {
                        tracing::warn!(target: "pop3_cli", "removing the stale dot-lock {}", dotlock_path.display());
                        let _ = fs::remove_file(&dotlock_path);
                        continue;
                    }
                }
                // A directory we may not create files in (a system spool): fcntl only.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => break None,
                Err(e) => return Err(local(&e)),
            }
            if !waited {
                tracing::info!(target: "pop3_cli", "waiting for the lock {}", dotlock_path.display());
                waited = true;
            }
            if Instant::now() >= deadline {
                return Err(CliError::failure(format!(
                    "{}: locked by another program (the dot-lock {} stayed for {:?}); nothing of this batch was delivered",
                    self.shown(),
                    dotlock_path.display(),
                    self.lock_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path);
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                if let Some(d) = &dotlock {
                    let _ = fs::remove_file(d);
                }
                return Err(local(&e));
            }
        };
        // From here the guard removes the dot-lock whatever happens.
        let locked = Locked { file, dotlock };
        loop {
            match rustix::fs::fcntl_lock(
                &locked.file,
                rustix::fs::FlockOperation::NonBlockingLockExclusive,
            ) {
                Ok(()) => return Ok(locked),
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {}
                Err(e) => return Err(local(&io::Error::from(e))),
            }
            if Instant::now() >= deadline {
                return Err(CliError::failure(format!(
                    "{}: locked by another program (fcntl) for {:?}; nothing of this batch was delivered",
                    self.shown(),
                    self.lock_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_journal(&self, journal: &Journal) -> io::Result<()> {
        let mut tmp = self.journal.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp)?;
        file.write_all(journal.text().as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &self.journal)?;
        sync_dir(&self.spool)
    }

    fn remove_journal(&self) -> io::Result<()> {
        match fs::remove_file(&self.journal) {
            Ok(()) => sync_dir(&self.spool),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The separator needed before an append at the end of `file` (of `len` bytes): nothing
    /// for an empty mbox or one ending in a blank line, else enough LFs to end the last
    /// message with a blank line.
    fn separator(file: &mut File, len: u64) -> io::Result<&'static [u8]> {
        if len == 0 {
            return Ok(b"");
        }
        let back = len.min(2);
        file.seek(SeekFrom::Start(len - back))?;
        let mut tail = [0u8; 2];
        file.read_exact(&mut tail[..back as usize])?;
        let tail = &tail[..back as usize];
        Ok(if tail.ends_with(b"\n\n") || tail == b"\n" {
            b""
        } else if tail.ends_with(b"\n") {
            b"\n"
        } else {
            b"\n\n"
        })
    }

    /// The journal left by an interrupted run, if any (a damaged one is an error: written
    /// whole, it was never ours).
    fn read_journal(&self) -> Result<Option<Journal>, CliError> {
        let shown_journal = self.journal.display().to_string();
        let text = match fs::read_to_string(&self.journal) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CliError::local(&shown_journal, &e)),
        };
        match Journal::parse(&text) {
            Some(journal) => Ok(Some(journal)),
            None => Err(CliError::failure(format!(
                "{shown_journal}: not a pop3 mbox journal; remove it if it is not needed"
            ))),
        }
    }

    /// For `--dry-run`: the UIDs of a journal left by an interrupted run whose append the
    /// mbox holds intact, which the next real run records as stored. Read-only: no lock is
    /// taken (a writer busy with the mbox may make the answer stale) and nothing changes.
    pub(crate) fn journaled_intact(&self) -> Result<Vec<String>, CliError> {
        let Some(journal) = self.read_journal()? else {
            return Ok(Vec::new());
        };
        let local = |e: &io::Error| CliError::local(self.shown(), e);
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(local(&e)),
        };
        let len = file.metadata().map_err(|e| local(&e))?.len();
        let intact = len >= journal.offset.saturating_add(journal.length)
            && Self::matches(&mut file, &journal).map_err(|e| local(&e))?;
        Ok(if intact { journal.uids } else { Vec::new() })
    }

    /// Whether `file` holds exactly the journal's bytes at its offset.
    fn matches(file: &mut File, journal: &Journal) -> io::Result<bool> {
        file.seek(SeekFrom::Start(journal.offset))?;
        let mut hash = Fnv::new();
        let mut left = journal.length;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(false);
            }
            hash.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(hash.0 == journal.hash)
    }
}

impl Target for Mbox {
    fn describe(&self) -> String {
        self.shown()
    }

    fn recover(&mut self, state: &mut State) -> Result<usize, CliError> {
        let shown_journal = self.journal.display().to_string();
        let Some(journal) = self.read_journal()? else {
            return Ok(0);
        };
        if journal.uids.iter().all(|uid| state.is_stored(uid)) {
            self.remove_journal()
                .map_err(|e| CliError::local(&shown_journal, &e))?;
            return Ok(0);
        }
        let mut locked = self.lock()?;
        let len = locked
            .file
            .metadata()
            .map_err(|e| CliError::local(self.shown(), &e))?
            .len();
        let end = journal.offset.saturating_add(journal.length);
        let mut recovered = 0;
        if len >= end
            && Self::matches(&mut locked.file, &journal)
                .map_err(|e| CliError::local(self.shown(), &e))?
        {
            for uid in &journal.uids {
                state.add_stored(uid);
            }
            state
                .save()
                .map_err(|e| CliError::local(state.path().display(), &e))?;
            recovered = journal.uids.len();
            tracing::info!(target: "pop3_cli", "recovered {recovered} messages appended to {} by an interrupted run", self.shown());
        } else if len == journal.offset {
            tracing::info!(target: "pop3_cli", "an interrupted run appended nothing to {}", self.shown());
        } else if len > journal.offset && len < end {
            locked
                .file
                .set_len(journal.offset)
                .and_then(|()| locked.file.sync_all())
                .map_err(|e| CliError::local(self.shown(), &e))?;
            tracing::warn!(target: "pop3_cli", "cut off the partial append of an interrupted run at offset {} of {}", journal.offset, self.shown());
        } else {
            tracing::warn!(target: "pop3_cli",
                "{} changed since an interrupted run appended to it (now {len} bytes, the append was {}..{end}); its {} messages are fetched again (possibly a second copy)",
                self.shown(), journal.offset, journal.uids.len());
        }
        drop(locked);
        self.remove_journal()
            .map_err(|e| CliError::local(&shown_journal, &e))?;
        Ok(recovered)
    }

    fn stage(&self, _name: &str) -> io::Result<File> {
        unnamed_stage(&self.spool)
    }

    fn discard(&self, _name: &str) {}

    fn commit(&self, batch: &[Staged], ledger: &mut dyn Ledger) -> Result<Vec<Outcome>, CliError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let shown = self.shown();
        let local = |e: &io::Error| CliError::local(&shown, e);
        let date = from_line_date(SystemTime::now());
        let mut locked = self.lock()?;
        let offset = locked.file.metadata().map_err(|e| local(&e))?.len();
        let separator = Self::separator(&mut locked.file, offset).map_err(|e| local(&e))?;
        // Pass 1: the append's length and hash, for the journal.
        let mut sink = Sink {
            out: None,
            length: 0,
            hash: Fnv::new(),
        };
        sink.put(separator).map_err(|e| local(&e))?;
        for staged in batch {
            write_message(staged, &date, &mut sink).map_err(|e| local(&e))?;
        }
        let all: Vec<&Staged> = batch.iter().collect();
        ledger.intend(&all)?;
        let journal = Journal {
            offset,
            length: sink.length,
            hash: sink.hash.0,
            uids: batch.iter().filter_map(|s| s.uid.clone()).collect(),
        };
        self.write_journal(&journal)
            .map_err(|e| CliError::local(self.journal.display(), &e))?;
        crate::test_hook::pause("journaled");
        // Pass 2: the append itself.
        let appended = (|| -> io::Result<()> {
            locked.file.seek(SeekFrom::Start(offset))?;
            let mut out = BufWriter::with_capacity(256 * 1024, &locked.file);
            let mut sink = Sink {
                out: Some(&mut out),
                length: 0,
                hash: Fnv::new(),
            };
            sink.put(separator)?;
            for (i, staged) in batch.iter().enumerate() {
                write_message(staged, &date, &mut sink)?;
                if i == 0 {
                    sink.out.as_mut().map_or(Ok(()), |o| o.flush())?;
                    crate::test_hook::pause("appending");
                }
            }
            if sink.length != journal.length || sink.hash.0 != journal.hash {
                return Err(io::Error::other(
                    "a staged message changed during the append",
                ));
            }
            out.flush()?;
            drop(out);
            locked.file.sync_all()
        })();
        if let Err(e) = appended {
            // A full disk, a file size limit: cut the partial append off, then give up.
            let cut = locked
                .file
                .set_len(offset)
                .and_then(|()| locked.file.sync_all());
            if cut.is_ok() {
                let _ = self.remove_journal();
            }
            return Err(local(&e).context("appending to the mbox (cut back to where it was)"));
        }
        crate::test_hook::pause("appended");
        ledger.record(&all)?;
        drop(locked);
        self.remove_journal()
            .map_err(|e| CliError::local(self.journal.display(), &e))?;
        Ok(vec![Outcome::Delivered; batch.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn staged_from(dir: &Path, msg: u32, content: &[u8]) -> Staged {
        let mut file = unnamed_stage(dir).expect("stage");
        file.write_all(content).expect("write");
        Staged {
            msg,
            uid: Some(format!("uid-{msg}")),
            name: format!("n{msg}"),
            file: file.into(),
            octets: content.len() as u64,
            verify: false,
        }
    }

    fn quoted(content: &[u8], chunk: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = staged_from(dir.path(), 1, content);
        let mut out = Vec::new();
        let mut sink = Sink {
            out: Some(&mut out),
            length: 0,
            hash: Fnv::new(),
        };
        let _ = chunk;
        write_message(&staged, "DATE", &mut sink).expect("write");
        out
    }

    #[test]
    fn mboxrd_quoting() {
        let out = quoted(b"Subject: x\n\nFrom here\n>From there\n>>From a\nFrom\nFro\n>Fr\nx From y\n>>From\n>>>From z", 0);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "From MAILER-DAEMON DATE\nSubject: x\n\n>From here\n>>From there\n>>>From a\nFrom\nFro\n>Fr\nx From y\n>>From\n>>>>From z\n\n"
        );
        let out = quoted(b"Return-Path: <s@x.example>\n\nbody", 0);
        assert_eq!(
            out,
            b"From s@x.example DATE\nReturn-Path: <s@x.example>\n\nbody\n\n"
        );
    }

    #[test]
    fn dates_are_asctime() {
        let at = |s: u64| from_line_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(at(1_796_607_096), "Mon Dec  7 01:31:36 2026");
        assert_eq!(at(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn journal_round_trip() {
        let j = Journal {
            offset: 12,
            length: 345,
            hash: 0xdead_beef,
            uids: vec!["a".into(), "b c".into()],
        };
        assert_eq!(Journal::parse(&j.text()), Some(j.clone()));
        assert_eq!(Journal::parse(j.text().trim_end()), None);
    }

    struct Recorder(Vec<String>);
    impl Ledger for Recorder {
        fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError> {
            self.0
                .extend(delivered.iter().filter_map(|s| s.uid.clone()));
            Ok(())
        }
    }

    /// Python's `mailbox` module (mboxrd is what it writes and reads as `mailbox.mbox` with
    /// From-unquoting done by us here) reads back exactly the messages.
    #[test]
    fn python_mailbox_reads_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mbox");
        // An existing mbox without a final blank line.
        fs::write(
            &path,
            "From a@b Thu Jan  1 00:00:00 1970\nSubject: old\n\nold body\n",
        )
        .expect("write");
        let mbox = Mbox::new(&path, &dir.path().join("state"), Duration::from_secs(5));
        let bodies: Vec<&[u8]> = vec![
            b"Return-Path: <x@y.example>\nSubject: one\n\nFrom the start\n>From quoted\n>>From twice\n",
            b"Subject: two\n\nno final newline",
            b"Subject: three\n\n\nFrom \n\n",
        ];
        let batch: Vec<Staged> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| staged_from(dir.path(), i as u32 + 1, b))
            .collect();
        let mut recorder = Recorder(Vec::new());
        let outcomes = mbox.commit(&batch, &mut recorder).expect("commit");
        assert_eq!(outcomes, vec![Outcome::Delivered; 3]);
        assert_eq!(recorder.0, ["uid-1", "uid-2", "uid-3"]);
        assert!(!mbox.journal.exists() && !dir.path().join("mbox.lock").exists());
        let script = r#"
import mailbox, sys, json
out = []
for m in mailbox.mbox(sys.argv[1]):
    b = m.as_bytes()
    # mboxrd: undo one level of quoting
    lines = [l[1:] if l.lstrip(b'>').startswith(b'From ') and l.startswith(b'>') else l for l in b.split(b'\n')]
    out.append([m.get_from(), b'\n'.join(lines).decode()])
print(json.dumps(out))
"#;
        let output = Command::new("python3")
            .args(["-c", script, path.to_str().expect("utf-8")])
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read: Vec<(String, String)> = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(read.len(), 4, "{read:?}");
        assert!(read[1].0.starts_with("x@y.example "), "{read:?}");
        assert!(read[2].0.starts_with("MAILER-DAEMON "), "{read:?}");
        // Python keeps the blank separator line as part of the message: compare without it.
        let strip = |s: &str| s.trim_end_matches('\n').to_owned();
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(
                strip(&read[i + 1].1),
                strip(std::str::from_utf8(body).expect("utf-8")),
                "message {i}"
            );
        }
    }
}
