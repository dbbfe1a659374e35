//! OAUTHBEARER (RFC 7628).

use super::{Mechanism, SaslError, error_text, saslname};
use crate::Secret;

/// The OAUTHBEARER mechanism (RFC 7628): the initial response
/// `n,a=USER,^Ahost=HOST^Aport=PORT^Aauth=Bearer TOKEN^A^A` (no channel binding; `host` and
/// `port` only when given; `a=USER` only when the user is not empty, with `,` and `=` escaped as
/// `=2C` and `=3D`).
///
/// On failure the server sends a challenge holding a (base64) JSON error; the mechanism answers
/// it with `^A` (RFC 7628 section 3.2.3), after which the server sends `-ERR`. The JSON text is
/// available from [`OAuthBearer::error_details`]. The host and token are sent as given: they
/// must not contain `^A` (0x01). The token is reusable by whoever sees it: use the mechanism
/// only over TLS.
#[derive(Debug, Clone)]
pub struct OAuthBearer {
    user: String,
    host: Option<String>,
    port: Option<u16>,
    token: Secret,
    sent: bool,
    error: Option<String>,
}

impl OAuthBearer {
    /// An OAUTHBEARER exchange for `user` with the OAuth 2.0 bearer token `token`; `host` and
    /// `port` name the server the client connected to (RFC 7628 recommends sending them).
    pub fn new(user: String, host: Option<String>, port: Option<u16>, token: Secret) -> Self {
        Self {
            user,
            host,
            port,
            token,
            sent: false,
            error: None,
        }
    }

    /// The error the server reported in its challenge (normally a JSON object), as lossy UTF-8
    /// capped at 4 KiB; `None` if the server sent no error challenge.
    pub fn error_details(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn message(&self) -> Secret {
        let mut head = String::from("n,");
        if !self.user.is_empty() {
            head.push_str("a=");
            head.push_str(&saslname(&self.user));
        }
        head.push_str(",\x01");
        if let Some(host) = &self.host {
            head.push_str("host=");
            head.push_str(host);
            head.push('\x01');
        }
        if let Some(port) = self.port {
            head.push_str(&format!("port={port}\x01"));
        }
        head.push_str("auth=Bearer ");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.token.expose());
        out.extend_from_slice(b"\x01\x01");
        Secret::new(out)
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.sent = true;
        Ok(Some(self.message()))
    }

    /// An empty challenge before the initial response was sent is answered with it. After it,
    /// the first challenge is the server's error: it is recorded and answered with `^A`; a
    /// further challenge is [`SaslError::UnexpectedChallenge`].
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        if !self.sent && challenge.is_empty() {
            self.sent = true;
            return Ok(self.message());
        }
        if self.error.is_some() {
            return Err(SaslError::UnexpectedChallenge);
        }
        self.error = Some(error_text(challenge));
        Ok(Secret::new(vec![0x01]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc7628_example() {
        // RFC 7628 section 4.1, but without the stray space the RFC shows after `auth=Bearer`.
        let mut m = OAuthBearer::new(
            "user@example.com".into(),
            Some("server.example.com".into()),
            Some(143),
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into(),
        );
        assert_eq!(m.name(), "OAUTHBEARER");
        assert!(m.exposes_secret());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose(),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn without_host_and_port_and_escaped_user() {
        let mut m = OAuthBearer::new("a,b=c".into(), None, None, "T".into());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,a=a=2Cb=3Dc,\x01auth=Bearer T\x01\x01");
    }

    #[test]
    fn empty_user_omits_authzid() {
        let mut m = OAuthBearer::new(String::new(), None, Some(995), "T".into());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,,\x01port=995\x01auth=Bearer T\x01\x01");
    }

    #[test]
    fn error_challenge_is_recorded_and_answered_with_ctrl_a() {
        let mut m = OAuthBearer::new("u".into(), None, None, "t".into());
        m.initial_response().unwrap();
        let json = br#"{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}"#;
        assert_eq!(m.step(json).unwrap().expose(), b"\x01");
        assert_eq!(m.error_details(), Some(std::str::from_utf8(json).unwrap()));
        assert_eq!(m.step(b"x"), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn empty_challenge_before_initial_response() {
        let mut m = OAuthBearer::new("u".into(), None, None, "t".into());
        assert_eq!(
            m.step(b"").unwrap().expose(),
            b"n,a=u,\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let m = OAuthBearer::new("u".into(), None, None, "tok3n".into());
        assert!(!format!("{m:?}").contains("tok3n"));
    }
}
