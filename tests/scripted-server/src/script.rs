//! Transcripts for [`ScriptedServer`](crate::ScriptedServer): a builder and a
//! `C:`/`S:` text form.

use std::time::Duration;

use crate::Error;
use crate::util::{escape_bytes, unescape};

/// One step of a [`Script`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Send these bytes as they are (in one write).
    Send(Vec<u8>),
    /// Read one line from the client (up to LF) and compare it.
    Expect(Expect),
    /// One read must return exactly these bytes, with nothing received
    /// before it that the script has not read: the client sent them in one
    /// write (for example a pipelined batch). Without a TLS record boundary
    /// or a TCP segment split in between, which the loopback interface does
    /// not make for a few hundred bytes.
    ExpectOneRead(Vec<u8>),
    /// Nothing may arrive for this long (and nothing may be waiting unread):
    /// the client waits for the reply before it sends more. A slow client can
    /// only make this pass, never fail.
    Quiet(Duration),
    /// Read until the client closes its sending side (EOF).
    ExpectEof,
    /// Like [`Step::ExpectEof`], but a connection reset counts as the close
    /// too: what a client does when it drops a connection with unread input
    /// (a cancelled transfer). The kernel may discard bytes that arrive with
    /// the reset, so this proves less than `ExpectEof`.
    ExpectEofOrReset,
    /// Send these bytes `chunk` bytes at a time, pausing `every` before each
    /// piece (a server that trickles, for read deadlines and speed limits).
    /// Over TLS the pieces are of the records' ciphertext. If the client hangs
    /// up meanwhile (a write fails), the script ends there, without a
    /// mismatch: see [`Transcript::hung_up`](crate::Transcript::hung_up) and
    /// [`Transcript::dripped`](crate::Transcript::dripped).
    Drip {
        /// The bytes (plaintext).
        bytes: Vec<u8>,
        /// Bytes per piece (at least 1).
        chunk: usize,
        /// The pause before each piece.
        every: Duration,
    },
    /// Stall for this long.
    Sleep(Duration),
    /// Switch to TLS here: the client must not have sent anything after the
    /// last expected line, then the server performs the TLS handshake.
    StartTls,
    /// Close gracefully (TLS close_notify, TCP FIN), then record whatever the
    /// client still sends until it closes. Ends the script.
    Close,
    /// Close with a TCP FIN but without TLS close_notify (a truncation attack
    /// from TLS's point of view). Ends the script.
    CloseAbruptly,
    /// The login hand-off of servers that pass the connection to a new process
    /// once the login succeeds: wait [`HAND_OFF_SETTLE`] for bytes in transit,
    /// then drop every byte the client sent that the script has not read yet.
    /// Put it between the login command's `C:` line and its `+OK`. The dropped
    /// bytes are in [`Transcript::dropped_at_hand_off`](crate::Transcript::dropped_at_hand_off).
    HandOff,
}

/// How long [`Step::HandOff`] waits for client bytes still in transit before
/// it drops what arrived.
pub const HAND_OFF_SETTLE: Duration = Duration::from_millis(100);

/// How an expected client line is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expect {
    /// The line must be exactly these bytes followed by CRLF.
    Exact(Vec<u8>),
    /// The line must start with these bytes and end with CRLF.
    Prefix(Vec<u8>),
    /// Any line that ends with CRLF.
    AnyLine,
}

impl Expect {
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        let Some(content) = line.strip_suffix(b"\r\n") else {
            return false;
        };
        match self {
            Expect::Exact(e) => content == e.as_slice(),
            Expect::Prefix(p) => content.starts_with(p),
            Expect::AnyLine => true,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Expect::Exact(e) => format!("{}\\r\\n", escape_bytes(e)),
            Expect::Prefix(p) => format!("{}...\\r\\n", escape_bytes(p)),
            Expect::AnyLine => "<any line>\\r\\n".to_owned(),
        }
    }
}

