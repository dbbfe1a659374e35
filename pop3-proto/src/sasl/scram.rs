//! SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), with or without channel
//! binding (the -PLUS variants): one implementation, generic over the hash.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Digest;

use super::{ChannelBinding, Mechanism, SaslError, error_text, saslname};
use crate::Secret;

/// The highest PBKDF2 iteration count a SCRAM mechanism accepts from a server.
///
/// The server chooses the count, and the client has to spend that many HMAC computations before
/// it can answer: the cap bounds the CPU time a hostile server can make the client burn.
/// Real servers use 4096 (the RFC 7677 minimum recommendation) up to a few hundred thousand.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// The lowest PBKDF2 iteration count a SCRAM mechanism accepts by default: RFC 7677 section 4
/// says 4096 at least (RFC 5802 section 5.1 too). A lower count makes the exchange an observer
/// recorded cheaper to crack offline. Lower it with
/// [`Config::min_scram_iterations`](crate::Config::min_scram_iterations) or
/// [`Scram::min_iterations`].
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;

mod sealed {
    pub trait Sealed {}
}

/// The hash a [`Scram`] mechanism uses: [`Sha1`], [`Sha256`] or [`Sha512`]. Sealed: these are
/// the SCRAM hashes registered for SASL that this crate implements.
pub trait ScramHash: sealed::Sealed + fmt::Debug + Clone + Send + Sync + 'static {
    /// The mechanism name without channel binding, for example `SCRAM-SHA-256`.
    const NAME: &'static str;
    /// The mechanism name with channel binding, for example `SCRAM-SHA-256-PLUS`.
    const PLUS_NAME: &'static str;
    #[doc(hidden)]
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8>;
    #[doc(hidden)]
    fn hash(data: &[u8]) -> Vec<u8>;
    #[doc(hidden)]
    fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8>;
    #[doc(hidden)]
    fn verify_hmac(key: &[u8], data: &[u8], expected: &[u8]) -> bool;
}

macro_rules! scram_hash {
    ($(#[$doc:meta])* $marker:ident, $digest:ty, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $marker;

        impl sealed::Sealed for $marker {}

        impl ScramHash for $marker {
            const NAME: &'static str = $name;
            const PLUS_NAME: &'static str = concat!($name, "-PLUS");

            fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
                let mut mac =
                    Hmac::<$digest>::new_from_slice(key).expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }

            fn hash(data: &[u8]) -> Vec<u8> {
                <$digest>::digest(data).to_vec()
            }

            fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
                let mut out = vec![0u8; <$digest as Digest>::output_size()];
                pbkdf2::pbkdf2_hmac::<$digest>(password, salt, iterations, &mut out);
                out
            }

            fn verify_hmac(key: &[u8], data: &[u8], expected: &[u8]) -> bool {
                let mut mac =
                    Hmac::<$digest>::new_from_slice(key).expect("HMAC accepts keys of any length");
                mac.update(data);
                // Constant-time comparison.
                mac.verify_slice(expected).is_ok()
            }
        }
    };
}

scram_hash!(
    /// SHA-1, for SCRAM-SHA-1 (RFC 5802). Still served (Dovecot, older servers); prefer SHA-256.
    Sha1,
    sha1::Sha1,
    "SCRAM-SHA-1"
);
scram_hash!(
    /// SHA-256, for SCRAM-SHA-256 (RFC 7677).
    Sha256,
    sha2::Sha256,
    "SCRAM-SHA-256"
);
scram_hash!(
    /// SHA-512, for SCRAM-SHA-512 (draft-melnikov-scram-sha-512, registered with IANA).
    Sha512,
    sha2::Sha512,
    "SCRAM-SHA-512"
);

/// SCRAM-SHA-1 (RFC 5802); `SCRAM-SHA-1-PLUS` with [`Scram::channel_binding`].
pub type ScramSha1 = Scram<Sha1>;
/// SCRAM-SHA-256 (RFC 7677); `SCRAM-SHA-256-PLUS` with [`Scram::channel_binding`].
pub type ScramSha256 = Scram<Sha256>;
/// SCRAM-SHA-512; `SCRAM-SHA-512-PLUS` with [`Scram::channel_binding`].
pub type ScramSha512 = Scram<Sha512>;

