//! The one error type of both adapters (`pop3-blocking` and `pop3-async` re-export it as
//! `Error`), so that a call fails the same way in each.

use std::io;

use pop3_proto::login::LoginChoiceError;
use pop3_proto::reply::ServerError;
use pop3_proto::request::Failure;
use pop3_proto::{EnqueueError, Expired, ProtocolError, ResponseCode};

/// Everything an operation on an adapter's `Connection` can fail with.
///
/// Which errors leave the connection usable:
///
/// - usable: [`Error::Server`] (a `-ERR` is data), [`Error::Usage`], [`Error::Login`] and
///   [`Error::AlreadyLoggedIn`] (nothing was sent), [`Error::Uid`], and an [`Error::Io`]
///   raised by *your* writer or callback: it is not called again, the rest of that reply (and
///   of a batch) is read and discarded, and then the error is returned, so the session stays
///   in step;
/// - closed: [`Error::Io`] and [`Error::Tls`] from the connection, [`Error::Timeout`] and
///   [`Error::Protocol`]; every later call, `quit` included, returns [`Error::Closed`]
///   ([`Error::Unusable`] after a timeout) and sends nothing, so nothing is committed;
/// - poisoned (`pop3-async` only): a future dropped mid-command; every later call returns
///   [`Error::Poisoned`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Reading from or writing to the connection (or your sink) failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The TLS layer failed: handshake, certificate verification, or a bad record.
    #[error("TLS error: {}", crate::describe_error(.0))]
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
    /// The server broke the POP3 protocol (or closed the connection mid-session). The
    /// connection is closed (without QUIT: nothing is committed).
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server answered `-ERR`; the response code, if any, is typed. The session goes on.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The call is not valid now (wrong phase, bad argument, a password without TLS, ...).
    /// Nothing was sent; the session goes on.
    #[error("invalid use: {0}")]
    Usage(#[from] EnqueueError),
    /// `login` found no acceptable method. Nothing was sent.
    #[error("cannot log in: {0}")]
    Login(#[from] LoginChoiceError),
    /// The proxy did not open the tunnel to the server (it refused, rejected the
    /// credentials, or broke its protocol). Nothing was sent to the server.
    #[error("proxy: {0}")]
    Proxy(#[from] crate::ProxyError),
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
    /// `login` was called on a session that is already logged in (TRANSACTION phase).
    /// Nothing was sent; the session goes on.
    #[error("already logged in: log in once per connection")]
    AlreadyLoggedIn,
    /// A UID-safe call refused to go on: `dele_uid` found another message under that number,
    /// or `fetch_new` got a UIDL listing with a duplicate. Nothing was deleted or fetched; the
    /// session goes on.
    #[error(transparent)]
    Uid(#[from] pop3_proto::uid::UidError),
    /// `retr_parsed` (the adapters' `mime` feature): the message is larger than the limit
    /// given. Its rest was read and discarded; the session goes on.
    #[error("message {msg} is larger than the {limit} octets allowed for parsing")]
    MessageTooLarge {
        /// The message number.
        msg: u32,
        /// The limit given, in octets.
        limit: usize,
    },
    /// `retr_parsed`: the message has no header the MIME parser can read. The session goes on.
    #[error("message {msg} is not a message the MIME parser can read (no headers)")]
    NotAMessage {
        /// The message number.
        msg: u32,
    },
    /// The connection is closed, or closed by an earlier fatal error.
    #[error("the connection is closed")]
    Closed,
    /// The connection timed out earlier ([`Error::Timeout`], repeated here) and cannot be
    /// used again: no command (QUIT included) is sent, so nothing was committed. Reconnect.
    #[error(
        "the connection is unusable after an earlier timeout ({0}); no QUIT was sent, so no \
         deletion was committed: reconnect"
    )]
    Unusable(Expired),
    /// `pop3-async` only: a previous operation's future was dropped mid-command (cancelled, or
    /// lost a `select!`): where its reply stands is unknown to the caller, so the connection is
    /// unusable. QUIT is never sent automatically, so nothing was committed: drop the
    /// connection and reconnect.
    #[error("the connection is poisoned: a previous operation was cancelled mid-command")]
    Poisoned,
}

/// The name the adapters give it.
use ConnectionError as Error;

impl ConnectionError {
    /// An I/O error of the connection: a timeout becomes [`Error::Timeout`] with `expired`,
    /// and a rustls error (which TLS streams wrap in an `io::Error`) becomes [`Error::Tls`].
    pub fn from_connection_io(error: io::Error, expired: Expired) -> Self {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::Timeout(expired),
            _ => Self::from_stream(error),
        }
    }

    /// An I/O error of the connection, a rustls error inside it made [`Error::Tls`].
    pub fn from_stream(error: io::Error) -> Self {
        match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Self::Tls(tls.clone()),
            None => Self::Io(error),
        }
    }

    /// Whether the error leaves the connection unusable (it is then closed or poisoned).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Tls(_) | Self::Timeout(_) | Self::Protocol(_) | Self::Closed | Self::Unusable(_)
        )
    }
}