/// A server-side transcript: what to send, what to expect, when to stall,
/// switch to TLS or close.
///
/// Build it with the methods, or write it as text with [`Script::parse`]:
///
/// ```
/// use pop3_scripted_server::Script;
/// use std::time::Duration;
///
/// let built = Script::new()
///     .send("+OK ready")
///     .expect("CAPA")
///     .send_raw(b"+OK\r\nUSER\r\n.\r\n")
///     .sleep(Duration::from_millis(5))
///     .expect("QUIT")
///     .send("+OK bye");
/// let parsed = Script::parse(
///     r"
///     S: +OK ready
///     C: CAPA
///     S-RAW: +OK\r\nUSER\r\n.\r\n
///     SLEEP: 5
///     C: QUIT
///     S: +OK bye
///     ",
/// )?;
/// assert_eq!(built, parsed);
/// # Ok::<(), pop3_scripted_server::Error>(())
/// ```
///
/// Two scripts are equal when their steps are (source lines do not count).
#[derive(Debug, Clone, Default)]
pub struct Script {
    steps: Vec<Step>,
    /// Line of the text form each step came from (1-based), if parsed.
    lines: Vec<Option<usize>>,
}

impl PartialEq for Script {
    fn eq(&self, other: &Script) -> bool {
        self.steps == other.steps
    }
}

impl Eq for Script {}

