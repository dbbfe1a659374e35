//! `pop3._core`: the Python face of the sans-IO POP3 core (`pop3-proto`).
//!
//! Nothing here touches a socket, a clock or a thread: Python's `socket`, `ssl` and `asyncio`
//! move the bytes (see `python/pop3/`), this module decides what they mean. It exposes:
//!
//! - [`PyClient`] (`pop3._core.Client`): the core's `Client` state machine, method for method
//!   (commands in, `receive_data`, `poll_event`, `poll_transmit`);
//! - [`PyEvent`] and [`PyCapabilities`]: owned copies of the core's events and capabilities;
//! - [`PyBodyDecoder`]: the core's streaming dot-unstuffer, for a caller that frames replies
//!   itself (`pop3.poplib` runs on [`PyClient`] instead);
//! - the APOP helpers (`pop3.poplib` checks `getwelcome()`'s timestamp with them) and the
//!   argument check;
//! - the exceptions `Error`, `ProtocolError` (the server broke the protocol: sticky) and
//!   `UsageError` (the caller asked for something invalid: nothing happened).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use pop3_proto::body::{BodyDecoder, Decoded};
use pop3_proto::capa::ExpirePolicy;
use pop3_proto::login::{LoginMethod, LoginPolicy, choose_login};
use pop3_proto::sasl::{CramMd5, Login, Plain, ScramSha256, XOAuth2};
use pop3_proto::{
    Capabilities, Client, Command, CommandId, Config, EnqueueError, Event, Phase, Pipelining,
    ProtocolError as CoreProtocolError, Quirk, ResponseCode, Secret, Trace,
};

create_exception!(
    pop3._core,
    Error,
    PyException,
    "The base of every error of the pop3 package."
);
create_exception!(
    pop3._core,
    ProtocolError,
    Error,
    "The server broke the protocol or the connection: the session is over (sticky)."
);
create_exception!(
    pop3._core,
    UsageError,
    Error,
    "The caller asked for something invalid now (wrong phase, bad argument): nothing was sent."
);

fn usage(e: EnqueueError) -> PyErr {
    UsageError::new_err(e.to_string())
}

fn protocol(e: &CoreProtocolError) -> PyErr {
    ProtocolError::new_err(e.to_string())
}

fn code_str(code: Option<&ResponseCode>) -> Option<String> {
    code.map(ToString::to_string)
}

fn phase_str(phase: Phase) -> &'static str {
    match phase {
        Phase::Greeting => "greeting",
        Phase::Authorization => "authorization",
        Phase::TlsHandshake => "tls_handshake",
        Phase::Transaction => "transaction",
        Phase::Update => "update",
        Phase::Closed => "closed",
        _ => "unknown",
    }
}

fn quirk_str(quirk: Quirk) -> &'static str {
    match quirk {
        Quirk::BareLineFeed => "bare_line_feed",
        Quirk::DotCrTerminator => "dot_cr_terminator",
        Quirk::MissingCapa => "missing_capa",
        Quirk::CapabilitiesAfterLogin => "capabilities_after_login",
        Quirk::BracketedGreetingText => "bracketed_greeting_text",
        Quirk::UidlWithoutMessageNumber => "uidl_without_message_number",
        Quirk::LooseStatusIndicator => "loose_status_indicator",
        _ => "other",
    }
}

fn method_str(method: LoginMethod) -> &'static str {
    match method {
        LoginMethod::ScramSha256 => "SCRAM-SHA-256",
        LoginMethod::CramMd5 => "CRAM-MD5",
        LoginMethod::Apop => "APOP",
        LoginMethod::Plain => "PLAIN",
        LoginMethod::Login => "LOGIN",
        LoginMethod::UserPass => "USER",
        _ => "other",
    }
}

/// The capabilities a server announced in answer to CAPA (RFC 2449, 3206, 6856).
#[pyclass(name = "Capabilities", module = "pop3._core", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PyCapabilities {
    /// `TOP`.
    top: bool,
    /// `USER`.
    user: bool,
    /// `SASL`: the mechanism names, upper-cased, in the order announced.
    sasl: Vec<String>,
    /// `RESP-CODES`.
    resp_codes: bool,
    /// `AUTH-RESP-CODE`.
    auth_resp_code: bool,
    /// `PIPELINING`.
    pipelining: bool,
    /// `UIDL`.
    uidl: bool,
    /// `STLS`.
    stls: bool,
    /// `LOGIN-DELAY`: the seconds, if announced.
    login_delay: Option<u32>,
    /// `EXPIRE`: `"NEVER"` or the number of days as a string, if announced.
    expire: Option<String>,
    /// `IMPLEMENTATION`.
    implementation: Option<String>,
    /// `UTF8`.
    utf8: bool,
    /// `LANG`.
    lang: bool,
    /// Lines with an unknown tag, verbatim.
    other: Vec<String>,
    /// Every capability line as sent.
    lines: Vec<String>,
}

