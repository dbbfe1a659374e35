//! The certificate verifier behind [`TlsOptions`](crate::TlsOptions): webpki chain validation,
//! exact-match trust of certificates the caller added, SHA-256 fingerprint pins, and the
//! recording of the chain the server presented.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

/// A certificate's SHA-256 fingerprint (of its DER encoding), as pinned with
/// [`TlsOptions::pin_fingerprint`](crate::TlsOptions::pin_fingerprint) and shown by
/// `pop3 serverinfo`.
///
/// Parsed from `SHA256:` followed by 64 hex digits, either with no colons at all or with a
/// colon between every pair (`SHA256:AB:CD:…`, as mpop and `openssl x509 -fingerprint
/// -sha256` print it, `SHA256` prefix added). Displayed in the colon form, upper case.
///
/// ```
/// let pin: pop3_tls::Fingerprint =
///     "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".parse()?;
/// assert!(pin.to_string().starts_with("SHA256:01:23:45:67:89:AB:CD:EF:01:23"));
/// # Ok::<(), pop3_tls::FingerprintError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a fingerprint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The text does not start with `SHA256:` (only SHA-256 fingerprints are supported).
    #[error("a fingerprint starts with \"SHA256:\" (only SHA-256 is supported)")]
    MissingPrefix,
    /// A character that is neither a hex digit nor a colon, at this character position of
    /// the whole text.
    #[error("{character:?} (position {position}) is not a hex digit")]
    NotHex {
        /// The character.
        character: char,
        /// Its position, counted in characters from the start of the text.
        position: usize,
    },
    /// Colons are not between every pair of hex digits (and nowhere else).
    #[error("colons must separate every pair of hex digits, or be left out entirely")]
    Colons,
    /// Not 64 hex digits.
    #[error("a SHA-256 fingerprint has 64 hex digits, not {0}")]
    Length(usize),
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const PREFIX: &str = "SHA256:";
        let rest = match text.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &text[PREFIX.len()..],
            _ => return Err(FingerprintError::MissingPrefix),
        };
        let mut digits = Vec::with_capacity(64);
        for (position, character) in rest.chars().enumerate() {
            match character.to_digit(16) {
                Some(value) => digits.push(value as u8),
                None if character == ':' => {}
                None => {
                    return Err(FingerprintError::NotHex {
                        character,
                        position: position + PREFIX.len(),
                    });
                }
            }
        }
        if digits.len() != 64 {
            return Err(FingerprintError::Length(digits.len()));
        }
        if rest.contains(':') {
            // Exactly "XX:XX:…:XX".
            let well_placed = rest.len() == 95
                && rest
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| (b == b':') == (i % 3 == 2));
            if !well_placed {
                return Err(FingerprintError::Colons);
            }
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (pair[0] << 4) | pair[1];
        }
        Ok(Self(bytes))
    }
}

/// The server's certificate did not match any pinned fingerprint. It reaches the caller as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`; find it with
/// [`pin_mismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's certificate has the fingerprint {actual}, but {} was pinned",
    join(expected)
)]
pub struct PinMismatch {
    /// The pinned fingerprints.
    pub expected: Vec<Fingerprint>,
    /// The fingerprint of the certificate the server presented.
    pub actual: Fingerprint,
}

fn join(pins: &[Fingerprint]) -> String {
    pins.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The [`PinMismatch`] inside a rustls error, if that is what it is.
pub fn pin_mismatch(error: &rustls::Error) -> Option<&PinMismatch> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

/// Keeps the certificate chain the server presented in the latest handshake, whether or not
/// it was then trusted (for diagnostics such as `pop3 serverinfo`). Clones share the record.
/// Give it to [`TlsOptions::record_certificates`](crate::TlsOptions::record_certificates).
#[derive(Clone, Default)]
pub struct CertificateRecorder(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl CertificateRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The chain of the latest handshake, the server's own certificate first (empty before
    /// any handshake reached certificate verification).
    pub fn certificates(&self) -> Vec<CertificateDer<'static>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = chain;
    }
}

impl fmt::Debug for CertificateRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CertificateRecorder")
            .field(&self.certificates().len())
            .finish()
    }
}

/// The one verifier of [`TlsOptions::build`](crate::TlsOptions::build). The handshake
/// signatures always go through the provider's algorithms, whatever decides trust.
pub(crate) struct Verifier {
    /// Chain validation against the roots; `None` when there are no roots at all.
    pub(crate) webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates the caller added explicitly (exact-match trust).
    pub(crate) trusted: Vec<CertificateDer<'static>>,
    /// Fingerprint pins: when any is set, they alone decide.
    pub(crate) pins: Vec<Fingerprint>,
    /// `dangerous_accept_any_certificate`.
    pub(crate) accept_any: bool,
    pub(crate) recorder: Option<CertificateRecorder>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("roots", &self.webpki.is_some())
            .field("trusted", &self.trusted.len())
            .field("pins", &self.pins)
            .field("accept_any", &self.accept_any)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(recorder) = &self.recorder {
            recorder.record(end_entity, intermediates);
        }
        if self.accept_any {
            return Ok(ServerCertVerified::assertion());
        }
        if !self.pins.is_empty() {
            let actual = Fingerprint::of(end_entity);
            if self.pins.contains(&actual) {
                return Ok(ServerCertVerified::assertion());
            }
            let mismatch = PinMismatch {
                expected: self.pins.clone(),
                actual,
            };
            return Err(CertificateError::Other(OtherError(Arc::new(mismatch))).into());
        }
        if self
            .trusted
            .iter()
            .any(|t| t.as_ref() == end_entity.as_ref())
        {
            exact_match(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(CertificateError::UnknownIssuer.into()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The checks left for a certificate the caller trusted byte for byte: its validity period
/// and the host name (its subjectAltNames; the subject's common name when it has none, as
/// OpenSSL and GnuTLS accept). Its basic constraints (`CA:TRUE`) and issuer do not matter.
fn exact_match(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| CertificateError::BadEncoding)?;
    let validity = cert.validity();
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let unix =
        |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0).unsigned_abs()));
    if time < validity.not_before.timestamp() {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix(validity.not_before.timestamp()),
        }
        .into());
    }
    if time > validity.not_after.timestamp() {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix(validity.not_after.timestamp()),
        }
        .into());
    }
    let has_alt_names = matches!(cert.subject_alternative_name(), Ok(Some(_)));
    if has_alt_names {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        return rustls::client::verify_server_name(&parsed, server_name);
    }
    let expected = server_name.to_str();
    let common_names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if common_names
        .iter()
        .any(|cn| cn.eq_ignore_ascii_case(expected.as_ref()))
    {
        return Ok(());
    }
    Err(CertificateError::NotValidForNameContext {
        expected: server_name.to_owned(),
        presented: common_names,
    }
    .into())
}
