//! LOGIN (draft-murchison-sasl-login): user name and password, each as an answer to a prompt.

use super::{Mechanism, SaslError};
use crate::Secret;

/// The LOGIN mechanism: no initial response; the first challenge (usually `Username:`) is
/// answered with the user name, the second (usually `Password:`) with the password.
///
/// The answers go by position, not by prompt text, so unusual prompts (`User Name`, localized
/// or empty ones) work. A third challenge is [`SaslError::UnexpectedChallenge`]. The password
/// crosses the wire: use it only over TLS.
#[derive(Debug, Clone)]
pub struct Login {
    user: String,
    password: Secret,
    steps: u8,
}

impl Login {
    /// A LOGIN exchange for `user` with `password`.
    pub fn new(user: String, password: Secret) -> Self {
        Self {
            user,
            password,
            steps: 0,
        }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &str {
        "LOGIN"
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, _challenge: &[u8]) -> Result<Secret, SaslError> {
        let answer = match self.steps {
            0 => Secret::from(self.user.as_str()),
            1 => self.password.clone(),
            _ => return Err(SaslError::UnexpectedChallenge),
        };
        self.steps += 1;
        Ok(answer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn user_then_password() {
        let mut m = Login::new("tim".into(), "secret".into());
        assert_eq!(m.name(), "LOGIN");
        assert!(m.exposes_secret());
        assert_eq!(m.initial_response(), Ok(None));
        assert_eq!(m.step(b"Username:").unwrap().expose(), b"tim");
        assert_eq!(m.step(b"Password:").unwrap().expose(), b"secret");
        assert_eq!(m.step(b"Password:"), Err(SaslError::UnexpectedChallenge));
        assert_eq!(m.step(b""), Err(SaslError::UnexpectedChallenge));
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn goes_by_position_not_prompt() {
        let mut m = Login::new("tim".into(), "secret".into());
        assert_eq!(m.step(b"Password:").unwrap().expose(), b"tim");
        assert_eq!(m.step(b"").unwrap().expose(), b"secret");
    }

    #[test]
    fn debug_is_redacted() {
        let m = Login::new("tim".into(), "hunter2".into());
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