impl From<&Capabilities> for PyCapabilities {
    fn from(c: &Capabilities) -> Self {
        Self {
            top: c.top,
            user: c.user,
            sasl: c.sasl.clone(),
            resp_codes: c.resp_codes,
            auth_resp_code: c.auth_resp_code,
            pipelining: c.pipelining,
            uidl: c.uidl,
            stls: c.stls,
            login_delay: c.login_delay.map(|d| d.seconds),
            expire: c.expire.map(|e| match e.policy {
                ExpirePolicy::Never => "NEVER".to_owned(),
                ExpirePolicy::Days(n) => n.to_string(),
                _ => "other".to_owned(),
            }),
            implementation: c.implementation.clone(),
            utf8: c.utf8.is_some(),
            lang: c.lang,
            other: c.other.clone(),
            lines: c.lines.clone(),
        }
    }
}

#[pymethods]
impl PyCapabilities {
    /// Whether the server offers the SASL mechanism `name` (case-insensitive).
    fn supports_sasl(&self, name: &str) -> bool {
        self.sasl.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    fn __repr__(&self) -> String {
        format!("Capabilities({:?})", self.lines)
    }
}

/// One thing the server said, in order: an owned copy of the core's `Event`.
///
/// `kind` is one of `greeting`, `ok`, `err`, `stat`, `list`, `uidl`, `lang`, `capabilities`,
/// `body`, `body_end`, `starttls`, `logged_in`, `quirk`, `cancelled`, `trace`. The other
/// attributes are set where the kind has them and `None` elsewhere. Terminal events (one per
/// command): `ok`, `err`, `starttls`, `cancelled`. `line` is the status line of the reply
/// (`greeting`, `ok`, `err`, `starttls`) exactly as received: the core's
/// `Client::last_status_line`, taken when the event is.
#[pyclass(name = "Event", module = "pop3._core", frozen, get_all)]
#[derive(Debug)]
pub struct PyEvent {
    /// The kind of event.
    kind: &'static str,
    /// The command it belongs to.
    id: Option<u64>,
    /// The command keyword (`ok`, `err`, `cancelled`).
    command: Option<&'static str>,
    /// `+OK` or `-ERR` (greeting).
    ok: Option<bool>,
    /// The response code, without brackets.
    code: Option<String>,
    /// The status line text (greeting, ok, err), the quirk name or the trace line.
    text: Option<String>,
    /// The status line as received, without its line end (greeting, ok, err, starttls).
    line: Option<Py<PyBytes>>,
    /// Whether APOP is possible (greeting).
    apop: Option<bool>,
    /// The message number (list, uidl) or the message count (stat).
    msg: Option<u32>,
    /// The size in octets (list, stat).
    size: Option<u64>,
    /// The unique id (uidl), or the language tag (lang).
    uid: Option<String>,
    /// The body bytes (body).
    chunk: Option<Py<PyBytes>>,
    /// Octets delivered (body_end).
    octets: Option<u64>,
    /// The capabilities (capabilities).
    capabilities: Option<Py<PyCapabilities>>,
    /// Whether this is the last event of its command (`ok`, `err`, `starttls`, `cancelled`).
    terminal: bool,
}

impl PyEvent {
    fn new(kind: &'static str, id: Option<CommandId>) -> Self {
        Self {
            kind,
            id: id.map(CommandId::get),
            command: None,
            ok: None,
            code: None,
            text: None,
            line: None,
            apop: None,
            msg: None,
            size: None,
            uid: None,
            chunk: None,
            octets: None,
            capabilities: None,
            terminal: false,
        }
    }

