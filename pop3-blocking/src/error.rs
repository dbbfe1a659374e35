//! The one error type of the blocking client.

use std::io;

use pop3_proto::login::{LoginChoiceError, ServerError};
use pop3_proto::{EnqueueError, Expired, ProtocolError, ResponseCode};

/// Everything that can go wrong on a [`Connection`](crate::Connection).
///
/// # What is still callable afterwards
///
/// - [`Error::Server`] (a `-ERR`), [`Error::Usage`] (caller misuse, nothing was sent) and
///   [`Error::Login`] (no acceptable login method, nothing was sent) leave the connection
///   usable.
/// - [`Error::Io`] from *your* sink (the `impl Write` given to `retr`, or an error returned by
///   a `retr_many` callback) also leaves it usable: the rest of the reply is read and discarded
///   before the error is returned.
/// - [`Error::Io`] from the connection, [`Error::Tls`], [`Error::Timeout`] and
///   [`Error::Protocol`] are fatal: the connection is *poisoned* and every later call returns
///   [`Error::Closed`] ([`Error::Unusable`] after a timeout), `quit` included. Drop it (no
///   QUIT is sent, so no deletion is committed) and reconnect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading from or writing to the connection (or your sink) failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The TLS layer failed: handshake, certificate verification, or a bad record.
    #[error("TLS error: {}", pop3_tls::describe_error(.0))]
    Tls(#[from] rustls::Error),
    /// A read limit ran out: the server did not complete a status line (or accept data)
    /// within [`Options::timeout`](crate::Options::timeout), or sent a multi-line reply slower
    /// than [`Options::speed_limit`](crate::Options::speed_limit). The error names what was
    /// awaited ("timed out after 30 s waiting for the reply to RETR 3").
    ///
    /// The connection is poisoned: the reply may still be on its way, so the session is out
    /// of step, and a server that trickles gets no more of our time. Every later call,
    /// `quit` included, returns [`Error::Unusable`]; nothing was committed.
    #[error("{0}")]
    Timeout(Expired),
    /// The server broke the POP3 protocol (or closed the connection mid-session).
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server answered `-ERR`; the response code, if any, is typed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The call is not valid now (wrong phase, bad argument, a password without TLS, ...).
    /// Nothing was sent.
    #[error("invalid use: {0}")]
    Usage(#[from] EnqueueError),
    /// [`Connection::login`](crate::Connection::login) found no acceptable method.
    #[error("cannot log in: {0}")]
    Login(#[from] LoginChoiceError),
    /// The host name is not valid for TLS (or none is known for STLS).
    #[error("invalid server name for TLS: {0:?}")]
    InvalidServerName(String),
    /// The server's greeting was `-ERR`: it refuses the session.
    #[error("the server refused the session: -ERR {}{text}", code.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default())]
    GreetingRefused {
        /// The response code, if any (`[IN-USE]`, `[SYS/TEMP]`, ...).
        code: Option<ResponseCode>,
        /// The greeting text.
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
    /// The connection is closed, or poisoned by an earlier fatal error.
    #[error("the connection is closed")]
    Closed,
    /// The connection timed out earlier ([`Error::Timeout`], repeated here) and cannot be
    /// used again: no command (QUIT included) is sent, so nothing was committed. Reconnect.
    #[error(
        "the connection is unusable after an earlier timeout ({0}); no QUIT was sent, so no \
         deletion was committed: reconnect"
    )]
    Unusable(Expired),
}

impl Error {
    /// Maps an I/O error of the connection: timeouts become [`Error::Timeout`] with `expired`
    /// and rustls errors (which `StreamOwned` wraps in an `io::Error`) become [`Error::Tls`].
    pub(crate) fn from_connection_io(error: io::Error, expired: Expired) -> Self {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::Timeout(expired),
            _ => match error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => Self::Tls(tls.clone()),
                None => Self::Io(error),
            },
        }
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
