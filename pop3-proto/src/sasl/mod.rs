//! SASL mechanisms for `AUTH` (RFC 5034).
//!
//! A [`Mechanism`] works on raw (base64-decoded) bytes: the [`Client`](crate::Client) does the
//! base64 coding, the 255-octet initial-response rule, the `=` for an empty initial response and
//! the `*` cancellation. Built in: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER and (with the
//! default `scram` feature) SCRAM-SHA-256. Implement the trait to add your own.

use crate::Secret;

/// Why a SASL exchange could not go on. The server misbehaved (a malformed or forged
/// challenge) or the exchange ended in a state the mechanism does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server sent a challenge the mechanism cannot parse.
    #[error("malformed SASL challenge: {0}")]
    MalformedChallenge(&'static str),
    /// The server sent a challenge although the mechanism expected none.
    #[error("unexpected SASL challenge")]
    UnexpectedChallenge,
    /// The server's proof of identity (SCRAM server signature) is wrong.
    #[error("the server signature does not verify: the server does not know the password")]
    ServerSignatureMismatch,
    /// The server accepted the authentication before the mechanism had verified it.
    #[error("the server accepted the authentication before proving its identity")]
    IncompleteExchange,
    /// The server refused with an error message inside the exchange (SCRAM `e=`).
    #[error("the server reported a SASL error: {0}")]
    ServerError(String),
}

/// A client-side SASL mechanism.
///
/// The protocol with the [`Client`](crate::Client): `initial_response` is called once when the
/// `AUTH` command is transmitted; every `+ ` continuation from the server is base64-decoded and
/// given to `step`, whose answer is base64-encoded and sent; when the server answers `+OK`,
/// `finish` is called, and an error from it is fatal (the server claimed success without proving
/// itself).
pub trait Mechanism: Send {
    /// The mechanism name as sent after `AUTH`, in upper case, for example `"PLAIN"`.
    fn name(&self) -> &str;

    /// Whether the exchange carries a password or token that an eavesdropper could reuse.
    /// The client refuses such a mechanism over a connection without TLS unless the caller
    /// allowed plaintext authentication. Defaults to `true`, the safe answer.
    fn exposes_secret(&self) -> bool {
        true
    }

    /// The initial response (client-first data), or `None` if the mechanism waits for the
    /// server to speak first. `Some` with empty bytes is an empty initial response (`=`).
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError>;

    /// Answers one server challenge (already base64-decoded).
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError>;

    /// Called when the server answers `+OK`: a mechanism that authenticates the server (SCRAM)
    /// returns an error if it has not yet verified the server.
    fn finish(&mut self) -> Result<(), SaslError> {
        Ok(())
    }
}

impl std::fmt::Debug for dyn Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mechanism({})", self.name())
    }
}
