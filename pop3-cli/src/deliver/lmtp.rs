//! An LMTP server (RFC 2033), over TCP (`HOST:PORT`) or a unix socket (a path).
//!
//! Per message: `MAIL FROM:<sender>` (the envelope sender from Return-Path, else `<>`),
//! `RCPT TO:<recipient>`, `DATA`, the message with CRLF line ends and dot-stuffed, `.`. The
//! message counts as delivered only when the reply for the recipient after the final dot is
//! 2xx (250). A 4xx at any step is temporary: the message stays on the server, unrecorded,
//! for the next run. A 5xx is permanent: the message stays on the server, unrecorded, and is
//! reported as a permanent delivery failure. Each delivered message is recorded before the
//! next one is sent (at most one duplicate per crash). A broken connection or a reply that is
//! not SMTP stops the account.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Ledger, Outcome, Staged, Target, envelope_sender, unnamed_stage};
use crate::error::CliError;
use crate::state::State;

/// An SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5); a little slack.
const REPLY_LINE_LIMIT: u64 = 2048;
/// At most this many lines in one (multi-line) reply.
const REPLY_LINES_LIMIT: usize = 100;

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LmtpAddr {
    /// `HOST:PORT`.
    Tcp(String),
    /// A unix socket path (anything with a `/`).
    Unix(PathBuf),
}

impl LmtpAddr {
    /// `HOST:PORT` or a socket path.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.contains('/') {
            return Ok(Self::Unix(PathBuf::from(text)));
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Self::Tcp(text.to_owned()))
            }
            _ => Err(format!(
                "{text:?} is neither HOST:PORT nor a unix socket path (one with a /)"
            )),
        }
    }
}

impl std::fmt::Display for LmtpAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Whether `rcpt` can go into `RCPT TO:<...>`: printable ASCII without spaces and `<>`.
pub(crate) fn valid_recipient(rcpt: &str) -> bool {
    !rcpt.is_empty()
        && rcpt.len() <= 254
        && rcpt
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// One reply: its code and its text (lines joined with " / ").
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn class(&self) -> u16 {
        self.code / 100
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An open LMTP session.
struct Session {
    reader: BufReader<Box<dyn Stream>>,
    writer: BufWriter<Box<dyn Stream>>,
}

impl Session {
    fn connect(addr: &LmtpAddr, timeout: Duration) -> io::Result<Self> {
        let (a, b): (Box<dyn Stream>, Box<dyn Stream>) = match addr {
            LmtpAddr::Tcp(text) => {
                let mut last = None;
                let mut stream = None;
                for sa in std::net::ToSocketAddrs::to_socket_addrs(text.as_str())? {
                    match TcpStream::connect_timeout(&sa, timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = stream.ok_or_else(|| {
                    last.unwrap_or_else(|| io::Error::other("the name resolves to no address"))
                })?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                stream.set_nodelay(true)?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
            LmtpAddr::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                (Box::new(stream.try_clone()?), Box::new(stream))
            }
        };
        Ok(Self {
            reader: BufReader::new(a),
            writer: BufWriter::with_capacity(64 * 1024, b),
        })
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut texts = Vec::new();
        let mut code = None;
        for _ in 0..REPLY_LINES_LIMIT {
            let mut line = Vec::new();
            (&mut self.reader)
                .take(REPLY_LINE_LIMIT)
                .read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the LMTP server closed the connection",
                ));
            }
            if !line.ends_with(b"\n") {
                return Err(bad_reply("a reply line longer than 2048 octets"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let bytes = line.as_bytes();
            if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
                return Err(bad_reply(&format!("not an SMTP reply: {line:?}")));
            }
            let this: u16 = line[..3].parse().map_err(|_| bad_reply(line))?;
            if code.is_some_and(|c| c != this) || !(200..600).contains(&this) {
                return Err(bad_reply(&format!("not an SMTP reply: {line:?}")));
            }
            code = Some(this);
            texts.push(line.get(4..).unwrap_or("").to_owned());
            match bytes.get(3) {
                None | Some(b' ') => {
                    return Ok(Reply {
                        code: this,
                        text: texts.join(" / "),
                    });
                }
                Some(b'-') => {}
                Some(_) => return Err(bad_reply(&format!("not an SMTP reply: {line:?}"))),
            }
        }
        Err(bad_reply("a reply of more than 100 lines"))
    }

    fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()?;
        self.read_reply()
    }

    /// The message, CRLF and dot-stuffed, then the final dot.
    fn send_data(&mut self, staged: &Staged) -> io::Result<()> {
        let mut reader = staged.reader()?;
        let mut line = Vec::with_capacity(1024);
        let mut at_start = true;
        let mut last_was_lf = true;
        loop {
            line.clear();
            let n = (&mut reader).take(64 * 1024).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if at_start && line.first() == Some(&b'.') {
                self.writer.write_all(b".")?;
            }
            if line.ends_with(b"\n") {
                let body = &line[..line.len() - 1];
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                self.writer.write_all(body)?;
                self.writer.write_all(b"\r\n")?;
                at_start = true;
                last_was_lf = true;
            } else {
                self.writer.write_all(&line)?;
                at_start = false;
                last_was_lf = false;
            }
        }
        if !last_was_lf {
            self.writer.write_all(b"\r\n")?;
        }
        self.writer.write_all(b".\r\n")?;
        self.writer.flush()
    }
}

fn bad_reply(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("LMTP: {what}"))
}

/// An LMTP target.
pub(crate) struct Lmtp {
    addr: LmtpAddr,
    rcpt: String,
    spool: PathBuf,
    timeout: Duration,
    session: std::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for Lmtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lmtp")
            .field("addr", &self.addr)
            .field("rcpt", &self.rcpt)
            .field(
                "connected",
                &self.session.lock().map(|s| s.is_some()).unwrap_or(false),
            )
            .finish_non_exhaustive()
    }
}