    fn from_event(py: Python<'_>, event: Event<'_>) -> PyResult<Self> {
        let id = event.id();
        let terminal = event.is_terminal();
        let mut e = match event {
            Event::Greeting {
                ok,
                code,
                text,
                apop,
            } => Self {
                ok: Some(ok),
                code: code_str(code),
                text: Some(text.to_owned()),
                apop: Some(apop),
                ..Self::new("greeting", id)
            },
            Event::Ok {
                command,
                code,
                text,
                ..
            } => Self {
                command: Some(command.keyword()),
                code: code_str(code),
                text: Some(text.to_owned()),
                ..Self::new("ok", id)
            },
            Event::Err {
                command,
                code,
                text,
                ..
            } => Self {
                command: Some(command.keyword()),
                code: code_str(code),
                text: Some(text.to_owned()),
                ..Self::new("err", id)
            },
            Event::Stat { count, size, .. } => Self {
                msg: Some(count),
                size: Some(size),
                ..Self::new("stat", id)
            },
            Event::ListEntry { msg, size, .. } => Self {
                msg: Some(msg),
                size: Some(size),
                ..Self::new("list", id)
            },
            Event::UidlEntry { msg, uid, .. } => Self {
                msg: Some(msg),
                uid: Some(uid.to_owned()),
                ..Self::new("uidl", id)
            },
            Event::LangEntry {
                tag, description, ..
            } => Self {
                uid: Some(tag.to_owned()),
                text: Some(description.to_owned()),
                ..Self::new("lang", id)
            },
            Event::Capabilities { capabilities, .. } => Self {
                capabilities: Some(Py::new(py, PyCapabilities::from(capabilities))?),
                ..Self::new("capabilities", id)
            },
            Event::Body { chunk, .. } => Self {
                chunk: Some(PyBytes::new(py, chunk).unbind()),
                ..Self::new("body", id)
            },
            Event::BodyEnd { octets, .. } => Self {
                octets: Some(octets),
                ..Self::new("body_end", id)
            },
            Event::StartTls { .. } => Self::new("starttls", id),
            Event::LoggedIn { .. } => Self::new("logged_in", id),
            Event::Quirk(q) => Self {
                text: Some(quirk_str(q).to_owned()),
                ..Self::new("quirk", id)
            },
            Event::Cancelled { command, .. } => Self {
                command: Some(command.keyword()),
                ..Self::new("cancelled", id)
            },
            Event::Trace(t) => Self {
                text: Some(match t {
                    Trace::Sent(s) => format!("C: {s}"),
                    Trace::Received(s) => format!("S: {s}"),
                    _ => String::new(),
                }),
                ..Self::new("trace", id)
            },
            _ => Self::new("other", id),
        };
        e.terminal = terminal;
        Ok(e)
    }
}

#[pymethods]
impl PyEvent {
    fn __repr__(&self) -> String {
        let mut s = format!("Event({}", self.kind);
        if let Some(id) = self.id {
            s.push_str(&format!(" id={id}"));
        }
        if let Some(c) = self.command {
            s.push_str(&format!(" command={c}"));
        }
        if let Some(c) = &self.code {
            s.push_str(&format!(" code={c}"));
        }
        if let Some(t) = &self.text {
            s.push_str(&format!(" text={t:?}"));
        }
        if let Some(m) = self.msg {
            s.push_str(&format!(" msg={m}"));
        }
        if let Some(n) = self.size {
            s.push_str(&format!(" size={n}"));
        }
        s.push(')');
        s
    }
}

/// The sans-IO POP3 client: bytes from the server go in (`receive_data`), command bytes
/// (`poll_transmit`) and events (`poll_event`) come out. It never does I/O.
///
/// The run loop: drain `poll_event()` until it returns `None`; write what `poll_transmit()`
/// returns; read once and pass the bytes to `receive_data` (or call `receive_eof`); repeat.
/// Commands are queued by the verbs (`user`, `retr`, ...), which return the command's id and
/// raise `UsageError` (nothing queued) when the command is not valid now.
#[pyclass(name = "Client", module = "pop3._core")]
#[derive(Debug)]
pub struct PyClient {
    /// In a mutex only so that the class is `Sync` (a session may move to another thread):
    /// the `&mut self` methods reach it with `get_mut`, without locking.
    client: Mutex<Client>,
    out: Vec<u8>,
}

impl PyClient {
    fn push(&mut self, command: Command) -> PyResult<u64> {
        self.core()
            .enqueue(command)
            .map(CommandId::get)
            .map_err(usage)
    }

