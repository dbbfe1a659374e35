//! Delivery targets: where `fetch` puts a message once it has arrived completely.
//!
//! The fetch engine drives every target the same way, through [`Target`]:
//!
//! 1. **begin**: [`Target::stage`] gives a file for the message (the Maildir's `tmp/NAME`; an
//!    unnamed temporary file for the others) and the engine writes the message into it with
//!    LF line ends as it arrives;
//! 2. **commit**: [`Target::commit`] takes the batch of complete messages, makes each one
//!    durable in the target (or learns that the target refused it), and records the delivered
//!    ones through the [`Ledger`] (the state file), in the order that keeps the guarantees;
//! 3. **recover**: [`Target::recover`], before connecting, resolves what a run killed half-way
//!    left.
//!
//! The guarantees (the README's delivery section says the same):
//! - Maildir and mbox are exactly-once across a kill at any point: the Maildir by names
//!   reserved in the state before the rename into `new/`, the mbox by a journal that records
//!   the append's offset, length and hash before the append ([`mbox`]).
//! - An MDA or an LMTP server cannot be asked whether it delivered: a crash after it accepted
//!   a message and before the state write leaves that message unrecorded, and the next run
//!   delivers it again. Each message is recorded (the state written) right after it was
//!   accepted, before the next one is handed over, so a crash costs at most one duplicate,
//!   and never a loss.

pub(crate) mod lmtp;
pub(crate) mod mbox;
pub(crate) mod mda;

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::CliError;
use crate::state::State;

/// A complete message, staged for delivery.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The message number in this session.
    pub(crate) msg: u32,
    /// Its UID (`None` on a server without UIDL).
    pub(crate) uid: Option<String>,
    /// The name reserved for it (the Maildir's file name; other targets only log it).
    pub(crate) name: String,
    /// The staged message, LF line ends (shared with the threads that sync it:
    /// [`crate::maildir`]'s pool).
    pub(crate) file: Arc<File>,
    /// Its size as received (CRLF line ends, dot-unstuffed).
    pub(crate) octets: u64,
    /// Listed under a UID marked deleting: deliver it only if the target cannot show it holds
    /// exactly this message already.
    pub(crate) verify: bool,
}

impl Staged {
    /// "message N (UID u)", for log lines and errors.
    pub(crate) fn label(&self) -> String {
        match &self.uid {
            Some(uid) => format!("message {} (UID {uid})", self.msg),
            None => format!("message {}", self.msg),
        }
    }

    /// A reader over the staged message from its start.
    pub(crate) fn reader(&self) -> io::Result<impl io::BufRead + '_> {
        let mut file = &*self.file;
        file.seek(SeekFrom::Start(0))?;
        Ok(io::BufReader::with_capacity(64 * 1024, file))
    }
}

/// What became of one staged message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Durable in the target and recorded.
    Delivered,
    /// Found already in the target (by content; see [`Staged::verify`]) and recorded.
    AlreadyThere,
    /// Not delivered; the message stays on the server, unrecorded, and the next run tries
    /// again (an MDA's non-zero exit or timeout, an LMTP 4xx).
    Temporary(String),
    /// Refused for good by the target (an LMTP 5xx); the message stays on the server,
    /// unrecorded.
    Permanent(String),
}

/// Records delivered messages in the state, durably. A target calls it exactly when its
/// guarantee needs: the Maildir and the mbox once per batch, after the batch is durable;
/// an MDA and an LMTP server after each message.
pub(crate) trait Ledger {
    /// Records `delivered` as stored and writes the state (one atomic write).
    fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError>;
    /// Notes, durably, what is about to be handed over, so that it can be recognised after a
    /// crash whatever records it (the mbox's recovery records without the staged messages):
    /// their digests.
    fn intend(&mut self, _batch: &[&Staged]) -> Result<(), CliError> {
        Ok(())
    }
}

