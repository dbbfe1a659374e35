//! Client suites shared by the adapters: implement [`Adapter`] for a client and instantiate
//! every suite with [`adapter_suite!`](crate::adapter_suite).
//!
//! The servers of the kit do not depend on `pop3-proto`; this module does, only for the
//! client-side types the adapters share (replies, listings, errors of the core), so that both
//! the blocking and the async adapter implement the same trait without conversions.
//!
//! ```ignore
//! struct Blocking(pop3_blocking::Connection);
//! impl pop3_tests::suite::Adapter for Blocking { /* forward to the connection */ }
//! pop3_tests::adapter_suite!(Blocking);
//! ```
//!
//! The suites check byte-exact transcripts against the [`ScriptedServer`], every method with its
//! `-ERR` path, stalls (timeouts), cuts in the middle of a reply, STARTTLS injection, bare-LF
//! servers, pipelined batches, certificate and host-name checks, and end-to-end sessions
//! against the [`MailboxServer`]. They also re-express, as our own tests, the behaviours that
//! CPython's `test_poplib.py` checks for `poplib`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pop3_proto::login::{
    LoginChoiceError, LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_proto::reply::Listings;
use pop3_proto::request::{Pipeline, PipelineEvent, RetrEvent};
use pop3_proto::sasl::{ChannelBinding, Mechanism, Plain};
use pop3_proto::uid::{FetchReport, SeenStore, UidError};
use pop3_proto::{
    Capabilities, CommandKind, EnqueueError, Expired, Phase, ProtocolError, ResponseCode,
};

use crate::{
    MailboxServer, Script, ScriptedServer, TestCa, Transcript, certificate_pem, generate_mail,
    to_crlf,
};

/// How the suites ask an adapter to secure the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte.
    Implicit,
    /// Plaintext, then STLS.
    StartTls,
    /// No TLS.
    None,
}

/// The connection options the suites use; adapters map them onto their own options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The connect and per-read/write timeout.
    pub timeout: Duration,
    /// The core's configuration.
    pub config: pop3_proto::Config,
    /// Allow passwords without TLS.
    pub allow_plaintext: bool,
    /// Allow `login` to choose APOP.
    pub allow_apop: bool,
    /// Extra trust anchors (PEM) on top of the adapter's default roots. Default: the kit's
    /// certificate.
    pub ca_pem: Option<String>,
    /// Disable certificate verification (the adapter's `dangerous` switch).
    pub accept_any_certificate: bool,
    /// A TLS client certificate to present: (certificate PEM, key PEM).
    pub client_cert: Option<(String, String)>,
    /// An extra trust anchor read from a PEM file (the adapter's `add_ca_file`).
    pub ca_file: Option<std::path::PathBuf>,
    /// The TCP connect timeout, if not the adapter's default.
    pub connect_timeout: Option<Duration>,
    /// The local source address.
    pub bind: Option<std::net::IpAddr>,
    /// A proxy URL (`socks5://`, `socks5h://`, `http://`, with optional credentials).
    pub proxy: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            config: pop3_proto::Config::default(),
            allow_plaintext: false,
            allow_apop: false,
            ca_pem: Some(certificate_pem().to_owned()),
            accept_any_certificate: false,
            client_cert: None,
            ca_file: None,
            connect_timeout: None,
            bind: None,
            proxy: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults with passwords allowed in plaintext.
    pub fn plaintext() -> Self {
        Self {
            allow_plaintext: true,
            ..Self::default()
        }
    }

    /// The defaults with a short timeout.
    pub fn short_timeout() -> Self {
        Self {
            timeout: Duration::from_millis(300),
            ..Self::default()
        }
    }
}

/// The server's greeting, as the adapter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The text after `+OK`.
    pub text: String,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// Whether it carries an APOP timestamp.
    pub apop: bool,
}

/// An adapter's error, classified the same way for every adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// I/O error (its kind and message).
    Io(std::io::ErrorKind, String),
    /// TLS error (message).
    Tls(String),
    /// Timeout (what expired, as the core reports it).
    Timeout(Expired),
    /// The proxy did not open the tunnel (the `Debug` form of the adapters' `ProxyError`).
    Proxy(String),
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// `-ERR`.
    Server(ServerError),
    /// Caller misuse, nothing sent.
    Usage(EnqueueError),
    /// No acceptable login method.
    Login(LoginChoiceError),
    /// Bad TLS server name.
    InvalidServerName(String),
    /// `-ERR` greeting.
    GreetingRefused {
        /// Its response code.
        code: Option<ResponseCode>,
        /// Its text.
        text: String,
    },
    /// `login` on a logged-in session (the adapter's message).
    AlreadyLoggedIn(String),
    /// A UID-safe call refused to go on: the core's error, and the adapter's message for it.
    Uid(UidError, String),
    /// `retr_parsed`: the message is over the limit.
    MessageTooLarge {
        /// The message number.
        msg: u32,
        /// The limit given.
        limit: usize,
    },
    /// `retr_parsed`: not a message the MIME parser can read.
    NotAMessage {
        /// The message number.
        msg: u32,
    },
    /// Closed or poisoned.
    Closed,
    /// Anything else (message).
    Other(String),
}

impl Failure {
    /// Whether this is a fatal failure of the connection (I/O, TLS, timeout, protocol).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            Self::Io(..) | Self::Tls(_) | Self::Timeout(_) | Self::Protocol(_)
        )
    }
}

/// The [`Debug`] form, so that suites can return `Result<(), Box<dyn Error>>`.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Failure {}

/// One message of a [`Adapter::retr_many`] batch: its content or the server's refusal.
pub type Retrieved = (u32, Result<Vec<u8>, ServerError>);