/// The GS2 channel-binding flag (RFC 5802 section 7, `gs2-cbind-flag`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gs2 {
    /// `n`: the client does not support channel binding (no TLS, or no binding available).
    NotSupported,
    /// `y`: the client supports channel binding but thinks the server does not (it did not
    /// advertise the -PLUS variant). A server that does support it then fails the exchange:
    /// that is how a downgrade (a stripped -PLUS) is caught.
    ServerLacksIt,
    /// `p=TYPE`: bound to this channel (the -PLUS mechanism).
    Bound(ChannelBinding),
}

/// A SCRAM mechanism (RFC 5802) over the hash `H`: [`ScramSha1`], [`ScramSha256`] or
/// [`ScramSha512`], and their -PLUS variants with [`channel_binding`](Self::channel_binding).
///
/// Both sides prove they know the password without sending it: the server's proof (its
/// signature in the server-final message) is verified, and [`Mechanism::finish`] fails with
/// [`SaslError::IncompleteExchange`] if the server claimed success before proving itself.
///
/// The GS2 header says what the client knows about channel binding (RFC 5802 section 6):
/// `n,,` by default (no binding: no TLS, or no binding data); `y,,` after
/// [`binding_supported`](Self::binding_supported) (the client could bind, but the server did not
/// advertise -PLUS); `p=TYPE,,` after [`channel_binding`](Self::channel_binding) (the -PLUS
/// mechanism, bound to the TLS connection whose binding data it carries).
///
/// The user name is escaped as a `saslname` (`,` → `=2C`, `=` → `=3D`); otherwise the user name
/// and password are used as given (their UTF-8 bytes): no SASLprep normalization is applied, so
/// a password that SASLprep would change (non-ASCII spaces, compatibility characters, …) may
/// not match what the server stored. ASCII credentials are unaffected.
///
/// The client nonce comes from the caller (this crate has no randomness): use at least 18
/// random bytes from a cryptographic generator, base64- or hex-encoded, and never reuse it.
#[derive(Clone)]
pub struct Scram<H: ScramHash> {
    user: String,
    password: Secret,
    client_nonce: String,
    gs2: Gs2,
    /// Set by [`Scram::min_iterations`]; otherwise the client's configuration decides.
    min_iterations: Option<u32>,
    /// From [`Mechanism::configure`]: the configuration's minimum.
    configured_min: u32,
    state: State,
    hash: PhantomData<H>,
}

impl<H: ScramHash> fmt::Debug for Scram<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.mechanism_name())
            .field("user", &self.user)
            .field("password", &self.password)
            .field("client_nonce", &self.client_nonce)
            .field("gs2", &self.gs2)
            .field("min_iterations", &self.min_iterations)
            .field("configured_min", &self.configured_min)
            .field("state", &self.state)
            .finish()
    }
}

#[derive(Debug, Clone)]
enum State {
    /// Nothing sent yet.
    Initial,
    /// The client-first message is out; waiting for the server-first message.
    ClientFirstSent { client_first_bare: String },
    /// The client-final message is out; waiting for the server signature.
    ClientFinalSent {
        server_key: Secret,
        auth_message: String,
    },
    /// The server signature verified.
    Verified,
    /// The exchange failed; no further challenge is accepted.
    Failed,
}

impl<H: ScramHash> Scram<H> {
    /// A SCRAM exchange for `user` with `password`, using `client_nonce` as the client part of
    /// the nonce, without channel binding (GS2 header `n,,`).
    ///
    /// The nonce must be non-empty printable ASCII (`!`..=`~`) without a comma (RFC 5802);
    /// random base64 or hex is. Otherwise the exchange does not start:
    /// [`initial_response`](Mechanism::initial_response) returns [`SaslError::InvalidInput`].
    pub fn new(user: String, password: Secret, client_nonce: String) -> Self {
        Self {
            user,
            password,
            client_nonce,
            gs2: Gs2::NotSupported,
            min_iterations: None,
            configured_min: MIN_SCRAM_ITERATIONS,
            state: State::Initial,
            hash: PhantomData,
        }
    }

    /// Binds the exchange to the TLS channel: the mechanism becomes the -PLUS variant
    /// (`SCRAM-SHA-256-PLUS`, ...), its GS2 header `p=TYPE,,`, and the server proves that it
    /// sees the same TLS channel (no one in the middle terminated it). Use the binding of
    /// the connection the exchange runs on (`pop3_tls::channel_binding`).
    #[must_use]
    pub fn channel_binding(mut self, binding: ChannelBinding) -> Self {
        self.gs2 = Gs2::Bound(binding);
        self
    }

