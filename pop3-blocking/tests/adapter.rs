//! The adapter against canned server bytes (an in-memory stream) and tiny local TCP servers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pop3_blocking::pop3_proto::{CommandKind, EnqueueError, Phase, ProtocolError};
use pop3_blocking::{
    Connection, Error, LoginMethod, Options, ResponseCode, RetrEvent, ScanListing, Security, Stat,
    TlsOptions, UniqueIdListing,
};

// ---- an in-memory server: each reply is released once the client has sent the lines before it ----

#[derive(Clone, Default)]
struct Wire(Arc<Mutex<Vec<u8>>>);

impl Wire {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A canned conversation: `greeting`, then for each step the client lines it expects and the
/// reply it gives once they arrived. Running out of steps reads as EOF; waiting for lines that
/// never come reads as a timeout (a stalled server).
struct Canned {
    steps: VecDeque<(usize, Vec<u8>)>,
    lines_needed: usize,
    pending: Vec<u8>,
    wire: Wire,
    /// How many bytes at most one read returns (to exercise splits).
    max_read: usize,
}

impl Canned {
    fn new(greeting: &str) -> Self {
        Self {
            steps: VecDeque::new(),
            lines_needed: 0,
            pending: greeting.as_bytes().to_vec(),
            wire: Wire::default(),
            max_read: usize::MAX,
        }
    }

    /// After `lines` more client lines, send `reply`.
    fn then(mut self, lines: usize, reply: &str) -> Self {
        self.steps.push_back((lines, reply.as_bytes().to_vec()));
        self
    }

    fn max_read(mut self, n: usize) -> Self {
        self.max_read = n;
        self
    }

