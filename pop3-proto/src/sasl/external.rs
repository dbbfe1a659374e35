//! EXTERNAL (RFC 4422 appendix A): the identity established outside SASL, for POP3 the TLS
//! client certificate.

use super::{Mechanism, SaslError};
use crate::Secret;

/// The EXTERNAL mechanism (RFC 4422 appendix A): the server takes the identity from outside
/// the exchange, usually the TLS client certificate (`pop3_tls::TlsOptions::client_cert_files`).
///
/// The only message is the authorization identity: empty by default (act as the identity the
/// certificate proves), or the identity to act as, which servers allow only to privileged
/// identities. No secret crosses the wire, so it is allowed without TLS, where it makes
/// sense only if the server authenticates the client by other means.
#[derive(Debug, Clone, Default)]
pub struct External {
    authzid: Option<String>,
    sent: bool,
}

impl External {
    /// An EXTERNAL exchange that asks to act as `authzid` (`None` or empty: as the identity the
    /// certificate proves, the usual case).
    pub fn new(authzid: Option<String>) -> Self {
        Self {
            authzid,
            sent: false,
        }
    }

    fn message(&self) -> Secret {
        Secret::from(self.authzid.clone().unwrap_or_default())
    }
}

impl Mechanism for External {
    fn name(&self) -> &str {
        "EXTERNAL"
    }

    fn exposes_secret(&self) -> bool {
        false
    }

    /// The authorization identity, empty (sent as `=`) when none was given.
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.sent = true;
        Ok(Some(self.message()))
    }

    /// An empty challenge before the message was sent is answered with it; anything else is
    /// [`SaslError::UnexpectedChallenge`].
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        if challenge.is_empty() && !self.sent {
            self.sent = true;
            return Ok(self.message());
        }
        Err(SaslError::UnexpectedChallenge)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_authzid_by_default() {
        let mut m = External::new(None);
        assert_eq!(m.name(), "EXTERNAL");
        assert!(!m.exposes_secret());
        assert!(m.initial_response().unwrap().unwrap().is_empty());
        assert_eq!(m.step(b""), Err(SaslError::UnexpectedChallenge));
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn authzid_is_the_message() {
        let mut m = External::new(Some("alice".into()));
        assert_eq!(m.initial_response().unwrap().unwrap().expose(), b"alice");
        let mut m = External::new(Some("bob".into()));
        assert_eq!(m.step(b"").unwrap().expose(), b"bob");
        assert_eq!(m.step(b"x"), Err(SaslError::UnexpectedChallenge));
    }
}
