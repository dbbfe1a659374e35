//! Connection options shared by the pop3 adapters (`pop3-blocking`, `pop3-async`): the
//! timeout, the core's configuration, the login policy, and the TLS trust policy, built into a
//! rustls `ClientConfig` (ring provider, TLS 1.2 and 1.3).
//!
//! Both adapters re-export these types, so a program switches between them without touching
//! its options. Certificates and host names are verified by default, against the webpki roots
//! plus any anchors added; turning verification off takes
//! [`TlsOptions::dangerous_accept_any_certificate`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::Config;
use pop3_proto::login::LoginPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why TLS options could not be set up: an unreadable or malformed certificate file, an empty
/// platform trust store, or a configuration rustls refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or parsing trust anchors failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// TLS from the first byte (POP3S, port 995; RFC 8314). The recommended choice.
    Implicit,
    /// Connect in plaintext, read the greeting, then upgrade with STLS (RFC 2595; port 110).
    /// A `-ERR` to STLS fails the connect: there is no silent fallback to plaintext.
    StartTls,
    /// No TLS at all. Passwords are then refused unless
    /// [`Options::allow_plaintext`] is set.
    None,
}

/// Options for an adapter's `Connection::connect` and `Connection::new`, builder style:
///
/// ```no_run
/// use std::time::Duration;
/// use pop3_tls::{Options, TlsOptions};
///
/// let options = Options::default()
///     .timeout(Duration::from_secs(20))
///     .tls(TlsOptions::default().add_ca_file("/etc/pop3/company-ca.pem")?);
/// # Ok::<(), pop3_tls::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The limit for connecting, the TLS handshake, each write, and each wait for a status
    /// line (default 60 s). A status line (the greeting, a reply's first line) must be
    /// complete within it, counted from when the wait began: a server trickling bytes cannot
    /// stretch it. Within a multi-line reply it bounds a complete stall; the pace is the
    /// business of [`speed_limit`](Self::speed_limit). Must not be zero. See
    /// [`pop3_proto::timing`].
    pub timeout: Duration,
    /// The low-speed limit of a multi-line reply (a body or a listing), in bytes per second
    /// averaged over [`speed_time`](Self::speed_time), as curl's `--speed-limit`: fewer bytes
    /// than `speed_limit × speed_time` within `speed_time` end the connection. Default 10
    /// bytes/s (0 turns it off): a tenth of what a 1200 bit/s modem carries and a third of a
    /// 300 bit/s one, so no link anyone still uses is cut, while a server trickling a byte a
    /// second is cut within `speed_time`.
    pub speed_limit: u32,
    /// The time over which [`speed_limit`](Self::speed_limit) is averaged (default 60 s: long
    /// enough for a congested link's stalls and retransmissions to average out).
    pub speed_time: Duration,
    /// The core's configuration (limits, pipelining window, quirks). Two fields are set by
    /// the connection itself: `allow_plaintext_auth` from [`Options::login`], and `trace`
    /// when `tracing` has DEBUG enabled.
    pub config: Config,
    /// TLS trust settings.
    pub tls: TlsOptions,
    /// What `Connection::login` may use, and whether a password may
    /// go over a connection without TLS at all.
    pub login: LoginPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            speed_limit: 10,
            speed_time: Duration::from_secs(60),
            config: Config::default(),
            tls: TlsOptions::default(),
            login: LoginPolicy::default(),
        }
    }
}

impl Options {
    /// The defaults: 60 s timeout, 10 bytes/s over 60 s speed limit, default core config, webpki roots, no plaintext passwords,
    /// no APOP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Options::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the low-speed limit of multi-line replies: fewer than `bytes_per_second` averaged
    /// over `time` end the connection ([`Options::speed_limit`], [`Options::speed_time`]).
    #[must_use]
    pub fn speed_limit(mut self, bytes_per_second: u32, time: Duration) -> Self {
        self.speed_limit = bytes_per_second;
        self.speed_time = time;
        self
    }

    /// The read deadlines these options set, for an adapter's run loop.
    pub fn read_clock(&self) -> pop3_proto::ReadClock {
        pop3_proto::ReadClock::new(self.timeout, self.speed_limit, self.speed_time)
    }