/// A delivery target (see the module docs for the call protocol).
pub(crate) trait Target: Send + Sync + std::fmt::Debug {
    /// What the summary names: a path, a command, an address.
    fn describe(&self) -> String;
    /// A name for the next message: unique in the target when
    /// [`reserves_names`](Self::reserves_names) (the Maildir's file name), else only a label.
    fn reserve_name(&mut self) -> String {
        String::new()
    }
    /// Whether the reserved names are file names in the target (the Maildir: the state
    /// reserves them before the rename, and [`recover`](Self::recover) looks for them).
    fn reserves_names(&self) -> bool {
        false
    }
    /// Resolves what an interrupted run left (under the state's lock, before connecting);
    /// returns how many messages it found delivered and recorded now.
    fn recover(&mut self, state: &mut State) -> Result<usize, CliError>;
    /// Makes ready to compare messages listed under untrusted UIDs (`Staged::verify`) with
    /// what the target holds, when [`recover`](Self::recover) did not (it does when the state
    /// marks a UID deleting; `fetch` learns of other untrusted UIDs, from the server's
    /// EXPIRE, only after login). Called before the first batch of the run is downloaded,
    /// so that only what was there before the run vouches for a download.
    fn prepare_verify(&mut self) -> Result<(), CliError> {
        Ok(())
    }
    /// Begins a message: the file it is written into as it arrives.
    fn stage(&self, name: &str) -> io::Result<File>;
    /// Drops a staged message that will not be committed.
    fn discard(&self, name: &str);
    /// Delivers a batch, in order, recording through `ledger`; one outcome per message. An
    /// error means the target is unusable (a full disk, a lock not obtained, a dead LMTP
    /// server): the messages without an outcome are not delivered, and the account stops.
    fn commit(&self, batch: &[Staged], ledger: &mut dyn Ledger) -> Result<Vec<Outcome>, CliError>;
}

/// The delivery keys of a config account besides `maildir`.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccountTargets {
    pub(crate) mbox: Option<PathBuf>,
    pub(crate) mda: Option<String>,
    pub(crate) lmtp: Option<String>,
    pub(crate) lmtp_rcpt: Option<String>,
    pub(crate) deliver_timeout: Option<f64>,
}

/// The one target of a run, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetSpec {
    /// `--maildir DIR`.
    Maildir(PathBuf),
    /// `--mbox FILE`.
    Mbox(PathBuf),
    /// `--mda CMD`.
    Mda(String),
    /// `--lmtp ADDR --lmtp-rcpt RCPT`.
    Lmtp(lmtp::LmtpAddr, String),
}

impl TargetSpec {
    /// The target from the command line (`--maildir`, `--mbox`, `--mda`, `--lmtp`: clap
    /// allows one) or else from the account (which must name exactly one).
    pub(crate) fn resolve(
        args: &crate::cli::FetchArgs,
        maildir: Option<&Path>,
        account: &AccountTargets,
    ) -> Result<Self, CliError> {
        let from_cli = args.maildir.is_some()
            || args.mbox.is_some()
            || args.mda.is_some()
            || args.lmtp.is_some();
        if !from_cli {
            if args.lmtp_rcpt.is_some() && account.lmtp.is_none() {
                return Err(CliError::usage("--lmtp-rcpt needs --lmtp"));
            }
            let account = AccountTargets {
                lmtp_rcpt: args.lmtp_rcpt.clone().or_else(|| account.lmtp_rcpt.clone()),
                ..account.clone()
            };
            return Self::from_account(maildir, &account);
        }
        if args.lmtp.is_none() && args.lmtp_rcpt.is_some() {
            return Err(CliError::usage("--lmtp-rcpt needs --lmtp"));
        }
        Self::build(
            args.maildir.clone(),
            args.mbox.clone(),
            args.mda.clone(),
            args.lmtp.clone(),
            args.lmtp_rcpt.clone().or_else(|| account.lmtp_rcpt.clone()),
        )
    }

