//! TLS client certificates: for servers that require one, and for SASL EXTERNAL.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A client certificate chain and its private key, presented in every TLS handshake of a
/// connection whose [`TlsOptions`](crate::TlsOptions) carry it
/// ([`TlsOptions::client_cert`](crate::TlsOptions::client_cert)). The server may require it,
/// or take the identity from it with SASL EXTERNAL. `Debug` never shows the key.
#[derive(Clone)]
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificates", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClientCertificate {
    /// The chain from a PEM text (`-----BEGIN CERTIFICATE-----` blocks, the client's own
    /// first) and the key from another (PKCS #8, PKCS #1 RSA or SEC1 EC). Fails if either has
    /// none or is malformed.
    pub fn from_pem(certificates: &[u8], key: &[u8]) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(certificates)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("invalid client certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(
                "no certificate in the client certificate PEM".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| invalid(format!("no usable private key in the client key PEM: {e}")))?;
        Ok(Self {
            chain,
            key: Arc::new(key),
        })
    }

    /// [`from_pem`](Self::from_pem) with the two PEM files (they may be the same file).
    pub fn from_files(
        certificates: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{what} file {}: {e}", path.display()),
                ))
            })
        };
        let (cert_path, key_path) = (certificates.as_ref(), key.as_ref());
        let cert_pem = read(cert_path, "client certificate")?;
        let key_pem = read(key_path, "client key")?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            Error::Io(e) => Error::Io(std::io::Error::new(
                e.kind(),
                format!("{} / {}: {e}", cert_path.display(), key_path.display()),
            )),
            other => other,
        })
    }

    /// The certificate chain, the client's own first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn invalid(message: String) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_pair_loads_and_debug_hides_the_key() {
        let ca = pop3_tests::TestCa::shared();
        let cert =
            ClientCertificate::from_pem(ca.certificate_pem().as_bytes(), ca.key_pem().as_bytes())
                .unwrap();
        assert_eq!(cert.chain().len(), 1);
        let debug = format!("{cert:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("PRIVATE"));
    }

    #[test]
    fn missing_parts_are_refused() {
        let ca = pop3_tests::TestCa::shared();
        let no_key = ClientCertificate::from_pem(ca.certificate_pem().as_bytes(), b"");
        assert!(no_key.unwrap_err().to_string().contains("private key"));
        let no_cert = ClientCertificate::from_pem(b"", ca.key_pem().as_bytes());
        assert!(no_cert.unwrap_err().to_string().contains("no certificate"));
        let missing = ClientCertificate::from_files("/nonexistent/c.pem", "/nonexistent/k.pem");
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/c.pem")
        );
    }
}