/// A POP3 client under test, with the method set of `pop3_blocking::Connection` in
/// synchronous form (an async adapter implements it with its runtime's `block_on`).
pub trait Adapter: Sized + std::fmt::Debug {
    /// Connects to `host:port`, sets up TLS, reads the greeting and the capabilities.
    fn connect(
        host: &str,
        port: u16,
        security: Security,
        options: &ConnectOptions,
    ) -> Result<Self, Failure>;
    /// The greeting.
    fn greeting(&self) -> Greeting;
    /// The current capabilities.
    fn capabilities(&self) -> Option<Capabilities>;
    /// Whether the session runs over TLS.
    fn is_tls(&self) -> bool;
    /// The session phase.
    fn phase(&self) -> Phase;
    /// `CAPA`.
    fn capa(&mut self) -> Result<Capabilities, Failure>;
    /// `USER`.
    fn user(&mut self, name: &str) -> Result<Reply, Failure>;
    /// `PASS`.
    fn pass(&mut self, password: &str) -> Result<Reply, Failure>;
    /// `APOP`.
    fn apop(&mut self, name: &str, secret: &str) -> Result<Reply, Failure>;
    /// `RPOP`.
    fn rpop(&mut self, user: &str) -> Result<Reply, Failure>;
    /// `AUTH` with a mechanism.
    fn auth<M: Mechanism + 'static>(&mut self, mechanism: M) -> Result<Reply, Failure>;
    /// The best login method.
    fn login(&mut self, user: &str, password: &str) -> Result<LoginMethod, Failure>;
    /// Login with this method (`login_with`).
    fn login_with(
        &mut self,
        method: LoginMethod,
        user: &str,
        password: &str,
    ) -> Result<LoginMethod, Failure>;
    /// The adapter's `connect_addrs` (Happy Eyeballs over these addresses, with the connect
    /// timeout and source address of `options`): the connected socket's (local, peer)
    /// addresses.
    fn connect_addrs(
        addrs: Vec<std::net::SocketAddr>,
        options: &ConnectOptions,
    ) -> std::io::Result<(std::net::SocketAddr, std::net::SocketAddr)>;
    /// The server's host name as the session uses it (A-labels for an IDN).
    fn host(&self) -> Option<String>;
    /// The TLS connection's channel binding (for SCRAM -PLUS), if known.
    fn channel_binding(&self) -> Option<ChannelBinding>;
    /// The TLS connection's channel binding is known (for SCRAM -PLUS).
    fn can_bind(&self) -> bool {
        self.channel_binding().is_some()
    }
    /// `STAT`.
    fn stat(&mut self) -> Result<Stat, Failure>;
    /// `LIST`.
    fn list(&mut self) -> Result<Vec<ScanListing>, Failure>;
    /// `LIST n`.
    fn list_one(&mut self, msg: u32) -> Result<ScanListing, Failure>;
    /// `RETR n` into `out`; returns the octets.
    fn retr(&mut self, msg: u32, out: &mut Vec<u8>) -> Result<u64, Failure>;
    /// `TOP n lines` into `out`; returns the octets.
    fn top(&mut self, msg: u32, lines: u32, out: &mut Vec<u8>) -> Result<u64, Failure>;
    /// `UIDL`.
    fn uidl(&mut self) -> Result<Vec<UniqueIdListing>, Failure>;
    /// `UIDL n`.
    fn uidl_one(&mut self, msg: u32) -> Result<UniqueIdListing, Failure>;
    /// `DELE n`.
    fn dele(&mut self, msg: u32) -> Result<Reply, Failure>;
    /// `RSET`.
    fn rset(&mut self) -> Result<Reply, Failure>;
    /// `NOOP`.
    fn noop(&mut self) -> Result<Reply, Failure>;
    /// `QUIT`.
    fn quit(self) -> Result<Reply, Failure>;
    /// `UTF8`.
    fn utf8(&mut self) -> Result<Reply, Failure>;
    /// `LANG`.
    fn lang(&mut self) -> Result<Vec<(String, String)>, Failure>;
    /// `LANG tag`.
    fn set_lang(&mut self, tag: &str) -> Result<Reply, Failure>;
    /// `STLS` and the handshake.
    fn stls(self) -> Result<Self, Failure>;
    /// Many RETRs (pipelined where allowed), each message collected whole, in order: through
    /// [`retr_many_events`](Adapter::retr_many_events), checking the order of the events.
    fn retr_many(&mut self, msgs: &[u32]) -> Result<Vec<Retrieved>, Failure> {
        let mut done: Vec<Retrieved> = Vec::new();
        let mut body = Vec::new();
        let mut started = false;
        self.retr_many_events(msgs, &mut |msg, event| {
            match event {
                RetrEvent::Start => {
                    assert!(!started && body.is_empty(), "Start twice, or after a chunk");
                    started = true;
                }
                RetrEvent::Chunk(chunk) => {
                    assert!(started, "a chunk before Start");
                    body.extend_from_slice(chunk);
                }
                RetrEvent::End { octets } => {
                    assert!(std::mem::take(&mut started), "End without Start");
                    assert_eq!(octets, body.len() as u64);
                    done.push((msg, Ok(std::mem::take(&mut body))));
                }
                RetrEvent::Refused(e) => {
                    assert!(!started, "Start for a refused message");
                    done.push((msg, Err(e)));
                }
                other => panic!("unexpected {other:?}"),
            }
            Ok(())
        })?;
        Ok(done)
    }
    /// Many DELEs (pipelined where allowed).
    fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Failure>;
    /// `retr` into a writer that fails at its first write.
    fn retr_into_failing_writer(&mut self, msg: u32) -> Result<u64, Failure>;
    /// STLS through `stls_start`, `into_parts` and `from_parts`, with the adapter's own
    /// rustls handshake (as a caller's TLS stack would do it), trusting `ca_pem` for
    /// `server_name`. The session handed from `into_parts` must carry no channel binding
    /// (the adapter asserts it); with `set_binding`, the caller sets the binding of its own
    /// TLS session on it (`set_channel_binding`) before `from_parts`.
    fn stls_by_parts(
        self,
        ca_pem: &str,
        server_name: &str,
        set_binding: bool,
    ) -> Result<Self, Failure>;
    /// `into_parts`, then `from_parts` on the same stream and session.
    fn parts_round_trip(self) -> Result<Self, Failure>;
    /// `retr_many` with the caller's event handler (every event as the adapter reports it).
    fn retr_many_events(
        &mut self,
        msgs: &[u32],
        on_event: &mut dyn FnMut(u32, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure>;
    /// `listings` (LIST and UIDL together).
    fn listings(&mut self) -> Result<Listings, Failure>;
    /// `pipeline_replies` with the caller's event handler.
    fn pipeline_events(
        &mut self,
        pipeline: &mut Pipeline,
        count: usize,
        on_event: &mut dyn FnMut(PipelineEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure>;
    /// `dele_uid`.
    fn dele_uid(&mut self, msg: u32, uid: &str) -> Result<Reply, Failure>;
    /// `fetch_new`.
    fn fetch_new(
        &mut self,
        store: &mut dyn SeenStore,
        on_event: &mut dyn FnMut(&UniqueIdListing, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<FetchReport, Failure>;
    /// `retr_parsed` (the adapters' `mime` feature).
    fn retr_parsed(
        &mut self,
        msg: u32,
        max_octets: usize,
    ) -> Result<mail_parser::Message<'static>, Failure>;
}

/// What a suite's test function returns: nothing, or a `Result` that must be `Ok`.
#[doc(hidden)]
pub trait Outcome {
    /// Panics unless the test passed.
    fn check(self);
}

impl Outcome for () {
    fn check(self) {}
}

impl<E: std::fmt::Debug> Outcome for Result<(), E> {
    fn check(self) {
        self.unwrap();
    }
}

/// Expands into one `#[test]` per name, each running `$crate::$module::$name::<$adapter>` (the
/// expansion behind every suite's macro).
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    ($module:ident, $adapter:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::Outcome::check($crate::$module::$name::<$adapter>());
            }
        )*
    };
}

/// Expands into one `#[test]` per suite for the given [`Adapter`] type.
#[macro_export]
macro_rules! adapter_suite {
    ($adapter:ty) => {
        $crate::__suite_tests!(suite, $adapter;
            greeting_and_capabilities,
            every_method_byte_exact,
            err_replies_keep_the_session,
            apop_and_rpop,
            auth_plain_over_tls,
            login_prefers_cram_md5,
            login_prefers_scram,
            login_falls_back_to_user_pass_over_tls,
            login_refuses_plaintext_passwords,
            login_uses_apop_only_when_allowed,
            login_hand_off_drops_early_bytes,
            utf8_and_lang,
            utf8_refused,
            stls_upgrades,
            stls_refused,
            stls_injection_is_fatal,
            stls_on_tls_is_refused_locally,
            implicit_tls_session,
            host_name_is_verified,
            untrusted_certificate_is_refused,
            silent_server_times_out,
            stall_mid_reply_times_out,
            disconnect_mid_retr,
            disconnect_mid_retr_under_tls,
            bare_lf_server,
            malformed_greeting,
            repeated_uid_is_a_protocol_error,
            overlong_status_line,
            greeting_refused,
            retr_many_pipelined,
            retr_many_without_pipelining,
            dele_many_pipelined,
            listings_pipelined,
            pipeline_quit_rides_with_the_last_retrs,
            drop_without_quit_sends_no_quit,
            quit_err_means_not_committed,
            quit_before_login,
            mailbox_fetch_all_and_delete,
            mailbox_cut_in_retr_commits_nothing,
            mailbox_stls_login,
            mailbox_without_capa,
            mailbox_bare_lf,
            parity_login_with_unknown_mechanisms_uses_user_pass,
            parity_capa_on_a_closed_connection_is_closed,
            parity_config_is_ored_with_the_login_policy,
            parity_failing_sink_drains_the_body,
            stls_on_a_callers_own_stream,
        );
    };
}

// ---- helpers ----

const HOST: &str = "127.0.0.1";

/// Runs `script` on a scripted server (implicit TLS when `security` says so), connects with
/// `options`, hands the result to `session`, and returns the transcript.
fn scripted<A: Adapter>(
    script: &str,
    security: Security,
    options: &ConnectOptions,
    session: impl FnOnce(Result<A, Failure>),
) -> Transcript {
    let script = Script::parse(script).expect("valid script");
    let server = if security == Security::Implicit {
        ScriptedServer::start_tls(script)
    } else {
        ScriptedServer::start(script)
    }
    .expect("scripted server starts");
    session(A::connect(HOST, server.port(), security, options));
    server.finish().expect("scripted server ran")
}

/// Like [`scripted`] for a session that must connect; checks that the script completed and
/// that the client sent exactly `expected`.
fn exact<A: Adapter>(
    script: &str,
    security: Security,
    options: &ConnectOptions,
    expected: &str,
    session: impl FnOnce(A),
) {
    let transcript = scripted::<A>(script, security, options, |connected| {
        session(connected.expect("connects"))
    });
    transcript.assert_complete();
    assert_eq!(transcript.received_str(), expected, "{transcript}");
}

#[track_caller]
fn server_error<T: std::fmt::Debug>(result: Result<T, Failure>) -> ServerError {
    match result {
        Err(Failure::Server(e)) => e,
        other => panic!("expected a -ERR, got {other:?}"),
    }
}

const GREETING: &str = "S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
const CAPA: &str = r"C: CAPA
    S-RAW: +OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\nIMPLEMENTATION test-server\r\n.\r\n";
const CAPA_PIPELINING: &str = r"C: CAPA
    S-RAW: +OK\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n";

/// Greeting, CAPA, USER/PASS, CAPA.
fn login_script(capa: &str) -> String {
    format!("{GREETING}\n{capa}\nC: USER alice\nS: +OK\nC: PASS secret\nS: +OK logged in\n{capa}\n")
}

const LOGIN_WIRE: &str = "CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\n";

fn logged_in<A: Adapter>(mut pop: A) -> A {
    pop.user("alice").unwrap();
    pop.pass("secret").unwrap();
    pop
}

// ---- the method set ----

/// The greeting and the automatic CAPA (poplib: `getwelcome`, `capa`).
pub fn greeting_and_capabilities<A: Adapter>() {
    let script = format!("{GREETING}\n{CAPA}\nC: QUIT\nS: +OK bye");
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nQUIT\r\n",
        |pop| {
            let greeting = pop.greeting();
            assert_eq!(
                greeting.text,
                "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
            );
            assert!(greeting.apop);
            assert_eq!(pop.phase(), Phase::Authorization);
            assert!(!pop.is_tls());
            let capabilities = pop.capabilities().unwrap();
            assert!(capabilities.top && capabilities.user && capabilities.uidl);
            assert_eq!(capabilities.implementation.as_deref(), Some("test-server"));
            assert_eq!(pop.quit().unwrap().text, "bye");
        },
    );
}

/// Every TRANSACTION method once, with a byte-exact transcript (poplib: `stat`, `list`,
/// `retr`, `top`, `uidl`, `dele`, `noop`, `rset`, `quit`).
pub fn every_method_byte_exact<A: Adapter>() {
    let script = format!(
        r"{}
        C: STAT
        S: +OK 2 320
        C: LIST
        S-RAW: +OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n
        C: LIST 2
        S: +OK 2 200
        C: UIDL
        S-RAW: +OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n
        C: UIDL 1
        S: +OK 1 whqtswO00WBw418f9t5JxYwZ
        C: RETR 1
        S-RAW: +OK 120 octets\r\nFrom: a@example.org\r\nSubject: Dummy\r\n\r\n..leading dot\r\nline2\r\n.\r\n
        C: TOP 2 1
        S-RAW: +OK\r\nSubject: two\r\n\r\nfirst\r\n.\r\n
        C: DELE 1
        S: +OK message 1 deleted
        C: RSET
        S: +OK maildrop has 2 messages
        C: NOOP
        S: +OK
        C: QUIT
        S: +OK dewey POP3 server signing off
        ",
        login_script(CAPA)
    );
    let expected = format!(
        "{LOGIN_WIRE}STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n"
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &expected,
        |pop| {
            let mut pop = logged_in(pop);
            assert_eq!(pop.phase(), Phase::Transaction);
            assert_eq!(
                pop.stat().unwrap(),
                Stat {
                    count: 2,
                    size: 320
                }
            );
            assert_eq!(
                pop.list().unwrap(),
                vec![
                    ScanListing { msg: 1, size: 120 },
                    ScanListing { msg: 2, size: 200 }
                ]
            );
            assert_eq!(pop.list_one(2).unwrap(), ScanListing { msg: 2, size: 200 });
            let uids = pop.uidl().unwrap();
            assert_eq!(uids.len(), 2);
            assert_eq!(
                uids[1],
                UniqueIdListing {
                    msg: 2,
                    uid: "QhdPYR:00WBw1Ph7x7".into()
                }
            );
            assert_eq!(pop.uidl_one(1).unwrap().uid, "whqtswO00WBw418f9t5JxYwZ");
            let mut message = Vec::new();
            let octets = pop.retr(1, &mut message).unwrap();
            assert_eq!(
                message,
                b"From: a@example.org\r\nSubject: Dummy\r\n\r\n.leading dot\r\nline2\r\n"
            );
            assert_eq!(octets, message.len() as u64);
            let mut top = Vec::new();
            pop.top(2, 1, &mut top).unwrap();
            assert_eq!(top, b"Subject: two\r\n\r\nfirst\r\n");
            assert_eq!(pop.dele(1).unwrap().text, "message 1 deleted");
            pop.rset().unwrap();
            pop.noop().unwrap();
            assert_eq!(pop.quit().unwrap().text, "dewey POP3 server signing off");
        },
    );
}

/// `-ERR` is an error with its typed code, and the session goes on (poplib: `test_exceptions`,
/// `test_user` with an invalid user).
pub fn err_replies_keep_the_session<A: Adapter>() {
    let script = format!(
        r"{GREETING}
        {CAPA}
        C: USER nobody
        S: -ERR no such user
        C: USER alice
        S: +OK
        C: PASS wrong
        S: -ERR [AUTH] invalid password
        C: USER alice
        S: +OK
        C: PASS secret
        S: +OK
        {CAPA}
        C: LIST 9
        S: -ERR [SYS/TEMP] no such message, only 2 messages in maildrop
        C: RETR 9
        S: -ERR no such message
        C: UIDL 9
        S: -ERR [X-UNKNOWN] nope
        C: NOOP
        S: +OK
        "
    );
    let expected = "CAPA\r\nUSER nobody\r\nUSER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nCAPA\r\nLIST 9\r\nRETR 9\r\nUIDL 9\r\nNOOP\r\n";
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        expected,
        |mut pop| {
            let e = server_error(pop.user("nobody"));
            assert_eq!(
                (e.command, e.code, e.text.as_str()),
                (CommandKind::User, None, "no such user")
            );
            pop.user("alice").unwrap();
            let e = server_error(pop.pass("wrong"));
            assert_eq!(e.code, Some(ResponseCode::Auth));
            assert_eq!(pop.phase(), Phase::Authorization);
            let mut pop = logged_in(pop);
            let e = server_error(pop.list_one(9));
            assert_eq!(e.code, Some(ResponseCode::SysTemp));
            assert!(e.code.as_ref().unwrap().is_transient());
            let mut sink = Vec::new();
            assert_eq!(
                server_error(pop.retr(9, &mut sink)).command,
                CommandKind::Retr
            );
            assert!(sink.is_empty());
            assert_eq!(
                server_error(pop.uidl_one(9)).code,
                Some(ResponseCode::Other("X-UNKNOWN".into()))
            );
            pop.noop().unwrap();
        },
    );
}

/// APOP with RFC 1939's example digest, and RPOP (poplib: `test_apop`, `test_rpop`).
pub fn apop_and_rpop<A: Adapter>() {
    let script = format!(
        r"{GREETING}
        {CAPA}
        C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
        S: -ERR [AUTH] permission denied
        C: USER mrose
        S: +OK
        C: RPOP mrose
        S: +OK mrose's maildrop has 2 messages
        {CAPA}
        C: NOOP
        S: +OK
        "
    );
    let expected = "CAPA\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nUSER mrose\r\nRPOP mrose\r\nCAPA\r\nNOOP\r\n";
    // APOP without TLS needs plaintext allowed (an observer can crack its digest offline).
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        expected,
        |mut pop| {
            assert_eq!(
                server_error(pop.apop("mrose", "tanstaaf")).command,
                CommandKind::Apop
            );
            pop.user("mrose").unwrap();
            pop.rpop("mrose").unwrap();
            assert_eq!(pop.phase(), Phase::Transaction);
            pop.noop().unwrap();
        },
    );
}

