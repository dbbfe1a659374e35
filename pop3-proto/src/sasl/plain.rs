//! PLAIN (RFC 4616).

use super::{Mechanism, SaslError};
use crate::Secret;

/// The PLAIN mechanism (RFC 4616): `[authzid] NUL authcid NUL passwd` in one initial response.
///
/// The password crosses the wire (base64 is no protection), so use it only over TLS.
/// The strings are sent as given: no SASLprep, and a NUL inside them is not rejected (the server
/// would then see a malformed message and refuse it).
#[derive(Debug, Clone)]
pub struct Plain {
    authzid: Option<String>,
    authcid: String,
    password: Secret,
    sent: bool,
}

impl Plain {
    /// A PLAIN exchange that authenticates as `authcid` with `password` and, if `authzid` is
    /// `Some` (and not empty), asks to act as that other identity.
    pub fn new(authzid: Option<String>, authcid: String, password: Secret) -> Self {
        Self {
            authzid,
            authcid,
            password,
            sent: false,
        }
    }

    fn message(&self) -> Secret {
        let authzid = self.authzid.as_deref().unwrap_or("");
        let pw = self.password.expose();
        let mut out = Vec::with_capacity(authzid.len() + self.authcid.len() + pw.len() + 2);
        out.extend_from_slice(authzid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.authcid.as_bytes());
        out.push(0);
        out.extend_from_slice(pw);
        Secret::new(out)
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.sent = true;
        Ok(Some(self.message()))
    }

    /// PLAIN expects no challenge. An empty challenge before the message was sent (a server
    /// that wants the client to wait for `+ `) is answered with the message; anything else is
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
    fn without_authzid() {
        let mut m = Plain::new(None, "tim".into(), "tanstaaftanstaaf".into());
        assert_eq!(m.name(), "PLAIN");
        assert!(m.exposes_secret());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"\0tim\0tanstaaftanstaaf");
        assert_eq!(m.step(b""), Err(SaslError::UnexpectedChallenge));
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn with_authzid() {
        let mut m = Plain::new(Some("Ursel".into()), "Kurt".into(), "xipj3plmq".into());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"Ursel\0Kurt\0xipj3plmq");
    }

    #[test]
    fn empty_authzid_is_like_none() {
        let mut m = Plain::new(Some(String::new()), "u".into(), "p".into());
        assert_eq!(m.initial_response().unwrap().unwrap().expose(), b"\0u\0p");
    }

    #[test]
    fn non_empty_challenge_is_unexpected() {
        let mut m = Plain::new(None, "u".into(), "p".into());
        m.initial_response().unwrap();
        assert_eq!(m.step(b"hello"), Err(SaslError::UnexpectedChallenge));
        let mut m = Plain::new(None, "u".into(), "p".into());
        assert_eq!(m.step(b"hello"), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn empty_challenge_before_initial_response_gets_the_message() {
        let mut m = Plain::new(None, "u".into(), "p".into());
        assert_eq!(m.step(b"").unwrap().expose(), b"\0u\0p");
        assert_eq!(m.step(b""), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn debug_is_redacted() {
        let m = Plain::new(None, "u".into(), "hunter2".into());
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
