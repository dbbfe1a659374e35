//! The adapter's error type.

use std::io;

use pop3_proto::login::{LoginChoiceError, ServerError};
use pop3_proto::{EnqueueError, Expired, ProtocolError, ResponseCode};

/// Everything an operation on a [`Connection`](crate::Connection) can fail with.
///
/// Which errors leave the connection usable:
///
/// - usable: [`Error::Server`] (a `-ERR` is data), [`Error::Usage`] (nothing was sent),
///   [`Error::Login`] (nothing was sent), and an [`Error::Io`] raised by *your* writer or
///   callback (the rest of that reply is skipped by the next call);
/// - closed: [`Error::Io`] and [`Error::Tls`] from the connection, [`Error::Timeout`] and
///   [`Error::Protocol`]; every later call, `quit` included, returns [`Error::Closed`]
///   ([`Error::Unusable`] after a timeout) and sends nothing, so nothing is committed;
/// - poisoned: a future dropped mid-command; every later call returns [`Error::Poisoned`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on the connection, or from the writer or callback given to a method.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The TLS handshake or a TLS record failed (certificate, name, protocol).
    #[error("TLS error: {}", pop3_tls::describe_error(.0))]
    Tls(#[from] rustls::Error),
    /// A read limit ran out: connecting, the TLS handshake, a write or a status line took
    /// longer than [`Options::timeout`](crate::Options::timeout), or a multi-line reply came
    /// slower than [`Options::speed_limit`](crate::Options::speed_limit). The error names what
    /// was awaited ("timed out after 30 s waiting for the reply to RETR 3").
    ///
    /// The connection is closed: the reply may still be on its way, so the session is out of
    /// step, and a server that trickles gets no more of our time. Every later call, `quit`
    /// included, returns [`Error::Unusable`]; nothing was committed.
    #[error("{0}")]
    Timeout(Expired),
    /// The server broke the protocol. The connection is closed (without QUIT: nothing is
    /// committed).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server answered `-ERR`. The session goes on.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The call is not possible now (wrong phase, bad argument, credentials without TLS).
    /// Nothing was sent; the session goes on.
    #[error("usage error: {0}")]
    Usage(#[from] EnqueueError),
    /// [`Connection::login`](crate::Connection::login) found no acceptable method.
    #[error("login: {0}")]
    Login(#[from] LoginChoiceError),
    /// The host name is not a valid DNS name or IP address for TLS.
    #[error("invalid server name for tls: {0:?}")]
    InvalidServerName(String),
    /// The server's greeting was `-ERR`: it refused the session.
    #[error("the server refused the session: -ERR {}{text}", code.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default())]
    GreetingRefused {
        /// The response code, if any.
        code: Option<ResponseCode>,
        /// The text after `-ERR`.
        text: String,
    },
    /// [`Connection::login`](crate::Connection::login) was called on a session that is
    /// already logged in (TRANSACTION phase). Nothing was sent; the session goes on.
    #[error("already logged in: log in once per connection")]
    AlreadyLoggedIn,
    /// A UID-safe call refused to go on: [`dele_uid`](crate::Connection::dele_uid) found
    /// another message under that number, or [`fetch_new`](crate::Connection::fetch_new) got
    /// a UIDL listing with a duplicate. Nothing was deleted or fetched; the session goes on.
    #[error(transparent)]
    Uid(#[from] pop3_proto::uid::UidError),
    /// [`retr_parsed`](crate::Connection::retr_parsed): the message is larger than the
    /// limit given. Its rest was read and discarded; the session goes on.
    #[cfg(feature = "mime")]
    #[error("message {msg} is larger than the {limit} octets allowed for parsing")]
    MessageTooLarge {
        /// The message number.
        msg: u32,
        /// The limit given, in octets.
        limit: usize,
    },
    /// [`retr_parsed`](crate::Connection::retr_parsed): the message has no header the MIME
    /// parser can read. The session goes on.
    #[cfg(feature = "mime")]
    #[error("message {msg} is not a message the MIME parser can read (no headers)")]
    NotAMessage {
        /// The message number.
        msg: u32,
    },
    /// The connection was closed by an earlier fatal error.
    #[error("the connection is closed")]
    Closed,
    /// The connection timed out earlier ([`Error::Timeout`], repeated here) and cannot be
    /// used again: no command (QUIT included) is sent, so nothing was committed. Reconnect.
    #[error(
        "the connection is unusable after an earlier timeout ({0}); no QUIT was sent, so no \
         deletion was committed: reconnect"
    )]
    Unusable(Expired),
    /// A previous operation's future was dropped mid-command (cancelled, or lost a
    /// `select!`): where its reply stands is unknown to the caller, so the connection is
    /// unusable. QUIT is never sent automatically, so nothing was committed: drop the
    /// connection and reconnect.
    #[error("the connection is poisoned: a previous operation was cancelled mid-command")]
    Poisoned,
}

impl Error {
    /// An I/O error from the stream, with a TLS failure made visible as [`Error::Tls`]
    /// (tokio-rustls wraps a `rustls::Error` in an `io::Error`).
    pub(crate) fn from_stream(error: io::Error) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Self::Tls(tls.clone());
        }
        Self::Io(error)
    }
}

impl From<pop3_tls::Error> for Error {
    fn from(error: pop3_tls::Error) -> Self {
        match error {
            pop3_tls::Error::Io(error) => Self::Io(error),
            pop3_tls::Error::Tls(error) => Self::Tls(error),
            other => Self::Io(std::io::Error::other(other)),
        }
    }
}
