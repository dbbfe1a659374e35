//! [`ScramServer`]: a one-connection POP3 server over implicit TLS (1.2 or 1.3, chosen by the
//! test) with a reference SCRAM server side (RFC 5802 section 3, written here with the hash
//! crates, independent of the client's code): SCRAM-SHA-1, -256 and -512 and their -PLUS
//! variants with the channel binding the server computes from its own end of the TLS
//! connection (`tls-exporter` on 1.3, `tls-server-end-point` on 1.2). It records what the
//! client did in a [`ScramOutcome`]. [`ScramServer::start_stls`] serves the same after a
//! plaintext greeting and STLS (RFC 2595), binding to the TLS session STLS started, and can
//! compute a wrong binding on purpose ([`ServerBinding::Wrong`]). [`ClientCa`] makes a
//! client CA and a client certificate, for servers that require one and for EXTERNAL.
//!
//! Re-exported by the test kit (`pop3-tests`); a crate of its own so that `pop3-cli`'s tests
//! use it without the kit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sha2::Digest;

use pop3_demo_server::{TestCa, crypto_provider};
use pop3_scripted_server::Error as KitError;

/// Which TLS version the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only: the binding is `tls-server-end-point`.
    Tls12,
    /// TLS 1.3 only: the binding is `tls-exporter`.
    Tls13,
}

/// How the server computes its channel binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerBinding {
    /// As RFC 9266 (TLS 1.3) and RFC 5929 section 4.1 (TLS 1.2) say.
    #[default]
    Correct,
    /// Wrong on purpose, to prove the client's binding is checked: on TLS 1.3 the exporter
    /// with the label `EXPORTER-Channel-Binding-wrong`, on TLS 1.2 the SHA-512 of the
    /// certificate instead of its SHA-256. A -PLUS login must then fail.
    Wrong,
}

/// What the client did, as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramOutcome {
    /// The mechanism of the client's AUTH, if it sent one.
    pub mechanism: Option<String>,
    /// The GS2 header the client sent (`n,,`, `y,,`, `p=tls-exporter,,`, ...).
    pub gs2_header: Option<String>,
    /// Whether the proof (and, with -PLUS, the channel binding) verified and the client was
    /// logged in.
    pub authenticated: bool,
    /// Why the server refused, if it did.
    pub refusal: Option<String>,
    /// Every command line the client sent (AUTH continuations included, base64 as sent).
    pub lines: Vec<String>,
    /// Whether the client presented a certificate (verified against the [`ClientCa`]).
    pub client_certificate: bool,
    /// Whether the TLS session was started by STLS ([`ScramServer::start_stls`]) and its
    /// handshake completed.
    pub stls: bool,
}

/// A client CA and a client certificate it issued (CN = the user, clientAuth), as PEM, for
/// `--client-cert`/`--client-key` and servers that require or authenticate by one.
#[derive(Debug, Clone)]
pub struct ClientCa {
    /// The CA certificate (PEM), which the server trusts for client certificates.
    pub ca_pem: String,
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// The client certificate (PEM).
    pub cert_pem: String,
    /// The client's private key (PEM, PKCS #8).
    pub key_pem: String,
}