    /// The target of a config account (`maildir`, `mbox`, `mda` or `lmtp` with `lmtp-rcpt`:
    /// exactly one), as `fetch` without a target flag and `poll` use it.
    pub(crate) fn from_account(
        maildir: Option<&Path>,
        account: &AccountTargets,
    ) -> Result<Self, CliError> {
        let count = [
            maildir.is_some(),
            account.mbox.is_some(),
            account.mda.is_some(),
            account.lmtp.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count > 1 {
            return Err(CliError::usage(
                "the account sets more than one of maildir, mbox, mda, lmtp (a fetch delivers to exactly one)",
            ));
        }
        Self::build(
            maildir.map(Path::to_owned),
            account.mbox.clone(),
            account.mda.clone(),
            account.lmtp.clone(),
            account.lmtp_rcpt.clone(),
        )
    }

    /// The one target given (the caller made sure there is at most one).
    fn build(
        maildir: Option<PathBuf>,
        mbox: Option<PathBuf>,
        mda: Option<String>,
        lmtp: Option<String>,
        rcpt: Option<String>,
    ) -> Result<Self, CliError> {
        if let Some(dir) = maildir {
            return Ok(Self::Maildir(dir));
        }
        if let Some(file) = mbox {
            return Ok(Self::Mbox(file));
        }
        if let Some(command) = mda {
            if command.trim().is_empty() {
                return Err(CliError::usage("--mda needs a command"));
            }
            return Ok(Self::Mda(command));
        }
        if let Some(addr) = lmtp {
            let addr = lmtp::LmtpAddr::parse(&addr)
                .map_err(|e| CliError::usage(format!("--lmtp: {e}")))?;
            let rcpt = rcpt.ok_or_else(|| {
                CliError::usage("--lmtp needs --lmtp-rcpt ADDR (or the account's lmtp-rcpt)")
            })?;
            if !lmtp::valid_recipient(&rcpt) {
                return Err(CliError::usage(format!(
                    "--lmtp-rcpt {rcpt:?}: not an address (printable ASCII, no spaces or <>)"
                )));
            }
            return Ok(Self::Lmtp(addr, rcpt));
        }
        Err(CliError::usage(
            "fetch needs a target: --maildir DIR, --mbox FILE, --mda CMD or --lmtp ADDR \
             (or an account's maildir, mbox, mda or lmtp)",
        ))
    }

    /// The deliver timeout: `seconds` (from the command line or the account) checked, or
    /// [`DEFAULT_TIMEOUT`].
    pub(crate) fn timeout(seconds: Option<f64>) -> Result<Duration, CliError> {
        match seconds {
            None => Ok(DEFAULT_TIMEOUT),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            Some(_) => Err(CliError::usage(
                "the deliver-timeout must be more than 0 and at most 86400 seconds",
            )),
        }
    }

    /// The default state file: inside the Maildir; next to the mbox (its name appended);
    /// for an MDA or LMTP, under `$XDG_STATE_HOME/pop3` (default `~/.local/state/pop3`).
    pub(crate) fn default_state(&self, user: &str, host: &str, port: u16) -> PathBuf {
        match self {
            Self::Maildir(dir) => crate::state::default_path(dir, user, host, port),
            Self::Mbox(file) => {
                let dir = file
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let path = crate::state::default_path(dir, user, host, port);
                let mut name = path.file_name().unwrap_or_default().to_owned();
                name.push(".");
                name.push(file.file_name().unwrap_or_default());
                path.with_file_name(name)
            }
            Self::Mda(_) | Self::Lmtp(..) => {
                let dir = std::env::var_os("XDG_STATE_HOME")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .filter(|h| !h.is_empty())
                            .map(|h| PathBuf::from(h).join(".local/state"))
                    })
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("pop3");
                crate::state::default_path(&dir, user, host, port)
            }
        }
    }

    /// What the summary names.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Maildir(dir) | Self::Mbox(dir) => dir.display().to_string(),
            Self::Mda(command) => format!("the MDA {command:?}"),
            Self::Lmtp(addr, rcpt) => format!("LMTP {addr} for {rcpt}"),
        }
    }

    /// Opens the target (the Maildir is created if missing); staging files of the spooled
    /// targets go to the state file's directory.
    pub(crate) fn open(
        &self,
        state: &Path,
        timeout: Duration,
    ) -> Result<Box<dyn Target>, CliError> {
        let spool = state
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(match self {
            Self::Maildir(dir) => Box::new(crate::maildir::MaildirTarget::new(
                crate::maildir::Maildir::open(dir)
                    .map_err(|e| CliError::local(dir.display(), &e))?,
            )),
            Self::Mbox(file) => Box::new(mbox::Mbox::new(file, state, timeout)),
            Self::Mda(command) => Box::new(mda::Mda::new(command, spool, timeout)),
            Self::Lmtp(addr, rcpt) => Box::new(lmtp::Lmtp::new(addr.clone(), rcpt, spool, timeout)),
        })
    }
}