    /// Says, with the GS2 flag `y`, that the client supports channel binding but the server
    /// did not advertise the -PLUS variant (RFC 5802 section 6). Use it when the connection has
    /// a channel binding and the server's capabilities lack -PLUS: a server that does support
    /// -PLUS then fails the exchange, catching an attacker who removed it from the list.
    #[must_use]
    pub fn binding_supported(mut self) -> Self {
        if !matches!(self.gs2, Gs2::Bound(_)) {
            self.gs2 = Gs2::ServerLacksIt;
        }
        self
    }

    /// Accepts iteration counts from `minimum` up (the default is
    /// [`Config::min_scram_iterations`](crate::Config::min_scram_iterations), itself
    /// [`MIN_SCRAM_ITERATIONS`] by default). Set on the mechanism, it wins over the
    /// configuration.
    #[must_use]
    pub fn min_iterations(mut self, minimum: u32) -> Self {
        self.min_iterations = Some(minimum);
        self
    }

    /// Whether the server has proven that it knows the password (its signature verified).
    pub fn server_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    /// Whether the exchange is bound to the TLS channel (the -PLUS variant).
    pub fn is_bound(&self) -> bool {
        matches!(self.gs2, Gs2::Bound(_))
    }

    fn mechanism_name(&self) -> &'static str {
        if self.is_bound() {
            H::PLUS_NAME
        } else {
            H::NAME
        }
    }

    /// The GS2 header (`gs2-header`, RFC 5802 section 7): the flag, and no authzid.
    fn gs2_header(&self) -> String {
        match &self.gs2 {
            Gs2::NotSupported => "n,,".to_owned(),
            Gs2::ServerLacksIt => "y,,".to_owned(),
            Gs2::Bound(binding) => format!("p={},,", binding.kind().name()),
        }
    }

    /// The `c=` attribute: base64 of the GS2 header and, when bound, the binding data.
    fn channel_binding_attribute(&self) -> String {
        let mut input = self.gs2_header().into_bytes();
        if let Gs2::Bound(binding) = &self.gs2 {
            input.extend_from_slice(binding.data());
        }
        BASE64.encode(input)
    }

    fn client_first(&mut self) -> Secret {
        let client_first_bare = format!("n={},r={}", saslname(&self.user), self.client_nonce);
        let message = format!("{}{client_first_bare}", self.gs2_header());
        self.state = State::ClientFirstSent { client_first_bare };
        Secret::from(message)
    }

    fn client_final(
        &self,
        client_first_bare: &str,
        server_first: &[u8],
    ) -> Result<(Secret, State), SaslError> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| {
            SaslError::MalformedChallenge("SCRAM server-first message is not UTF-8")
        })?;
        let first = parse_server_first(server_first, &self.client_nonce)?;
        let minimum = self.min_iterations.unwrap_or(self.configured_min);
        if first.iterations < minimum {
            return Err(SaslError::IterationCountTooLow {
                count: first.iterations,
                minimum,
            });
        }

        let salted_password =
            H::salted_password(self.password.expose(), &first.salt, first.iterations);
        let client_key = H::hmac(&salted_password, b"Client Key");
        let stored_key = H::hash(&client_key);
        let client_final_without_proof =
            format!("c={},r={}", self.channel_binding_attribute(), first.nonce);
        let auth_message =
            format!("{client_first_bare},{server_first},{client_final_without_proof}");
        let client_signature = H::hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = Secret::new(H::hmac(&salted_password, b"Server Key"));
        let message = format!("{client_final_without_proof},p={}", BASE64.encode(proof));
        Ok((
            Secret::from(message),
            State::ClientFinalSent {
                server_key,
                auth_message,
            },
        ))
    }
}

