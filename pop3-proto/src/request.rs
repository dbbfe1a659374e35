//! The request layer: what one POP3 operation means, written once for every adapter.
//!
//! A [`Request`] is a sans-IO operation object built on [`Client`]'s public API: it queues its
//! command(s), consumes the events of their replies and yields a typed result (a [`Reply`],
//! [`Stat`], a listing, a body delivered to a [`Sink`], a login method) or a [`Failure`]. An
//! adapter runs any request with one drive loop:
//!
//! ```text
//! loop {
//!     if let Some(result) = request.poll(&mut client) { return result }
//!     match client.poll_event()? {
//!         Some(event) => request.on_event(&event),   // (and traces to the log)
//!         None => write what poll_transmit gives, read once (within the ReadClock's deadline),
//!     }
//! }
//! ```
//!
//! Below, the same loop against a simulated server:
//!
//! ```
//! use pop3_proto::login::{LoginMethod, LoginPolicy};
//! use pop3_proto::request::{self, Failure, Request};
//! use pop3_proto::{Client, Config};
//!
//! /// The drive loop; `server` answers each write.
//! fn run<R: Request>(
//!     client: &mut Client,
//!     mut request: R,
//!     server: &mut impl Iterator<Item = &'static [u8]>,
//!     wire: &mut Vec<u8>,
//! ) -> Result<R::Output, Failure> {
//!     loop {
//!         if let Some(result) = request.poll(client) {
//!             return result;
//!         }
//!         match client.poll_event().expect("the server follows the protocol") {
//!             Some(event) => request.on_event(&event),
//!             None => {
//!                 client.poll_transmit(wire);
//!                 client.handle_input(server.next().expect("a reply"));
//!             }
//!         }
//!     }
//! }
//!
//! let mut config = Config::default();
//! config.auto_capa = false;
//! let mut client = Client::new(config);
//! client.handle_tls_established().expect("right after connecting");
//! let mut server = [
//!     &b"+OK ready\r\n"[..],
//!     b"+OK\r\n",        // USER
//!     b"+OK in\r\n",     // PASS
//!     b"+OK 2 320\r\n",  // STAT
//! ]
//! .into_iter();
//! let mut wire = Vec::new();
//! let greeting = run(&mut client, request::open(), &mut server, &mut wire)?;
//! assert_eq!(greeting.text, "ready");
//! let plan = request::login("alice", "secret", LoginPolicy::default(), "nonce".into());
//! let method = run(&mut client, plan, &mut server, &mut wire)?;
//! assert_eq!(method, LoginMethod::UserPass);
//! let stat = run(&mut client, request::stat(), &mut server, &mut wire)?;
//! assert_eq!((stat.count, stat.size), (2, 320));
//! assert_eq!(wire, b"USER alice\r\nPASS secret\r\nSTAT\r\n");
//! # Ok::<(), Failure>(())
//! ```
//!
//! # One answer for each of the adapters' old differences
//!
//! - A failing [`Sink`] is not called again; the rest of the body (and of a batch) is read and
//!   discarded, so the session's framing stays intact, and the request then ends with
//!   [`Failure::Sink`]. The session goes on.
//! - [`LoginPlan`] has a plan for every [`LoginMethod`], whether
//!   [`choose_login_bound`] returns it or the caller names it ([`LoginPlan::method`]): there is
//!   no catch-all. A server that offers only mechanisms this crate does not know gets
//!   USER/PASS (RFC 2449 servers need not announce USER), which `choose_login_bound` decides.
//! - [`capa`] answers the capabilities of the reply, and a `-ERR` as [`Failure::Server`]. On a
//!   session that is closed the adapters fail before running any request (`Error::Closed`),
//!   never with an empty answer.
//! - The adapters build the core's [`Config`](crate::Config) by ORing
//!   `allow_plaintext_auth` and `trace` with what they know (`pop3_tls::Options::client_config`),
//!   never overwriting them.

use std::io;

use crate::capa::Capabilities;
use crate::client::{Client, Phase};
use crate::command::{Command, CommandId};
use crate::error::EnqueueError;
use crate::event::Event;
use crate::login::{LoginChoiceError, LoginMethod, LoginPolicy, choose_login_bound, scram_binding};
use crate::reply::{Greeting, Listings, Reply, ScanListing, ServerError, Stat, UniqueIdListing};
use crate::sasl::{ChannelBinding, CramMd5, External, Login, Plain};
use crate::secret::Secret;
use crate::uid::{FetchReport, SeenStore, UidError, check_uid, select_new};
#[cfg(feature = "scram")]
use crate::{
    login::ScramBinding,
    sasl::{Scram, ScramHash, Sha1, Sha256, Sha512},
};