/// The digests (length, SHA-256 of the LF form) of the messages a target that cannot be
/// searched (mbox, MDA, LMTP) took, by UID, in `STATE.digests`.
///
/// They settle the one question the state alone cannot: a UID marked deleting (its DELE not
/// known to be committed) is listed again after a crash. The message under it is the one
/// delivered (the deletion did not happen: skip it) or a new one that reuses the UID (deliver
/// it). The Maildir answers by comparing contents; for the other targets the digest
/// recorded at delivery answers. Each line is appended and synced before the state records
/// the UID; a torn last line (a crash mid-append) is ignored.
#[derive(Debug)]
pub(crate) struct Digests {
    path: PathBuf,
    by_uid: std::collections::HashMap<String, (u64, [u8; 32])>,
    file: Option<File>,
}

impl Digests {
    /// Reads `STATE.digests` (missing: none), keeping only the UIDs `keep` accepts (the file
    /// is rewritten if any were dropped).
    pub(crate) fn open(state: &Path, keep: impl Fn(&str) -> bool) -> io::Result<Self> {
        let mut path = state.as_os_str().to_owned();
        path.push(".digests");
        let path = PathBuf::from(path);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut by_uid = std::collections::HashMap::new();
        // A torn last line is rewritten away (the next append would run into it).
        let mut dropped = !text.is_empty() && !text.ends_with('\n');
        for line in text.lines() {
            let mut fields = line.split(' ');
            let parsed = (|| {
                let uid = fields.next()?;
                let len = fields.next()?.parse().ok()?;
                let hex = fields.next()?;
                let mut digest = [0u8; 32];
                if hex.len() != 64 || fields.next().is_some() {
                    return None;
                }
                for (i, byte) in digest.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some((uid.to_owned(), (len, digest)))
            })();
            match parsed {
                Some((uid, value)) if keep(&uid) => {
                    by_uid.insert(uid, value);
                }
                _ => dropped = true,
            }
        }
        let digests = Self {
            path,
            by_uid,
            file: None,
        };
        if dropped {
            digests.rewrite()?;
        }
        Ok(digests)
    }

    fn line(uid: &str, (len, digest): &(u64, [u8; 32])) -> String {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{uid} {len} {hex}\n")
    }

    fn rewrite(&self) -> io::Result<()> {
        let mut text = String::new();
        for (uid, value) in &self.by_uid {
            text.push_str(&Self::line(uid, value));
        }
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::maildir::sync_dir(dir)?;
        }
        Ok(())
    }

    fn digest(staged: &Staged) -> io::Result<(u64, [u8; 32])> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut reader = staged.reader()?;
        let mut len = 0u64;
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            hasher.update(buf);
            len += buf.len() as u64;
            let n = buf.len();
            reader.consume(n);
        }
        Ok((len, hasher.finalize().into()))
    }

    /// Whether `staged` is exactly the message delivered under its UID.
    pub(crate) fn delivered_already(&self, staged: &Staged) -> io::Result<bool> {
        let Some(recorded) = staged.uid.as_ref().and_then(|uid| self.by_uid.get(uid)) else {
            return Ok(false);
        };
        Ok(Self::digest(staged)? == *recorded)
    }

    /// Appends the digests of `delivered`, durably (call before the state records them).
    pub(crate) fn append(&mut self, delivered: &[&Staged]) -> io::Result<()> {
        let mut text = String::new();
        for staged in delivered {
            if let Some(uid) = &staged.uid {
                let value = Self::digest(staged)?;
                text.push_str(&Self::line(uid, &value));
                self.by_uid.insert(uid.clone(), value);
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let created = !self.path.exists();
            self.file = Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)?,
            );
            if created {
                if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::maildir::sync_dir(dir)?;
                }
            }
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no file"))?;
        std::io::Write::write_all(file, text.as_bytes())?;
        file.sync_data()
    }

    /// The file, for errors.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A staging file for the targets that do not stage in place: unnamed, in the state file's
