//! The connection: the run loop of pop3-proto's `Client` over an async stream, and the typed
//! methods built on it.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use pop3_proto::login::{
    self, LoginMethod, LoginPolicy, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_proto::sasl::{self, Mechanism};
use pop3_proto::{
    Awaiting, Capabilities, Client, Command, CommandId, Event, Expired, Phase, ReadClock,
    ResponseCode, Secret, Trace,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::TlsOptions;
use crate::{Error, Options, Security, Stream, TRACE_TARGET};

/// The size of the read buffer each connection keeps and reuses.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// The first read size of a connection.
const MIN_READ: usize = 4 * 1024;

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Greeting {
    /// The text after `+OK`.
    pub text: String,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// Whether the greeting carries an APOP timestamp.
    pub apop: bool,
}

/// Whether a method is running, and whether the connection can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Ready,
    /// A method is running. Still set when a method returns means its future was dropped.
    Busy,
    /// A fatal error happened.
    Broken,
}

/// What an event handler tells the loop.
pub(crate) enum Flow {
    Continue,
    Done,
}

/// A POP3 session over any `AsyncRead + AsyncWrite + Unpin` stream.
///
/// Every method waits for the reply it needs and returns it typed. `-ERR` comes back as
/// [`Error::Server`] and the session goes on.
///
/// # Cancel safety
///
/// No method is cancel safe in the sense of "retry and get the same result", but every one
/// leaves the connection in a defined state when its future is dropped (by a `select!`, a
/// `timeout`, an aborted task) before it completes: the connection is **poisoned**, and every
/// later call returns [`Error::Poisoned`]. Each method sets a busy flag on entry and clears it
/// on completion; a flag still set on entry means the previous call was cut off. A poisoned
/// connection never sends anything again, and since QUIT is never sent automatically (not on
/// drop either), the server commits no deletion: DELE takes effect only at a QUIT that the
/// caller sent with [`Connection::quit`]. Drop the connection and reconnect.
///
/// A stream from [`retr_stream`](Self::retr_stream) or [`top_stream`](Self::top_stream)
/// dropped before its end poisons the connection the same way.
///
/// # Memory
///
/// A connection holds one reused 64 KiB read buffer, the core's buffer (at most one read plus a
/// partial line, or a partial status line up to its configured limit) and the command bytes of
/// the pipelining window: memory is bounded whatever the size of a message or a batch.
pub struct Connection<S = Stream> {
    stream: S,
    client: Client,
    greeting: Greeting,
    /// The read deadlines (the core decides them; this loop only feeds it the time).
    clock: ReadClock,
    /// The timeout that broke the connection, for the error of every later call.
    timed_out: Option<Expired>,
    login: LoginPolicy,
    /// Kept for STLS on a [`Connection<Stream>`].
    tls: TlsOptions,
    host: Option<Box<str>>,
    /// How much the next read asks for: small while replies are short, doubled (up to
    /// [`READ_BUFFER`]) whenever a read fills it. Reads go straight into the core's buffer,
    /// which therefore stays small for an idle session.
    read_size: usize,
    tx: Vec<u8>,
    tx_pos: usize,
    flush_pending: bool,
    pub(crate) state: State,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client", &self.client)
            .field("greeting", &self.greeting)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Connection<Stream> {
    /// Connects to `host:port` with the given security, reads the greeting and (with
    /// `auto_capa`) the capabilities, and for [`Security::StartTls`] upgrades with STLS.
    ///
    /// TLS verifies the certificate against `host` (SNI on) with the roots of
    /// [`Options::tls`].
    pub async fn connect(
        host: &str,
        port: u16,
        security: Security,
        options: &Options,
    ) -> Result<Self, Error> {
        let timed_out = |awaiting| {
            Error::Timeout(Expired::Timeout {
                after: options.timeout,
                awaiting,
            })
        };
        let tcp =
            match tokio::time::timeout(options.timeout, TcpStream::connect((host, port))).await {
                Ok(tcp) => tcp.map_err(|e| pop3_tls::connect_error(host, port, e))?,
                Err(_) => return Err(timed_out(Awaiting::Connect)),
            };
        let _ = tcp.set_nodelay(true);
        let mut connection = match security {
            Security::Implicit => {
                let name = server_name(host)?;
                let config = options.tls.build()?;
                let handshake = TlsConnector::from(config).connect(name, tcp);
                let tls = match tokio::time::timeout(options.timeout, handshake).await {
                    Ok(tls) => tls.map_err(Error::from_stream)?,
                    Err(_) => return Err(timed_out(Awaiting::TlsHandshake)),
                };
                Self::start(Stream::Tls(Box::new(tls)), options, true).await?
            }
            Security::StartTls | Security::None => {
                Self::start(Stream::Plain(tcp), options, false).await?
            }
        };
        connection.host = Some(host.into());
        if security == Security::StartTls {
            connection = connection.stls().await?;
        }
        Ok(connection)
    }

    /// Upgrades the connection with STLS (RFC 2595), then asks CAPA again (with
    /// `auto_capa`). The certificate is verified against the host given to
    /// [`connect`](Self::connect); for a connection made with [`new`](Connection::new), against
    /// the peer's IP address.
    ///
    /// Nothing after the server's `+OK` is read before the handshake: bytes that arrived with
    /// it are a STARTTLS injection and fail with
    /// [`ProtocolError::StartTlsInjection`](pop3_proto::ProtocolError::StartTlsInjection).
    pub async fn stls(mut self) -> Result<Connection<Stream>, Error> {
        self.begin()?;
        let upgraded = self.stls_exchange().await;
        if let Err(e) = upgraded {
            return Err(self.finish_err(e));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(pop3_proto::EnqueueError::TlsAlreadyActive.into());
        };
        let name = match &self.host {
            Some(host) => server_name(host)?,
            None => rustls::pki_types::ServerName::from(tcp.peer_addr()?.ip()),
        };
        let config = self.tls.build()?;
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let timeout = self.clock.timeout();
        let tls = match tokio::time::timeout(timeout, handshake).await {
            Ok(tls) => tls.map_err(Error::from_stream)?,
            Err(_) => {
                return Err(Error::Timeout(Expired::Timeout {
                    after: timeout,
                    awaiting: Awaiting::TlsHandshake,
                }));
            }
        };
        let mut connection = Connection {
            stream: Stream::Tls(Box::new(tls)),
            client: self.client,
            greeting: self.greeting,
            clock: self.clock,
            timed_out: self.timed_out,
            login: self.login,
            tls: self.tls,
            host: self.host,
            read_size: self.read_size,
            tx: self.tx,
            tx_pos: self.tx_pos,
            flush_pending: false,
            state: self.state,
        };
        connection.client.handle_tls_established()?;
        let settled = connection.settle().await;
        connection.finish(settled)?;
        Ok(connection)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Starts a session on a connected stream: reads the greeting and (with `auto_capa`) the
    /// capabilities. For implicit TLS, pass the TLS stream and set nothing else: the adapter
    /// cannot tell, so use [`Connection::connect`] to have TLS recorded (or
    /// [`new_tls`](Self::new_tls)).
    pub async fn new(stream: S, options: &Options) -> Result<Self, Error> {
        Self::start(stream, options, false).await
    }

    /// Like [`new`](Self::new), for a stream that is already encrypted (implicit TLS): the core
    /// then allows passwords.
    pub async fn new_tls(stream: S, options: &Options) -> Result<Self, Error> {
        Self::start(stream, options, true).await
    }

    async fn start(stream: S, options: &Options, tls: bool) -> Result<Self, Error> {
        let mut config = options.config.clone();
        config.trace =
            config.trace || tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG);
        config.allow_plaintext_auth = config.allow_plaintext_auth || options.login.allow_plaintext;
        let mut client = Client::new(config);
        if tls {
            client.handle_tls_established()?;
        }
        let mut connection = Self {
            stream,
            client,
            greeting: Greeting {
                text: String::new(),
                code: None,
                apop: false,
            },
            clock: options.read_clock(),
            timed_out: None,
            login: options.login,
            tls: options.tls.clone(),
            host: None,
            read_size: MIN_READ,
            tx: Vec::new(),
            tx_pos: 0,
            flush_pending: false,
            state: State::Busy,
        };
        let mut greeting = None;
        connection
            .pump(|event| match event {
                Event::Greeting {
                    ok,
                    code,
                    text,
                    apop,
                } => {
                    greeting = Some((ok, code, text, apop));
                    Ok(Flow::Done)
                }
                _ => Ok(Flow::Continue),
            })
            .await?;
        let Some((ok, code, text, apop)) = greeting else {
            return Err(Error::Closed);
        };
        if !ok {
            return Err(Error::GreetingRefused { code, text });
        }
        connection.greeting = Greeting { text, code, apop };
        connection.settle().await?;
        connection.state = State::Ready;
        Ok(connection)
    }

    // ---- getters ----

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The server's capabilities from the latest CAPA, or `None` while unknown (no CAPA,
    /// `auto_capa` off, or right after a login: the CAPA asked then goes out with the next
    /// command, and its answer is known when that command returns).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The session phase.
    pub fn phase(&self) -> Phase {
        self.client.phase()
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.client.is_tls()
    }

    /// Whether the server accepted `UTF8` (RFC 6856).
    pub fn is_utf8(&self) -> bool {
        self.client.is_utf8()
    }

    /// The timeout now in force (see [`set_timeout`](Self::set_timeout)).
    pub fn timeout(&self) -> Duration {
        self.clock.timeout()
    }

    /// Changes the timeout from the next wait on: for the rest of the connection, or around
    /// one call (set it before the call and back after). A zero timeout is refused
    /// ([`Error::Io`] of kind `InvalidInput`). What happens when one runs out:
    /// [`Error::Timeout`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        if timeout.is_zero() {
            return Err(Error::Io(io::ErrorKind::InvalidInput.into()));
        }
        self.clock.set_timeout(timeout);
        Ok(())
    }

    /// Changes the low-speed limit of multi-line replies (see
    /// [`Options::speed_limit`](crate::Options::speed_limit)); 0 turns it off.
    pub fn set_speed_limit(&mut self, bytes_per_second: u32, time: Duration) {
        self.clock.set_speed_limit(bytes_per_second, time);
    }

    /// Whether a previous call was cancelled mid-command (see the type's docs).
    pub fn is_poisoned(&self) -> bool {
        self.state == State::Busy
    }

    /// The protocol core, to read its state.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, given up without QUIT (nothing is committed).
    pub fn into_inner(self) -> S {
        self.stream
    }

    // ---- authorization ----

    /// `CAPA`: the capabilities, also kept for [`capabilities`](Self::capabilities).
    pub async fn capa(&mut self) -> Result<Capabilities, Error> {
        let mut capabilities = None;
        self.exec(Command::Capa, |event| {
            if let Event::Capabilities {
                capabilities: c, ..
            } = event
            {
                capabilities = Some(c.clone());
            }
            Ok(())
        })
        .await?;
        Ok(capabilities.unwrap_or_default())
    }

    /// `USER name`.
    pub async fn user(&mut self, name: &str) -> Result<Reply, Error> {
        self.exec(Command::user(name), |_| Ok(())).await
    }

    /// `PASS password`; on success the capabilities are asked again (with `auto_capa`) together
    /// with the next command, and unknown until then.
    pub async fn pass(&mut self, password: impl Into<Secret>) -> Result<Reply, Error> {
        self.exec_login(Command::pass(password)).await
    }

    /// `APOP name digest`, the digest made from the greeting timestamp and `secret`.
    pub async fn apop(&mut self, name: &str, secret: impl Into<Secret>) -> Result<Reply, Error> {
        self.exec_login(Command::apop(name, secret)).await
    }

    /// `RPOP user` (RFC 1081, obsolete).
    pub async fn rpop(&mut self, user: &str) -> Result<Reply, Error> {
        self.exec_login(Command::Rpop(user.to_owned())).await
    }

    /// `AUTH` with a SASL mechanism (RFC 5034).
    pub async fn auth(&mut self, mechanism: impl Mechanism + 'static) -> Result<Reply, Error> {
        self.exec_login(Command::auth(mechanism)).await
    }

    /// Logs in with the best method the server offers and [`Options::login`] allows
    /// ([`pop3_proto::login::choose_login`]), and returns the method used.
    ///
    /// On a session that is already logged in it fails with [`Error::AlreadyLoggedIn`] and
    /// sends nothing.
    pub async fn login(
        &mut self,
        user: &str,
        password: impl Into<Secret>,
    ) -> Result<LoginMethod, Error> {
        if self.client.phase() == Phase::Transaction {
            return Err(Error::AlreadyLoggedIn);
        }
        let password = password.into();
        let method = login::choose_login(
            self.client.capabilities(),
            self.client.apop_available(),
            self.client.is_tls(),
            self.login,
        )?;
        let user_owned = user.to_owned();
        match method {
            LoginMethod::ScramSha256 => {
                self.auth(sasl::ScramSha256::new(user_owned, password, scram_nonce()?))
                    .await?;
            }
            LoginMethod::CramMd5 => {
                self.auth(sasl::CramMd5::new(user_owned, password)).await?;
            }
            LoginMethod::Apop => {
                self.apop(user, password).await?;
            }
            LoginMethod::Plain => {
                self.auth(sasl::Plain::new(None, user_owned, password))
                    .await?;
            }
            LoginMethod::Login => {
                self.auth(sasl::Login::new(user_owned, password)).await?;
            }
            _ => {
                self.user(user).await?;
                self.pass(password).await?;
            }
        }
        Ok(method)
    }

    /// `UTF8` (RFC 6856).
    pub async fn utf8(&mut self) -> Result<Reply, Error> {
        self.exec(Command::Utf8, |_| Ok(())).await
    }

    /// `LANG`: the languages the server offers, as (tag, description).
    pub async fn lang(&mut self) -> Result<Vec<(String, String)>, Error> {
        let mut languages = Vec::new();
        self.exec(Command::Lang(None), |event| {
            if let Event::LangEntry {
                tag, description, ..
            } = event
            {
                languages.push((tag, description));
            }
            Ok(())
        })
        .await?;
        Ok(languages)
    }

    /// `LANG tag` (`*` lets the server pick).
    pub async fn set_lang(&mut self, tag: &str) -> Result<Reply, Error> {
        self.exec(Command::Lang(Some(tag.to_owned())), |_| Ok(()))
            .await
    }

    // ---- transaction ----

    /// `STAT`.
    pub async fn stat(&mut self) -> Result<Stat, Error> {
        let mut stat = None;
        self.exec(Command::Stat, |event| {
            if let Event::Stat { count, size, .. } = event {
                stat = Some(Stat { count, size });
            }
            Ok(())
        })
        .await?;
        stat.ok_or(Error::Closed)
    }

    /// `LIST`: every message's size.
    pub async fn list(&mut self) -> Result<Vec<ScanListing>, Error> {
        let mut listings = Vec::new();
        self.exec(Command::List(None), |event| {
            if let Event::ListEntry { msg, size, .. } = event {
                listings.push(ScanListing { msg, size });
            }
            Ok(())
        })
        .await?;
        Ok(listings)
    }

    /// `LIST n`.
    pub async fn list_one(&mut self, msg: u32) -> Result<ScanListing, Error> {
        let mut listing = None;
        self.exec(Command::List(Some(msg)), |event| {
            if let Event::ListEntry { msg, size, .. } = event {
                listing = Some(ScanListing { msg, size });
            }
            Ok(())
        })
        .await?;
        listing.ok_or(Error::Closed)
    }

    /// `UIDL`: every message's unique id.
    pub async fn uidl(&mut self) -> Result<Vec<UniqueIdListing>, Error> {
        let mut listings = Vec::new();
        self.exec(Command::Uidl(None), |event| {
            if let Event::UidlEntry { msg, uid, .. } = event {
                listings.push(UniqueIdListing {
                    msg,
                    uid: uid.to_owned(),
                });
            }
            Ok(())
        })
        .await?;
        Ok(listings)
    }

    /// `UIDL n`.
    pub async fn uidl_one(&mut self, msg: u32) -> Result<UniqueIdListing, Error> {
        let mut listing = None;
        self.exec(Command::Uidl(Some(msg)), |event| {
            if let Event::UidlEntry { msg, uid, .. } = event {
                listing = Some(UniqueIdListing {
                    msg,
                    uid: uid.to_owned(),
                });
            }
            Ok(())
        })
        .await?;
        listing.ok_or(Error::Closed)
    }

    /// `RETR n`, the message written to `out` as it arrives (dot-unstuffed, line ends as
    /// sent). Returns the number of octets written.
    ///
    /// An error from `out` is returned as [`Error::Io`]; the connection stays usable (the rest
    /// of the message is skipped by the next call).
    pub async fn retr<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: u32,
        out: &mut W,
    ) -> Result<u64, Error> {
        self.begin()?;
        let result = self.body_to(Command::retr(msg), out).await;
        self.finish(result)
    }

    /// `RETR n`, collected into a `Vec`.
    pub async fn retr_vec(&mut self, msg: u32) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        self.retr(msg, &mut body).await?;
        Ok(body)
    }

    /// `TOP n lines`: the headers and the first `lines` lines of the body, written to `out`.
    pub async fn top<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: u32,
        lines: u32,
        out: &mut W,
    ) -> Result<u64, Error> {
        self.begin()?;
        let result = self.body_to(Command::top(msg, lines), out).await;
        self.finish(result)
    }

    /// `TOP n lines`, collected into a `Vec`.
    pub async fn top_vec(&mut self, msg: u32, lines: u32) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        self.top(msg, lines, &mut body).await?;
        Ok(body)
    }

    /// `DELE n`: marks the message deleted; the server deletes it at [`quit`](Self::quit).
    pub async fn dele(&mut self, msg: u32) -> Result<Reply, Error> {
        self.exec(Command::dele(msg), |_| Ok(())).await
    }

    /// `RSET`: unmarks every deleted message.
    pub async fn rset(&mut self) -> Result<Reply, Error> {
        self.exec(Command::Rset, |_| Ok(())).await
    }

    /// `NOOP`.
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        self.exec(Command::Noop, |_| Ok(())).await
    }

    /// `QUIT`: ends the session. After login the server now deletes the messages marked with
    /// DELE (UPDATE state) and its answer says whether it did. The connection is then shut
    /// down.
    ///
    /// After a timeout (or any other fatal error) QUIT is not sent: it fails with
    /// [`Error::Unusable`] (or [`Error::Closed`]), and nothing is committed.
    pub async fn quit(mut self) -> Result<Reply, Error> {
        let reply = self.exec(Command::Quit, |_| Ok(())).await?;
        // Best effort (TLS close_notify): the session is over whatever happens here.
        let _ = tokio::time::timeout(self.clock.timeout(), self.stream.shutdown()).await;
        Ok(reply)
    }

    // ---- the run loop ----

    /// Marks the connection busy, or says why it cannot be used.
    pub(crate) fn begin(&mut self) -> Result<(), Error> {
        match self.state {
            State::Ready => {
                self.state = State::Busy;
                Ok(())
            }
            State::Busy => Err(Error::Poisoned),
            State::Broken => Err(self.timed_out.map_or(Error::Closed, Error::Unusable)),
        }
    }

    /// Ends a call: the connection is ready again unless a fatal error broke it.
    pub(crate) fn finish<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if self.state == State::Busy {
            self.state = State::Ready;
        }
        result
    }

    fn finish_err(&mut self, error: Error) -> Error {
        match self.finish::<()>(Err(error)) {
            Err(e) => e,
            Ok(()) => Error::Closed,
        }
    }

    /// Runs one command to its terminal event, giving its data events to `on_data`.
    pub(crate) async fn exec(
        &mut self,
        command: Command,
        on_data: impl FnMut(Event<'_>) -> Result<(), Error>,
    ) -> Result<Reply, Error> {
        self.begin()?;
        let result = self.exec_inner(command, on_data).await;
        self.finish(result)
    }

    /// A login command, up to its reply. The automatic CAPA that the core asks after a
    /// successful login is not waited for: it goes out with the caller's next commands, in
    /// the same write (issue 10 item 11).
    async fn exec_login(&mut self, command: Command) -> Result<Reply, Error> {
        self.exec(command, |_| Ok(())).await
    }

    async fn exec_inner(
        &mut self,
        command: Command,
        mut on_data: impl FnMut(Event<'_>) -> Result<(), Error>,
    ) -> Result<Reply, Error> {
        let id = self.client.enqueue(command)?;
        let mut reply = None;
        self.pump(|event| {
            if event.id() != Some(id) {
                return Ok(Flow::Continue);
            }
            match event {
                Event::Ok { code, text, .. } => {
                    reply = Some(Reply { code, text });
                    Ok(Flow::Done)
                }
                Event::StartTls { .. } => {
                    reply = Some(Reply::default());
                    Ok(Flow::Done)
                }
                Event::Err {
                    command,
                    code,
                    text,
                    ..
                } => Err(ServerError {
                    command,
                    code,
                    text,
                }
                .into()),
                event => on_data(event).map(|()| Flow::Continue),
            }
        })
        .await?;
        reply.ok_or(Error::Closed)
    }

    /// STLS up to the `+OK`, and the check that nothing came after it.
    async fn stls_exchange(&mut self) -> Result<(), Error> {
        self.exec_inner(Command::Stls, |_| Ok(())).await?;
        // The core refuses any byte buffered after the +OK (STARTTLS injection).
        self.drain_side_events()?;
        if !self.client.is_awaiting_tls() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Processes buffered events that no caller waits for (traces, quirks, stale replies).
    fn drain_side_events(&mut self) -> Result<(), Error> {
        loop {
            match self.client.poll_event() {
                Ok(Some(event)) => side_event(event),
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.state = State::Broken;
                    return Err(e.into());
                }
            }
        }
    }

    /// Drives the connection until nothing is queued, in flight or unreported (the automatic
    /// CAPA after the greeting, TLS or login).
    async fn settle(&mut self) -> Result<(), Error> {
        loop {
            self.drain_side_events()?;
            if self.client.is_idle() || self.client.phase() == Phase::Closed {
                return Ok(());
            }
            self.io_step().await?;
        }
    }

    /// The run loop: hands each event to `handle` until it says [`Flow::Done`], reading and
    /// writing as needed. Traces and quirks go to `tracing`.
    pub(crate) async fn pump(
        &mut self,
        mut handle: impl FnMut(Event<'_>) -> Result<Flow, Error>,
    ) -> Result<(), Error> {
        loop {
            loop {
                match self.client.poll_event() {
                    Ok(Some(event @ (Event::Trace(_) | Event::Quirk(_)))) => side_event(event),
                    Ok(Some(event)) => {
                        if let Flow::Done = handle(event)? {
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.state = State::Broken;
                        return Err(e.into());
                    }
                }
            }
            self.io_step().await?;
        }
    }

    /// A body (RETR/TOP) written to `out`.
    async fn body_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        command: Command,
        out: &mut W,
    ) -> Result<u64, Error> {
        let id = self.client.enqueue(command)?;
        let mut octets = 0;
        loop {
            match self.client.poll_event() {
                Ok(Some(Event::Body { id: of, chunk })) if of == id => out.write_all(chunk).await?,
                Ok(Some(Event::BodyEnd { id: of, octets: n })) if of == id => octets = n,
                Ok(Some(Event::Ok { id: of, .. })) if of == id => {
                    out.flush().await?;
                    return Ok(octets);
                }
                Ok(Some(Event::Err {
                    id: of,
                    command,
                    code,
                    text,
                })) if of == id => {
                    return Err(ServerError {
                        command,
                        code,
                        text,
                    }
                    .into());
                }
                Ok(Some(event)) => side_event(event),
                Ok(None) => self.io_step().await?,
                Err(e) => {
                    self.state = State::Broken;
                    return Err(e.into());
                }
            }
        }
    }

    /// One wait for the server, bounded by the deadline the core's [`ReadClock`] sets for what
    /// the client awaits: writes what the core has to send and reads what arrives, whichever
    /// is possible first. A failure breaks the connection.
    pub(crate) async fn io_step(&mut self) -> Result<(), Error> {
        let now = tokio::time::Instant::now();
        let left = match self.read_wait(now) {
            Ok(left) => left,
            Err(expired) => return Err(self.time_out(expired)),
        };
        let result = match tokio::time::timeout_at(now + left, poll_fn(|cx| self.poll_io(cx))).await
        {
            Ok(result) => result,
            Err(_) => return Err(self.time_out(self.clock.expired())),
        };
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    /// How long the next wait may last (the clock learns what the client awaits now).
    pub(crate) fn read_wait(&mut self, now: tokio::time::Instant) -> Result<Duration, Expired> {
        self.clock.observe(self.client.awaiting(), now.into_std());
        self.clock.wait(now.into_std())
    }

    /// A read limit ran out: the connection is broken, and says why from now on.
    pub(crate) fn time_out(&mut self, expired: Expired) -> Error {
        self.state = State::Broken;
        self.timed_out = Some(expired);
        Error::Timeout(expired)
    }

    /// What ran out, when the wait from [`read_wait`](Self::read_wait) is over.
    pub(crate) fn expired(&self) -> Expired {
        self.clock.expired()
    }

    /// One I/O step without a timeout: write if there is something to send, else flush if a
    /// write is unflushed, and (in the same poll) read. Reading while a write is blocked is
    /// what keeps a large pipelined batch from deadlocking against a server that writes
    /// replies before it reads more commands.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.tx_pos == self.tx.len() {
            self.tx.clear();
            self.tx_pos = 0;
        }
        self.client.poll_transmit(&mut self.tx);
        if self.tx_pos < self.tx.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.tx[self.tx_pos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.tx_pos += n;
                    self.flush_pending = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from_stream(e))),
                Poll::Pending => {}
            }
        } else if self.flush_pending {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.flush_pending = false;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from_stream(e))),
                Poll::Pending => {}
            }
        }
        if self.client.is_awaiting_tls() {
            // Never read past the +OK to STLS: the next bytes belong to the TLS handshake.
            return Poll::Pending;
        }
        let mut buf = ReadBuf::new(self.client.input_buffer(self.read_size));
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    self.client.handle_eof();
                } else {
                    self.client.commit_input(n);
                    self.clock
                        .on_input(n, tokio::time::Instant::now().into_std());
                    if n == self.read_size {
                        self.read_size = (self.read_size * 2).min(READ_BUFFER);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(Error::from_stream(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Splits the borrow for the body stream.
    pub(crate) fn poll_event(&mut self) -> Result<Option<Event<'_>>, pop3_proto::ProtocolError> {
        self.client.poll_event()
    }

    pub(crate) fn enqueue(&mut self, command: Command) -> Result<CommandId, Error> {
        Ok(self.client.enqueue(command)?)
    }
}

/// Handles an event nobody waits for: traces and quirks go to `tracing`, the rest (automatic
/// CAPA, replies of an abandoned call) is dropped.
pub(crate) fn side_event(event: Event<'_>) {
    match event {
        Event::Trace(Trace::Sent(line)) => tracing::debug!(target: TRACE_TARGET, "C: {line}"),
        Event::Trace(Trace::Received(line)) => tracing::debug!(target: TRACE_TARGET, "S: {line}"),
        Event::Trace(other) => tracing::debug!(target: TRACE_TARGET, "{other:?}"),
        Event::Quirk(quirk) => {
            tracing::debug!(target: TRACE_TARGET, ?quirk, "server quirk tolerated")
        }
        _ => {}
    }
}

/// A SCRAM client nonce: 18 random bytes, base64 (24 characters).
fn scram_nonce() -> Result<String, Error> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The TLS server name for `host` (a DNS name or an IP address).
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| Error::InvalidServerName(host.to_owned()))
}
