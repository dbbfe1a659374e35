//! Read deadlines in both adapters, against the kit's scripted server with trickled replies
//! (its drip step): a trickled status
//! line times out, a body below the speed limit is cut, a healthy slow body completes, and a
//! connection that timed out sends nothing more (no QUIT).
//!
//! Time bounds: each test asserts that the failure came no earlier than the limit (it waited
//! for the deadline, not for something else) and well before the trickle would have ended on
//! its own (30 s). The upper bound is generous, 10 s, because this machine shares two cores
//! among several builds and a thread can be held off for seconds; what the tests guard
//! against is a session the trickle holds for its whole length (or forever), which no slack
//! of seconds can mistake for a pass.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pop3_blocking::pop3_proto::{Awaiting, CommandKind, Expired};
use pop3_blocking::{Options, Security};
use pop3_tests::{Script, ScriptedServer, Transcript};

const SLACK: Duration = Duration::from_secs(10);
const DRIP: Duration = Duration::from_millis(200);

/// What a call failed with, from either adapter.
#[derive(Debug, PartialEq)]
enum Failure {
    Timeout(Expired),
    Unusable(Expired),
    Other(String),
}

/// Both adapters fail with the one `pop3_tls::ConnectionError`.
impl From<pop3_blocking::Error> for Failure {
    fn from(error: pop3_blocking::Error) -> Self {
        match error {
            pop3_blocking::Error::Timeout(e) => Self::Timeout(e),
            pop3_blocking::Error::Unusable(e) => Self::Unusable(e),
            other => Self::Other(format!("{other:?}")),
        }
    }
}

/// The calls the tests make, in both adapters.
trait Session: Sized {
    fn connect(port: u16, options: &Options) -> Result<Self, Failure>;
    /// Implicit TLS to `localhost`.
    fn connect_tls(port: u16, options: &Options) -> Result<Self, Failure>;
    fn login(&mut self) -> Result<(), Failure>;
    fn set_timeout(&mut self, timeout: Duration);
    /// Whether `set_timeout(0)` is refused as invalid input, leaving the connection usable.
    fn refuses_zero_timeout(&mut self) -> bool;
    fn stat(&mut self) -> Result<(u32, u64), Failure>;
    fn retr(&mut self, msg: u32) -> Result<Vec<u8>, Failure>;
    fn quit(self) -> Result<(), Failure>;
    /// The error text of the adapter for this failure (checked to be the same in both).
    fn describe(failure: &Failure) -> String;
}

struct Blocking(pop3_blocking::Connection);

impl Session for Blocking {
    fn connect(port: u16, options: &Options) -> Result<Self, Failure> {
        Ok(Self(pop3_blocking::Connection::connect(
            "127.0.0.1",
            port,
            Security::None,
            options,
        )?))
    }
    fn connect_tls(port: u16, options: &Options) -> Result<Self, Failure> {
        Ok(Self(pop3_blocking::Connection::connect(
            "localhost",
            port,
            Security::Implicit,
            options,
        )?))
    }
    fn login(&mut self) -> Result<(), Failure> {
        self.0.user("alice")?;
        self.0.pass("secret")?;
        Ok(())
    }
    fn set_timeout(&mut self, timeout: Duration) {
        self.0.set_timeout(timeout).unwrap();
    }
    fn refuses_zero_timeout(&mut self) -> bool {
        matches!(
            self.0.set_timeout(Duration::ZERO),
            Err(pop3_blocking::Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput
        ) && self.0.timeout() == Duration::from_secs(10)
    }
    fn stat(&mut self) -> Result<(u32, u64), Failure> {
        let stat = self.0.stat()?;
        Ok((stat.count, stat.size))
    }
    fn retr(&mut self, msg: u32) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.0.retr(msg, &mut out)?;
        Ok(out)
    }
    fn quit(self) -> Result<(), Failure> {
        self.0.quit()?;
        Ok(())
    }
    fn describe(failure: &Failure) -> String {
        match failure {
            Failure::Timeout(e) => pop3_blocking::Error::Timeout(*e).to_string(),
            Failure::Unusable(e) => pop3_blocking::Error::Unusable(*e).to_string(),
            Failure::Other(text) => text.clone(),
        }
    }
}