/// Any SASL mechanism through `auth`; PLAIN is fine over TLS without allowing plaintext.
pub fn auth_plain_over_tls<A: Adapter>() {
    let script = format!(
        r"S: +OK ready
        {CAPA}
        C: AUTH PLAIN AGFsaWNlAHNlY3JldC1h
        S: +OK
        {CAPA}
        C: NOOP
        S: +OK
        "
    );
    exact::<A>(
        &script,
        Security::Implicit,
        &ConnectOptions::default(),
        "CAPA\r\nAUTH PLAIN AGFsaWNlAHNlY3JldC1h\r\nCAPA\r\nNOOP\r\n",
        |mut pop| {
            assert!(pop.is_tls());
            pop.auth(Plain::new(None, "alice".into(), "secret-a".into()))
                .unwrap();
            assert_eq!(pop.phase(), Phase::Transaction);
            pop.noop().unwrap();
        },
    );
}

/// Without TLS (plaintext allowed: an observer could crack CRAM-MD5 offline), `login` prefers
/// CRAM-MD5 (RFC 2195's example exchange).
pub fn login_prefers_cram_md5<A: Adapter>() {
    let script = r"S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\n.\r\n
        C: AUTH CRAM-MD5
        S: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
        C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: NOOP
        S: +OK
        ";
    let expected = "CAPA\r\nAUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\nCAPA\r\nNOOP\r\n";
    exact::<A>(
        script,
        Security::None,
        &ConnectOptions::plaintext(),
        expected,
        |mut pop| {
            assert_eq!(
                pop.login("tim", "tanstaaftanstaaf").unwrap(),
                LoginMethod::CramMd5
            );
            pop.noop().unwrap();
        },
    );
}

