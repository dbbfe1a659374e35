//! SASL mechanisms for `AUTH` (RFC 5034).
//!
//! A [`Mechanism`] works on raw (base64-decoded) bytes: the [`Client`](crate::Client) does the
//! base64 coding, the 255-octet initial-response rule, the `=` for an empty initial response and
//! the `*` cancellation. Built in: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, EXTERNAL and
//! (with the default `scram` feature) SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-512, each also
//! bound to the TLS channel (-PLUS, with a [`ChannelBinding`] the adapter passes in).
//! Implement the trait to add your own.

use crate::Secret;

mod channel_binding;
mod cram_md5;
mod external;
mod login;
mod oauthbearer;
mod plain;
#[cfg(feature = "scram")]
mod scram;
mod xoauth2;

pub use channel_binding::{ChannelBinding, ChannelBindingType};
pub use cram_md5::CramMd5;
pub use external::External;
pub use login::Login;
pub use oauthbearer::OAuthBearer;
pub use plain::Plain;
#[cfg(feature = "scram")]
pub use scram::{
    MAX_SCRAM_ITERATIONS, MIN_SCRAM_ITERATIONS, Scram, ScramHash, ScramSha1, ScramSha256,
    ScramSha512, Sha1, Sha256, Sha512,
};
pub use xoauth2::XOAuth2;

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
    /// The caller's input cannot start the exchange (a malformed SCRAM nonce, for instance).
    #[error("invalid SASL input: {0}")]
    InvalidInput(&'static str),
    /// The server refused with an error message inside the exchange (SCRAM `e=`).
    #[error("the server reported a SASL error: {0}")]
    ServerError(String),
    /// The server asked for fewer SCRAM iterations than allowed (RFC 7677 section 4: at least
    /// 4096), which makes a recorded exchange cheaper to crack offline.
    #[error(
        "the server asks for {count} SCRAM iterations, fewer than the {minimum} allowed (RFC 7677 section 4)"
    )]
    IterationCountTooLow {
        /// The count the server asked for.
        count: u32,
        /// The lowest count allowed.
        minimum: u32,
    },
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

    /// Called by the [`Client`](crate::Client) before the exchange starts, with its
    /// configuration (SCRAM takes [`Config::min_scram_iterations`](crate::Config::min_scram_iterations)
    /// from it). The default does nothing.
    fn configure(&mut self, config: &crate::Config) {
        let _ = config;
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

/// Escapes a user name as a SASL `saslname` (RFC 5802 section 5.1, RFC 5801): `=` becomes `=3D`
/// and `,` becomes `=2C`. Used by SCRAM and OAUTHBEARER. No SASLprep is applied.
pub(crate) fn saslname(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// The most bytes of server-supplied error text (OAuth JSON, SCRAM `e=`) a mechanism keeps.
pub(crate) const MAX_ERROR_DETAILS: usize = 4096;

/// Server-supplied error text as lossy UTF-8, capped at [`MAX_ERROR_DETAILS`] bytes (cut on a
/// character boundary).
pub(crate) fn error_text(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(MAX_ERROR_DETAILS)];
    let mut text = String::from_utf8_lossy(head).into_owned();
    if text.len() > MAX_ERROR_DETAILS {
        let mut end = MAX_ERROR_DETAILS;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Mechanism for Box<dyn Mechanism> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn exposes_secret(&self) -> bool {
        (**self).exposes_secret()
    }
    fn configure(&mut self, config: &crate::Config) {
        (**self).configure(config);
    }
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        (**self).initial_response()
    }
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        (**self).step(challenge)
    }
    fn finish(&mut self) -> Result<(), SaslError> {
        (**self).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn saslname_escapes_comma_and_equals() {
        assert_eq!(saslname("plain"), "plain");
        assert_eq!(saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(saslname("=,"), "=3D=2C");
        assert_eq!(saslname("j\u{fc}rgen"), "j\u{fc}rgen");
        assert_eq!(saslname(""), "");
    }

    #[test]
    fn error_text_is_capped_and_lossy() {
        assert_eq!(error_text(b"{\"status\":\"401\"}"), "{\"status\":\"401\"}");
        assert_eq!(error_text(b"a\xffb"), "a\u{fffd}b");
        let long = vec![b'x'; 10_000];
        assert_eq!(error_text(&long).len(), MAX_ERROR_DETAILS);
        // Invalid bytes grow to three-byte replacement characters: still capped.
        let bad = vec![0xff; 10_000];
        let t = error_text(&bad);
        assert!(t.len() <= MAX_ERROR_DETAILS);
        assert!(t.chars().all(|c| c == '\u{fffd}'));
    }

    #[test]
    fn names_and_secret_exposure() {
        let mechs: Vec<Box<dyn Mechanism>> = all_mechanisms();
        let names: Vec<(&str, bool)> = mechs
            .iter()
            .map(|m| (m.name(), m.exposes_secret()))
            .collect();
        let mut expected = vec![
            ("PLAIN", true),
            ("LOGIN", true),
            ("CRAM-MD5", false),
            ("XOAUTH2", true),
            ("OAUTHBEARER", true),
            ("EXTERNAL", false),
        ];
        if cfg!(feature = "scram") {
            expected.extend([
                ("SCRAM-SHA-256", false),
                ("SCRAM-SHA-1", false),
                ("SCRAM-SHA-512", false),
                ("SCRAM-SHA-256-PLUS", false),
            ]);
        }
        assert_eq!(names, expected);
        for m in &mechs {
            assert_eq!(m.name(), m.name().to_ascii_uppercase());
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        for m in all_mechanisms_concrete_debug() {
            assert!(!m.contains("hunter2"), "{m}");
            assert!(!m.contains("tok3n"), "{m}");
        }
    }

    fn all_mechanisms() -> Vec<Box<dyn Mechanism>> {
        #[cfg_attr(not(feature = "scram"), allow(unused_mut))]
        let mut v: Vec<Box<dyn Mechanism>> = vec![
            Box::new(Plain::new(
                Some("admin".into()),
                "user".into(),
                "hunter2".into(),
            )),
            Box::new(Login::new("user".into(), "hunter2".into())),
            Box::new(CramMd5::new("user".into(), "hunter2".into())),
            Box::new(XOAuth2::new("user".into(), "tok3n".into())),
            Box::new(OAuthBearer::new(
                "user".into(),
                Some("pop.example.com".into()),
                Some(995),
                "tok3n".into(),
            )),
            Box::new(External::new(None)),
        ];
        #[cfg(feature = "scram")]
        {
            let (user, nonce) = ("user", "rOprNGfwEbeRWgbNEkqO");
            v.push(Box::new(ScramSha256::new(
                user.into(),
                "hunter2".into(),
                nonce.into(),
            )));
            v.push(Box::new(ScramSha1::new(
                user.into(),
                "hunter2".into(),
                nonce.into(),
            )));
            v.push(Box::new(ScramSha512::new(
                user.into(),
                "hunter2".into(),
                nonce.into(),
            )));
            let binding = ChannelBinding::new(ChannelBindingType::TlsExporter, [5u8; 32]);
            v.push(Box::new(
                ScramSha256::new(user.into(), "hunter2".into(), nonce.into())
                    .channel_binding(binding),
            ));
        }
        v
    }

    /// Debug output of every mechanism, before and during an exchange.
    fn all_mechanisms_concrete_debug() -> Vec<String> {
        let mut out = Vec::new();
        let mut plain = Plain::new(None, "user".into(), "hunter2".into());
        out.push(format!("{plain:?}"));
        let _ = plain.initial_response();
        out.push(format!("{plain:#?}"));
        let mut login = Login::new("user".into(), "hunter2".into());
        let _ = login.step(b"Username:");
        let _ = login.step(b"Password:");
        out.push(format!("{login:?}"));
        let cram = CramMd5::new("user".into(), "hunter2".into());
        out.push(format!("{cram:?}"));
        let mut x = XOAuth2::new("user".into(), "tok3n".into());
        let _ = x.initial_response();
        out.push(format!("{x:?}"));
        let mut o = OAuthBearer::new("user".into(), None, None, "tok3n".into());
        let _ = o.initial_response();
        out.push(format!("{o:?}"));
        #[cfg(feature = "scram")]
        {
            let mut s = ScramSha256::new("user".into(), "hunter2".into(), "abc".into());
            out.push(format!("{s:?}"));
            let _ = s.initial_response();
            let _ = s.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
            out.push(format!("{s:#?}"));
        }
        out
    }

    /// A challenge: arbitrary bytes, or (to get SCRAM past its parser) a plausible server-first
    /// or server-final message.
    fn challenge() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            (
                "[!-+--~]{0,12}",
                "[A-Za-z0-9+/=]{0,16}",
                0u32..20,
                "[ -~]{0,10}"
            )
                .prop_map(|(suffix, salt, i, ext)| {
                    format!("r=rOprNGfwEbeRWgbNEkqO{suffix},s={salt},i={i}{ext}").into_bytes()
                }),
            "[ -~]{0,60}".prop_map(|s| format!("v={s}").into_bytes()),
            "[ -~]{0,60}".prop_map(|s| format!("e={s}").into_bytes()),
            Just(Vec::new()),
        ]
    }

    proptest! {
        #[test]
        fn step_never_panics(
            send_ir in any::<bool>(),
            challenges in proptest::collection::vec(challenge(), 0..5),
        ) {
            for mut m in all_mechanisms() {
                let mut sent = Vec::new();
                if send_ir {
                    if let Ok(Some(r)) = m.initial_response() {
                        sent.push(r);
                    }
                }
                for c in &challenges {
                    if let Ok(r) = m.step(c) {
                        sent.push(r);
                    }
                }
                let finished = m.finish();
                if m.name().starts_with("SCRAM-") {
                    // Success needs the server's proof of the password (RFC 5802 §9): never
                    // from challenges that do not carry the one right signature.
                    prop_assert!(finished.is_err(), "{} finished on {challenges:?}", m.name());
                }
                for r in &sent {
                    // No response holds the password except where the mechanism carries it
                    // by design (PLAIN, LOGIN).
                    if !matches!(m.name(), "PLAIN" | "LOGIN") {
                        let leaked = r.expose().windows(7).any(|w| w == b"hunter2");
                        prop_assert!(!leaked, "{} sent the password", m.name());
                    }
                }
            }
        }
    }
}