struct Async {
    runtime: tokio::runtime::Runtime,
    connection: pop3_async::Connection,
}

impl Session for Async {
    fn connect(port: u16, options: &Options) -> Result<Self, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connection = runtime.block_on(pop3_async::Connection::connect(
            "127.0.0.1",
            port,
            Security::None,
            options,
        ))?;
        Ok(Self {
            runtime,
            connection,
        })
    }
    fn connect_tls(port: u16, options: &Options) -> Result<Self, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connection = runtime.block_on(pop3_async::Connection::connect(
            "localhost",
            port,
            Security::Implicit,
            options,
        ))?;
        Ok(Self {
            runtime,
            connection,
        })
    }
    fn login(&mut self) -> Result<(), Failure> {
        self.runtime.block_on(async {
            self.connection.user("alice").await?;
            self.connection.pass("secret").await?;
            Ok(())
        })
    }
    fn set_timeout(&mut self, timeout: Duration) {
        self.connection.set_timeout(timeout).unwrap();
    }
    fn refuses_zero_timeout(&mut self) -> bool {
        matches!(
            self.connection.set_timeout(Duration::ZERO),
            Err(pop3_async::Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput
        ) && self.connection.timeout() == Duration::from_secs(10)
    }
    fn stat(&mut self) -> Result<(u32, u64), Failure> {
        let stat = self.runtime.block_on(self.connection.stat())?;
        Ok((stat.count, stat.size))
    }
    fn retr(&mut self, msg: u32) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.runtime.block_on(self.connection.retr(msg, &mut out))?;
        Ok(out)
    }
    fn quit(self) -> Result<(), Failure> {
        self.runtime.block_on(self.connection.quit())?;
        Ok(())
    }
    fn describe(failure: &Failure) -> String {
        match failure {
            Failure::Timeout(e) => pop3_async::Error::Timeout(*e).to_string(),
            Failure::Unusable(e) => pop3_async::Error::Unusable(*e).to_string(),
            Failure::Other(text) => text.clone(),
        }
    }
}

fn options(timeout: Duration) -> Options {
    Options::default().timeout(timeout).allow_plaintext(true)
}

/// The greeting, the automatic CAPA, USER/PASS and the CAPA after login.
fn login_steps() -> Script {
    Script::parse(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        ",
    )
    .unwrap()
}

/// What the client sends in [`login_steps`].
const LOGIN_SENT: &[u8] = b"CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\n";

/// Thirty seconds of one byte every 200 ms, never a line end.
fn endless_drip(script: Script) -> Script {
    script.drip(&[b'1'; 150], 1, DRIP)
}

/// `+OK ` and then the endless drip: a greeting that never ends.
fn trickled_greeting() -> ScriptedServer {
    ScriptedServer::start(endless_drip(Script::new().send_raw(b"+OK "))).unwrap()
}

/// The client hung up during a drip, having sent exactly `sent`.
#[track_caller]
fn assert_hung_up(transcript: &Transcript, sent: &[u8]) {
    assert!(transcript.hung_up(), "{transcript}");
    assert_eq!(transcript.mismatch(), None, "{transcript}");
    assert_eq!(transcript.received(), sent, "{transcript}");
}

#[track_caller]
fn assert_bounded(started: Instant, limit: Duration) {
    let elapsed = started.elapsed();
    assert!(elapsed >= limit, "cut after {elapsed:?}, before {limit:?}");
    assert!(elapsed < limit + SLACK, "cut only after {elapsed:?}");
}

fn greeting_trickle_times_out<S: Session>() {
    let server = trickled_greeting();
    let started = Instant::now();
    let failure = S::connect(server.port(), &options(Duration::from_secs(1)))
        .err()
        .unwrap();
    assert_bounded(started, Duration::from_secs(1));
    assert_eq!(
        failure,
        Failure::Timeout(Expired::Timeout {
            after: Duration::from_secs(1),
            awaiting: Awaiting::Greeting,
        })
    );
    assert_eq!(
        S::describe(&failure),
        "timed out after 1 s waiting for the greeting"
    );
    let transcript = server.finish().unwrap();
    assert_hung_up(&transcript, b"");
    assert!(transcript.dripped() < 75, "{transcript}");
}