/// SCRAM-SHA-256 comes first; its client-first message carries a fresh nonce: two logins
/// never send the same one (RFC 5802 §5.1, a replayed exchange would be accepted).
pub fn login_prefers_scram<A: Adapter>() {
    let script = r"S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nSASL PLAIN CRAM-MD5 SCRAM-SHA-256\r\n.\r\n
        C-PREFIX: AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9
        S: -ERR [AUTH] not today
        ";
    let options = ConnectOptions::plaintext();
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let transcript = scripted::<A>(script, Security::None, &options, |pop| {
            let e = server_error(pop.expect("connects").login("user", "pencil"));
            assert_eq!(
                (e.command, e.code),
                (CommandKind::Auth, Some(ResponseCode::Auth))
            );
        });
        transcript.assert_complete();
        let auth = transcript.received_lines()[1].to_vec();
        let b64 = auth
            .strip_prefix(b"AUTH SCRAM-SHA-256 ")
            .and_then(|rest| rest.strip_suffix(b"\r\n"))
            .expect("an initial response");
        let first = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
            .expect("base64");
        let nonce = first
            .strip_prefix(b"n,,n=user,r=")
            .expect("client-first-message")
            .to_vec();
        assert!(nonce.len() >= 16, "{nonce:?}");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "the same nonce twice");
}

/// Over TLS, a server offering only USER gets USER/PASS.
pub fn login_falls_back_to_user_pass_over_tls<A: Adapter>() {
    let script = login_script("C: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\n.\\r\\n") + "C: NOOP\nS: +OK\n";
    exact::<A>(
        &script,
        Security::Implicit,
        &ConnectOptions::default(),
        &format!("{LOGIN_WIRE}NOOP\r\n"),
        |mut pop| {
            assert_eq!(pop.login("alice", "secret").unwrap(), LoginMethod::UserPass);
            assert_eq!(pop.phase(), Phase::Transaction);
            pop.noop().unwrap();
        },
    );
}

/// Without TLS and without permission, no password leaves the client, nor an exchange an
/// observer could crack offline (CRAM-MD5, SCRAM: issue 10 item 9).
pub fn login_refuses_plaintext_passwords<A: Adapter>() {
    let script = r"S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n.\r\n
        ";
    exact::<A>(
        script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\n",
        |mut pop| {
            assert_eq!(
                pop.login("alice", "secret").unwrap_err(),
                Failure::Login(LoginChoiceError::WouldExposePassword)
            );
            assert_eq!(
                pop.pass("secret").unwrap_err(),
                Failure::Usage(EnqueueError::CleartextCredentials {
                    command: CommandKind::Pass
                })
            );
            assert!(matches!(
                pop.auth(Plain::new(None, "alice".into(), "secret".into())),
                Err(Failure::Usage(_))
            ));
        },
    );
}

/// APOP only when the caller allows it.
pub fn login_uses_apop_only_when_allowed<A: Adapter>() {
    let script = format!(
        "{GREETING}\n{CAPA}\nC: APOP mrose c4c9334bac560ecc979e58001b3e22fb\nS: +OK\n{CAPA}\nC: NOOP\nS: +OK\n"
    );
    let options = ConnectOptions {
        allow_apop: true,
        ..ConnectOptions::plaintext()
    };
    let expected = "CAPA\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nCAPA\r\nNOOP\r\n";
    exact::<A>(&script, Security::None, &options, expected, |mut pop| {
        assert_eq!(pop.login("mrose", "tanstaaf").unwrap(), LoginMethod::Apop);
        pop.noop().unwrap();
    });
    let script = format!(
        "{GREETING}\n{CAPA}\nC: USER mrose\nS: +OK\nC: PASS tanstaaf\nS: +OK\n{CAPA}\nC: NOOP\nS: +OK\n"
    );
    let expected = "CAPA\r\nUSER mrose\r\nPASS tanstaaf\r\nCAPA\r\nNOOP\r\n";
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        expected,
        |mut pop| {
            assert_eq!(
                pop.login("mrose", "tanstaaf").unwrap(),
                LoginMethod::UserPass
            );
            pop.noop().unwrap();
        },
    );
}

/// A server that hands the connection to a new process when the login succeeds drops every
/// byte that arrived before its `+OK` (issue 10 item 11). Nothing is pipelined behind PASS, so
/// nothing is lost; the CAPA asked after login goes out with the next command, in one write.
pub fn login_hand_off_drops_early_bytes<A: Adapter>() {
    let script = format!(
        r"{GREETING}
        {CAPA_PIPELINING}
        C: USER alice
        S: +OK
        C: PASS secret
        HANDOFF
        S: +OK logged in
        C: CAPA
        C: STAT
        S-RAW: +OK\r\nPIPELINING\r\nTOP\r\nRESP-CODES\r\n.\r\n+OK 2 320\r\n
        C: QUIT
        S: +OK bye
        "
    );
    let transcript = scripted::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        |connected| {
            let mut pop = connected.expect("connects");
            assert_eq!(pop.login("alice", "secret").unwrap(), LoginMethod::UserPass);
            assert_eq!(pop.phase(), Phase::Transaction);
            assert_eq!(
                pop.stat().unwrap(),
                Stat {
                    count: 2,
                    size: 320
                }
            );
            assert!(pop.capabilities().unwrap().top);
            pop.quit().unwrap();
        },
    );
    transcript.assert_complete();
    assert_eq!(
        transcript.dropped_at_hand_off(),
        b"",
        "nothing may follow PASS before its reply\n{transcript}"
    );
    assert_eq!(
        transcript.received_str(),
        "CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\nSTAT\r\nQUIT\r\n"
    );
}

