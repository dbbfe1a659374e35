//! The kit's TLS material: one self-signed certificate per test process.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::Error;

/// The rustls crypto provider the kit uses everywhere: *ring*.
///
/// Building configs with an explicit provider avoids depending on a
/// process-wide default provider being installed.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate (ECDSA P-256) for `localhost` and `127.0.0.1`,
/// its private key, and rustls configs built from them.
///
/// The certificate is its own trust anchor: a client that adds
/// [`TestCa::certificate_der`] (or the PEM form) to its root store accepts
/// the kit's servers under the names `localhost` and `127.0.0.1`.
/// It is an end-entity certificate (not `CA:TRUE`), as webpki requires.
pub struct TestCa {
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    key_pem: String,
    key_der: PrivatePkcs8KeyDer<'static>,
    server_config: Arc<ServerConfig>,
    client_config: Arc<ClientConfig>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("subject", &"CN=localhost")
            .field("names", &["localhost", "127.0.0.1"])
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// The certificate shared by every server of this process, generated on
    /// first use.
    ///
    /// # Panics
    ///
    /// If rcgen or rustls fail to build the certificate or the configs,
    /// which does not happen with the pinned versions.
    pub fn shared() -> &'static TestCa {
        static SHARED: OnceLock<TestCa> = OnceLock::new();
        SHARED.get_or_init(|| TestCa::generate().expect("generating the kit's test certificate"))
    }

    /// Generates a fresh certificate and key (use [`TestCa::shared`] unless a
    /// test needs a certificate the client does *not* trust).
    pub fn generate() -> Result<TestCa, Error> {
        TestCa::generate_with(&CertSpec::new())
    }

    /// A self-signed certificate as `openssl req -x509 -new -subj /CN=localhost -addext
    /// subjectAltName=...` makes it with OpenSSL's defaults: marked `CA:TRUE` (basic
    /// constraints critical, key identifiers), for `localhost` and `127.0.0.1`. webpki rejects
    /// it as a server certificate (`CaUsedAsEndEntity`) even when it is a trust anchor.
    pub fn openssl_self_signed() -> Result<TestCa, Error> {
        TestCa::generate_with(&CertSpec::new().ca_true())
    }

    /// Generates a certificate as `spec` says.
    pub fn generate_with(spec: &CertSpec) -> Result<TestCa, Error> {
        let mut params = rcgen::CertificateParams::new(spec.names.clone())?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, spec.common_name.as_str());
        params.distinguished_name = name;
        if spec.ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.use_authority_key_identifier_extension = true;
        }
        if let Some((from, to)) = spec.validity {
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        }
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let certificate_der = cert.der().clone();
        let key_der = PrivatePkcs8KeyDer::from(key.serialize_der());

        let server_config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate_der.clone()],
                PrivateKeyDer::Pkcs8(key_der.clone_key()),
            )?;
        let mut roots = RootCertStore::empty();
        roots.add(certificate_der.clone())?;
        let client_config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();

        Ok(TestCa {
            certificate_pem: cert.pem(),
            certificate_der,
            key_pem: key.serialize_pem(),
            key_der,
            server_config: Arc::new(server_config),
            client_config: Arc::new(client_config),
        })
    }

    /// The certificate in PEM form (`-----BEGIN CERTIFICATE-----`).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The certificate in DER form.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// The private key in PKCS#8 PEM form (for tests of other servers).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key in PKCS#8 DER form.
    pub fn key_der(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.key_der
    }

    /// A root store holding only this certificate.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // The certificate was accepted by `add` when the configs were built.
        let _ = roots.add(self.certificate_der.clone());
        roots
    }

    /// The server config the kit's servers use (*ring*, TLS 1.2 and 1.3).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server_config)
    }

    /// A client config (*ring*, TLS 1.2 and 1.3) that trusts only this
    /// certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.client_config)
    }

    /// Writes the certificate as PEM to `path` (for clients configured by a
    /// file name, such as a CLI's `--ca-file`).
    pub fn write_certificate_pem(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        std::fs::write(path, self.certificate_pem.as_bytes())?;
        Ok(())
    }
}

/// A date: year, month, day.
pub type Ymd = (i32, u8, u8);

/// What [`TestCa::generate_with`] makes: by default an end-entity certificate for
/// `localhost` and `127.0.0.1` with the subject `CN=localhost`, valid from 1975 to 4096.
#[derive(Debug, Clone)]
pub struct CertSpec {
    names: Vec<String>,
    common_name: String,
    ca: bool,
    validity: Option<(Ymd, Ymd)>,
}

impl Default for CertSpec {
    fn default() -> Self {
        Self {
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            common_name: "localhost".to_owned(),
            ca: false,
            validity: None,
        }
    }
}

impl CertSpec {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subjectAltNames (DNS names or IP addresses) instead of `localhost`, `127.0.0.1`.
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// The subject's common name instead of `localhost`.
    pub fn common_name(mut self, name: &str) -> Self {
        self.common_name = name.to_owned();
        self
    }

    /// Marks the certificate `CA:TRUE`, as `openssl req -x509` does by default.
    pub fn ca_true(mut self) -> Self {
        self.ca = true;
        self
    }

    /// Valid from `from` to `to` (year, month, day; midnight UTC), e.g. an expired one.
    pub fn valid(mut self, from: Ymd, to: Ymd) -> Self {
        self.validity = Some((from, to));
        self
    }
}

/// The PEM text of the shared test certificate ([`TestCa::shared`]).
pub fn certificate_pem() -> &'static str {
    TestCa::shared().certificate_pem()
}

/// The DER form of the shared test certificate ([`TestCa::shared`]).
pub fn certificate_der() -> &'static CertificateDer<'static> {
    TestCa::shared().certificate_der()
}

/// Reads every certificate from a PEM file (for example the Dovecot peer's
/// `tls/cert.pem`).
pub fn load_certificates_pem(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Pem(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Pem(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

/// A client config (*ring*) that trusts exactly the certificates in the PEM
/// file at `path`.
pub fn client_config_trusting(path: impl AsRef<Path>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates_pem(path)? {
        roots.add(cert)?;
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
