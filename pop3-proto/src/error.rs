//! The two error types: caller misuse ([`EnqueueError`]) and server misbehaviour
//! ([`ProtocolError`]).

use crate::Phase;
use crate::command::CommandKind;
use crate::response::ParseError;
use crate::sasl::SaslError;

/// The caller asked for something the client cannot do now. Nothing was queued or sent, and
/// the client is as it was: this error is never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The command is not valid in the current phase (RFC 1939 §3-6).
    #[error("{command} is not allowed in the {phase} phase")]
    WrongPhase {
        /// The refused command.
        command: CommandKind,
        /// The phase the session is in.
        phase: Phase,
    },
    /// An argument contains CR, LF or NUL, which would end or corrupt the command line.
    #[error("an argument of {command} contains a forbidden byte (CR, LF or NUL)")]
    ForbiddenByte {
        /// The refused command.
        command: CommandKind,
    },
    /// An argument is empty or contains a space where the grammar allows neither.
    #[error("invalid argument for {command}: {reason}")]
    InvalidArgument {
        /// The refused command.
        command: CommandKind,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The command line would exceed the 255 octets RFC 2449 §4 allows (CRLF included).
    #[error("the {command} command line would be {len} octets, over the 255 allowed")]
    LineTooLong {
        /// The refused command.
        command: CommandKind,
        /// The length it would have had.
        len: usize,
    },
    /// Message number 0: POP3 numbers messages from 1.
    #[error("message numbers start at 1")]
    MessageNumberZero,
    /// The command would send a reusable password or token, or an APOP digest an observer can
    /// crack offline, over a connection without TLS, and
    /// [`Config::allow_plaintext_auth`](crate::Config::allow_plaintext_auth) is off.
    #[error(
        "{command} would send credentials without TLS; allow plaintext authentication explicitly to do so"
    )]
    CleartextCredentials {
        /// The refused command.
        command: CommandKind,
    },
    /// APOP needs a well-formed `<...@...>` timestamp in the greeting, and this server sent none.
    #[error("APOP is unavailable: the greeting carries no well-formed timestamp")]
    ApopUnavailable,
    /// STLS on a connection that is already encrypted.
    #[error("TLS is already active")]
    TlsAlreadyActive,
    /// The session is over (QUIT done, greeting refused, or a fatal error occurred).
    #[error("the session is closed")]
    Closed,
    /// `handle_tls_established` when no TLS handshake was due (only right after connecting,
    /// or after [`Event::StartTls`](crate::Event::StartTls)).
    #[error("no TLS handshake was expected now")]
    UnexpectedTls,
    /// `cancel_auth` without an AUTH exchange in progress.
    #[error("no AUTH exchange is in progress")]
    NoAuthInProgress,
}

