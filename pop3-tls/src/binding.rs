//! The channel binding of a rustls connection, for SCRAM's -PLUS variants: `tls-exporter`
//! (RFC 9266) on TLS 1.3, `tls-server-end-point` (RFC 5929 section 4) on TLS 1.2. Both
//! adapters hand it to the core after each handshake
//! ([`Session::set_channel_binding`](crate::Session::set_channel_binding)).

use pop3_proto::sasl::{ChannelBinding, ChannelBindingType};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConnection, ProtocolVersion};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The label RFC 9266 section 2 gives the TLS exporter.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// The length RFC 9266 section 2 gives the exported binding.
const EXPORTER_LEN: usize = 32;

/// The channel binding of an established TLS connection, or `None` if it has none this client
/// can compute (handshake not done, or on TLS 1.2 a server certificate whose signature
/// algorithm RFC 5929 leaves undefined: Ed25519, RSA-PSS).
///
/// On TLS 1.3: `tls-exporter`, 32 bytes of `export_keying_material` with the label
/// `EXPORTER-Channel-Binding` and an empty context (RFC 9266). On TLS 1.2:
/// `tls-server-end-point`, the hash of the server's certificate ([`server_end_point`]);
/// `tls-unique` and the TLS 1.2 exporter are unsafe without the extended master secret
/// (RFC 7627), which the client cannot require of every server.
pub fn channel_binding(connection: &ClientConnection) -> Option<ChannelBinding> {
    if connection.is_handshaking() {
        return None;
    }
    match connection.protocol_version()? {
        ProtocolVersion::TLSv1_3 => {
            let data = connection
                .export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, Some(&[]))
                .ok()?;
            Some(ChannelBinding::new(ChannelBindingType::TlsExporter, data))
        }
        ProtocolVersion::TLSv1_2 => {
            let certificate = connection.peer_certificates()?.first()?;
            server_end_point(certificate)
        }
        _ => None,
    }
}

/// `tls-server-end-point` (RFC 5929 section 4.1) for a server certificate: its hash with the
/// hash function of its signature algorithm, SHA-256 for MD5 and SHA-1. `None` when the
/// algorithm uses no single hash (Ed25519; RSA-PSS, whose parameters name it, is not read)
/// or the certificate does not parse.
pub fn server_end_point(certificate: &CertificateDer<'_>) -> Option<ChannelBinding> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let oid = parsed.signature_algorithm.algorithm.to_id_string();
    let der = certificate.as_ref();
    let data = match oid.as_str() {
        // md5WithRSA, sha1WithRSA, ecdsa-with-SHA1, dsa-with-sha1: SHA-256 instead.
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1"
        | "1.2.840.10040.4.3"
        // sha256WithRSA, ecdsa-with-SHA256, dsa-with-sha256.
        | "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" | "2.16.840.1.101.3.4.3.2" => {
            Sha256::digest(der).to_vec()
        }
        // sha384WithRSA, ecdsa-with-SHA384.
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Sha384::digest(der).to_vec(),
        // sha512WithRSA, ecdsa-with-SHA512.
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Sha512::digest(der).to_vec(),
        _ => return None,
    };
    Some(ChannelBinding::new(
        ChannelBindingType::TlsServerEndPoint,
        data,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The test kit's server certificate (ECDSA P-256 with SHA-256, from rcgen): SHA-256 of
    /// the DER, which we recompute independently here.
    #[test]
    fn end_point_of_an_ecdsa_sha256_certificate() {
        let der = pop3_tests::TestCa::shared().certificate_der();
        let binding = server_end_point(der).unwrap();
        assert_eq!(binding.kind(), ChannelBindingType::TlsServerEndPoint);
        assert_eq!(binding.data(), Sha256::digest(der.as_ref()).as_slice());
    }

    #[test]
    fn garbage_has_no_end_point() {
        assert!(server_end_point(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_none());
    }
}