    /// Sets [`Options::config`].
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets [`Options::tls`].
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`Options::login`].
    #[must_use]
    pub fn login(mut self, login: LoginPolicy) -> Self {
        self.login = login;
        self
    }

    /// Lets `Connection::login` choose APOP (off by default: MD5 of
    /// a predictable challenge is weak).
    #[must_use]
    pub fn allow_apop(mut self, allow: bool) -> Self {
        self.login.allow_apop = allow;
        self
    }

    /// Allows sending a password or token over a connection without TLS (off by default).
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.login.allow_plaintext = allow;
        self
    }
}

/// Which certificates the client trusts, and how it identifies the server.
///
/// By default: the Mozilla roots of the `webpki-roots` crate, SNI on, and the server's
/// certificate verified against the host name given to
/// `Connection::connect`. Add your own anchors with
/// [`add_ca_pem`](Self::add_ca_pem) / [`add_ca_file`](Self::add_ca_file), use the operating
/// system's store with [`platform_roots`](Self::platform_roots), or hand over a complete
/// rustls config with [`client_config`](Self::client_config).
#[derive(Clone)]
pub struct TlsOptions {
    webpki_roots: bool,
    anchors: RootCertStore,
    verify: bool,
    sni: bool,
    config: Option<Arc<ClientConfig>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            webpki_roots: true,
            anchors: RootCertStore::empty(),
            verify: true,
            sni: true,
            config: None,
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("webpki_roots", &self.webpki_roots)
            .field("extra_anchors", &self.anchors.len())
            .field("verify", &self.verify)
            .field("sni", &self.sni)
            .field("custom_config", &self.config.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// The defaults: webpki roots, verification and SNI on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the anchors added with the other methods, not the webpki roots.
    #[must_use]
    pub fn without_webpki_roots(mut self) -> Self {
        self.webpki_roots = false;
        self
    }

    /// Adds the operating system's trust store (through `rustls-native-certs`). Certificates it
    /// cannot parse are skipped; it fails only if it finds none at all.
    pub fn platform_roots(mut self) -> Result<Self, Error> {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = self.anchors.add_parsable_certificates(found.certs);
        if added == 0 {
            let detail = found
                .errors
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no usable certificate in the platform trust store {detail}")
                    .trim_end()
                    .to_owned(),
            )));
        }
        Ok(self)
    }

    /// Adds every certificate of a PEM text (`-----BEGIN CERTIFICATE-----` blocks) as a trust
    /// anchor. Fails if there is none or one is malformed.
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut count = 0;
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|e| invalid_data(format!("invalid PEM: {e}")))?;
            self.anchors.add(der)?;
            count += 1;
        }
        if count == 0 {
            return Err(invalid_data("no certificate in the PEM data".to_owned()));
        }
        Ok(self)
    }

    /// Adds every certificate of a PEM file as a trust anchor (see [`add_ca_pem`](Self::add_ca_pem)).
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let pem = std::fs::read(path)?;
        self.add_ca_pem(&pem)
    }

    /// Adds one DER-encoded certificate as a trust anchor.
    pub fn add_ca_der(mut self, der: &[u8]) -> Result<Self, Error> {
        self.anchors.add(CertificateDer::from(der.to_vec()))?;
        Ok(self)
    }

    /// Turns SNI off (it is on by default; some servers pick their certificate by it).
    #[must_use]
    pub fn disable_sni(mut self) -> Self {
        self.sni = false;
        self
    }

    /// **Dangerous**: accepts any certificate for any host name. The connection is then
    /// encrypted but not authenticated, so anyone on the path can read the password. Only for
    /// tests and for servers you reach over a channel you already trust.
    #[must_use]
    pub fn dangerous_accept_any_certificate(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Uses this rustls config as it is; every other setting here is ignored.
    #[must_use]
    pub fn client_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.config = Some(config);
        self
    }

    /// The rustls config these options describe (ring provider, TLS 1.2 and 1.3).
    pub fn build(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let mut config = if self.verify {
            let mut roots = self.anchors.clone();
            if self.webpki_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let verifier = AcceptAnyCertificate(provider.signature_verification_algorithms);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        };
        config.enable_sni = self.sni;
        Ok(Arc::new(config))
    }
}

fn invalid_data(message: String) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message,
    ))
}

/// The verifier behind [`TlsOptions::dangerous_accept_any_certificate`]: any certificate
/// passes, but the handshake signatures are still checked (so the session keys are bound to
/// the certificate presented, whoever that is).
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
