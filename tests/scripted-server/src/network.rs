//! Peers for the network-path tests: a scripted fake proxy (for refusals, lies and
//! authentication failures no real proxy can be made to produce on demand), the real proxies
//! `scripts/proxies/start.sh` runs (dante, tinyproxy), and "black hole" listeners that never
//! answer a SYN (for Happy Eyeballs).
//!
//! | Variable | Meaning | Set by |
//! |---|---|---|
//! | `POP3_SOCKS_ADDR` | dante, SOCKS5 without authentication | `.ci/run` (127.0.0.1:11080) |
//! | `POP3_SOCKS_AUTH_ADDR` | dante, SOCKS5 username/password | `.ci/run` (127.0.0.1:11081) |
//! | `POP3_HTTP_PROXY_ADDR` | tinyproxy, HTTP CONNECT | `.ci/run` (127.0.0.1:18080) |
//! | `POP3_HTTP_PROXY_AUTH_ADDR` | tinyproxy, HTTP CONNECT with basic authentication | `.ci/run` (127.0.0.1:18081) |
//!
//! The credentials of the authenticating ones are [`PROXY_USER`] / [`PROXY_PASSWORD`].

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error as KitError;
use pop3_dovecot_peer::InteropMode;

/// The user name the real authenticating proxies accept.
pub const PROXY_USER: &str = "pop3proxy";
/// Its password.
pub const PROXY_PASSWORD: &str = "proxy-secret";

/// One step of a [`FakeProxy`].
#[derive(Debug, Clone)]
pub enum ProxyStep {
    /// Read exactly these bytes: anything else ends the script with an error (from
    /// [`FakeProxy::finish`]); the client closing before all came ends it quietly (the bytes
    /// that came are in what `finish` returns).
    Expect(Vec<u8>),
    /// Send these bytes.
    Send(Vec<u8>),
    /// Connect to this address and relay both ways until either side closes.
    Tunnel(SocketAddr),
    /// Close the connection.
    Close,
}

/// A one-connection proxy on 127.0.0.1 that plays [`ProxyStep`]s.
#[derive(Debug)]
pub struct FakeProxy {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<Result<(), KitError>>>,
}

impl FakeProxy {
    /// Listens and plays `steps` for the first connection.
    pub fn start(steps: Vec<ProxyStep>) -> Result<FakeProxy, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&received);
        let thread = std::thread::spawn(move || -> Result<(), KitError> {
            let (mut client, _) = listener.accept()?;
            client.set_read_timeout(Some(Duration::from_secs(10)))?;
            for step in steps {
                match step {
                    ProxyStep::Expect(bytes) => {
                        let mut buf = vec![0; bytes.len()];
                        let mut got = 0;
                        while got < buf.len() {
                            let n = client.read(&mut buf[got..])?;
                            if n == 0 {
                                break;
                            }
                            got += n;
                        }
                        record
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .extend_from_slice(&buf[..got]);
                        if buf[..got] != bytes[..got] {
                            return Err(KitError::Usage(format!(
                                "the fake proxy expected {bytes:?}, got {:?}",
                                &buf[..got]
                            )));
                        }
                        if got < buf.len() {
                            return Ok(());
                        }
                    }
                    ProxyStep::Send(bytes) => client.write_all(&bytes)?,
                    ProxyStep::Tunnel(target) => return relay(client, target),
                    ProxyStep::Close => return Ok(()),
                }
            }
            // Hold the connection until the client closes it.
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink);
            Ok(())
        });
        Ok(FakeProxy {
            addr,
            received,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the script to end; returns what the client sent to the proxy (before any
    /// tunnel).
    pub fn finish(mut self) -> Result<Vec<u8>, KitError> {
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| KitError::ThreadPanicked)??;
        }
        Ok(self
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }
}

fn relay(client: TcpStream, target: SocketAddr) -> Result<(), KitError> {
    let server = TcpStream::connect(target)?;
    client.set_read_timeout(None)?;
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Write);
    upstream.join().map_err(|_| KitError::ThreadPanicked)?;
    Ok(())
}

/// The real proxies of `scripts/proxies/start.sh`, from the environment (see the module
/// docs).
#[derive(Debug, Clone, Copy)]
pub struct RealProxies {
    /// dante without authentication.
    pub socks: SocketAddr,
    /// dante with username/password.
    pub socks_auth: SocketAddr,
    /// tinyproxy without authentication.
    pub http: SocketAddr,
    /// tinyproxy with basic authentication.
    pub http_auth: SocketAddr,
}