fn is_nonce_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// The parts of a server-first message the client uses.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first<'a>(msg: &'a str, client_nonce: &str) -> Result<ServerFirst<'a>, SaslError> {
    if let Some(e) = msg.strip_prefix("e=") {
        return Err(SaslError::ServerError(error_text(e.as_bytes())));
    }
    let mut attrs = msg.split(',');
    let first = attrs.next().unwrap_or("");
    if first.starts_with("m=") {
        return Err(SaslError::MalformedChallenge(
            "SCRAM server requires an unsupported mandatory extension",
        ));
    }
    let nonce = first
        .strip_prefix("r=")
        .ok_or(SaslError::MalformedChallenge(
            "SCRAM server-first lacks the nonce",
        ))?;
    if !nonce.starts_with(client_nonce)
        || nonce.len() <= client_nonce.len()
        || !nonce.bytes().all(is_nonce_char)
    {
        return Err(SaslError::MalformedChallenge(
            "SCRAM server nonce does not extend the client nonce",
        ));
    }
    let salt =
        attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .ok_or(SaslError::MalformedChallenge(
                "SCRAM server-first lacks the salt",
            ))?;
    let salt = BASE64
        .decode(salt)
        .map_err(|_| SaslError::MalformedChallenge("SCRAM salt is not valid base64"))?;
    if salt.is_empty() {
        return Err(SaslError::MalformedChallenge("SCRAM salt is empty"));
    }
    let iterations =
        attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .ok_or(SaslError::MalformedChallenge(
                "SCRAM server-first lacks the iteration count",
            ))?;
    let iterations = if !iterations.is_empty()
        && iterations.len() <= 10
        && iterations.bytes().all(|b| b.is_ascii_digit())
    {
        iterations.parse::<u32>().ok()
    } else {
        None
    }
    .filter(|i| (1..=MAX_SCRAM_ITERATIONS).contains(i))
    .ok_or(SaslError::MalformedChallenge(
        "SCRAM iteration count is not a number from 1 to MAX_SCRAM_ITERATIONS",
    ))?;
    // Further attributes are optional extensions: ignored.
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

fn verify_server_final<H: ScramHash>(
    server_final: &[u8],
    server_key: &Secret,
    auth_message: &str,
) -> Result<(), SaslError> {
    if let Some(e) = server_final.strip_prefix(b"e=") {
        let end = e.iter().position(|&b| b == b',').unwrap_or(e.len());
        return Err(SaslError::ServerError(error_text(&e[..end])));
    }
    let rest = server_final
        .strip_prefix(b"v=")
        .ok_or(SaslError::MalformedChallenge(
            "SCRAM server-final lacks the server signature",
        ))?;
    let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
    let signature = BASE64
        .decode(&rest[..end])
        .map_err(|_| SaslError::MalformedChallenge("SCRAM server signature is not valid base64"))?;
    if H::verify_hmac(server_key.expose(), auth_message.as_bytes(), &signature) {
        Ok(())
    } else {
        Err(SaslError::ServerSignatureMismatch)
    }
}

impl<H: ScramHash> Mechanism for Scram<H> {
    /// `SCRAM-SHA-…`, with `-PLUS` when bound to the channel.
    fn name(&self) -> &str {
        self.mechanism_name()
    }

    fn exposes_secret(&self) -> bool {
        false
    }

    fn configure(&mut self, config: &crate::Config) {
        self.configured_min = config.min_scram_iterations;
    }

