//! The blocking connection: one drive loop around the core's requests
//! ([`pop3_proto::request`]), and the method set as thin wrappers over them.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_proto::request::{self, Request, Settle};
use pop3_proto::{Awaiting, Command, Expired};
use pop3_tls::{Session, server_name};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::{Error, Options, Reply, Security, Stream};

/// The size of the read buffer: one read's worth of input is all the memory a reply costs,
/// whatever the size of the message.
const READ_BUFFER: usize = 64 * 1024;

/// A POP3 session over a blocking stream.
///
/// Make one with [`Connection::connect`] (TCP, with or without TLS) or [`Connection::new`]
/// (any `Read + Write`). Each method sends its command, waits for the reply and returns it
/// typed; a `-ERR` is [`Error::Server`] and the session goes on. See [`Error`] for which
/// errors poison the connection. The getters of the session ([`Session::greeting`],
/// [`Session::capabilities`], [`Session::phase`], [`Session::is_tls`], ...) are reached
/// through `Deref`.
///
/// Dropping a connection sends nothing: without [`quit`](Self::quit) the server never enters
/// its UPDATE state, so no `DELE` is committed.
pub struct Connection<S = Stream> {
    stream: S,
    session: Session,
    write_buf: Vec<u8>,
    /// The socket under a stream made by `connect` (a second handle to it), to set each
    /// read's timeout to what the clock allows.
    socket: Option<TcpStream>,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<S> Deref for Connection<S> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Connection<Stream> {
    /// Connects to `host:port`, sets up TLS as `security` says, reads the greeting and the
    /// capabilities.
    ///
    /// A Unicode host name is converted to A-labels ([`pop3_tls::ascii_host`]) for DNS, the
    /// proxy, SNI and certificate verification. The addresses are raced (Happy Eyeballs, see
    /// [`connect_addrs`](crate::connect_addrs)) from [`Options::bind`], through
    /// [`Options::proxy`] when set; [`Options::effective_connect_timeout`] bounds that whole
    /// step (name resolution, TCP and the proxy handshake), [`Options::timeout`] the TLS
    /// handshake, each write and each status line; [`Options::speed_limit`] and the timeout
    /// bound multi-line replies (see [`pop3_proto::timing`]).
    /// With [`Security::StartTls`], a `-ERR` to STLS is [`Error::Server`]: there is no fallback
    /// to plaintext.
    pub fn connect(
        host: &str,
        port: u16,
        security: Security,
        options: &Options,
    ) -> Result<Self, Error> {
        let mut session = Session::connecting(host, security, options)?;
        let tcp = connect_tcp(session.host().unwrap_or_default(), port, options)?;
        let socket = Some(tcp.try_clone()?);
        let stream = match security == Security::Implicit {
            true => {
                let tls = handshake(tcp, &session)?;
                session.set_channel_binding(pop3_tls::channel_binding(&tls.conn));
                Stream::Tls(Box::new(tls))
            }
            false => Stream::Plain(tcp),
        };
        let connection = Self::open(stream, session, socket)?;
        match security {
            Security::StartTls => connection.stls(),
            _ => Ok(connection),
        }
    }

    /// Upgrades a plaintext connection with STLS (RFC 2595): sends STLS, checks that the server
    /// sent nothing after its `+OK`, runs the TLS handshake (verifying the certificate against
    /// the host name given to [`connect`](Self::connect), or else the peer's IP address) and
    /// asks CAPA again.
    ///
    /// Consumes the connection: a `-ERR` ([`Error::Server`]) or any other failure leaves no
    /// usable session. Bytes after the `+OK` (a STARTTLS injection) are
    /// [`Error::Protocol`]. For a stream of your own, see [`stls_start`](Self::stls_start).
    pub fn stls(mut self) -> Result<Self, Error> {
        if self.stream.is_tls() {
            return Err(Error::Usage(pop3_proto::EnqueueError::TlsAlreadyActive));
        }
        self.stls_start()?;
        let (stream, mut session) = self.into_parts();
        let Stream::Plain(tcp) = stream else {
            return Err(Error::Usage(pop3_proto::EnqueueError::TlsAlreadyActive));
        };
        let socket = Some(tcp.try_clone()?);
        let tls = handshake(tcp, &session)?;
        session.set_channel_binding(pop3_tls::channel_binding(&tls.conn));
        let mut connection = Self::from_parts(Stream::Tls(Box::new(tls)), session)?;
        connection.socket = socket;
        Ok(connection)
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
        Self::open(stream, Session::new(options, None, false)?, None)
    }

    /// Like [`new`](Self::new), for a stream that is already encrypted (a TLS stream of your
    /// own): the client then allows passwords without [`Options::allow_plaintext`].
    pub fn new_tls(stream: S, options: &Options) -> Result<Self, Error> {
        Self::open(stream, Session::new(options, None, true)?, None)
    }

    fn open(stream: S, session: Session, socket: Option<TcpStream>) -> Result<Self, Error> {
        let mut connection = Self {
            stream,
            session,
            write_buf: Vec::new(),
            socket,
        };
        let greeting = connection.run(request::open())?;
        connection.session.set_greeting(greeting);
        Ok(connection)
    }

    /// The first half of STLS on any stream: sends STLS, reads its `+OK` and checks that the
    /// server sent nothing after it (else [`Error::Protocol`]). Then run your own TLS
    /// handshake on the stream from [`into_parts`](Self::into_parts) and give the encrypted
    /// stream to [`from_parts`](Self::from_parts), which asks CAPA again.
    ///
    /// ```no_run
    /// # fn run(pop: pop3_blocking::Connection<std::net::TcpStream>,
    /// #        my_tls: impl FnOnce(std::net::TcpStream) -> std::io::Result<std::net::TcpStream>)
    /// #        -> Result<(), pop3_blocking::Error> {
    /// let mut pop = pop;
    /// pop.stls_start()?;
    /// let (tcp, session) = pop.into_parts();
    /// let encrypted = my_tls(tcp)?; // your TLS stack (or proxy) here
    /// let mut pop = pop3_blocking::Connection::from_parts(encrypted, session)?;
    /// # Ok(()) }
    /// ```
    pub fn stls_start(&mut self) -> Result<Reply, Error> {
        let reply = self.run(request::simple(Command::Stls))?;
        self.session.check_awaiting_tls()?;
        Ok(reply)
    }

    /// The stream and the session, without QUIT; unread input stays in the session.
    pub fn into_parts(self) -> (S, Session) {
        (self.stream, self.session)
    }

    /// A connection from a stream and a session taken apart by [`into_parts`](Self::into_parts).
    /// After [`stls_start`](Self::stls_start), `stream` must be the encrypted one: the session
    /// records TLS and reads the capabilities again.
    ///
    /// The session keeps the channel binding it carries (SCRAM -PLUS,
    /// [`Session::channel_binding`](crate::Session::channel_binding)): `from_parts` cannot see
    /// inside `stream`. After a TLS handshake of your own, set the binding of that TLS session
    /// on `session` first ([`Session::set_channel_binding`](crate::Session::set_channel_binding),
    /// for rustls with [`channel_binding`](crate::channel_binding)); without one the login does
    /// not bind (GS2 flag `n`, no -PLUS). Likewise set it again if you move a session to
    /// another TLS connection: the one it carries belongs to the old connection.
    pub fn from_parts(stream: S, session: Session) -> Result<Self, Error> {
        let mut connection = Self {
            stream,
            session,
            write_buf: Vec::new(),
            socket: None,
        };
        if connection.session.is_awaiting_tls() {
            connection.session.tls_established()?;
            connection.run(Settle)?;
        }
        Ok(connection)
    }

    /// Changes the timeout from the next wait on: for the rest of the connection, or around
    /// one call (set it before the call and back after). A zero timeout is refused
    /// ([`Error::Io`] of kind `InvalidInput`). What happens when one runs out:
    /// [`Error::Timeout`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.session.set_timeout(timeout)?;
        if let Some(socket) = &self.socket {
            socket.set_write_timeout(Some(timeout))?;
        }
        Ok(())
    }

