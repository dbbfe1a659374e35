//! The client state machine: every state transition of a POP3 session lives here.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Secret;
use crate::apop;
use crate::body::{BodyDecoder, Decoded};
use crate::capa::Capabilities;
use crate::command::{Command, CommandId, CommandKind, Listing, MAX_COMMAND_LINE, ReplyShape};
use crate::config::{Config, Pipelining};
use crate::error::{EnqueueError, MAX_NAMED_DUPLICATES, ProtocolError};
use crate::event::{Event, Quirk, Trace};
use crate::response::{self, StatusLine};
use crate::sasl::Mechanism;
use crate::timing::{Awaited, Awaiting};

/// The phases of a POP3 session (RFC 1939 §3), plus the wait for the greeting.
///
/// ```text
///            greeting +OK             PASS/APOP/AUTH/RPOP +OK          QUIT
/// Greeting ───────────────> Authorization ─────────────────> Transaction ─────> Update
///    │ -ERR greeting            │  │ STLS +OK: paused until          │             │ +OK/-ERR
///    │                          │  │ handle_tls_established          │             v
///    └──────────────> Closed <──┘ QUIT                               └─ EOF ──> Closed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for the server's greeting. Commands may be queued already.
    Greeting,
    /// AUTHORIZATION: identify and authenticate (USER/PASS, APOP, AUTH), STLS, CAPA, UTF8.
    Authorization,
    /// TRANSACTION: the maildrop is locked and open.
    Transaction,
    /// UPDATE: QUIT was sent after login; the server commits deletions when it answers.
    Update,
    /// The session is over: QUIT answered, the greeting refused, or the connection lost.
    Closed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "GREETING",
            Self::Authorization => "AUTHORIZATION",
            Self::Transaction => "TRANSACTION",
            Self::Update => "UPDATE",
            Self::Closed => "CLOSED",
        })
    }
}

/// A command waiting to be sent.
#[derive(Debug)]
struct Queued {
    id: CommandId,
    command: Command,
}

/// A command on the wire, waiting for its reply.
#[derive(Debug)]
struct InFlight {
    id: CommandId,
    kind: CommandKind,
    shape: ReplyShape,
    auth: Option<AuthExchange>,
    /// The length of its command line.
    len: usize,
    /// Its message number, to name it in a timeout.
    msg: Option<u32>,
}

/// The client side of an AUTH exchange in progress.
#[derive(Debug)]
struct AuthExchange {
    mechanism: Box<dyn Mechanism>,
    /// The initial response that did not fit on the command line (RFC 5034 §4): sent at the
    /// first, empty, continuation.
    deferred_initial: Option<Secret>,
    cancelled: bool,
}

/// Where the reply to the front in-flight command stands.
#[derive(Debug)]
enum Reply {
    /// Expecting a status line (or a continuation during AUTH).
    Status,
    /// Inside a multi-line listing.
    Listing {
        kind: Listing,
        first: StatusLine,
        lines: usize,
    },
    /// Inside a RETR/TOP body.
    Body {
        id: CommandId,
        decoder: BodyDecoder,
        first: StatusLine,
    },
}

/// What a LIST or UIDL listing has shown so far, to catch repeated message numbers and
/// unique-ids (issue 10 item 2). Its size is bounded by [`Config::max_listing_entries`].
#[derive(Debug, Default)]
struct ListingCheck {
    numbers: HashSet<u32>,
    uids: HashSet<Box<[u8]>>,
    repeated_numbers: Vec<u32>,
    repeated_uids: Vec<String>,
    repeated: usize,
}

impl ListingCheck {
    /// Records one entry; `uid` for UIDL entries.
    fn record(&mut self, msg: u32, uid: Option<&str>) {
        let mut repeated = false;
        if !self.numbers.insert(msg) {
            repeated = true;
            if self.repeated_numbers.len() < MAX_NAMED_DUPLICATES
                && !self.repeated_numbers.contains(&msg)
            {
                self.repeated_numbers.push(msg);
            }
        }
        if let Some(uid) = uid {
            if !self.uids.insert(uid.as_bytes().into()) {
                repeated = true;
                if self.repeated_uids.len() < MAX_NAMED_DUPLICATES
                    && !self.repeated_uids.iter().any(|u| u == uid)
                {
                    self.repeated_uids.push(uid.to_owned());
                }
            }
        }
        if repeated {
            self.repeated += 1;
        }
    }

    /// The error for a listing that repeated something, if it did.
    fn verdict(self, listing: &'static str) -> Result<(), ProtocolError> {
        if self.repeated == 0 {
            return Ok(());
        }
        Err(ProtocolError::DuplicateEntries {
            listing,
            numbers: self.repeated_numbers,
            uids: self.repeated_uids,
            repeated: self.repeated,
        })
    }
}

