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
    /// AUTH SCRAM-SHA-512-PLUS: SCRAM-SHA-512 bound to the TLS channel (RFC 5802 section 6):
    /// the server also proves it sees the same TLS connection, so a machine in the middle that
    /// terminates TLS with a certificate the client trusts still cannot log in. Only over TLS,
    /// with the connection's channel binding.
    ScramSha512Plus,
    /// AUTH SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802 section 6), as [`Self::ScramSha512Plus`].
    ScramSha256Plus,
    /// AUTH SCRAM-SHA-1-PLUS (RFC 5802), as [`Self::ScramSha512Plus`].
    ScramSha1Plus,
    /// AUTH SCRAM-SHA-512, as [`Self::ScramSha256`] with SHA-512.
    ScramSha512,
    /// AUTH SCRAM-SHA-256: the password never crosses the wire and the server proves it knows it.
    /// An observer can still try passwords offline against a recorded exchange, so it is
    /// chosen without TLS only when plaintext is allowed.
    ScramSha256,
    /// AUTH SCRAM-SHA-1 (RFC 5802), as [`Self::ScramSha256`] with SHA-1.
    ScramSha1,
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
    /// AUTH EXTERNAL (RFC 4422 appendix A): the TLS client certificate is the credential;
    /// no password is used. Never chosen by [`choose_login`]: ask for it by name.
    External,
}

impl LoginMethod {
    /// Whether the method sends the password itself (so it needs TLS).
    pub fn sends_password(self) -> bool {
        matches!(self, Self::Plain | Self::Login | Self::UserPass)
    }

    /// The name: the SASL mechanism name (`SCRAM-SHA-256-PLUS`, `CRAM-MD5`, ...), `APOP`, or
    /// `USER/PASS`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha512Plus => "SCRAM-SHA-512-PLUS",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Self::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::CramMd5 => "CRAM-MD5",
            Self::Apop => "APOP",
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::UserPass => "USER/PASS",
            Self::External => "EXTERNAL",
        }
    }

    /// Whether the method binds the exchange to the TLS channel (a SCRAM -PLUS variant).
    pub fn binds_channel(self) -> bool {
        matches!(
            self,
            Self::ScramSha512Plus | Self::ScramSha256Plus | Self::ScramSha1Plus
        )
    }

    /// For a SCRAM method without channel binding, its -PLUS variant.
    pub fn plus_variant(self) -> Option<Self> {
        match self {
            Self::ScramSha512 => Some(Self::ScramSha512Plus),
            Self::ScramSha256 => Some(Self::ScramSha256Plus),
            Self::ScramSha1 => Some(Self::ScramSha1Plus),
            _ => None,
        }
    }

    /// Whether the method is one of the SCRAM family, with or without channel binding.
    pub fn is_scram(self) -> bool {
        self.binds_channel() || self.plus_variant().is_some()
    }
}