    /// Changes the low-speed limit of multi-line replies (see
    /// [`Options::speed_limit`](crate::Options::speed_limit)); 0 turns it off.
    pub fn set_speed_limit(&mut self, bytes_per_second: u32, time: Duration) {
        self.session.set_speed_limit(bytes_per_second, time);
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, without QUIT; any unread input stays unread.
    pub fn into_inner(self) -> S {
        self.stream
    }

    // ---- the method set: each one request of `pop3_proto::request`, shared with pop3-async
    // (see `pop3_tls::methods!`) ----

    pop3_tls::methods!();

    /// `RETR n`: streams the message (dot-unstuffed, line ends as sent) into `out` and returns
    /// its size. Memory stays bounded by the read buffer whatever the message size. If `out`
    /// fails, it is not written again, the rest of the message is read and discarded, and its
    /// error is returned ([`Error::Io`]); the session goes on.
    pub fn retr(&mut self, msg: u32, out: &mut impl Write) -> Result<u64, Error> {
        self.run(request::retr(msg, out))
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
        self.run(request::top(msg, lines, out))
    }

    /// `TOP n lines` into a `Vec`.
    pub fn top_vec(&mut self, msg: u32, lines: u32) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.top(msg, lines, &mut out)?;
        Ok(out)
    }

