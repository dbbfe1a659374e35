//! The client state machine: every state transition of a POP3 session lives here.
//!
//! `mod.rs` holds the state and the getters; [`send`] the command side (enqueue, schedule,
//! send); [`receive`] the reply side (framing, status lines, listings, bodies, events).

mod receive;
mod send;

use receive::ListingCheck;

use std::collections::VecDeque;
use std::fmt;

use crate::Secret;
use crate::body::BodyDecoder;
use crate::capa::Capabilities;
use crate::command::{Command, CommandId, CommandKind, Listing, ReplyShape};
use crate::config::Config;
use crate::error::{EnqueueError, ProtocolError};
use crate::event::{Event, Quirk, Trace};
use crate::response::ResponseCode;
use crate::sasl::Mechanism;
use crate::timing::{Awaited, Awaiting};

/// The phases of a POP3 session (RFC 1939 §3), plus the wait for the greeting and the wait
/// for the TLS handshake after STLS.
///
/// ```text
///            greeting +OK             PASS/APOP/AUTH/RPOP +OK          QUIT
/// Greeting ───────────────> Authorization ─────────────────> Transaction ─────> Update
///    │ -ERR greeting          │  │   ^                               │             │ +OK/-ERR
///    │              STLS +OK  │  │   │ handle_tls_established        │             v
///    │                        │  v   │                               └─ EOF ──> Closed
///    │                        │ TlsHandshake
///    └──────────────> Closed <┘ QUIT
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for the server's greeting. Commands may be queued already.
    Greeting,
    /// AUTHORIZATION: identify and authenticate (USER/PASS, APOP, AUTH), STLS, CAPA, UTF8.
    Authorization,
    /// The server accepted STLS ([`Event::StartTls`]): the client is paused until
    /// [`Client::handle_tls_established`], sends nothing, and takes any byte received as an
    /// injection ([`ProtocolError::StartTlsInjection`]). Then AUTHORIZATION again.
    TlsHandshake,
    /// TRANSACTION: the maildrop is locked and open.
    Transaction,
    /// UPDATE: QUIT was sent after login and every reply before it is in; the server commits
    /// deletions when it answers.
    Update,
    /// The session is over: QUIT answered, the greeting refused, or the connection lost.
    Closed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "GREETING",
            Self::Authorization => "AUTHORIZATION",
            Self::TlsHandshake => "TLS HANDSHAKE",
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
    Listing { kind: Listing, lines: usize },
    /// A `.` CR ended the body (the Cyrus quirk, [`Quirk::DotCrTerminator`]): the LF that
    /// may follow is swallowed, then a status line is expected.
    AfterDotCr,
    /// Inside a RETR/TOP body.
    Body { id: CommandId, decoder: BodyDecoder },
}

/// An event waiting in the queue: one that borrows nothing, or what a borrowing one is made
/// of when it leaves the queue (see [`Lent`]).
#[derive(Debug)]
enum Pending {
    Owned(Event<'static>),
    Capabilities(CommandId),
    /// [`Event::Ok`] or [`Event::Err`] to the reply in progress: its code and text are
    /// [`Lent::code`] and [`Lent::text`].
    Reply {
        ok: bool,
        id: CommandId,
        command: CommandKind,
    },
    /// [`Event::Greeting`], its code and text likewise in [`Lent`].
    Greeting {
        ok: bool,
        apop: bool,
    },
    Lang {
        id: CommandId,
        tag: String,
        description: String,
    },
    Trace(Trace),
}

impl Pending {
    /// Whether the event lends [`Lent::code`] and [`Lent::text`].
    fn lends_status(&self) -> bool {
        matches!(self, Pending::Reply { .. } | Pending::Greeting { .. })
    }
}

/// What events lend besides the input buffer: buffers the client reuses, so that a reply
/// costs no allocation.
///
/// `code`, `text` and `line` are those of the status line of the reply in progress, written
/// when the line is parsed. They stay until its terminal event has left the queue: replies
/// complete in order, a multi-line reply's terminal event comes before the next status line,
/// and the receive path parses a status line only when the queue is empty.
#[derive(Debug)]
struct Lent {
    code: Option<ResponseCode>,
    text: String,
    /// The status line's bytes, without the line end ([`Client::last_status_line`]): at
    /// `rx[line_at]` while the input buffer still holds them, else (`line_at` is `None`) in
    /// `line`. They are copied only when the buffer is about to be compacted, once per read
    /// at most, rather than once per reply.
    line: Vec<u8>,
    line_at: Option<std::ops::Range<usize>>,
    /// A LANG entry or a trace line, moved here when its event leaves the queue.
    lang: (String, String),
    trace: Trace,
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
    utf8: bool,
    /// The greeting ended in a bare LF: the server speaks LF throughout.
    lf_server: bool,
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
    eof: bool,
    tx: Vec<u8>,
    events: VecDeque<Pending>,
    lent: Lent,
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
            utf8: false,
            lf_server: false,
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
            eof: false,
            tx: Vec::new(),
            events: VecDeque::new(),
            lent: Lent {
                code: None,
                text: String::new(),
                line: Vec::new(),
                line_at: None,
                lang: (String::new(), String::new()),
                trace: Trace::Received(String::new()),
            },
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