impl From<Failure> for ConnectionError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Server(error) => Self::Server(error),
            Failure::Sink(error) => Self::Io(error),
            Failure::Usage(error) => Self::Usage(error),
            Failure::Login(error) => Self::Login(error),
            Failure::AlreadyLoggedIn => Self::AlreadyLoggedIn,
            Failure::Uid(error) => Self::Uid(error),
            Failure::TooLarge { msg, limit } => Self::MessageTooLarge { msg, limit },
            Failure::GreetingRefused(greeting) => Self::GreetingRefused {
                code: greeting.code,
                text: greeting.text,
            },
            _ => Self::Closed,
        }
    }
}

impl From<crate::Error> for ConnectionError {
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::Io(error) => Self::Io(error),
            crate::Error::Tls(error) => Self::Tls(error),
        }
    }
}

/// How many random bytes go into a SCRAM client nonce (144 bits, base64 to 24 characters).
const SCRAM_NONCE_BYTES: usize = 18;

/// A SCRAM client nonce: 18 bytes from the operating system's generator, base64. The one
/// helper behind every adapter's (and the CLI's) SCRAM login: the core takes the nonce as an
/// argument, so that it stays deterministic.
pub fn scram_nonce() -> io::Result<String> {
    use base64::Engine as _;
    let mut bytes = [0; SCRAM_NONCE_BYTES];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The TLS server name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| Error::InvalidServerName(host.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Options;

    #[test]
    fn scram_nonces_are_24_base64_characters_and_differ() {
        let (a, b) = (scram_nonce().unwrap(), scram_nonce().unwrap());
        assert_eq!(a.len(), 24);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        );
        assert_ne!(a, b);
    }

    /// The config is ORed with the login policy and the tracing check, never overwritten.
    #[test]
    fn client_config_ors_plaintext_and_trace() {
        let mut options = Options::default();
        assert!(!options.client_config(false).allow_plaintext_auth);
        assert!(!options.client_config(false).trace);
        assert!(options.client_config(true).trace);
        options.config.allow_plaintext_auth = true;
        options.config.trace = true;
        let config = options.client_config(false);
        assert!(config.allow_plaintext_auth && config.trace);
        let config = Options::default()
            .allow_plaintext(true)
            .client_config(false);
        assert!(config.allow_plaintext_auth);
    }

    #[test]
    fn request_failures_keep_their_meaning() {
        let error = ConnectionError::from(Failure::TooLarge { msg: 3, limit: 10 });
        assert!(matches!(
            error,
            Error::MessageTooLarge { msg: 3, limit: 10 }
        ));
        let error = ConnectionError::from(Failure::Sink(io::ErrorKind::StorageFull.into()));
        assert!(matches!(error, Error::Io(ref e) if e.kind() == io::ErrorKind::StorageFull));
        assert!(!error.is_fatal());
        assert!(ConnectionError::from(Failure::Closed).is_fatal());
    }
}