impl Script {
    /// An empty script (the server accepts the connection and closes it).
    pub fn new() -> Script {
        Script::default()
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The source line (1-based) of step `index` if the script was parsed.
    pub fn source_line(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied().flatten()
    }

    /// Appends a step.
    pub fn step(mut self, step: Step) -> Script {
        self.steps.push(step);
        self.lines.push(None);
        self
    }

    /// Sends `line` followed by CRLF.
    pub fn send(self, line: &str) -> Script {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.step(Step::Send(bytes))
    }

    /// Sends `bytes` exactly (nothing appended): partial lines, bare LF,
    /// whole multi-line replies. Each call is one write.
    pub fn send_raw(self, bytes: &[u8]) -> Script {
        self.step(Step::Send(bytes.to_vec()))
    }

    /// Expects the client to send exactly `line` followed by CRLF.
    pub fn expect(self, line: &str) -> Script {
        self.expect_bytes(line.as_bytes())
    }

    /// Expects the client to send exactly `line` (any bytes) followed by CRLF.
    pub fn expect_bytes(self, line: &[u8]) -> Script {
        self.step(Step::Expect(Expect::Exact(line.to_vec())))
    }

    /// Expects a CRLF-terminated line starting with `prefix` (for lines with
    /// random parts, such as SCRAM's client nonce).
    pub fn expect_prefix(self, prefix: &str) -> Script {
        self.step(Step::Expect(Expect::Prefix(prefix.as_bytes().to_vec())))
    }

    /// Expects any CRLF-terminated line.
    pub fn expect_any(self) -> Script {
        self.step(Step::Expect(Expect::AnyLine))
    }

    /// Expects the client to close the connection (or at least its sending
    /// side) without sending anything more.
    pub fn expect_eof(self) -> Script {
        self.step(Step::ExpectEof)
    }

    /// Expects the client to close, by a FIN or a reset
    /// ([`Step::ExpectEofOrReset`]).
    pub fn expect_eof_or_reset(self) -> Script {
        self.step(Step::ExpectEofOrReset)
    }

    /// One read must return exactly `bytes` ([`Step::ExpectOneRead`]).
    pub fn expect_one_read(self, bytes: &[u8]) -> Script {
        self.step(Step::ExpectOneRead(bytes.to_vec()))
    }

    /// Nothing may arrive for `duration` ([`Step::Quiet`]).
    pub fn quiet(self, duration: Duration) -> Script {
        self.step(Step::Quiet(duration))
    }

    /// Sends `bytes` `chunk` bytes at a time, `every` apart ([`Step::Drip`]).
    pub fn drip(self, bytes: &[u8], chunk: usize, every: Duration) -> Script {
        self.step(Step::Drip {
            bytes: bytes.to_vec(),
            chunk,
            every,
        })
    }

    /// Stalls for `duration` before the next step.
    pub fn sleep(self, duration: Duration) -> Script {
        self.step(Step::Sleep(duration))
    }

    /// Switches the connection to TLS with the shared test certificate ([`TestCa::shared`](pop3_demo_server::TestCa::shared)) here (after
    /// sending the `+OK` to `STLS`).
    pub fn start_tls(self) -> Script {
        self.step(Step::StartTls)
    }

    /// Closes the connection gracefully here. Ends the script.
    pub fn close(self) -> Script {
        self.step(Step::Close)
    }

    /// Closes the TCP connection without a TLS close_notify. Ends the script.
    pub fn close_abruptly(self) -> Script {
        self.step(Step::CloseAbruptly)
    }

    /// The login hand-off ([`Step::HandOff`]): drops every byte that arrived
    /// before the login reply. Place it right before that reply.
    pub fn hand_off(self) -> Script {
        self.step(Step::HandOff)
    }

    /// Parses the text form, one step per line:
    ///
    /// | line | step |
    /// |---|---|
    /// | `S: text` | send `text` + CRLF (`S:` alone sends an empty line) |
    /// | `S-RAW: text` | send `text` with escapes `\r \n \t \0 \\ \xNN`, nothing appended |
    /// | `C: text` | expect exactly `text` + CRLF from the client |
    /// | `C-RAW: text` | the same, with the escapes of `S-RAW` |
    /// | `C-PREFIX: text` | expect a CRLF line starting with `text` |
    /// | `C-ANY` | expect any CRLF line |
    /// | `C-ONCE: text` | one read returns exactly `text` (escapes of `S-RAW`): sent in one write |
    /// | `QUIET: ms` | nothing arrives for `ms` milliseconds |
    /// | `EOF` | expect the client to close |
    /// | `EOF-OR-RESET` | expect the client to close, a reset counting as a close |
    /// | `SLEEP: ms` | stall for `ms` milliseconds |
    /// | `S-DRIP: n ms text` | send `text` (escapes of `S-RAW`) `n` bytes at a time, `ms` milliseconds apart |
    /// | `STARTTLS` | switch to TLS |
    /// | `CLOSE` / `CLOSE-ABRUPT` | close (with / without TLS close_notify) |
    /// | `HANDOFF` | drop every byte received and not yet read (the login hand-off) |
    ///
    /// Leading whitespace is ignored (so scripts can be indented in Rust
    /// source), as are blank lines and lines starting with `#`. After `S: `
    /// and `C: ` the rest of the line is taken literally, trailing spaces
    /// included (one space after the colon is the separator).
    pub fn parse(text: &str) -> Result<Script, Error> {
        let mut script = Script::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_start();
            if line.trim_end().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| Error::ScriptParse {
                line: line_no,
                message,
            };
            let (keyword, arg) = match line.split_once(':') {
                Some((k, rest)) if !k.contains(' ') => {
                    (k, Some(rest.strip_prefix(' ').unwrap_or(rest)))
                }
                _ => (line.trim_end(), None),
            };
            let need_arg = || arg.ok_or_else(|| err(format!("{keyword} needs ': argument'")));
            let step = match keyword {
                "S" => {
                    let mut bytes = need_arg()?.as_bytes().to_vec();
                    bytes.extend_from_slice(b"\r\n");
                    Step::Send(bytes)
                }
                "S-RAW" => Step::Send(unescape(need_arg()?).map_err(err)?),
                "C" => Step::Expect(Expect::Exact(need_arg()?.as_bytes().to_vec())),
                "C-RAW" => Step::Expect(Expect::Exact(unescape(need_arg()?).map_err(err)?)),
                "C-PREFIX" => Step::Expect(Expect::Prefix(need_arg()?.as_bytes().to_vec())),
                "C-ANY" if arg.is_none() => Step::Expect(Expect::AnyLine),
                "C-ONCE" => Step::ExpectOneRead(unescape(need_arg()?).map_err(err)?),
                "QUIET" => {
                    let ms: u64 = need_arg()?
                        .trim()
                        .parse()
                        .map_err(|e| err(format!("QUIET wants milliseconds: {e}")))?;
                    Step::Quiet(Duration::from_millis(ms))
                }
                "EOF" if arg.is_none() => Step::ExpectEof,
                "EOF-OR-RESET" if arg.is_none() => Step::ExpectEofOrReset,
                "S-DRIP" => {
                    let arg = need_arg()?;
                    let mut parts = arg.splitn(3, ' ');
                    let (Some(chunk), Some(ms), Some(text)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(err("S-DRIP wants: bytes-per-piece ms text".to_owned()));
                    };
                    let chunk: usize = chunk
                        .parse()
                        .map_err(|e| err(format!("S-DRIP wants bytes per piece: {e}")))?;
                    let ms: u64 = ms
                        .parse()
                        .map_err(|e| err(format!("S-DRIP wants milliseconds: {e}")))?;
                    if chunk == 0 {
                        return Err(err("S-DRIP: at least 1 byte per piece".to_owned()));
                    }
                    Step::Drip {
                        bytes: unescape(text).map_err(err)?,
                        chunk,
                        every: Duration::from_millis(ms),
                    }
                }
                "SLEEP" => {
                    let ms: u64 = need_arg()?
                        .trim()
                        .parse()
                        .map_err(|e| err(format!("SLEEP wants milliseconds: {e}")))?;
                    Step::Sleep(Duration::from_millis(ms))
                }
                "STARTTLS" if arg.is_none() => Step::StartTls,
                "CLOSE" if arg.is_none() => Step::Close,
                "CLOSE-ABRUPT" if arg.is_none() => Step::CloseAbruptly,
                "HANDOFF" if arg.is_none() => Step::HandOff,
                _ => return Err(err(format!("unknown directive {:?}", line.trim_end()))),
            };
            if matches!(script.steps.last(), Some(Step::Close | Step::CloseAbruptly)) {
                return Err(err("nothing can follow CLOSE".to_owned()));
            }
            script.steps.push(step);
            script.lines.push(Some(line_no));
        }
        Ok(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_all_directives() -> Result<(), Error> {
        let script = Script::parse(
            "
            # a comment
            S: +OK POP3 ready <1.2@x>
            C: USER alice
            S:
            S: +OK  trailing space 
            S-RAW: +OK\\r\\nline\\x2e\\n
            C-RAW: caf\\xc3\\xa9
            C-PREFIX: AUTH SCRAM-SHA-256 
            C-ANY
            C-ONCE: CAPA\\r\\nLIST\\r\\n
            QUIET: 300
            SLEEP: 25
            S-DRIP: 2 10 +OK\\r\\n
            STARTTLS
            C: PASS with: colon
            HANDOFF
            EOF
            EOF-OR-RESET
            CLOSE-ABRUPT
            ",
        )?;
        let expected = Script::new()
            .send("+OK POP3 ready <1.2@x>")
            .expect("USER alice")
            .send("")
            .send("+OK  trailing space ")
            .send_raw(b"+OK\r\nline.\n")
            .expect_bytes("café".as_bytes())
            .expect_prefix("AUTH SCRAM-SHA-256 ")
            .expect_any()
            .expect_one_read(b"CAPA\r\nLIST\r\n")
            .quiet(Duration::from_millis(300))
            .sleep(Duration::from_millis(25))
            .drip(b"+OK\r\n", 2, Duration::from_millis(10))
            .start_tls()
            .expect("PASS with: colon")
            .hand_off()
            .expect_eof()
            .expect_eof_or_reset()
            .close_abruptly();
        assert_eq!(script.steps(), expected.steps());
        assert_eq!(script.source_line(0), Some(3));
        assert_eq!(script.source_line(1), Some(4));
        Ok(())
    }

    #[test]
    fn parse_errors_name_the_line() {
        let e = Script::parse("S: +OK\nX: what").expect_err("unknown directive");
        assert!(matches!(e, Error::ScriptParse { line: 2, .. }), "{e}");
        let e = Script::parse("SLEEP: soon").expect_err("bad number");
        assert!(matches!(e, Error::ScriptParse { line: 1, .. }), "{e}");
        let e = Script::parse("S-RAW: \\q").expect_err("bad escape");
        assert!(matches!(e, Error::ScriptParse { line: 1, .. }), "{e}");
        let e = Script::parse("CLOSE\nS: +OK").expect_err("after close");
        assert!(matches!(e, Error::ScriptParse { line: 2, .. }), "{e}");
        assert!(Script::parse("C").is_err());
        assert!(Script::parse("STARTTLS: now").is_err());
    }

    #[test]
    fn expect_requires_crlf() {
        let e = Expect::Exact(b"QUIT".to_vec());
        assert!(e.matches(b"QUIT\r\n"));
        assert!(!e.matches(b"QUIT\n"));
        assert!(!e.matches(b"QUIT"));
        assert!(!e.matches(b"quit\r\n"));
        assert!(Expect::Prefix(b"AUTH ".to_vec()).matches(b"AUTH PLAIN\r\n"));
        assert!(Expect::AnyLine.matches(b"\r\n"));
        assert!(!Expect::AnyLine.matches(b"x\n"));
    }
}