/// The server broke the protocol, or the connection ended where it must not. Fatal and
/// sticky: once returned, every later `poll_event` returns it again and nothing more is sent.
/// Close the connection (without QUIT: nothing is committed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A line exceeded its configured limit before its line end arrived.
    #[error("{what} line exceeds the limit of {limit} octets")]
    LineTooLong {
        /// Which kind of line.
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// A line could not be parsed.
    #[error("malformed {what}: {error}")]
    Malformed {
        /// Which reply it was.
        what: &'static str,
        /// What was wrong.
        error: ParseError,
    },
    /// The server sent data while no command was waiting for a reply.
    #[error("the server sent data that answers no command")]
    UnsolicitedData,
    /// Bytes arrived after the `+OK` to STLS and before TLS was established: a STARTTLS
    /// command-injection attempt (RFC 2595 §4, CVE-2011-0411 class). The connection must close.
    #[error("plaintext bytes arrived after the +OK to STLS (STARTTLS injection)")]
    StartTlsInjection,
    /// The connection ended before the reply was complete.
    #[error("the server closed the connection during the reply to {command}")]
    UnexpectedEof {
        /// The command whose reply was cut.
        command: CommandKind,
    },
    /// The connection ended while the session was still open.
    #[error("the server closed the connection")]
    ConnectionClosed,
    /// A bare LF line end arrived and [`Quirks::bare_lf`](crate::Quirks::bare_lf) is off.
    #[error("the server ended a line with a bare LF")]
    BareLineFeed,
    /// The SASL mechanism refused the server's data (a forged SCRAM signature, for instance).
    #[error("SASL {mechanism}: {error}")]
    Sasl {
        /// The mechanism name.
        mechanism: String,
        /// What went wrong.
        error: SaslError,
    },
    /// A SASL challenge was not valid base64.
    #[error("a SASL challenge is not valid base64")]
    InvalidBase64,
    /// A `+ ` continuation arrived outside an AUTH exchange.
    #[error("a SASL continuation arrived outside an AUTH exchange")]
    UnexpectedContinuation,
    /// A body line exceeded [`Config::max_body_line`](crate::Config::max_body_line).
    #[error("a message line exceeds the limit of {limit} octets")]
    BodyLineTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// A CAPA reply carried more lines than
    /// [`Config::max_capabilities`](crate::Config::max_capabilities).
    #[error("the CAPA reply exceeds the limit of {limit} capabilities")]
    TooManyCapabilities {
        /// The configured limit.
        limit: usize,
    },
    /// A LIST, UIDL or LANG reply carried more entries than
    /// [`Config::max_listing_entries`](crate::Config::max_listing_entries).
    #[error(
        "the {listing} reply exceeds the limit of {limit} entries (Config::max_listing_entries)"
    )]
    TooManyEntries {
        /// Which listing: `"LIST"`, `"UIDL"` or `"LANG"`.
        listing: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// A LIST or UIDL listing repeats a message number, or a UIDL listing repeats a
    /// unique-id: the server's listing cannot be trusted, and nothing should be done with it
    /// (deleting by it could delete mail that was never fetched). Reported when the listing
    /// ends; the entries already reported must be discarded.
    #[error("{}", describe_duplicates(listing, numbers, uids, *repeated))]
    DuplicateEntries {
        /// Which listing: `"LIST"` or `"UIDL"`.
        listing: &'static str,
        /// The repeated message numbers, at most [`MAX_NAMED_DUPLICATES`] of them, in order.
        numbers: Vec<u32>,
        /// The repeated unique-ids, at most [`MAX_NAMED_DUPLICATES`] of them, in order.
        uids: Vec<String>,
        /// How many entries repeated a number or a unique-id, named or not.
        repeated: usize,
    },
    /// The reply to `LIST n` or `UIDL n` named another message.
    #[error("the server answered for message {got} where message {expected} was asked")]
    WrongMessageNumber {
        /// The number asked for.
        expected: u32,
        /// The number in the reply.
        got: u32,
    },
    /// The caller's SASL mechanism failed to produce its initial response.
    #[error("SASL {mechanism} could not start: {error}")]
    SaslStart {
        /// The mechanism name.
        mechanism: String,
        /// What went wrong.
        error: SaslError,
    },
}

/// How many repeated message numbers, and how many repeated unique-ids,
/// [`ProtocolError::DuplicateEntries`] names.
pub const MAX_NAMED_DUPLICATES: usize = 10;

fn describe_duplicates(listing: &str, numbers: &[u32], uids: &[String], repeated: usize) -> String {
    let mut parts = Vec::new();
    if !numbers.is_empty() {
        let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
        parts.push(format!("message number(s) {}", list.join(", ")));
    }
    if !uids.is_empty() {
        let list: Vec<String> = uids.iter().map(|u| format!("{u:?}")).collect();
        parts.push(format!("unique-id(s) {}", list.join(", ")));
    }
    let entries = if repeated == 1 { "entry" } else { "entries" };
    format!(
        "the {listing} listing repeats {} ({repeated} repeated {entries} in all)",
        parts.join(" and ")
    )
}
