//! SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{Mechanism, SaslError, error_text, saslname};
use crate::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The highest PBKDF2 iteration count [`ScramSha256`] accepts from a server.
///
/// The server chooses the count, and the client has to spend that many HMAC computations before
/// it can answer: the cap bounds the CPU time a hostile server can make the client burn.
/// Real servers use 4096 (the RFC 7677 minimum recommendation) up to a few hundred thousand.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// The lowest PBKDF2 iteration count [`ScramSha256`] accepts by default: RFC 7677 section 4
/// says 4096 at least. A lower count makes the exchange an observer recorded cheaper to crack
/// offline. Lower it with [`Config::min_scram_iterations`](crate::Config::min_scram_iterations)
/// or [`ScramSha256::min_iterations`].
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;

/// The SCRAM-SHA-256 mechanism (RFC 7677), without channel binding (GS2 header `n,,`).
///
/// Both sides prove they know the password without sending it: the server's proof (its
/// signature in the server-final message) is verified, and [`Mechanism::finish`] fails with
/// [`SaslError::IncompleteExchange`] if the server claimed success before proving itself.
///
/// The user name is escaped as a `saslname` (`,` → `=2C`, `=` → `=3D`); otherwise the user name
/// and password are used as given (their UTF-8 bytes): no SASLprep normalization is applied, so
/// a password that SASLprep would change (non-ASCII spaces, compatibility characters, …) may
/// not match what the server stored. ASCII credentials are unaffected.
///
/// The client nonce comes from the caller (this crate has no randomness): use at least 18
/// random bytes from a cryptographic generator, base64- or hex-encoded, and never reuse it.
#[derive(Debug, Clone)]
pub struct ScramSha256 {
    user: String,
    password: Secret,
    client_nonce: String,
    /// Set by [`ScramSha256::min_iterations`]; otherwise the client's configuration decides.
    min_iterations: Option<u32>,
    /// From [`Mechanism::configure`]: the configuration's minimum.
    configured_min: u32,
    state: State,
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

impl ScramSha256 {
    /// A SCRAM-SHA-256 exchange for `user` with `password`, using `client_nonce` as the client
    /// part of the nonce.
    ///
    /// The nonce must be non-empty printable ASCII (`!`..=`~`) without a comma (RFC 5802);
    /// random base64 or hex is. Otherwise the exchange does not start:
    /// [`initial_response`](Mechanism::initial_response) returns [`SaslError::InvalidInput`].
    pub fn new(user: String, password: Secret, client_nonce: String) -> Self {
        Self {
            user,
            password,
            client_nonce,
            min_iterations: None,
            configured_min: MIN_SCRAM_ITERATIONS,
            state: State::Initial,
        }
    }

    /// Accepts iteration counts from `minimum` up (the default is
    /// [`Config::min_scram_iterations`](crate::Config::min_scram_iterations), itself
    /// [`MIN_SCRAM_ITERATIONS`] by default). Set on the mechanism, it wins over the
    /// configuration.
    pub fn min_iterations(mut self, minimum: u32) -> Self {
        self.min_iterations = Some(minimum);
        self
    }

    /// Whether the server has proven that it knows the password (its signature verified).
    pub fn server_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    fn client_first(&mut self) -> Secret {
        let client_first_bare = format!("n={},r={}", saslname(&self.user), self.client_nonce);
        let message = format!("n,,{client_first_bare}");
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

        let mut salted_password = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            self.password.expose(),
            &first.salt,
            first.iterations,
            &mut salted_password,
        );
        let client_key = hmac_sha256(&salted_password, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let client_final_without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message =
            format!("{client_first_bare},{server_first},{client_final_without_proof}");
        let client_signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = Secret::new(hmac_sha256(&salted_password, b"Server Key").to_vec());
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

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
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

fn verify_server_final(
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
    let mut mac =
        HmacSha256::new_from_slice(server_key.expose()).expect("HMAC accepts keys of any length");
    mac.update(auth_message.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature)
        .map_err(|_| SaslError::ServerSignatureMismatch)
}

impl Mechanism for ScramSha256 {
    fn name(&self) -> &str {
        "SCRAM-SHA-256"
    }

    fn exposes_secret(&self) -> bool {
        false
    }

    fn configure(&mut self, config: &crate::Config) {
        self.configured_min = config.min_scram_iterations;
    }

    /// The client-first message `n,,n=USER,r=NONCE`. Calling it again starts the exchange over
    /// (with the same nonce).
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        if self.client_nonce.is_empty() || !self.client_nonce.bytes().all(is_nonce_char) {
            return Err(SaslError::InvalidInput(
                "the SCRAM client nonce must be non-empty printable ASCII without a comma",
            ));
        }
        Ok(Some(self.client_first()))
    }

    /// Answers the server-first message with the client-final message, then verifies the
    /// server-final message (`v=...`) and answers it with an empty response. An `e=` message
    /// is [`SaslError::ServerError`]. After an error, or after the verification, every
    /// challenge is [`SaslError::UnexpectedChallenge`].
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Initial if challenge.is_empty() => Ok(self.client_first()),
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
                verify_server_final(challenge, &server_key, &auth_message)?;
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
