//! The adapter against the test kit's scripted server: canned replies, byte-exact transcripts.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop3_blocking::pop3_proto::{CommandKind, EnqueueError, Phase, ProtocolError};
use pop3_blocking::{
    Connection, Error, LoginMethod, Options, ResponseCode, RetrEvent, ScanListing, Security, Stat,
    TlsOptions, UniqueIdListing,
};
use pop3_tests::{CertSpec, Script, ScriptedServer, TestCa};

// ---- a canned conversation, played by the kit's ScriptedServer ----

/// A canned conversation: `greeting`, then for each step the number of client lines the
/// server reads (each must end with CRLF) and the reply it sends once they arrived. After
/// the last step the server closes its side (the client reads EOF).
struct Canned {
    script: Script,
    /// How many bytes at most one read of the client's stream returns (to exercise splits).
    max_read: usize,
}

impl Canned {
    fn new(greeting: &str) -> Self {
        Self {
            script: Script::new().send_raw(greeting.as_bytes()),
            max_read: usize::MAX,
        }
    }

    /// After `lines` more client lines, send `reply`.
    fn then(mut self, lines: usize, reply: &str) -> Self {
        for _ in 0..lines {
            self.script = self.script.expect_any();
        }
        self.script = self.script.send_raw(reply.as_bytes());
        self
    }

    fn max_read(mut self, n: usize) -> Self {
        self.max_read = n;
        self
    }

    /// Starts the server and connects to it.
    fn start(self) -> (Tcp, Wire) {
        let server = ScriptedServer::start(self.script).unwrap();
        let tcp = TcpStream::connect(server.addr()).unwrap();
        // A test that goes wrong fails instead of hanging.
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (
            Tcp {
                tcp,
                max_read: self.max_read,
            },
            Wire(server),
        )
    }
}

/// The client's side of a [`Canned`] conversation: a TCP stream whose reads return at most
/// `max_read` bytes.
struct Tcp {
    tcp: TcpStream,
    max_read: usize,
}

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max_read);
        self.tcp.read(&mut buf[..n])
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// The server of a [`Canned`] conversation.
struct Wire(ScriptedServer);

impl Wire {
    /// Everything the client sent, once it closed the connection. Every line it sent was
    /// CRLF-terminated and read by a step; steps left over (replies the client never asked
    /// for, like the CAPA after a login that nothing followed) are fine.
    fn text(self) -> String {
        let transcript = self.0.finish().unwrap();
        if let Some(mismatch) = transcript.mismatch() {
            assert!(
                mismatch.got.is_empty() && mismatch.note == "the client closed the connection",
                "{transcript}"
            );
        } else {
            transcript.assert_complete();
        }
        transcript.received_str()
    }
}

const GREETING: &str = "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n";
const CAPA_USER: &str = "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n";
const CAPA_PIPELINING: &str = "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\nRESP-CODES\r\n.\r\n";

fn plaintext() -> Options {
    Options::default().allow_plaintext(true)
}

/// Greeting, CAPA, USER, PASS, CAPA: a logged-in session over `stream`.
fn logged_in(stream: Tcp) -> Connection<Tcp> {
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
    let (stream, wire) = session(CAPA_USER)
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
        .then(1, "+OK bye\r\n")
        .start();
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
    let (stream, _server) = session(CAPA_USER)
        .then(1, "+OK 120 octets\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n")
        .then(1, "+OK bye\r\n")
        .max_read(1)
        .start();
    let mut pop = logged_in(stream);
    assert_eq!(pop.retr_vec(1).unwrap(), b"Subject: hi\r\n\r\n.dot\r\n");
    pop.quit().unwrap();
}

