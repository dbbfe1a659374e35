//! Choosing how to log in: the methods, the caller's policy and the choice.
//!
//! The choice is a protocol decision, so it lives here and every adapter makes it the same way;
//! the login *plan* that carries it out is [`crate::request::LoginPlan`]. The typed results
//! that used to live here are in [`crate::reply`] (re-exported here so old paths keep working).

use crate::capa::Capabilities;
pub use crate::reply::{Reply, ScanListing, ServerError, Stat, UniqueIdListing};

/// A way to authenticate, in the order [`choose_login`] prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginMethod {
    /// AUTH SCRAM-SHA-256: the password never crosses the wire and the server proves it knows it.
    /// An observer can still try passwords offline against a recorded exchange, so it is
    /// chosen without TLS only when plaintext is allowed.
    ScramSha256,
    /// AUTH CRAM-MD5: the password never crosses the wire, but an observer can crack a
    /// recorded exchange offline, so it is chosen without TLS only when plaintext is allowed.
    CramMd5,
    /// APOP: the password never crosses the wire; only when asked for (MD5 of a predictable
    /// challenge is weak), and never chosen without TLS.
    Apop,
    /// AUTH PLAIN: the password is sent (base64) in one line.
    Plain,
    /// AUTH LOGIN: the password is sent (base64) after a prompt.
    Login,
    /// USER and PASS: the password is sent as it is.
    UserPass,
}

impl LoginMethod {
    /// Whether the method sends the password itself (so it needs TLS).
    pub fn sends_password(self) -> bool {
        matches!(self, Self::Plain | Self::Login | Self::UserPass)
    }
}

/// What the caller allows [`choose_login`] to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoginPolicy {
    /// Allow APOP (off by default: it must be asked for).
    pub allow_apop: bool,
    /// Allow logging in over a connection without TLS (off by default): sending the password
    /// (PLAIN, LOGIN, USER/PASS), or an exchange an observer can crack offline (SCRAM,
    /// CRAM-MD5, APOP).
    pub allow_plaintext: bool,
}

/// Why no login method could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginChoiceError {
    /// Every method the server offers would send the password, or an exchange an observer can
    /// crack offline, without TLS.
    #[error(
        "the server offers no way to log in without TLS that does not expose the password (sent in the clear, or crackable offline); use TLS or allow plaintext authentication"
    )]
    WouldExposePassword,
    /// The server offers no method this client knows.
    #[error("the server offers no supported login method")]
    NoSupportedMethod,
}

