//! Connection options and the TLS policy.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::{fmt, io};

use pop3_proto::Config;
use pop3_proto::login::LoginPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// How [`Connection::connect`](crate::Connection::connect) secures the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// TLS from the first byte (POP3S, port 995, RFC 8314).
    Implicit,
    /// Plain TCP, then STLS right after the greeting (RFC 2595); fails if the server refuses.
    StartTls,
    /// No TLS. Passwords are then refused unless explicitly allowed.
    None,
}

/// Options for a connection. [`Options::default`] is safe: 60 s timeout, TLS verified against
/// the webpki roots, no plaintext passwords.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The longest wait for connecting, the TLS handshake, and each read or write. Default
    /// 60 s. A timeout closes the connection ([`Error::Timeout`]).
    pub timeout: Duration,
    /// The protocol core's configuration (limits, pipelining window, quirks).
    ///
    /// `trace` is switched on when `tracing` has DEBUG enabled, and `allow_plaintext_auth`
    /// when [`Options::login`] allows plaintext.
    pub config: Config,
    /// The TLS policy.
    pub tls: TlsOptions,
    /// What [`Connection::login`](crate::Connection::login) may use.
    pub login: LoginPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            config: Config::default(),
            tls: TlsOptions::default(),
            login: LoginPolicy::default(),
        }
    }
}

/// The TLS policy: the webpki roots plus any extra CA certificates; SNI and host name
/// verification always on, unless [`TlsOptions::dangerous_accept_any_certificate`].
#[derive(Clone, Default)]
pub struct TlsOptions {
    extra_roots: Vec<CertificateDer<'static>>,
    accept_any: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("extra_roots", &self.extra_roots.len())
            .field("accept_any", &self.accept_any)
            .finish()
    }
}

impl TlsOptions {
    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` sections) besides the
    /// webpki roots. Fails with [`Error::Io`] (`InvalidData`) if there is none or one is
    /// malformed.
    pub fn add_ca_pem(&mut self, pem: &[u8]) -> Result<&mut Self, Error> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no certificate in the PEM data",
            )
            .into());
        }
        Ok(self)
    }

    /// Trusts the CA certificates in the PEM file at `path`, like [`TlsOptions::add_ca_pem`].
    pub fn add_ca_file(&mut self, path: impl AsRef<Path>) -> Result<&mut Self, Error> {
        let pem = std::fs::read(path)?;
        self.add_ca_pem(&pem)
    }

    /// Accepts any server certificate, for any name, signed by anyone.
    ///
    /// # Danger
    ///
    /// This removes the protection TLS gives against an active attacker, who can then read the
    /// password. Use it only against a test server you control.
    pub fn dangerous_accept_any_certificate(&mut self) -> &mut Self {
        self.accept_any = true;
        self
    }

    /// The rustls configuration for this policy, on the ring provider.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = if self.accept_any {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            for cert in &self.extra_roots {
                roots.add(cert.clone())?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// The TLS server name for `host` (a DNS name or an IP address).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidServerName(host.to_owned()))
}

/// The verifier behind `dangerous_accept_any_certificate`: any certificate, but the handshake
/// signatures are still checked (the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
