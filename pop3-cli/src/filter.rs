//! The header filter command (mpop's contract): the message's headers (from `TOP n 0`, with
//! LF line ends) go on its stdin; its exit status decides: 0 fetch, 1 delete without
//! fetching, 2 leave for now. Anything else (another status, a signal, a timeout, a command
//! that cannot be started) leaves the message and is logged: a broken filter never deletes.
//!
//! The command runs with `sh -c`, in its own process group (a timeout kills the group, so a
//! pipeline's children go too), with stdout discarded (it would mix with the summary) and
//! stderr inherited. `POP3_FILTER_HOST`, `POP3_FILTER_USER`, `POP3_FILTER_SIZE` (octets as
//! listed) and `POP3_FILTER_UID` (when the server has UIDL) describe the message.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::rules::Verdict;

/// At most this many octets of a message's headers go to the filter: `TOP n 0` from a
/// hostile server can be as long as the whole message; the rest is cut off (and the cut
/// logged).
pub(crate) const MAX_FILTER_HEADER_BYTES: usize = 1024 * 1024;

/// The filter's default timeout.
pub(crate) const DEFAULT_FILTER_TIMEOUT: Duration = Duration::from_secs(60);

/// A header filter command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    /// Run with `sh -c`.
    pub(crate) command: String,
    /// Killed (with its process group) after this long: the message is left.
    pub(crate) timeout: Duration,
}

/// What the filter is told about a message, besides its headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    pub(crate) host: &'a str,
    pub(crate) user: &'a str,
    pub(crate) size: u64,
    pub(crate) uid: Option<&'a str>,
}

/// A `Write` sink that keeps at most [`MAX_FILTER_HEADER_BYTES`] octets, with CRLF turned into
/// LF, and discards the rest (so that a long `TOP` reply is read to its end, not cut off
/// mid-reply).
#[derive(Debug, Default)]
pub(crate) struct HeaderSink {
    bytes: Vec<u8>,
    /// A CR held back at the end of the last chunk.
    cr: bool,
    /// Whether anything was discarded.
    pub(crate) cut: bool,
}

impl HeaderSink {
    /// The headers kept.
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        if self.cr {
            self.push(b'\r');
        }
        self.bytes
    }

    fn push(&mut self, byte: u8) {
        if self.bytes.len() < MAX_FILTER_HEADER_BYTES {
            self.bytes.push(byte);
        } else {
            self.cut = true;
        }
    }
}

impl Write for HeaderSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            if self.cr {
                self.cr = false;
                if byte != b'\n' {
                    self.push(b'\r');
                }
            }
            if byte == b'\r' {
                self.cr = true;
            } else {
                self.push(byte);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for HeaderSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().write(buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Filter {
    /// Runs the filter on `headers`; never fails: a failure is [`Verdict::Failed`].
    pub(crate) fn run(&self, headers: &[u8], about: About<'_>) -> Verdict {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env("POP3_FILTER_HOST", about.host)
            .env("POP3_FILTER_USER", about.user)
            .env("POP3_FILTER_SIZE", about.size.to_string())
            .process_group(0);
        match about.uid {
            Some(uid) => command.env("POP3_FILTER_UID", uid),
            None => command.env_remove("POP3_FILTER_UID"),
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return Verdict::Failed(format!("cannot run sh: {e}")),
        };
        let pid = child.id();
        let stdin = child.stdin.take();
        let status = std::thread::scope(|scope| {
            // Fed from a thread: a filter that exits (or stalls) without reading must not
            // block us; a closed pipe is its business.
            scope.spawn(move || {
                if let Some(mut stdin) = stdin {
                    let _ = stdin.write_all(headers);
                }
            });
            let deadline = Instant::now() + self.timeout;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        // Children it left behind holding the pipe would keep the writer
                        // thread blocked: the group goes.
                        kill_group(pid);
                        return Ok(status);
                    }
                    Ok(None) if Instant::now() >= deadline => {
                        kill_group(pid);
                        let _ = child.wait();
                        return Err(format!("timed out after {:?}", self.timeout));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => {
                        kill_group(pid);
                        let _ = child.wait();
                        return Err(format!("waiting for it: {e}"));
                    }
                }
            }
        });
        match status {
            Ok(status) => verdict(status),
            Err(why) => Verdict::Failed(why),
        }
    }
}