/// UTF8 and LANG (RFC 6856; poplib: `test_utf8`).
pub fn utf8_and_lang<A: Adapter>() {
    let script = r"S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nUTF8 USER\r\nLANG\r\n.\r\n
        C: UTF8
        S: +OK I know RFC6856
        C: LANG
        S-RAW: +OK Language listing follows\r\nen English\r\nde Deutsch\r\n.\r\n
        C: LANG de
        S: +OK Sprache ist jetzt Deutsch
        ";
    exact::<A>(
        script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nUTF8\r\nLANG\r\nLANG de\r\n",
        |mut pop| {
            assert!(pop.capabilities().unwrap().utf8.unwrap().user);
            assert_eq!(pop.utf8().unwrap().text, "I know RFC6856");
            assert_eq!(
                pop.lang().unwrap(),
                vec![
                    ("en".into(), "English".into()),
                    ("de".into(), "Deutsch".into())
                ]
            );
            assert_eq!(
                pop.set_lang("de").unwrap().text,
                "Sprache ist jetzt Deutsch"
            );
        },
    );
}

/// A server without UTF8 refuses it (poplib: `test_utf8_raises_if_unsupported`).
pub fn utf8_refused<A: Adapter>() {
    let script = format!("S: +OK ready\n{CAPA}\nC: UTF8\nS: -ERR What is UTF8?!\n{CAPA}\n");
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nUTF8\r\nCAPA\r\n",
        |mut pop| {
            assert_eq!(server_error(pop.utf8()).text, "What is UTF8?!");
            assert!(!pop.capa().unwrap().stls);
        },
    );
}

// ---- TLS ----

const CAPA_STLS: &str = r"C: CAPA
    S-RAW: +OK\r\nUSER\r\nSTLS\r\n.\r\n";

/// STLS: handshake, CAPA again, then a password is allowed (poplib: `test_stls_capa`,
/// `test_stls`, `test_stls` again on the TLS connection).
pub fn stls_upgrades<A: Adapter>() {
    let script = format!(
        r"S: +OK ready
        {CAPA_STLS}
        C: STLS
        S: +OK Begin TLS negotiation
        STARTTLS
        {CAPA}
        C: USER alice
        S: +OK
        C: PASS secret
        S: +OK
        {CAPA}
        C: QUIT
        S: +OK
        "
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nSTLS\r\nCAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\nQUIT\r\n",
        |pop| {
            assert!(pop.capabilities().unwrap().stls);
            let mut pop = pop.stls().unwrap();
            assert!(pop.is_tls());
            assert!(!pop.capabilities().unwrap().stls);
            assert_eq!(pop.login("alice", "secret").unwrap(), LoginMethod::UserPass);
            pop.quit().unwrap();
        },
    );
    // Through connect, and only the plaintext part before STLS.
    let script =
        format!("S: +OK ready\n{CAPA_STLS}\nC: STLS\nS: +OK\nSTARTTLS\n{CAPA}\nC: QUIT\nS: +OK\n");
    let transcript = scripted::<A>(
        &script,
        Security::StartTls,
        &ConnectOptions::default(),
        |pop| {
            let pop = pop.expect("connects");
            assert!(pop.is_tls());
            pop.quit().unwrap();
        },
    );
    transcript.assert_complete();
    assert_eq!(transcript.received_before_tls(), b"CAPA\r\nSTLS\r\n");
}

/// A `-ERR` to STLS fails the connect: no silent plaintext fallback.
pub fn stls_refused<A: Adapter>() {
    let script = format!("S: +OK ready\n{CAPA}\nC: STLS\nS: -ERR not now\nEOF\n");
    let transcript = scripted::<A>(
        &script,
        Security::StartTls,
        &ConnectOptions::default(),
        |pop| {
            let e = server_error(pop);
            assert_eq!(e.command, CommandKind::Stls);
        },
    );
    transcript.assert_complete();
}

/// Bytes after the `+OK` to STLS are an injection: fatal, and nothing more is sent.
pub fn stls_injection_is_fatal<A: Adapter>() {
    let script = format!(
        r"S: +OK ready
        {CAPA_STLS}
        C: STLS
        S-RAW: +OK Begin TLS\r\n+OK injected\r\n
        EOF
        "
    );
    let transcript = scripted::<A>(
        &script,
        Security::StartTls,
        &ConnectOptions::default(),
        |pop| {
            assert_eq!(
                pop.err(),
                Some(Failure::Protocol(ProtocolError::StartTlsInjection))
            );
        },
    );
    transcript.assert_complete();
    assert_eq!(transcript.received_str(), "CAPA\r\nSTLS\r\n");
}

/// STLS on a TLS connection is refused before anything is sent (poplib: `test_stls` on
/// `POP3_SSL`).
pub fn stls_on_tls_is_refused_locally<A: Adapter>() {
    let script = format!("S: +OK ready\n{CAPA}\nEOF\n");
    exact::<A>(
        &script,
        Security::Implicit,
        &ConnectOptions::default(),
        "CAPA\r\n",
        |pop| {
            assert!(!pop.capabilities().unwrap().stls);
            assert!(matches!(
                pop.stls(),
                Err(Failure::Usage(EnqueueError::TlsAlreadyActive))
            ));
        },
    );
}

/// A whole session over implicit TLS (poplib: the `POP3_SSL` class).
pub fn implicit_tls_session<A: Adapter>() {
    let script = format!(
        "{}C: RETR 1\nS-RAW: +OK\\r\\nsecret mail\\r\\n.\\r\\n\nC: QUIT\nS: +OK\n",
        login_script(CAPA)
    );
    exact::<A>(
        &script,
        Security::Implicit,
        &ConnectOptions::default(),
        &format!("{LOGIN_WIRE}RETR 1\r\nQUIT\r\n"),
        |pop| {
            assert!(pop.is_tls());
            let mut pop = logged_in(pop);
            let mut message = Vec::new();
            pop.retr(1, &mut message).unwrap();
            assert_eq!(message, b"secret mail\r\n");
            pop.quit().unwrap();
        },
    );
}

/// The certificate must name the host (poplib: `test_stls_context`).
pub fn host_name_is_verified<A: Adapter>() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    let config = std::sync::Arc::new(config);
    let options = ConnectOptions {
        ca_pem: Some(certified.cert.pem()),
        ..ConnectOptions::default()
    };
    let script = Script::parse(&format!("S: +OK ready\n{CAPA}\nC: QUIT\nS: +OK\n")).expect("valid");
    for (host, ok) in [("127.0.0.1", false), ("localhost", true)] {
        let server = ScriptedServer::builder(script.clone())
            .implicit_tls()
            .tls_config(config.clone())
            .start()
            .expect("starts");
        match A::connect(host, server.port(), Security::Implicit, &options) {
            Ok(pop) => {
                assert!(ok, "{host} accepted with a certificate for localhost only");
                pop.quit().unwrap();
            }
            Err(Failure::Tls(_)) => assert!(!ok, "{host} refused"),
            Err(other) => panic!("{other:?}"),
        }
        let transcript = server.finish().expect("ran");
        assert_eq!(transcript.is_complete(), ok, "{transcript}");
    }
}