impl RealProxies {
    /// The proxies, if their variables are set and each answers a TCP connect. `None` (with
    /// a note on stderr) when `POP3_INTEROP=off`, or when one is missing and it is `auto`;
    /// with `POP3_INTEROP=required`, a missing or silent proxy panics.
    pub fn from_env() -> Option<RealProxies> {
        let mode = InteropMode::from_env();
        if mode == InteropMode::Off {
            eprintln!("real proxies: skipped (POP3_INTEROP=off)");
            return None;
        }
        let get = |var: &str| -> Result<SocketAddr, String> {
            let text = std::env::var(var).map_err(|_| format!("{var} is not set"))?;
            let addr: SocketAddr = text
                .parse()
                .map_err(|_| format!("{var}={text:?} is not an address"))?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| format!("{var}={addr}: {e}"))?;
            Ok(addr)
        };
        let found = (|| {
            Ok::<_, String>(RealProxies {
                socks: get("POP3_SOCKS_ADDR")?,
                socks_auth: get("POP3_SOCKS_AUTH_ADDR")?,
                http: get("POP3_HTTP_PROXY_ADDR")?,
                http_auth: get("POP3_HTTP_PROXY_AUTH_ADDR")?,
            })
        })();
        match found {
            Ok(proxies) => Some(proxies),
            Err(problem) if mode == InteropMode::Required => {
                panic!("POP3_INTEROP=required but {problem} (run scripts/proxies/start.sh)")
            }
            Err(problem) => {
                eprintln!("real proxies: skipped ({problem}); run scripts/proxies/start.sh");
                None
            }
        }
    }
}

/// A listener whose accept queue is full, so that the kernel drops every new SYN: a connect
/// to it neither succeeds nor fails until the client gives up (an address that "never
/// answers", as a filtered or dead host). Keep it alive as long as it is needed.
#[derive(Debug)]
pub struct BlackHole {
    _listener: socket2::Socket,
    _filler: Vec<TcpStream>,
    addr: SocketAddr,
}

impl BlackHole {
    /// A black hole on `addr` (port 0 for any).
    pub fn bind(addr: SocketAddr) -> Result<BlackHole, KitError> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        listener.set_reuse_address(false)?;
        listener.bind(&addr.into())?;
        listener.listen(0)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| KitError::Usage("not an IP listener".to_owned()))?;
        // A backlog of 0 still queues one connection (Linux queues backlog + 1): fill the
        // queue until a connect no longer completes.
        let mut filler = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) if filler.len() < 8 => filler.push(stream),
                Ok(_) => {
                    return Err(KitError::Usage(
                        "the accept queue never filled: no black hole on this system".to_owned(),
                    ));
                }
                Err(_) => break,
            }
        }
        Ok(BlackHole {
            _listener: listener,
            _filler: filler,
            addr,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A CA that issued two server certificates for `localhost` and `127.0.0.1` and revoked one
/// of them in a CRL: for `--crl-file` and `TlsOptions::add_crl_pem`.
#[derive(Debug)]
pub struct RevokingCa {
    /// The CA certificate (PEM), to trust.
    pub ca_pem: String,
    /// The CRL (PEM) listing [`RevokingCa::revoked`]'s certificate.
    pub crl_pem: String,
    /// A CRL (PEM) of the same CA that lists nothing.
    pub empty_crl_pem: String,
    /// A server config presenting the revoked certificate (and the CA).
    pub revoked: Arc<rustls::ServerConfig>,
    /// A server config presenting a certificate that is not revoked.
    pub good: Arc<rustls::ServerConfig>,
}

impl RevokingCa {
    /// Generates it all.
    pub fn generate() -> Result<RevokingCa, KitError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa,
            KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
            SerialNumber, date_time_ymd,
        };
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let rc = |e: rcgen::Error| KitError::Usage(format!("rcgen: {e}"));
        let tls = |e: rustls::Error| KitError::Usage(format!("rustls: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pop3 test revoking CA");
        let ca_key = KeyPair::generate().map_err(rc)?;
        let ca = ca_params.self_signed(&ca_key).map_err(rc)?;
        let leaf = |serial: u64| -> Result<Arc<rustls::ServerConfig>, KitError> {
            let mut params =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .map_err(rc)?;
            params.serial_number = Some(SerialNumber::from(serial));
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().map_err(rc)?;
            let cert = params.signed_by(&key, &ca, &ca_key).map_err(rc)?;
            let config =
                rustls::ServerConfig::builder_with_provider(pop3_demo_server::crypto_provider())
                    .with_safe_default_protocol_versions()
                    .map_err(tls)?
                    .with_no_client_auth()
                    .with_single_cert(
                        vec![cert.der().clone(), ca.der().clone()],
                        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                    )
                    .map_err(tls)?;
            Ok(Arc::new(config))
        };
        let crl = |revoked: Vec<u64>| -> Result<String, KitError> {
            let params = CertificateRevocationListParams {
                this_update: date_time_ymd(2024, 1, 1),
                next_update: date_time_ymd(2099, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .into_iter()
                    .map(|serial| RevokedCertParams {
                        serial_number: SerialNumber::from(serial),
                        revocation_time: date_time_ymd(2024, 1, 1),
                        reason_code: Some(RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            params
                .signed_by(&ca, &ca_key)
                .map_err(rc)?
                .pem()
                .map_err(rc)
        };
        Ok(RevokingCa {
            ca_pem: ca.pem(),
            crl_pem: crl(vec![42])?,
            empty_crl_pem: crl(Vec::new())?,
            revoked: leaf(42)?,
            good: leaf(43)?,
        })
    }
}
