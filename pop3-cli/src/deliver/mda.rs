//! An MDA: a command run once per message with `sh -c`, the message (LF line ends) on its
//! stdin. The message counts as delivered only when the command exits with status 0 within
//! the timeout.
//!
//! `%F` in the command becomes the envelope sender from Return-Path, single-quoted for the
//! shell, and only ever made of letters, digits and `.-_+=/%@` (anything else in the header
//! gives the empty sender): a hostile header cannot inject shell syntax, quoted or not.
//! `%%` is a literal `%`.
//!
//! A command that exits non-zero, is killed by a signal or runs past the timeout (it is then
//! killed, with its whole process group) leaves the message unrecorded, on the server, for
//! the next run; a log line gives the reason and the first line of its stderr.

use std::fs::File;
#[cfg(test)]
use std::io::Write;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ledger, Outcome, Staged, Target, envelope_sender, unnamed_stage};
use crate::error::CliError;
use crate::state::State;

/// At most this much of an MDA's stderr is kept for the log line.
const STDERR_KEPT: usize = 4096;

/// An MDA target.
#[derive(Debug)]
pub(crate) struct Mda {
    command: String,
    spool: PathBuf,
    timeout: Duration,
}

/// `text` single-quoted for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The command with `%F` expanded to the quoted `sender` and `%%` to `%`.
pub(crate) fn expand(command: &str, sender: &str) -> String {
    let mut out = String::with_capacity(command.len() + sender.len());
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('F') => {
                    chars.next();
                    out.push_str(&shell_quote(sender));
                    continue;
                }
                Some('%') => {
                    chars.next();
                    out.push('%');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

impl Mda {
    /// An MDA running `command`; staging files go to `spool` (the state file's directory).
    pub(crate) fn new(command: &str, spool: &Path, timeout: Duration) -> Self {
        Self {
            command: command.to_owned(),
            spool: spool.to_owned(),
            timeout,
        }
    }

    /// Runs the command for one message: `Ok(None)` delivered, `Ok(Some(why))` not.
    fn run_one(&self, staged: &Staged) -> io::Result<Option<String>> {
        let sender = envelope_sender(staged)?.unwrap_or_default();
        let command = expand(&self.command, &sender);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills the shell and what it started.
            .process_group(0)
            .spawn()?;
        let pid = rustix::process::Pid::from_child(&child);
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let mut reader = staged.reader()?;
        let (status, kept) = std::thread::scope(|scope| {
            let feeder = scope.spawn(move || -> io::Result<()> {
                if let Some(mut stdin) = stdin.take() {
                    // An MDA may exit without reading everything (a filter that discards):
                    // a broken pipe is its business, its status decides.
                    match io::copy(&mut reader, &mut stdin) {
                        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            });
            // Not scoped: a process the MDA left running in the background may hold its
            // stderr open long after the MDA exited; its status decides, not that process.
            let (kept_tx, kept_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                if let Some(stderr) = stderr.as_mut() {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stderr.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let room = STDERR_KEPT.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
                let _ = kept_tx.send(kept);
            });
            let deadline = Instant::now() + self.timeout;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(Some(status)),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ =
                            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                        let _ = child.kill();
                        let _ = child.wait();
                        break Ok(None);
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => break Err(e),
                }
            };
            let fed = feeder.join().unwrap_or(Ok(()));
            let kept = kept_rx
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            (status.and_then(|s| fed.map(|()| s)), kept)
        });
        let said = String::from_utf8_lossy(&kept)
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        Ok(match status? {
            None => Some(format!(
                "the MDA ran past the timeout of {:?} and was killed{said}",
                self.timeout
            )),
            Some(status) if status.success() => None,
            Some(status) => Some(match (status.code(), status.signal()) {
                (Some(code), _) => format!("the MDA exited with status {code}{said}"),
                (None, Some(signal)) => format!("the MDA was killed by signal {signal}{said}"),
                _ => format!("the MDA failed ({status}){said}"),
            }),
        })
    }
}

impl Target for Mda {
    fn describe(&self) -> String {
        format!("the MDA {:?}", self.command)
    }

    fn recover(&mut self, _state: &mut State) -> Result<usize, CliError> {
        // Nothing to ask an MDA: a message it took but that was not recorded is delivered
        // again (the documented bound: one duplicate per crash).
        Ok(0)
    }

    fn stage(&self, _name: &str) -> io::Result<File> {
        unnamed_stage(&self.spool)
    }

    fn discard(&self, _name: &str) {}

    fn commit(&self, batch: &[Staged], ledger: &mut dyn Ledger) -> Result<Vec<Outcome>, CliError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for staged in batch {
            let result = self
                .run_one(staged)
                .map_err(|e| CliError::local(format!("the MDA {:?}", self.command), &e))?;
            match result {
                None => {
                    crate::test_hook::pause("delivered");
                    ledger.record(&[staged])?;
                    outcomes.push(Outcome::Delivered);
                }
                Some(why) => {
                    tracing::warn!(target: "pop3_cli", "{}: not delivered, left on the server for the next run: {why}", staged.label());
                    outcomes.push(Outcome::Temporary(why));
                }
            }
        }
        Ok(outcomes)
    }
}

/// Writes `bytes` into a fresh staging file (tests).
#[cfg(test)]
pub(crate) fn staged_bytes(dir: &Path, msg: u32, bytes: &[u8]) -> Staged {
    let mut file = unnamed_stage(dir).expect("stage");
    file.write_all(bytes).expect("write");
    Staged {
        msg,
        uid: Some(format!("uid-{msg}")),
        name: format!("n{msg}"),
        file: file.into(),
        octets: bytes.len() as u64,
        verify: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<String>);
    impl Ledger for Recorder {
        fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError> {
            self.0
                .extend(delivered.iter().filter_map(|s| s.uid.clone()));
            Ok(())
        }
    }

    #[test]
    fn percent_f_is_quoted() {
        assert_eq!(expand("procmail -f %F", "a@b"), "procmail -f 'a@b'");
        assert_eq!(expand("x %% %F%", ""), "x % ''%");
        assert_eq!(expand("x %G", "a"), "x %G");
    }

    #[test]
    fn a_hostile_return_path_runs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("pwned");
        let out = dir.path().join("sender");
        let mda = Mda::new(
            &format!("printf %s \"%F\" > {}", out.display()),
            dir.path(),
            Duration::from_secs(10),
        );
        let hostile = format!(
            "Return-Path: <$(touch {0})`touch {0}`'\";touch {0};'@x>\n\nbody\n",
            marker.display()
        );
        let batch = vec![staged_bytes(dir.path(), 1, hostile.as_bytes())];
        let mut recorder = Recorder(Vec::new());
        let outcomes = mda.commit(&batch, &mut recorder).expect("commit");
        assert_eq!(outcomes, [Outcome::Delivered]);
        assert!(!marker.exists(), "the header ran a command");
        // The sender was refused (empty), and the quotes stayed quotes.
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "''");
    }

    #[test]
    fn exit_status_and_timeout_decide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let message = b"Return-Path: <s@x.example>\n\nbody\n";
        let copy = dir.path().join("copy");
        let cases: Vec<(String, Option<&str>)> = vec![
            (format!("cat > {}", copy.display()), None),
            (
                "cat >/dev/null; echo 'no such user' >&2; exit 67".into(),
                Some("exited with status 67: no such user"),
            ),
            ("kill -9 $$".into(), Some("killed by signal 9")),
            ("sleep 30 & wait".into(), Some("ran past the timeout")),
            ("exit 0".into(), None),
            // Exits 0 at once, leaving a process that holds stderr open: delivered, at once.
            ("cat >/dev/null; sleep 8 & exit 0".into(), None),
        ];
        for (command, failure) in cases {
            let mda = Mda::new(&command, dir.path(), Duration::from_millis(500));
            let batch = vec![staged_bytes(dir.path(), 1, message)];
            let mut recorder = Recorder(Vec::new());
            let started = Instant::now();
            let outcomes = mda.commit(&batch, &mut recorder).expect("commit");
            assert!(started.elapsed() < Duration::from_secs(5), "{command}");
            match failure {
                None => {
                    assert_eq!(outcomes, [Outcome::Delivered], "{command}");
                    assert_eq!(recorder.0, ["uid-1"]);
                }
                Some(why) => {
                    assert!(
                        matches!(&outcomes[0], Outcome::Temporary(w) if w.contains(why)),
                        "{command}: {outcomes:?}"
                    );
                    assert!(recorder.0.is_empty());
                }
            }
        }
        assert_eq!(std::fs::read(&copy).expect("read"), message);
    }

    /// procmail, the real thing, delivering into a Maildir with the sender from %F.
    #[test]
    fn procmail_delivers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let rc = dir.path().join("procmailrc");
        std::fs::write(
            &rc,
            format!(
                "DEFAULT={}/\nLOGFILE={}/log\n",
                maildir.display(),
                dir.path().display()
            ),
        )
        .expect("rc");
        let mda = Mda::new(
            &format!("procmail -f %F -m {}", rc.display()),
            dir.path(),
            Duration::from_secs(20),
        );
        let messages: Vec<&[u8]> = vec![
            b"Return-Path: <a@x.example>\nSubject: one\n\nbody one\n",
            b"Subject: two\n\nbody two\n",
        ];
        let batch: Vec<Staged> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| staged_bytes(dir.path(), i as u32 + 1, m))
            .collect();
        let mut recorder = Recorder(Vec::new());
        let outcomes = mda.commit(&batch, &mut recorder).expect("commit");
        assert_eq!(outcomes, [Outcome::Delivered, Outcome::Delivered]);
        let found: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .expect("new/")
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        // procmail puts a From_ line with the -f sender first; the rest is the message.
        for sent in &messages {
            let sent = std::str::from_utf8(sent).expect("utf-8");
            assert!(
                found.iter().any(|f| f.ends_with(sent)),
                "{sent:?} in {found:?}"
            );
        }
        // procmail logs the envelope sender it was given with -f.
        let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
        assert!(log.contains("From a@x.example "), "{log}");
    }
}