impl std::fmt::Display for LoginMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a SCRAM exchange of a chosen method treats channel binding (RFC 5802 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramBinding {
    /// Bind to the channel (`p=`): the method is a -PLUS variant and the binding is available.
    Bind,
    /// GS2 flag `y`: the client could bind, but the server did not advertise the -PLUS variant.
    ClientOnly,
    /// GS2 flag `n`: no channel binding (no TLS, or its binding is unknown).
    No,
}

/// What channel binding a SCRAM `method` uses, given the server's `capabilities` (`None`:
/// unknown) and whether the connection has a channel binding (`can_bind`).
///
/// The RFC 5802 section 6 downgrade rule: a client that can bind must not run the plain
/// variant against a server that advertises -PLUS (an attacker may have removed -PLUS from
/// what the client saw, or the caller chose the weaker variant): that is
/// [`LoginChoiceError::ChannelBindingDowngrade`]. A -PLUS method without a binding is
/// [`LoginChoiceError::NoChannelBinding`]. Methods outside the SCRAM family are `No`.
pub fn scram_binding(
    method: LoginMethod,
    capabilities: Option<&Capabilities>,
    can_bind: bool,
) -> Result<ScramBinding, LoginChoiceError> {
    if method.binds_channel() {
        return if can_bind {
            Ok(ScramBinding::Bind)
        } else {
            Err(LoginChoiceError::NoChannelBinding(method))
        };
    }
    let Some(plus) = method.plus_variant() else {
        return Ok(ScramBinding::No);
    };
    if !can_bind {
        return Ok(ScramBinding::No);
    }
    if capabilities.is_some_and(|c| c.supports_sasl(plus.name())) {
        return Err(LoginChoiceError::ChannelBindingDowngrade(method));
    }
    Ok(ScramBinding::ClientOnly)
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
    /// A SCRAM method without channel binding was asked for, although the connection can bind
    /// and the server advertises the -PLUS variant (the RFC 5802 section 6 downgrade rule).
    #[error(
        "refusing {0} without channel binding: the server offers its -PLUS variant and this TLS connection can bind (use the -PLUS variant)"
    )]
    ChannelBindingDowngrade(LoginMethod),
    /// A -PLUS method was asked for, but the connection has no channel binding (no TLS, or a
    /// TLS session whose binding is unknown).
    #[error("{0} needs a TLS connection with a channel binding, and this one has none")]
    NoChannelBinding(LoginMethod),
}

/// Picks the best method the server offers, for a connection without channel binding:
/// [`choose_login_bound`] with `can_bind` false.
pub fn choose_login(
    capabilities: Option<&Capabilities>,
    apop_available: bool,
    tls: bool,
    policy: LoginPolicy,
) -> Result<LoginMethod, LoginChoiceError> {
    choose_login_bound(capabilities, apop_available, tls, false, policy)
}

