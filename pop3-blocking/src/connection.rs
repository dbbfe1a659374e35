//! The blocking connection: a run loop around [`pop3_proto::Client`] and typed verbs on top.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use pop3_proto::login::{
    LoginChoiceError, LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
    choose_login,
};
use pop3_proto::sasl::{CramMd5, Login, Mechanism, Plain, ScramSha256};
use pop3_proto::{
    Awaiting, Capabilities, Client, Command, CommandId, CommandKind, Event, Expired, Phase,
    ReadClock, ResponseCode, Secret, Trace,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::{Error, Options, Security, Stream, TRACE_TARGET};

/// The size of the read buffer: one read's worth of input is all the memory a reply costs,
/// whatever the size of the message.
const READ_BUFFER: usize = 64 * 1024;

/// How many random bytes go into a SCRAM client nonce (144 bits, base64 to 24 characters).
const SCRAM_NONCE_BYTES: usize = 18;

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Greeting {
    /// The text after `+OK`.
    pub text: String,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// Whether the greeting carries an APOP timestamp (so [`Connection::apop`] is possible).
    pub apop: bool,
}

/// One step of [`Connection::retr_many`], for one message.
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

/// When the run loop may return.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// After the greeting.
    Greeting,
    /// After the terminal event (`Ok`, `Err` or `StartTls`) of this command.
    Done(CommandId),
    /// When the client has nothing queued, in flight or to report (the automatic CAPA is in).
    Idle,
}

