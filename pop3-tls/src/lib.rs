//! Connection options shared by the pop3 adapters (`pop3-blocking`, `pop3-async`): the
//! timeout, the core's configuration, the login policy, and the TLS trust policy, built into a
//! rustls `ClientConfig` (ring provider, TLS 1.2 and 1.3).
//!
//! Both adapters re-export these types, so a program switches between them without touching
//! its options. Certificates and host names are verified by default, against the webpki roots
//! plus any anchors added; turning verification off takes
//! [`TlsOptions::dangerous_accept_any_certificate`].
//!
//! Two explicit exceptions serve self-hosted servers:
//! - **Exact match**: a server certificate byte-identical to one added with
//!   [`TlsOptions::add_ca_file`] (or `_pem`, `_der`) is trusted as it is, even when it is marked
//!   `CA:TRUE` (as `openssl req -x509` makes it by default) and so unusable as a server
//!   certificate for webpki. Its validity period and the host name are still checked (the
//!   subjectAltNames, or the subject's common name when it has none).
//! - **Pins**: [`TlsOptions::pin_fingerprint`] trusts exactly the certificates with these
//!   SHA-256 [`Fingerprint`]s and no other: a pin replaces chain, validity and host-name
//!   checks, as mpop's `--tls-fingerprint` does. A mismatch is a [`PinMismatch`].
//!
//! [`describe_error`] turns a rustls error into plain words for people.
//!
//! The network path is decided here too, sans-IO, for both adapters to drive: [`proxy`]
//! (SOCKS5 and HTTP CONNECT handshakes), [`connect`] (the Happy Eyeballs schedule),
//! [`ascii_host`] (IDN host names to A-labels), CRLs ([`TlsOptions::add_crl_file`]) and the
//! choice of root store ([`TrustStore`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
mod binding;
mod client_cert;
pub mod connect;
mod crl;
mod error;
mod idn;
mod methods;
pub mod proxy;
mod roots;
mod session;
mod trust;
mod words;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::Config;
use pop3_proto::login::LoginPolicy;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

pub use binding::{channel_binding, server_end_point};
pub use client_cert::ClientCertificate;
pub use error::{ConnectionError, scram_nonce, server_name};
pub use idn::ascii_host;
pub use pop3_proto;
pub use proxy::{Proxy, ProxyError, ProxyKind, ProxyUrlError};
pub use roots::{TrustStore, TrustStoreError};
pub use session::Session;
pub use trust::{CertificateRecorder, Fingerprint, FingerprintError, PinMismatch, pin_mismatch};
pub use words::{CertificateInfo, CertificateParseError, describe_error};

/// The `tracing` target of the whole pop3 family: both adapters log the protocol dialogue
/// (`C: STAT`, `S: +OK 2 320`, secrets redacted) under this target, at DEBUG, and decide whether
/// to produce it by checking DEBUG for this same target when a connection starts.
///
/// Filter on it, for example with `tracing_subscriber`'s `Targets::new().with_target(TRACE_TARGET,
/// LevelFilter::DEBUG)` or `RUST_LOG=pop3=debug`.
pub const TRACE_TARGET: &str = "pop3";