/// An untrusted certificate is refused; only the dangerous switch accepts it.
pub fn untrusted_certificate_is_refused<A: Adapter>() {
    let untrusted = TestCa::generate().expect("certificate");
    let script = Script::parse(&format!("S: +OK ready\n{CAPA}\nC: QUIT\nS: +OK\n")).expect("valid");
    let run = |options: &ConnectOptions| {
        let server = ScriptedServer::builder(script.clone())
            .implicit_tls()
            .tls_config(untrusted.server_config())
            .start()
            .expect("starts");
        let result = A::connect(HOST, server.port(), Security::Implicit, options)
            .map(|pop| pop.quit().unwrap());
        let transcript = server.finish().expect("ran");
        (result, transcript)
    };
    let (result, transcript) = run(&ConnectOptions::default());
    assert!(matches!(result, Err(Failure::Tls(_))), "{result:?}");
    assert!(transcript.received().is_empty());
    let (result, transcript) = run(&ConnectOptions {
        accept_any_certificate: true,
        ..ConnectOptions::default()
    });
    assert!(result.is_ok(), "{result:?}");
    transcript.assert_complete();
}

// ---- stalls, cuts and broken servers ----

/// A server that never greets ends in a timeout, not a hang (poplib: `TestTimeouts`).
///
/// Bounded by events, not by the clock: the server stays silent for 3 s and then closes, so
/// a client without a working 300 ms timeout would see that close (a different failure)
/// instead of [`Failure::Timeout`]. No wall-clock slack to tune on a loaded machine.
pub fn silent_server_times_out<A: Adapter>() {
    scripted::<A>(
        "SLEEP: 3000",
        Security::None,
        &ConnectOptions::short_timeout(),
        |pop| {
            assert!(matches!(pop.err(), Some(Failure::Timeout(_))));
        },
    );
}

/// A server that stops in the middle of a reply: timeout, then the connection is dead.
pub fn stall_mid_reply_times_out<A: Adapter>() {
    let script = format!(
        "{}C: RETR 1\nS-RAW: +OK\\r\\nhalf a line\nSLEEP: 1500\n",
        login_script(CAPA)
    );
    let options = ConnectOptions {
        allow_plaintext: true,
        ..ConnectOptions::short_timeout()
    };
    let transcript = scripted::<A>(&script, Security::None, &options, |pop| {
        let mut pop = logged_in(pop.expect("connects"));
        let mut sink = Vec::new();
        let error = pop.retr(1, &mut sink).unwrap_err();
        assert!(matches!(error, Failure::Timeout(_)), "{error:?}");
        assert_eq!(pop.noop().unwrap_err(), Failure::Closed);
    });
    assert_eq!(transcript.received_str(), format!("{LOGIN_WIRE}RETR 1\r\n"));
}

/// The connection ends in the middle of RETR: a protocol error, and no QUIT.
pub fn disconnect_mid_retr<A: Adapter>() {
    let script = format!(
        "{}C: RETR 1\nS-RAW: +OK\\r\\nSubject: cut\\r\\nhalf\nCLOSE\n",
        login_script(CAPA)
    );
    let transcript = scripted::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        |pop| {
            let mut pop = logged_in(pop.expect("connects"));
            let mut sink = Vec::new();
            let failure = pop.retr(1, &mut sink).unwrap_err();
            assert_eq!(
                failure,
                Failure::Protocol(ProtocolError::UnexpectedEof {
                    command: CommandKind::Retr
                })
            );
            assert_eq!(pop.noop().unwrap_err(), Failure::Closed);
        },
    );
    transcript.assert_complete();
}

/// The same under TLS, cut without close_notify (a truncation): fatal as well.
pub fn disconnect_mid_retr_under_tls<A: Adapter>() {
    let script = format!(
        "{}C: RETR 1\nS-RAW: +OK\\r\\nSubject: cut\\r\\n\nCLOSE-ABRUPT\n",
        login_script(CAPA)
    );
    let transcript = scripted::<A>(
        &script,
        Security::Implicit,
        &ConnectOptions::default(),
        |pop| {
            let mut pop = logged_in(pop.expect("connects"));
            let failure = pop.retr(1, &mut Vec::new()).unwrap_err();
            assert!(failure.is_connection_failure(), "{failure:?}");
            assert_eq!(pop.noop().unwrap_err(), Failure::Closed);
        },
    );
    transcript.assert_complete();
}

/// A server that ends every line with a bare LF.
pub fn bare_lf_server<A: Adapter>() {
    let script = r"S-RAW: +OK hello\n
        C: CAPA
        S-RAW: +OK\nUSER\n.\n
        C: USER alice
        S-RAW: +OK\n
        C: PASS secret
        S-RAW: +OK\n
        C: CAPA
        S-RAW: +OK\nUSER\n.\n
        C: LIST
        S-RAW: +OK\n1 5\n.\n
        C: RETR 1
        S-RAW: +OK\nline\n..dot\n.\n
        C: QUIT
        S-RAW: +OK\n
        ";
    exact::<A>(
        script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}LIST\r\nRETR 1\r\nQUIT\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            assert_eq!(pop.list().unwrap(), vec![ScanListing { msg: 1, size: 5 }]);
            let mut message = Vec::new();
            pop.retr(1, &mut message).unwrap();
            assert_eq!(message, b"line\n.dot\n");
            pop.quit().unwrap();
        },
    );
}

/// A UIDL listing that repeats a unique-id is a protocol error that names it (issue 10 item
/// 2): the caller never gets a listing on which it could skip or delete the wrong message.
pub fn repeated_uid_is_a_protocol_error<A: Adapter>() {
    let script = format!(
        r"{}
        C: UIDL
        S-RAW: +OK\r\n1 same-uid\r\n2 other\r\n3 same-uid\r\n.\r\n
        ",
        login_script(CAPA)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}UIDL\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            assert_eq!(
                pop.uidl().unwrap_err(),
                Failure::Protocol(ProtocolError::DuplicateEntries {
                    listing: "UIDL",
                    numbers: vec![],
                    uids: vec!["same-uid".into()],
                    repeated: 1
                })
            );
            assert!(pop.dele(3).is_err(), "the connection is unusable after it");
        },
    );
}

/// A greeting that is not a status line (poplib's timeout server sends `+ Hola mundo`).
pub fn malformed_greeting<A: Adapter>() {
    scripted::<A>(
        "S-RAW: + Hola mundo\\n\nCLOSE",
        Security::None,
        &ConnectOptions::default(),
        |pop| {
            assert!(matches!(pop.err(), Some(Failure::Protocol(_))));
        },
    );
}

/// A status line over the 512-octet limit is a protocol error (poplib: `test_too_long_lines`).
pub fn overlong_status_line<A: Adapter>() {
    let long = "a".repeat(600);
    let script = format!("S: +OK ready\n{CAPA}\nC: USER alice\nS: +OK {long}\n");
    let transcript = scripted::<A>(&script, Security::None, &ConnectOptions::default(), |pop| {
        let mut pop = pop.expect("connects");
        let failure = pop.user("alice").unwrap_err();
        assert!(
            matches!(
                failure,
                Failure::Protocol(ProtocolError::LineTooLong { .. })
            ),
            "{failure:?}"
        );
        assert_eq!(pop.user("alice").unwrap_err(), Failure::Closed);
    });
    assert_eq!(transcript.received_str(), "CAPA\r\nUSER alice\r\n");
}

/// A `-ERR` greeting refuses the session.
pub fn greeting_refused<A: Adapter>() {
    let transcript = scripted::<A>(
        "S: -ERR [SYS/TEMP] overloaded\nEOF",
        Security::None,
        &ConnectOptions::default(),
        |pop| {
            assert_eq!(
                pop.err(),
                Some(Failure::GreetingRefused {
                    code: Some(ResponseCode::SysTemp),
                    text: "overloaded".into()
                })
            );
        },
    );
    transcript.assert_complete();
}

// ---- batches ----

/// With PIPELINING, every RETR goes out before the first reply (the server answers only after
/// reading all three).
pub fn retr_many_pipelined<A: Adapter>() {
    let script = format!(
        r"{}
        C: RETR 1
        C: RETR 2
        C: RETR 3
        S-RAW: +OK\r\none\r\n.\r\n-ERR [SYS/TEMP] locked\r\n+OK\r\nthree\r\n..\r\n.\r\n
        ",
        login_script(CAPA_PIPELINING)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}RETR 1\r\nRETR 2\r\nRETR 3\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let got = pop.retr_many(&[1, 2, 3]).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], (1, Ok(b"one\r\n".to_vec())));
            assert_eq!(got[1].0, 2);
            assert_eq!(
                got[1].1.as_ref().unwrap_err().code,
                Some(ResponseCode::SysTemp)
            );
            assert_eq!(got[2], (3, Ok(b"three\r\n.\r\n".to_vec())));
        },
    );
}