    /// The client, exclusively (`&mut self`: no lock taken).
    fn core(&mut self) -> &mut Client {
        self.client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `event` with its reply's status line, if it is a status line's event: asked right
    /// after the event, while it is still the line of that reply.
    fn with_line(&mut self, py: Python<'_>, mut event: PyEvent) -> PyEvent {
        if matches!(event.kind, "greeting" | "ok" | "err" | "starttls") {
            let line = self.core().last_status_line();
            event.line = Some(PyBytes::new(py, line).unbind());
        }
        event
    }

    /// The client, for a getter.
    fn view(&self) -> MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyClient {
    /// A client waiting for the greeting. `implicit_tls`: the connection is TLS from the
    /// start (port 995). `pipeline_window=1` disables pipelining; `pipelining` is `"auto"`
    /// (when CAPA lists PIPELINING), `"always"` or `"never"`. `server_enforces_phases`: any
    /// AUTHORIZATION or TRANSACTION command may be queued in either phase, the server judging
    /// (only for a legacy API such as `pop3.poplib`; the core's `Config::server_enforces_phases`).
    /// `loose_status_indicator`: a status line's first octet answers (`+` OK, `-` ERR) when it
    /// is neither `+OK` nor `-ERR`, as in the standard `poplib` (the core's quirk).
    #[new]
    #[pyo3(signature = (
        *, implicit_tls = false, allow_plaintext_auth = false, relaxed_apop_timestamp = false,
        server_enforces_phases = false, loose_status_indicator = false, auto_capa = true, pipeline_window = None,
        pipelining = "auto", max_status_line = None, max_body_line = None,
        min_scram_iterations = None, trace = false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        implicit_tls: bool,
        allow_plaintext_auth: bool,
        relaxed_apop_timestamp: bool,
        server_enforces_phases: bool,
        loose_status_indicator: bool,
        auto_capa: bool,
        pipeline_window: Option<usize>,
        pipelining: &str,
        max_status_line: Option<usize>,
        max_body_line: Option<usize>,
        min_scram_iterations: Option<u32>,
        trace: bool,
    ) -> PyResult<Self> {
        let mut config = Config::default();
        config.allow_plaintext_auth = allow_plaintext_auth;
        config.relaxed_apop_timestamp = relaxed_apop_timestamp;
        config.server_enforces_phases = server_enforces_phases;
        config.quirks.loose_status_indicator = loose_status_indicator;
        config.auto_capa = auto_capa;
        config.trace = trace;
        config.max_body_line = max_body_line;
        if let Some(w) = pipeline_window {
            config.pipeline_window = w.max(1);
        }
        if let Some(m) = max_status_line {
            config.max_status_line = m;
        }
        if let Some(n) = min_scram_iterations {
            config.min_scram_iterations = n;
        }
        config.pipelining = match pipelining {
            "auto" => Pipelining::Auto,
            "always" => Pipelining::Always,
            "never" => Pipelining::Never,
            other => {
                return Err(UsageError::new_err(format!(
                    "pipelining must be \"auto\", \"always\" or \"never\", not {other:?}"
                )));
            }
        };
        let mut client = Client::new(config);
        if implicit_tls {
            client.handle_tls_established().map_err(usage)?;
        }
        Ok(Self {
            client: Mutex::new(client),
            out: Vec::new(),
        })
    }

    // ---- getters ----

    /// The session phase: `greeting`, `authorization`, `tls_handshake`, `transaction`,
    /// `update` or `closed`.
    #[getter]
    fn phase(&self) -> &'static str {
        phase_str(self.view().phase())
    }

    /// The latest capabilities, or `None` while unknown.
    #[getter]
    fn capabilities(&self) -> Option<PyCapabilities> {
        self.view().capabilities().map(PyCapabilities::from)
    }

    /// Whether the connection is encrypted.
    #[getter]
    fn is_tls(&self) -> bool {
        self.view().is_tls()
    }

    /// Whether the greeting carried a timestamp that makes APOP possible.
    #[getter]
    fn apop_available(&self) -> bool {
        self.view().apop_available()
    }

    /// Whether the server accepted UTF8.
    #[getter]
    fn is_utf8(&self) -> bool {
        self.view().is_utf8()
    }

    /// Whether nothing is queued, on the wire or waiting to be reported.
    #[getter]
    fn is_idle(&self) -> bool {
        self.view().is_idle()
    }

    /// Commands on the wire without their replies.
    #[getter]
    fn in_flight(&self) -> usize {
        self.view().in_flight()
    }

