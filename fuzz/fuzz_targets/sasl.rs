//! SASL exchanges: every mechanism fed arbitrary challenges and compared with a model of its
//! RFC (EXTERNAL included); SCRAM-SHA-1/256/512, with the GS2 flags `n`, `y` and `p=` (both
//! channel-binding types, arbitrary binding data) in the structured mode; SCRAM-SHA-256 with
//! arbitrary server messages (its client-final message recomputed here
//! with sha2/hmac/pbkdf2 whenever it accepts a server-first message, and a server-final message
//! accepted only if it carries the right signature), and with structured, valid exchanges whose
//! server signature is then mutated, both directly and through a `Client` (LoggedIn only when
//! the server proved itself).
//!
//! Input: a selector byte (mechanism and mode), then fields separated by 0xFF: user, password,
//! an extra parameter, then the challenges (or, for structured SCRAM, the parts of the server
//! messages).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{fields, text};
use pop3_proto::sasl::{
    ChannelBinding, ChannelBindingType, CramMd5, External, Login, Mechanism, OAuthBearer, Plain,
    SaslError, Scram, ScramHash, ScramSha256, XOAuth2,
};
use pop3_proto::{Client, Command, Config, Event, ProtocolError, Secret};
use sha2::{Digest, Sha256};

/// The SCRAM hashes, written out here with the hash crates (independent of `ScramHash`).
#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

macro_rules! on_hash {
    ($h:expr, $d:ident => $e:expr) => {
        match $h {
            Hash::Sha1 => {
                type $d = sha1::Sha1;
                $e
            }
            Hash::Sha256 => {
                type $d = Sha256;
                $e
            }
            Hash::Sha512 => {
                type $d = sha2::Sha512;
                $e
            }
        }
    };
}

fn hmac_h(h: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    on_hash!(h, D => {
        let mut mac = Hmac::<D>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    })
}

fn digest_h(h: Hash, data: &[u8]) -> Vec<u8> {
    on_hash!(h, D => D::digest(data).to_vec())
}

fn salted_h(h: Hash, password: &[u8], salt: &[u8], i: u32) -> Vec<u8> {
    on_hash!(h, D => {
        let mut out = vec![0u8; <D as Digest>::output_size()];
        pbkdf2::pbkdf2_hmac::<D>(password, salt, i, &mut out);
        out
    })
}

fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn is_nonce_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

fn nonce(f: &[u8], default: &str) -> String {
    let n: String = f
        .iter()
        .copied()
        .filter(|&b| is_nonce_char(b))
        .map(char::from)
        .collect();
    if n.is_empty() { default.into() } else { n }
}

/// The SCRAM computation, written out from RFC 5802 §3.
struct ScramModel {
    client_final: String,
    server_signature: Vec<u8>,
}

/// SCRAM-SHA-256 without channel binding (`c=biws`).
fn scram(
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    salt: &[u8],
    i: u32,
) -> ScramModel {
    scram_h(
        Hash::Sha256,
        b"n,,",
        password,
        client_first_bare,
        server_first,
        nonce,
        salt,
        i,
    )
}