/// directory (gone with the process, whatever kills it).
pub(crate) fn unnamed_stage(dir: &Path) -> io::Result<File> {
    tempfile::tempfile_in(dir)
}

/// How long a target may take for one step (an MDA's run, the wait for an mbox lock, one
/// LMTP reply) unless configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// At most this many header bytes are searched for Return-Path.
const HEADER_SCAN: usize = 64 * 1024;

/// The envelope sender, from the first Return-Path header (`<addr>`; `Some("")` for the
/// null sender `<>`), or `None` when there is none or it is malformed. Only characters that
/// are safe in an SMTP path and mean nothing to a shell are kept: anything else makes the
/// address unusable (`None`), never part of a command.
pub(crate) fn envelope_sender(staged: &Staged) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(4096);
    staged
        .reader()?
        .take(HEADER_SCAN as u64)
        .read_to_end(&mut head)?;
    Ok(return_path(&head))
}

/// The Return-Path of a header block (LF or CRLF line ends), see [`envelope_sender`].
pub(crate) fn return_path(message: &[u8]) -> Option<String> {
    let mut lines = message.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"return-path") {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
                lines.next();
            } else {
                break;
            }
        }
        let value = std::str::from_utf8(&value).ok()?.trim();
        let inner = value.strip_prefix('<')?.strip_suffix('>')?.trim();
        // A source route (`<@a,@b:user@host>`) is dropped, as RFC 5321 says it may be.
        let inner = match inner.rsplit_once(':') {
            Some((route, addr)) if route.starts_with('@') => addr,
            _ => inner,
        };
        return safe_address(inner).then(|| inner.to_owned());
    }
    None
}

/// Whether `addr` is empty (the null sender) or a plain `local@domain` of conservative
/// characters: letters, digits and `.-_+=/%@` (no quotes, spaces, `$`, backquotes, `<>`).
fn safe_address(addr: &str) -> bool {
    addr.len() <= 254
        && addr.bytes().filter(|&b| b == b'@').count() <= 1
        && addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_+=/%@".contains(&b))
        && !addr.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_is_taken_safely() {
        let rp = |text: &str| return_path(text.as_bytes());
        assert_eq!(
            rp("Return-Path: <a@b.example>\n\nbody"),
            Some("a@b.example".into())
        );
        assert_eq!(
            rp("Subject: x\r\nreturn-path:<>\r\n\r\n"),
            Some(String::new())
        );
        assert_eq!(
            rp("Return-Path:\n <bounce+x=y@lists.example>\n\n"),
            Some("bounce+x=y@lists.example".into())
        );
        assert_eq!(
            rp("Return-Path: <@relay.example:u@h.example>\n\n"),
            Some("u@h.example".into())
        );
        // Hostile values never come through.
        for hostile in [
            "Return-Path: <a'b@c>\n\n",
            "Return-Path: <$(reboot)@x>\n\n",
            "Return-Path: <`id`@x>\n\n",
            "Return-Path: <a b@c>\n\n",
            "Return-Path: <a@b>;rm -rf ~\n\n",
            "Return-Path: <-oQ/tmp@x>\n\n",
            "Return-Path: <a\"@x>\n\n",
            "Return-Path: a@b\n\n",
        ] {
            assert_eq!(rp(hostile), None, "{hostile:?}");
        }
        // Only the header block counts.
        assert_eq!(rp("Subject: x\n\nReturn-Path: <a@b>\n"), None);
    }
}