#[test]
fn authorization_commands() {
    let (stream, wire) = Canned::new(GREETING)
        .then(1, "-ERR\r\n")
        .then(
            1,
            "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\nUTF8\r\nLANG\r\n.\r\n",
        )
        .then(1, "+OK\r\nen English\r\nde Deutsch\r\n.\r\n")
        .then(1, "+OK Sprache geaendert\r\n")
        .then(1, "+OK UTF8 enabled\r\n")
        .then(1, "+OK mrose's maildrop has 2 messages\r\n")
        .then(1, "-ERR [SYS/TEMP] no CAPA now\r\n")
        .start();
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
    let (stream, wire) = Canned::new("+OK\r\n")
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER)
        .start();
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
    let (stream, _server) = session(CAPA_PIPELINING)
        .then(1, "-ERR [SYS/TEMP] try later\r\n")
        .then(1, "-ERR no such message\r\n")
        .then(1, "+OK\r\n")
        .start();
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
    let (stream, _server) = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "-ERR [AUTH] wrong\r\n")
        .start();
    let mut pop = Connection::new(stream, &plaintext()).unwrap();
    pop.user("alice").unwrap();
    assert!(
        matches!(pop.pass("nope"), Err(Error::Server(e)) if e.code == Some(ResponseCode::Auth))
    );
    assert_eq!(pop.phase(), Phase::Authorization);
}

#[test]
fn greeting_err_is_refused() {
    let (stream, _server) = Canned::new("-ERR [IN-USE] go away\r\n").start();
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
    let (stream, wire) = Canned::new(GREETING).then(1, CAPA_USER).start();
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
    let (stream, wire) = Canned::new(GREETING)
        .then(1, "+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\n.\r\n")
        .then(
            1,
            "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n",
        )
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER)
        .start();
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
    let (stream, wire) = Canned::new(GREETING)
        .then(1, "+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\n.\r\n")
        .then(1, "-ERR [AUTH] no\r\n")
        .start();
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
    let (stream, wire) = session(CAPA_USER).start();
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
    let (stream, wire) = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, CAPA_USER)
        .start();
    let options = Options::default().allow_apop(true).allow_plaintext(true);
    let mut pop = Connection::new(stream, &options).unwrap();
    assert_eq!(pop.login("mrose", "tanstaaf").unwrap(), LoginMethod::Apop);
    drop(pop);
    assert!(
        wire.text()
            .contains("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n")
    );
    let (stream, wire) = session(CAPA_USER).start();
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
    let (stream, wire) = session(CAPA_PIPELINING)
        .then(
            3,
            "+OK\r\none\r\n.\r\n-ERR [SYS/TEMP] locked\r\n+OK\r\nthree\r\n..\r\n.\r\n",
        )
        .then(3, "+OK\r\n-ERR no such message\r\n+OK\r\n")
        .start();
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
    let (stream, wire) = session(CAPA_PIPELINING).start();
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
    let (stream, _server) = session(CAPA_USER)
        .then(1, "+OK\r\nline 1\r\nline 2\r\n.\r\n")
        .then(1, "+OK\r\nnext\r\n.\r\n")
        .then(1, "+OK\r\n")
        .start();
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
    let (stream, _server) = session(CAPA_USER)
        .then(1, "+OK\r\nSubject: cut\r\n")
        .start();
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
    // The server reads USER and never answers: the client's read times out (the socket's
    // read timeout, as a caller's own stream would have it).
    let (stream, wire) = Canned {
        script: Script::parse(
            r"
            S-RAW: +OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n
            C: CAPA
            S-RAW: +OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n
            C: USER alice
            EOF
            ",
        )
        .unwrap(),
        max_read: usize::MAX,
    }
    .start();
    stream
        .tcp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut pop = Connection::new(stream, &Options::default()).unwrap();
    let error = pop.user("alice").unwrap_err();
    assert_eq!(
        error.to_string(),
        "timed out after 60 s waiting for the reply to USER"
    );
    assert!(matches!(pop.noop(), Err(Error::Unusable(_))));
    drop(pop);
    // Nothing after USER: NOOP on the poisoned connection sent nothing.
    assert_eq!(wire.text(), "CAPA\r\nUSER alice\r\n");
}

