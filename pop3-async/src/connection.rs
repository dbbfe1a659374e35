//! The connection: one drive loop around the core's requests ([`pop3_proto::request`]) over an
//! async stream, and the method set as thin wrappers over them.

use std::future::{Future, poll_fn};
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::request::{self, Request, Settle};
use pop3_proto::{Awaiting, Command, Expired};
use pop3_tls::{Session, server_name};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsConnector;

use crate::{Error, Options, Reply, Security, Stream};

/// The most a read asks for: one read's worth of input is all the memory a reply costs.
const READ_BUFFER: usize = 64 * 1024;
/// The first read size of a connection.
const MIN_READ: usize = 4 * 1024;

/// A POP3 session over any `AsyncRead + AsyncWrite + Unpin` stream.
///
/// Every method waits for the reply it needs and returns it typed. `-ERR` comes back as
/// [`Error::Server`] and the session goes on. The getters of the session
/// ([`Session::greeting`], [`Session::capabilities`], [`Session::phase`],
/// [`Session::is_tls`], ...) are reached through `Deref`.
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
/// A connection holds the core's buffer (at most one read of up to 64 KiB plus a partial
/// line, or a partial status line up to its configured limit) and the command bytes of the
/// pipelining window: memory is bounded whatever the size of a message or a batch.
pub struct Connection<S = Stream> {
    stream: S,
    pub(crate) session: Session,
    /// How much the next read asks for: small while replies are short, doubled (up to
    /// [`READ_BUFFER`]) whenever a read fills it.
    read_size: usize,
    tx: Vec<u8>,
    tx_pos: usize,
    flush_pending: bool,
    /// A method is running; still set when a method starts means its future was dropped.
    pub(crate) busy: bool,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("session", &self.session)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

impl Connection<Stream> {
    /// Connects to `host:port` with the given security, reads the greeting and (with
    /// `auto_capa`) the capabilities, and for [`Security::StartTls`] upgrades with STLS.
    ///
    /// TLS verifies the certificate against `host` (SNI on) with the roots of
    /// [`Options::tls`]. A Unicode host name is converted to A-labels
    /// ([`pop3_tls::ascii_host`]) for DNS, the proxy, SNI and verification. The addresses
    /// are raced (Happy Eyeballs, see [`connect_addrs`](crate::connect_addrs)) from
    /// [`Options::bind`], through [`Options::proxy`] when set, all within
    /// [`Options::effective_connect_timeout`]; [`Options::timeout`] bounds the TLS handshake
    /// and everything after.
    pub async fn connect(
        host: &str,
        port: u16,
        security: Security,
        options: &Options,
    ) -> Result<Self, Error> {
        let mut session = Session::connecting(host, security, options)?;
        let tcp = crate::dial::dial(session.host().unwrap_or_default(), port, options).await?;
        let _ = tcp.set_nodelay(true);
        let stream = match security == Security::Implicit {
            true => {
                let handshake = handshake(tcp, &session)?;
                let tls = handshake.await?;
                session.set_channel_binding(pop3_tls::channel_binding(tls.get_ref().1));
                Stream::Tls(Box::new(tls))
            }
            false => Stream::Plain(tcp),
        };
        let connection = Self::open(stream, session).await?;
        match security {
            Security::StartTls => connection.stls().await,
            _ => Ok(connection),
        }
    }

    /// Upgrades the connection with STLS (RFC 2595), then asks CAPA again (with
    /// `auto_capa`). The certificate is verified against the host given to
    /// [`connect`](Self::connect); for a connection made with [`new`](Connection::new), against
    /// the peer's IP address.
    ///
    /// Nothing after the server's `+OK` is read before the handshake: bytes that arrived with
    /// it are a STARTTLS injection and fail with
    /// [`ProtocolError::StartTlsInjection`](pop3_proto::ProtocolError::StartTlsInjection).
    /// For a stream of your own, see [`stls_start`](Self::stls_start).
    pub async fn stls(mut self) -> Result<Connection<Stream>, Error> {
        self.stls_start().await?;
        let (stream, mut session) = self.into_parts();
        let Stream::Plain(tcp) = stream else {
            return Err(pop3_proto::EnqueueError::TlsAlreadyActive.into());
        };
        let handshake = handshake(tcp, &session)?;
        let tls = handshake.await?;
        session.set_channel_binding(pop3_tls::channel_binding(tls.get_ref().1));
        Self::from_parts(Stream::Tls(Box::new(tls)), session).await
    }
}

impl<S> Deref for Connection<S> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Starts a session on a connected stream: reads the greeting and (with `auto_capa`) the
    /// capabilities. For implicit TLS, pass the TLS stream and set nothing else: the adapter
    /// cannot tell, so use [`Connection::connect`] to have TLS recorded (or
    /// [`new_tls`](Self::new_tls)).
    pub async fn new(stream: S, options: &Options) -> Result<Self, Error> {
        Self::open(stream, Session::new(options, None, false)?).await
    }