impl ClientCa {
    /// A new CA and a client certificate for `user`.
    pub fn generate(user: &str) -> Result<ClientCa, KitError> {
        let err = |e: rcgen::Error| KitError::Server(pop3_demo_server::Error::from(e));
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, "pop3 test client CA");
        ca_params.distinguished_name = name;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(err)?;
        let ca = ca_params.self_signed(&ca_key).map_err(err)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, user);
        params.distinguished_name = name;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
        Ok(ClientCa {
            ca_pem: ca.pem(),
            ca_der: ca.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The server: see the module docs.
#[derive(Debug)]
pub struct ScramServer {
    addr: SocketAddr,
    handle: Option<JoinHandle<Result<ScramOutcome, KitError>>>,
}

/// SCRAM iteration count the server asks for (RFC 7677's minimum).
const ITERATIONS: u32 = 4096;
const SALT: &[u8] = b"kit salt 0123456";
const SERVER_NONCE: &str = "kitServerNonce+/";

impl ScramServer {
    /// Starts the server for `user`/`password`, advertising `sasl` (space-separated mechanism
    /// names) in CAPA, over TLS `version`.
    pub fn start(
        user: &str,
        password: &str,
        sasl: &str,
        version: TlsVersion,
    ) -> Result<ScramServer, KitError> {
        Self::start_with(user, password, sasl, version, None)
    }

    /// [`start`](Self::start), and with `client_ca` the server requires a client certificate
    /// issued by it (the handshake fails without one) and serves AUTH EXTERNAL (the
    /// certificate's user, an empty authorization identity or `user`).
    pub fn start_with(
        user: &str,
        password: &str,
        sasl: &str,
        version: TlsVersion,
        client_ca: Option<&ClientCa>,
    ) -> Result<ScramServer, KitError> {
        let mode = Mode {
            stls: false,
            binding: ServerBinding::Correct,
        };
        Self::spawn(user, password, sasl, version, client_ca, mode)
    }

    /// Like [`start`](Self::start), over STLS: a plaintext greeting, CAPA with `STLS` and
    /// `USER` (no SASL: nothing to bind to yet), `STLS` answered `+OK`, then the TLS
    /// handshake (`version`), and from there the same server as [`start`](Self::start), its
    /// CAPA without STLS. The server computes the channel binding from its own end of the
    /// TLS session started by STLS, as `binding` says. Commands other than CAPA, STLS and
    /// QUIT before TLS are refused.
    pub fn start_stls(
        user: &str,
        password: &str,
        sasl: &str,
        version: TlsVersion,
        binding: ServerBinding,
    ) -> Result<ScramServer, KitError> {
        let mode = Mode {
            stls: true,
            binding,
        };
        Self::spawn(user, password, sasl, version, None, mode)
    }

    fn spawn(
        user: &str,
        password: &str,
        sasl: &str,
        version: TlsVersion,
        client_ca: Option<&ClientCa>,
        mode: Mode,
    ) -> Result<ScramServer, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let versions: &[&rustls::SupportedProtocolVersion] = match version {
            TlsVersion::Tls12 => &[&rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let ca = TestCa::shared();
        let builder = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(versions)
            .map_err(pop3_demo_server::Error::from)?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(ca.ca_der.clone().into())
                    .map_err(pop3_demo_server::Error::from)?;
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    crypto_provider(),
                )
                .build()
                .map_err(|e| {
                    KitError::Io(std::io::Error::other(format!("client verifier: {e}")))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(
                vec![ca.certificate_der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(ca.key_der().clone_key()),
            )
            .map_err(pop3_demo_server::Error::from)?;
        let config = Arc::new(config);
        let (user, password, sasl) = (user.to_owned(), password.to_owned(), sasl.to_owned());
        let handle = std::thread::spawn(move || {
            listener.set_nonblocking(false)?;
            let (mut tcp, _) = listener.accept()?;
            tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut outcome = ScramOutcome::default();
            if mode.stls && !plaintext(&mut tcp, &mut outcome)? {
                return Ok(outcome);
            }
            let tls = ServerConnection::new(config).map_err(pop3_demo_server::Error::from)?;
            let mut stream = StreamOwned::new(tls, tcp);
            // The handshake now, so that a refused client certificate ends here.
            while stream.conn.is_handshaking() {
                if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                    outcome.refusal = Some(format!("handshake: {e}"));
                    return Ok(outcome);
                }
            }
            outcome.stls = mode.stls;
            outcome.client_certificate = stream.conn.peer_certificates().is_some();
            if !mode.stls {
                stream.write_all(b"+OK kit SCRAM server ready\r\n")?;
            }
            serve(&mut stream, outcome, &user, &password, &sasl, mode.binding)
        });
        Ok(ScramServer {
            addr,
            handle: Some(handle),
        })
    }

    /// The port to connect to (implicit TLS, host `localhost` or `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits for the connection to end and returns what the client did.
    pub fn finish(mut self) -> Result<ScramOutcome, KitError> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(KitError::Io(std::io::Error::other(
                "the SCRAM server thread panicked",
            ))),
        }
    }
}

/// How [`ScramServer::spawn`] serves.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Plaintext first, TLS after STLS.
    stls: bool,
    binding: ServerBinding,
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// The plaintext part of an STLS session: greeting, CAPA, STLS. `true` when the client sent
/// STLS (and got `+OK`), `false` when it quit or closed before.
fn plaintext(tcp: &mut TcpStream, outcome: &mut ScramOutcome) -> Result<bool, KitError> {
    tcp.write_all(b"+OK kit SCRAM server ready, STLS first\r\n")?;
    while let Some(line) = read_line(tcp)? {
        outcome.lines.push(line.clone());
        match line.to_ascii_uppercase().as_str() {
            "CAPA" => tcp.write_all(b"+OK\r\nSTLS\r\nUSER\r\n.\r\n")?,
            "STLS" => {
                tcp.write_all(b"+OK begin TLS\r\n")?;
                return Ok(true);
            }
            "QUIT" => {
                tcp.write_all(b"+OK bye\r\n")?;
                return Ok(false);
            }
            _ => tcp.write_all(b"-ERR STLS first\r\n")?,
        }
    }
    Ok(false)
}

fn read_line(stream: &mut impl Read) -> Result<Option<String>, KitError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        if line.len() > 4096 {
            return Err(KitError::Io(std::io::Error::other("line too long")));
        }
    }
}

