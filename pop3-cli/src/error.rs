//! The CLI's error type and its exit statuses.

use std::fmt;
use std::io;

use pop3_blocking::pop3_proto::EnqueueError;
use pop3_blocking::pop3_proto::login::LoginChoiceError;
use pop3_blocking::{Error, ResponseCode};

/// Exit status: success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status: the server said `-ERR` (an authentication failure included).
pub(crate) const EXIT_SERVER: u8 = 1;
/// Exit status: usage error (bad arguments, missing options, a policy refusal such as a
/// password that would go in the clear). clap uses 2 for its own errors too.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status: protocol violation, TLS or network error, timeout, or a local I/O failure.
pub(crate) const EXIT_FAILURE: u8 = 3;

/// What went wrong, classified by exit status.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The server said `-ERR`: exit 1.
    Server(String),
    /// The server said `-ERR` with a response code (RFC 2449 §8, RFC 3206), which `poll`
    /// schedules by: exit 1.
    ServerCode(ResponseCode, String),
    /// A usage or policy error: exit 2.
    Usage(String),
    /// Network, TLS, protocol, timeout or local I/O: exit 3.
    Failure(String),
}

impl CliError {
    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// A failure (exit 3).
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::Failure(message.into())
    }

    /// A local I/O failure with its context (exit 3).
    pub(crate) fn local(context: impl fmt::Display, error: &io::Error) -> Self {
        Self::Failure(format!("{context}: {error}"))
    }

    /// The process exit status.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Server(_) | Self::ServerCode(..) => EXIT_SERVER,
            Self::Usage(_) => EXIT_USAGE,
            Self::Failure(_) => EXIT_FAILURE,
        }
    }

    /// Prefixes the message with some context.
    pub(crate) fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Self::Server(m) => Self::Server(format!("{context}: {m}")),
            Self::ServerCode(c, m) => Self::ServerCode(c, format!("{context}: {m}")),
            Self::Usage(m) => Self::Usage(format!("{context}: {m}")),
            Self::Failure(m) => Self::Failure(format!("{context}: {m}")),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(m) | Self::ServerCode(_, m) | Self::Usage(m) | Self::Failure(m) => {
                f.write_str(m)
            }
        }
    }
}

const PLAINTEXT_HINT: &str = "use --tls implicit or --tls starttls, or pass --allow-plaintext-auth to send credentials unencrypted";

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        match error {
            Error::Server(e) => match e.code.clone() {
                Some(code) => Self::ServerCode(code, e.to_string()),
                None => Self::Server(e.to_string()),
            },
            Error::GreetingRefused { .. } => Self::Server(error.to_string()),
            Error::Usage(EnqueueError::CleartextCredentials { command }) => Self::Usage(format!(
                "refusing to send credentials ({command}) over a connection without TLS: {PLAINTEXT_HINT}"
            )),
            Error::Login(LoginChoiceError::WouldExposePassword) => Self::Usage(format!(
                "refusing to log in without TLS: every method the server offers sends the password or an exchange an observer can crack offline: {PLAINTEXT_HINT}"
            )),
            Error::Login(e) => {
                Self::Usage(format!("cannot log in: {e}; choose a method with --auth"))
            }
            Error::Usage(e) => Self::Usage(e.to_string()),
            Error::InvalidServerName(name) => {
                Self::Usage(format!("{name:?} is not a valid host name for TLS"))
            }
            Error::Io(e) => Self::Failure(format!("network error: {e}")),
            Error::Tls(e) => Self::Failure(format!(
                "TLS error: {}",
                pop3_blocking::describe_tls_error(&e)
            )),
            Error::Timeout(e) => Self::Failure(e.to_string()),
            Error::Protocol(e) => Self::Failure(format!("protocol violation: {e}")),
            Error::Closed => Self::Failure("the server closed the connection".to_owned()),
            other => Self::Failure(other.to_string()),
        }
    }
}
