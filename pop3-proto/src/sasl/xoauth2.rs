//! XOAUTH2 (Google's and Microsoft's OAuth 2.0 bearer-token mechanism).

use super::{Mechanism, SaslError, error_text};
use crate::Secret;

/// The XOAUTH2 mechanism: the initial response `user=USER ^A auth=Bearer TOKEN ^A ^A`.
///
/// On failure the server sends a challenge holding a (base64) JSON error; the mechanism answers
/// it with an empty response, after which the server sends `-ERR`. The JSON text is kept and
/// available from [`XOAuth2::error_details`]. The token is reusable by whoever sees it: use the
/// mechanism only over TLS.
#[derive(Debug, Clone)]
pub struct XOAuth2 {
    user: String,
    token: Secret,
    sent: bool,
    error: Option<String>,
}

impl XOAuth2 {
    /// An XOAUTH2 exchange for `user` with the OAuth 2.0 access token `token`.
    pub fn new(user: String, token: Secret) -> Self {
        Self {
            user,
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
        let token = self.token.expose();
        let mut out = Vec::with_capacity(self.user.len() + token.len() + 21);
        out.extend_from_slice(b"user=");
        out.extend_from_slice(self.user.as_bytes());
        out.extend_from_slice(b"\x01auth=Bearer ");
        out.extend_from_slice(token);
        out.extend_from_slice(b"\x01\x01");
        Secret::new(out)
    }
}

impl Mechanism for XOAuth2 {
    fn name(&self) -> &str {
        "XOAUTH2"
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.sent = true;
        Ok(Some(self.message()))
    }

    /// An empty challenge before the initial response was sent is answered with it. After it,
    /// the first challenge is the server's error: it is recorded and answered with an empty
    /// response; a further challenge is [`SaslError::UnexpectedChallenge`].
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        if !self.sent && challenge.is_empty() {
            self.sent = true;
            return Ok(self.message());
        }
        if self.error.is_some() {
            return Err(SaslError::UnexpectedChallenge);
        }
        self.error = Some(error_text(challenge));
        Ok(Secret::default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn initial_response_bytes() {
        let mut m = XOAuth2::new(
            "someuser@example.com".into(),
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into(),
        );
        assert_eq!(m.name(), "XOAUTH2");
        assert!(m.exposes_secret());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose(),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        assert_eq!(m.error_details(), None);
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn error_challenge_is_recorded_and_answered_empty() {
        let mut m = XOAuth2::new("u".into(), "t".into());
        m.initial_response().unwrap();
        let json = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        let r = m.step(json).unwrap();
        assert!(r.is_empty());
        assert_eq!(m.error_details(), Some(std::str::from_utf8(json).unwrap()));
        assert_eq!(m.step(b"again"), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn error_details_lossy_and_capped() {
        let mut m = XOAuth2::new("u".into(), "t".into());
        m.initial_response().unwrap();
        let mut big = vec![b'a'; 5000];
        big[0] = 0xff;
        m.step(&big).unwrap();
        let d = m.error_details().unwrap();
        assert!(d.starts_with('\u{fffd}'));
        assert!(d.len() <= 4096);
    }

    #[test]
    fn empty_challenge_before_initial_response() {
        let mut m = XOAuth2::new("u".into(), "t".into());
        assert_eq!(
            m.step(b"").unwrap().expose(),
            b"user=u\x01auth=Bearer t\x01\x01"
        );
        assert_eq!(m.error_details(), None);
    }

    #[test]
    fn debug_is_redacted() {
        let m = XOAuth2::new("u".into(), "tok3n".into());
        assert!(!format!("{m:?}").contains("tok3n"));
    }
}