    fn wire(&self) -> Wire {
        self.wire.clone()
    }
}

impl Read for Canned {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let Some((lines, _)) = self.steps.front() else {
                return Ok(0);
            };
            let sent = self
                .wire
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            if sent < self.lines_needed + lines {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.lines_needed += lines;
            self.pending = self.steps.pop_front().unwrap().1;
        }
        let n = self.pending.len().min(buf.len()).min(self.max_read);
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl Write for Canned {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wire.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const GREETING: &str = "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n";
const CAPA_USER: &str = "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n";
const CAPA_PIPELINING: &str = "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\nRESP-CODES\r\n.\r\n";

fn plaintext() -> Options {
    Options::default().allow_plaintext(true)
}

/// Greeting, CAPA, USER, PASS, CAPA: a logged-in session over `stream`.
fn logged_in(stream: Canned) -> Connection<Canned> {
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    pop.user("alice").unwrap();
    pop.pass("hunter2").unwrap();
    pop
}

fn session(capa: &str) -> Canned {
    Canned::new(GREETING)
        .then(1, capa)
        .then(1, "+OK alice\r\n")
        .then(1, "+OK maildrop ready\r\n")
        .then(1, capa)
}

const LOGIN_WIRE: &str = "CAPA\r\nUSER alice\r\nPASS hunter2\r\nCAPA\r\n";
/// A login and nothing after it: the CAPA asked after login waits for the next command.
const LOGIN_ONLY_WIRE: &str = "CAPA\r\nUSER alice\r\nPASS hunter2\r\n";

// ---- the method set ----

#[test]
fn every_method_against_canned_replies() {
    let stream = session(CAPA_USER)
        .then(1, "+OK 2 320\r\n")
        .then(1, "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n")
        .then(1, "+OK 2 200\r\n")
        .then(
            1,
            "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n",
        )
        .then(1, "+OK 2 QhdPYR:00WBw1Ph7x7\r\n")
        .then(
            1,
            "+OK 120 octets\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n",
        )
        .then(1, "+OK\r\nSubject: hi\r\n\r\n.\r\n")
        .then(1, "+OK marked\r\n")
        .then(1, "+OK reset\r\n")
        .then(1, "+OK\r\n")
        .then(1, "+OK bye\r\n");
    let wire = stream.wire();
    let mut pop = logged_in(stream);
    assert_eq!(
        pop.greeting().text,
        "POP3 ready <1896.697170952@dbc.mtview.ca.us>"
    );
    assert!(pop.greeting().apop);
    assert_eq!(pop.phase(), Phase::Transaction);
    // The CAPA asked after login goes out with the next command.
    assert_eq!(pop.capabilities(), None);
    assert_eq!(
        pop.stat().unwrap(),
        Stat {
            count: 2,
            size: 320
        }
    );
    assert!(pop.capabilities().unwrap().top);
    assert_eq!(
        pop.list().unwrap(),
        vec![
            ScanListing { msg: 1, size: 120 },
            ScanListing { msg: 2, size: 200 }
        ]
    );
    assert_eq!(pop.list_one(2).unwrap(), ScanListing { msg: 2, size: 200 });
    assert_eq!(
        pop.uidl().unwrap(),
        vec![
            UniqueIdListing {
                msg: 1,
                uid: "whqtswO00WBw418f9t5JxYwZ".into()
            },
            UniqueIdListing {
                msg: 2,
                uid: "QhdPYR:00WBw1Ph7x7".into()
            },
        ]
    );
    assert_eq!(pop.uidl_one(2).unwrap().uid, "QhdPYR:00WBw1Ph7x7");
    let mut message = Vec::new();
    let octets = pop.retr(1, &mut message).unwrap();
    assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
    assert_eq!(octets, message.len() as u64);
    assert_eq!(pop.top_vec(1, 0).unwrap(), b"Subject: hi\r\n\r\n");
    assert_eq!(pop.dele(1).unwrap().text, "marked");
    assert_eq!(pop.rset().unwrap().text, "reset");
    pop.noop().unwrap();
    assert_eq!(pop.quit().unwrap().text, "bye");
    assert_eq!(
        wire.text(),
        format!(
            "{LOGIN_WIRE}STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 2\r\nRETR 1\r\nTOP 1 0\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n"
        )
    );
}

#[test]
fn replies_split_into_single_bytes() {
    let stream = session(CAPA_USER)
        .then(1, "+OK 120 octets\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n")
        .then(1, "+OK bye\r\n")
        .max_read(1);
    let mut pop = logged_in(stream);
    assert_eq!(pop.retr_vec(1).unwrap(), b"Subject: hi\r\n\r\n.dot\r\n");
    pop.quit().unwrap();
}

#[test]
fn authorization_commands() {
    let stream = Canned::new(GREETING)
        .then(1, "-ERR\r\n")
        .then(
            1,
            "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\nUTF8\r\nLANG\r\n.\r\n",
        )
        .then(1, "+OK\r\nen English\r\nde Deutsch\r\n.\r\n")
        .then(1, "+OK Sprache geaendert\r\n")
        .then(1, "+OK UTF8 enabled\r\n")
        .then(1, "+OK mrose's maildrop has 2 messages\r\n")
        .then(1, "-ERR [SYS/TEMP] no CAPA now\r\n");
    let wire = stream.wire();
    // APOP without TLS needs plaintext allowed (its digest can be cracked offline).
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    // -ERR to the automatic CAPA: treated as "no extensions" (the missing_capa quirk).
    assert_eq!(pop.capabilities().map(|c| c.user), Some(false));
    let capabilities = pop.capa().unwrap();
    assert!(capabilities.stls && capabilities.user && capabilities.lang);
    assert_eq!(pop.capabilities(), Some(&capabilities));
    assert_eq!(
        pop.lang().unwrap(),
        vec![
            ("en".into(), "English".into()),
            ("de".into(), "Deutsch".into())
        ]
    );
    assert_eq!(pop.set_lang("de").unwrap().text, "Sprache geaendert");
    pop.utf8().unwrap();
    assert!(pop.is_utf8());
    pop.apop("mrose", "tanstaaf").unwrap();
    assert_eq!(pop.phase(), Phase::Transaction);
    drop(pop);
    assert_eq!(
        wire.text(),
        "CAPA\r\nCAPA\r\nLANG\r\nLANG de\r\nUTF8\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    );
}

#[test]
fn rpop_after_user() {
    let stream = Canned::new("+OK\r\n")
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER);
    let wire = stream.wire();
    let mut pop = Connection::new(stream, &Options::default()).unwrap();
    pop.user("bob").unwrap();
    pop.rpop("bob").unwrap();
    assert_eq!(pop.phase(), Phase::Transaction);
    drop(pop);
    assert_eq!(wire.text(), "CAPA\r\nUSER bob\r\nRPOP bob\r\n");
}

// ---- -ERR and misuse ----

#[test]
fn err_replies_are_typed_and_not_fatal() {
    let stream = session(CAPA_PIPELINING)
        .then(1, "-ERR [SYS/TEMP] try later\r\n")
        .then(1, "-ERR no such message\r\n")
        .then(1, "+OK\r\n");
    let mut pop = logged_in(stream);
    match pop.list_one(7) {
        Err(Error::Server(e)) => {
            assert_eq!(e.command, CommandKind::List);
            assert_eq!(e.code, Some(ResponseCode::SysTemp));
            assert_eq!(e.text, "try later");
            assert_eq!(
                e.to_string(),
                "the server refused LIST: -ERR [SYS/TEMP] try later"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(pop.retr_vec(9), Err(Error::Server(e)) if e.code.is_none()));
    pop.noop().unwrap();
}

#[test]
fn refused_password_is_a_server_error() {
    let stream = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "-ERR [AUTH] wrong\r\n");
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    pop.user("alice").unwrap();
    assert!(
        matches!(pop.pass("nope"), Err(Error::Server(e)) if e.code == Some(ResponseCode::Auth))
    );
    assert_eq!(pop.phase(), Phase::Authorization);
}

#[test]
fn greeting_err_is_refused() {
    let stream = Canned::new("-ERR [IN-USE] go away\r\n");
    match Connection::new(stream, &Options::default()) {
        Err(Error::GreetingRefused { code, text }) => {
            assert_eq!(code, Some(ResponseCode::InUse));
            assert_eq!(text, "go away");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn misuse_sends_nothing() {
    let stream = Canned::new(GREETING).then(1, CAPA_USER);
    let wire = stream.wire();
    let mut pop = Connection::new(stream, &Options::default()).unwrap();
    // No password without TLS unless allowed.
    assert!(matches!(
        pop.pass("hunter2"),
        Err(Error::Usage(EnqueueError::CleartextCredentials {
            command: CommandKind::Pass
        }))
    ));
    assert!(matches!(
        pop.login("alice", "hunter2"),
        Err(Error::Login(_))
    ));
    assert!(matches!(
        pop.stat(),
        Err(Error::Usage(EnqueueError::WrongPhase { .. }))
    ));
    assert!(matches!(
        pop.user("a\r\nDELE 1"),
        Err(Error::Usage(EnqueueError::ForbiddenByte { .. }))
    ));
    assert_eq!(wire.text(), "CAPA\r\n");
}

// ---- login ----

#[test]
fn login_prefers_cram_md5_without_tls() {
    let stream = Canned::new(GREETING)
        .then(1, "+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\n.\r\n")
        .then(
            1,
            "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n",
        )
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER);
    let wire = stream.wire();
    // Without TLS, CRAM-MD5 needs plaintext allowed (an exchange can be cracked offline).
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    assert_eq!(
        pop.login("tim", "tanstaaftanstaaf").unwrap(),
        LoginMethod::CramMd5
    );
    drop(pop);
    // RFC 2195's example exchange.
    assert_eq!(
        wire.text(),
        "CAPA\r\nAUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    );
}

/// The client nonce of one `login()` by SCRAM-SHA-256 (RFC 5802 §5.1 `r=`).
fn scram_login_nonce() -> String {
    let stream = Canned::new(GREETING)
        .then(1, "+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\n.\r\n")
        .then(1, "-ERR [AUTH] no\r\n");
    let wire = stream.wire();
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    assert!(
        matches!(pop.login("user", "pencil"), Err(Error::Server(e)) if e.command == CommandKind::Auth)
    );
    drop(pop);
    let text = wire.text();
    let line = text.lines().nth(1).unwrap();
    let initial = line.strip_prefix("AUTH SCRAM-SHA-256 ").unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(initial)
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    decoded.strip_prefix("n,,n=user,r=").unwrap().to_owned()
}

#[test]
fn login_uses_scram_with_a_fresh_random_nonce_each_time() {
    let nonces: Vec<String> = (0..3).map(|_| scram_login_nonce()).collect();
    for nonce in &nonces {
        // 18 random bytes in base64, printable and without the ',' RFC 5802 forbids.
        assert_eq!(nonce.len(), 24, "{nonce}");
        assert!(
            nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        );
    }
    assert_ne!(nonces[0], nonces[1]);
    assert_ne!(nonces[1], nonces[2]);
    assert_ne!(nonces[0], nonces[2]);
}

#[test]
fn login_falls_back_to_user_pass_when_allowed() {
    let stream = session(CAPA_USER);
    let wire = stream.wire();
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    assert_eq!(
        pop.login("alice", "hunter2").unwrap(),
        LoginMethod::UserPass
    );
    drop(pop);
    assert_eq!(wire.text(), LOGIN_ONLY_WIRE);
}

#[test]
fn login_uses_apop_only_when_asked() {
    let stream = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER);
    let wire = stream.wire();
    let options = Options::default().allow_apop(true).allow_plaintext(true);
    let mut pop = Connection::new(stream, &options).unwrap();
    assert_eq!(pop.login("mrose", "tanstaaf").unwrap(), LoginMethod::Apop);
    drop(pop);
    assert!(
        wire.text()
            .contains("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n")
    );
    let stream = session(CAPA_USER);
    let wire = stream.wire();
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    assert_eq!(
        pop.login("alice", "hunter2").unwrap(),
        LoginMethod::UserPass
    );
    drop(pop);
    assert_eq!(wire.text(), LOGIN_ONLY_WIRE);
}

// ---- batches ----

#[test]
fn retr_many_pipelines_and_reports_refusals() {
    let stream = session(CAPA_PIPELINING)
        .then(
            3,
            "+OK\r\none\r\n.\r\n-ERR [SYS/TEMP] locked\r\n+OK\r\nthree\r\n..\r\n.\r\n",
        )
        .then(3, "+OK\r\n-ERR no such message\r\n+OK\r\n");
    let wire = stream.wire();
    let mut pop = logged_in(stream);
    let mut seen: Vec<String> = Vec::new();
    let mut body = Vec::new();
    pop.retr_many(&[1, 2, 3], |msg, event| {
        match event {
            RetrEvent::Start => assert!(body.is_empty()),
            RetrEvent::Chunk(c) => body.extend_from_slice(c),
            RetrEvent::End { octets } => {
                seen.push(format!(
                    "{msg}:{} ({octets})",
                    String::from_utf8_lossy(&body)
                ));
                body.clear();
            }
            RetrEvent::Refused(e) => seen.push(format!("{msg}:refused {:?}", e.code)),
            _ => unreachable!(),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            "1:one\r\n (5)",
            "2:refused Some(SysTemp)",
            "3:three\r\n.\r\n (10)"
        ]
    );
    let results = pop.dele_many(&[1, 2, 3]).unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err().text, "no such message");
    drop(pop);
    // All three commands of each batch went out before the first reply was read.
    assert_eq!(
        wire.text(),
        format!("{LOGIN_WIRE}RETR 1\r\nRETR 2\r\nRETR 3\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\n")
    );
}

#[test]
fn batches_validate_before_sending() {
    let stream = session(CAPA_PIPELINING);
    let wire = stream.wire();
    let mut pop = logged_in(stream);
    assert!(matches!(
        pop.dele_many(&[1, 0]),
        Err(Error::Usage(EnqueueError::MessageNumberZero))
    ));
    assert!(pop.dele_many(&[]).unwrap().is_empty());
    pop.retr_many(&[], |_, _| Ok(())).unwrap();
    drop(pop);
    assert_eq!(wire.text(), LOGIN_ONLY_WIRE);
}

#[test]
fn a_failing_sink_leaves_the_session_in_step() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let stream = session(CAPA_USER)
        .then(1, "+OK\r\nline 1\r\nline 2\r\n.\r\n")
        .then(1, "+OK\r\nnext\r\n.\r\n")
        .then(1, "+OK\r\n");
    let mut pop = logged_in(stream);
    assert!(matches!(pop.retr(1, &mut Broken), Err(Error::Io(e)) if e.to_string() == "disk full"));
    assert!(!pop.is_poisoned());
    let mut calls = 0;
    let result = pop.retr_many(&[2], |_, _| {
        calls += 1;
        Err(io::Error::other("stop"))
    });
    assert!(matches!(result, Err(Error::Io(_))));
    assert_eq!(calls, 1);
    pop.noop().unwrap();
}

// ---- fatal errors ----

#[test]
fn disconnect_in_the_middle_of_retr_poisons() {
    let stream = session(CAPA_USER).then(1, "+OK\r\nSubject: cut\r\n");
    let mut pop = logged_in(stream);
    let mut sink = Vec::new();
    match pop.retr(1, &mut sink) {
        Err(Error::Protocol(ProtocolError::UnexpectedEof {
            command: CommandKind::Retr,
        })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sink, b"Subject: cut\r\n");
    assert!(pop.is_poisoned());
    assert!(matches!(pop.noop(), Err(Error::Closed)));
}

#[test]
fn stalled_stream_times_out_and_poisons() {
    // The canned server waits for a line that never comes: its read says WouldBlock, which
    // is what a socket with a read timeout reports.
    let stream = Canned::new(GREETING).then(1, CAPA_USER).then(2, "+OK\r\n");
    let mut pop = Connection::new(stream, &Options::default()).unwrap();
    let error = pop.user("alice").unwrap_err();
    assert_eq!(
        error.to_string(),
        "timed out after 60 s waiting for the reply to USER"
    );
    assert!(matches!(pop.noop(), Err(Error::Unusable(_))));
}

#[test]
fn protocol_violation_poisons() {
    let stream = session(CAPA_USER).then(1, "+OK two\r\n");
    let mut pop = logged_in(stream);
    assert!(matches!(
        pop.stat(),
        Err(Error::Protocol(ProtocolError::Malformed { .. }))
    ));
    assert!(matches!(pop.stat(), Err(Error::Closed)));
}

// ---- QUIT and drop ----

#[test]
fn drop_without_quit_sends_no_quit() {
    let stream = session(CAPA_USER).then(1, "+OK marked\r\n");
    let wire = stream.wire();
    let mut pop = logged_in(stream);
    pop.dele(1).unwrap();
    drop(pop);
    assert_eq!(wire.text(), format!("{LOGIN_WIRE}DELE 1\r\n"));
}

#[test]
fn quit_err_means_not_committed() {
    let stream = session(CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "-ERR [SYS/PERM] some deleted messages not removed\r\n");
    let mut pop = logged_in(stream);
    pop.dele(1).unwrap();
    match pop.quit() {
        Err(Error::Server(e)) => {
            assert_eq!(e.command, CommandKind::Quit);
            assert_eq!(e.code, Some(ResponseCode::SysPerm));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn quit_before_login() {
    let stream = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK bye\r\n");
    let wire = stream.wire();
    let pop = Connection::new(stream, &Options::default()).unwrap();
    assert_eq!(pop.quit().unwrap().text, "bye");
    assert_eq!(wire.text(), "CAPA\r\nQUIT\r\n");
}

#[test]
fn bare_lf_server() {
    let stream = Canned::new("+OK hi\n")
        .then(1, "+OK\nUSER\n.\n")
        .then(1, "+OK\n")
        .then(1, "+OK\n")
        .then(1, "+OK\nUSER\n.\n")
        .then(1, "+OK\nline\n..dot\n.\n");
    let mut pop = logged_in(stream);
    assert_eq!(pop.retr_vec(1).unwrap(), b"line\n.dot\n");
}

// ---- tracing ----

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn tracing_logs_one_line_per_command_and_reply_with_secrets_redacted() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let stream = session(CAPA_USER).then(1, "+OK 1 5\r\n");
        let mut pop = logged_in(stream);
        pop.stat().unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains("hunter2"), "{log}");
    for line in [
        "S: +OK POP3 ready",
        "C: USER alice",
        "C: PASS <redacted>",
        "S: +OK maildrop ready",
        "C: STAT",
        "S: +OK 1 5",
    ] {
        assert!(log.contains(line), "{line} missing in\n{log}");
    }
}

#[test]
fn debug_output_has_no_secret() {
    let stream = session(CAPA_USER);
    let pop = logged_in(stream);
    let debug = format!("{pop:?} {:?}", Options::default());
    assert!(!debug.contains("hunter2"), "{debug}");
}

// ---- TCP: timeouts, STLS ----

fn read_line(stream: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while stream.read(&mut byte).unwrap_or(0) == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

/// A one-connection server on 127.0.0.1 running `serve` on its thread.
fn serve(serve: impl FnOnce(TcpStream) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve(stream);
    });
    (port, handle)
}

fn short_timeout() -> Options {
    Options::default().timeout(Duration::from_millis(300))
}

#[test]
fn silent_server_times_out_at_the_greeting() {
    let (port, server) = serve(|mut s| {
        // Hold the connection open, silent, until the client gives up.
        let _ = s.read(&mut [0; 16]);
    });
    let started = std::time::Instant::now();
    let result = Connection::connect("127.0.0.1", port, Security::None, &short_timeout());
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.join().unwrap();
}

#[test]
fn server_stalling_mid_session_times_out() {
    let (port, server) = serve(|mut s| {
        s.write_all(b"+OK\r\n").unwrap();
        assert_eq!(read_line(&mut s), "CAPA\r\n");
        s.write_all(CAPA_USER.as_bytes()).unwrap();
        assert_eq!(read_line(&mut s), "USER alice\r\n");
        s.write_all(b"+OK\r\n").unwrap();
        assert_eq!(read_line(&mut s), "PASS x\r\n");
        // Stall: half a reply, then nothing.
        s.write_all(b"+OK ").unwrap();
        let _ = read_line(&mut s);
    });
    let mut pop = Connection::connect(
        "127.0.0.1",
        port,
        Security::None,
        &short_timeout().allow_plaintext(true),
    )
    .unwrap();
    pop.user("alice").unwrap();
    let error = pop.pass("x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "timed out after 0.3 s waiting for the reply to PASS"
    );
    let error = pop.noop().unwrap_err();
    assert!(matches!(error, Error::Unusable(_)), "{error:?}");
    drop(pop);
    server.join().unwrap();
}

#[test]
fn stls_injection_is_fatal() {
    let (port, server) = serve(|mut s| {
        s.write_all(b"+OK\r\n").unwrap();
        assert_eq!(read_line(&mut s), "CAPA\r\n");
        s.write_all(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n").unwrap();
        assert_eq!(read_line(&mut s), "STLS\r\n");
        // The attacker's bytes ride along with the +OK, to be read as if they came over TLS.
        s.write_all(b"+OK begin TLS\r\n+OK injected\r\n").unwrap();
        let _ = read_line(&mut s);
    });
    let result = Connection::connect("localhost", port, Security::StartTls, &short_timeout());
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::StartTlsInjection))
        ),
        "{result:?}"
    );
    server.join().unwrap();
}

#[test]
fn stls_refused_is_a_server_error() {
    let (port, server) = serve(|mut s| {
        s.write_all(b"+OK\r\n").unwrap();
        assert_eq!(read_line(&mut s), "CAPA\r\n");
        s.write_all(CAPA_USER.as_bytes()).unwrap();
        assert_eq!(read_line(&mut s), "STLS\r\n");
        s.write_all(b"-ERR not here\r\n").unwrap();
        let _ = read_line(&mut s);
    });
    let result = Connection::connect("localhost", port, Security::StartTls, &short_timeout());
    assert!(
        matches!(result, Err(Error::Server(ref e)) if e.command == CommandKind::Stls),
        "{result:?}"
    );
    server.join().unwrap();
}

// ---- TCP + TLS ----

struct TestCert {
    pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn test_cert() -> TestCert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    TestCert {
        pem: certified.cert.pem(),
        server: Arc::new(server),
    }
}

/// Speaks POP3 over TLS after STLS (or from the start with `implicit`): CAPA, USER, PASS,
/// CAPA, QUIT.
fn tls_server(config: Arc<rustls::ServerConfig>, implicit: bool) -> (u16, thread::JoinHandle<()>) {
    serve(move |mut tcp| {
        if !implicit {
            tcp.write_all(b"+OK\r\n").unwrap();
            assert_eq!(read_line(&mut tcp), "CAPA\r\n");
            tcp.write_all(b"+OK\r\nSTLS\r\n.\r\n").unwrap();
            assert_eq!(read_line(&mut tcp), "STLS\r\n");
            tcp.write_all(b"+OK go ahead\r\n").unwrap();
        }
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        if implicit && tls.write_all(b"+OK tls\r\n").is_err() {
            return; // the client refused the certificate
        }
        for (expect, reply) in [
            ("CAPA\r\n", "+OK\r\nUSER\r\n.\r\n"),
            ("USER alice\r\n", "+OK\r\n"),
            ("PASS secret\r\n", "+OK\r\n"),
            ("CAPA\r\n", "+OK\r\nUSER\r\n.\r\n"),
            ("QUIT\r\n", "+OK bye\r\n"),
        ] {
            let line = read_line(&mut tls);
            if line.is_empty() {
                return; // the client gave up (certificate rejected)
            }
            assert_eq!(line, expect);
            tls.write_all(reply.as_bytes()).unwrap();
        }
    })
}

#[test]
fn stls_upgrades_and_allows_the_password() {
    let cert = test_cert();
    let (port, server) = tls_server(cert.server.clone(), false);
    let options = short_timeout().tls(
        TlsOptions::default()
            .add_ca_pem(cert.pem.as_bytes())
            .unwrap(),
    );
    let mut pop = Connection::connect("localhost", port, Security::StartTls, &options).unwrap();
    assert!(pop.is_tls() && pop.get_ref().is_tls());
    assert_eq!(pop.capabilities().map(|c| c.stls), Some(false));
    assert_eq!(pop.login("alice", "secret").unwrap(), LoginMethod::UserPass);
    assert_eq!(pop.quit().unwrap().text, "bye");
    server.join().unwrap();
}

#[test]
fn implicit_tls() {
    let cert = test_cert();
    let (port, server) = tls_server(cert.server.clone(), true);
    let options = short_timeout().tls(
        TlsOptions::default()
            .add_ca_pem(cert.pem.as_bytes())
            .unwrap(),
    );
    let mut pop = Connection::connect("localhost", port, Security::Implicit, &options).unwrap();
    assert_eq!(pop.greeting().text, "tls");
    pop.login("alice", "secret").unwrap();
    pop.quit().unwrap();
    server.join().unwrap();
}

#[test]
fn untrusted_certificate_is_refused_unless_dangerously_accepted() {
    let cert = test_cert();
    let (port, server) = tls_server(cert.server.clone(), true);
    let result = Connection::connect("localhost", port, Security::Implicit, &short_timeout());
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    server.join().unwrap();

    let (port, server) = tls_server(cert.server.clone(), true);
    // The certificate names localhost, not 127.0.0.1: only the dangerous switch gets through.
    let trusted = TlsOptions::default()
        .add_ca_pem(cert.pem.as_bytes())
        .unwrap();
    let result = Connection::connect(
        "127.0.0.1",
        port,
        Security::Implicit,
        &short_timeout().tls(trusted),
    );
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    server.join().unwrap();

    let (port, server) = tls_server(cert.server, true);
    let options = short_timeout().tls(TlsOptions::default().dangerous_accept_any_certificate());
    let mut pop = Connection::connect("127.0.0.1", port, Security::Implicit, &options).unwrap();
    pop.login("alice", "secret").unwrap();
    pop.quit().unwrap();
    server.join().unwrap();
}

#[test]
fn tls_options_reject_bad_pem() {
    assert!(matches!(
        TlsOptions::default().add_ca_pem(b"not a certificate"),
        Err(pop3_blocking::TlsOptionsError::Io(_))
    ));
}