/// A POP3 session over a blocking stream.
///
/// Make one with [`Connection::connect`] (TCP, with or without TLS) or [`Connection::new`]
/// (any `Read + Write`). Each method sends its command, waits for the reply and returns it
/// typed; a `-ERR` is [`Error::Server`] and the session goes on. See [`Error`] for which
/// errors poison the connection.
///
/// Dropping a connection sends nothing: without [`quit`](Self::quit) the server never enters
/// its UPDATE state, so no `DELE` is committed.
pub struct Connection<S = Stream> {
    stream: S,
    client: Client,
    greeting: Greeting,
    write_buf: Vec<u8>,
    eof: bool,
    poisoned: bool,
    /// The timeout that poisoned the connection, for the error of every later call.
    timed_out: Option<Expired>,
    /// The read deadlines (the core decides them; this loop only feeds it the time).
    clock: ReadClock,
    /// The socket under a stream made by `connect` (a second handle to it), to set each
    /// read's timeout to what the clock allows.
    socket: Option<TcpStream>,
    /// The host name given to `connect`, for the certificate check after STLS.
    host: Option<String>,
    options: Options,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("client", &self.client)
            .field("greeting", &self.greeting)
            .field("host", &self.host)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Connection<Stream> {
    /// Connects to `host:port`, sets up TLS as `security` says, reads the greeting and the
    /// capabilities.
    ///
    /// [`Options::timeout`] bounds the TCP connect (per resolved address), the TLS handshake,
    /// each write and each status line; [`Options::speed_limit`] and the timeout bound
    /// multi-line replies (see [`pop3_proto::timing`]). Name resolution uses the system
    /// resolver and is not bounded.
    /// With [`Security::StartTls`], a `-ERR` to STLS is [`Error::Server`]: there is no fallback
    /// to plaintext.
    pub fn connect(
        host: &str,
        port: u16,
        security: Security,
        options: &Options,
    ) -> Result<Self, Error> {
        let tcp = connect_tcp(host, port, options)?;
        let socket = Some(tcp.try_clone()?);
        let host = Some(host.to_owned());
        match security {
            Security::None => Self::start(Stream::Plain(tcp), options, host, socket, false),
            Security::StartTls => {
                Self::start(Stream::Plain(tcp), options, host, socket, false)?.stls()
            }
            Security::Implicit => {
                let config = options.tls.build()?;
                let tls = handshake(tcp, config, host.as_deref().unwrap_or_default(), options)?;
                Self::start(Stream::Tls(Box::new(tls)), options, host, socket, true)
            }
        }
    }

    /// Upgrades a plaintext connection with STLS (RFC 2595): sends STLS, checks that the server
    /// sent nothing after its `+OK`, runs the TLS handshake (verifying the certificate against
    /// the host name given to [`connect`](Self::connect)) and asks CAPA again.
    ///
    /// Consumes the connection: a `-ERR` ([`Error::Server`]) or any other failure leaves no
    /// usable session. Bytes after the `+OK` (a STARTTLS injection) are
    /// [`Error::Protocol`]. A connection made with [`Connection::new`] has no host name, so
    /// this fails with [`Error::InvalidServerName`] before sending anything.
    pub fn stls(mut self) -> Result<Self, Error> {
        self.check_usable()?;
        if self.stream.is_tls() || self.client.is_tls() {
            return Err(Error::Usage(pop3_proto::EnqueueError::TlsAlreadyActive));
        }
        let host = self
            .host
            .clone()
            .ok_or_else(|| Error::InvalidServerName(String::new()))?;
        let server_name = server_name(&host)?;
        let config = self.options.tls.build()?;
        self.simple(Command::Stls)?;
        // The run loop has drained every buffered byte through the client, which flags any
        // byte after the `+OK` as an injection; nothing has been read past that point.
        if let Some(error) = self.client.error() {
            let error = Error::Protocol(error.clone());
            return Err(self.poison(error));
        }
        let Self {
            stream,
            mut client,
            greeting,
            write_buf,
            eof,
            poisoned,
            timed_out,
            clock,
            socket,
            host,
            options,
        } = self;
        let Stream::Plain(tcp) = stream else {
            return Err(Error::Usage(pop3_proto::EnqueueError::TlsAlreadyActive));
        };
        let tls = handshake_named(tcp, config, server_name, clock.timeout())?;
        client.handle_tls_established()?;
        let mut upgraded = Connection {
            stream: Stream::Tls(Box::new(tls)),
            client,
            greeting,
            write_buf,
            eof,
            poisoned,
            timed_out,
            clock,
            socket,
            host,
            options,
        };
        upgraded.drive(Until::Idle, |_| Ok(()))?;
        Ok(upgraded)
    }
}

impl<S: Read + Write> Connection<S> {
    /// Starts a session over a stream you connected yourself (treated as plaintext), reading
    /// the greeting and the capabilities.
    ///
    /// The adapter cannot set a timeout on a stream it does not know: set one on it before
    /// (for a `TcpStream`, `set_read_timeout` and `set_write_timeout`), or a server that sends
    /// nothing blocks forever. The deadlines of [`Options`] are still checked after each read,
    /// so a server that trickles bytes is cut at its first byte past them.
    pub fn new(stream: S, options: &Options) -> Result<Self, Error> {
        Self::start(stream, options, None, None, false)
    }

    /// Like [`new`](Self::new), for a stream that is already encrypted (a TLS stream of your
    /// own): the client then allows passwords without [`Options::allow_plaintext`].
    pub fn new_tls(stream: S, options: &Options) -> Result<Self, Error> {
        Self::start(stream, options, None, None, true)
    }

    fn start(
        stream: S,
        options: &Options,
        host: Option<String>,
        socket: Option<TcpStream>,
        tls: bool,
    ) -> Result<Self, Error> {
        let mut options = options.clone();
        options.config.allow_plaintext_auth = options.login.allow_plaintext;
        options.config.trace = tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG);
        let mut client = Client::new(options.config.clone());
        if tls {
            client.handle_tls_established()?;
        }
        let mut connection = Self {
            stream,
            client,
            greeting: Greeting::default(),
            write_buf: Vec::new(),
            eof: false,
            poisoned: false,
            timed_out: None,
            clock: options.read_clock(),
            socket,
            host,
            options,
        };
        connection.drive(Until::Greeting, |_| Ok(()))?;
        if connection.client.phase() == Phase::Closed {
            let Greeting { text, code, .. } = connection.greeting;
            return Err(Error::GreetingRefused { code, text });
        }
        connection.drive(Until::Idle, |_| Ok(()))?;
        Ok(connection)
    }