    /// `QUIT`: ends the session. After login the server now commits the deletions (UPDATE) and
    /// returns its verdict: `+OK` as `Ok`, and a `-ERR` as [`Error::Server`], which means the
    /// deletions were **not** committed.
    ///
    /// After a timeout (or any other fatal error) QUIT is not sent: it fails with
    /// [`Error::Unusable`] (or [`Error::Closed`]), and nothing is committed.
    ///
    /// After a QUIT queued in a [`Pipeline`](crate::Pipeline) (`Pipeline::quit`), no second
    /// QUIT is sent: this fails with [`Error::Usage`]`(EnqueueError::Closed)` and the verdict
    /// is the pipeline's `PipelineEvent::Quit`. Just drop the connection then.
    pub fn quit(mut self) -> Result<Reply, Error> {
        self.run(request::simple(Command::Quit))
    }

    // ---- the drive loop ----

    /// Runs `request` to its result: what the session can do with the input it has, then
    /// write what the core has to send, read once, and go round.
    pub(crate) fn run<R: Request>(&mut self, mut request: R) -> Result<R::Output, Error> {
        self.session.check()?;
        loop {
            if let Some(result) = self.session.advance(&mut request) {
                return result;
            }
            self.transmit()?;
            self.receive()?;
        }
    }

    /// Writes everything the client wants to send. The core bounds the pipeline window and
    /// commands are short, so writing it all before reading cannot deadlock.
    fn transmit(&mut self) -> Result<(), Error> {
        self.write_buf.clear();
        if self.session.transmit(&mut self.write_buf) == 0 {
            return Ok(());
        }
        let result = self
            .stream
            .write_all(&self.write_buf)
            .and_then(|()| self.stream.flush());
        // The buffer may hold a password: do not keep it around.
        self.write_buf.clear();
        result.map_err(|error| self.session.io_error(error))
    }

    /// One read, straight into the client's input buffer (no copy), within the deadline the
    /// core's read clock sets for what the client awaits.
    fn receive(&mut self) -> Result<(), Error> {
        loop {
            let left = self.session.read_wait(Instant::now())?;
            if let Some(socket) = &self.socket {
                if let Err(error) = socket.set_read_timeout(Some(left)) {
                    return Err(self.session.io_error(error));
                }
            }
            match self.stream.read(self.session.input_buffer(READ_BUFFER)) {
                Ok(n) => {
                    self.session.received(n, Instant::now());
                    return Ok(());
                }
                // A signal, or a TLS record not complete yet: check the deadline, read again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.session.io_error(error)),
            }
        }
    }
}

/// Connects to `host` as the options say (see [`crate::dial`]: Happy Eyeballs, source
/// address, proxy), and sets the read and write timeouts.
fn connect_tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream, Error> {
    let tcp = crate::dial::dial(host, port, options)?;
    tcp.set_read_timeout(Some(options.timeout))?;
    tcp.set_write_timeout(Some(options.timeout))?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Runs the TLS handshake to its end (so that certificate errors show up here and not at the
/// first read), against the session's host name or else the peer's IP address, within the
/// session's timeout.
fn handshake(
    mut tcp: TcpStream,
    session: &Session,
) -> Result<StreamOwned<ClientConnection, TcpStream>, Error> {
    let name = match session.host() {
        Some(host) => server_name(host)?,
        None => ServerName::from(tcp.peer_addr()?.ip()),
    };
    let config: Arc<ClientConfig> = session.options().tls.build()?;
    let mut tls = ClientConnection::new(config, name)?;
    let timeout = session.timeout();
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