/// An event waiting in the queue (owned, or a marker for a borrowed one).
#[derive(Debug)]
enum Pending {
    Owned(Event<'static>),
    Capabilities(CommandId),
}

/// What one step of the receive path produced.
enum Step {
    Queued,
    Body {
        id: CommandId,
        start: usize,
        end: usize,
    },
    Uid {
        id: CommandId,
        msg: u32,
        start: usize,
        end: usize,
    },
}

/// A sans-IO POP3 client session.
///
/// The client never does I/O. Its methods come in four groups:
///
/// - **getters**: [`phase`](Self::phase), [`capabilities`](Self::capabilities),
///   [`is_tls`](Self::is_tls), [`in_flight`](Self::in_flight), ...
/// - **inputs**: [`handle_input`](Self::handle_input) (bytes from the server),
///   [`handle_eof`](Self::handle_eof), [`handle_tls_established`](Self::handle_tls_established);
///   they only record and never fail;
/// - **verbs**: [`enqueue`](Self::enqueue) and [`cancel_auth`](Self::cancel_auth); they validate
///   and queue, and fail with an [`EnqueueError`] that changes nothing;
/// - **outputs**: [`poll_transmit`](Self::poll_transmit) (bytes for the server) and
///   [`poll_event`](Self::poll_event) (what the server said).
///
/// # The run loop
///
/// 1. Call `poll_event` until it returns `Ok(None)`, handling each event (an event borrows the
///    client, so finish with it before the next call).
/// 2. Call `poll_transmit` and write what it appended: the replies just handled may have
///    released queued commands, and the server waits for them.
/// 3. Read from the connection; give the bytes to `handle_input` (or call `handle_eof` when a
///    read returns 0), and go back to 1.
///
/// Drain `poll_event` before each `handle_input`: the client's buffer then holds at most one
/// read plus a partial line, whatever the message size.
///
/// # Errors
///
/// An [`EnqueueError`] is caller misuse: nothing happened and the client can go on. A
/// [`ProtocolError`] means the server broke the protocol or the connection: it is sticky
/// (every later `poll_event` returns it, `poll_transmit` sends nothing) and the connection must be
/// closed. A `-ERR` is neither: it is an [`Event::Err`] and the session goes on.
pub struct Client {
    config: Config,
    phase: Phase,
    capabilities: Option<Capabilities>,
    /// The capabilities seen before login, until the first CAPA after it.
    pre_login_capabilities: Option<Capabilities>,
    /// Capabilities being collected from a CAPA listing.
    collecting: Capabilities,
    /// The entries of the LIST or UIDL listing in progress, for the repeat check.
    listing_check: ListingCheck,
    timestamp: Option<Vec<u8>>,
    tls: bool,
    awaiting_tls: bool,
    utf8: bool,
    /// The greeting ended in a bare LF: the server speaks LF throughout.
    lf_server: bool,
    /// A `.` CR terminator was accepted; swallow the LF that may follow it.
    skip_lf: bool,
    quit_queued: bool,
    quirks_seen: Vec<Quirk>,
    next_id: u64,
    queue: VecDeque<Queued>,
    in_flight: VecDeque<InFlight>,
    /// The bytes of the command lines in `in_flight`.
    in_flight_bytes: usize,
    reply: Reply,
    /// Received bytes: `rx[rx_pos..rx_end]` is unconsumed; `rx[rx_end..]` is room for reads.
    rx: Vec<u8>,
    rx_pos: usize,
    rx_end: usize,
    received: bool,
    eof: bool,
    tx: Vec<u8>,
    events: VecDeque<Pending>,
    error: Option<ProtocolError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("phase", &self.phase)
            .field("tls", &self.tls)
            .field("queued", &self.queue.len())
            .field("in_flight", &self.in_flight.len())
            .field("buffered", &(self.rx_end - self.rx_pos))
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client waiting for the server's greeting.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            phase: Phase::Greeting,
            capabilities: None,
            pre_login_capabilities: None,
            collecting: Capabilities::default(),
            listing_check: ListingCheck::default(),
            timestamp: None,
            tls: false,
            awaiting_tls: false,
            utf8: false,
            lf_server: false,
            skip_lf: false,
            quit_queued: false,
            quirks_seen: Vec::new(),
            next_id: 0,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            reply: Reply::Status,
            rx: Vec::new(),
            rx_pos: 0,
            rx_end: 0,
            received: false,
            eof: false,
            tx: Vec::new(),
            events: VecDeque::new(),
            error: None,
        }
    }

    // ---- getters ----

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The session phase, as of the replies processed so far.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The server's capabilities from the latest CAPA, or `None` while unknown (before CAPA,
    /// and again after TLS and after login until CAPA is answered).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Whether the connection is encrypted (implicit TLS or STLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the client is paused after the `+OK` to STLS, waiting for the TLS handshake.
    pub fn is_awaiting_tls(&self) -> bool {
        self.awaiting_tls
    }

    /// Whether APOP is possible: the greeting carried a well-formed timestamp.
    pub fn apop_available(&self) -> bool {
        self.timestamp.is_some()
    }

    /// Whether the server accepted `UTF8` (RFC 6856): mail and text may be UTF-8.
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// How many commands are on the wire, waiting for their replies.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What the client waits for from the server now, which sets the read deadline (see
    /// [`ReadClock`](crate::ReadClock)).
    pub fn awaiting(&self) -> Awaiting {
        let front = self.in_flight.front().map(|f| Awaited {
            id: f.id,
            kind: f.kind,
            msg: f.msg,
        });
        match (self.phase, front, &self.reply) {
            _ if self.error.is_some() || self.eof => Awaiting::Nothing,
            _ if self.awaiting_tls => Awaiting::TlsHandshake,
            (Phase::Greeting, ..) => Awaiting::Greeting,
            (_, None, _) => Awaiting::Nothing,
            (_, Some(f), Reply::Status) => Awaiting::Status(f),
            (_, Some(f), _) => Awaiting::MultiLine(f),
        }
    }

    /// How many commands are queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued, on the wire or waiting to be reported.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.in_flight.is_empty()
            && self.events.is_empty()
            && self.tx.is_empty()
    }

    /// How many received bytes are buffered and not yet consumed (at most one `handle_input`
    /// call plus a partial line, when `poll_event` is drained between inputs).
    pub fn buffered(&self) -> usize {
        self.rx_end - self.rx_pos
    }

    /// The fatal error, once one occurred.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_ref()
    }

    /// The quirks tolerated so far in this session.
    pub fn quirks_seen(&self) -> &[Quirk] {
        &self.quirks_seen
    }

    // ---- inputs ----

    /// Records bytes received from the server. It only buffers (a copy); `poll_event` parses.
    /// To save the copy, read straight into [`input_buffer`](Self::input_buffer) instead.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.input_buffer(bytes.len()).copy_from_slice(bytes);
        self.commit_input(bytes.len());
    }

    /// Space of at least `len` bytes at the end of the input buffer, for a read from the
    /// connection to fill directly; then call [`commit_input`](Self::commit_input) with the
    /// number of bytes read. The buffer grows only when a read asks for more room than it has,
    /// so its size is the largest read plus a partial line.
    pub fn input_buffer(&mut self, len: usize) -> &mut [u8] {
        if self.rx_pos > 0 {
            self.rx.copy_within(self.rx_pos..self.rx_end, 0);
            self.rx_end -= self.rx_pos;
            self.rx_pos = 0;
        }
        if self.rx.len() < self.rx_end + len {
            self.rx.resize(self.rx_end + len, 0);
        }
        &mut self.rx[self.rx_end..self.rx_end + len]
    }

    /// Records that the first `len` bytes of the last [`input_buffer`](Self::input_buffer)
    /// were filled by a read.
    pub fn commit_input(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        self.received = true;
        if self.awaiting_tls {
            self.fail(ProtocolError::StartTlsInjection);
        }
        if self.error.is_none() {
            self.rx_end = (self.rx_end + len).min(self.rx.len());
        }
    }

    /// Records that the server closed the connection (a read returned 0 bytes).
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// Records that TLS is now established: after [`Event::StartTls`], or right after
    /// connecting with implicit TLS (RFC 8314), before anything was received.
    ///
    /// After STLS the cached capabilities are discarded (RFC 2595 §4) and, with
    /// [`Config::auto_capa`], asked again. After a fatal error (a STARTTLS injection caught as
    /// the bytes arrived, say) it changes nothing and answers [`EnqueueError::Closed`].
    pub fn handle_tls_established(&mut self) -> Result<(), EnqueueError> {
        if self.error.is_some() {
            // The session is over (a STARTTLS injection, say): a late handshake must not make
            // it look encrypted, nor queue a CAPA.
            return Err(EnqueueError::Closed);
        }
        if self.tls {
            return Err(EnqueueError::TlsAlreadyActive);
        }
        if self.awaiting_tls {
            if self.rx_pos < self.rx_end {
                // Bytes read in plaintext after the +OK to STLS, before the handshake: injected
                // (RFC 2595 §4, CVE-2011-0411 class). Never take them as TLS data.
                self.fail(ProtocolError::StartTlsInjection);
                return Ok(());
            }
            self.awaiting_tls = false;
            self.tls = true;
            self.capabilities = None;
            self.ask_capabilities();
            Ok(())
        } else if self.phase == Phase::Greeting && !self.received && self.error.is_none() {
            self.tls = true;
            Ok(())
        } else {
            Err(EnqueueError::UnexpectedTls)
        }
    }

    // ---- verbs ----

    /// Validates and queues a command; it is sent by a later `poll_transmit` when the
    /// pipelining rules allow. Nothing is queued if this fails.
    ///
    /// Refused: a command of another phase (the phase is that of the replies seen so far, so
    /// queue TRANSACTION commands after [`Event::LoggedIn`]), arguments with CR, LF or NUL,
    /// lines over 255 octets, message number 0, a password, reusable token or APOP digest
    /// without TLS (unless [`Config::allow_plaintext_auth`]), APOP without a greeting timestamp (so also
    /// before the greeting has arrived: queue APOP after [`Event::Greeting`]), STLS on a
    /// TLS connection, anything after QUIT or a fatal error.
    pub fn enqueue(&mut self, command: Command) -> Result<CommandId, EnqueueError> {
        let kind = command.kind();
        if self.error.is_some()
            || self.quit_queued
            || matches!(self.phase, Phase::Closed | Phase::Update)
        {
            return Err(EnqueueError::Closed);
        }
        let before_login = matches!(self.phase, Phase::Greeting | Phase::Authorization);
        let allowed = match kind {
            CommandKind::User
            | CommandKind::Pass
            | CommandKind::Apop
            | CommandKind::Rpop
            | CommandKind::Auth
            | CommandKind::Stls
            | CommandKind::Utf8 => before_login,
            CommandKind::Capa | CommandKind::Lang | CommandKind::Quit => true,
            _ => self.phase == Phase::Transaction,
        };
        if !allowed {
            return Err(EnqueueError::WrongPhase {
                command: kind,
                phase: self.phase,
            });
        }
        command.validate()?;
        // APOP sends no password, but an MD5 digest of a predictable challenge that an observer
        // can crack offline: it needs TLS (or the caller's consent) like PASS.
        let cleartext = match &command {
            Command::Pass(_) | Command::Apop { .. } => true,
            Command::Auth(mechanism) => mechanism.exposes_secret(),
            _ => false,
        };
        if cleartext && !self.tls && !self.config.allow_plaintext_auth {
            return Err(EnqueueError::CleartextCredentials { command: kind });
        }
        match kind {
            CommandKind::Apop if self.timestamp.is_none() => {
                return Err(EnqueueError::ApopUnavailable);
            }
            CommandKind::Stls if self.tls => return Err(EnqueueError::TlsAlreadyActive),
            CommandKind::Quit => self.quit_queued = true,
            _ => {}
        }
        Ok(self.push_command(command))
    }

    /// Cancels the AUTH exchange in progress by answering the next challenge with `*`
    /// (RFC 5034 §4); the server then answers `-ERR`.
    pub fn cancel_auth(&mut self) -> Result<(), EnqueueError> {
        match self.in_flight.front_mut().and_then(|f| f.auth.as_mut()) {
            Some(exchange) if !exchange.cancelled => {
                exchange.cancelled = true;
                self.tx.extend_from_slice(b"*\r\n");
                self.trace(Trace::Sent("*".into()));
                Ok(())
            }
            _ => Err(EnqueueError::NoAuthInProgress),
        }
    }

    // ---- outputs ----

    /// Appends the bytes to send to `out` and returns how many were appended. Releases queued
    /// commands as far as the pipelining rules allow: one at a time until CAPA lists
    /// PIPELINING, then up to [`Config::pipeline_window`]; STLS, AUTH, QUIT and UTF8 wait for
    /// an empty pipe and hold everything behind them, and so do PASS/APOP/RPOP (the phase
    /// changes) and, without TLS, USER (so a refused USER cannot expose the password).
    ///
    /// Nothing at all follows PASS, APOP, RPOP or AUTH on the wire before their reply: some
    /// servers hand the connection to a new process when the login succeeds and drop every
    /// byte that arrived before. The automatic CAPA after login is queued when the `+OK`
    /// arrives, ahead of what the caller queues next, and goes out in the same write as those
    /// commands: between login and that CAPA's answer, the list seen before login decides
    /// whether to pipeline.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        if self.error.is_some() {
            return 0;
        }
        if let Err(e) = self.schedule() {
            self.fail(e);
            return 0;
        }
        let n = self.tx.len();
        out.append(&mut self.tx);
        n
    }

    /// The next event, `Ok(None)` when more input is needed, or the sticky fatal error.
    #[inline(always)]
    pub fn poll_event(&mut self) -> Result<Option<Event<'_>>, ProtocolError> {
        // The hot path: the next chunk of a body, straight from the decoder.
        if let Reply::Body { id, decoder, .. } = &mut self.reply {
            if self.events.is_empty() && !self.skip_lf && self.error.is_none() {
                let base = self.rx_pos;
                if let Some((start, end)) = decoder.fast_data(&self.rx[base..self.rx_end]) {
                    self.rx_pos = base + end;
                    let id = *id;
                    return Ok(Some(Event::Body {
                        id,
                        chunk: &self.rx[base + start..base + end],
                    }));
                }
            }
        }
        self.poll_event_slow()
    }

    /// The fast path for message bodies: the next chunk of a RETR/TOP body, if one is ready,
    /// exactly as [`poll_event`](Self::poll_event) would return it as [`Event::Body`].
    ///
    /// It returns `None` for anything else (the end of the body, a status line, a pending
    /// event, a partial line): then call `poll_event`. It is optional; a loop that uses it
    /// saves the cost of the general event (about a third of the decoding time on 4 KiB
    /// messages, see the `decode` benchmark):
    ///
    /// ```no_run
    /// # fn f(client: &mut pop3_proto::Client) -> Result<(), pop3_proto::ProtocolError> {
    /// loop {
    ///     while let Some((id, chunk)) = client.poll_body() {
    ///         // write `chunk` for command `id`
    ///     }
    ///     match client.poll_event()? {
    ///         Some(event) => { /* handle it; Body events may still come here */ }
    ///         None => break, // read more input
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn poll_body(&mut self) -> Option<(CommandId, &[u8])> {
        if let Reply::Body { id, decoder, .. } = &mut self.reply {
            if self.events.is_empty() && !self.skip_lf && self.error.is_none() {
                let base = self.rx_pos;
                if let Some((start, end)) = decoder.fast_data(&self.rx[base..self.rx_end]) {
                    self.rx_pos = base + end;
                    let id = *id;
                    return Some((id, &self.rx[base + start..base + end]));
                }
            }
        }
        None
    }

    #[inline(never)]
    fn poll_event_slow(&mut self) -> Result<Option<Event<'_>>, ProtocolError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.events.is_empty() {
            match self.advance() {
                Ok(None) => return Ok(None),
                Ok(Some(Step::Queued)) => {}
                Ok(Some(Step::Body { id, start, end })) => {
                    return Ok(Some(Event::Body {
                        id,
                        chunk: &self.rx[start..end],
                    }));
                }
                Ok(Some(Step::Uid {
                    id,
                    msg,
                    start,
                    end,
                })) => {
                    // The parser checked that the uid is printable ASCII.
                    let uid = std::str::from_utf8(&self.rx[start..end]).unwrap_or_default();
                    return Ok(Some(Event::UidlEntry { id, msg, uid }));
                }
                Err(e) => {
                    self.fail(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(self.events.pop_front().map(|pending| match pending {
            Pending::Owned(event) => event,
            Pending::Capabilities(id) => Event::Capabilities {
                id,
                capabilities: self.capabilities.as_ref().unwrap_or(&EMPTY_CAPABILITIES),
            },
        }))
    }

    // ---- internals: sending ----

    fn push_command(&mut self, command: Command) -> CommandId {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        self.queue.push_back(Queued { id, command });
        id
    }

    /// Queues an automatic CAPA ahead of everything the caller queued.
    fn ask_capabilities(&mut self) {
        if self.config.auto_capa && self.phase != Phase::Closed {
            let id = CommandId(self.next_id);
            self.next_id += 1;
            self.queue.push_front(Queued {
                id,
                command: Command::Capa,
            });
        }
    }

    fn pipelining(&self) -> bool {
        self.config.pipeline_window > 1
            && match self.config.pipelining {
                // Between login and the answer to the CAPA that follows it, the list seen
                // before login still speaks for the server (the same connection, the same
                // security context).
                Pipelining::Auto => match (&self.capabilities, &self.pre_login_capabilities) {
                    (Some(now), _) => now.pipelining,
                    (None, Some(before)) => self.phase == Phase::Transaction && before.pipelining,
                    (None, None) => false,
                },
                Pipelining::Always => true,
                Pipelining::Never => false,
            }
    }

    /// Whether nothing may follow this command until its reply is in.
    fn holds_pipe(&self, kind: CommandKind) -> bool {
        match kind {
            CommandKind::Stls
            | CommandKind::Auth
            | CommandKind::Quit
            | CommandKind::Utf8
            | CommandKind::Pass
            | CommandKind::Apop
            | CommandKind::Rpop => true,
            CommandKind::User => !self.tls,
            _ => false,
        }
    }

    fn schedule(&mut self) -> Result<(), ProtocolError> {
        if self.awaiting_tls || matches!(self.phase, Phase::Greeting | Phase::Closed) {
            return Ok(());
        }
        while let Some(next) = self.queue.front() {
            let kind = next.command.kind();
            if let Some(last) = self.in_flight.back() {
                let barrier = matches!(
                    kind,
                    CommandKind::Stls | CommandKind::Auth | CommandKind::Quit | CommandKind::Utf8
                );
                if barrier
                    || self.holds_pipe(last.kind)
                    || !self.pipelining()
                    || self.in_flight.len() >= self.config.pipeline_window
                    || self.in_flight_bytes + next.command.line_len_bound()
                        > self.config.max_pipeline_bytes
                {
                    break;
                }
            }
            let Some(Queued { id, command }) = self.queue.pop_front() else {
                break;
            };
            self.send(id, command)?;
        }
        Ok(())
    }

    fn send(&mut self, id: CommandId, command: Command) -> Result<(), ProtocolError> {
        let kind = command.kind();
        let shape = command.reply_shape();
        let msg = Awaited::message_number(&command);
        if self.config.trace {
            self.trace(Trace::Sent(command.redacted()));
        }
        let before = self.tx.len();
        let auth = match command {
            Command::Auth(mut mechanism) => {
                mechanism.configure(&self.config);
                let initial =
                    mechanism
                        .initial_response()
                        .map_err(|error| ProtocolError::SaslStart {
                            mechanism: mechanism.name().to_owned(),
                            error,
                        })?;
                let start = self.tx.len();
                self.tx.extend_from_slice(b"AUTH ");
                self.tx.extend_from_slice(mechanism.name().as_bytes());
                let mut deferred_initial = None;
                if let Some(initial) = initial {
                    let encoded = encode_response(&initial, true);
                    // RFC 5034 §4: the initial response only if the line stays within 255
                    // octets; otherwise it goes with the first (empty) continuation.
                    if self.tx.len() - start + 1 + encoded.len() + 2 <= MAX_COMMAND_LINE {
                        self.tx.push(b' ');
                        self.tx.extend_from_slice(&encoded);
                    } else {
                        deferred_initial = Some(initial);
                    }
                }
                self.tx.extend_from_slice(b"\r\n");
                Some(AuthExchange {
                    mechanism,
                    deferred_initial,
                    cancelled: false,
                })
            }
            command => {
                command.encode(&mut self.tx, self.timestamp.as_deref());
                None
            }
        };
        if kind == CommandKind::Quit && self.phase == Phase::Transaction {
            self.phase = Phase::Update;
        }
        let len = self.tx.len() - before;
        self.in_flight_bytes += len;
        self.in_flight.push_back(InFlight {
            id,
            kind,
            shape,
            auth,
            len,
            msg,
        });
        Ok(())
    }

    // ---- internals: receiving ----

    fn fail(&mut self, error: ProtocolError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self.queue.clear();
        self.tx.clear();
    }

    fn push(&mut self, event: Event<'static>) {
        self.events.push_back(Pending::Owned(event));
    }

    fn trace(&mut self, line: Trace) {
        if self.config.trace {
            self.push(Event::Trace(line));
        }
    }

    fn quirk(&mut self, quirk: Quirk) {
        if !self.quirks_seen.contains(&quirk) {
            self.quirks_seen.push(quirk);
            self.push(Event::Quirk(quirk));
        }
    }

    /// Takes one complete line (without its line end) from the buffer, or `None` if none is
    /// complete yet. Enforces `limit` (line end included) and the bare-LF policy.
    fn take_line(
        &mut self,
        limit: usize,
        what: &'static str,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        let buffered = &self.rx[self.rx_pos..self.rx_end];
        let Some(i) = memchr::memchr(b'\n', buffered) else {
            if buffered.len() >= limit {
                return Err(ProtocolError::LineTooLong { what, limit });
            }
            return Ok(None);
        };
        if i + 1 > limit {
            return Err(ProtocolError::LineTooLong { what, limit });
        }
        let start = self.rx_pos;
        self.rx_pos += i + 1;
        if i > 0 && buffered[i - 1] == b'\r' {
            return Ok(Some((start, start + i - 1)));
        }
        if !self.config.quirks.bare_lf {
            return Err(ProtocolError::BareLineFeed);
        }
        self.quirk(Quirk::BareLineFeed);
        Ok(Some((start, start + i)))
    }

    /// Handles the end of input: fine after QUIT, fatal anywhere else.
    fn at_eof(&self) -> Result<Option<Step>, ProtocolError> {
        if !self.eof || self.phase == Phase::Closed {
            return Ok(None);
        }
        match self.in_flight.front() {
            Some(f) => Err(ProtocolError::UnexpectedEof { command: f.kind }),
            None => Err(ProtocolError::ConnectionClosed),
        }
    }

    /// Processes buffered input until an event is ready or more input is needed.
    fn advance(&mut self) -> Result<Option<Step>, ProtocolError> {
        loop {
            if let Some(e) = &self.error {
                return Err(e.clone());
            }
            if !self.events.is_empty() {
                return Ok(Some(Step::Queued));
            }
            if self.awaiting_tls {
                if self.rx_pos < self.rx_end {
                    return Err(ProtocolError::StartTlsInjection);
                }
                return Ok(None);
            }
            if self.skip_lf {
                match self.rx[..self.rx_end].get(self.rx_pos) {
                    None => return self.at_eof(),
                    Some(b'\n') => self.rx_pos += 1,
                    Some(_) => {}
                }
                self.skip_lf = false;
            }
            let step = match &mut self.reply {
                Reply::Body { decoder, .. } => {
                    let decoded = decoder.decode(&self.rx[self.rx_pos..self.rx_end]).map_err(
                        |crate::body::BodyError::LineTooLong { limit }| {
                            ProtocolError::BodyLineTooLong { limit }
                        },
                    )?;
                    self.body_step(decoded)?
                }
                Reply::Listing { .. } => self.listing_step()?,
                Reply::Status => self.status_step()?,
            };
            match step {
                Progress::Continue => {}
                Progress::NeedInput => return self.at_eof(),
                Progress::Step(step) => return Ok(Some(step)),
            }
        }
    }

    #[inline]
    fn front_id(&self) -> CommandId {
        self.in_flight.front().map_or(CommandId(u64::MAX), |f| f.id)
    }

    fn body_step(&mut self, decoded: Decoded) -> Result<Progress, ProtocolError> {
        let id = self.front_id();
        match decoded {
            Decoded::Data { start, end } => {
                let base = self.rx_pos;
                self.rx_pos += end;
                if end > start {
                    return Ok(Progress::Step(Step::Body {
                        id,
                        start: base + start,
                        end: base + end,
                    }));
                }
                Ok(Progress::Continue)
            }
            Decoded::NeedMore { consumed } => {
                self.rx_pos += consumed;
                Ok(Progress::NeedInput)
            }
            Decoded::End { consumed } => {
                if consumed == 2 && self.rx.get(self.rx_pos + 1) == Some(&b'\r') {
                    self.skip_lf = true;
                    self.quirk(Quirk::DotCrTerminator);
                }
                self.rx_pos += consumed;
                let Reply::Body { decoder, first, .. } =
                    std::mem::replace(&mut self.reply, Reply::Status)
                else {
                    return Ok(Progress::Continue);
                };
                self.push(Event::BodyEnd {
                    id,
                    octets: decoder.octets(),
                });
                self.complete_ok(first);
                Ok(Progress::Continue)
            }
        }
    }

    fn listing_step(&mut self) -> Result<Progress, ProtocolError> {
        let Some((start, end)) = self.take_line(self.config.max_listing_line, "listing")? else {
            return Ok(Progress::NeedInput);
        };
        let Reply::Listing { kind, lines, .. } = &mut self.reply else {
            return Ok(Progress::Continue);
        };
        let kind = *kind;
        let mut line = &self.rx[start..end];
        if line == b"." {
            let Reply::Listing { first, .. } = std::mem::replace(&mut self.reply, Reply::Status)
            else {
                return Ok(Progress::Continue);
            };
            let id = self.front_id();
            let check = std::mem::take(&mut self.listing_check);
            match kind {
                Listing::Scan => check.verdict("LIST")?,
                Listing::UniqueId => check.verdict("UIDL")?,
                _ => {}
            }
            if kind == Listing::Capability {
                let capabilities = std::mem::take(&mut self.collecting);
                if let Some(before) = self.pre_login_capabilities.take() {
                    // Gmail announces PIPELINING, TOP and UIDL only after login (QUIRKS.md 11).
                    let gained = |now: bool, then: bool| now && !then;
                    if gained(capabilities.pipelining, before.pipelining)
                        || gained(capabilities.top, before.top)
                        || gained(capabilities.uidl, before.uidl)
                    {
                        self.quirk(Quirk::CapabilitiesAfterLogin);
                    }
                }
                self.capabilities = Some(capabilities);
                self.events.push_back(Pending::Capabilities(id));
            }
            self.complete_ok(first);
            return Ok(Progress::Continue);
        }
        *lines += 1;
        let count = *lines;
        let mut offset = start;
        if line.first() == Some(&b'.') {
            line = &line[1..];
            offset += 1;
        }
        let id = self.front_id();
        let malformed = |what| move |error| ProtocolError::Malformed { what, error };
        let listing = match kind {
            Listing::Scan => Some("LIST"),
            Listing::UniqueId => Some("UIDL"),
            Listing::Language => Some("LANG"),
            Listing::Capability => None,
        };
        if let Some(listing) = listing {
            if count > self.config.max_listing_entries {
                return Err(ProtocolError::TooManyEntries {
                    listing,
                    limit: self.config.max_listing_entries,
                });
            }
        }
        match kind {
            Listing::Scan => {
                let (msg, size) =
                    response::parse_scan_listing(line, self.config.max_message_number)
                        .map_err(malformed("LIST entry"))?;
                self.listing_check.record(msg, None);
                self.push(Event::ListEntry { id, msg, size });
            }
            Listing::UniqueId => {
                let (msg, uid) = response::parse_unique_id_listing(
                    line,
                    self.config.max_message_number,
                    self.config.max_uid_len,
                )
                .map_err(malformed("UIDL entry"))?;
                self.listing_check.record(msg, Some(uid));
                let uid_start = offset + (uid.as_ptr() as usize - line.as_ptr() as usize);
                return Ok(Progress::Step(Step::Uid {
                    id,
                    msg,
                    start: uid_start,
                    end: uid_start + uid.len(),
                }));
            }
            Listing::Capability => {
                if count > self.config.max_capabilities {
                    return Err(ProtocolError::TooManyCapabilities {
                        limit: self.config.max_capabilities,
                    });
                }
                self.collecting
                    .add_line(line)
                    .map_err(malformed("capability"))?;
            }
            Listing::Language => {
                let (tag, description) =
                    response::parse_lang_listing(line).map_err(malformed("LANG entry"))?;
                self.push(Event::LangEntry {
                    id,
                    tag,
                    description,
                });
            }
        }
        Ok(Progress::Continue)
    }

    fn status_step(&mut self) -> Result<Progress, ProtocolError> {
        let in_auth = self.in_flight.front().is_some_and(|f| f.auth.is_some());
        let limit = if in_auth {
            self.config.max_continuation_line
        } else {
            self.config.max_status_line
        };
        let Some((start, end)) = self.take_line(limit, "status")? else {
            return Ok(Progress::NeedInput);
        };
        if self.phase == Phase::Greeting {
            return self.greeting(start, end).map(|()| Progress::Continue);
        }
        let line = &self.rx[start..end];
        if let Some(challenge) = response::parse_continuation(line) {
            if !in_auth {
                return Err(ProtocolError::UnexpectedContinuation);
            }
            let challenge = BASE64
                .decode(challenge)
                .map_err(|_| ProtocolError::InvalidBase64)?;
            self.continuation(&challenge)?;
            return Ok(Progress::Continue);
        }
        if self.in_flight.is_empty() {
            if self.phase == Phase::Closed {
                // After QUIT: whatever a server says on its way out changes nothing.
                return Ok(Progress::Continue);
            }
            return Err(ProtocolError::UnsolicitedData);
        }
        let accept_codes = self
            .capabilities
            .as_ref()
            .is_some_and(Capabilities::accepts_response_codes);
        let status = response::parse_status_line(line, accept_codes).map_err(|error| {
            ProtocolError::Malformed {
                what: "status line",
                error,
            }
        })?;
        if self.config.trace {
            let text = String::from_utf8_lossy(&self.rx[start..end]).into_owned();
            self.trace(Trace::Received(text));
        }
        if !status.ok {
            self.complete_err(status);
            return Ok(Progress::Continue);
        }
        let Some(front) = self.in_flight.front() else {
            return Ok(Progress::Continue);
        };
        let id = front.id;
        let malformed = |what| move |error| ProtocolError::Malformed { what, error };
        match front.shape {
            ReplyShape::Single => self.complete_ok(status),
            ReplyShape::Stat => {
                let (count, size) =
                    response::parse_stat(&status.text).map_err(malformed("STAT reply"))?;
                self.push(Event::Stat { id, count, size });
                self.complete_ok(status);
            }
            ReplyShape::ScanOne(expected) => {
                let (msg, size) = response::parse_scan_listing(
                    status.text.as_bytes(),
                    self.config.max_message_number,
                )
                .map_err(malformed("LIST reply"))?;
                if msg != expected {
                    return Err(ProtocolError::WrongMessageNumber { expected, got: msg });
                }
                self.push(Event::ListEntry { id, msg, size });
                self.complete_ok(status);
            }
            ReplyShape::UniqueIdOne(expected) => {
                // Parse the raw line, so that the uid can be lent out of the buffer.
                let line = &self.rx[start..end];
                let text_at = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
                let text = line.get(text_at..).unwrap_or_default().trim_ascii_start();
                let (msg, uid, number_missing) = response::parse_unique_id_one(
                    text,
                    expected,
                    self.config.max_message_number,
                    self.config.max_uid_len,
                )
                .map_err(malformed("UIDL reply"))?;
                if msg != expected {
                    return Err(ProtocolError::WrongMessageNumber { expected, got: msg });
                }
                let uid_start = start + (uid.as_ptr() as usize - line.as_ptr() as usize);
                let uid_end = uid_start + uid.len();
                if number_missing {
                    self.quirk(Quirk::UidlWithoutMessageNumber);
                }
                self.complete_ok(status);
                return Ok(Progress::Step(Step::Uid {
                    id,
                    msg,
                    start: uid_start,
                    end: uid_end,
                }));
            }
            ReplyShape::Listing(kind) => {
                if kind == Listing::Capability {
                    self.collecting = Capabilities::default();
                }
                self.listing_check = ListingCheck::default();
                self.reply = Reply::Listing {
                    kind,
                    first: status,
                    lines: 0,
                };
            }
            ReplyShape::Body => {
                // LF framing (a line starts after any LF, `.` LF ends the body) only for a
                // server whose greeting ended in a bare LF: decided once per connection.
                let lf_lines = self.lf_server && self.config.quirks.bare_lf;
                let decoder = BodyDecoder::new(
                    lf_lines,
                    self.config.quirks.dot_cr_terminator,
                    self.config.max_body_line,
                );
                self.reply = Reply::Body {
                    id,
                    decoder,
                    first: status,
                };
            }
        }
        Ok(Progress::Continue)
    }

    fn greeting(&mut self, start: usize, end: usize) -> Result<(), ProtocolError> {
        let line = &self.rx[start..end];
        let status =
            response::parse_status_line(line, false).map_err(|error| ProtocolError::Malformed {
                what: "greeting",
                error,
            })?;
        let text_bytes = line.get(3..).unwrap_or_default();
        self.timestamp = apop::greeting_timestamp(text_bytes).map(<[u8]>::to_vec);
        self.lf_server = self.rx.get(end) == Some(&b'\n');
        if self.config.trace {
            let text = String::from_utf8_lossy(line).into_owned();
            self.trace(Trace::Received(text));
        }
        if status.code.is_none() && status.text.contains('[') {
            self.quirk(Quirk::BracketedGreetingText);
        }
        let ok = status.ok;
        self.push(Event::Greeting {
            ok,
            code: status.code,
            text: status.text,
            apop: self.timestamp.is_some(),
        });
        if ok {
            self.phase = Phase::Authorization;
            self.ask_capabilities();
        } else {
            self.phase = Phase::Closed;
            self.queue.clear();
        }
        Ok(())
    }

    fn continuation(&mut self, challenge: &[u8]) -> Result<(), ProtocolError> {
        let Some(exchange) = self.in_flight.front_mut().and_then(|f| f.auth.as_mut()) else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if exchange.cancelled {
            // The `*` is on its way; the server's `-ERR` follows.
            return Ok(());
        }
        let response = match exchange.deferred_initial.take() {
            Some(initial) => initial,
            None => exchange
                .mechanism
                .step(challenge)
                .map_err(|error| ProtocolError::Sasl {
                    mechanism: exchange.mechanism.name().to_owned(),
                    error,
                })?,
        };
        self.tx
            .extend_from_slice(&encode_response(&response, false));
        self.tx.extend_from_slice(b"\r\n");
        if self.config.trace {
            self.trace(Trace::Received(format!(
                "+ <{} octets of SASL challenge>",
                challenge.len()
            )));
            self.trace(Trace::Sent("<SASL response redacted>".into()));
        }
        Ok(())
    }

    fn pop_in_flight(&mut self) -> Option<InFlight> {
        let front = self.in_flight.pop_front()?;
        self.in_flight_bytes -= front.len;
        Some(front)
    }

    fn complete_err(&mut self, status: StatusLine) {
        let Some(front) = self.pop_in_flight() else {
            return;
        };
        match front.kind {
            CommandKind::Quit => self.phase = Phase::Closed,
            CommandKind::User
                if self
                    .queue
                    .front()
                    .is_some_and(|q| q.command.kind() == CommandKind::Pass) =>
            {
                if let Some(pass) = self.queue.pop_front() {
                    self.push(Event::Err {
                        id: front.id,
                        command: front.kind,
                        code: status.code,
                        text: status.text,
                    });
                    self.push(Event::Cancelled {
                        id: pass.id,
                        command: CommandKind::Pass,
                    });
                    return;
                }
            }
            CommandKind::Stls => {
                // Everything queued behind STLS was meant for an encrypted connection: never
                // send it in plaintext (issue 10 item 10). The caller decides what now.
                self.push(Event::Err {
                    id: front.id,
                    command: front.kind,
                    code: status.code,
                    text: status.text,
                });
                for queued in std::mem::take(&mut self.queue) {
                    self.push(Event::Cancelled {
                        id: queued.id,
                        command: queued.command.kind(),
                    });
                }
                self.quit_queued = false;
                return;
            }
            CommandKind::Capa if self.config.quirks.missing_capa => {
                self.capabilities = Some(Capabilities::default());
                self.quirk(Quirk::MissingCapa);
            }
            _ => {}
        }
        self.push(Event::Err {
            id: front.id,
            command: front.kind,
            code: status.code,
            text: status.text,
        });
    }

    fn complete_ok(&mut self, status: StatusLine) {
        let Some(mut front) = self.pop_in_flight() else {
            return;
        };
        let id = front.id;
        match front.kind {
            CommandKind::Pass | CommandKind::Apop | CommandKind::Rpop | CommandKind::Auth => {
                if let Some(exchange) = front.auth.as_mut() {
                    if let Err(error) = exchange.mechanism.finish() {
                        let mechanism = exchange.mechanism.name().to_owned();
                        self.fail(ProtocolError::Sasl { mechanism, error });
                        return;
                    }
                }
                self.phase = Phase::Transaction;
                self.pre_login_capabilities = self.capabilities.take();
                self.push(Event::LoggedIn { id });
                // Only now: a byte sent before this reply may be dropped by the server.
                self.ask_capabilities();
            }
            CommandKind::Stls => {
                self.awaiting_tls = true;
                self.capabilities = None;
                self.push(Event::StartTls { id });
                return;
            }
            CommandKind::Quit => self.phase = Phase::Closed,
            CommandKind::Utf8 => self.utf8 = true,
            _ => {}
        }
        self.push(Event::Ok {
            id,
            command: front.kind,
            code: status.code,
            text: status.text,
        });
    }
}

/// What one step of the receive path did.
enum Progress {
    Continue,
    NeedInput,
    Step(Step),
}

static EMPTY_CAPABILITIES: std::sync::LazyLock<Capabilities> =
    std::sync::LazyLock::new(Capabilities::default);

/// Base64 of a SASL response: `=` for an empty initial response (RFC 5034 §4), an empty line
/// for an empty response to a challenge.
fn encode_response(response: &Secret, initial: bool) -> Vec<u8> {
    if response.is_empty() {
        return if initial { b"=".to_vec() } else { Vec::new() };
    }
    BASE64.encode(response.expose()).into_bytes()
}