    /// Like [`new`](Self::new), for a stream that is already encrypted (implicit TLS): the core
    /// then allows passwords.
    pub async fn new_tls(stream: S, options: &Options) -> Result<Self, Error> {
        Self::open(stream, Session::new(options, None, true)?).await
    }

    fn with(stream: S, session: Session) -> Self {
        Self {
            stream,
            session,
            read_size: MIN_READ,
            tx: Vec::new(),
            tx_pos: 0,
            flush_pending: false,
            busy: false,
        }
    }

    async fn open(stream: S, session: Session) -> Result<Self, Error> {
        let mut connection = Self::with(stream, session);
        let greeting = connection.run(request::open()).await?;
        connection.session.set_greeting(greeting);
        Ok(connection)
    }

    /// The first half of STLS on any stream: sends STLS, reads its `+OK` and checks that the
    /// server sent nothing after it (else [`Error::Protocol`]). Then run your own TLS
    /// handshake on the stream from [`into_parts`](Self::into_parts) and give the encrypted
    /// stream to [`from_parts`](Self::from_parts), which asks CAPA again.
    pub async fn stls_start(&mut self) -> Result<Reply, Error> {
        let reply = self.run(request::simple(Command::Stls)).await?;
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
    pub async fn from_parts(stream: S, session: Session) -> Result<Self, Error> {
        let mut connection = Self::with(stream, session);
        if connection.session.is_awaiting_tls() {
            connection.session.tls_established()?;
            connection.run(Settle).await?;
        }
        Ok(connection)
    }

    /// Changes the timeout from the next wait on: for the rest of the connection, or around
    /// one call (set it before the call and back after). A zero timeout is refused
    /// ([`Error::Io`] of kind `InvalidInput`). What happens when one runs out:
    /// [`Error::Timeout`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.session.set_timeout(timeout)
    }

    /// Changes the low-speed limit of multi-line replies (see
    /// [`Options::speed_limit`](crate::Options::speed_limit)); 0 turns it off.
    pub fn set_speed_limit(&mut self, bytes_per_second: u32, time: Duration) {
        self.session.set_speed_limit(bytes_per_second, time);
    }

