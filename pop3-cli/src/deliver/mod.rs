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
use std::io::{self, Read, Seek, SeekFrom};
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
    /// The staged message, LF line ends.
    pub(crate) file: File,
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
        let mut file = &self.file;
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

impl Outcome {
    /// Whether the message is now in the target (so it may be deleted on the server).
    pub(crate) fn is_stored(&self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::AlreadyThere)
    }
}

/// Records delivered messages in the state, durably. A target calls it exactly when its
/// guarantee needs: the Maildir and the mbox once per batch, after the batch is durable;
/// an MDA and an LMTP server after each message.
pub(crate) trait Ledger {
    /// Records `delivered` as stored and writes the state (one atomic write).
    fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError>;
}

/// A delivery target (see the module docs for the call protocol).
pub(crate) trait Target: Send + std::fmt::Debug {
    /// What the summary names: a path, a command, an address.
    fn describe(&self) -> String;
    /// Whether the reserved names are file names in the target (the Maildir: the state
    /// reserves them before the rename, and [`recover`](Self::recover) looks for them).
    fn reserves_names(&self) -> bool {
        false
    }
    /// Resolves what an interrupted run left (under the state's lock, before connecting);
    /// returns how many messages it found delivered and recorded now.
    fn recover(&mut self, state: &mut State) -> Result<usize, CliError>;
    /// Begins a message: the file it is written into as it arrives.
    fn stage(&self, name: &str) -> io::Result<File>;
    /// Drops a staged message that will not be committed.
    fn discard(&self, name: &str);
    /// Delivers a batch, in order, recording through `ledger`; one outcome per message. An
    /// error means the target is unusable (a full disk, a lock not obtained, a dead LMTP
    /// server): the messages without an outcome are not delivered, and the account stops.
    fn commit(
        &mut self,
        batch: &[Staged],
        ledger: &mut dyn Ledger,
    ) -> Result<Vec<Outcome>, CliError>;
}

/// A staging file for the targets that do not stage in place: unnamed, in the state file's
/// directory (gone with the process, whatever kills it).
pub(crate) fn unnamed_stage(dir: &std::path::Path) -> io::Result<File> {
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
