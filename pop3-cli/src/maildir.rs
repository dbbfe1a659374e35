//! A Maildir for delivery: unique file names, tmp/ then new/, and the syncs that make a
//! delivery durable.
//!
//! File names follow the Maildir convention (`TIME.M<usec>P<pid>Q<n>.HOST`); nothing the
//! server sends ever becomes part of a path.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::deliver::{Ledger, Outcome, Staged, Target};
use crate::error::CliError;
use crate::state::State;

/// A Maildir opened for delivery.
#[derive(Debug)]
pub(crate) struct Maildir {
    root: PathBuf,
    tmp: PathBuf,
    new: PathBuf,
    cur: PathBuf,
    host: String,
    pid: u32,
    counter: u64,
}

/// Syncs a directory, so that the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates `path` (mode 0700) if missing; returns whether it was created.
fn ensure_dir(path: &Path) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The host name part of a Maildir file name: `/` and `:` are written `\057` and `\072` as
/// the convention says, anything else outside printable ASCII (and `\`) becomes `_`.
fn maildir_host() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let raw = raw.trim();
    let raw = if raw.is_empty() { "localhost" } else { raw };
    let mut host = String::new();
    for c in raw.chars() {
        match c {
            '/' => host.push_str("\\057"),
            ':' => host.push_str("\\072"),
            c if c.is_ascii_graphic() && c != '\\' => host.push(c),
            _ => host.push('_'),
        }
    }
    host
}

impl Maildir {
    /// Opens the Maildir at `root`, creating it and its `tmp`, `new` and `cur` if missing.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let created_root = ensure_dir(root)?;
        let mut created = false;
        let tmp = root.join("tmp");
        let new = root.join("new");
        let cur = root.join("cur");
        for dir in [&tmp, &new, &cur] {
            created |= ensure_dir(dir)?;
        }
        if created {
            sync_dir(root)?;
        }
        if created_root {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(Self {
            root: root.to_owned(),
            tmp,
            new,
            cur,
            host: maildir_host(),
            pid: std::process::id(),
            counter: 0,
        })
    }

    /// The Maildir's root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh unique file name: `SECONDS.M<microseconds>P<pid>Q<counter>.HOST`.
    pub(crate) fn unique_name(&mut self) -> String {
        self.counter += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            self.pid,
            self.counter,
            self.host
        )
    }

    /// Creates `tmp/NAME` (it must not exist).
    pub(crate) fn create_tmp(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.tmp.join(name))
    }

    /// The path of `tmp/NAME`.
    pub(crate) fn tmp_path(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// The messages now in `new/` and `cur/`, by size, for [`ContentIndex::take_identical`].
    pub(crate) fn content_index(&self) -> io::Result<ContentIndex> {
        let mut by_len: HashMap<u64, Vec<PathBuf>> = HashMap::new();
        for dir in [&self.new, &self.cur] {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if metadata.is_file() {
                    by_len.entry(metadata.len()).or_default().push(entry.path());
                }
            }
        }
        Ok(ContentIndex { by_len })
    }

    /// Removes `tmp/NAME` if it exists.
    pub(crate) fn remove_tmp(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.tmp.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves `tmp/NAME` to `new/NAME` (refusing to replace an existing file). Call only after
    /// the file's data is synced; call [`sync_new`](Self::sync_new) after the last one.
    pub(crate) fn deliver(&self, name: &str) -> io::Result<()> {
        let source = self.tmp.join(name);
        let target = self.new.join(name);
        let exists = || {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", target.display()),
            )
        };
        // One atomic step where the system has it (renameat2 RENAME_NOREPLACE, Linux 3.15;
        // tmpfs, ext4, xfs, btrfs), else a look before the rename.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            use rustix::io::Errno;
            match renameat_with(CWD, &source, CWD, &target, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) => return Err(exists()),
                // (A file system or kernel without the flag.)
                Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if fs::symlink_metadata(&target).is_ok() {
            return Err(exists());
        }
        fs::rename(source, target)
    }

    /// Syncs `new/` (the renames into it become durable).
    pub(crate) fn sync_new(&self) -> io::Result<()> {
        sync_dir(&self.new)
    }

    /// Which of `names` were delivered: present in `new/`, or in `cur/` under the same base
    /// name (a mail reader moves `new/NAME` to `cur/NAME:2,FLAGS`).
    pub(crate) fn delivered(&self, names: &[&str]) -> io::Result<HashSet<String>> {
        let mut found = HashSet::new();
        let mut missing = Vec::new();
        for &name in names {
            if fs::symlink_metadata(self.new.join(name)).is_ok() {
                found.insert(name.to_owned());
            } else {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let wanted: HashSet<&str> = missing.iter().copied().collect();
        for entry in fs::read_dir(&self.cur)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            // The base name ends at the info separator (':' by the convention; some systems
            // use ';' or '!' where ':' is not allowed in file names).
            let base = file_name.split([':', ';', '!']).next().unwrap_or(file_name);
            if wanted.contains(base) {
                found.insert(base.to_owned());
            }
        }
        Ok(found)
    }
}