/// The server's channel binding, computed from its own end of the connection (wrong on
/// purpose with [`ServerBinding::Wrong`]).
fn server_binding(stream: &Tls, binding: ServerBinding) -> (String, Vec<u8>) {
    let wrong = binding == ServerBinding::Wrong;
    if stream.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
        let label: &[u8] = match wrong {
            false => b"EXPORTER-Channel-Binding",
            true => b"EXPORTER-Channel-Binding-wrong",
        };
        let data = stream
            .conn
            .export_keying_material([0u8; 32], label, Some(&[]))
            .expect("exporter after the handshake");
        ("tls-exporter".into(), data.to_vec())
    } else {
        // The kit's certificate is ECDSA with SHA-256: RFC 5929 section 4.1 says SHA-256.
        let der = TestCa::shared().certificate_der();
        let data = match wrong {
            false => sha2::Sha256::digest(der).to_vec(),
            true => sha2::Sha512::digest(der).to_vec(),
        };
        ("tls-server-end-point".into(), data)
    }
}

/// The session over TLS, after the greeting (implicit TLS) or STLS.
fn serve(
    stream: &mut Tls,
    mut outcome: ScramOutcome,
    user: &str,
    password: &str,
    sasl: &str,
    binding: ServerBinding,
) -> Result<ScramOutcome, KitError> {
    while let Some(line) = read_line(stream)? {
        outcome.lines.push(line.clone());
        let upper = line.to_ascii_uppercase();
        if upper == "CAPA" {
            stream.write_all(format!("+OK\r\nUSER\r\nSASL {sasl}\r\n.\r\n").as_bytes())?;
        } else if upper == "STAT" && outcome.authenticated {
            stream.write_all(b"+OK 0 0\r\n")?;
        } else if upper == "QUIT" {
            stream.write_all(b"+OK bye\r\n")?;
            stream.conn.send_close_notify();
            let _ = stream.flush();
            break;
        } else if let Some(rest) = upper.strip_prefix("AUTH ") {
            let mut words = line[5..].split(' ');
            let mechanism = rest.split(' ').next().unwrap_or("").to_owned();
            let initial = words.nth(1).map(str::to_owned);
            outcome.mechanism = Some(mechanism.clone());
            match exchange(
                stream,
                &mut outcome,
                &mechanism,
                initial,
                user,
                password,
                sasl,
                binding,
            )? {
                Ok(()) => {
                    outcome.authenticated = true;
                    stream.write_all(b"+OK logged in\r\n")?;
                }
                Err(why) => {
                    outcome.refusal = Some(why.clone());
                    stream.write_all(format!("-ERR [AUTH] {why}\r\n").as_bytes())?;
                }
            }
        } else {
            stream.write_all(b"-ERR unknown command\r\n")?;
        }
    }
    Ok(outcome)
}

/// The hash functions of one SCRAM variant.
struct Hash {
    hmac: fn(&[u8], &[u8]) -> Vec<u8>,
    digest: fn(&[u8]) -> Vec<u8>,
    salted: fn(&[u8]) -> Vec<u8>,
}

macro_rules! hash {
    ($d:ty) => {
        Hash {
            hmac: |key, data| {
                let mut mac = Hmac::<$d>::new_from_slice(key).expect("any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            },
            digest: |data| <$d>::digest(data).to_vec(),
            salted: |password| {
                let mut out = vec![0u8; <$d as Digest>::output_size()];
                pbkdf2::pbkdf2_hmac::<$d>(password, SALT, ITERATIONS, &mut out);
                out
            },
        }
    };
}

/// Reads one AUTH continuation (base64), decoded; `*` cancels.
fn continuation(
    stream: &mut Tls,
    outcome: &mut ScramOutcome,
) -> Result<Result<String, String>, KitError> {
    let Some(line) = read_line(stream)? else {
        return Ok(Err("connection closed".into()));
    };
    outcome.lines.push(line.clone());
    if line == "*" {
        return Ok(Err("cancelled".into()));
    }
    Ok(BASE64
        .decode(line.trim())
        .map_err(|_| "not base64".to_owned())
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_owned())))
}