    // ---- getters ----

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest CAPA, or `None` while unknown (the server has no CAPA
    /// and [`Quirks::missing_capa`](pop3_proto::Quirks::missing_capa) is off, or
    /// [`Config::auto_capa`](pop3_proto::Config::auto_capa) is off and [`capa`](Self::capa) was
    /// not called since the last login or STLS). Right after a login it is `None` too: the
    /// CAPA asked then goes out with the next command, and its answer is known when that
    /// command returns.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The session phase.
    pub fn phase(&self) -> Phase {
        self.client.phase()
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.client.is_tls()
    }

    /// Whether the server accepted [`utf8`](Self::utf8).
    pub fn is_utf8(&self) -> bool {
        self.client.is_utf8()
    }

    /// Whether an earlier fatal error poisoned the connection (every call now returns
    /// [`Error::Closed`]).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
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
        if let Some(socket) = &self.socket {
            socket.set_write_timeout(Some(timeout))?;
        }
        self.clock.set_timeout(timeout);
        self.options.timeout = timeout;
        Ok(())
    }

    /// Changes the low-speed limit of multi-line replies (see
    /// [`Options::speed_limit`](crate::Options::speed_limit)); 0 turns it off.
    pub fn set_speed_limit(&mut self, bytes_per_second: u32, time: Duration) {
        self.clock.set_speed_limit(bytes_per_second, time);
        self.options.speed_limit = bytes_per_second;
        self.options.speed_time = time;
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, without QUIT; any unread input stays unread.
    pub fn into_inner(self) -> S {
        self.stream
    }

    // ---- authorization ----

    /// `CAPA`: asks for the capabilities (also kept for [`capabilities`](Self::capabilities)).
    pub fn capa(&mut self) -> Result<Capabilities, Error> {
        let id = self.enqueue(Command::Capa)?;
        let mut capabilities = None;
        let outcome = self.wait(id, |event| {
            if let Event::Capabilities {
                id: i,
                capabilities: c,
            } = event
            {
                if *i == id {
                    capabilities = Some((*c).clone());
                }
            }
            Ok(())
        })?;
        outcome?;
        capabilities.ok_or(Error::Closed)
    }

    /// `USER name`. Without TLS it waits for its reply before anything else is sent, so that a
    /// refused USER never exposes the password.
    pub fn user(&mut self, name: &str) -> Result<Reply, Error> {
        self.simple(Command::user(name))
    }

    /// `PASS password`. Refused ([`Error::Usage`]) without TLS unless
    /// [`Options::allow_plaintext`].
    pub fn pass(&mut self, password: impl Into<Secret>) -> Result<Reply, Error> {
        self.simple(Command::pass(password))
    }

    /// `APOP name digest`: needs a greeting timestamp ([`Greeting::apop`]); the secret itself
    /// never crosses the wire.
    pub fn apop(&mut self, name: &str, secret: impl Into<Secret>) -> Result<Reply, Error> {
        self.simple(Command::apop(name, secret))
    }

    /// `RPOP user` (RFC 1081, obsolete trusted-host login; after [`user`](Self::user)).
    pub fn rpop(&mut self, user: &str) -> Result<Reply, Error> {
        self.simple(Command::Rpop(user.to_owned()))
    }

    /// `AUTH` with any SASL mechanism (see [`pop3_proto::sasl`]); the core runs the
    /// challenge/response exchange. Mechanisms that expose a reusable secret are refused
    /// without TLS unless [`Options::allow_plaintext`].
    pub fn auth(&mut self, mechanism: impl Mechanism + 'static) -> Result<Reply, Error> {
        self.simple(Command::auth(mechanism))
    }

    /// Logs in with the best method the server offers (chosen by
    /// [`pop3_proto::login::choose_login`]): SCRAM-SHA-256 > CRAM-MD5 > APOP (only with
    /// [`Options::allow_apop`]) > PLAIN > LOGIN > USER/PASS. Without TLS no method is chosen
    /// unless [`Options::allow_plaintext`] (those that keep the password off the wire can be
    /// cracked offline); then this fails with [`Error::Login`] before sending anything.
    /// Returns the method used.
    ///
    /// On a session that is already logged in it fails with [`Error::AlreadyLoggedIn`] and
    /// sends nothing.
    pub fn login(&mut self, user: &str, password: impl Into<Secret>) -> Result<LoginMethod, Error> {
        self.check_usable()?;
        if self.client.phase() == Phase::Transaction {
            return Err(Error::AlreadyLoggedIn);
        }
        let password = password.into();
        let method = choose_login(
            self.client.capabilities(),
            self.client.apop_available(),
            self.client.is_tls(),
            self.options.login,
        )?;
        let user_name = user.to_owned();
        match method {
            LoginMethod::ScramSha256 => {
                self.auth(ScramSha256::new(user_name, password, scram_nonce()?))?
            }
            LoginMethod::CramMd5 => self.auth(CramMd5::new(user_name, password))?,
            LoginMethod::Apop => self.apop(user, password)?,
            LoginMethod::Plain => self.auth(Plain::new(None, user_name, password))?,
            LoginMethod::Login => self.auth(Login::new(user_name, password))?,
            LoginMethod::UserPass => {
                self.user(user)?;
                self.pass(password)?
            }
            _ => return Err(Error::Login(LoginChoiceError::NoSupportedMethod)),
        };
        Ok(method)
    }

    /// `UTF8` (RFC 6856): asks for UTF-8 mode, before login.
    pub fn utf8(&mut self) -> Result<Reply, Error> {
        self.simple(Command::Utf8)
    }

    /// `LANG`: the languages the server offers, as (tag, description) pairs (RFC 6856).
    pub fn lang(&mut self) -> Result<Vec<(String, String)>, Error> {
        self.collect(Command::Lang(None), |event| match event {
            Event::LangEntry {
                tag, description, ..
            } => Some((tag.clone(), description.clone())),
            _ => None,
        })
    }

    /// `LANG tag`: switches the language of the server's texts (`*` lets the server choose).
    pub fn set_lang(&mut self, tag: &str) -> Result<Reply, Error> {
        self.simple(Command::Lang(Some(tag.to_owned())))
    }

    // ---- transaction ----

    /// `STAT`: the number of messages and their total size.
    pub fn stat(&mut self) -> Result<Stat, Error> {
        let stats = self.collect(Command::Stat, |event| match event {
            Event::Stat { count, size, .. } => Some(Stat {
                count: *count,
                size: *size,
            }),
            _ => None,
        })?;
        stats.into_iter().next().ok_or(Error::Closed)
    }

    /// `LIST`: every message's number and size.
    pub fn list(&mut self) -> Result<Vec<ScanListing>, Error> {
        self.collect(Command::List(None), scan_listing)
    }

    /// `LIST n`: one message's size.
    pub fn list_one(&mut self, msg: u32) -> Result<ScanListing, Error> {
        let listings = self.collect(Command::List(Some(msg)), scan_listing)?;
        listings.into_iter().next().ok_or(Error::Closed)
    }

    /// `UIDL`: every message's unique id.
    pub fn uidl(&mut self) -> Result<Vec<UniqueIdListing>, Error> {
        self.collect(Command::Uidl(None), unique_id_listing)
    }

    /// `UIDL n`: one message's unique id.
    pub fn uidl_one(&mut self, msg: u32) -> Result<UniqueIdListing, Error> {
        let listings = self.collect(Command::Uidl(Some(msg)), unique_id_listing)?;
        listings.into_iter().next().ok_or(Error::Closed)
    }

    /// `RETR n`: streams the message (dot-unstuffed, line ends as sent) into `out` and returns
    /// its size. Memory stays bounded by the read buffer whatever the message size. If `out`
    /// fails, the rest of the message is read and discarded, and its error returned.
    pub fn retr(&mut self, msg: u32, out: &mut impl Write) -> Result<u64, Error> {
        self.body(Command::retr(msg), out)
    }

    /// `RETR n` into a `Vec`.
    pub fn retr_vec(&mut self, msg: u32) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.retr(msg, &mut out)?;
        Ok(out)
    }