    /// Commands queued and not yet sent.
    #[getter]
    fn queued(&self) -> usize {
        self.view().queued()
    }

    /// Received bytes not yet consumed.
    #[getter]
    fn buffered(&self) -> usize {
        self.view().buffered()
    }

    /// The fatal error's message, once one occurred.
    #[getter]
    fn error(&self) -> Option<String> {
        self.view().error().map(ToString::to_string)
    }

    /// Whether the client waits for a multi-line body now (the driver may then allow a
    /// low-speed limit instead of a reply timeout).
    #[getter]
    fn awaiting(&self) -> String {
        format!("{:?}", self.view().awaiting())
    }

    // ---- inputs ----

    /// Hands bytes read from the server to the client (it only buffers them).
    fn receive_data(&mut self, data: &[u8]) {
        self.core().handle_input(data);
    }

    /// The server closed the connection.
    fn receive_eof(&mut self) {
        self.core().handle_eof();
    }

    /// The TLS handshake after the `starttls` event (or at connect time) completed.
    fn tls_established(&mut self) -> PyResult<()> {
        self.core().handle_tls_established().map_err(usage)
    }

    // ---- verbs ----

    /// `USER name`.
    fn user(&mut self, name: String) -> PyResult<u64> {
        self.push(Command::user(name))
    }
    /// `PASS password`.
    fn pass_(&mut self, password: &[u8]) -> PyResult<u64> {
        self.push(Command::pass(Secret::new(password)))
    }
    /// `APOP name digest` (the digest is computed from the greeting's timestamp).
    fn apop(&mut self, user: String, secret: &[u8]) -> PyResult<u64> {
        self.push(Command::apop(user, Secret::new(secret)))
    }
    /// `RPOP user`.
    fn rpop(&mut self, user: String) -> PyResult<u64> {
        self.push(Command::Rpop(user))
    }
    /// `STAT`.
    fn stat(&mut self) -> PyResult<u64> {
        self.push(Command::Stat)
    }
    /// `LIST` or `LIST n`.
    #[pyo3(signature = (msg = None))]
    fn list(&mut self, msg: Option<u32>) -> PyResult<u64> {
        self.push(Command::List(msg))
    }
    /// `UIDL` or `UIDL n`.
    #[pyo3(signature = (msg = None))]
    fn uidl(&mut self, msg: Option<u32>) -> PyResult<u64> {
        self.push(Command::Uidl(msg))
    }
    /// `RETR n`.
    fn retr(&mut self, msg: u32) -> PyResult<u64> {
        self.push(Command::retr(msg))
    }
    /// Queues `RETR n` for each message of `msgs` (all checked first: nothing is queued if
    /// one is invalid); returns their ids, which are consecutive.
    fn retr_many(&mut self, msgs: Vec<u32>) -> PyResult<Vec<u64>> {
        for &m in &msgs {
            Command::retr(m).validate().map_err(usage)?;
        }
        msgs.into_iter()
            .map(|m| self.push(Command::retr(m)))
            .collect()
    }
    /// `TOP n lines`.
    fn top(&mut self, msg: u32, lines: u32) -> PyResult<u64> {
        self.push(Command::top(msg, lines))
    }
    /// `DELE n`.
    fn dele(&mut self, msg: u32) -> PyResult<u64> {
        self.push(Command::dele(msg))
    }
    /// `NOOP`.
    fn noop(&mut self) -> PyResult<u64> {
        self.push(Command::Noop)
    }
    /// `RSET`.
    fn rset(&mut self) -> PyResult<u64> {
        self.push(Command::Rset)
    }
    /// `QUIT`.
    fn quit(&mut self) -> PyResult<u64> {
        self.push(Command::Quit)
    }
    /// `CAPA`.
    fn capa(&mut self) -> PyResult<u64> {
        self.push(Command::Capa)
    }
    /// `STLS`: after its `starttls` event, do the TLS handshake, then call `tls_established`.
    fn stls(&mut self) -> PyResult<u64> {
        self.push(Command::Stls)
    }
    /// `UTF8`.
    fn utf8(&mut self) -> PyResult<u64> {
        self.push(Command::Utf8)
    }
    /// `LANG` or `LANG tag`.
    #[pyo3(signature = (tag = None))]
    fn lang(&mut self, tag: Option<String>) -> PyResult<u64> {
        self.push(Command::Lang(tag))
    }
    /// A command line the core has no verb for (a vendor command), sent as given; its reply
    /// is multi-line (body chunks, `body_end`, `ok`) when `multi_line`. Refused for USER,
    /// PASS, APOP, RPOP, AUTH, STLS, QUIT and UTF8, which have their own verbs.
    #[pyo3(signature = (line, multi_line = false))]
    fn extension(&mut self, line: String, multi_line: bool) -> PyResult<u64> {
        self.push(Command::extension(line, multi_line))
    }
    /// `AUTH` with a mechanism: `PLAIN`, `LOGIN`, `CRAM-MD5`, `SCRAM-SHA-256` (needs
    /// `nonce`, a fresh random printable string without commas) or `XOAUTH2` (the password
    /// is the token).
    #[pyo3(signature = (mechanism, user, password, nonce = None))]
    fn auth(
        &mut self,
        mechanism: &str,
        user: String,
        password: &[u8],
        nonce: Option<String>,
    ) -> PyResult<u64> {
        let password = Secret::new(password);
        let command = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => Command::auth(Plain::new(None, user, password)),
            "LOGIN" => Command::auth(Login::new(user, password)),
            "CRAM-MD5" => Command::auth(CramMd5::new(user, password)),
            "SCRAM-SHA-256" => {
                let nonce = nonce
                    .ok_or_else(|| UsageError::new_err("SCRAM-SHA-256 needs a client nonce"))?;
                Command::auth(ScramSha256::new(user, password, nonce))
            }
            "XOAUTH2" => Command::auth(XOAuth2::new(user, password)),
            other => {
                return Err(UsageError::new_err(format!(
                    "unknown SASL mechanism {other:?}"
                )));
            }
        };
        self.push(command)
    }

