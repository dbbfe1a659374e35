//! Channel binding data for SCRAM's -PLUS variants (RFC 5056, RFC 5802 section 6).
//!
//! The core has no TLS: the adapter extracts the binding from its TLS connection
//! (`pop3_tls::channel_binding` does it for rustls) and passes it in, to
//! [`ScramSha256::channel_binding`](super::ScramSha256) or to the login plan.

use std::fmt;

/// A channel-binding type a SCRAM -PLUS exchange can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266): 32 bytes exported from a TLS 1.3 session with the label
    /// `EXPORTER-Channel-Binding` and an empty context. The type to use on TLS 1.3.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929 section 4): the hash of the server's certificate,
    /// with the hash of its signature algorithm (SHA-256 for MD5 and SHA-1). The type to use on
    /// TLS 1.2, whose `tls-unique` is unsafe without the extended master secret.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// The name sent in the GS2 header (`p=NAME`), as registered by IANA.
    pub fn name(self) -> &'static str {
        match self {
            Self::TlsExporter => "tls-exporter",
            Self::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

impl fmt::Display for ChannelBindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The channel binding of one TLS connection: its type and its bytes. `Debug` shows the type
/// and the length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    kind: ChannelBindingType,
    data: Vec<u8>,
}

impl ChannelBinding {
    /// The binding of type `kind` with these bytes (the exporter output, or the certificate
    /// hash).
    pub fn new(kind: ChannelBindingType, data: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            data: data.into(),
        }
    }

    /// Its type.
    pub fn kind(&self) -> ChannelBindingType {
        self.kind
    }

    /// Its bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("kind", &self.kind)
            .field("len", &self.data.len())
            .finish()
    }
}