    /// Whether the client is paused after the `+OK` to STLS, waiting for the TLS handshake
    /// (the phase is [`Phase::TlsHandshake`]).
    pub fn is_awaiting_tls(&self) -> bool {
        self.phase == Phase::TlsHandshake
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
            (Phase::TlsHandshake, ..) => Awaiting::TlsHandshake,
            (Phase::Greeting, ..) => Awaiting::Greeting,
            (_, None, _) => Awaiting::Nothing,
            (_, Some(f), Reply::Status | Reply::AfterDotCr) => Awaiting::Status(f),
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

    /// The status line of the latest reply, exactly as the server sent it, without its line
    /// end (CRLF, or the LF of a bare-LF server): the greeting, or the `+OK` or `-ERR` line
    /// (the first line of a multi-line reply). Empty before the greeting.
    ///
    /// It is the line of the reply whose event [`poll_event`](Self::poll_event) returned
    /// last, pipelined or not: a status line is parsed only once every event of the reply
    /// before it has been returned, so after an [`Event::Greeting`], [`Event::Ok`],
    /// [`Event::Err`] or [`Event::StartTls`] (and after the data events of that reply that
    /// came before it: `Stat`, listing entries, `Body`, `BodyEnd`, `LoggedIn`), this is that
    /// reply's line until the next `poll_event` (reads in between do not change it: the
    /// input buffer keeps a copy when it compacts). It is what those events' `code` and `text`
    /// were parsed from, with nothing lost: the spacing, the response code's spelling, bytes
    /// that are not UTF-8. SASL continuations (`+ ...`) are not status lines and leave it
    /// unchanged, as do lines a server sends after the reply to QUIT.
    ///
    /// The bytes are the server's, unchecked beyond the framing: escape them before showing
    /// them on a terminal.
    pub fn last_status_line(&self) -> &[u8] {
        match &self.lent.line_at {
            Some(range) => self.rx.get(range.clone()).unwrap_or_default(),
            None => &self.lent.line,
        }
    }

    /// The quirks tolerated so far in this session.
    pub fn quirks_seen(&self) -> &[Quirk] {
        &self.quirks_seen
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
        if self.phase == Phase::TlsHandshake {
            if self.rx_pos < self.rx_end {
                // Bytes read in plaintext after the +OK to STLS, before the handshake: injected
                // (RFC 2595 §4, CVE-2011-0411 class). Never take them as TLS data.
                self.fail(ProtocolError::StartTlsInjection);
                return Ok(());
            }
            self.phase = Phase::Authorization;
            self.tls = true;
            self.capabilities = None;
            self.ask_capabilities();
            Ok(())
        } else if self.phase == Phase::Greeting && self.rx_end == 0 {
            // Nothing received yet (in this phase nothing is consumed but the greeting).
            self.tls = true;
            Ok(())
        } else {
            Err(EnqueueError::UnexpectedTls)
        }
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
            self.events.push_back(Pending::Trace(line));
        }
    }

    fn quirk(&mut self, quirk: Quirk) {
        if !self.quirks_seen.contains(&quirk) {
            self.quirks_seen.push(quirk);
            self.push(Event::Quirk(quirk));
        }
    }
}