/// The messages of a Maildir by size, to find a stored copy of a message by its content.
#[derive(Debug, Default)]
pub(crate) struct ContentIndex {
    by_len: HashMap<u64, Vec<PathBuf>>,
}

impl ContentIndex {
    /// Finds a message with exactly the content of `file` and takes it out of the index (each
    /// stored message vouches for one download only); `None` if there is none.
    pub(crate) fn take_identical(&mut self, file: &Path) -> io::Result<Option<PathBuf>> {
        let len = fs::metadata(file)?.len();
        let Some(candidates) = self.by_len.get_mut(&len) else {
            return Ok(None);
        };
        for index in 0..candidates.len() {
            // A file moved or removed since (a mail reader at work) is simply no match.
            if same_content(file, &candidates[index]).unwrap_or(false) {
                return Ok(Some(candidates.swap_remove(index)));
            }
        }
        Ok(None)
    }
}

/// Whether two files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    let (mut buf_a, mut buf_b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut a, &mut buf_a)?;
        let m = read_full(&mut b, &mut buf_b)?;
        if buf_a[..n] != buf_b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end of the file.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes a message with its CRLF line ends turned into LF (the Maildir convention; a lone
/// CR is kept), streaming: a CR at the end of one chunk waits for the next. The pieces
/// between CRs go straight to the inner writer (a `BufWriter`: one copy), found with memchr.
#[derive(Debug)]
pub(crate) struct LfWriter<W> {
    inner: W,
    pending_cr: bool,
    written: u64,
}

impl<W: Write> LfWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            pending_cr: false,
            written: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    /// Writes the next piece of the message.
    pub(crate) fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        let Some(&first) = chunk.first() else {
            return Ok(());
        };
        let mut rest = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if first != b'\n' {
                self.put(b"\r")?;
            }
        }
        while let Some(pos) = memchr::memchr(b'\r', rest) {
            self.put(&rest[..pos])?;
            match rest.get(pos + 1) {
                // CRLF: the CR goes, the LF starts the next piece.
                Some(b'\n') => {}
                Some(_) => self.put(b"\r")?,
                None => self.pending_cr = true,
            }
            rest = &rest[pos + 1..];
        }
        self.put(rest)
    }

    /// Writes a pending CR and returns the inner writer and the bytes written.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
            self.written += 1;
        }
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }
}

/// How many threads sync the files of a batch at once: concurrent fsyncs share journal
/// commits (ext4, XFS), so a batch costs a few disk flushes instead of one per file.
const SYNC_THREADS: usize = 16;

/// The Maildir as a delivery target: messages are staged as `tmp/NAME` under names the state
/// reserves, committed by fsync (concurrently), rename into `new/` and one sync of `new/`,
/// then recorded; [`recover`](Target::recover) records the reserved names found delivered.
#[derive(Debug)]
pub(crate) struct MaildirTarget {
    maildir: Maildir,
    /// The Maildir's messages by size, when the state marks UIDs deleting (taken before this
    /// run stores anything).
    index: std::sync::Mutex<Option<ContentIndex>>,
}

impl MaildirTarget {
    /// The target over an opened Maildir.
    pub(crate) fn new(maildir: Maildir) -> Self {
        Self {
            maildir,
            index: std::sync::Mutex::new(None),
        }
    }