#[test]
fn greeting_trickle_times_out_blocking() {
    greeting_trickle_times_out::<Blocking>();
}

#[test]
fn greeting_trickle_times_out_async() {
    greeting_trickle_times_out::<Async>();
}

/// `set_timeout` for one call; the timeout names the command; after it nothing is sent, and
/// `quit` says why.
fn reply_trickle_times_out_and_quit_sends_nothing<S: Session>() {
    let server =
        ScriptedServer::start(endless_drip(login_steps().expect("STAT").send_raw(b"+OK ")))
            .unwrap();
    let mut session = S::connect(server.port(), &options(Duration::from_secs(10))).unwrap();
    session.login().unwrap();
    assert!(session.refuses_zero_timeout());
    session.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let failure = session.stat().unwrap_err();
    assert_bounded(started, Duration::from_millis(500));
    let Failure::Timeout(expired) = failure else {
        panic!("{failure:?}");
    };
    let Awaiting::Status(awaited) = expired.awaiting() else {
        panic!("{expired:?}");
    };
    assert_eq!((awaited.kind, awaited.msg), (CommandKind::Stat, None));
    assert_eq!(
        S::describe(&Failure::Timeout(expired)),
        "timed out after 0.5 s waiting for the reply to STAT"
    );
    let quit = session.quit().unwrap_err();
    assert_eq!(quit, Failure::Unusable(expired));
    assert_eq!(
        S::describe(&quit),
        "the connection is unusable after an earlier timeout (timed out after 0.5 s waiting \
         for the reply to STAT); no QUIT was sent, so no deletion was committed: reconnect"
    );
    assert_hung_up(
        &server.finish().unwrap(),
        &[LOGIN_SENT, b"STAT\r\n"].concat(),
    );
}

#[test]
fn reply_trickle_times_out_and_quit_sends_nothing_blocking() {
    reply_trickle_times_out_and_quit_sends_nothing::<Blocking>();
}

#[test]
fn reply_trickle_times_out_and_quit_sends_nothing_async() {
    reply_trickle_times_out_and_quit_sends_nothing::<Async>();
}

/// 5 bytes/s where 100 are required: cut after the 1 s window, with the limit named.
fn body_below_the_speed_limit_is_cut<S: Session>() {
    let server =
        ScriptedServer::start(endless_drip(login_steps().expect("RETR 1").send("+OK"))).unwrap();
    let options = options(Duration::from_secs(1)).speed_limit(100, Duration::from_secs(1));
    let mut session = S::connect(server.port(), &options).unwrap();
    session.login().unwrap();
    let started = Instant::now();
    let failure = session.retr(1).unwrap_err();
    assert_bounded(started, Duration::from_secs(1));
    let Failure::Timeout(
        expired @ Expired::TooSlow {
            limit: 100,
            time,
            received,
            awaiting: Awaiting::MultiLine(awaited),
            ..
        },
    ) = failure
    else {
        panic!("{failure:?}");
    };
    assert_eq!(time, Duration::from_secs(1));
    assert!(received < 100, "{received}");
    assert_eq!((awaited.kind, awaited.msg), (CommandKind::Retr, Some(1)));
    assert_eq!(
        S::describe(&failure),
        format!(
            "the rest of the reply to RETR 1 came in slower than the speed limit of 100 \
             bytes/s over 1 s (received {received} bytes)"
        )
    );
    assert_eq!(session.quit().unwrap_err(), Failure::Unusable(expired));
    assert_hung_up(
        &server.finish().unwrap(),
        &[LOGIN_SENT, b"RETR 1\r\n"].concat(),
    );
}

#[test]
fn body_below_the_speed_limit_is_cut_blocking() {
    body_below_the_speed_limit_is_cut::<Blocking>();
}

#[test]
fn body_below_the_speed_limit_is_cut_async() {
    body_below_the_speed_limit_is_cut::<Async>();
}

