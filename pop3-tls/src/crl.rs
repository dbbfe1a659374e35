//! Certificate revocation lists for [`TlsOptions`]: a server certificate (or an intermediate)
//! listed in a CRL issued by its CA is refused.

use std::path::Path;

use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject;

use crate::{Error, TlsOptions, invalid_data};

impl TlsOptions {
    /// Adds the CRLs of a PEM text (`-----BEGIN X509 CRL-----` blocks). Fails if there is none
    /// or one is malformed.
    ///
    /// With CRLs, webpki checks every certificate of the chain against the CRLs of its
    /// issuer: a listed one fails the handshake (`CertificateError::Revoked`). A certificate
    /// whose issuer has no CRL here is accepted (revocation status unknown is allowed): a CRL
    /// for your own CA must not break servers under other CAs. CRL expiry is not enforced
    /// (an outdated CRL still revokes what it lists).
    pub fn add_crl_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut count = 0;
        for crl in CertificateRevocationListDer::pem_slice_iter(pem) {
            let crl = crl.map_err(|e| invalid_data(format!("invalid CRL PEM: {e}")))?;
            self.crls.push(crl);
            count += 1;
        }
        if count == 0 {
            return Err(invalid_data("no CRL in the PEM data".to_owned()));
        }
        Ok(self)
    }

    /// Adds the CRLs of a PEM file (see [`add_crl_pem`](Self::add_crl_pem)).
    pub fn add_crl_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let with_path = |e: std::io::Error| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("CRL file {}: {e}", path.display()),
            ))
        };
        let pem = std::fs::read(path).map_err(with_path)?;
        self.add_crl_pem(&pem).map_err(|e| match e {
            Error::Io(e) => with_path(e),
            other => other,
        })
    }
}