    fn remove_all(&self, batch: &[Staged]) {
        for staged in batch {
            let _ = self.maildir.remove_tmp(&staged.name);
        }
    }
}

/// A job of the [`sync_pool`].
type SyncJob = Box<dyn FnOnce() + Send>;

/// [`SYNC_THREADS`] threads that sync staged files, started on first use and kept for the life
/// of the process (`None` if none could be started): a batch then costs no thread starts. (It
/// used to start its own threads: at 5,000 x 4 KiB on tmpfs, where a sync costs nothing,
/// those 1,250 thread starts and their address-space changes were half of `fetch`'s time.)
/// One pool serves every session of a `poll` process, so at most [`SYNC_THREADS`] syncs run
/// at once.
fn sync_pool() -> Option<&'static mpsc::Sender<SyncJob>> {
    static POOL: OnceLock<Option<mpsc::Sender<SyncJob>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SyncJob>();
        let queue = Arc::new(Mutex::new(queue));
        let started = (0..SYNC_THREADS)
            .filter(|_| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name("pop3-sync".to_owned())
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        loop {
                            // (The lock is held while waiting: one thread waits, the others
                            // queue behind it for the next job.)
                            let job = match queue.lock() {
                                Ok(queue) => queue.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .is_ok()
            })
            .count();
        (started > 0).then_some(jobs)
    })
    .as_ref()
}

/// fdatasync every staged file, [`SYNC_THREADS`] at a time on the [`sync_pool`] (here, one
/// by one, if it has no thread). The error names the file.
fn sync_all_files(batch: &[Staged]) -> Result<(), (String, io::Error)> {
    let sync = |staged: &Staged| {
        staged
            .file
            .sync_data()
            .map_err(|e| (staged.name.clone(), e))
    };
    let pool = sync_pool().filter(|_| batch.len() > 1);
    let Some(pool) = pool else {
        return batch.iter().try_for_each(sync);
    };
    let per_job = batch.len().div_ceil(SYNC_THREADS);
    let (done, results) = mpsc::channel::<Result<(), (usize, io::Error)>>();
    let mut expected = 0;
    for (chunk, first) in batch.chunks(per_job).zip((0..).step_by(per_job)) {
        let files: Vec<Arc<File>> = chunk.iter().map(|s| Arc::clone(&s.file)).collect();
        let done = done.clone();
        let job: SyncJob = Box::new(move || {
            let result = files
                .iter()
                .zip(first..)
                .try_for_each(|(file, at)| file.sync_data().map_err(|e| (at, e)));
            let _ = done.send(result);
        });
        expected += 1;
        if let Err(mpsc::SendError(job)) = pool.send(job) {
            // (The pool's threads are gone: here, then.)
            job();
        }
    }
    drop(done);
    // Every job's answer, before the files may be closed or renamed (the iteration ends once
    // every job is done with its sender).
    let mut answered = 0;
    let mut outcome = Ok(());
    for result in results.iter() {
        answered += 1;
        if let (Err((at, e)), Ok(())) = (result, &outcome) {
            let name = batch.get(at).map(|s| s.name.clone()).unwrap_or_default();
            outcome = Err((name, e));
        }
    }
    if answered < expected && outcome.is_ok() {
        // (A job ended without an answer: a sync thread stopped.)
        return Err((String::new(), io::Error::other("a sync thread stopped")));
    }
    outcome
}

impl Target for MaildirTarget {
    fn describe(&self) -> String {
        self.maildir.root().display().to_string()
    }

    fn reserves_names(&self) -> bool {
        true
    }

    fn reserve_name(&mut self) -> String {
        self.maildir.unique_name()
    }

    /// Resolves the names reserved by an interrupted run: delivered ones are recorded, the
    /// others' partial files in `tmp/` are removed (the state is written if anything
    /// changed). Then, if the state marks UIDs deleting, indexes the Maildir by size.
    fn recover(&mut self, state: &mut State) -> Result<usize, CliError> {
        let maildir = &self.maildir;
        let pending = state.take_pending();
        let mut recovered = 0;
        if !pending.is_empty() {
            let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
            let delivered = maildir
                .delivered(&names)
                .map_err(|e| CliError::local(maildir.root().display(), &e))?;
            for (name, uid) in &pending {
                if delivered.contains(name) {
                    state.add_stored(uid);
                    recovered += 1;
                } else {
                    maildir
                        .remove_tmp(name)
                        .map_err(|e| CliError::local(format!("tmp/{name}"), &e))?;
                }
            }
            state
                .save()
                .map_err(|e| CliError::local(state.path().display(), &e))?;
            tracing::info!(target: "pop3_cli", "recovered {recovered} of {} messages of an interrupted run", pending.len());
        }
        if state.any_deleting() {
            self.prepare_verify()?;
        }
        Ok(recovered)
    }