/// Why TLS options could not be set up: an unreadable or malformed certificate file, an empty
/// platform trust store, or a configuration rustls refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or parsing trust anchors failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {}", describe_error(.0))]
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
    /// The limit for connecting (unless [`connect_timeout`](Self::connect_timeout) is set),
    /// the TLS handshake, each write, and each wait for a status line (default 60 s). A
    /// status line (the greeting, a reply's first line) must be complete within it, counted
    /// from when the wait began: a server trickling bytes cannot stretch it. Within a
    /// multi-line reply it bounds a complete stall; the pace is the business of
    /// [`speed_limit`](Self::speed_limit). Must not be zero. See [`pop3_proto::timing`].
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
    /// The core's configuration (limits, pipelining window, quirks). Two fields are
    /// *combined* with what the connection knows, never overwritten (the same in both
    /// adapters; see [`Options::client_config`]): `allow_plaintext_auth` is on when it is set
    /// here **or** in [`Options::login`], and `trace` is on when it is set here **or**
    /// `tracing` has DEBUG enabled for [`TRACE_TARGET`].
    pub config: Config,
    /// TLS trust settings.
    pub tls: TlsOptions,
    /// What `Connection::login` may use, and whether a password may
    /// go over a connection without TLS at all.
    pub login: LoginPolicy,
    /// The limit for establishing the connection: name resolution, the TCP connect over
    /// every address raced (Happy Eyeballs), and the proxy handshake, if any. `None` (the
    /// default): [`timeout`](Self::timeout) is used. The TLS handshake and everything after
    /// it are bounded by `timeout`.
    pub connect_timeout: Option<Duration>,
    /// The delay between the start of one connection attempt and the next, when the host
    /// has several addresses (RFC 8305 "Connection Attempt Delay"; default 250 ms, at least
    /// 10 ms). See [`connect`].
    pub happy_eyeballs_delay: Duration,
    /// The source address to connect from (`--bind`; port chosen by the system). Only the
    /// server's (or proxy's) addresses of the same family are then tried.
    pub bind: Option<IpAddr>,
    /// A proxy to reach the server through (SOCKS5 or HTTP CONNECT); see [`proxy`].
    pub proxy: Option<Proxy>,
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
            connect_timeout: None,
            happy_eyeballs_delay: connect::CONNECTION_ATTEMPT_DELAY,
            bind: None,
            proxy: None,
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

    /// The core's configuration for a new connection: [`Options::config`], with
    /// `allow_plaintext_auth` ORed with [`LoginPolicy::allow_plaintext`] and `trace` ORed with
    /// `trace_enabled` (whether `tracing` has DEBUG on for [`TRACE_TARGET`]). Setting either
    /// in `config` is never undone.
    pub fn client_config(&self, trace_enabled: bool) -> Config {
        let mut config = self.config.clone();
        config.allow_plaintext_auth |= self.login.allow_plaintext;
        config.trace |= trace_enabled;
        config
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

    /// Trusts the server's certificate only if it has this SHA-256 fingerprint (see
    /// [`TlsOptions::pin_fingerprint`]).
    #[must_use]
    pub fn pin_fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.tls = self.tls.pin_fingerprint(fingerprint);
        self
    }

    /// Sets [`Options::login`].
    #[must_use]
    pub fn login(mut self, login: LoginPolicy) -> Self {
        self.login = login;
        self
    }

    /// Presents this TLS client certificate (see [`TlsOptions::client_cert`]).
    #[must_use]
    pub fn client_cert(mut self, certificate: ClientCertificate) -> Self {
        self.tls = self.tls.client_cert(certificate);
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
    /// The certificates added explicitly, for exact-match trust.
    trusted: Vec<CertificateDer<'static>>,
    pins: Vec<Fingerprint>,
    recorder: Option<CertificateRecorder>,
    verify: bool,
    sni: bool,
    config: Option<Arc<ClientConfig>>,
    client_cert: Option<ClientCertificate>,
    /// Certificate revocation lists (see `add_crl_pem`).
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            webpki_roots: true,
            anchors: RootCertStore::empty(),
            trusted: Vec::new(),
            pins: Vec::new(),
            recorder: None,
            verify: true,
            sni: true,
            config: None,
            client_cert: None,
            crls: Vec::new(),
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("webpki_roots", &self.webpki_roots)
            .field("extra_anchors", &self.anchors.len())
            .field("pins", &self.pins)
            .field("recorder", &self.recorder.is_some())
            .field("verify", &self.verify)
            .field("sni", &self.sni)
            .field("custom_config", &self.config.is_some())
            .field("client_cert", &self.client_cert)
            .field("crls", &self.crls.len())
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
    ///
    /// A server certificate byte-identical to one of them is trusted as it is, even if it is
    /// marked `CA:TRUE` (see the crate docs: exact match).
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut count = 0;
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|e| invalid_data(format!("invalid PEM: {e}")))?;
            self.anchors.add(der.clone())?;
            self.trusted.push(der);
            count += 1;
        }
        if count == 0 {
            return Err(invalid_data("no certificate in the PEM data".to_owned()));
        }
        Ok(self)
    }

    /// Adds every certificate of a PEM file as a trust anchor (see [`add_ca_pem`](Self::add_ca_pem)).
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("certificate file {}: {e}", path.display()),
            ))
        })?;
        self.add_ca_pem(&pem).map_err(|e| match e {
            Error::Io(e) => Error::Io(std::io::Error::new(
                e.kind(),
                format!("certificate file {}: {e}", path.display()),
            )),
            other => other,
        })
    }

    /// Adds one DER-encoded certificate as a trust anchor (exact match included, as for
    /// [`add_ca_pem`](Self::add_ca_pem)).
    pub fn add_ca_der(mut self, der: &[u8]) -> Result<Self, Error> {
        let der = CertificateDer::from(der.to_vec());
        self.anchors.add(der.clone())?;
        self.trusted.push(der);
        Ok(self)
    }

    /// Trusts the server's certificate only if its SHA-256 fingerprint is this one (or
    /// another pinned one). A pin replaces chain validation, the validity period and the
    /// host-name check for that exact certificate (as mpop's `--tls-fingerprint` does); every
    /// other certificate is refused with a [`PinMismatch`], even one the roots would accept.
    #[must_use]
    pub fn pin_fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        if !self.pins.contains(&fingerprint) {
            self.pins.push(fingerprint);
        }
        self
    }

    /// Records the certificate chain the server presents in each handshake into `recorder`,
    /// whether or not it is then trusted (for diagnostics: `pop3 serverinfo`). Not with
    /// [`client_config`](Self::client_config), whose verifier is yours.
    #[must_use]
    pub fn record_certificates(mut self, recorder: &CertificateRecorder) -> Self {
        self.recorder = Some(recorder.clone());
        self
    }

    /// Presents this client certificate in every handshake (for servers that require one, and
    /// for SASL EXTERNAL). Not with [`client_config`](Self::client_config), which is yours.
    #[must_use]
    pub fn client_cert(mut self, certificate: ClientCertificate) -> Self {
        self.client_cert = Some(certificate);
        self
    }

    /// [`client_cert`](Self::client_cert) from a PEM certificate file and a PEM key file
    /// ([`ClientCertificate::from_files`]).
    pub fn client_cert_files(
        self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Ok(self.client_cert(ClientCertificate::from_files(certificate, key)?))
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

    /// Uses this rustls config as it is; every other setting here (pins and exact-match trust
    /// included) is ignored.
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
        let mut roots = self.anchors.clone();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let webpki = if self.verify && !roots.is_empty() {
            let mut builder =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            if !self.crls.is_empty() {
                builder = builder
                    .with_crls(self.crls.iter().cloned())
                    .allow_unknown_revocation_status();
            }
            let verifier = builder
                .build()
                .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
            Some(verifier)
        } else {
            None
        };
        let verifier = trust::Verifier {
            webpki,
            trusted: self.trusted.clone(),
            pins: self.pins.clone(),
            accept_any: !self.verify,
            recorder: self.recorder.clone(),
            algorithms: provider.signature_verification_algorithms,
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &self.client_cert {
            Some(cert) => builder.with_client_auth_cert(cert.chain().to_vec(), cert.key())?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni;
        Ok(Arc::new(config))
    }
}

/// A failure to reach `host:port` (name resolution or TCP connect), with the address in its
/// message: `connecting to HOST:PORT: <error>`. The kind is kept, so a timeout is still a
/// timeout. Both adapters' `connect` use it.
pub fn connect_error(host: &str, port: u16, error: std::io::Error) -> std::io::Error {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    std::io::Error::new(error.kind(), format!("connecting to {address}: {error}"))
}

fn invalid_data(message: String) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message,
    ))
}

impl Options {
    /// Sets [`Options::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The limit for establishing the connection: [`Options::connect_timeout`], or else
    /// [`Options::timeout`].
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.timeout)
    }

    /// Sets [`Options::happy_eyeballs_delay`].
    #[must_use]
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.happy_eyeballs_delay = delay;
        self
    }

    /// Sets [`Options::bind`].
    #[must_use]
    pub fn bind(mut self, source: IpAddr) -> Self {
        self.bind = Some(source);
        self
    }

    /// Sets [`Options::proxy`].
    #[must_use]
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }
}