/// Any hash; `cbind_input` is the GS2 header, followed by the binding data when bound.
#[allow(clippy::too_many_arguments)]
fn scram_h(
    h: Hash,
    cbind_input: &[u8],
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    salt: &[u8],
    i: u32,
) -> ScramModel {
    let salted = salted_h(h, password, salt, i);
    let client_key = hmac_h(h, &salted, b"Client Key");
    let stored_key = digest_h(h, &client_key);
    let without_proof = format!("c={},r={nonce}", BASE64.encode(cbind_input));
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac_h(h, &stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac_h(h, &salted, b"Server Key");
    ScramModel {
        client_final: format!("{without_proof},p={}", BASE64.encode(proof)),
        server_signature: hmac_h(h, &server_key, auth.as_bytes()),
    }
}

/// Whether a server-final message carries `signature` (`v=` base64, up to a comma).
fn carries_signature(server_final: &[u8], signature: &[u8]) -> bool {
    let Some(rest) = server_final.strip_prefix(b"v=") else {
        return false;
    };
    let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
    BASE64.decode(&rest[..end]).is_ok_and(|s| s == signature)
}

/// The highest iteration count an arbitrary challenge may ask for here (to keep runs fast).
const FAST_ITERATIONS: u64 = 256;

/// Whether an arbitrary challenge asks for too many PBKDF2 iterations to run quickly.
fn slow(challenge: &[u8]) -> bool {
    challenge.windows(2).enumerate().any(|(k, w)| {
        w == b"i=" && {
            let digits: Vec<u8> = challenge[k + 2..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            digits.len() > 3
                || std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or(0)
                    > FAST_ITERATIONS
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fields(rest);
    let field = |i: usize| f.get(i).copied().unwrap_or_default();
    let user = text(field(0));
    let password = field(1).to_vec();
    let extra = field(2);
    let challenges = f.get(3..).unwrap_or_default();
    let send_initial = selector & 8 != 0;
    match selector & 7 {
        0 if selector & 0x10 != 0 => external(extra, send_initial, challenges),
        0 => plain(&user, &password, extra, send_initial, challenges),
        1 => login(&user, &password, send_initial, challenges),
        2 => cram_md5(&user, &password, send_initial, challenges),
        3 | 4 => bearer(
            selector & 7 == 4,
            &user,
            &password,
            extra,
            send_initial,
            challenges,
        ),
        5 => scram_arbitrary(&user, &password, extra, send_initial, challenges),
        _ => scram_structured(
            selector & 7 == 7,
            selector >> 4,
            &user,
            &password,
            extra,
            challenges,
        ),
    }
});

fn plain(user: &str, password: &[u8], authzid: &[u8], send_initial: bool, challenges: &[&[u8]]) {
    let authzid = (!authzid.is_empty()).then(|| text(authzid));
    let mut m = Plain::new(authzid.clone(), user.into(), Secret::new(password));
    let mut message = authzid.unwrap_or_default().into_bytes();
    message.push(0);
    message.extend_from_slice(user.as_bytes());
    message.push(0);
    message.extend_from_slice(password);
    let mut sent = false;
    if send_initial {
        assert_eq!(
            m.initial_response()
                .expect("PLAIN starts")
                .expect("with data")
                .expose(),
            message
        );
        sent = true;
    }
    for c in challenges {
        let r = m.step(c);
        if c.is_empty() && !sent {
            assert_eq!(r.expect("the message").expose(), message);
            sent = true;
        } else {
            assert_eq!(r, Err(SaslError::UnexpectedChallenge));
        }
    }
    assert_eq!(m.finish(), Ok(()));
}

fn external(authzid: &[u8], send_initial: bool, challenges: &[&[u8]]) {
    let authzid = (!authzid.is_empty()).then(|| text(authzid));
    let message = authzid.clone().unwrap_or_default().into_bytes();
    let mut m = External::new(authzid);
    assert!(!m.exposes_secret());
    let mut sent = false;
    if send_initial {
        let ir = m.initial_response().expect("EXTERNAL starts");
        assert_eq!(ir.expect("with data").expose(), message);
        sent = true;
    }
    for c in challenges {
        let r = m.step(c);
        if c.is_empty() && !sent {
            assert_eq!(r.expect("the message").expose(), message);
            sent = true;
        } else {
            assert_eq!(r, Err(SaslError::UnexpectedChallenge));
        }
    }
    assert_eq!(m.finish(), Ok(()));
}

fn login(user: &str, password: &[u8], send_initial: bool, challenges: &[&[u8]]) {
    let mut m = Login::new(user.into(), Secret::new(password));
    if send_initial {
        assert_eq!(m.initial_response(), Ok(None));
    }
    for (k, c) in challenges.iter().enumerate() {
        let r = m.step(c);
        match k {
            0 => assert_eq!(r.expect("the user").expose(), user.as_bytes()),
            1 => assert_eq!(r.expect("the password").expose(), password),
            _ => assert_eq!(r, Err(SaslError::UnexpectedChallenge)),
        }
    }
}

fn cram_md5(user: &str, password: &[u8], send_initial: bool, challenges: &[&[u8]]) {
    let mut m = CramMd5::new(user.into(), Secret::new(password));
    if send_initial {
        assert_eq!(m.initial_response(), Ok(None));
    }
    let mut answered = false;
    for c in challenges {
        let r = m.step(c);
        if answered {
            assert_eq!(r, Err(SaslError::UnexpectedChallenge));
        } else if c.is_empty() {
            assert!(matches!(r, Err(SaslError::MalformedChallenge(_))));
        } else {
            let mut mac = Hmac::<md5::Md5>::new_from_slice(password).expect("any key length");
            mac.update(c);
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                r.expect("an answer").expose(),
                format!("{user} {hex}").as_bytes()
            );
            answered = true;
        }
    }
    assert_eq!(m.finish(), Ok(()));
}

fn bearer(
    oauthbearer: bool,
    user: &str,
    token: &[u8],
    extra: &[u8],
    send_initial: bool,
    challenges: &[&[u8]],
) {
    let host = (!extra.is_empty()).then(|| text(extra));
    let port = extra.first().map(|&b| u16::from(b) * 7);
    let (mut m, message, error_reply): (Box<dyn Mechanism>, Vec<u8>, Vec<u8>) = if oauthbearer {
        let mut head = String::from("n,");
        if !user.is_empty() {
            head += &format!("a={}", saslname(user));
        }
        head += ",\x01";
        if let Some(h) = &host {
            head += &format!("host={h}\x01");
        }
        if let Some(p) = port {
            head += &format!("port={p}\x01");
        }
        head += "auth=Bearer ";
        let mut msg = head.into_bytes();
        msg.extend_from_slice(token);
        msg.extend_from_slice(b"\x01\x01");
        (
            Box::new(OAuthBearer::new(
                user.into(),
                host,
                port,
                Secret::new(token),
            )),
            msg,
            vec![1],
        )
    } else {
        let mut msg = format!("user={user}\x01auth=Bearer ").into_bytes();
        msg.extend_from_slice(token);
        msg.extend_from_slice(b"\x01\x01");
        (
            Box::new(XOAuth2::new(user.into(), Secret::new(token))),
            msg,
            Vec::new(),
        )
    };
    let mut sent = false;
    if send_initial {
        assert_eq!(
            m.initial_response()
                .expect("starts")
                .expect("with data")
                .expose(),
            message
        );
        sent = true;
    }
    let mut error = false;
    for c in challenges {
        let r = m.step(c);
        if !sent && c.is_empty() {
            assert_eq!(r.expect("the message").expose(), message);
            sent = true;
        } else if error {
            assert_eq!(r, Err(SaslError::UnexpectedChallenge));
        } else {
            assert_eq!(r.expect("the error is acknowledged").expose(), error_reply);
            error = true;
        }
    }
    assert_eq!(m.finish(), Ok(()));
}

/// SCRAM with arbitrary server messages: whatever it accepts must be what RFC 5802 computes.
fn scram_arbitrary(
    user: &str,
    password: &[u8],
    nonce_field: &[u8],
    send_initial: bool,
    challenges: &[&[u8]],
) {
    let client_nonce = nonce(nonce_field, "rOprNGfwEbeRWgbNEkqO");
    // Low counts keep runs fast; the floor itself is checked in `scram_structured`.
    let mut m = ScramSha256::new(user.into(), Secret::new(password), client_nonce.clone())
        .min_iterations(1);
    let client_first_bare = format!("n={},r={client_nonce}", saslname(user));
    let mut stage = 0; // 0 nothing sent, 1 client-first sent, 2 client-final sent, 3 verified, 4 failed
    let mut expected_signature = Vec::new();
    if send_initial {
        let ir = m.initial_response().expect("starts").expect("with data");
        assert_eq!(ir.expose(), format!("n,,{client_first_bare}").as_bytes());
        stage = 1;
    }
    for c in challenges {
        if slow(c) {
            continue;
        }
        let r = m.step(c);
        match (stage, r) {
            (0, Ok(ir)) => {
                assert!(c.is_empty());
                assert_eq!(ir.expose(), format!("n,,{client_first_bare}").as_bytes());
                stage = 1;
            }
            (0, Err(e)) => assert!(!c.is_empty() && e == SaslError::UnexpectedChallenge),
            (1, Ok(client_final)) => {
                // Accepted: recompute from the server-first message as RFC 5802 reads it.
                let sf = std::str::from_utf8(c).expect("an accepted server-first is UTF-8");
                let mut attrs = sf.split(',');
                let nonce = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("r="))
                    .expect("r= first");
                assert!(nonce.starts_with(&client_nonce) && nonce.len() > client_nonce.len());
                assert!(nonce.bytes().all(is_nonce_char));
                let salt = BASE64
                    .decode(
                        attrs
                            .next()
                            .and_then(|a| a.strip_prefix("s="))
                            .expect("s= second"),
                    )
                    .expect("base64 salt");
                assert!(!salt.is_empty());
                let i: u32 = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("i="))
                    .expect("i= third")
                    .parse()
                    .expect("a count");
                assert!(i >= 1);
                let s = scram(password, &client_first_bare, sf, nonce, &salt, i);
                assert_eq!(client_final.expose(), s.client_final.as_bytes());
                // Well-formed: c=biws,r=<nonce>,p=<base64 of 32 bytes>.
                let p = s.client_final.rsplit_once(",p=").expect("proof").1;
                assert_eq!(BASE64.decode(p).expect("base64 proof").len(), 32);
                expected_signature = s.server_signature;
                stage = 2;
            }
            (1, Err(_)) => stage = 4,
            (2, Ok(empty)) => {
                assert!(empty.is_empty());
                assert!(
                    carries_signature(c, &expected_signature),
                    "accepted a server-final without the right signature"
                );
                stage = 3;
            }
            (2, Err(e)) => {
                assert!(
                    !carries_signature(c, &expected_signature),
                    "refused the right signature: {e}"
                );
                stage = 4;
            }
            (_, r) => assert_eq!(r, Err(SaslError::UnexpectedChallenge)),
        }
        assert_eq!(m.server_verified(), stage == 3);
    }
    assert_eq!(
        m.finish().is_ok(),
        stage == 3,
        "finish() must succeed exactly when the server proved itself"
    );
}

/// SCRAM with a valid server-first built from arbitrary parts, and a server-final that is
/// right, mutated or arbitrary.
fn scram_structured(
    via_client: bool,
    mode: u8,
    user: &str,
    password: &[u8],
    client_nonce: &[u8],
    parts: &[&[u8]],
) {
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let client_nonce = nonce(client_nonce, "rOprNGfwEbeRWgbNEkqO");
    let server_nonce = format!(
        "{client_nonce}{}",
        nonce(part(0), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    );
    let salt = if part(1).is_empty() {
        b"salt".to_vec()
    } else {
        part(1).to_vec()
    };
    let i = u32::from(part(2).first().copied().unwrap_or(0) % 16) + 1;
    let ext: String = part(3)
        .iter()
        .take(1000)
        .copied()
        .filter(|&b| is_nonce_char(b))
        .map(char::from)
        .collect();
    let mut server_first = format!("r={server_nonce},s={},i={i}", BASE64.encode(&salt));
    if !ext.is_empty() {
        server_first += &format!(",x={ext}");
    }
    let client_first_bare = format!("n={},r={client_nonce}", saslname(user));
    let s = scram(
        password,
        &client_first_bare,
        &server_first,
        &server_nonce,
        &salt,
        i,
    );
    let good = format!("v={}", BASE64.encode(&s.server_signature)).into_bytes();
    let arbitrary = part(4);
    let server_final: Option<Vec<u8>> = match mode % 8 {
        0 => Some(good.clone()),
        1 => Some([&good[..], b",", arbitrary].concat()),
        2 => {
            // One bit of the signature flipped.
            let mut sig = s.server_signature.clone();
            let bit = arbitrary.first().copied().unwrap_or(0);
            sig[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
            Some(format!("v={}", BASE64.encode(sig)).into_bytes())
        }
        3 => Some(
            good[..good
                .len()
                .min(2 + usize::from(arbitrary.first().copied().unwrap_or(0)) % 44)]
                .to_vec(),
        ),
        4 => Some(arbitrary.to_vec()),
        5 => Some([b"e=", arbitrary].concat()),
        _ => None, // The server claims success without a server-final message.
    };
    let verifies = server_final
        .as_deref()
        .is_some_and(|sf| carries_signature(sf, &s.server_signature));
    if mode % 8 <= 1 {
        assert!(verifies);
    }

    if !via_client {
        // The hash and the GS2 flag from the sixth part: every SCRAM variant through the same
        // model (the checks below use SHA-256 without binding).
        if let Some(&variant) = parts.get(5).and_then(|p| p.first()) {
            scram_variant(
                variant,
                user,
                password,
                &client_nonce,
                &server_first,
                &server_nonce,
                &salt,
                i,
                part(6),
                mode,
            );
            return;
        }
        if mode & 0x8 != 0 {
            // The default floor (RFC 7677 §4): a count below 4096 is refused, whatever else the
            // server-first says.
            let mut m = ScramSha256::new(user.into(), Secret::new(password), client_nonce.clone());
            m.initial_response().expect("starts");
            assert_eq!(
                m.step(server_first.as_bytes()).map(|_| ()),
                Err(SaslError::IterationCountTooLow {
                    count: i,
                    minimum: 4096
                })
            );
            return;
        }
        let mut m = ScramSha256::new(user.into(), Secret::new(password), client_nonce.clone())
            .min_iterations(1);
        let ir = m.initial_response().expect("starts").expect("with data");
        assert_eq!(ir.expose(), format!("n,,{client_first_bare}").as_bytes());
        let cf = m
            .step(server_first.as_bytes())
            .expect("a valid server-first is accepted");
        assert_eq!(cf.expose(), s.client_final.as_bytes());
        if let Some(sf) = &server_final {
            let r = m.step(sf);
            assert_eq!(
                r.is_ok(),
                verifies,
                "server-final {:?}: {r:?}",
                String::from_utf8_lossy(sf)
            );
        }
        assert_eq!(m.finish().is_ok(), verifies);
        assert_eq!(m.server_verified(), verifies);
        return;
    }

    // Through the client: AUTH, the continuations, and +OK.
    let mut config = Config::default();
    config.auto_capa = false;
    // Low counts keep runs fast (the floor is checked above).
    config.min_scram_iterations = 1;
    let mut client = Client::new(config);
    client.handle_input(b"+OK ready\r\n");
    while let Ok(Some(_)) = client.poll_event() {}
    let id = client
        .enqueue(Command::auth(ScramSha256::new(
            user.into(),
            Secret::new(password),
            client_nonce.clone(),
        )))
        .expect("SCRAM needs no TLS");
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    let ir = BASE64.encode(format!("n,,{client_first_bare}"));
    if wire != format!("AUTH SCRAM-SHA-256 {ir}\r\n").as_bytes() {
        // Too long for the command line: it goes with the first, empty, challenge.
        assert_eq!(wire, b"AUTH SCRAM-SHA-256\r\n");
        assert!(ir.len() > 255 - 22);
        client.handle_input(b"+ \r\n");
        wire.clear();
        while let Ok(Some(_)) = client.poll_event() {}
        client.poll_transmit(&mut wire);
        assert_eq!(wire, format!("{ir}\r\n").as_bytes());
    }
    let mut server = format!("+ {}\r\n", BASE64.encode(&server_first)).into_bytes();
    if let Some(sf) = &server_final {
        server.extend_from_slice(format!("+ {}\r\n", BASE64.encode(sf)).as_bytes());
    }
    server.extend_from_slice(b"+OK logged in\r\n");
    let mut logged_in = false;
    let mut error = None;
    let mut wire = Vec::new();
    for byte in server.chunks(7) {
        client.handle_input(byte);
        loop {
            match client.poll_event() {
                Ok(Some(Event::LoggedIn { id: got })) => {
                    assert_eq!(got, id);
                    logged_in = true;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        client.poll_transmit(&mut wire);
        if error.is_some() {
            break;
        }
    }
    assert_eq!(
        logged_in, verifies,
        "LoggedIn must come exactly when the server proved itself"
    );
    if verifies {
        assert!(error.is_none());
        assert_eq!(
            wire,
            format!("{}\r\n\r\n", BASE64.encode(&s.client_final)).as_bytes()
        );
    } else {
        assert!(
            matches!(error, Some(ProtocolError::Sasl { .. })),
            "{error:?}"
        );
        assert_eq!(client.poll_event().err(), error, "the error is sticky");
        assert_eq!(client.poll_transmit(&mut wire), 0);
    }
}

/// One SCRAM variant (SHA-1/256/512; GS2 flag `n`, `y`, `p=tls-exporter` or
/// `p=tls-server-end-point` with `binding` as its data) against the model: the client-first
/// header and name, the client-final message, and the verdict on a right or flipped signature.
#[allow(clippy::too_many_arguments)]
fn scram_variant(
    variant: u8,
    user: &str,
    password: &[u8],
    client_nonce: &str,
    server_first: &str,
    server_nonce: &str,
    salt: &[u8],
    i: u32,
    binding: &[u8],
    mode: u8,
) {
    let hash = [Hash::Sha1, Hash::Sha256, Hash::Sha512][usize::from(variant % 3)];
    let flag = (variant / 3) % 4;
    let binding = if binding.is_empty() {
        &[0x42][..]
    } else {
        binding
    };
    let cb = |kind| ChannelBinding::new(kind, binding.to_vec());
    fn build<H: ScramHash>(
        user: &str,
        password: &[u8],
        nonce: &str,
        flag: u8,
        cb: &dyn Fn(ChannelBindingType) -> ChannelBinding,
    ) -> Box<dyn Mechanism> {
        let m = Scram::<H>::new(user.into(), Secret::new(password), nonce.into()).min_iterations(1);
        match flag {
            0 => Box::new(m),
            1 => Box::new(m.binding_supported()),
            2 => Box::new(m.channel_binding(cb(ChannelBindingType::TlsExporter))),
            _ => Box::new(m.channel_binding(cb(ChannelBindingType::TlsServerEndPoint))),
        }
    }
    let mut m = match hash {
        Hash::Sha1 => build::<pop3_proto::sasl::Sha1>(user, password, client_nonce, flag, &cb),
        Hash::Sha256 => build::<pop3_proto::sasl::Sha256>(user, password, client_nonce, flag, &cb),
        Hash::Sha512 => build::<pop3_proto::sasl::Sha512>(user, password, client_nonce, flag, &cb),
    };
    let base = match hash {
        Hash::Sha1 => "SCRAM-SHA-1",
        Hash::Sha256 => "SCRAM-SHA-256",
        Hash::Sha512 => "SCRAM-SHA-512",
    };
    let (header, name) = match flag {
        0 => ("n,,".to_owned(), base.to_owned()),
        1 => ("y,,".to_owned(), base.to_owned()),
        2 => ("p=tls-exporter,,".to_owned(), format!("{base}-PLUS")),
        _ => (
            "p=tls-server-end-point,,".to_owned(),
            format!("{base}-PLUS"),
        ),
    };
    assert_eq!(m.name(), name);
    assert!(!m.exposes_secret());
    let client_first_bare = format!("n={},r={client_nonce}", saslname(user));
    let ir = m.initial_response().expect("starts").expect("with data");
    assert_eq!(
        ir.expose(),
        format!("{header}{client_first_bare}").as_bytes()
    );
    let mut cbind_input = header.into_bytes();
    if flag >= 2 {
        cbind_input.extend_from_slice(binding);
    }
    let model = scram_h(
        hash,
        &cbind_input,
        password,
        &client_first_bare,
        server_first,
        server_nonce,
        salt,
        i,
    );
    let cf = m
        .step(server_first.as_bytes())
        .expect("a valid server-first is accepted");
    assert_eq!(cf.expose(), model.client_final.as_bytes());
    let mut signature = model.server_signature.clone();
    let flip = mode % 2 == 1;
    if flip {
        let at = usize::from(mode) % signature.len();
        signature[at] ^= 1;
    }
    let r = m.step(format!("v={}", BASE64.encode(&signature)).as_bytes());
    assert_eq!(r.is_ok(), !flip, "{r:?}");
    assert_eq!(m.finish().is_ok(), !flip);
}