    fn prepare_verify(&mut self) -> Result<(), CliError> {
        let slot = self
            .index
            .get_mut()
            .map_err(|_| CliError::failure("the content index was poisoned"))?;
        if slot.is_none() {
            *slot = Some(
                self.maildir
                    .content_index()
                    .map_err(|e| CliError::local(self.maildir.root().display(), &e))?,
            );
        }
        Ok(())
    }

    fn stage(&self, name: &str) -> io::Result<File> {
        self.maildir.create_tmp(name)
    }

    fn discard(&self, name: &str) {
        let _ = self.maildir.remove_tmp(name);
    }

    /// fsync each file (concurrently), rename each into `new/` (or, for a message listed
    /// under a UID marked deleting, drop it when the Maildir holds one with exactly its
    /// content), fsync `new/` once, then one record. On failure the batch's unrenamed files
    /// are removed from `tmp/`; what is in `new/` already is reserved, and the next run
    /// records it.
    fn commit(&self, batch: &[Staged], ledger: &mut dyn Ledger) -> Result<Vec<Outcome>, CliError> {
        let root = self.maildir.root().display().to_string();
        if let Err((name, e)) = sync_all_files(batch) {
            self.remove_all(batch);
            return Err(CliError::local(format!("{root}/tmp/{name}"), &e));
        }
        crate::test_hook::pause("synced");
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut index = self
            .index
            .lock()
            .map_err(|_| CliError::failure("the content index was poisoned"))?;
        for (position, staged) in batch.iter().enumerate() {
            let identical = match index.as_mut().filter(|_| staged.verify) {
                Some(index) => index
                    .take_identical(&self.maildir.tmp_path(&staged.name))
                    .map_err(|e| CliError::local(format!("{root}/tmp/{}", staged.name), &e))
                    .inspect_err(|_| self.remove_all(&batch[position..]))?,
                None => None,
            };
            if let Some(existing) = identical {
                let _ = self.maildir.remove_tmp(&staged.name);
                tracing::debug!(target: "pop3_cli", "{} is already stored as {}", staged.label(), existing.display());
                outcomes.push(Outcome::AlreadyThere);
            } else {
                if let Err(e) = self.maildir.deliver(&staged.name) {
                    self.remove_all(&batch[position..]);
                    return Err(CliError::local(format!("{root}/new/{}", staged.name), &e));
                }
                tracing::debug!(target: "pop3_cli", "stored {} ({} octets) as new/{}", staged.label(), staged.octets, staged.name);
                outcomes.push(Outcome::Delivered);
            }
        }
        drop(index);
        self.maildir
            .sync_new()
            .map_err(|e| CliError::local(format!("{root}/new"), &e))?;
        crate::test_hook::pause("renamed");
        let all: Vec<&Staged> = batch.iter().collect();
        ledger.record(&all)?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(chunks: &[&[u8]]) -> Vec<u8> {
        let mut w = LfWriter::new(Vec::new());
        for c in chunks {
            w.write_chunk(c).expect("vec");
        }
        w.finish().expect("vec").0
    }

    #[test]
    fn crlf_becomes_lf_across_chunks() {
        assert_eq!(convert(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(convert(&[b"a\r", b"\nb\r", b"\n"]), b"a\nb\n");
        assert_eq!(convert(&[b"a\rb\r"]), b"a\rb\r");
        assert_eq!(convert(&[b"a\r", b"b"]), b"a\rb");
        assert_eq!(convert(&[b"\r", b"\r", b"\n"]), b"\r\n");
        assert_eq!(convert(&[b"", b"x\r\n", b""]), b"x\n");
    }

    #[test]
    fn unique_names_are_unique_and_safe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut md = Maildir::open(&dir.path().join("Mail")).expect("maildir");
        let a = md.unique_name();
        let b = md.unique_name();
        assert_ne!(a, b);
        assert!(!a.contains('/') && !a.contains(':'));
        assert!(dir.path().join("Mail/tmp").is_dir());
        assert!(dir.path().join("Mail/new").is_dir());
        assert!(dir.path().join("Mail/cur").is_dir());
    }

    #[test]
    fn identical_content_is_found_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        fs::write(dir.path().join("new/one"), b"same text\n").expect("write");
        fs::write(dir.path().join("cur/two:2,S"), b"same text\n").expect("write");
        fs::write(dir.path().join("cur/three"), b"same size!\n").expect("write");
        let mut index = md.content_index().expect("index");
        fs::write(dir.path().join("tmp/x"), b"same text\n").expect("write");
        fs::write(dir.path().join("tmp/y"), b"other size\n!").expect("write");
        fs::write(dir.path().join("tmp/z"), b"same size?\n").expect("write");
        let x = md.tmp_path("x");
        assert!(index.take_identical(&x).expect("compare").is_some());
        assert!(index.take_identical(&x).expect("compare").is_some());
        assert_eq!(index.take_identical(&x).expect("compare"), None);
        assert_eq!(
            index.take_identical(&md.tmp_path("y")).expect("compare"),
            None
        );
        assert_eq!(
            index.take_identical(&md.tmp_path("z")).expect("compare"),
            None
        );
    }

    fn staged(name: String, file: File) -> Staged {
        Staged {
            msg: 1,
            uid: None,
            name,
            file: Arc::new(file),
            octets: 0,
            verify: false,
        }
    }

    /// The threads of the sync pool.
    fn sync_threads() -> usize {
        fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == "pop3-sync")
            .count()
    }