/// The host name we give in LHLO.
fn lhlo_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

impl Lmtp {
    /// An LMTP target delivering to `rcpt` at `addr`.
    pub(crate) fn new(addr: LmtpAddr, rcpt: &str, spool: &Path, timeout: Duration) -> Self {
        Self {
            addr,
            rcpt: rcpt.to_owned(),
            spool: spool.to_owned(),
            timeout,
            session: std::sync::Mutex::new(None),
        }
    }

    fn session<'a>(&self, slot: &'a mut Option<Session>) -> Result<&'a mut Session, CliError> {
        if slot.is_none() {
            let shown = format!("LMTP {}", self.addr);
            let fail = |e: io::Error| CliError::local(&shown, &e);
            let mut session = Session::connect(&self.addr, self.timeout).map_err(fail)?;
            let greeting = session.read_reply().map_err(fail)?;
            if greeting.code != 220 {
                return Err(CliError::failure(format!(
                    "{shown}: greeting {greeting}; nothing was delivered"
                )));
            }
            let lhlo = session
                .command(&format!("LHLO {}", lhlo_name()))
                .map_err(fail)?;
            if lhlo.class() != 2 {
                return Err(CliError::failure(format!(
                    "{shown}: LHLO answered {lhlo}; nothing was delivered"
                )));
            }
            *slot = Some(session);
        }
        slot.as_mut()
            .ok_or_else(|| CliError::failure("no LMTP session"))
    }

    /// One transaction: `Ok(None)` delivered, `Ok(Some(reply))` refused by `reply`.
    fn transaction(
        &self,
        slot: &mut Option<Session>,
        staged: &Staged,
    ) -> Result<Option<(String, Reply)>, CliError> {
        let sender = envelope_sender(staged)
            .map_err(|e| CliError::local(staged.label(), &e))?
            .unwrap_or_default();
        let rcpt = self.rcpt.clone();
        let shown = format!("LMTP {}", self.addr);
        let session = self.session(slot)?;
        let result = (|| -> io::Result<Option<(String, Reply)>> {
            let steps = [
                ("MAIL FROM", format!("MAIL FROM:<{sender}>")),
                ("RCPT TO", format!("RCPT TO:<{rcpt}>")),
                ("DATA", "DATA".to_owned()),
            ];
            for (step, line) in steps {
                let reply = session.command(&line)?;
                let expected = if step == "DATA" { 3 } else { 2 };
                if reply.class() != expected {
                    if step != "DATA" || reply.class() != 2 {
                        let _ = session.command("RSET")?;
                    }
                    return Ok(Some((step.to_owned(), reply)));
                }
            }
            session.send_data(staged)?;
            let reply = session.read_reply()?;
            if reply.class() == 2 {
                Ok(None)
            } else {
                Ok(Some(("the message".to_owned(), reply)))
            }
        })();
        result.map_err(|e| {
            *slot = None;
            CliError::local(&shown, &e)
        })
    }
}

impl Drop for Lmtp {
    fn drop(&mut self) {
        if let Ok(Some(session)) = self.session.get_mut().map(Option::as_mut) {
            let _ = session.command("QUIT");
        }
    }
}

impl Target for Lmtp {
    fn describe(&self) -> String {
        format!("LMTP {} for {}", self.addr, self.rcpt)
    }

    fn recover(&mut self, _state: &mut State) -> Result<usize, CliError> {
        // An LMTP server cannot be asked: a message it took but that was not recorded is
        // delivered again (the documented bound: one duplicate per crash).
        Ok(0)
    }

    fn stage(&self, _name: &str) -> io::Result<File> {
        unnamed_stage(&self.spool)
    }

    fn discard(&self, _name: &str) {}

