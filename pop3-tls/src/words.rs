//! TLS errors in plain words, and the certificate details `pop3 serverinfo` shows.

use rustls::pki_types::CertificateDer;
use rustls::{AlertDescription, CertificateError, InvalidMessage, OtherError};

use crate::trust::{Fingerprint, PinMismatch};

const TRUST_HINT: &str = "if you trust this server's certificate, give that very file as a trust anchor \
(pop3 --ca-file FILE; TlsOptions::add_ca_file) or pin its fingerprint (pop3 --tls-fingerprint SHA256:…; \
TlsOptions::pin_fingerprint); `pop3 serverinfo` shows it";

/// A rustls error in plain words, for people: what failed and, where it helps, what to do.
/// Never the `Other(OtherError(..))` of rustls' own formatting.
///
/// ```
/// let error = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
/// assert!(pop3_tls::describe_error(&error)
///     .starts_with("the server's certificate is not signed by an authority we trust"));
/// ```
pub fn describe_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(e) => describe_certificate_error(e),
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | rustls::Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => {
            "the server did not answer in TLS (is this a plaintext port? POP3 over implicit TLS is \
             port 995; on port 110 use STARTTLS: pop3 --tls starttls; Security::StartTls)"
                .to_owned()
        }
        rustls::Error::InvalidMessage(m) => {
            format!("the server sent a malformed TLS message ({m:?})")
        }
        rustls::Error::AlertReceived(alert) => describe_alert(*alert),
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        rustls::Error::PeerIncompatible(why) => format!(
            "the server's TLS is incompatible with ours (TLS 1.2 or 1.3, modern cipher suites): {why:?}"
        ),
        rustls::Error::PeerMisbehaved(why) => format!("the server broke the TLS protocol: {why:?}"),
        rustls::Error::DecryptError => {
            "a TLS record from the server did not decrypt (corrupted or tampered with)".to_owned()
        }
        rustls::Error::PeerSentOversizedRecord => {
            "the server sent an oversized TLS record".to_owned()
        }
        rustls::Error::HandshakeNotComplete => "the TLS handshake did not complete".to_owned(),
        rustls::Error::General(text) => format!("TLS failure: {text}"),
        rustls::Error::Other(OtherError(inner)) => format!("TLS failure: {inner}"),
        other => other.to_string(),
    }
}

fn describe_certificate_error(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by an authority we trust (unknown issuer: \
             self-signed, a private CA, or an incomplete chain); {TRUST_HINT}"
        ),
        CertificateError::NotValidForName => {
            "the server's certificate is not valid for this host name".to_owned()
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names = if presented.is_empty() {
                "no host names at all".to_owned()
            } else {
                presented
                    .iter()
                    .map(|name| escape(presented_name(name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "the server's certificate is not valid for the host name {:?}: it names {names}",
                expected.to_str()
            )
        }
        CertificateError::Expired => "the server's certificate has expired".to_owned(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired on {} (it is now {})",
            utc(secs(not_after.as_secs())),
            utc(secs(time.as_secs())),
        ),
        CertificateError::NotValidYet => "the server's certificate is not valid yet".to_owned(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is not valid before {} (it is now {}; check the clock)",
            utc(secs(not_before.as_secs())),
            utc(secs(time.as_secs())),
        ),
        CertificateError::Revoked => "the server's certificate has been revoked".to_owned(),
        CertificateError::BadSignature => {
            "the server's certificate has an invalid signature".to_owned()
        }
        CertificateError::BadEncoding => "the server's certificate is malformed".to_owned(),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
            "the server's certificate is signed with an algorithm we do not support".to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for TLS servers (extended key usage)".to_owned()
        }
        CertificateError::Other(OtherError(inner)) => {
            if let Some(mismatch) = inner.downcast_ref::<PinMismatch>() {
                return format!("certificate pin mismatch: {mismatch}");
            }
            match inner.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => format!(
                    "the server's certificate is a CA certificate (CA:TRUE), not a server \
                     certificate, and it is not one we were told to trust (`openssl req -x509` \
                     makes such certificates by default); {TRUST_HINT}"
                ),
                Some(webpki::Error::EndEntityUsedAsCa) => {
                    "the server's certificate chain uses a server certificate as a CA".to_owned()
                }
                Some(webpki::Error::NameConstraintViolation) => {
                    "the server's certificate violates its CA's name constraints".to_owned()
                }
                Some(webpki::Error::PathLenConstraintViolated)
                | Some(webpki::Error::MaximumPathDepthExceeded) => {
                    "the server's certificate chain is too long for its CAs".to_owned()
                }
                Some(other) => format!("the server's certificate was rejected ({other})"),
                None => format!("the server's certificate was rejected: {inner}"),
            }
        }
        CertificateError::UnhandledCriticalExtension => {
            "the server's certificate has a critical extension we do not understand".to_owned()
        }
        CertificateError::ApplicationVerificationFailure => {
            "the server's certificate was refused by the application's own check".to_owned()
        }
        other => format!("the server's certificate was rejected ({other})"),
    }
}

/// Certificate text for a terminal: control characters as `\xNN`, backslashes doubled.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// webpki lists the names as `DnsName("x")` / `IpAddress(1.2.3.4)`: keep the name.
fn presented_name(name: &str) -> &str {
    for (prefix, suffix) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(inner) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
        {
            return inner;
        }
    }
    name
}

fn describe_alert(alert: AlertDescription) -> String {
    let what = match alert {
        AlertDescription::HandshakeFailure => "no TLS version or cipher suite in common".to_owned(),
        AlertDescription::ProtocolVersion => "it does not speak TLS 1.2 or 1.3".to_owned(),
        AlertDescription::UnrecognisedName => {
            "it does not know the host name we asked for (SNI)".to_owned()
        }
        AlertDescription::InternalError => "an internal error on its side".to_owned(),
        other => format!("{other:?}"),
    };
    format!("the server aborted the TLS handshake: {what}")
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub(crate) fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// What a certificate says about itself, for display (`pop3 serverinfo`). Subject and
/// issuer are the certificate's own text: escape them before showing them on a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject's distinguished name (`CN=mail.example.org, O=…`).
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The start of the validity period, in seconds since the Unix epoch.
    pub not_before: i64,
    /// The end of the validity period, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The host names and addresses of the subjectAltName extension.
    pub names: Vec<String>,
    /// Whether it is marked `CA:TRUE`.
    pub is_ca: bool,
    /// The SHA-256 fingerprint of the DER encoding.
    pub sha256: Fingerprint,
}

/// A certificate that x509 parsing refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct CertificateParseError(String);

impl CertificateInfo {
    /// Parses a DER-encoded certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<Self, CertificateParseError> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CertificateParseError(e.to_string()))?;
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => ip_text(bytes),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            names,
            is_ca: cert.is_ca(),
            sha256: Fingerprint::of(der.as_ref()),
        })
    }

    /// [`not_before`](Self::not_before) as `YYYY-MM-DD HH:MM:SS UTC`.
    pub fn not_before_utc(&self) -> String {
        utc(self.not_before)
    }

    /// [`not_after`](Self::not_after) as `YYYY-MM-DD HH:MM:SS UTC`.
    pub fn not_after_utc(&self) -> String {
        utc(self.not_after)
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => {
            let octets: [u8; 4] = bytes.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(octets).to_string())
        }
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(octets).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }
}
