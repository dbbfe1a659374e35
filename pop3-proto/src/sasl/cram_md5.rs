//! CRAM-MD5 (RFC 2195).

use hmac::{Hmac, Mac};

use super::{Mechanism, SaslError};
use crate::Secret;

type HmacMd5 = Hmac<md5::Md5>;

/// The CRAM-MD5 mechanism (RFC 2195): the server sends a challenge, the client answers
/// `user SP lowerhex(HMAC-MD5(password, challenge))`.
///
/// The password does not cross the wire, but the exchange does not authenticate the server and
/// an eavesdropper can attack the password offline; prefer SCRAM where available.
#[derive(Debug, Clone)]
pub struct CramMd5 {
    user: String,
    password: Secret,
    answered: bool,
}

impl CramMd5 {
    /// A CRAM-MD5 exchange for `user` with `password`.
    pub fn new(user: String, password: Secret) -> Self {
        Self {
            user,
            password,
            answered: false,
        }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &str {
        "CRAM-MD5"
    }

    fn exposes_secret(&self) -> bool {
        false
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        if self.answered {
            return Err(SaslError::UnexpectedChallenge);
        }
        if challenge.is_empty() {
            return Err(SaslError::MalformedChallenge("empty CRAM-MD5 challenge"));
        }
        let mut mac = HmacMd5::new_from_slice(self.password.expose())
            .expect("HMAC accepts keys of any length");
        mac.update(challenge);
        let digest = mac.finalize().into_bytes();
        let mut out = Vec::with_capacity(self.user.len() + 1 + 2 * digest.len());
        out.extend_from_slice(self.user.as_bytes());
        out.push(b' ');
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        }
        self.answered = true;
        Ok(Secret::new(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example() {
        let mut m = CramMd5::new("tim".into(), "tanstaaftanstaaf".into());
        assert_eq!(m.name(), "CRAM-MD5");
        assert!(!m.exposes_secret());
        assert_eq!(m.initial_response(), Ok(None));
        let r = m
            .step(b"<1896.697170952@postoffice.reston.mci.net>")
            .unwrap();
        assert_eq!(r.expose(), b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(m.step(b"<again>"), Err(SaslError::UnexpectedChallenge));
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn empty_challenge_is_malformed() {
        let mut m = CramMd5::new("tim".into(), "pw".into());
        assert!(matches!(m.step(b""), Err(SaslError::MalformedChallenge(_))));
        // Still able to answer a proper challenge afterwards.
        assert!(m.step(b"<1@x>").is_ok());
    }

    #[test]
    fn long_password_is_hashed_key() {
        // Keys longer than the MD5 block size (64) are hashed first by HMAC: just check it works.
        let mut m = CramMd5::new("u".into(), Secret::new(vec![b'k'; 200]));
        let r = m.step(b"<c>").unwrap();
        assert_eq!(r.len(), 2 + 32);
    }

    #[test]
    fn debug_is_redacted() {
        let m = CramMd5::new("tim".into(), "hunter2".into());
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