    fn commit(&self, batch: &[Staged], ledger: &mut dyn Ledger) -> Result<Vec<Outcome>, CliError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut slot = self
            .session
            .lock()
            .map_err(|_| CliError::failure("the LMTP session was poisoned"))?;
        for staged in batch {
            match self.transaction(&mut slot, staged)? {
                None => {
                    crate::test_hook::pause("delivered");
                    ledger.record(&[staged])?;
                    outcomes.push(Outcome::Delivered);
                }
                Some((step, reply)) if reply.class() == 4 => {
                    let why = format!("the LMTP server answered {step} with {reply} (temporary)");
                    tracing::warn!(target: "pop3_cli", "{}: not delivered, left on the server for the next run: {why}", staged.label());
                    outcomes.push(Outcome::Temporary(why));
                }
                Some((step, reply)) => {
                    let why = format!("the LMTP server answered {step} with {reply} (permanent)");
                    tracing::warn!(target: "pop3_cli", "{}: permanent delivery failure, left on the server: {why}", staged.label());
                    outcomes.push(Outcome::Permanent(why));
                }
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::mda::staged_bytes;

    struct Recorder(Vec<String>);
    impl Ledger for Recorder {
        fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError> {
            self.0
                .extend(delivered.iter().filter_map(|s| s.uid.clone()));
            Ok(())
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            LmtpAddr::parse("127.0.0.1:24"),
            Ok(LmtpAddr::Tcp("127.0.0.1:24".into()))
        );
        assert_eq!(
            LmtpAddr::parse("/run/dovecot/lmtp"),
            Ok(LmtpAddr::Unix("/run/dovecot/lmtp".into()))
        );
        assert!(LmtpAddr::parse("host").is_err());
        assert!(LmtpAddr::parse("host:99999").is_err());
        assert!(valid_recipient("alice@example.test"));
        assert!(!valid_recipient("a>b") && !valid_recipient("a b") && !valid_recipient(""));
    }

    /// A one-connection scripted LMTP server: answers each line it reads with the next reply
    /// of `replies` (the DATA body is read up to the final dot first). Returns what it read.
    fn scripted(replies: Vec<&'static str>) -> (LmtpAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = LmtpAddr::Tcp(listener.local_addr().expect("addr").to_string());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut seen = Vec::new();
            let mut replies = replies.into_iter();
            writer.write_all(b"220 test LMTP\r\n").expect("write");
            let mut in_data = false;
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    break;
                }
                seen.extend_from_slice(&line);
                if in_data && line != b".\r\n" {
                    continue;
                }
                in_data = false;
                let Some(reply) = replies.next() else { break };
                writer.write_all(reply.as_bytes()).expect("write");
                if line == b"DATA\r\n" && reply.starts_with('3') {
                    in_data = true;
                }
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn transcript_and_reply_classes() {
        let (addr, server) = scripted(vec![
            "250-test\r\n250 PIPELINING\r\n",
            // 1: delivered
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 2.0.0 <alice@x> saved\r\n",
            // 2: a temporary failure at RCPT
            "250 ok\r\n",
            "452 4.2.2 over quota\r\n",
            "250 reset\r\n",
            // 3: a permanent failure after the data
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "554 5.6.0 rejected\r\n",
            "221 bye\r\n",
        ]);
        let dir = tempfile::tempdir().expect("tempdir");
        let lmtp = Lmtp::new(addr, "alice@x", dir.path(), Duration::from_secs(10));
        let batch = vec![
            staged_bytes(
                dir.path(),
                1,
                b"Return-Path: <s@x.example>\n\n.dot\n..two\nlast",
            ),
            staged_bytes(dir.path(), 2, b"Subject: b\n\nb\n"),
            staged_bytes(dir.path(), 3, b"Subject: c\n\n.\n"),
        ];
        let mut recorder = Recorder(Vec::new());
        let outcomes = lmtp.commit(&batch, &mut recorder).expect("commit");
        drop(lmtp);
        assert_eq!(outcomes[0], Outcome::Delivered);
        assert!(
            matches!(&outcomes[1], Outcome::Temporary(w) if w.contains("452")),
            "{outcomes:?}"
        );
        assert!(
            matches!(&outcomes[2], Outcome::Permanent(w) if w.contains("554")),
            "{outcomes:?}"
        );
        assert_eq!(recorder.0, ["uid-1"]);
        let seen = String::from_utf8(server.join().expect("server")).expect("utf-8");
        let host = lhlo_name();
        assert_eq!(
            seen,
            format!(
                "LHLO {host}\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@x>\r\nDATA\r\n\
                 Return-Path: <s@x.example>\r\n\r\n..dot\r\n...two\r\nlast\r\n.\r\n\
                 MAIL FROM:<>\r\nRCPT TO:<alice@x>\r\nRSET\r\n\
                 MAIL FROM:<>\r\nRCPT TO:<alice@x>\r\nDATA\r\nSubject: c\r\n\r\n..\r\n.\r\n\
                 QUIT\r\n"
            )
        );
    }

    #[test]
    fn garbage_replies_stop_the_account() {
        for garbage in ["hello\r\n", "250-a\r\n251 b\r\n", "99 x\r\n"] {
            let (addr, _server) = scripted(vec![garbage]);
            let dir = tempfile::tempdir().expect("tempdir");
            let lmtp = Lmtp::new(addr, "alice@x", dir.path(), Duration::from_secs(5));
            let batch = vec![staged_bytes(dir.path(), 1, b"Subject: a\n\na\n")];
            let mut recorder = Recorder(Vec::new());
            let error = lmtp.commit(&batch, &mut recorder).expect_err("garbage");
            assert!(error.to_string().contains("not an SMTP reply"), "{error}");
            assert!(recorder.0.is_empty());
        }
    }
}