#[test]
fn protocol_violation_poisons() {
    let (stream, _server) = session(CAPA_USER).then(1, "+OK two\r\n").start();
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
    let (stream, wire) = session(CAPA_USER).then(1, "+OK marked\r\n").start();
    let mut pop = logged_in(stream);
    pop.dele(1).unwrap();
    drop(pop);
    assert_eq!(wire.text(), format!("{LOGIN_WIRE}DELE 1\r\n"));
}

#[test]
fn quit_err_means_not_committed() {
    let (stream, _server) = session(CAPA_USER)
        .then(1, "+OK\r\n")
        .then(1, "-ERR [SYS/PERM] some deleted messages not removed\r\n")
        .start();
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
    let (stream, wire) = Canned::new(GREETING)
        .then(1, CAPA_USER)
        .then(1, "+OK bye\r\n")
        .start();
    let pop = Connection::new(stream, &Options::default()).unwrap();
    assert_eq!(pop.quit().unwrap().text, "bye");
    assert_eq!(wire.text(), "CAPA\r\nQUIT\r\n");
}

#[test]
fn bare_lf_server() {
    let (stream, _server) = Canned::new("+OK hi\n")
        .then(1, "+OK\nUSER\n.\n")
        .then(1, "+OK\n")
        .then(1, "+OK\n")
        .then(1, "+OK\nUSER\n.\n")
        .then(1, "+OK\nline\n..dot\n.\n")
        .start();
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
        let (stream, _server) = session(CAPA_USER).then(1, "+OK 1 5\r\n").start();
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
    let (stream, _server) = session(CAPA_USER).start();
    let pop = logged_in(stream);
    let debug = format!("{pop:?} {:?}", Options::default());
    assert!(!debug.contains("hunter2"), "{debug}");
}

// ---- TCP: timeouts, STLS ----

/// The kit's scripted server for one connection of `script`.
fn serve(script: &str) -> ScriptedServer {
    ScriptedServer::start(Script::parse(script).unwrap()).unwrap()
}

fn short_timeout() -> Options {
    Options::default().timeout(Duration::from_millis(300))
}

#[test]
fn silent_server_times_out_at_the_greeting() {
    // Holds the connection open, silent, until the client gives up.
    let server = serve("EOF");
    let started = std::time::Instant::now();
    let result = Connection::connect("127.0.0.1", server.port(), Security::None, &short_timeout());
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The client sent nothing.
    server.finish().unwrap().assert_complete();
}

#[test]
fn server_stalling_mid_session_times_out() {
    let server = serve(
        r"
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS x
        # Stall: half a reply, then nothing.
        S-RAW: +OK\x20
        EOF
        ",
    );
    let mut pop = Connection::connect(
        "127.0.0.1",
        server.port(),
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
    server.finish().unwrap().assert_complete();
}

#[test]
fn stls_injection_is_fatal() {
    let server = serve(
        r"
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nSTLS\r\nUSER\r\n.\r\n
        C: STLS
        # The attacker's bytes ride along with the +OK, to be read as if they came over TLS.
        S-RAW: +OK begin TLS\r\n+OK injected\r\n
        EOF
        ",
    );
    let result = Connection::connect(
        "localhost",
        server.port(),
        Security::StartTls,
        &short_timeout(),
    );
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::StartTlsInjection))
        ),
        "{result:?}"
    );
    // Not a byte more (no TLS handshake) after STLS.
    server.finish().unwrap().assert_complete();
}

#[test]
fn stls_refused_is_a_server_error() {
    let server = serve(
        r"
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n
        C: STLS
        S: -ERR not here
        EOF
        ",
    );
    let result = Connection::connect(
        "localhost",
        server.port(),
        Security::StartTls,
        &short_timeout(),
    );
    assert!(
        matches!(result, Err(Error::Server(ref e)) if e.command == CommandKind::Stls),
        "{result:?}"
    );
    server.finish().unwrap().assert_complete();
}

// ---- TCP + TLS ----