    /// Logs in with the best method the server offers (the core's `choose_login`: SCRAM-SHA-256
    /// > CRAM-MD5 > APOP when allowed > PLAIN > LOGIN > USER/PASS; nothing without TLS unless
    /// `allow_plaintext`). Queues its command(s) and returns `(method, ids)`: the login is
    /// over at the terminal event of the last id (with `logged_in` before it on success).
    #[pyo3(signature = (user, password, nonce, *, allow_apop = false, allow_plaintext = false))]
    fn login(
        &mut self,
        user: String,
        password: &[u8],
        nonce: String,
        allow_apop: bool,
        allow_plaintext: bool,
    ) -> PyResult<(&'static str, Vec<u64>)> {
        let mut policy = LoginPolicy::default();
        policy.allow_apop = allow_apop;
        policy.allow_plaintext = allow_plaintext;
        let core = self.core();
        let method = choose_login(
            core.capabilities(),
            core.apop_available(),
            core.is_tls(),
            policy,
        )
        .map_err(|e| UsageError::new_err(e.to_string()))?;
        let password = Secret::new(password);
        let ids = match method {
            LoginMethod::UserPass => {
                Command::pass(password.clone()).validate().map_err(usage)?;
                let user_id = self.push(Command::user(user))?;
                vec![user_id, self.push(Command::pass(password))?]
            }
            LoginMethod::Apop => vec![self.push(Command::apop(user, password))?],
            LoginMethod::ScramSha256 => {
                vec![self.push(Command::auth(ScramSha256::new(user, password, nonce)))?]
            }
            LoginMethod::CramMd5 => vec![self.push(Command::auth(CramMd5::new(user, password)))?],
            LoginMethod::Plain => {
                vec![self.push(Command::auth(Plain::new(None, user, password)))?]
            }
            LoginMethod::Login => vec![self.push(Command::auth(Login::new(user, password)))?],
            _ => return Err(UsageError::new_err("unsupported login method")),
        };
        Ok((method_str(method), ids))
    }

    // ---- outputs ----

