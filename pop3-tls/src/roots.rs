//! Which root certificates to trust: the Mozilla roots compiled in (`webpki-roots`), the
//! operating system's store (`rustls-native-certs`), or both.

use std::fmt;
use std::str::FromStr;

use crate::{Error, TlsOptions};

/// The roots [`TlsOptions::trust_store`] trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TrustStore {
    /// The Mozilla roots shipped in the binary (`webpki-roots`): the same everywhere, updated
    /// with the program. The default of [`TlsOptions`].
    #[default]
    Mozilla,
    /// Only the operating system's store (on Linux the `ca-certificates` bundle, or the file
    /// in `SSL_CERT_FILE`): what the administrator decided, company CAs included. Fails when
    /// the store has no usable certificate.
    System,
    /// Both: the Mozilla roots and whatever the system store holds (an empty or missing
    /// system store is no error).
    Both,
}

impl fmt::Display for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mozilla => "mozilla",
            Self::System => "system",
            Self::Both => "both",
        })
    }
}

/// A trust store name that is not `mozilla`, `system` or `both`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the trust store is mozilla, system or both, not {0:?}")]
pub struct TrustStoreError(pub String);

impl FromStr for TrustStore {
    type Err = TrustStoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "mozilla" => Ok(Self::Mozilla),
            "system" => Ok(Self::System),
            "both" => Ok(Self::Both),
            _ => Err(TrustStoreError(text.to_owned())),
        }
    }
}

impl TlsOptions {
    /// Sets the roots to trust (anchors added with `add_ca_*` are trusted in every case).
    /// [`TrustStore::System`] fails if the system store has no usable certificate.
    pub fn trust_store(mut self, store: TrustStore) -> Result<Self, Error> {
        match store {
            TrustStore::Mozilla => {
                self.webpki_roots = true;
                Ok(self)
            }
            TrustStore::System => {
                self.webpki_roots = false;
                self.platform_roots()
            }
            TrustStore::Both => {
                self.webpki_roots = true;
                let found = rustls_native_certs::load_native_certs();
                self.anchors.add_parsable_certificates(found.certs);
                Ok(self)
            }
        }
    }
}