/// Without PIPELINING, one command at a time.
pub fn retr_many_without_pipelining<A: Adapter>() {
    let script = format!(
        r"{}
        C: RETR 1
        S-RAW: +OK\r\none\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\ntwo\r\n.\r\n
        ",
        login_script(CAPA)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}RETR 1\r\nRETR 2\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let got = pop.retr_many(&[1, 2]).unwrap();
            assert_eq!(
                got,
                vec![(1, Ok(b"one\r\n".to_vec())), (2, Ok(b"two\r\n".to_vec()))]
            );
        },
    );
}

/// DELE batches pipeline too; each refusal is reported in place.
pub fn dele_many_pipelined<A: Adapter>() {
    let script = format!(
        r"{}
        C: DELE 1
        C: DELE 2
        C: DELE 3
        S-RAW: +OK\r\n-ERR message 2 already deleted\r\n+OK\r\n
        C: QUIT
        S: +OK 2 deleted
        ",
        login_script(CAPA_PIPELINING)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}DELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let results = pop.dele_many(&[1, 2, 3]).unwrap();
            assert!(results[0].is_ok() && results[2].is_ok());
            assert_eq!(
                results[1].as_ref().unwrap_err().text,
                "message 2 already deleted"
            );
            assert!(matches!(
                pop.dele_many(&[4, 0]),
                Err(Failure::Usage(EnqueueError::MessageNumberZero))
            ));
            pop.quit().unwrap();
        },
    );
}

/// `listings`: LIST and UIDL go out together behind the CAPA after login (the server answers
/// only after reading all three); a UIDL refusal is returned typed with LIST's listing.
pub fn listings_pipelined<A: Adapter>() {
    let script = format!(
        r"{GREETING}
        {CAPA_PIPELINING}
        C: USER alice
        S: +OK
        C: PASS secret
        S: +OK logged in
        C: CAPA
        C: LIST
        C: UIDL
        S-RAW: +OK\r\nUSER\r\nPIPELINING\r\n.\r\n+OK\r\n1 5\r\n2 7\r\n.\r\n-ERR [SYS/PERM] no UIDL here\r\n
        C: LIST
        C: UIDL
        S-RAW: -ERR [IN-USE] busy\r\n+OK\r\n1 a\r\n.\r\n
        C: NOOP
        S: +OK
        "
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}LIST\r\nUIDL\r\nLIST\r\nUIDL\r\nNOOP\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let listings = pop.listings().unwrap();
            assert_eq!(
                listings.scan,
                [
                    ScanListing { msg: 1, size: 5 },
                    ScanListing { msg: 2, size: 7 }
                ]
            );
            let refused = listings.unique_ids.unwrap_err();
            assert_eq!(refused.command, CommandKind::Uidl);
            assert_eq!(refused.code, Some(ResponseCode::SysPerm));
            // A refused LIST fails the call; UIDL's reply is read too and the session goes on.
            assert_eq!(server_error(pop.listings()).code, Some(ResponseCode::InUse));
            pop.noop().unwrap();
        },
    );
}

/// `Pipeline::quit`: QUIT goes out with the last RETRs (the server answers only after reading
/// all three), its reply comes as `PipelineEvent::Quit`, and a later `quit` sends nothing.
pub fn pipeline_quit_rides_with_the_last_retrs<A: Adapter>() {
    let script = format!(
        r"{}
        C: RETR 1
        C: RETR 2
        C: QUIT
        S-RAW: +OK\r\none\r\n.\r\n-ERR [SYS/TEMP] locked\r\n+OK bye\r\n
        ",
        login_script(CAPA_PIPELINING)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}RETR 1\r\nRETR 2\r\nQUIT\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let mut pipeline = Pipeline::new();
            pipeline.retr(&[1, 2]).unwrap();
            pipeline.quit().unwrap();
            assert_eq!(pipeline.retr(&[3]), Err(EnqueueError::Closed));
            let mut seen = Vec::new();
            pop.pipeline_events(&mut pipeline, 3, &mut |event| {
                seen.push(match event {
                    PipelineEvent::Retr {
                        msg,
                        event: RetrEvent::Chunk(chunk),
                    } => format!("{msg}: {}", String::from_utf8_lossy(chunk)),
                    PipelineEvent::Retr {
                        msg,
                        event: RetrEvent::Refused(e),
                    } => format!("{msg} refused: {}", e.text),
                    PipelineEvent::Retr { msg, event } => format!("{msg} {event:?}"),
                    PipelineEvent::Quit { result } => format!("QUIT {}", result.unwrap().text),
                    other => format!("{other:?}"),
                });
                Ok(())
            })
            .unwrap();
            assert_eq!(
                seen,
                [
                    "1 Start",
                    "1: one\r\n",
                    "1 End { octets: 5 }",
                    "2 refused: locked",
                    "QUIT bye"
                ]
            );
            assert!(pipeline.is_empty());
            assert_eq!(pop.phase(), Phase::Closed);
            // No second QUIT.
            assert_eq!(
                pop.quit().unwrap_err(),
                Failure::Usage(EnqueueError::Closed)
            );
        },
    );
}

// ---- QUIT and drop ----

/// Dropping the connection sends no QUIT, so no deletion is committed.
pub fn drop_without_quit_sends_no_quit<A: Adapter>() {
    let script = format!("{}C: DELE 1\nS: +OK\nEOF\n", login_script(CAPA));
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}DELE 1\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            pop.dele(1).unwrap();
            drop(pop);
        },
    );
}

/// A `-ERR` to QUIT is the server saying the deletions were not committed.
pub fn quit_err_means_not_committed<A: Adapter>() {
    let script = format!(
        "{}C: DELE 1\nS: +OK\nC: QUIT\nS: -ERR [SYS/PERM] some deleted messages not removed\n",
        login_script(CAPA)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}DELE 1\r\nQUIT\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            pop.dele(1).unwrap();
            let e = server_error(pop.quit());
            assert_eq!(
                (e.command, e.code),
                (CommandKind::Quit, Some(ResponseCode::SysPerm))
            );
        },
    );
}

/// QUIT in AUTHORIZATION (poplib: `test_quit`).
pub fn quit_before_login<A: Adapter>() {
    let script = format!("S: +OK ready\n{CAPA}\nC: QUIT\nS: +OK closing.\n");
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nQUIT\r\n",
        |pop| {
            assert_eq!(pop.quit().unwrap().text, "closing.");
        },
    );
}

// ---- against the in-memory mailbox ----

fn mailbox_login<A: Adapter>(
    server: &MailboxServer,
    security: Security,
    options: &ConnectOptions,
) -> A {
    let mut pop = A::connect(HOST, server.port(), security, options).expect("connects");
    pop.login("alice", "secret-a").expect("logs in");
    pop
}

/// Fetch everything (pipelined), check UIDs and sizes, delete everything, QUIT commits.
pub fn mailbox_fetch_all_and_delete<A: Adapter>() {
    let messages = generate_mail(12, 3000, 7);
    let server = MailboxServer::start(messages.clone()).expect("starts");
    let mut pop = mailbox_login::<A>(&server, Security::None, &ConnectOptions::plaintext());
    let stat = pop.stat().unwrap();
    assert_eq!(stat.count, 12);
    let uids: Vec<String> = pop.uidl().unwrap().into_iter().map(|u| u.uid).collect();
    assert_eq!(uids, server.uids());
    let sizes = pop.list().unwrap();
    let numbers: Vec<u32> = (1..=12).collect();
    let fetched = pop.retr_many(&numbers).unwrap();
    for ((msg, body), original) in fetched.into_iter().zip(&messages) {
        let body = body.unwrap();
        assert_eq!(body, to_crlf(original), "message {msg}");
        assert_eq!(sizes[msg as usize - 1].size, body.len() as u64);
    }
    assert!(pop.dele_many(&numbers).unwrap().iter().all(Result::is_ok));
    pop.quit().unwrap();
    assert!(server.messages().is_empty());
}