/// 400 bytes/s against a limit of 50 bytes/s over 2 s: a body that takes 4 s, twice the
/// timeout, arrives whole. (The margins are wide, eight times the limit and a stall timeout
/// twenty times the pause between pieces, so that a loaded machine does not fail it.)
fn healthy_slow_body_completes<S: Session>() {
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz01\r\n";
    let body: Vec<u8> = line.iter().copied().cycle().take(line.len() * 40).collect();
    let script = login_steps()
        .expect("RETR 1")
        .send("+OK 1600 octets")
        .drip(&body, line.len(), Duration::from_millis(100))
        .send(".")
        .expect("QUIT")
        .send("+OK bye");
    let server = ScriptedServer::start(script).unwrap();
    let options = options(Duration::from_secs(2)).speed_limit(50, Duration::from_secs(2));
    let mut session = S::connect(server.port(), &options).unwrap();
    session.login().unwrap();
    let started = Instant::now();
    assert_eq!(session.retr(1).unwrap(), body);
    assert!(started.elapsed() >= Duration::from_secs(4));
    session.quit().unwrap();
    let transcript = server.finish().unwrap();
    transcript.assert_complete();
    assert!(!transcript.hung_up(), "{transcript}");
    assert_eq!(transcript.dripped(), body.len());
    assert_eq!(
        transcript.received(),
        [LOGIN_SENT, b"RETR 1\r\nQUIT\r\n"].concat()
    );
}

#[test]
fn healthy_slow_body_completes_blocking() {
    healthy_slow_body_completes::<Blocking>();
}

#[test]
fn healthy_slow_body_completes_async() {
    healthy_slow_body_completes::<Async>();
}

/// Over TLS the trickle is of a record's ciphertext: no plaintext at all reaches the client
/// until the record is complete, which rustls's own blocking `read` would wait for however
/// long it takes. The blocking adapter reads the socket once per call instead.
fn tls_record_trickle_times_out<S: Session>() {
    let server = ScriptedServer::start_tls(Script::new().drip(
        // One record: 150 bytes of plaintext, some 170 of ciphertext, 34 s at 1 byte/200 ms.
        &[&b"+OK "[..], &[b'x'; 144], b"\r\n"].concat(),
        1,
        DRIP,
    ))
    .unwrap();
    let tls = pop3_blocking::TlsOptions::default()
        .add_ca_pem(pop3_tests::certificate_pem().as_bytes())
        .unwrap();
    let options = options(Duration::from_secs(1)).tls(tls);
    let started = Instant::now();
    let failure = S::connect_tls(server.port(), &options).err().unwrap();
    assert_bounded(started, Duration::from_secs(1));
    assert_eq!(
        S::describe(&failure),
        "timed out after 1 s waiting for the greeting"
    );
    let transcript = server.finish().unwrap();
    assert_hung_up(&transcript, b"");
    assert!(transcript.dripped() < 75, "{transcript}");
}

#[test]
fn tls_record_trickle_times_out_blocking() {
    tls_record_trickle_times_out::<Blocking>();
}

#[test]
fn tls_record_trickle_times_out_async() {
    tls_record_trickle_times_out::<Async>();
}

/// A stream the caller connected: the blocking adapter cannot set its socket's timeout, but
/// checks the deadline after each read, so a trickle is cut at its first byte past it (and
/// the async adapter's timer applies to any stream).
#[test]
fn a_stream_of_your_own_is_held_to_the_same_deadlines() {
    let server = trickled_greeting();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let error = pop3_blocking::Connection::new(tcp, &options(Duration::from_secs(1))).unwrap_err();
    assert_bounded(started, Duration::from_secs(1));
    assert_eq!(
        error.to_string(),
        "timed out after 1 s waiting for the greeting"
    );
    assert_hung_up(&server.finish().unwrap(), b"");

    let server = trickled_greeting();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let error = runtime
        .block_on(async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port())).await?;
            pop3_async::Connection::new(tcp, &options(Duration::from_secs(1))).await
        })
        .unwrap_err();
    assert_bounded(started, Duration::from_secs(1));
    assert_eq!(
        error.to_string(),
        "timed out after 1 s waiting for the greeting"
    );
    assert_hung_up(&server.finish().unwrap(), b"");
}