    /// Whether a previous call was cancelled mid-command (see the type's docs).
    pub fn is_poisoned(&self) -> bool {
        self.busy
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, given up without QUIT (nothing is committed).
    pub fn into_inner(self) -> S {
        self.stream
    }

    // ---- the method set: each one request of `pop3_proto::request`, shared with
    // pop3-blocking (see `pop3_tls::methods!`) ----

    pop3_tls::methods!(async await);

    /// `QUIT`: ends the session. After login the server now deletes the messages marked with
    /// DELE (UPDATE state) and its answer says whether it did. The connection is then shut
    /// down.
    ///
    /// After a timeout (or any other fatal error) QUIT is not sent: it fails with
    /// [`Error::Unusable`] (or [`Error::Closed`]), and nothing is committed.
    ///
    /// After a QUIT queued in a [`Pipeline`](crate::Pipeline) (`Pipeline::quit`), no second
    /// QUIT is sent: this fails with [`Error::Usage`]`(EnqueueError::Closed)` and the verdict
    /// is the pipeline's `PipelineEvent::Quit`. Just drop the connection then (the stream is
    /// not shut down with a TLS close_notify; the server has closed the session already).
    pub async fn quit(mut self) -> Result<Reply, Error> {
        let reply = self.run(request::simple(Command::Quit)).await?;
        // Best effort (TLS close_notify): the session is over whatever happens here.
        let _ = tokio::time::timeout(self.session.timeout(), self.stream.shutdown()).await;
        Ok(reply)
    }

    // ---- the drive loop ----

    /// Marks the connection busy, or says why it cannot be used.
    pub(crate) fn begin(&mut self) -> Result<(), Error> {
        if self.busy {
            return Err(Error::Poisoned);
        }
        self.session.check()?;
        self.busy = true;
        Ok(())
    }

    /// Runs `request` to its result: what the session can do with the input it has, then one
    /// wait for the server, and round again. Dropped before its end, it leaves `busy` set.
    pub(crate) async fn run<R: Request>(&mut self, mut request: R) -> Result<R::Output, Error> {
        self.begin()?;
        let mut sleep = None;
        let result = loop {
            let step = poll_fn(|cx| self.poll_step(cx, &mut request, &mut sleep)).await;
            if let Some(result) = step {
                break result;
            }
        };
        self.busy = false;
        result
    }

    /// One turn of the drive loop: the request's result if the input so far gives it, else
    /// one I/O step (`Ready(None)`: call again), bounded by the deadline the core's read clock
    /// sets for what the client awaits (`sleep` holds it while nothing moves). A failure or
    /// an expired deadline closes the connection.
    pub(crate) fn poll_step<R: Request>(
        &mut self,
        cx: &mut Context<'_>,
        request: &mut R,
        sleep: &mut Option<Pin<Box<Sleep>>>,
    ) -> Poll<Option<Result<R::Output, Error>>> {
        if let Some(result) = self.session.advance(request) {
            return Poll::Ready(Some(result));
        }
        match self.poll_io(cx) {
            Poll::Ready(Ok(())) => {
                *sleep = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(self.session.io_error(error)))),
            Poll::Pending => {}
        }
        if sleep.is_none() {
            let now = Instant::now();
            match self.session.read_wait(now.into_std()) {
                Ok(left) => *sleep = Some(Box::pin(tokio::time::sleep_until(now + left))),
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
        match sleep.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(self.session.timed_out()))),
            _ => Poll::Pending,
        }
    }

    /// One I/O step without a timeout: write if there is something to send, else flush if a
    /// write is unflushed, and (in the same poll) read. Reading while a write is blocked is
    /// what keeps a large pipelined batch from deadlocking against a server that writes
    /// replies before it reads more commands.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.tx_pos == self.tx.len() {
            self.tx.clear();
            self.tx_pos = 0;
        }
        self.session.transmit(&mut self.tx);
        if self.tx_pos < self.tx.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.tx[self.tx_pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.tx_pos += n;
                    self.flush_pending = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        } else if self.flush_pending {
            if let Poll::Ready(result) = Pin::new(&mut self.stream).poll_flush(cx) {
                self.flush_pending = false;
                return Poll::Ready(result);
            }
        }
        if self.session.is_awaiting_tls() {
            // Never read past the +OK to STLS: the next bytes belong to the TLS handshake.
            return Poll::Pending;
        }
        let mut buf = ReadBuf::new(self.session.input_buffer(self.read_size));
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.session.received(n, Instant::now().into_std());
                if n == self.read_size {
                    self.read_size = (self.read_size * 2).min(READ_BUFFER);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn timed_out(after: Duration, awaiting: Awaiting) -> Error {
    Error::Timeout(Expired::Timeout { after, awaiting })
}

/// The TLS handshake, against the session's host name or else the peer's IP address, within
/// the session's timeout. The future holds no reference to the session, so that it (and
/// `connect`, `stls`) stays `Send` although a session is not `Sync`.
fn handshake(
    tcp: TcpStream,
    session: &Session,
) -> Result<
    impl Future<Output = Result<tokio_rustls::client::TlsStream<TcpStream>, Error>> + Send + use<>,
    Error,
> {
    let name = match session.host() {
        Some(host) => server_name(host)?,
        None => rustls::pki_types::ServerName::from(tcp.peer_addr()?.ip()),
    };
    let config = session.options().tls.build()?;
    let timeout = session.timeout();
    let handshake = TlsConnector::from(config).connect(name, tcp);
    Ok(async move {
        match tokio::time::timeout(timeout, handshake).await {
            Ok(tls) => tls.map_err(Error::from_stream),
            Err(_) => Err(timed_out(timeout, Awaiting::TlsHandshake)),
        }
    })
}