    /// `TOP n lines`: the headers and the first `lines` lines of the body, streamed like
    /// [`retr`](Self::retr).
    pub fn top(&mut self, msg: u32, lines: u32, out: &mut impl Write) -> Result<u64, Error> {
        self.body(Command::top(msg, lines), out)
    }

    /// `TOP n lines` into a `Vec`.
    pub fn top_vec(&mut self, msg: u32, lines: u32) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.top(msg, lines, &mut out)?;
        Ok(out)
    }

    /// `DELE n`: marks the message deleted; the server deletes it only when [`quit`](Self::quit)
    /// succeeds.
    pub fn dele(&mut self, msg: u32) -> Result<Reply, Error> {
        self.simple(Command::dele(msg))
    }

    /// `RSET`: unmarks every deleted message.
    pub fn rset(&mut self) -> Result<Reply, Error> {
        self.simple(Command::Rset)
    }

    /// `NOOP`.
    pub fn noop(&mut self) -> Result<Reply, Error> {
        self.simple(Command::Noop)
    }

    /// Retrieves many messages, pipelined when the server announces PIPELINING (the core keeps
    /// a bounded window in flight), one at a time otherwise. `on_event` sees each message as
    /// one [`RetrEvent::Start`], [`RetrEvent::Chunk`]s (none for an empty message) and one
    /// [`RetrEvent::End`], or as one [`RetrEvent::Refused`], in the order of `msgs`.
    ///
    /// If `on_event` fails, it is not called again, the remaining replies are read and
    /// discarded, and its error is returned as [`Error::Io`]; the connection stays usable.
    pub fn retr_many(
        &mut self,
        msgs: &[u32],
        mut on_event: impl FnMut(u32, RetrEvent<'_>) -> io::Result<()>,
    ) -> Result<(), Error> {
        let ids = self.enqueue_all(msgs, Command::retr)?;
        let Some(&(last, _)) = ids.last() else {
            return Ok(());
        };
        // The batch index of the last message that got its `Start`.
        let mut started = None;
        self.drive(Until::Done(last), |event| {
            let Some((index, msg)) = event
                .id()
                .and_then(|id| batch_index(&ids, id))
                .map(|index| (index, ids[index].1))
            else {
                return Ok(());
            };
            if matches!(event, Event::Body { .. } | Event::BodyEnd { .. }) && started != Some(index)
            {
                started = Some(index);
                on_event(msg, RetrEvent::Start)?;
            }
            match event {
                Event::Body { chunk, .. } => on_event(msg, RetrEvent::Chunk(chunk))?,
                Event::BodyEnd { octets, .. } => on_event(msg, RetrEvent::End { octets: *octets })?,
                Event::Err {
                    command,
                    code,
                    text,
                    ..
                } => {
                    on_event(msg, RetrEvent::Refused(server_error(*command, code, text)))?;
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// Deletes many messages, pipelined when the server allows; one result per message, in
    /// the order of `msgs`.
    pub fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Error> {
        let ids = self.enqueue_all(msgs, Command::dele)?;
        let mut results: Vec<Option<Result<(), ServerError>>> = vec![None; ids.len()];
        let Some(&(last, _)) = ids.last() else {
            return Ok(Vec::new());
        };
        self.drive(Until::Done(last), |event| {
            let Some(index) = event.id().and_then(|id| batch_index(&ids, id)) else {
                return Ok(());
            };
            match event {
                Event::Ok { .. } => results[index] = Some(Ok(())),
                Event::Err {
                    command,
                    code,
                    text,
                    ..
                } => results[index] = Some(Err(server_error(*command, code, text))),
                _ => {}
            }
            Ok(())
        })?;
        results
            .into_iter()
            .map(|r| r.ok_or(Error::Closed))
            .collect()
    }

    /// `QUIT`: ends the session. After login the server now commits the deletions (UPDATE) and
    /// returns its verdict: `+OK` as `Ok`, and a `-ERR` as [`Error::Server`], which means the
    /// deletions were **not** committed.
    ///
    /// After a timeout (or any other fatal error) QUIT is not sent: it fails with
    /// [`Error::Unusable`] (or [`Error::Closed`]), and nothing is committed.
    pub fn quit(mut self) -> Result<Reply, Error> {
        self.simple(Command::Quit)
    }

    // ---- the run loop ----

    /// Queues one command after checking that the connection is usable.
    fn enqueue(&mut self, command: Command) -> Result<CommandId, Error> {
        self.check_usable()?;
        Ok(self.client.enqueue(command)?)
    }

    /// Validates every command first, so that a bad message number queues nothing.
    fn enqueue_all(
        &mut self,
        msgs: &[u32],
        make: fn(u32) -> Command,
    ) -> Result<Vec<(CommandId, u32)>, Error> {
        self.check_usable()?;
        for &msg in msgs {
            make(msg).validate()?;
        }
        msgs.iter()
            .map(|&msg| Ok((self.client.enqueue(make(msg))?, msg)))
            .collect()
    }

    /// Sends a command and collects what `extract` takes from the events of its reply.
    fn collect<T>(
        &mut self,
        command: Command,
        extract: impl Fn(&Event<'_>) -> Option<T>,
    ) -> Result<Vec<T>, Error> {
        let id = self.enqueue(command)?;
        let mut items = Vec::new();
        self.wait(id, |event| {
            if event.id() == Some(id) {
                items.extend(extract(event));
            }
            Ok(())
        })??;
        Ok(items)
    }

    /// Sends a command and waits for its single-line reply.
    fn simple(&mut self, command: Command) -> Result<Reply, Error> {
        let id = self.enqueue(command)?;
        Ok(self.wait(id, |_| Ok(()))??)
    }

    /// Runs the loop until command `id` is answered; `on_event` sees every event on the way.
    /// The outer result is the connection's, the inner one the server's answer.
    fn wait(
        &mut self,
        id: CommandId,
        mut on_event: impl FnMut(&Event<'_>) -> Result<(), Error>,
    ) -> Result<Result<Reply, ServerError>, Error> {
        let mut outcome = None;
        self.drive(Until::Done(id), |event| {
            match event {
                Event::Ok {
                    id: i, code, text, ..
                } if *i == id => {
                    outcome = Some(Ok(Reply {
                        code: code.clone(),
                        text: text.clone(),
                    }));
                }
                Event::StartTls { id: i } if *i == id => outcome = Some(Ok(Reply::default())),
                Event::Err {
                    id: i,
                    command,
                    code,
                    text,
                } if *i == id => {
                    outcome = Some(Err(server_error(*command, code, text)));
                }
                _ => {}
            }
            on_event(event)
        })?;
        // After a login, the CAPA the core asks next is not waited for here: it goes out with
        // the caller's next commands, in the same write (issue 10 item 11).
        outcome.ok_or(Error::Closed)
    }

    /// Streams a RETR or TOP body into `out`.
    fn body(&mut self, command: Command, out: &mut impl Write) -> Result<u64, Error> {
        let id = self.enqueue(command)?;
        let mut octets = 0;
        self.wait(id, |event| {
            match event {
                Event::Body { id: i, chunk } if *i == id => out.write_all(chunk)?,
                Event::BodyEnd { id: i, octets: n } if *i == id => octets = *n,
                _ => {}
            }
            Ok(())
        })??;
        out.flush()?;
        Ok(octets)
    }

    /// The run loop of [`Client`]: hand every event to `on_event` (and traces to `tracing`);
    /// when `until` is reached, return; otherwise write what the client has to send, read, and
    /// go round.
    ///
    /// An error from `on_event` stops further calls to it, but the loop goes on to `until` so
    /// that the session stays in step; the error is returned at the end.
    fn drive(
        &mut self,
        until: Until,
        mut on_event: impl FnMut(&Event<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.check_usable()?;
        let mut done = false;
        let mut deferred = None;
        loop {
            // Drain every event the buffered input yields. Events after `until` (an automatic
            // CAPA's, say) are consumed here too: only traces and the greeting matter for them.
            loop {
                let event = match self.client.poll_event() {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    // Past `until` the error stays in the client (it is sticky) and surfaces on
                    // the next call; `stls` checks for it before the handshake.
                    Err(_) if done => break,
                    Err(error) => return Err(self.poison(Error::Protocol(error))),
                };
                match &event {
                    Event::Trace(Trace::Sent(line)) => {
                        tracing::debug!(target: TRACE_TARGET, "C: {line}")
                    }
                    Event::Trace(Trace::Received(line)) => {
                        tracing::debug!(target: TRACE_TARGET, "S: {line}")
                    }
                    Event::Quirk(quirk) => {
                        tracing::debug!(target: TRACE_TARGET, "tolerating a server quirk: {quirk:?}")
                    }
                    Event::Greeting {
                        code, text, apop, ..
                    } => {
                        self.greeting = Greeting {
                            text: text.clone(),
                            code: code.clone(),
                            apop: *apop,
                        };
                    }
                    _ => {}
                }
                if done {
                    continue;
                }
                if deferred.is_none() {
                    if let Err(error) = on_event(&event) {
                        deferred = Some(error);
                    }
                }
                done = match until {
                    Until::Greeting => matches!(event, Event::Greeting { .. }),
                    Until::Done(id) => event.is_terminal() && event.id() == Some(id),
                    Until::Idle => false,
                };
            }
            if matches!(until, Until::Idle) && self.client.is_idle() {
                done = true;
            }
            if done {
                return deferred.map_or(Ok(()), Err);
            }
            if self.eof {
                // The client saw the end of input and has nothing more to say: the session
                // ended without reaching `until` (after a refused greeting, say).
                return Err(self.poison(Error::Closed));
            }
            self.transmit()?;
            self.receive()?;
        }
    }

    /// Writes everything the client wants to send. The core bounds the pipeline window and
    /// commands are short, so writing it all before reading cannot deadlock.
    fn transmit(&mut self) -> Result<(), Error> {
        self.write_buf.clear();
        if self.client.poll_transmit(&mut self.write_buf) == 0 {
            return Ok(());
        }
        let result = self
            .stream
            .write_all(&self.write_buf)
            .and_then(|()| self.stream.flush());
        // The buffer may hold a password: do not keep it around.
        self.write_buf.clear();
        let expired = Expired::Timeout {
            after: self.clock.timeout(),
            awaiting: Awaiting::Nothing,
        };
        result.map_err(|error| self.poison(Error::from_connection_io(error, expired)))
    }

    /// One read, straight into the client's input buffer (no copy), within the deadline the
    /// core's [`ReadClock`] sets for what the client awaits.
    fn receive(&mut self) -> Result<(), Error> {
        loop {
            let now = Instant::now();
            self.clock.observe(self.client.awaiting(), now);
            let left = match self.clock.wait(now) {
                Ok(left) => left,
                Err(expired) => return Err(self.poison(Error::Timeout(expired))),
            };
            if let Some(socket) = &self.socket {
                if let Err(error) = socket.set_read_timeout(Some(left)) {
                    return Err(self.poison(Error::Io(error)));
                }
            }
            match self.stream.read(self.client.input_buffer(READ_BUFFER)) {
                Ok(0) => {
                    self.eof = true;
                    self.client.handle_eof();
                    return Ok(());
                }
                Ok(n) => {
                    self.client.commit_input(n);
                    self.clock.on_input(n, Instant::now());
                    return Ok(());
                }
                // A signal, or a TLS record not complete yet: check the deadline, read again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let expired = self.clock.expired();
                    return Err(self.poison(Error::from_connection_io(error, expired)));
                }
            }
        }
    }

    /// Fails if the connection is poisoned, or poisons it if the client has a fatal error.
    fn check_usable(&mut self) -> Result<(), Error> {
        if self.poisoned {
            return Err(self.timed_out.map_or(Error::Closed, Error::Unusable));
        }
        if let Some(error) = self.client.error() {
            let error = Error::Protocol(error.clone());
            return Err(self.poison(error));
        }
        Ok(())
    }

    fn poison(&mut self, error: Error) -> Error {
        self.poisoned = true;
        if let Error::Timeout(expired) = &error {
            self.timed_out = Some(*expired);
        }
        error
    }
}

fn scan_listing(event: &Event<'_>) -> Option<ScanListing> {
    match event {
        Event::ListEntry { msg, size, .. } => Some(ScanListing {
            msg: *msg,
            size: *size,
        }),
        _ => None,
    }
}

fn unique_id_listing(event: &Event<'_>) -> Option<UniqueIdListing> {
    match event {
        Event::UidlEntry { msg, uid, .. } => Some(UniqueIdListing {
            msg: *msg,
            uid: (*uid).to_owned(),
        }),
        _ => None,
    }
}

/// The index of command `id` in a batch. A batch is queued in one go, so its ids are
/// consecutive: the index is a subtraction (checked), not a search per event.
fn batch_index(ids: &[(CommandId, u32)], id: CommandId) -> Option<usize> {
    let first = ids.first()?.0.get();
    let index = usize::try_from(id.get().checked_sub(first)?).ok()?;
    (ids.get(index)?.0 == id).then_some(index)
}

fn server_error(command: CommandKind, code: &Option<ResponseCode>, text: &str) -> ServerError {
    ServerError {
        command,
        code: code.clone(),
        text: text.to_owned(),
    }
}

/// A SCRAM client nonce: 18 bytes from the operating system's generator, base64.
fn scram_nonce() -> Result<String, Error> {
    let mut bytes = [0; SCRAM_NONCE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io(io::Error::other(e)))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidServerName(host.to_owned()))
}

/// Connects to the first address of `host` that answers within the timeout, and sets the
/// read and write timeouts.
fn connect_tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream, Error> {
    let mut last = None;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| pop3_tls::connect_error(host, port, e))?;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, options.timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(options.timeout))?;
                tcp.set_write_timeout(Some(options.timeout))?;
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        Some(error) => Error::from_connection_io(
            pop3_tls::connect_error(host, port, error),
            Expired::Timeout {
                after: options.timeout,
                awaiting: Awaiting::Connect,
            },
        ),
        None => Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )),
    })
}

fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    host: &str,
    options: &Options,
) -> Result<StreamOwned<ClientConnection, TcpStream>, Error> {
    handshake_named(tcp, config, server_name(host)?, options.timeout)
}

/// Runs the TLS handshake to its end, so that certificate errors show up here and not at the
/// first read.
fn handshake_named(
    mut tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<StreamOwned<ClientConnection, TcpStream>, Error> {
    let mut tls = ClientConnection::new(config, name)?;
    // The whole handshake within the timeout: each socket read gets what is left of it.
    let deadline = Instant::now().checked_add(timeout);
    let expired = Expired::Timeout {
        after: timeout,
        awaiting: Awaiting::TlsHandshake,
    };
    while tls.is_handshaking() {
        let left = deadline
            .map_or(Some(timeout), |d| d.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
            .ok_or(Error::Timeout(expired))?;
        tcp.set_read_timeout(Some(left))?;
        tls.complete_io(&mut tcp)
            .map_err(|error| Error::from_connection_io(error, expired))?;
    }
    Ok(StreamOwned::new(tls, tcp))
}