fn verdict(status: ExitStatus) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Verdict::Fetch,
        (Some(1), _) => Verdict::Delete,
        (Some(2), _) => Verdict::Skip,
        (Some(code), _) => Verdict::Failed(format!("exit status {code}")),
        (None, Some(signal)) => Verdict::Failed(format!("killed by signal {signal}")),
        (None, None) => Verdict::Failed(format!("{status}")),
    }
}

/// SIGKILL to the filter's process group (it leads it); an already gone group is fine.
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about() -> About<'static> {
        About {
            host: "pop.example",
            user: "alice",
            size: 1234,
            uid: Some("uid-1"),
        }
    }

    fn filter(command: &str) -> Filter {
        Filter {
            command: command.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn exit_status_decides() {
        let headers = b"From: a@b\nSubject: spam\n\n";
        assert_eq!(filter("exit 0").run(headers, about()), Verdict::Fetch);
        assert_eq!(filter("exit 1").run(headers, about()), Verdict::Delete);
        assert_eq!(filter("exit 2").run(headers, about()), Verdict::Skip);
        assert_eq!(
            filter("exit 3").run(headers, about()),
            Verdict::Failed("exit status 3".to_owned())
        );
        assert_eq!(
            filter("kill -9 $$").run(headers, about()),
            Verdict::Failed("killed by signal 9".to_owned())
        );
        // The headers on stdin, the message described in the environment.
        let spam = "if grep -q '^Subject: spam$' && [ \"$POP3_FILTER_SIZE\" = 1234 ] && \
                    [ \"$POP3_FILTER_UID\" = uid-1 ] && [ \"$POP3_FILTER_USER\" = alice ] && \
                    [ \"$POP3_FILTER_HOST\" = pop.example ]; then exit 1; else exit 0; fi";
        assert_eq!(filter(spam).run(headers, about()), Verdict::Delete);
        assert_eq!(
            filter(spam).run(b"Subject: ham\n\n", about()),
            Verdict::Fetch
        );
        let no_uid = About {
            uid: None,
            ..about()
        };
        assert_eq!(filter(spam).run(headers, no_uid), Verdict::Fetch);
    }

    #[test]
    fn a_filter_that_hangs_or_ignores_stdin_is_cut_short() {
        let start = Instant::now();
        let hang = Filter {
            command: "sleep 30 | cat".to_owned(),
            timeout: Duration::from_millis(300),
        };
        let verdict = hang.run(&vec![b'x'; 4 * 1024 * 1024], about());
        assert!(
            matches!(verdict, Verdict::Failed(ref why) if why.starts_with("timed out")),
            "{verdict:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        // Exits at once without reading a large input: no hang on the full pipe.
        assert_eq!(
            filter("exit 2").run(&vec![b'x'; 4 * 1024 * 1024], about()),
            Verdict::Skip
        );
    }

    #[test]
    fn header_sink_turns_crlf_into_lf_and_bounds_what_it_keeps() {
        let mut sink = HeaderSink::default();
        sink.write_all(b"A: 1\r").expect("write");
        sink.write_all(b"\nB: 2\r\n\r").expect("write");
        sink.write_all(b"\n").expect("write");
        assert!(!sink.cut);
        assert_eq!(sink.into_bytes(), b"A: 1\nB: 2\n\n");
        let mut sink = HeaderSink::default();
        sink.write_all(&vec![b'x'; MAX_FILTER_HEADER_BYTES + 10])
            .expect("write");
        assert!(sink.cut);
        assert_eq!(sink.into_bytes().len(), MAX_FILTER_HEADER_BYTES);
    }
}