/// Picks the best method the server offers: SCRAM-SHA-256 > CRAM-MD5 > APOP (only when
/// allowed) > PLAIN > LOGIN > USER/PASS. Without TLS nothing is chosen unless the policy
/// allows plaintext: the methods that keep the password off the wire (SCRAM, CRAM-MD5, APOP)
/// can still be cracked offline by an observer (issue 10 item 9).
///
/// `capabilities` is `None` when the server has no CAPA (RFC 1939 only): then USER/PASS (and
/// APOP when allowed and available) are assumed.
pub fn choose_login(
    capabilities: Option<&Capabilities>,
    apop_available: bool,
    tls: bool,
    policy: LoginPolicy,
) -> Result<LoginMethod, LoginChoiceError> {
    let offered = |m: LoginMethod| match (m, capabilities) {
        (LoginMethod::Apop, _) => apop_available,
        (LoginMethod::UserPass, None) => true,
        (_, None) => false,
        (LoginMethod::ScramSha256, Some(c)) => {
            cfg!(feature = "scram") && c.supports_sasl("SCRAM-SHA-256")
        }
        (LoginMethod::CramMd5, Some(c)) => c.supports_sasl("CRAM-MD5"),
        (LoginMethod::Plain, Some(c)) => c.supports_sasl("PLAIN"),
        (LoginMethod::Login, Some(c)) => c.supports_sasl("LOGIN"),
        // Servers without the USER capability still accept USER/PASS more often than not
        // (RFC 2449 only says the server MAY announce it), so offer it as the last resort.
        (LoginMethod::UserPass, Some(_)) => true,
    };
    // Every method exposes the password to an observer without TLS: sent (PLAIN, LOGIN,
    // USER/PASS) or crackable offline from the recorded exchange (SCRAM, CRAM-MD5, APOP).
    let secure_enough = |m: LoginMethod| {
        (m != LoginMethod::Apop || policy.allow_apop) && (tls || policy.allow_plaintext)
    };
    let order = [
        LoginMethod::ScramSha256,
        LoginMethod::CramMd5,
        LoginMethod::Apop,
        LoginMethod::Plain,
        LoginMethod::Login,
        LoginMethod::UserPass,
    ];
    let mut any_offered = false;
    for m in order {
        if offered(m) && (m != LoginMethod::Apop || policy.allow_apop) {
            any_offered = true;
            if secure_enough(m) {
                return Ok(m);
            }
        }
    }
    if any_offered {
        Err(LoginChoiceError::WouldExposePassword)
    } else {
        Err(LoginChoiceError::NoSupportedMethod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(lines: &[&str]) -> Capabilities {
        let mut c = Capabilities::default();
        for l in lines {
            c.add_line(l.as_bytes()).expect("valid");
        }
        c
    }

    #[test]
    fn prefers_scram_then_cram() {
        let dovecot = caps(&["USER", "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"]);
        let p = LoginPolicy {
            allow_plaintext: true,
            ..LoginPolicy::default()
        };
        let expected = if cfg!(feature = "scram") {
            LoginMethod::ScramSha256
        } else {
            LoginMethod::CramMd5
        };
        assert_eq!(choose_login(Some(&dovecot), true, false, p), Ok(expected));
        let cram = caps(&["USER", "SASL PLAIN CRAM-MD5"]);
        assert_eq!(
            choose_login(Some(&cram), false, false, p),
            Ok(LoginMethod::CramMd5)
        );
    }

    /// Issue 10 item 9: CRAM-MD5 and SCRAM keep the password off the wire, but an observer
    /// can crack a recorded exchange offline: without TLS they too need plaintext allowed.
    #[test]
    fn cram_and_scram_are_not_chosen_without_tls_unless_allowed() {
        let p = LoginPolicy::default();
        for offered in [
            caps(&["SASL CRAM-MD5"]),
            caps(&["SASL SCRAM-SHA-256 CRAM-MD5"]),
            caps(&["USER", "SASL CRAM-MD5 PLAIN"]),
        ] {
            assert_eq!(
                choose_login(Some(&offered), false, false, p),
                Err(LoginChoiceError::WouldExposePassword),
                "{offered:?}"
            );
            assert!(choose_login(Some(&offered), false, true, p).is_ok());
        }
        let cram = caps(&["SASL CRAM-MD5"]);
        assert_eq!(
            choose_login(Some(&cram), false, true, p),
            Ok(LoginMethod::CramMd5)
        );
        let allow = LoginPolicy {
            allow_plaintext: true,
            ..p
        };
        assert_eq!(
            choose_login(Some(&cram), false, false, allow),
            Ok(LoginMethod::CramMd5)
        );
    }

    #[test]
    fn never_sends_a_password_in_the_clear_unless_allowed() {
        let plain = caps(&["USER", "SASL PLAIN LOGIN"]);
        let p = LoginPolicy::default();
        assert_eq!(
            choose_login(Some(&plain), false, false, p),
            Err(LoginChoiceError::WouldExposePassword)
        );
        assert_eq!(
            choose_login(Some(&plain), false, true, p),
            Ok(LoginMethod::Plain)
        );
        let allow = LoginPolicy {
            allow_plaintext: true,
            ..p
        };
        assert_eq!(
            choose_login(Some(&plain), false, false, allow),
            Ok(LoginMethod::Plain)
        );
        assert_eq!(
            choose_login(None, false, true, p),
            Ok(LoginMethod::UserPass)
        );
    }

    #[test]
    fn apop_only_when_asked_and_never_without_tls() {
        let user = caps(&["USER"]);
        let p = LoginPolicy::default();
        assert_eq!(
            choose_login(Some(&user), true, true, p),
            Ok(LoginMethod::UserPass)
        );
        let apop = LoginPolicy {
            allow_apop: true,
            ..p
        };
        assert_eq!(
            choose_login(Some(&user), true, true, apop),
            Ok(LoginMethod::Apop)
        );
        assert_eq!(
            choose_login(Some(&user), true, false, apop),
            Err(LoginChoiceError::WouldExposePassword)
        );
        assert_eq!(
            choose_login(Some(&user), false, true, apop),
            Ok(LoginMethod::UserPass)
        );
    }
}