/// A certificate for `localhost` only (not 127.0.0.1).
fn localhost_ca() -> TestCa {
    TestCa::generate_with(&CertSpec::new().names(&["localhost"])).unwrap()
}

/// Speaks POP3 over TLS after STLS (or from the start with `implicit`): CAPA, USER, PASS,
/// CAPA, QUIT.
fn tls_server(ca: &TestCa, implicit: bool) -> ScriptedServer {
    let before = if implicit {
        "S: +OK tls"
    } else {
        r"
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nSTLS\r\n.\r\n
        C: STLS
        S: +OK go ahead
        STARTTLS
        "
    };
    let script = Script::parse(&format!(
        r"
        {before}
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: QUIT
        S: +OK bye
        "
    ))
    .unwrap();
    let builder = ScriptedServer::builder(script).tls_config(ca.server_config());
    if implicit {
        builder.implicit_tls().start().unwrap()
    } else {
        builder.start().unwrap()
    }
}

/// The server's side of a connection whose client refused the certificate: the handshake
/// failed and the client sent nothing over TLS.
fn assert_refused(server: ScriptedServer) {
    let transcript = server.finish().unwrap();
    assert!(!transcript.is_complete(), "{transcript}");
    assert!(transcript.received().is_empty(), "{transcript}");
}

#[test]
fn stls_upgrades_and_allows_the_password() {
    let ca = localhost_ca();
    let server = tls_server(&ca, false);
    let options = short_timeout().tls(
        TlsOptions::default()
            .add_ca_pem(ca.certificate_pem().as_bytes())
            .unwrap(),
    );
    let mut pop =
        Connection::connect("localhost", server.port(), Security::StartTls, &options).unwrap();
    assert!(pop.is_tls() && pop.get_ref().is_tls());
    assert_eq!(pop.capabilities().map(|c| c.stls), Some(false));
    assert_eq!(pop.login("alice", "secret").unwrap(), LoginMethod::UserPass);
    assert_eq!(pop.quit().unwrap().text, "bye");
    let transcript = server.finish().unwrap();
    transcript.assert_complete();
    assert_eq!(transcript.received_before_tls(), b"CAPA\r\nSTLS\r\n");
}

#[test]
fn implicit_tls() {
    let ca = localhost_ca();
    let server = tls_server(&ca, true);
    let options = short_timeout().tls(
        TlsOptions::default()
            .add_ca_pem(ca.certificate_pem().as_bytes())
            .unwrap(),
    );
    let mut pop =
        Connection::connect("localhost", server.port(), Security::Implicit, &options).unwrap();
    assert_eq!(pop.greeting().text, "tls");
    pop.login("alice", "secret").unwrap();
    pop.quit().unwrap();
    server.finish().unwrap().assert_complete();
}

#[test]
fn untrusted_certificate_is_refused_unless_dangerously_accepted() {
    let ca = localhost_ca();
    let server = tls_server(&ca, true);
    let result = Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &short_timeout(),
    );
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    assert_refused(server);

    let server = tls_server(&ca, true);
    // The certificate names localhost, not 127.0.0.1: only the dangerous switch gets through.
    let trusted = TlsOptions::default()
        .add_ca_pem(ca.certificate_pem().as_bytes())
        .unwrap();
    let result = Connection::connect(
        "127.0.0.1",
        server.port(),
        Security::Implicit,
        &short_timeout().tls(trusted),
    );
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    assert_refused(server);

    let server = tls_server(&ca, true);
    let options = short_timeout().tls(TlsOptions::default().dangerous_accept_any_certificate());
    let mut pop =
        Connection::connect("127.0.0.1", server.port(), Security::Implicit, &options).unwrap();
    pop.login("alice", "secret").unwrap();
    pop.quit().unwrap();
    server.finish().unwrap().assert_complete();
}

#[test]
fn tls_options_reject_bad_pem() {
    assert!(matches!(
        TlsOptions::default().add_ca_pem(b"not a certificate"),
        Err(pop3_blocking::TlsOptionsError::Io(_))
    ));
}