/// Why a request ended without its result. The session goes on after each of these, except
/// [`Failure::Closed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The server answered `-ERR`.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The caller's sink failed: it was not called again, and the rest of the reply was read
    /// and discarded.
    #[error("the sink failed: {0}")]
    Sink(#[source] io::Error),
    /// The call is not valid now; nothing was sent.
    #[error(transparent)]
    Usage(#[from] EnqueueError),
    /// No acceptable login method; nothing was sent.
    #[error(transparent)]
    Login(#[from] LoginChoiceError),
    /// A login on a session that is already logged in; nothing was sent.
    #[error("already logged in")]
    AlreadyLoggedIn,
    /// A UID-safe request refused to go on (nothing was deleted or fetched).
    #[error(transparent)]
    Uid(#[from] UidError),
    /// [`retr_limited`]: the message is larger than the limit (its rest was discarded).
    #[error("message {msg} is larger than the {limit} octets allowed")]
    TooLarge {
        /// The message number.
        msg: u32,
        /// The limit, in octets.
        limit: usize,
    },
    /// The server's greeting was `-ERR`: it refuses the session.
    #[error("the server refused the session")]
    GreetingRefused(Greeting),
    /// The session ended (or the command was cancelled) before the reply came.
    #[error("the connection is closed")]
    Closed,
}

/// A sans-IO operation: see the [module docs](self) for the loop that runs it.
pub trait Request {
    /// What the request yields.
    type Output;
    /// Called before the first event and after each one: queues what the request sends next,
    /// and returns its result once it has one. Once it returned `Some`, do not call it again.
    fn poll(&mut self, client: &mut Client) -> Option<Result<Self::Output, Failure>>;
    /// Every event [`Client::poll_event`] yields while the request runs; a request ignores the
    /// events of other commands.
    fn on_event(&mut self, event: &Event<'_>);
}

/// Where a RETR or TOP body goes. An error stops the delivery: see the [module docs](self).
pub trait Sink {
    /// The server accepted the command and the body begins (also for an empty body).
    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The next piece of the body, dot-unstuffed, line ends as the server sent them.
    fn chunk(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// The body is complete: `octets` after unstuffing.
    fn end(&mut self, octets: u64) -> io::Result<()> {
        let _ = octets;
        Ok(())
    }
}

/// Any `std::io::Write` is a sink (flushed at the end).
impl<W: io::Write + ?Sized> Sink for W {
    fn chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.write_all(chunk)
    }
    fn end(&mut self, _octets: u64) -> io::Result<()> {
        self.flush()
    }
}

/// One step of a message in [`retr_many`] (and the adapters' `retr_many` and `fetch_new`).
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetrEvent<'a> {
    /// The server accepted the message and its body begins: comes once per retrieved
    /// message, before its first [`Chunk`](Self::Chunk), and also for an empty message (which
    /// has no chunk), so this is where to create the message's file. Not sent for a
    /// [`Refused`](Self::Refused) message.
    Start,
    /// The next piece of the message, dot-unstuffed, line ends as the server sent them.
    Chunk(&'a [u8]),
    /// The message is complete.
    End {
        /// Its size in octets (after unstuffing).
        octets: u64,
    },
    /// The server refused to send it (`-ERR`); the batch goes on with the next message.
    Refused(ServerError),
}

fn server_error(event: &Event<'_>) -> Option<ServerError> {
    match event {
        Event::Err {
            command,
            code,
            text,
            ..
        } => Some(ServerError {
            command: *command,
            code: code.cloned(),
            text: text.to_string(),
        }),
        _ => None,
    }
}

/// What one command's reply carries besides its status line.
pub trait Collect {
    /// The typed result.
    type Output;
    /// A data event of the command (entries, body chunks, capabilities).
    fn data(&mut self, event: &Event<'_>);
    /// The `+OK` came: the result.
    fn finish(&mut self, reply: Reply) -> Result<Self::Output, Failure>;
}

/// One command and its reply, the data collected by `C`.
#[derive(Debug)]
pub struct Single<C> {
    command: Option<Command>,
    id: Option<CommandId>,
    end: Option<Result<Reply, Failure>>,
    collect: C,
}

impl<C: Collect> Single<C> {
    /// The request of `command`, its data collected by `collect`.
    pub fn new(command: Command, collect: C) -> Self {
        Self {
            command: Some(command),
            id: None,
            end: None,
            collect,
        }
    }
}

impl<C: Collect> Request for Single<C> {
    type Output = C::Output;

    fn poll(&mut self, client: &mut Client) -> Option<Result<C::Output, Failure>> {
        if let Some(command) = self.command.take() {
            match client.enqueue(command) {
                Ok(id) => self.id = Some(id),
                Err(error) => return Some(Err(error.into())),
            }
        }
        match self.end.take()? {
            Ok(reply) => Some(self.collect.finish(reply)),
            Err(failure) => Some(Err(failure)),
        }
    }

    fn on_event(&mut self, event: &Event<'_>) {
        if event.id().is_none() || event.id() != self.id {
            return;
        }
        self.end = match event {
            Event::Ok { code, text, .. } => Some(Ok(Reply {
                code: code.cloned(),
                text: text.to_string(),
            })),
            Event::StartTls { .. } => Some(Ok(Reply::default())),
            Event::Cancelled { .. } => Some(Err(Failure::Closed)),
            Event::Err { .. } => server_error(event).map(|e| Err(e.into())),
            data => {
                self.collect.data(data);
                None
            }
        };
    }
}

/// The `+OK` line only.
#[derive(Debug, Default)]
pub struct Status;

impl Collect for Status {
    type Output = Reply;
    fn data(&mut self, _: &Event<'_>) {}
    fn finish(&mut self, reply: Reply) -> Result<Reply, Failure> {
        Ok(reply)
    }
}

/// The items `extract` takes from the data events, all of them or (with `one`) exactly one.
#[derive(Debug)]
pub struct Items<T> {
    items: Vec<T>,
    extract: fn(&Event<'_>) -> Option<T>,
}

impl<T> Collect for Items<T> {
    type Output = Vec<T>;
    fn data(&mut self, event: &Event<'_>) {
        self.items.extend((self.extract)(event));
    }
    fn finish(&mut self, _: Reply) -> Result<Vec<T>, Failure> {
        Ok(std::mem::take(&mut self.items))
    }
}

/// The single item of a one-line answer (`STAT`, `LIST n`, `UIDL n`).
#[derive(Debug)]
pub struct One<T>(Items<T>);

impl<T> Collect for One<T> {
    type Output = T;
    fn data(&mut self, event: &Event<'_>) {
        self.0.data(event);
    }
    fn finish(&mut self, reply: Reply) -> Result<T, Failure> {
        self.0.finish(reply)?.pop().ok_or(Failure::Closed)
    }
}

fn items<T>(command: Command, extract: fn(&Event<'_>) -> Option<T>) -> Single<Items<T>> {
    Single::new(
        command,
        Items {
            items: Vec::new(),
            extract,
        },
    )
}

fn one<T>(command: Command, extract: fn(&Event<'_>) -> Option<T>) -> Single<One<T>> {
    Single::new(
        command,
        One(Items {
            items: Vec::new(),
            extract,
        }),
    )
}

fn scan(event: &Event<'_>) -> Option<ScanListing> {
    match event {
        Event::ListEntry { msg, size, .. } => Some(ScanListing {
            msg: *msg,
            size: *size,
        }),
        _ => None,
    }
}

fn unique_id(event: &Event<'_>) -> Option<UniqueIdListing> {
    match event {
        Event::UidlEntry { msg, uid, .. } => Some(UniqueIdListing {
            msg: *msg,
            uid: (*uid).to_owned(),
        }),
        _ => None,
    }
}

/// A command whose answer is its status line: DELE, RSET, NOOP, QUIT, USER, PASS, APOP,
/// RPOP, AUTH, UTF8, `LANG tag`, STLS (whose `+OK` is the [`Event::StartTls`]).
pub fn simple(command: Command) -> Single<Status> {
    Single::new(command, Status)
}

/// `STAT`.
pub fn stat() -> Single<One<Stat>> {
    one(Command::Stat, |event| match event {
        Event::Stat { count, size, .. } => Some(Stat {
            count: *count,
            size: *size,
        }),
        _ => None,
    })
}

/// `LIST`: every message's number and size.
pub fn list() -> Single<Items<ScanListing>> {
    items(Command::List(None), scan)
}

/// `LIST n`.
pub fn list_one(msg: u32) -> Single<One<ScanListing>> {
    one(Command::List(Some(msg)), scan)
}

/// `UIDL`: every message's unique id.
pub fn uidl() -> Single<Items<UniqueIdListing>> {
    items(Command::Uidl(None), unique_id)
}

/// `UIDL n`.
pub fn uidl_one(msg: u32) -> Single<One<UniqueIdListing>> {
    one(Command::Uidl(Some(msg)), unique_id)
}

/// [`listings`]' request.
#[derive(Debug)]
pub struct ListAndUidl {
    list: Single<Items<ScanListing>>,
    uidl: Single<Items<UniqueIdListing>>,
    list_result: Option<Result<Vec<ScanListing>, Failure>>,
    uidl_queued: bool,
}

/// `LIST` and `UIDL` queued at once, so that a server that pipelines gets both in one write
/// (behind the automatic CAPA after login, if it is still queued): one round trip for both
/// listings. The result comes once both replies are in. A `-ERR` to LIST fails the request
/// as [`list`] does; a `-ERR` to UIDL is [`Listings::unique_ids`]' error (a server without
/// UIDL is legal). The listings have the same limits and checks as [`list`] and [`uidl`].
pub fn listings() -> ListAndUidl {
    ListAndUidl {
        list: list(),
        uidl: uidl(),
        list_result: None,
        uidl_queued: false,
    }
}

impl Request for ListAndUidl {
    type Output = Listings;

    fn poll(&mut self, client: &mut Client) -> Option<Result<Listings, Failure>> {
        if let Some(result) = self.list.poll(client) {
            self.list_result = Some(result);
        }
        if !self.uidl_queued {
            if let Some(Err(failure)) = self.list_result.take() {
                // LIST could not be queued: neither is UIDL.
                return Some(Err(failure));
            }
            self.uidl_queued = true;
        }
        let unique_ids = match self.uidl.poll(client)? {
            Ok(unique_ids) => Ok(unique_ids),
            Err(Failure::Server(error)) => Err(error),
            Err(failure) => return Some(Err(failure)),
        };
        match self.list_result.take()? {
            Ok(scan) => Some(Ok(Listings { scan, unique_ids })),
            Err(failure) => Some(Err(failure)),
        }
    }

    fn on_event(&mut self, event: &Event<'_>) {
        self.list.on_event(event);
        self.uidl.on_event(event);
    }
}

/// `LANG`: (tag, description) pairs.
pub fn lang() -> Single<Items<(String, String)>> {
    items(Command::Lang(None), |event| match event {
        Event::LangEntry {
            tag, description, ..
        } => Some((tag.to_string(), description.to_string())),
        _ => None,
    })
}

/// `CAPA`: the capability list (empty for a `+OK` without one; see the [module docs](self)).
pub fn capa() -> Single<One<Capabilities>> {
    Single::new(
        Command::Capa,
        One(Items {
            items: vec![Capabilities::default()],
            extract: |event| match event {
                Event::Capabilities { capabilities, .. } => Some((*capabilities).clone()),
                _ => None,
            },
        }),
    )
}

/// A body into a [`Sink`]: the number of octets.
#[derive(Debug)]
pub struct Body<S> {
    sink: S,
    started: bool,
    octets: u64,
    failed: Option<io::Error>,
}

impl<S: Sink> Body<S> {
    fn feed(&mut self, event: &Event<'_>) {
        if self.failed.is_some() {
            return;
        }
        let result = (|| {
            if !self.started {
                self.started = true;
                self.sink.start()?;
            }
            match event {
                Event::Body { chunk, .. } => self.sink.chunk(chunk),
                Event::BodyEnd { octets, .. } => {
                    self.octets = *octets;
                    self.sink.end(*octets)
                }
                _ => Ok(()),
            }
        })();
        self.failed = result.err();
    }
}

impl<S: Sink> Collect for Body<S> {
    type Output = u64;
    fn data(&mut self, event: &Event<'_>) {
        if matches!(event, Event::Body { .. } | Event::BodyEnd { .. }) {
            self.feed(event);
        }
    }
    fn finish(&mut self, _: Reply) -> Result<u64, Failure> {
        self.failed
            .take()
            .map_or(Ok(self.octets), |e| Err(Failure::Sink(e)))
    }
}

impl<S> Single<Body<S>> {
    /// The sink, for a caller that hands its contents over as they come (a body stream).
    pub fn sink(&mut self) -> &mut S {
        &mut self.collect.sink
    }
}

/// `RETR n` into `sink`.
pub fn retr<S: Sink>(msg: u32, sink: S) -> Single<Body<S>> {
    body(Command::retr(msg), sink)
}

/// `TOP n lines` into `sink`.
pub fn top<S: Sink>(msg: u32, lines: u32, sink: S) -> Single<Body<S>> {
    body(Command::top(msg, lines), sink)
}

fn body<S: Sink>(command: Command, sink: S) -> Single<Body<S>> {
    Single::new(
        command,
        Body {
            sink,
            started: false,
            octets: 0,
            failed: None,
        },
    )
}

/// A sink that keeps at most `limit` octets, for [`retr_limited`].
#[derive(Debug)]
pub struct Limited {
    body: Vec<u8>,
    limit: usize,
}

impl Sink for Limited {
    fn chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.body.len().saturating_add(chunk.len()) > self.limit {
            self.body = Vec::new();
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.body.extend_from_slice(chunk);
        Ok(())
    }
}

/// `RETR n` into memory, at most `limit` octets: a larger message is [`Failure::TooLarge`]
/// (its rest read and discarded). For the adapters' `retr_parsed`.
#[derive(Debug)]
pub struct RetrLimited {
    inner: Single<Body<Limited>>,
    msg: u32,
}

/// See [`RetrLimited`].
pub fn retr_limited(msg: u32, limit: usize) -> RetrLimited {
    RetrLimited {
        inner: retr(
            msg,
            Limited {
                body: Vec::new(),
                limit,
            },
        ),
        msg,
    }
}

impl Request for RetrLimited {
    type Output = Vec<u8>;
    fn poll(&mut self, client: &mut Client) -> Option<Result<Vec<u8>, Failure>> {
        let result = self.inner.poll(client)?;
        let sink = &mut self.inner.collect.sink;
        Some(match result {
            Ok(_) => Ok(std::mem::take(&mut sink.body)),
            Err(Failure::Sink(_)) => Err(Failure::TooLarge {
                msg: self.msg,
                limit: sink.limit,
            }),
            Err(other) => Err(other),
        })
    }
    fn on_event(&mut self, event: &Event<'_>) {
        self.inner.on_event(event);
    }
}

/// The opening of a session: the greeting, then (after a `+OK` greeting) whatever the core
/// asks by itself (the automatic CAPA), until the client is idle. A `-ERR` greeting is
/// [`Failure::GreetingRefused`].
#[derive(Debug, Default)]
pub struct Open {
    greeting: Option<(bool, Greeting)>,
}

/// See [`Open`].
pub fn open() -> Open {
    Open::default()
}

impl Request for Open {
    type Output = Greeting;
    fn poll(&mut self, client: &mut Client) -> Option<Result<Greeting, Failure>> {
        match self.greeting.as_ref()? {
            (false, _) => self
                .greeting
                .take()
                .map(|(_, g)| Err(Failure::GreetingRefused(g))),
            (true, _) => Settle
                .poll(client)?
                .ok()
                .and_then(|()| self.greeting.take())
                .map(|(_, g)| Ok(g)),
        }
    }
    fn on_event(&mut self, event: &Event<'_>) {
        if let Event::Greeting {
            ok,
            code,
            text,
            apop,
        } = event
        {
            let greeting = Greeting {
                text: text.to_string(),
                code: code.cloned(),
                apop: *apop,
            };
            self.greeting = Some((*ok, greeting));
        }
    }
}

/// Runs until the client has nothing queued, in flight or unreported (the automatic CAPA after
/// the greeting or TLS is answered), or the session is closed.
#[derive(Debug, Default)]
pub struct Settle;

impl Request for Settle {
    type Output = ();
    fn poll(&mut self, client: &mut Client) -> Option<Result<(), Failure>> {
        (client.is_idle() || client.phase() == Phase::Closed).then_some(Ok(()))
    }
    fn on_event(&mut self, _: &Event<'_>) {}
}

/// How to log in, and the plan that does it: one of [`LoginMethod`]'s commands (USER then
/// PASS for [`LoginMethod::UserPass`]) up to [`Event::LoggedIn`] and its `+OK`. The CAPA the
/// core asks after login is not waited for: it goes out with the caller's next command.
///
/// For USER/PASS both commands are queued at once and the core decides when the PASS goes
/// out: in the same write as USER when the server pipelines and the PASS exposes nothing the
/// caller did not allow (see [`Client::poll_transmit`]), otherwise only after USER's `+OK`
/// (a `-ERR` to USER then cancels it). A refused USER fails the login with USER's error; if
/// the PASS had gone out, its reply is read first, and should the server log in on it
/// anyway, the login succeeds (the phase is TRANSACTION).
#[derive(Debug)]
pub struct LoginPlan {
    user: String,
    password: Option<Secret>,
    nonce: Option<String>,
    policy: LoginPolicy,
    binding: Option<ChannelBinding>,
    forced: Option<LoginMethod>,
    method: Option<LoginMethod>,
    step: Option<Single<Status>>,
    /// USER/PASS only: the PASS, queued right behind USER.
    pass: Option<Single<Status>>,
    /// USER/PASS only: USER's result, kept until PASS's reply (or cancellation) is in.
    user_result: Option<Result<Reply, Failure>>,
    logged_in: bool,
}

/// `login`: the best method the server offers ([`choose_login_bound`]) that `policy` allows,
/// with a SCRAM client nonce given by the caller (the core has no randomness; the adapters use
/// `pop3_tls::scram_nonce`). Its result is the method used. Give the TLS connection's channel
/// binding with [`LoginPlan::channel_binding`] so that the SCRAM -PLUS variants can be chosen
/// (and `y` sent when the server lacks them); ask for one method with [`LoginPlan::method`].
pub fn login(
    user: &str,
    password: impl Into<Secret>,
    policy: LoginPolicy,
    scram_nonce: String,
) -> LoginPlan {
    LoginPlan {
        user: user.to_owned(),
        password: Some(password.into()),
        nonce: Some(scram_nonce),
        policy,
        binding: None,
        forced: None,
        method: None,
        step: None,
        pass: None,
        user_result: None,
        logged_in: false,
    }
}

impl LoginPlan {
    /// The channel binding of the TLS connection the login runs on (from the adapter:
    /// `pop3_tls::channel_binding`), or `None`. Ignored on a connection without TLS.
    #[must_use]
    pub fn channel_binding(mut self, binding: Option<ChannelBinding>) -> Self {
        self.binding = binding;
        self
    }

    /// Uses `method` instead of choosing one, whatever the server advertises (the server
    /// answers `-ERR` if it lacks it). The channel-binding rules still hold
    /// ([`scram_binding`]): a -PLUS method needs a binding, and a SCRAM method without binding
    /// is refused when the connection can bind and the server advertises its -PLUS variant.
    /// The core's own rules too: a method that sends the password needs TLS unless plaintext
    /// is allowed. [`LoginMethod::External`] uses no password (an empty authorization
    /// identity: the certificate's).
    #[must_use]
    pub fn method(mut self, method: LoginMethod) -> Self {
        self.forced = Some(method);
        self
    }

    fn first(&mut self, client: &Client) -> Result<Command, Failure> {
        if client.phase() == Phase::Transaction {
            return Err(Failure::AlreadyLoggedIn);
        }
        let can_bind = client.is_tls() && self.binding.is_some();
        let method = match self.forced {
            Some(method) => method,
            None => choose_login_bound(
                client.capabilities(),
                client.apop_available(),
                client.is_tls(),
                can_bind,
                self.policy,
            )?,
        };
        let gs2 = scram_binding(method, client.capabilities(), can_bind)?;
        self.method = Some(method);
        let (user, password) = (self.user.clone(), self.password.take().unwrap_or_default());
        let nonce = self.nonce.take().unwrap_or_default();
        let binding = self.binding.clone();
        #[cfg(not(feature = "scram"))]
        let _ = (&nonce, gs2, &binding);
        Ok(match method {
            // Without the `scram` feature `choose_login_bound` never picks these; named, they
            // are not supported.
            #[cfg(not(feature = "scram"))]
            LoginMethod::ScramSha512Plus
            | LoginMethod::ScramSha512
            | LoginMethod::ScramSha256Plus
            | LoginMethod::ScramSha256
            | LoginMethod::ScramSha1Plus
            | LoginMethod::ScramSha1 => return Err(LoginChoiceError::NoSupportedMethod.into()),
            #[cfg(feature = "scram")]
            LoginMethod::ScramSha512Plus | LoginMethod::ScramSha512 => {
                scram_command::<Sha512>(user, password, nonce, gs2, binding)
            }
            #[cfg(feature = "scram")]
            LoginMethod::ScramSha256Plus | LoginMethod::ScramSha256 => {
                scram_command::<Sha256>(user, password, nonce, gs2, binding)
            }
            #[cfg(feature = "scram")]
            LoginMethod::ScramSha1Plus | LoginMethod::ScramSha1 => {
                scram_command::<Sha1>(user, password, nonce, gs2, binding)
            }
            LoginMethod::CramMd5 => Command::auth(CramMd5::new(user, password)),
            LoginMethod::Apop => Command::apop(user, password),
            LoginMethod::Plain => Command::auth(Plain::new(None, user, password)),
            LoginMethod::Login => Command::auth(Login::new(user, password)),
            LoginMethod::External => Command::auth(External::new(None)),
            LoginMethod::UserPass => {
                self.password = Some(password);
                Command::user(user)
            }
        })
    }
}

/// The AUTH command of a SCRAM method over `H`, with the channel binding [`scram_binding`]
/// decided.
#[cfg(feature = "scram")]
fn scram_command<H: ScramHash>(
    user: String,
    password: Secret,
    nonce: String,
    gs2: ScramBinding,
    binding: Option<ChannelBinding>,
) -> Command {
    let mechanism = Scram::<H>::new(user, password, nonce);
    Command::auth(match (gs2, binding) {
        (ScramBinding::Bind, Some(binding)) => mechanism.channel_binding(binding),
        (ScramBinding::ClientOnly, _) => mechanism.binding_supported(),
        _ => mechanism,
    })
}

impl Request for LoginPlan {
    type Output = LoginMethod;

    fn poll(&mut self, client: &mut Client) -> Option<Result<LoginMethod, Failure>> {
        if self.method.is_none() {
            match self.first(client) {
                Ok(command) => self.step = Some(simple(command)),
                Err(failure) => return Some(Err(failure)),
            }
            if let Some(password) = self.password.take() {
                // Refused before USER is queued, so that USER is not sent for nothing.
                if !client.is_tls() && !client.config().allow_plaintext_auth {
                    return Some(Err(EnqueueError::CleartextCredentials {
                        command: crate::command::CommandKind::Pass,
                    }
                    .into()));
                }
                self.pass = Some(simple(Command::pass(password)));
            }
        }
        let step = self.step.as_mut()?;
        if let Some(result) = step.poll(client) {
            self.user_result = Some(result);
        }
        let Some(pass) = self.pass.as_mut() else {
            // One command: its result is the login's.
            return match self.user_result.take()? {
                Err(failure) => Some(Err(failure)),
                Ok(_) if self.logged_in => self.method.map(Ok),
                Ok(_) => Some(Err(Failure::Closed)),
            };
        };
        if pass.id.is_none() && matches!(self.user_result, Some(Err(_))) {
            // USER could not be queued: neither is the PASS.
            if let Some(Err(failure)) = self.user_result.take() {
                return Some(Err(failure));
            }
        }
        // Queued right behind USER; the core sends it when the rules allow.
        let pass_result = pass.poll(client)?;
        match (self.user_result.take(), pass_result) {
            // The server logged in on the PASS: that decides, whatever USER's reply was.
            (_, Ok(_)) if self.logged_in => self.method.map(Ok),
            (Some(Err(failure)), _) | (_, Err(failure)) => Some(Err(failure)),
            _ => Some(Err(Failure::Closed)),
        }
    }

    fn on_event(&mut self, event: &Event<'_>) {
        for step in [&mut self.step, &mut self.pass].into_iter().flatten() {
            if matches!(event, Event::LoggedIn { id } if Some(*id) == step.id) {
                self.logged_in = true;
            }
            step.on_event(event);
        }
    }
}

/// Many commands, one per message, pipelined as the core allows; the events of each go to
/// `on` with the message's index in the batch.
#[derive(Debug)]
struct Batch {
    msgs: Vec<u32>,
    make: fn(u32) -> Command,
    first: Option<u64>,
    /// Commands answered so far.
    done: usize,
}

impl Batch {
    fn new(msgs: &[u32], make: fn(u32) -> Command) -> Self {
        Self {
            msgs: msgs.to_vec(),
            make,
            first: None,
            done: 0,
        }
    }

    /// Queues the batch (after checking every command, so that a bad one queues nothing), or
    /// says whether it is complete.
    fn poll(&mut self, client: &mut Client) -> Option<Result<(), Failure>> {
        if self.first.is_none() && !self.msgs.is_empty() {
            let queued = (|| {
                for &msg in &self.msgs {
                    (self.make)(msg).validate()?;
                }
                let mut first = None;
                for &msg in &self.msgs {
                    let id = client.enqueue((self.make)(msg))?;
                    first.get_or_insert(id.get());
                }
                Ok::<_, EnqueueError>(first)
            })();
            match queued {
                Ok(first) => self.first = first,
                Err(error) => return Some(Err(error.into())),
            }
        }
        (self.done == self.msgs.len()).then_some(Ok(()))
    }

    /// The index in the batch of the event's command (ids are consecutive), counting terminal
    /// events.
    fn index(&mut self, event: &Event<'_>) -> Option<usize> {
        let index = usize::try_from(event.id()?.get().checked_sub(self.first?)?).ok()?;
        if index >= self.msgs.len() {
            return None;
        }
        if event.is_terminal() {
            self.done += 1;
        }
        Some(index)
    }
}

/// [`retr_many`]'s request.
#[derive(Debug)]
pub struct RetrMany<F> {
    batch: Batch,
    on_event: F,
    started: Option<usize>,
    failed: Option<io::Error>,
}

/// Retrieves many messages, pipelined when the server allows (the core bounds the window).
/// `on_event` sees each message as one [`RetrEvent::Start`], [`RetrEvent::Chunk`]s and one
/// [`RetrEvent::End`], or as one [`RetrEvent::Refused`], in the order of `msgs`. An error from
/// `on_event` stops the handing over; the rest of the batch is read and discarded and the
/// request ends with [`Failure::Sink`].
pub fn retr_many<F: FnMut(u32, RetrEvent<'_>) -> io::Result<()>>(
    msgs: &[u32],
    on_event: F,
) -> RetrMany<F> {
    RetrMany {
        batch: Batch::new(msgs, Command::retr),
        on_event,
        started: None,
        failed: None,
    }
}

impl<F: FnMut(u32, RetrEvent<'_>) -> io::Result<()>> Request for RetrMany<F> {
    type Output = ();
    fn poll(&mut self, client: &mut Client) -> Option<Result<(), Failure>> {
        if let Err(failure) = self.batch.poll(client)? {
            return Some(Err(failure));
        }
        Some(self.failed.take().map_or(Ok(()), |e| Err(Failure::Sink(e))))
    }
    fn on_event(&mut self, event: &Event<'_>) {
        let Some(index) = self.batch.index(event) else {
            return;
        };
        if self.failed.is_some() {
            return;
        }
        let msg = self.batch.msgs[index];
        let on = &mut self.on_event;
        self.failed = retr_step(&mut self.started, index, event, |step| on(msg, step)).err();
    }
}

/// Hands one event of message `index` of a RETR batch over as [`RetrEvent`]s: a `Start`
/// before its first body event, then its chunks and end, or its refusal.
fn retr_step(
    started: &mut Option<usize>,
    index: usize,
    event: &Event<'_>,
    mut on: impl FnMut(RetrEvent<'_>) -> io::Result<()>,
) -> io::Result<()> {
    if matches!(event, Event::Body { .. } | Event::BodyEnd { .. }) && *started != Some(index) {
        *started = Some(index);
        on(RetrEvent::Start)?;
    }
    match event {
        Event::Body { chunk, .. } => on(RetrEvent::Chunk(chunk)),
        Event::BodyEnd { octets, .. } => on(RetrEvent::End { octets: *octets }),
        Event::Err { .. } => server_error(event).map_or(Ok(()), |e| on(RetrEvent::Refused(e))),
        _ => Ok(()),
    }
}

/// [`dele_many`]'s request.
#[derive(Debug)]
pub struct DeleMany {
    batch: Batch,
    results: Vec<Result<(), ServerError>>,
}

/// Marks many messages deleted, pipelined; one result per message, in the order of `msgs`.
pub fn dele_many(msgs: &[u32]) -> DeleMany {
    DeleMany {
        batch: Batch::new(msgs, Command::dele),
        results: Vec::with_capacity(msgs.len()),
    }
}

impl Request for DeleMany {
    type Output = Vec<Result<(), ServerError>>;
    fn poll(&mut self, client: &mut Client) -> Option<Result<Self::Output, Failure>> {
        if let Err(failure) = self.batch.poll(client)? {
            return Some(Err(failure));
        }
        Some(Ok(std::mem::take(&mut self.results)))
    }
    fn on_event(&mut self, event: &Event<'_>) {
        if self.batch.index(event).is_some() && event.is_terminal() {
            self.results.push(server_error(event).map_or(Ok(()), Err));
        }
    }
}

/// One command of a [`Pipeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piped {
    Retr(u32),
    Dele(u32),
    Quit,
}

impl Piped {
    fn command(self) -> Command {
        match self {
            Self::Retr(msg) => Command::retr(msg),
            Self::Dele(msg) => Command::dele(msg),
            Self::Quit => Command::Quit,
        }
    }
}

/// What a [`Pipeline`] hands over, command by command in the order they were queued.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineEvent<'a> {
    /// One step of `RETR msg`, as in [`retr_many`].
    Retr {
        /// The message number.
        msg: u32,
        /// The step.
        event: RetrEvent<'a>,
    },
    /// The reply to `DELE msg`.
    Dele {
        /// The message number.
        msg: u32,
        /// `Ok` for `+OK`, else the server's refusal.
        result: Result<(), ServerError>,
    },
    /// The reply to the QUIT of [`Pipeline::quit`]: the session is over (the phase is
    /// [`Phase::Closed`]). After login a `+OK` means the server committed the deletions, a
    /// `-ERR` that it did not.
    Quit {
        /// The `+OK` line, else the server's refusal.
        result: Result<Reply, ServerError>,
    },
}

/// RETRs and DELEs that stay in flight across requests, so that a caller that works in
/// batches (store a batch durably, then delete it) never waits a round trip between them.
///
/// [`retr`](Self::retr) and [`dele`](Self::dele) only queue here; each
/// [`replies`](Self::replies) request hands every queued command to the [`Client`] (which
/// sends them pipelined when the server allows, within its window; one at a time otherwise)
/// and then hands over the replies of the next `count` commands only: the later commands
/// stay on the wire, their replies buffered or still coming, for the next `replies`. A
/// command's events are handed over in the order the commands were queued.
///
/// Run nothing else on the session while commands of a pipeline are unanswered, except
/// to end it: another request ignores their replies (a `QUIT` then reads and discards them
/// before its own), so they are lost to the pipeline. To end the session without a round
/// trip of its own, queue its QUIT here with [`quit`](Self::quit): it goes out behind the
/// last commands and its reply comes as [`PipelineEvent::Quit`].
#[derive(Debug, Default)]
pub struct Pipeline {
    /// Queued by the caller, not yet given to the client.
    waiting: std::collections::VecDeque<Piped>,
    /// Given to the client, their replies not complete, oldest first.
    sent: std::collections::VecDeque<(CommandId, Piped)>,
    /// Whether the oldest sent command's `Start` was handed over.
    started: bool,
    /// Whether [`quit`](Self::quit) was called: nothing may be queued after it.
    quit: bool,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many commands are queued whose replies were not all handed over yet.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.sent.len()
    }

    /// Whether every queued command's reply was handed over.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `RETR msg` for each of `msgs` (sent with the next [`replies`](Self::replies)).
    /// A bad message number queues nothing; after [`quit`](Self::quit) nothing is queued
    /// ([`EnqueueError::Closed`]).
    pub fn retr(&mut self, msgs: &[u32]) -> Result<(), EnqueueError> {
        self.queue(msgs, Piped::Retr)
    }

    /// Queues `DELE msg` for each of `msgs` (sent with the next [`replies`](Self::replies)),
    /// behind every command queued before. A bad message number queues nothing; after
    /// [`quit`](Self::quit) nothing is queued ([`EnqueueError::Closed`]).
    pub fn dele(&mut self, msgs: &[u32]) -> Result<(), EnqueueError> {
        self.queue(msgs, Piped::Dele)
    }

    /// Queues `QUIT` behind every command queued before (sent with the next
    /// [`replies`](Self::replies), in the same write as the last commands when the server
    /// pipelines). Its reply is handed over as [`PipelineEvent::Quit`] and counts as one
    /// reply for `replies`' `count`; the session is over after it. Nothing can be queued
    /// after it: [`retr`](Self::retr), [`dele`](Self::dele) and `quit` then fail with
    /// [`EnqueueError::Closed`].
    ///
    /// The adapters' own `quit` then sends nothing (the core refuses a second QUIT): it
    /// fails with the usage error `EnqueueError::Closed`; drop the connection instead.
    pub fn quit(&mut self) -> Result<(), EnqueueError> {
        if self.quit {
            return Err(EnqueueError::Closed);
        }
        self.quit = true;
        self.waiting.push_back(Piped::Quit);
        Ok(())
    }

    fn queue(&mut self, msgs: &[u32], make: fn(u32) -> Piped) -> Result<(), EnqueueError> {
        if self.quit {
            return Err(EnqueueError::Closed);
        }
        for &msg in msgs {
            make(msg).command().validate()?;
        }
        self.waiting.extend(msgs.iter().map(|&msg| make(msg)));
        Ok(())
    }

    /// The request that sends what is queued and hands the replies of the next `count`
    /// commands (at most [`len`](Self::len)) to `on_event`, synchronously. It ends once
    /// the `count`-th reply is complete, even when the replies of later commands are
    /// buffered already (they wait for the next `replies`).
    ///
    /// If `on_event` fails, it is not called again during this request: the rest of the
    /// `count` replies is read and discarded, and the request ends with [`Failure::Sink`];
    /// the later commands stay in flight. A cancelled command (the session closed) ends it
    /// with [`Failure::Closed`].
    pub fn replies<F: FnMut(PipelineEvent<'_>) -> io::Result<()>>(
        &mut self,
        count: usize,
        on_event: F,
    ) -> Replies<'_, F> {
        let count = count.min(self.len());
        Replies {
            pipeline: self,
            count,
            on_event,
            failed: None,
            closed: false,
        }
    }
}

/// [`Pipeline::replies`]'s request.
#[derive(Debug)]
pub struct Replies<'a, F> {
    pipeline: &'a mut Pipeline,
    /// Replies still to hand over (or discard) in this request.
    count: usize,
    on_event: F,
    failed: Option<io::Error>,
    closed: bool,
}

impl<F: FnMut(PipelineEvent<'_>) -> io::Result<()>> Request for Replies<'_, F> {
    type Output = ();

    fn poll(&mut self, client: &mut Client) -> Option<Result<(), Failure>> {
        while let Some(&piped) = self.pipeline.waiting.front() {
            match client.enqueue(piped.command()) {
                Ok(id) => {
                    self.pipeline.waiting.pop_front();
                    self.pipeline.sent.push_back((id, piped));
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
        if self.closed {
            return Some(Err(Failure::Closed));
        }
        (self.count == 0).then(|| self.failed.take().map_or(Ok(()), |e| Err(Failure::Sink(e))))
    }

    fn on_event(&mut self, event: &Event<'_>) {
        let Some(&(id, piped)) = self.pipeline.sent.front() else {
            return;
        };
        if self.count == 0 || event.id() != Some(id) {
            return;
        }
        if event.is_terminal() {
            self.pipeline.sent.pop_front();
            self.count -= 1;
            self.closed |= matches!(event, Event::Cancelled { .. });
        }
        if self.failed.is_none() {
            let on = &mut self.on_event;
            let step = match piped {
                Piped::Retr(msg) => {
                    let mut started = self.pipeline.started.then_some(0);
                    let step = retr_step(&mut started, 0, event, |event| {
                        on(PipelineEvent::Retr { msg, event })
                    });
                    self.pipeline.started = started.is_some();
                    step
                }
                Piped::Dele(msg) => match event {
                    Event::Ok { .. } => on(PipelineEvent::Dele {
                        msg,
                        result: Ok(()),
                    }),
                    Event::Err { .. } => server_error(event).map_or(Ok(()), |e| {
                        on(PipelineEvent::Dele {
                            msg,
                            result: Err(e),
                        })
                    }),
                    _ => Ok(()),
                },
                Piped::Quit => match event {
                    Event::Ok { code, text, .. } => on(PipelineEvent::Quit {
                        result: Ok(Reply {
                            code: code.cloned(),
                            text: text.to_string(),
                        }),
                    }),
                    Event::Err { .. } => server_error(event)
                        .map_or(Ok(()), |e| on(PipelineEvent::Quit { result: Err(e) })),
                    _ => Ok(()),
                },
            };
            self.failed = step.err();
        }
        if event.is_terminal() {
            self.pipeline.started = false;
        }
    }
}

/// [`dele_uid`]'s request.
#[derive(Debug)]
pub struct DeleUid {
    check: Single<One<UniqueIdListing>>,
    dele: Option<Single<Status>>,
    msg: u32,
    uid: String,
}

/// `DELE msg`, but only if `UIDL msg` still gives it `uid` ([`check_uid`]); otherwise
/// [`Failure::Uid`] and nothing is deleted.
pub fn dele_uid(msg: u32, uid: &str) -> DeleUid {
    DeleUid {
        check: uidl_one(msg),
        dele: None,
        msg,
        uid: uid.to_owned(),
    }
}

impl Request for DeleUid {
    type Output = Reply;
    fn poll(&mut self, client: &mut Client) -> Option<Result<Reply, Failure>> {
        if let Some(dele) = &mut self.dele {
            return dele.poll(client);
        }
        let answer = match self.check.poll(client)? {
            Ok(answer) => answer,
            Err(failure) => return Some(Err(failure)),
        };
        if let Err(error) = check_uid(&answer, self.msg, &self.uid) {
            return Some(Err(error.into()));
        }
        self.dele
            .insert(simple(Command::dele(self.msg)))
            .poll(client)
    }
    fn on_event(&mut self, event: &Event<'_>) {
        match &mut self.dele {
            Some(dele) => dele.on_event(event),
            None => self.check.on_event(event),
        }
    }
}

/// The caller's `on_event` of [`fetch_new`], with the store.
type OnFetch<'a> = dyn FnMut(&UniqueIdListing, RetrEvent<'_>) -> io::Result<()> + 'a;

/// [`fetch_new`]'s request.
pub struct FetchNew<'a, St: ?Sized> {
    store: &'a mut St,
    on_event: Box<OnFetch<'a>>,
    listing: Single<Items<UniqueIdListing>>,
    wanted: Option<Vec<UniqueIdListing>>,
    batch: Option<Batch>,
    report: FetchReport,
    started: Option<usize>,
    failed: Option<io::Error>,
}

impl<St: ?Sized> std::fmt::Debug for FetchNew<'_, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchNew")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Fetches what `store` has not recorded: `UIDL`, then [`select_new`]'s messages with a
/// pipelined RETR batch. `on_event` sees each message as in [`retr_many`], with its UIDL
/// entry; after its `End` returned `Ok`, the UID is recorded with [`SeenStore::record`]. A
/// refused message is not recorded. Never deletes. An error from `on_event` or the store ends
/// the request with [`Failure::Sink`] (the rest of the batch is read and discarded; what was
/// recorded stays recorded).
pub fn fetch_new<'a, St: SeenStore + ?Sized>(
    store: &'a mut St,
    on_event: impl FnMut(&UniqueIdListing, RetrEvent<'_>) -> io::Result<()> + 'a,
) -> FetchNew<'a, St> {
    FetchNew {
        store,
        on_event: Box::new(on_event),
        listing: uidl(),
        wanted: None,
        batch: None,
        report: FetchReport::default(),
        started: None,
        failed: None,
    }
}

impl<St: SeenStore + ?Sized> Request for FetchNew<'_, St> {
    type Output = FetchReport;
    fn poll(&mut self, client: &mut Client) -> Option<Result<FetchReport, Failure>> {
        if self.wanted.is_none() {
            let listing = match self.listing.poll(client)? {
                Ok(listing) => listing,
                Err(failure) => return Some(Err(failure)),
            };
            let wanted = match select_new(&listing, &*self.store) {
                Ok(wanted) => wanted,
                Err(error) => return Some(Err(error.into())),
            };
            let msgs: Vec<u32> = wanted.iter().map(|entry| entry.msg).collect();
            self.batch = Some(Batch::new(&msgs, Command::retr));
            self.wanted = Some(wanted);
        }
        if let Err(failure) = self.batch.as_mut()?.poll(client)? {
            return Some(Err(failure));
        }
        Some(match self.failed.take() {
            Some(error) => Err(Failure::Sink(error)),
            None => Ok(std::mem::take(&mut self.report)),
        })
    }

    fn on_event(&mut self, event: &Event<'_>) {
        let (Some(batch), Some(wanted)) = (&mut self.batch, &self.wanted) else {
            self.listing.on_event(event);
            return;
        };
        let Some(index) = batch.index(event) else {
            return;
        };
        if self.failed.is_some() {
            return;
        }
        let entry = &wanted[index];
        let (on, store, report) = (&mut self.on_event, &mut *self.store, &mut self.report);
        let result = retr_step(&mut self.started, index, event, |step| match step {
            RetrEvent::End { octets } => {
                on(entry, RetrEvent::End { octets })?;
                store.record(&entry.uid)?;
                report.fetched.push(entry.clone());
                Ok(())
            }
            RetrEvent::Refused(error) => {
                on(entry, RetrEvent::Refused(error.clone()))?;
                report.refused.push((entry.clone(), error));
                Ok(())
            }
            other => on(entry, other),
        });
        self.failed = result.err();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Config;

    /// Runs `request` against a server that answers each write with the next of `replies`;
    /// returns the result and what the client wrote.
    fn drive<R: Request>(
        client: &mut Client,
        mut request: R,
        replies: &[&str],
    ) -> (Result<R::Output, Failure>, String) {
        let mut replies = replies.iter();
        let mut wire = Vec::new();
        loop {
            if let Some(result) = request.poll(client) {
                return (result, String::from_utf8(wire).unwrap());
            }
            match client.poll_event().unwrap() {
                Some(event) => request.on_event(&event),
                None => {
                    assert!(
                        client.poll_transmit(&mut wire) > 0,
                        "waiting with nothing sent"
                    );
                    client.handle_input(replies.next().unwrap().as_bytes());
                }
            }
        }
    }

    /// A session after the greeting, without automatic CAPA, over TLS when `tls`.
    fn session(tls: bool) -> Client {
        let mut client = Client::new(Config {
            auto_capa: false,
            ..Config::default()
        });
        if tls {
            client.handle_tls_established().unwrap();
        }
        client.handle_input(b"+OK ready\r\n");
        let (greeting, wire) = drive(&mut client, open(), &[]);
        assert_eq!(greeting.unwrap().text, "ready");
        assert_eq!(wire, "");
        client
    }

    fn logged_in() -> Client {
        let mut client = session(true);
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into());
        let (method, wire) = drive(&mut client, plan, &["+OK\r\n", "+OK in\r\n"]);
        assert_eq!(method.unwrap(), LoginMethod::UserPass);
        assert_eq!(wire, "USER alice\r\nPASS secret\r\n");
        client
    }

    /// Runs `request` with `pieces` of server input, one piece each time the client waits
    /// (whether or not it had anything to send): the result and each non-empty write.
    fn drive_pieces<R: Request>(
        client: &mut Client,
        mut request: R,
        pieces: &[&[u8]],
    ) -> (Result<R::Output, Failure>, Vec<String>) {
        let mut pieces = pieces.iter();
        let mut writes = Vec::new();
        loop {
            if let Some(result) = request.poll(client) {
                let mut rest = Vec::new();
                client.poll_transmit(&mut rest);
                if !rest.is_empty() {
                    writes.push(String::from_utf8(rest).unwrap());
                }
                return (result, writes);
            }
            match client.poll_event().unwrap() {
                Some(event) => request.on_event(&event),
                None => {
                    let mut wire = Vec::new();
                    if client.poll_transmit(&mut wire) > 0 {
                        writes.push(String::from_utf8(wire).unwrap());
                    }
                    client.handle_input(pieces.next().expect("a reply"));
                }
            }
        }
    }

    /// Runs the request made by `request` on a client made by `client`, with `replies` (one
    /// per wait) whole and then with each reply cut at every offset: all runs must show the
    /// same writes and the same result. Returns the result (as `Debug`), the writes and the
    /// client of the whole run.
    fn transcript<R: Request>(
        client: impl Fn() -> Client,
        request: impl Fn() -> R,
        replies: &[&str],
    ) -> (String, Vec<String>, Client)
    where
        R::Output: std::fmt::Debug,
    {
        let mut whole = client();
        let pieces: Vec<&[u8]> = replies.iter().map(|r| r.as_bytes()).collect();
        let (result, writes) = drive_pieces(&mut whole, request(), &pieces);
        let result = format!("{result:?}");
        for (i, reply) in replies.iter().enumerate() {
            for k in 1..reply.len() {
                let mut cut = pieces.clone();
                let (a, b) = reply.as_bytes().split_at(k);
                cut.splice(i..=i, [a, b]);
                let mut c = client();
                let (again, again_writes) = drive_pieces(&mut c, request(), &cut);
                assert_eq!(format!("{again:?}"), result, "reply {i} cut at {k}");
                assert_eq!(again_writes, writes, "reply {i} cut at {k}");
                assert_eq!(c.phase(), whole.phase(), "reply {i} cut at {k}");
            }
        }
        (result, writes, whole)
    }

    /// A session after the greeting (over TLS when `tls`, plaintext allowed when `plaintext`)
    /// whose server announced `caps` (CAPA lines); no automatic CAPA.
    fn announced(tls: bool, plaintext: bool, caps: &str) -> Client {
        let mut client = Client::new(Config {
            auto_capa: false,
            allow_plaintext_auth: plaintext,
            ..Config::default()
        });
        if tls {
            client.handle_tls_established().unwrap();
        }
        client.handle_input(b"+OK ready\r\n");
        drive(&mut client, open(), &[]).0.unwrap();
        let reply = format!("+OK\r\n{caps}.\r\n");
        drive(&mut client, capa(), &[&reply]).0.unwrap();
        client
    }

    fn user_pass() -> LoginPlan {
        login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .method(LoginMethod::UserPass)
    }

    #[test]
    fn user_and_pass_go_in_one_write_over_tls_with_pipelining() {
        let (result, writes, client) = transcript(
            || announced(true, false, "PIPELINING\r\n"),
            user_pass,
            &["+OK\r\n+OK in\r\n"],
        );
        assert_eq!(result, "Ok(UserPass)");
        assert_eq!(writes, ["USER alice\r\nPASS secret\r\n"]);
        assert_eq!(client.phase(), Phase::Transaction);
    }

    #[test]
    fn user_and_pass_go_in_one_write_in_the_clear_when_allowed_and_announced() {
        let (result, writes, _) = transcript(
            || announced(false, true, "PIPELINING\r\nUSER\r\n"),
            user_pass,
            &["+OK\r\n+OK in\r\n"],
        );
        assert_eq!(result, "Ok(UserPass)");
        assert_eq!(writes, ["USER alice\r\nPASS secret\r\n"]);
    }

    #[test]
    fn user_and_pass_are_lock_step_when_one_condition_lacks() {
        // No PIPELINING (TLS); no USER announced in the clear (plaintext allowed).
        for (tls, caps) in [(true, "USER\r\n"), (false, "PIPELINING\r\n")] {
            let (result, writes, _) = transcript(
                || announced(tls, true, caps),
                user_pass,
                &["+OK\r\n", "+OK in\r\n"],
            );
            assert_eq!(result, "Ok(UserPass)", "{tls} {caps}");
            assert_eq!(
                writes,
                ["USER alice\r\n", "PASS secret\r\n"],
                "{tls} {caps}"
            );
        }
        // No TLS, plaintext not allowed: refused before anything is sent.
        let mut client = announced(false, false, "PIPELINING\r\nUSER\r\n");
        let (result, writes) = drive_pieces(&mut client, user_pass(), &[]);
        assert!(
            matches!(
                result,
                Err(Failure::Usage(EnqueueError::CleartextCredentials { .. }))
            ),
            "{result:?}"
        );
        assert!(writes.is_empty());
        assert!(client.is_idle());
    }

    #[test]
    fn a_refused_user_with_the_pass_pipelined_fails_with_the_user_error() {
        let (result, writes, mut client) = transcript(
            || announced(true, false, "PIPELINING\r\n"),
            user_pass,
            &["-ERR who?\r\n-ERR no\r\n"],
        );
        assert!(result.contains("who?"), "{result}");
        assert_eq!(writes, ["USER alice\r\nPASS secret\r\n"]);
        assert_eq!(client.phase(), Phase::Authorization);
        // The next command works.
        let (capabilities, wire) = drive(&mut client, capa(), &["+OK\r\nUSER\r\n.\r\n"]);
        assert!(capabilities.unwrap().user);
        assert_eq!(wire, "CAPA\r\n");
        // A server that logs in on the PASS anyway: the login follows the PASS.
        let (result, _, client) = transcript(
            || announced(true, false, "PIPELINING\r\n"),
            user_pass,
            &["-ERR who?\r\n+OK in anyway\r\n"],
        );
        assert_eq!(result, "Ok(UserPass)");
        assert_eq!(client.phase(), Phase::Transaction);
    }

    /// A TLS session logged in by USER/PASS, with the automatic CAPA (queued after login,
    /// not sent yet); the server announced PIPELINING before login when `pipelining`.
    fn after_login(pipelining: bool) -> Client {
        let mut client = Client::new(Config::default());
        client.handle_tls_established().unwrap();
        client.handle_input(b"+OK ready\r\n");
        let caps = if pipelining {
            "+OK\r\nPIPELINING\r\nUSER\r\nUIDL\r\n.\r\n"
        } else {
            "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
        };
        // `open` waits for the automatic CAPA's answer.
        let (_, wire) = drive(&mut client, open(), &[caps]);
        assert_eq!(wire, "CAPA\r\n");
        let replies: &[&str] = if pipelining {
            &["+OK\r\n+OK in\r\n"]
        } else {
            &["+OK\r\n", "+OK in\r\n"]
        };
        drive(&mut client, user_pass(), replies).0.unwrap();
        assert_eq!(client.queued(), 1, "the automatic CAPA");
        client
    }

    const CAPA_REPLY: &str = "+OK\r\nPIPELINING\r\nUSER\r\nUIDL\r\n.\r\n";

    #[test]
    fn listings_go_in_one_write_behind_the_capa_after_login() {
        let all = format!("{CAPA_REPLY}+OK\r\n1 120\r\n2 200\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n");
        let (result, writes, _) = transcript(|| after_login(true), listings, &[&all]);
        assert_eq!(writes, ["CAPA\r\nLIST\r\nUIDL\r\n"]);
        let expected = Listings {
            scan: vec![
                ScanListing { msg: 1, size: 120 },
                ScanListing { msg: 2, size: 200 },
            ],
            unique_ids: Ok(vec![
                UniqueIdListing {
                    msg: 1,
                    uid: "a".into(),
                },
                UniqueIdListing {
                    msg: 2,
                    uid: "b".into(),
                },
            ]),
        };
        assert_eq!(result, format!("{:?}", Ok::<_, Failure>(expected)));
    }

    #[test]
    fn listings_go_one_at_a_time_without_pipelining() {
        let (result, writes, _) = transcript(
            || after_login(false),
            listings,
            &[
                "+OK\r\nUSER\r\n.\r\n",
                "+OK\r\n1 120\r\n.\r\n",
                "+OK\r\n1 a\r\n.\r\n",
            ],
        );
        assert_eq!(writes, ["CAPA\r\n", "LIST\r\n", "UIDL\r\n"]);
        assert!(result.starts_with("Ok(Listings"), "{result}");
    }

    #[test]
    fn listings_return_a_uidl_refusal_typed_and_fail_on_a_list_refusal() {
        let all = format!("{CAPA_REPLY}+OK\r\n1 120\r\n.\r\n-ERR [SYS/PERM] no UIDL here\r\n");
        let mut client = after_login(true);
        let (result, writes) = drive_pieces(&mut client, listings(), &[all.as_bytes()]);
        assert_eq!(writes, ["CAPA\r\nLIST\r\nUIDL\r\n"]);
        let answer = result.unwrap();
        assert_eq!(answer.scan, [ScanListing { msg: 1, size: 120 }]);
        let error = answer.unique_ids.unwrap_err();
        assert_eq!(error.command, crate::CommandKind::Uidl);
        assert_eq!(error.text, "no UIDL here");
        assert!(error.code.is_some());
        // A refused LIST fails the request; UIDL's reply is read too, and the session goes on.
        let all = format!("{CAPA_REPLY}-ERR busy\r\n+OK\r\n1 a\r\n.\r\n");
        let (result, writes, mut client) = transcript(|| after_login(true), listings, &[&all]);
        assert_eq!(writes, ["CAPA\r\nLIST\r\nUIDL\r\n"]);
        assert!(
            result.starts_with("Err(Server(") && result.contains("busy"),
            "{result}"
        );
        let (reply, wire) = drive(&mut client, simple(Command::Noop), &["+OK fine\r\n"]);
        assert_eq!(reply.unwrap().text, "fine");
        assert_eq!(wire, "NOOP\r\n");
    }

    #[test]
    fn login_by_user_pass_waits_for_user_then_for_logged_in() {
        let mut client = logged_in();
        assert_eq!(client.phase(), Phase::Transaction);
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into());
        let (again, wire) = drive(&mut client, plan, &[]);
        assert!(matches!(again, Err(Failure::AlreadyLoggedIn)), "{again:?}");
        assert_eq!(wire, "");
    }

    #[test]
    fn a_refused_user_ends_the_login_without_pass() {
        let mut client = session(true);
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into());
        let (result, wire) = drive(&mut client, plan, &["-ERR who?\r\n"]);
        assert!(
            matches!(result, Err(Failure::Server(ServerError { ref text, .. })) if text == "who?")
        );
        assert_eq!(wire, "USER alice\r\n");
    }

    #[test]
    fn no_login_without_tls_unless_allowed() {
        let mut client = session(false);
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into());
        let (result, wire) = drive(&mut client, plan, &[]);
        assert!(matches!(
            result,
            Err(Failure::Login(LoginChoiceError::WouldExposePassword))
        ));
        assert_eq!(wire, "");
    }

    /// A TLS session whose CAPA announced `sasl`.
    fn session_with_sasl(sasl: &str) -> Client {
        let mut client = session(true);
        let reply = format!("+OK\r\nSASL {sasl}\r\n.\r\n");
        let (caps, _) = drive(&mut client, capa(), &[&reply]);
        caps.unwrap();
        client
    }

    fn exporter() -> ChannelBinding {
        ChannelBinding::new(crate::sasl::ChannelBindingType::TlsExporter, [7u8; 32])
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn login_prefers_plus_when_the_connection_can_bind() {
        let mut client = session_with_sasl("PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256-PLUS");
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .channel_binding(Some(exporter()));
        let (result, wire) = drive(&mut client, plan, &["-ERR no\r\n"]);
        assert!(matches!(result, Err(Failure::Server(_))), "{result:?}");
        let first = b64(b"p=tls-exporter,,n=alice,r=nonce");
        assert_eq!(wire, format!("AUTH SCRAM-SHA-256-PLUS {first}\r\n"));

        // Without a binding: the strongest SCRAM, flag `n`.
        let mut client = session_with_sasl("PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256-PLUS");
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into());
        let (_, wire) = drive(&mut client, plan, &["-ERR no\r\n"]);
        assert_eq!(
            wire,
            format!("AUTH SCRAM-SHA-256 {}\r\n", b64(b"n,,n=alice,r=nonce"))
        );

        // A binding, but no -PLUS offered: flag `y` (RFC 5802 section 6).
        let mut client = session_with_sasl("PLAIN SCRAM-SHA-1");
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .channel_binding(Some(exporter()));
        let (_, wire) = drive(&mut client, plan, &["-ERR no\r\n"]);
        assert_eq!(
            wire,
            format!("AUTH SCRAM-SHA-1 {}\r\n", b64(b"y,,n=alice,r=nonce"))
        );
    }

    /// The RFC 5802 downgrade rule: a SCRAM method without binding asked for by name, on a
    /// connection that can bind, against a server offering -PLUS: refused, nothing sent.
    #[test]
    fn forced_scram_without_binding_is_a_downgrade_when_plus_is_offered() {
        let mut client = session_with_sasl("SCRAM-SHA-512 SCRAM-SHA-512-PLUS");
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .channel_binding(Some(exporter()))
            .method(LoginMethod::ScramSha512);
        let (result, wire) = drive(&mut client, plan, &[]);
        assert!(
            matches!(
                result,
                Err(Failure::Login(LoginChoiceError::ChannelBindingDowngrade(
                    LoginMethod::ScramSha512
                )))
            ),
            "{result:?}"
        );
        assert_eq!(wire, "");
        // -PLUS by name without a binding: refused too.
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .method(LoginMethod::ScramSha512Plus);
        let (result, wire) = drive(&mut client, plan, &[]);
        assert!(matches!(
            result,
            Err(Failure::Login(LoginChoiceError::NoChannelBinding(_)))
        ));
        assert_eq!(wire, "");
        // By name with the binding: bound.
        let plan = login("alice", "secret", LoginPolicy::default(), "nonce".into())
            .channel_binding(Some(ChannelBinding::new(
                crate::sasl::ChannelBindingType::TlsServerEndPoint,
                [1u8; 32],
            )))
            .method(LoginMethod::ScramSha512Plus);
        let (_, wire) = drive(&mut client, plan, &["-ERR no\r\n"]);
        let first = b64(b"p=tls-server-end-point,,n=alice,r=nonce");
        assert_eq!(wire, format!("AUTH SCRAM-SHA-512-PLUS {first}\r\n"));
    }

    #[test]
    fn external_by_name_sends_an_empty_authzid() {
        let mut client = session_with_sasl("EXTERNAL PLAIN");
        let plan = login("alice", "", LoginPolicy::default(), "nonce".into())
            .method(LoginMethod::External);
        let (method, wire) = drive(&mut client, plan, &["+OK welcome\r\n"]);
        assert_eq!(method.unwrap(), LoginMethod::External);
        assert_eq!(wire, "AUTH EXTERNAL =\r\n");
        assert_eq!(client.phase(), Phase::Transaction);
    }

    #[test]
    fn stat_list_uidl() {
        let mut client = logged_in();
        let (stat_result, wire) = drive(&mut client, stat(), &["+OK 2 320\r\n"]);
        assert_eq!(
            stat_result.unwrap(),
            Stat {
                count: 2,
                size: 320
            }
        );
        assert_eq!(wire, "STAT\r\n");
        let (listing, _) = drive(&mut client, list(), &["+OK\r\n1 120\r\n2 200\r\n.\r\n"]);
        assert_eq!(listing.unwrap()[1], ScanListing { msg: 2, size: 200 });
        let (one, wire) = drive(&mut client, uidl_one(2), &["+OK 2 abc\r\n"]);
        assert_eq!(one.unwrap().uid, "abc");
        assert_eq!(wire, "UIDL 2\r\n");
    }

    /// A sink that fails at its first chunk.
    struct Failing(usize);

    impl Sink for Failing {
        fn chunk(&mut self, _: &[u8]) -> io::Result<()> {
            self.0 += 1;
            Err(io::ErrorKind::StorageFull.into())
        }
    }

    #[test]
    fn a_failing_sink_is_not_called_again_and_the_body_is_drained() {
        let mut client = logged_in();
        let body = "+OK\r\none\r\n";
        let rest = "two\r\n..three\r\n.\r\n";
        let mut request = retr(1, Failing(0));
        // The body comes in two reads: the request ends only after the second.
        let (result, wire) = {
            let mut wire = Vec::new();
            let mut replies = [body, rest].into_iter();
            loop {
                if let Some(result) = request.poll(&mut client) {
                    break (result, String::from_utf8(wire).unwrap());
                }
                match client.poll_event().unwrap() {
                    Some(event) => request.on_event(&event),
                    None => {
                        client.poll_transmit(&mut wire);
                        client.handle_input(replies.next().unwrap().as_bytes());
                    }
                }
            }
        };
        assert!(
            matches!(result, Err(Failure::Sink(ref e)) if e.kind() == io::ErrorKind::StorageFull)
        );
        assert_eq!(wire, "RETR 1\r\n");
        assert_eq!(request.sink().0, 1);
        // The framing is intact: the next reply is the next command's.
        let (reply, _) = drive(&mut client, simple(Command::Noop), &["+OK fine\r\n"]);
        assert_eq!(reply.unwrap().text, "fine");
    }

    #[test]
    fn retr_many_hands_over_start_chunks_end_and_refusals_in_order() {
        let mut client = logged_in();
        let mut seen = Vec::new();
        let request = retr_many(&[1, 2, 3], |msg, event| {
            seen.push(format!("{msg}:{event:?}"));
            Ok(())
        });
        let (result, wire) = drive(
            &mut client,
            request,
            &["+OK\r\na\r\n.\r\n", "-ERR gone\r\n", "+OK\r\n.\r\n"],
        );
        result.unwrap();
        assert_eq!(wire, "RETR 1\r\nRETR 2\r\nRETR 3\r\n");
        assert_eq!(seen[0], "1:Start");
        assert_eq!(seen[1], "1:Chunk([97, 13, 10])");
        assert_eq!(seen[2], "1:End { octets: 3 }");
        assert!(seen[3].starts_with("2:Refused"), "{seen:?}");
        assert_eq!(seen[4..], ["3:Start", "3:End { octets: 0 }"]);
    }

    /// A logged-in session whose server announced PIPELINING.
    fn pipelining() -> Client {
        let mut client = logged_in();
        let (capabilities, wire) = drive(&mut client, capa(), &["+OK\r\nPIPELINING\r\n.\r\n"]);
        assert!(capabilities.unwrap().pipelining);
        assert_eq!(wire, "CAPA\r\n");
        client
    }

    fn describe(seen: &mut Vec<String>) -> impl FnMut(PipelineEvent<'_>) -> io::Result<()> + '_ {
        |event| {
            seen.push(match event {
                PipelineEvent::Retr { msg, event } => format!("{msg}:{event:?}"),
                PipelineEvent::Dele { msg, result } => format!("DELE {msg}:{}", result.is_ok()),
                PipelineEvent::Quit { result } => format!("QUIT:{result:?}"),
            });
            Ok(())
        }
    }

    #[test]
    fn a_pipeline_sends_the_next_batch_before_reading_this_one_and_keeps_it_in_flight() {
        let mut client = pipelining();
        let mut pipeline = Pipeline::new();
        pipeline.retr(&[1, 2]).unwrap();
        pipeline.retr(&[3, 4]).unwrap();
        assert_eq!(pipeline.len(), 4);
        let mut seen = Vec::new();
        // Every reply comes in one read: the request still ends after the second message.
        let all = "+OK\r\na\r\n.\r\n+OK\r\n.\r\n-ERR gone\r\n+OK\r\n..d\r\n.\r\n";
        let (result, wire) = drive(
            &mut client,
            pipeline.replies(2, describe(&mut seen)),
            &[all],
        );
        result.unwrap();
        assert_eq!(wire, "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\n");
        assert_eq!(
            seen,
            [
                "1:Start",
                "1:Chunk([97, 13, 10])",
                "1:End { octets: 3 }",
                "2:Start",
                "2:End { octets: 0 }"
            ]
        );
        assert_eq!(pipeline.len(), 2);
        // The first batch stored: its DELEs go out behind what is in flight, and the
        // replies of the second batch were buffered already.
        pipeline.dele(&[1, 2]).unwrap();
        seen.clear();
        let (result, wire) = drive(&mut client, pipeline.replies(2, describe(&mut seen)), &[]);
        result.unwrap();
        assert_eq!(wire, "");
        assert!(seen[0].starts_with("3:Refused"), "{seen:?}");
        assert_eq!(
            seen[1..],
            [
                "4:Start",
                "4:Chunk([46, 100, 13, 10])",
                "4:End { octets: 4 }"
            ]
        );
        seen.clear();
        let (result, wire) = drive(
            &mut client,
            pipeline.replies(usize::MAX, describe(&mut seen)),
            &["+OK\r\n-ERR locked\r\n"],
        );
        result.unwrap();
        assert_eq!(wire, "DELE 1\r\nDELE 2\r\n");
        assert_eq!(seen, ["DELE 1:true", "DELE 2:false"]);
        assert!(pipeline.is_empty());
    }

    /// RETR 1, RETR 2 and QUIT through a pipeline on a pipelining session, the server's
    /// bytes in `pieces`: what was handed over, the writes, the phase after.
    fn pipeline_with_quit(pieces: &[&[u8]]) -> (Vec<String>, Vec<String>, Phase) {
        let mut client = pipelining();
        let mut pipeline = Pipeline::new();
        pipeline.retr(&[1, 2]).unwrap();
        pipeline.quit().unwrap();
        assert_eq!(pipeline.len(), 3);
        let mut seen = Vec::new();
        let (result, writes) = drive_pieces(
            &mut client,
            pipeline.replies(usize::MAX, describe(&mut seen)),
            pieces,
        );
        result.unwrap();
        assert!(pipeline.is_empty());
        // Nothing can be queued after QUIT, in the pipeline or in the client.
        assert!(matches!(pipeline.retr(&[3]), Err(EnqueueError::Closed)));
        assert!(matches!(pipeline.dele(&[1]), Err(EnqueueError::Closed)));
        assert!(matches!(pipeline.quit(), Err(EnqueueError::Closed)));
        assert!(matches!(
            client.enqueue(Command::Quit),
            Err(EnqueueError::Closed)
        ));
        let mut rest = Vec::new();
        assert_eq!(client.poll_transmit(&mut rest), 0, "nothing after QUIT");
        (seen, writes, client.phase())
    }

    #[test]
    fn a_pipeline_quit_goes_in_the_same_write_and_its_reply_is_handed_over() {
        let all = "+OK\r\na\r\n.\r\n-ERR gone\r\n+OK bye\r\n";
        let (seen, writes, phase) = pipeline_with_quit(&[all.as_bytes()]);
        assert_eq!(writes, ["RETR 1\r\nRETR 2\r\nQUIT\r\n"]);
        assert_eq!(
            seen[..3],
            ["1:Start", "1:Chunk([97, 13, 10])", "1:End { octets: 3 }"]
        );
        assert!(seen[3].starts_with("2:Refused"), "{seen:?}");
        assert_eq!(seen[4], r#"QUIT:Ok(Reply { code: None, text: "bye" })"#);
        assert_eq!(seen.len(), 5);
        assert_eq!(phase, Phase::Closed);
        // Cut anywhere: the same, but for how the body is chunked.
        let steps = |seen: &[String]| -> Vec<String> {
            seen.iter()
                .filter(|s| !s.contains(":Chunk("))
                .cloned()
                .collect()
        };
        for k in 1..all.len() {
            let (a, b) = all.as_bytes().split_at(k);
            let (cut_seen, cut_writes, cut_phase) = pipeline_with_quit(&[a, b]);
            assert_eq!(steps(&cut_seen), steps(&seen), "cut at {k}");
            assert_eq!(
                (cut_writes, cut_phase),
                (writes.clone(), phase),
                "cut at {k}"
            );
        }
    }

    #[test]
    fn a_pipeline_quit_refused_is_typed_and_counted() {
        let mut client = pipelining();
        let mut pipeline = Pipeline::new();
        pipeline.dele(&[1]).unwrap();
        pipeline.quit().unwrap();
        let mut seen = Vec::new();
        // The DELE first, with the QUIT already on the wire.
        let (result, writes) = drive_pieces(
            &mut client,
            pipeline.replies(1, describe(&mut seen)),
            &[b"+OK\r\n"],
        );
        result.unwrap();
        assert_eq!(writes, ["DELE 1\r\nQUIT\r\n"]);
        assert_eq!(seen, ["DELE 1:true"]);
        assert_eq!(pipeline.len(), 1);
        assert_eq!(client.phase(), Phase::Update);
        seen.clear();
        let (result, writes) = drive_pieces(
            &mut client,
            pipeline.replies(1, describe(&mut seen)),
            &[b"-ERR [SYS/TEMP] could not commit\r\n"],
        );
        result.unwrap();
        assert!(writes.is_empty());
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].starts_with("QUIT:Err(ServerError { command: Quit, code: Some(")
                && seen[0].contains("could not commit"),
            "{seen:?}"
        );
        assert_eq!(client.phase(), Phase::Closed);
    }

    #[test]
    fn a_pipeline_without_pipelining_sends_one_command_at_a_time() {
        let mut client = logged_in();
        let mut pipeline = Pipeline::new();
        pipeline.retr(&[1, 2]).unwrap();
        let mut seen = Vec::new();
        let (result, wire) = drive(
            &mut client,
            pipeline.replies(1, describe(&mut seen)),
            &["+OK\r\n.\r\n"],
        );
        result.unwrap();
        // RETR 2 waits in the client for RETR 1's reply.
        assert_eq!(wire, "RETR 1\r\n");
        assert_eq!(client.queued(), 1);
        let (result, wire) = drive(
            &mut client,
            pipeline.replies(1, describe(&mut seen)),
            &["+OK\r\n.\r\n"],
        );
        result.unwrap();
        assert_eq!(wire, "RETR 2\r\n");
        assert_eq!(
            seen,
            [
                "1:Start",
                "1:End { octets: 0 }",
                "2:Start",
                "2:End { octets: 0 }"
            ]
        );
    }

    #[test]
    fn a_pipeline_whose_handler_fails_drains_its_count_and_keeps_the_rest() {
        let mut client = pipelining();
        let mut pipeline = Pipeline::new();
        pipeline.retr(&[1, 2, 3]).unwrap();
        let mut calls = 0;
        let all = "+OK\r\na\r\n.\r\n+OK\r\nb\r\n.\r\n+OK\r\nc\r\n.\r\n";
        let failing = |_: PipelineEvent<'_>| {
            calls += 1;
            Err(io::ErrorKind::StorageFull.into())
        };
        let (result, _) = drive(&mut client, pipeline.replies(2, failing), &[all]);
        assert!(
            matches!(result, Err(Failure::Sink(ref e)) if e.kind() == io::ErrorKind::StorageFull)
        );
        assert_eq!(calls, 1);
        assert_eq!(pipeline.len(), 1);
        let mut seen = Vec::new();
        let (result, _) = drive(&mut client, pipeline.replies(1, describe(&mut seen)), &[]);
        result.unwrap();
        assert_eq!(
            seen,
            ["3:Start", "3:Chunk([99, 13, 10])", "3:End { octets: 3 }"]
        );
        // Bad arguments queue nothing.
        assert!(pipeline.retr(&[4, 0]).is_err());
        assert!(pipeline.is_empty());
    }

    #[test]
    fn dele_uid_deletes_nothing_on_a_mismatch() {
        let mut client = logged_in();
        let (result, wire) = drive(&mut client, dele_uid(1, "old"), &["+OK 1 new\r\n"]);
        assert!(matches!(
            result,
            Err(Failure::Uid(UidError::Mismatch { .. }))
        ));
        assert_eq!(wire, "UIDL 1\r\n");
        let (reply, wire) = drive(
            &mut client,
            dele_uid(1, "new"),
            &["+OK 1 new\r\n", "+OK\r\n"],
        );
        reply.unwrap();
        assert_eq!(wire, "UIDL 1\r\nDELE 1\r\n");
    }

    #[test]
    fn fetch_new_fetches_and_records_only_the_new() {
        let mut client = logged_in();
        let mut store = std::collections::BTreeSet::from(["a".to_owned()]);
        let mut bodies = Vec::new();
        let request = fetch_new(&mut store, |entry, event| {
            if let RetrEvent::Chunk(chunk) = event {
                bodies.push((entry.uid.clone(), chunk.to_vec()));
            }
            Ok(())
        });
        let (report, wire) = drive(
            &mut client,
            request,
            &["+OK\r\n1 a\r\n2 b\r\n.\r\n", "+OK\r\nhi\r\n.\r\n"],
        );
        assert_eq!(report.unwrap().fetched[0].uid, "b");
        assert_eq!(wire, "UIDL\r\nRETR 2\r\n");
        assert_eq!(bodies, [("b".to_owned(), b"hi\r\n".to_vec())]);
        assert!(store.contains("b"));
    }
}