    #[test]
    fn batches_are_synced_on_one_pool_and_a_failure_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = |bad: Option<usize>| -> Vec<Staged> {
            (0..40)
                .map(|i| {
                    let name = format!("m{i}");
                    let file = if Some(i) == bad {
                        // fdatasync refuses a socket (EINVAL).
                        let (socket, _) = std::os::unix::net::UnixStream::pair().expect("pair");
                        File::from(std::os::fd::OwnedFd::from(socket))
                    } else {
                        let mut file = File::create(dir.path().join(&name)).expect("create");
                        file.write_all(b"x").expect("write");
                        file
                    };
                    staged(name, file)
                })
                .collect()
        };
        sync_all_files(&batch(None)).expect("synced");
        assert_eq!(sync_threads(), SYNC_THREADS);
        for bad in [0, 23, 39] {
            let (name, error) = sync_all_files(&batch(Some(bad))).expect_err("a socket");
            assert_eq!(name, format!("m{bad}"), "{error}");
        }
        // One file, and many batches: no thread more.
        sync_all_files(&batch(None)[..1]).expect("one");
        for _ in 0..20 {
            sync_all_files(&batch(None)).expect("synced");
        }
        assert_eq!(sync_threads(), SYNC_THREADS);
    }

    #[test]
    fn delivery_never_replaces_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        fs::write(dir.path().join("tmp/one"), b"new").expect("write");
        fs::write(dir.path().join("new/one"), b"old").expect("write");
        let error = md.deliver("one").expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(fs::read(dir.path().join("new/one")).expect("read"), b"old");
        assert_eq!(fs::read(dir.path().join("tmp/one")).expect("read"), b"new");
        fs::write(dir.path().join("tmp/two"), b"two").expect("write");
        md.deliver("two").expect("delivered");
        assert_eq!(fs::read(dir.path().join("new/two")).expect("read"), b"two");
        assert!(!dir.path().join("tmp/two").exists());
    }

    #[test]
    fn delivered_finds_new_and_cur() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::open(dir.path()).expect("maildir");
        fs::write(dir.path().join("new/one"), b"x").expect("write");
        fs::write(dir.path().join("cur/two:2,S"), b"x").expect("write");
        fs::write(dir.path().join("tmp/three"), b"x").expect("write");
        let found = md.delivered(&["one", "two", "three"]).expect("scan");
        assert!(found.contains("one") && found.contains("two") && !found.contains("three"));
    }
}