#[allow(clippy::too_many_arguments)]
fn exchange(
    stream: &mut Tls,
    outcome: &mut ScramOutcome,
    mechanism: &str,
    initial: Option<String>,
    user: &str,
    password: &str,
    sasl: &str,
    binding: ServerBinding,
) -> Result<Result<(), String>, KitError> {
    let advertised = |m: &str| sasl.split(' ').any(|a| a.eq_ignore_ascii_case(m));
    if !advertised(mechanism) {
        return Ok(Err(format!("{mechanism} not offered")));
    }
    if mechanism == "EXTERNAL" {
        let authzid = match initial.as_deref() {
            Some("=") => String::new(),
            Some(ir) => {
                String::from_utf8(BASE64.decode(ir).unwrap_or_default()).unwrap_or_default()
            }
            None => {
                stream.write_all(b"+ \r\n")?;
                match continuation(stream, outcome)? {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        return Ok(if !outcome.client_certificate {
            Err("EXTERNAL without a client certificate".into())
        } else if !authzid.is_empty() && authzid != user {
            Err(format!("not authorized as {authzid}"))
        } else {
            Ok(())
        });
    }
    let base = mechanism.trim_end_matches("-PLUS");
    let plus = base.len() != mechanism.len();
    let hash = match base {
        "SCRAM-SHA-1" => hash!(sha1::Sha1),
        "SCRAM-SHA-256" => hash!(sha2::Sha256),
        "SCRAM-SHA-512" => hash!(sha2::Sha512),
        _ => return Ok(Err(format!("{mechanism} unknown"))),
    };
    let client_first = match initial {
        Some(ir) if ir == "=" => String::new(),
        Some(ir) => match BASE64
            .decode(&ir)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(s) => s,
            None => return Ok(Err("initial response not base64".into())),
        },
        None => {
            stream.write_all(b"+ \r\n")?;
            match continuation(stream, outcome)? {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            }
        }
    };
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let Some(bare_at) = client_first.match_indices(',').nth(1).map(|(i, _)| i + 1) else {
        return Ok(Err("no GS2 header".into()));
    };
    let (gs2, bare) = client_first.split_at(bare_at);
    outcome.gs2_header = Some(gs2.to_owned());
    let (cb_name, cb_data) = server_binding(stream, binding);
    let flag = gs2.split(',').next().unwrap_or("");
    // RFC 5802 section 6: the flag must match the mechanism, and `y` from a client that
    // saw -PLUS advertised (we advertise it) means a downgrade.
    match (plus, flag) {
        (true, f) if f == format!("p={cb_name}") => {}
        (true, _) => return Ok(Err("-PLUS without the expected channel binding type".into())),
        (false, "n") => {}
        (false, "y") if advertised(&format!("{base}-PLUS")) => {
            return Ok(Err("e=server-does-support-channel-binding".into()));
        }
        (false, "y") => {}
        (false, _) => return Ok(Err("channel binding flag without -PLUS".into())),
    }
    let Some(name) = bare.strip_prefix("n=").and_then(|r| r.split(',').next()) else {
        return Ok(Err("no user name".into()));
    };
    if name != user {
        return Ok(Err(format!("unknown user {name}")));
    }
    let Some(client_nonce) = bare.split(",r=").nth(1) else {
        return Ok(Err("no nonce".into()));
    };
    let server_first = format!(
        "r={client_nonce}{SERVER_NONCE},s={},i={ITERATIONS}",
        BASE64.encode(SALT)
    );
    stream.write_all(format!("+ {}\r\n", BASE64.encode(&server_first)).as_bytes())?;
    let client_final = match continuation(stream, outcome)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let Some((without_proof, proof)) = client_final.rsplit_once(",p=") else {
        return Ok(Err("no proof".into()));
    };
    let mut expected_c = gs2.as_bytes().to_vec();
    if plus {
        expected_c.extend_from_slice(&cb_data);
    }
    let expected_start = format!(
        "c={},r={client_nonce}{SERVER_NONCE}",
        BASE64.encode(&expected_c)
    );
    if without_proof != expected_start {
        return Ok(Err("e=channel-bindings-dont-match".into()));
    }
    let salted = (hash.salted)(password.as_bytes());
    let client_key = (hash.hmac)(&salted, b"Client Key");
    let stored_key = (hash.digest)(&client_key);
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = (hash.hmac)(&stored_key, auth_message.as_bytes());
    let Ok(proof) = BASE64.decode(proof) else {
        return Ok(Err("proof not base64".into()));
    };
    let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if proof.len() != signature.len() || (hash.digest)(&recovered) != stored_key {
        return Ok(Err("e=invalid-proof".into()));
    }
    let server_key = (hash.hmac)(&salted, b"Server Key");
    let server_signature = (hash.hmac)(&server_key, auth_message.as_bytes());
    let server_final = format!("v={}", BASE64.encode(server_signature));
    stream.write_all(format!("+ {}\r\n", BASE64.encode(server_final)).as_bytes())?;
    match continuation(stream, outcome)? {
        Ok(empty) if empty.is_empty() => Ok(Ok(())),
        Ok(_) => Ok(Err("unexpected final response".into())),
        Err(e) => Ok(Err(e)),
    }
}