    /// The bytes to send now (empty when nothing is due).
    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.out.clear();
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        client.poll_transmit(&mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// The next event, or `None` when more input is needed. Raises `ProtocolError` (sticky)
    /// when the server broke the protocol.
    fn poll_event(&mut self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        match self.core().poll_event() {
            Ok(Some(event)) => {
                let event = PyEvent::from_event(py, event)?;
                Ok(Some(self.with_line(py, event)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(protocol(&e)),
        }
    }

    /// Writes the body chunks of the command `id` straight into `sink` (anything with a
    /// `write(bytes)` method) and returns at the first event that is not one of them (that
    /// event), or `None` when more input is needed. Saves an `Event` per chunk.
    fn poll_body_into(
        &mut self,
        py: Python<'_>,
        id: u64,
        sink: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyEvent>> {
        loop {
            match self.core().poll_event() {
                Ok(Some(Event::Body { id: got, chunk })) if got.get() == id => {
                    sink.call_method1("write", (PyBytes::new(py, chunk),))?;
                }
                Ok(Some(event)) => {
                    let event = PyEvent::from_event(py, event)?;
                    return Ok(Some(self.with_line(py, event)));
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(protocol(&e)),
            }
        }
    }
}

/// The core's streaming dot-unstuffer for one multi-line reply (RFC 1939 §3): only CRLF `.`
/// CRLF ends it, and only a dot right after CRLF is removed.
#[pyclass(name = "BodyDecoder", module = "pop3._core")]
#[derive(Debug)]
pub struct PyBodyDecoder {
    decoder: BodyDecoder,
    /// Up to two octets the decoder could not decide on yet (a line-start dot and a CR).
    carry: Vec<u8>,
    done: bool,
}

#[pymethods]
impl PyBodyDecoder {
    /// A decoder for the body that follows a `+OK` line just read.
    #[new]
    fn new() -> Self {
        Self {
            decoder: BodyDecoder::new(false, false, None),
            carry: Vec::new(),
            done: false,
        }
    }

    /// Decodes `data` and returns `(unstuffed, used, done)`: `used` octets of `data` belong to
    /// the body (all of them until the terminator is found; the caller keeps the rest for the
    /// next reply), `done` once the terminator was consumed.
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Bound<'py, PyBytes>, usize, bool)> {
        if self.done {
            return Ok((PyBytes::new(py, b""), 0, true));
        }
        let carried = self.carry.len();
        let joined;
        let input: &[u8] = if carried == 0 {
            data
        } else {
            let mut j = std::mem::take(&mut self.carry);
            j.extend_from_slice(data);
            joined = j;
            &joined
        };
        let mut out = Vec::with_capacity(input.len());
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self
                .decoder
                .decode(rest)
                .map_err(|e| ProtocolError::new_err(e.to_string()))?
            {
                Decoded::Data { start, end } => {
                    out.extend_from_slice(&rest[start..end]);
                    pos += end;
                }
                Decoded::End { consumed } => {
                    pos += consumed;
                    self.done = true;
                    // The terminator may have started in the carried octets.
                    let used = pos.saturating_sub(carried);
                    return Ok((PyBytes::new(py, &out), used, true));
                }
                Decoded::NeedMore { consumed } => {
                    pos += consumed;
                    self.carry = input[pos..].to_vec();
                    return Ok((PyBytes::new(py, &out), data.len(), false));
                }
            }
        }
    }

    /// The message octets decoded so far.
    #[getter]
    fn octets(&self) -> u64 {
        self.decoder.octets()
    }
}

/// The APOP timestamp of a greeting text, angle brackets included, or `None`: the strict
/// `<...@...>` form (RFC 1939 §7), or with `relaxed` any printable-ASCII `<...>`.
#[pyfunction]
#[pyo3(signature = (greeting, relaxed = false))]
fn greeting_timestamp<'py>(
    py: Python<'py>,
    greeting: &[u8],
    relaxed: bool,
) -> Option<Bound<'py, PyBytes>> {
    let ts = if relaxed {
        pop3_proto::apop::relaxed_greeting_timestamp(greeting)
    } else {
        pop3_proto::apop::greeting_timestamp(greeting)
    };
    ts.map(|t| PyBytes::new(py, t))
}

/// The APOP digest of `timestamp` and `secret`: 32 lowercase hexadecimal ASCII bytes.
#[pyfunction]
fn apop_digest<'py>(py: Python<'py>, timestamp: &[u8], secret: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pop3_proto::apop::apop_digest(timestamp, secret))
}

/// Whether `arg` may go on a command line: no CR, LF or NUL (the core's rule for every
/// argument).
#[pyfunction]
fn is_safe_argument(arg: &[u8]) -> bool {
    !arg.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// The Python module `pop3._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyClient>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyCapabilities>()?;
    m.add_class::<PyBodyDecoder>()?;
    m.add_function(wrap_pyfunction!(greeting_timestamp, m)?)?;
    m.add_function(wrap_pyfunction!(apop_digest, m)?)?;
    m.add_function(wrap_pyfunction!(is_safe_argument, m)?)?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    Ok(())
}