/// A connection cut in the middle of RETR: fatal, and the DELE before it is not committed.
pub fn mailbox_cut_in_retr_commits_nothing<A: Adapter>() {
    let server = MailboxServer::builder(generate_mail(3, 20_000, 3))
        .drop_in_retr(1)
        .start()
        .expect("starts");
    let mut pop = mailbox_login::<A>(&server, Security::None, &ConnectOptions::plaintext());
    pop.dele(1).unwrap();
    let failure = pop.retr(2, &mut Vec::new()).unwrap_err();
    assert!(failure.is_connection_failure(), "{failure:?}");
    drop(pop);
    assert_eq!(server.messages().len(), 3);
}

/// STLS against the mailbox, then a password login without allowing plaintext.
pub fn mailbox_stls_login<A: Adapter>() {
    let server = MailboxServer::builder(generate_mail(2, 500, 1))
        .stls()
        .start()
        .expect("starts");
    let mut pop = mailbox_login::<A>(&server, Security::StartTls, &ConnectOptions::default());
    assert!(pop.is_tls());
    assert_eq!(pop.stat().unwrap().count, 2);
    pop.quit().unwrap();
}

/// A server without CAPA (RFC 1939 only): USER/PASS still works.
pub fn mailbox_without_capa<A: Adapter>() {
    let server = MailboxServer::builder(generate_mail(2, 500, 2))
        .no_capa()
        .start()
        .expect("starts");
    let mut pop = mailbox_login::<A>(&server, Security::None, &ConnectOptions::plaintext());
    assert_eq!(pop.list().unwrap().len(), 2);
    pop.quit().unwrap();
}

/// The mailbox in bare-LF mode: bodies come out with LF line ends, dot-unstuffed.
pub fn mailbox_bare_lf<A: Adapter>() {
    let messages = generate_mail(2, 800, 5);
    let server = MailboxServer::builder(messages.clone())
        .bare_lf()
        .start()
        .expect("starts");
    let mut pop = mailbox_login::<A>(&server, Security::None, &ConnectOptions::plaintext());
    let mut body = Vec::new();
    pop.retr(1, &mut body).unwrap();
    let expected: Vec<u8> = to_crlf(&messages[0])
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(&b'\n');
    assert_eq!(body, expected);
    pop.quit().unwrap();
}

// ---- parity: one documented answer, the same in both adapters (issue 11) ----

/// `login`'s choice has no catch-all: a server that offers only SASL mechanisms the client
/// does not know gets USER/PASS (the last resort of `choose_login`), in both adapters (async
/// used to fall back, blocking to fail).
pub fn parity_login_with_unknown_mechanisms_uses_user_pass<A: Adapter>() {
    let capa = r"C: CAPA
    S-RAW: +OK\r\nSASL GSSAPI X-UNKNOWN\r\n.\r\n";
    let script = format!(
        "{GREETING}\n{capa}\nC: USER alice\nS: +OK\nC: PASS secret\nS: +OK in\n{capa}\nC: NOOP\nS: +OK\n"
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        "CAPA\r\nUSER alice\r\nPASS secret\r\nCAPA\r\nNOOP\r\n",
        |mut pop| {
            assert_eq!(pop.login("alice", "secret"), Ok(LoginMethod::UserPass));
            pop.noop().unwrap();
        },
    );
}

/// `capa()` on a connection that is closed (here: the server hung up) is `Error::Closed` in
/// both adapters, never an empty answer, and sends nothing.
pub fn parity_capa_on_a_closed_connection_is_closed<A: Adapter>() {
    let script = format!("{GREETING}\n{CAPA}\nC: USER alice\nCLOSE\n");
    let transcript = scripted::<A>(&script, Security::None, &ConnectOptions::default(), |pop| {
        let mut pop = pop.expect("connects");
        let cut = pop.user("alice").unwrap_err();
        assert!(
            cut.is_connection_failure() || cut == Failure::Closed,
            "{cut:?}"
        );
        assert_eq!(pop.capa().unwrap_err(), Failure::Closed);
    });
    assert_eq!(
        transcript.received_str(),
        "CAPA\r\nUSER alice\r\n",
        "{transcript}"
    );
}

/// `Config::allow_plaintext_auth` set in the options is ORed with the login policy, never
/// overwritten by it (blocking used to overwrite it): PASS goes out without TLS.
pub fn parity_config_is_ored_with_the_login_policy<A: Adapter>() {
    let mut config = pop3_proto::Config::default();
    config.allow_plaintext_auth = true;
    let options = ConnectOptions {
        config,
        allow_plaintext: false,
        ..ConnectOptions::default()
    };
    exact::<A>(
        &format!("{}C: NOOP\nS: +OK\n", login_script(CAPA)),
        Security::None,
        &options,
        &format!("{LOGIN_WIRE}NOOP\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            pop.noop().unwrap();
        },
    );
}

/// A failing sink: the writer is not called again, the rest of the body is read and
/// discarded (the framing stays intact), the writer's error is returned as `Error::Io`, and
/// the session goes on, in both adapters (async used to leave the rest unread).
pub fn parity_failing_sink_drains_the_body<A: Adapter>() {
    let script = format!(
        r"{}C: RETR 1
        S-RAW: +OK\r\nline one\r\nline two\r\n..dot\r\n.\r\n
        C: NOOP
        S: +OK still here
        ",
        login_script(CAPA)
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        &format!("{LOGIN_WIRE}RETR 1\r\nNOOP\r\n"),
        |pop| {
            let mut pop = logged_in(pop);
            let error = pop.retr_into_failing_writer(1).unwrap_err();
            assert!(matches!(error, Failure::Io(..)), "{error:?}");
            let reply = pop.noop().unwrap();
            assert_eq!(reply.text, "still here");
        },
    );
    // The rest is really read: a body cut after the sink failed is reported as the cut (the
    // reader went on), not as the sink's error returned at once.
    let script = format!(
        r"{}C: RETR 1
        S-RAW: +OK\r\nline one\r\n
        CLOSE
        ",
        login_script(CAPA)
    );
    let transcript = scripted::<A>(
        &script,
        Security::None,
        &ConnectOptions::plaintext(),
        |pop| {
            let mut pop = logged_in(pop.expect("connects"));
            let error = pop.retr_into_failing_writer(1).unwrap_err();
            assert!(error.is_connection_failure(), "{error:?}");
        },
    );
    assert_eq!(transcript.received_str(), format!("{LOGIN_WIRE}RETR 1\r\n"));
}

/// STLS on a caller's own stream: `stls_start` up to the `+OK`, `into_parts`, the caller's
/// TLS handshake, `from_parts` (which asks CAPA again), then the session goes on encrypted.
pub fn stls_on_a_callers_own_stream<A: Adapter>() {
    let script = format!(
        "{GREETING}\n{CAPA_STLS}\nC: STLS\nS: +OK begin TLS\nSTARTTLS\n{CAPA}\nC: USER alice\nS: +OK\n"
    );
    exact::<A>(
        &script,
        Security::None,
        &ConnectOptions::default(),
        "CAPA\r\nSTLS\r\nCAPA\r\nUSER alice\r\n",
        |pop| {
            assert!(pop.capabilities().unwrap().stls);
            let mut pop = pop
                .stls_by_parts(certificate_pem(), "127.0.0.1", false)
                .unwrap();
            assert!(pop.is_tls());
            assert!(!pop.capabilities().unwrap().stls);
            pop.user("alice").unwrap();
        },
    );
}