/// Picks the best method the server offers: the SCRAM -PLUS variants first when the TLS
/// connection has a channel binding (`can_bind`; SHA-512 > SHA-256 > SHA-1), then
/// SCRAM-SHA-512 > SCRAM-SHA-256 > SCRAM-SHA-1 > CRAM-MD5 > APOP (only when allowed) > PLAIN >
/// LOGIN > USER/PASS. EXTERNAL is never chosen: ask for it by name. Without TLS nothing is
/// chosen unless the policy allows plaintext: the methods that keep the password off the wire
/// (SCRAM, CRAM-MD5, APOP) can still be cracked offline by an observer (issue 10 item 9).
///
/// `capabilities` is `None` when the server has no CAPA (RFC 1939 only): then USER/PASS (and
/// APOP when allowed and available) are assumed.
pub fn choose_login_bound(
    capabilities: Option<&Capabilities>,
    apop_available: bool,
    tls: bool,
    can_bind: bool,
    policy: LoginPolicy,
) -> Result<LoginMethod, LoginChoiceError> {
    let offered = |m: LoginMethod| match (m, capabilities) {
        (LoginMethod::Apop, _) => apop_available,
        (LoginMethod::UserPass, None) => true,
        (_, None) => false,
        (LoginMethod::External, _) => false,
        (m, Some(c)) if m.binds_channel() => {
            cfg!(feature = "scram") && tls && can_bind && c.supports_sasl(m.name())
        }
        (m, Some(c)) if m.is_scram() => cfg!(feature = "scram") && c.supports_sasl(m.name()),
        // Servers without the USER capability still accept USER/PASS more often than not
        // (RFC 2449 only says the server MAY announce it), so offer it as the last resort.
        (LoginMethod::UserPass, Some(_)) => true,
        (m, Some(c)) => c.supports_sasl(m.name()),
    };
    // Every method exposes the password to an observer without TLS: sent (PLAIN, LOGIN,
    // USER/PASS) or crackable offline from the recorded exchange (SCRAM, CRAM-MD5, APOP).
    let secure_enough = |m: LoginMethod| {
        (m != LoginMethod::Apop || policy.allow_apop) && (tls || policy.allow_plaintext)
    };
    let order = [
        LoginMethod::ScramSha512Plus,
        LoginMethod::ScramSha256Plus,
        LoginMethod::ScramSha1Plus,
        LoginMethod::ScramSha512,
        LoginMethod::ScramSha256,
        LoginMethod::ScramSha1,
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

    /// Issue 12: -PLUS first when the connection can bind, then SCRAM-SHA-512/256/1.
    #[test]
    fn plus_first_then_the_strongest_scram() {
        if !cfg!(feature = "scram") {
            return;
        }
        let p = LoginPolicy::default();
        let all = caps(&[
            "USER",
            "SASL PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-512 SCRAM-SHA-512-PLUS CRAM-MD5 EXTERNAL",
        ]);
        let choose =
            |c: &Capabilities, can_bind| choose_login_bound(Some(c), false, true, can_bind, p);
        assert_eq!(choose(&all, true), Ok(LoginMethod::ScramSha512Plus));
        assert_eq!(choose(&all, false), Ok(LoginMethod::ScramSha512));
        let mid = caps(&["SASL SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]);
        assert_eq!(choose(&mid, true), Ok(LoginMethod::ScramSha256Plus));
        assert_eq!(choose(&mid, false), Ok(LoginMethod::ScramSha256));
        // Any -PLUS beats a stronger hash without binding.
        let sha1_plus = caps(&["SASL SCRAM-SHA-512 SCRAM-SHA-1-PLUS"]);
        assert_eq!(choose(&sha1_plus, true), Ok(LoginMethod::ScramSha1Plus));
        assert_eq!(choose(&sha1_plus, false), Ok(LoginMethod::ScramSha512));
        let sha1 = caps(&["SASL PLAIN CRAM-MD5 SCRAM-SHA-1"]);
        assert_eq!(choose(&sha1, true), Ok(LoginMethod::ScramSha1));
        // EXTERNAL is never chosen by itself.
        let external = caps(&["SASL EXTERNAL PLAIN"]);
        assert_eq!(choose(&external, true), Ok(LoginMethod::Plain));
        // -PLUS needs TLS, whatever `can_bind` says.
        let allow = LoginPolicy {
            allow_plaintext: true,
            ..p
        };
        assert_eq!(
            choose_login_bound(Some(&all), false, false, true, allow),
            Ok(LoginMethod::ScramSha512)
        );
    }

    #[test]
    fn scram_binding_flags_and_the_downgrade_rule() {
        let plus = caps(&["SASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]);
        let plain = caps(&["SASL SCRAM-SHA-256 SCRAM-SHA-1-PLUS"]);
        use LoginMethod::*;
        assert_eq!(
            scram_binding(ScramSha256Plus, Some(&plus), true),
            Ok(ScramBinding::Bind)
        );
        assert_eq!(
            scram_binding(ScramSha256Plus, Some(&plus), false),
            Err(LoginChoiceError::NoChannelBinding(ScramSha256Plus))
        );
        assert_eq!(
            scram_binding(ScramSha256, Some(&plus), true),
            Err(LoginChoiceError::ChannelBindingDowngrade(ScramSha256))
        );
        assert_eq!(
            scram_binding(ScramSha256, Some(&plus), false),
            Ok(ScramBinding::No)
        );
        assert_eq!(
            scram_binding(ScramSha256, Some(&plain), true),
            Ok(ScramBinding::ClientOnly)
        );
        assert_eq!(
            scram_binding(ScramSha256, None, true),
            Ok(ScramBinding::ClientOnly)
        );
        assert_eq!(
            scram_binding(Plain, Some(&plus), true),
            Ok(ScramBinding::No)
        );
        assert_eq!(ScramSha512Plus.name(), "SCRAM-SHA-512-PLUS");
        assert_eq!(ScramSha1.plus_variant(), Some(ScramSha1Plus));
        assert!(!External.is_scram() && ScramSha1Plus.is_scram());
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