    /// The client-first message `GS2-HEADER n=USER,r=NONCE` (`n,,n=USER,r=NONCE` without
    /// binding). Calling it again starts the exchange over (with the same nonce).
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        if self.client_nonce.is_empty() || !self.client_nonce.bytes().all(is_nonce_char) {
            return Err(SaslError::InvalidInput(
                "the SCRAM client nonce must be non-empty printable ASCII without a comma",
            ));
        }
        if matches!(&self.gs2, Gs2::Bound(binding) if binding.data().is_empty()) {
            return Err(SaslError::InvalidInput("the channel binding data is empty"));
        }
        Ok(Some(self.client_first()))
    }

    /// Answers the server-first message with the client-final message, then verifies the
    /// server-final message (`v=...`) and answers it with an empty response. An `e=` message
    /// is [`SaslError::ServerError`]. After an error, or after the verification, every
    /// challenge is [`SaslError::UnexpectedChallenge`].
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Initial if challenge.is_empty() => self
                .initial_response()
                .map(|first| first.unwrap_or_default()),
            State::Initial => {
                self.state = State::Initial;
                Err(SaslError::UnexpectedChallenge)
            }
            State::ClientFirstSent { client_first_bare } => {
                let (message, state) = self.client_final(&client_first_bare, challenge)?;
                self.state = state;
                Ok(message)
            }
            State::ClientFinalSent {
                server_key,
                auth_message,
            } => {
                verify_server_final::<H>(challenge, &server_key, &auth_message)?;
                self.state = State::Verified;
                Ok(Secret::default())
            }
            State::Verified => {
                self.state = State::Verified;
                Err(SaslError::UnexpectedChallenge)
            }
            State::Failed => Err(SaslError::UnexpectedChallenge),
        }
    }

    fn finish(&mut self) -> Result<(), SaslError> {
        if self.server_verified() {
            Ok(())
        } else {
            Err(SaslError::IncompleteExchange)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc() -> ScramSha256 {
        ScramSha256::new("user".into(), "pencil".into(), NONCE.into())
    }

    fn after_server_first() -> ScramSha256 {
        let mut m = rfc();
        m.initial_response().unwrap();
        assert_eq!(m.step(SERVER_FIRST).unwrap().expose(), CLIENT_FINAL);
        m
    }

    #[test]
    fn rfc7677_example() {
        let mut m = rfc();
        assert_eq!(m.name(), "SCRAM-SHA-256");
        assert!(!m.exposes_secret());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(m.step(SERVER_FIRST).unwrap().expose(), CLIENT_FINAL);
        assert!(!m.server_verified());
        assert!(m.step(SERVER_FINAL).unwrap().is_empty());
        assert!(m.server_verified());
        assert_eq!(m.finish(), Ok(()));
        assert_eq!(m.step(SERVER_FINAL), Err(SaslError::UnexpectedChallenge));
    }

    /// RFC 5802 section 5: the SCRAM-SHA-1 example exchange.
    #[test]
    fn rfc5802_sha1_example() {
        let mut m = ScramSha1::new(
            "user".into(),
            "pencil".into(),
            "fyko+d2lbbFgONRv9qkxdawL".into(),
        );
        assert_eq!(m.name(), "SCRAM-SHA-1");
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let server_first =
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        assert_eq!(
            m.step(server_first).unwrap().expose(),
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(
            m.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
                .unwrap()
                .is_empty()
        );
        assert_eq!(m.finish(), Ok(()));
    }

    /// SCRAM-SHA-512 with the inputs of the RFC 7677 section 3 example (user `user`, password
    /// `pencil`, its nonces, salt and 4096 iterations). No RFC publishes a SHA-512 exchange
    /// (draft-melnikov-scram-sha-512 only defines the mechanism), so the expected client
    /// proof and server signature are the published test vector of MailKit
    /// (github.com/jstedfast/MailKit, UnitTests/Security/SaslMechanismScramSha512Tests.cs,
    /// `TestScramSha512`), which we also recomputed independently with Python's `hashlib`
    /// and `hmac` (PBKDF2-HMAC-SHA-512, RFC 5802 section 3) before writing them here.
    #[test]
    fn sha512_published_vector() {
        let mut m = ScramSha512::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(m.name(), "SCRAM-SHA-512");
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            m.step(SERVER_FIRST).unwrap().expose(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
        );
        assert!(!m.server_verified());
        // The SHA-256 example's server signature is refused (wrong length, wrong hash)...
        let mut wrong = ScramSha512::new("user".into(), "pencil".into(), NONCE.into());
        wrong.initial_response().unwrap();
        wrong.step(SERVER_FIRST).unwrap();
        assert!(wrong.step(SERVER_FINAL).is_err());
        assert!(!wrong.server_verified());
        // ...and the SHA-512 one verifies.
        assert!(
            m.step(
                b"v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw=="
            )
            .unwrap()
            .is_empty()
        );
        assert!(m.server_verified());
        assert_eq!(m.finish(), Ok(()));
    }

    /// A reference server side, written from RFC 5802 section 3 with the hash crates directly
    /// (not through [`ScramHash`], and with `SimpleHmac`, not `Hmac`): checks the client's proof and channel binding, and returns
    /// the server-final message.
    fn reference_server<D>(
        password: &[u8],
        client_first: &[u8],
        nonce_suffix: &str,
        expected_cbind: &[u8],
        client_final: &[u8],
    ) -> Result<String, &'static str>
    where
        D: Digest + hmac::digest::core_api::BlockSizeUser + Clone,
    {
        let hmac = |key: &[u8], data: &[u8]| {
            let mut mac =
                <hmac::SimpleHmac<D> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        };
        let salt = b"reference salt";
        let iterations = 4096u32;
        // PBKDF2 with one block (RFC 8018 section 5.2): U1 = HMAC(P, S || INT(1)), Ui = HMAC(P, Ui-1).
        let mut u = hmac(password, &[&salt[..], &[0, 0, 0, 1]].concat());
        let mut salted = u.clone();
        for _ in 1..iterations {
            u = hmac(password, &u);
            for (s, x) in salted.iter_mut().zip(&u) {
                *s ^= x;
            }
        }
        let first = std::str::from_utf8(client_first).unwrap();
        let gs2_len = first.find("n=").ok_or("no user")?;
        let (gs2, bare) = first.split_at(gs2_len);
        let client_nonce = bare.split(",r=").nth(1).ok_or("no nonce")?;
        let server_first = format!(
            "r={client_nonce}{nonce_suffix},s={},i={iterations}",
            BASE64.encode(salt)
        );
        let fin = std::str::from_utf8(client_final).unwrap();
        let (without_proof, proof) = fin.rsplit_once(",p=").ok_or("no proof")?;
        let cbind = without_proof
            .strip_prefix("c=")
            .and_then(|c| c.split(',').next())
            .ok_or("no c=")?;
        let mut expected = gs2.as_bytes().to_vec();
        expected.extend_from_slice(expected_cbind);
        if BASE64.decode(cbind).map_err(|_| "c= not base64")? != expected {
            return Err("channel binding mismatch");
        }
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = D::digest(&client_key).to_vec();
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof = BASE64.decode(proof).map_err(|_| "proof not base64")?;
        let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if D::digest(&recovered).to_vec() != stored_key {
            return Err("wrong proof");
        }
        let server_key = hmac(&salted, b"Server Key");
        Ok(format!(
            "v={}",
            BASE64.encode(hmac(&server_key, auth_message.as_bytes()))
        ))
    }

    /// Runs `m` against [`reference_server`]: the client's messages, then its verdict on the
    /// server's signature.
    fn against_reference<H: ScramHash, D>(
        mut m: Scram<H>,
        password: &[u8],
        expected_cbind: &[u8],
    ) -> Result<(), &'static str>
    where
        D: Digest + hmac::digest::core_api::BlockSizeUser + Clone,
    {
        let first = m.initial_response().unwrap().unwrap();
        let nonce = std::str::from_utf8(first.expose()).unwrap();
        let client_nonce = nonce.rsplit_once(",r=").unwrap().1;
        let salt = BASE64.encode(b"reference salt");
        let server_first = format!("r={client_nonce}srv,s={salt},i=4096");
        let fin = m.step(server_first.as_bytes()).unwrap();
        let server_final = reference_server::<D>(
            password,
            first.expose(),
            "srv",
            expected_cbind,
            fin.expose(),
        )?;
        m.step(server_final.as_bytes())
            .map_err(|_| "client refused the signature")?;
        m.finish().map_err(|_| "not verified")
    }

    #[test]
    fn sha512_against_the_reference_server() {
        let m = ScramSha512::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(m.name(), "SCRAM-SHA-512");
        assert_eq!(
            against_reference::<Sha512, sha2::Sha512>(m, b"pencil", b""),
            Ok(())
        );
        // The reference server is not a rubber stamp: a wrong password fails.
        let m = ScramSha512::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(
            against_reference::<Sha512, sha2::Sha512>(m, b"crayon", b""),
            Err("wrong proof")
        );
        // Nor does it matter which hash: SHA-256 and SHA-1 through the same server.
        let m = ScramSha256::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(
            against_reference::<Sha256, sha2::Sha256>(m, b"pencil", b""),
            Ok(())
        );
        let m = ScramSha1::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(
            against_reference::<Sha1, sha1::Sha1>(m, b"pencil", b""),
            Ok(())
        );
    }

    #[test]
    fn plus_variants_bind_the_channel() {
        use crate::sasl::{ChannelBinding, ChannelBindingType};
        let exporter = ChannelBinding::new(ChannelBindingType::TlsExporter, [7u8; 32]);
        let end_point = ChannelBinding::new(ChannelBindingType::TlsServerEndPoint, [9u8; 48]);

        let mut m = ScramSha256::new("user".into(), "pencil".into(), NONCE.into())
            .channel_binding(exporter.clone());
        assert_eq!(m.name(), "SCRAM-SHA-256-PLUS");
        assert!(m.is_bound());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose(),
            b"p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );

        let bound =
            |m: ScramSha512, cb: &[u8]| against_reference::<Sha512, sha2::Sha512>(m, b"pencil", cb);
        let new512 = || ScramSha512::new("user".into(), "pencil".into(), NONCE.into());
        assert_eq!(
            new512().channel_binding(exporter.clone()).name(),
            "SCRAM-SHA-512-PLUS"
        );
        assert_eq!(
            bound(new512().channel_binding(exporter.clone()), &[7u8; 32]),
            Ok(())
        );
        assert_eq!(
            bound(new512().channel_binding(end_point.clone()), &[9u8; 48]),
            Ok(())
        );
        // A server that sees another channel (someone in the middle) refuses.
        assert_eq!(
            bound(new512().channel_binding(end_point), &[8u8; 48]),
            Err("channel binding mismatch")
        );
        let m = ScramSha1::new("user".into(), "pencil".into(), NONCE.into())
            .channel_binding(exporter.clone());
        assert_eq!(m.name(), "SCRAM-SHA-1-PLUS");
        assert_eq!(
            against_reference::<Sha1, sha1::Sha1>(m, b"pencil", &[7u8; 32]),
            Ok(())
        );
        let m = ScramSha256::new("user".into(), "pencil".into(), NONCE.into())
            .channel_binding(exporter);
        assert_eq!(
            against_reference::<Sha256, sha2::Sha256>(m, b"pencil", &[7u8; 32]),
            Ok(())
        );
    }

    /// RFC 5802 section 6: `y` when the client could bind but the server did not offer -PLUS;
    /// the `c=` attribute then carries `y,,` (base64 `eSws`).
    #[test]
    fn y_flag_when_binding_is_supported_but_not_used() {
        let mut m = rfc().binding_supported();
        assert_eq!(m.name(), "SCRAM-SHA-256");
        assert!(!m.is_bound());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"y,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = m.step(SERVER_FIRST).unwrap();
        assert!(fin.expose().starts_with(b"c=eSws,r="));
        let m = ScramSha1::new("user".into(), "pencil".into(), NONCE.into()).binding_supported();
        assert_eq!(
            against_reference::<Sha1, sha1::Sha1>(m, b"pencil", b""),
            Ok(())
        );
        // Binding wins over `y`.
        use crate::sasl::{ChannelBinding, ChannelBindingType};
        let cb = ChannelBinding::new(ChannelBindingType::TlsExporter, [1u8; 32]);
        assert!(
            rfc()
                .channel_binding(cb.clone())
                .binding_supported()
                .is_bound()
        );
        assert!(rfc().binding_supported().channel_binding(cb).is_bound());
        // Empty binding data cannot start a -PLUS exchange.
        let empty = ChannelBinding::new(ChannelBindingType::TlsExporter, Vec::new());
        assert!(matches!(
            rfc().channel_binding(empty).initial_response(),
            Err(SaslError::InvalidInput(_))
        ));
    }

    #[test]
    fn server_final_extensions_are_ignored() {
        let mut m = after_server_first();
        let mut f = SERVER_FINAL.to_vec();
        f.extend_from_slice(b",x=ext");
        assert!(m.step(&f).unwrap().is_empty());
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn server_first_extensions_are_ignored() {
        let mut m = rfc();
        m.initial_response().unwrap();
        let mut f = SERVER_FIRST.to_vec();
        f.extend_from_slice(b",x=whatever");
        let r = m.step(&f).unwrap();
        assert!(
            r.expose()
                .starts_with(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDp")
        );
        // The AuthMessage differs from the RFC's, so the proof does too.
        assert_ne!(r.expose(), CLIENT_FINAL);
    }

    #[test]
    fn wrong_server_signature() {
        let mut m = after_server_first();
        let bad = b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(m.step(bad), Err(SaslError::ServerSignatureMismatch));
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
        assert_eq!(m.step(SERVER_FINAL), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn short_server_signature() {
        let mut m = after_server_first();
        assert_eq!(
            m.step(b"v=6rriTQ=="),
            Err(SaslError::ServerSignatureMismatch)
        );
        let mut m = after_server_first();
        assert_eq!(m.step(b"v="), Err(SaslError::ServerSignatureMismatch));
    }

    #[test]
    fn finish_before_verification() {
        let mut m = rfc();
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
        m.initial_response().unwrap();
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
        let mut m = after_server_first();
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
    }

    #[test]
    fn server_error_in_server_final() {
        let mut m = after_server_first();
        assert_eq!(
            m.step(b"e=invalid-proof"),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
    }

    #[test]
    fn server_error_in_server_first() {
        let mut m = rfc();
        m.initial_response().unwrap();
        assert_eq!(
            m.step(b"e=unknown-user"),
            Err(SaslError::ServerError("unknown-user".into()))
        );
    }

    fn first_err(server_first: &[u8]) -> SaslError {
        let mut m = rfc();
        m.initial_response().unwrap();
        m.step(server_first).unwrap_err()
    }

    #[test]
    fn malformed_server_first() {
        let cases: &[&[u8]] = &[
            b"",
            b"garbage",
            b"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            // Nonce not extending ours, or equal to ours.
            b"r=somethingelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbN,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqO\x7f,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            // Salt.
            b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=***,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096",
            // Iteration count.
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k",
            // Wrong order.
            b"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            // Not UTF-8.
            b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=\xff",
        ];
        for c in cases {
            assert!(
                matches!(first_err(c), SaslError::MalformedChallenge(_)),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }

    #[test]
    fn malformed_server_final() {
        for c in [&b""[..], b"x=1", b"v=***", b"V=6rriTRBi23WpRR"] {
            let mut m = after_server_first();
            assert!(matches!(m.step(c), Err(SaslError::MalformedChallenge(_))));
            assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
        }
    }

    #[test]
    fn iteration_cap_is_accepted() {
        // The smallest and the largest accepted counts parse (1 is computed; the cap is only
        // parsed, not computed, to keep the test fast).
        let ok = parse_server_first(
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000",
            NONCE,
        )
        .unwrap();
        assert_eq!(ok.iterations, MAX_SCRAM_ITERATIONS);
        let mut m = rfc().min_iterations(1);
        m.initial_response().unwrap();
        assert!(
            m.step(b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1")
                .is_ok()
        );
    }

    /// Issue 10 item 9: RFC 7677 section 4 asks for 4096 iterations at least.
    #[test]
    fn fewer_than_4096_iterations_are_refused_unless_allowed() {
        let low = b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095";
        let mut m = rfc();
        m.initial_response().unwrap();
        assert_eq!(
            m.step(low),
            Err(SaslError::IterationCountTooLow {
                count: 4095,
                minimum: 4096
            })
        );
        assert_eq!(m.finish(), Err(SaslError::IncompleteExchange));
        // The configuration lowers the floor...
        let config = crate::Config {
            min_scram_iterations: 1000,
            ..crate::Config::default()
        };
        let mut m = rfc();
        m.configure(&config);
        m.initial_response().unwrap();
        assert!(m.step(low).is_ok());
        // ...and the mechanism's own switch wins over it.
        let mut m = rfc().min_iterations(5000);
        m.configure(&config);
        m.initial_response().unwrap();
        assert_eq!(
            m.step(SERVER_FIRST),
            Err(SaslError::IterationCountTooLow {
                count: 4096,
                minimum: 5000
            })
        );
        // 4096 itself is fine by default (the RFC's example).
        after_server_first();
    }

    #[test]
    fn user_name_is_escaped() {
        let mut m = ScramSha256::new("a,b=c".into(), "p".into(), "n0nce".into());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose(), b"n,,n=a=2Cb=3Dc,r=n0nce");
    }

    #[test]
    fn challenge_before_initial_response() {
        let mut m = rfc();
        assert_eq!(m.step(b"x"), Err(SaslError::UnexpectedChallenge));
        assert_eq!(
            m.step(b"").unwrap().expose(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        assert_eq!(m.step(SERVER_FIRST).unwrap().expose(), CLIENT_FINAL);
    }

    #[test]
    fn bad_nonce_is_refused() {
        let mut m = ScramSha256::new("u".into(), "p".into(), "a,b".into());
        assert!(matches!(
            m.initial_response(),
            Err(SaslError::InvalidInput(_))
        ));
        let mut m = ScramSha256::new("u".into(), "p".into(), String::new());
        assert!(matches!(
            m.initial_response(),
            Err(SaslError::InvalidInput(_))
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let mut m = ScramSha256::new("user".into(), "hunter2".into(), NONCE.into());
        m.initial_response().unwrap();
        m.step(SERVER_FIRST).unwrap();
        let d = format!("{m:?}");
        assert!(!d.contains("hunter2"));
        assert!(d.contains("<redacted>"));
    }
}
