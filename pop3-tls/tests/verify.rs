//! The trust policy of `TlsOptions`, handshaking in memory against the kit's certificates:
//! exact-match trust of a `CA:TRUE` self-signed certificate, fingerprint pins, and the plain
//! words of TLS errors.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use pop3_tests::rustls::pki_types::pem::PemObject;
use pop3_tests::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use pop3_tests::rustls::{self, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use pop3_tests::{CertSpec, TestCa};
use pop3_tls::{
    CertificateInfo, CertificateRecorder, Fingerprint, FingerprintError, TlsOptions,
    describe_error, pin_mismatch,
};

/// Runs a handshake between a client and a server config in memory; the client's error if
/// it fails.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: &str,
) -> Result<ClientConnection, rustls::Error> {
    let mut c = ClientConnection::new(client, ServerName::try_from(name.to_owned()).unwrap())?;
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut to_server).unwrap();
        }
        let mut input = &to_server[..];
        while !input.is_empty() {
            s.read_tls(&mut input).unwrap();
        }
        let server_result = s.process_new_packets().map(|_| ());
        let mut to_client = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut to_client).unwrap();
        }
        let mut input = &to_client[..];
        while !input.is_empty() {
            c.read_tls(&mut input).unwrap();
        }
        c.process_new_packets()?;
        if let Err(e) = server_result {
            panic!("the server failed first: {e}");
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(c);
        }
    }
    panic!("the handshake did not finish");
}

fn client(options: &TlsOptions) -> Arc<ClientConfig> {
    options.build().unwrap()
}

// ---- a self-signed CA:TRUE certificate, as `openssl req -x509` makes it ----

#[test]
fn openssl_style_self_signed_certificate_trusted_by_its_own_file() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let options = TlsOptions::new()
        .without_webpki_roots()
        .add_ca_pem(ca.certificate_pem().as_bytes())
        .unwrap();
    handshake(client(&options), ca.server_config(), "localhost").unwrap();
    handshake(client(&options), ca.server_config(), "127.0.0.1").unwrap();
    // With the webpki roots too, and through the DER form.
    let options = TlsOptions::new().add_ca_der(ca.certificate_der()).unwrap();
    handshake(client(&options), ca.server_config(), "localhost").unwrap();
}

#[test]
fn exact_match_still_checks_the_host_name_and_the_validity_period() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let options = TlsOptions::new()
        .without_webpki_roots()
        .add_ca_pem(ca.certificate_pem().as_bytes())
        .unwrap();
    let error = handshake(client(&options), ca.server_config(), "mail.example.org").unwrap_err();
    assert!(
        matches!(
            &error,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error:?}"
    );
    assert_eq!(
        describe_error(&error),
        "the server's certificate is not valid for the host name \"mail.example.org\": it names localhost, 127.0.0.1"
    );

    let expired =
        TestCa::generate_with(&CertSpec::new().ca_true().valid((2000, 1, 1), (2001, 1, 1)))
            .unwrap();
    let options = TlsOptions::new()
        .add_ca_pem(expired.certificate_pem().as_bytes())
        .unwrap();
    let error = handshake(client(&options), expired.server_config(), "localhost").unwrap_err();
    assert!(
        matches!(
            &error,
            rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
        ),
        "{error:?}"
    );
    assert!(
        describe_error(&error).starts_with(
            "the server's certificate expired on 2001-01-01 00:00:00 UTC (it is now 20"
        ),
        "{}",
        describe_error(&error)
    );

    let future =
        TestCa::generate_with(&CertSpec::new().ca_true().valid((2990, 1, 1), (2999, 1, 1)))
            .unwrap();
    let options = TlsOptions::new()
        .add_ca_pem(future.certificate_pem().as_bytes())
        .unwrap();
    let error = handshake(client(&options), future.server_config(), "localhost").unwrap_err();
    assert!(
        describe_error(&error)
            .starts_with("the server's certificate is not valid before 2990-01-01 00:00:00 UTC"),
        "{}",
        describe_error(&error)
    );
}

#[test]
fn exact_match_without_alt_names_checks_the_common_name() {
    let ca = TestCa::generate_with(
        &CertSpec::new()
            .ca_true()
            .names(&[])
            .common_name("mail.example.org"),
    )
    .unwrap();
    let options = TlsOptions::new()
        .without_webpki_roots()
        .add_ca_pem(ca.certificate_pem().as_bytes())
        .unwrap();
    handshake(client(&options), ca.server_config(), "mail.example.org").unwrap();
    handshake(client(&options), ca.server_config(), "MAIL.example.org").unwrap();
    let error = handshake(client(&options), ca.server_config(), "example.org").unwrap_err();
    assert_eq!(
        describe_error(&error),
        "the server's certificate is not valid for the host name \"example.org\": it names mail.example.org"
    );

    // The certificate's text is escaped.
    let ca = TestCa::generate_with(
        &CertSpec::new()
            .ca_true()
            .names(&[])
            .common_name("mail\x1b[31m.example.org"),
    )
    .unwrap();
    let options = TlsOptions::new()
        .add_ca_pem(ca.certificate_pem().as_bytes())
        .unwrap();
    let error = handshake(client(&options), ca.server_config(), "example.org").unwrap_err();
    assert_eq!(
        describe_error(&error),
        "the server's certificate is not valid for the host name \"example.org\": it names mail\\x1b[31m.example.org"
    );
}

#[test]
fn a_ca_certificate_nobody_trusted_is_refused_in_plain_words() {
    let ca = TestCa::openssl_self_signed().unwrap();
    // Trusting another certificate does not help.
    let options = TlsOptions::new()
        .add_ca_pem(TestCa::shared().certificate_pem().as_bytes())
        .unwrap();
    let error = handshake(client(&options), ca.server_config(), "localhost").unwrap_err();
    let text = describe_error(&error);
    assert!(
        text.starts_with(
            "the server's certificate is a CA certificate (CA:TRUE), not a server certificate, \
             and it is not one we were told to trust (`openssl req -x509` makes such certificates by default); \
             if you trust this server's certificate, give that very file as a trust anchor (pop3 --ca-file FILE"
        ),
        "{text}"
    );
    assert!(text.contains("--tls-fingerprint"), "{text}");
    assert!(!text.contains("Other"), "{text}");
    // The adapters' own error types print the same words.
    assert!(!format!("{error}").is_empty());

    // An end-entity self-signed certificate nobody trusted: unknown issuer.
    let other = TestCa::generate().unwrap();
    let error = handshake(
        client(&TlsOptions::new()),
        other.server_config(),
        "localhost",
    )
    .unwrap_err();
    assert!(
        describe_error(&error).starts_with(
            "the server's certificate is not signed by an authority we trust (unknown issuer: \
             self-signed, a private CA, or an incomplete chain); if you trust"
        ),
        "{}",
        describe_error(&error)
    );
}

#[test]
fn chain_validation_is_unchanged_for_other_certificates() {
    // The kit's end-entity certificate through its own anchor, as before.
    let options = TlsOptions::new()
        .without_webpki_roots()
        .add_ca_der(TestCa::shared().certificate_der())
        .unwrap();
    handshake(
        client(&options),
        TestCa::shared().server_config(),
        "localhost",
    )
    .unwrap();
    let error = handshake(
        client(&options),
        TestCa::shared().server_config(),
        "example.org",
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error:?}"
    );
    // No anchors at all: nothing is trusted.
    let options = TlsOptions::new().without_webpki_roots();
    let error = handshake(
        client(&options),
        TestCa::shared().server_config(),
        "localhost",
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{error:?}"
    );
    // Accept-any still accepts anything.
    let options = TlsOptions::new()
        .without_webpki_roots()
        .dangerous_accept_any_certificate();
    let ca = TestCa::openssl_self_signed().unwrap();
    handshake(client(&options), ca.server_config(), "example.org").unwrap();
}

// ---- pins ----

#[test]
fn a_pin_trusts_exactly_that_certificate() {
    let ca = TestCa::generate_with(&CertSpec::new().ca_true().valid((2000, 1, 1), (2001, 1, 1)))
        .unwrap();
    let right = Fingerprint::of(ca.certificate_der());
    // Expired, CA:TRUE, another host name, no anchors: the pin alone decides.
    let options = TlsOptions::new()
        .without_webpki_roots()
        .pin_fingerprint(right);
    handshake(client(&options), ca.server_config(), "mail.example.org").unwrap();

    // Another certificate, even one the anchors would accept, is refused.
    let wrong = Fingerprint::of(TestCa::shared().certificate_der());
    let options = TlsOptions::new()
        .add_ca_der(ca.certificate_der())
        .unwrap()
        .pin_fingerprint(wrong);
    let error = handshake(client(&options), ca.server_config(), "localhost").unwrap_err();
    let mismatch = pin_mismatch(&error).expect("a pin mismatch");
    assert_eq!(mismatch.expected, vec![wrong]);
    assert_eq!(mismatch.actual, right);
    assert_eq!(
        describe_error(&error),
        format!(
            "certificate pin mismatch: the server's certificate has the fingerprint {right}, but {wrong} was pinned"
        )
    );
    // Through Options too, with two pins: either matches.
    let options = pop3_tls::Options::new()
        .pin_fingerprint(wrong)
        .pin_fingerprint(right);
    handshake(
        options.tls.build().unwrap(),
        ca.server_config(),
        "localhost",
    )
    .unwrap();
}

#[test]
fn fingerprints_parse_strictly() {
    let hex = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
    let colons: String = hex
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let plain: Fingerprint = format!("SHA256:{hex}").parse().unwrap();
    let with_colons: Fingerprint = format!("SHA256:{colons}").parse().unwrap();
    let lower_prefix: Fingerprint = format!("sha256:{hex}").parse().unwrap();
    assert_eq!(plain, with_colons);
    assert_eq!(plain, lower_prefix);
    assert_eq!(
        plain.to_string(),
        format!("SHA256:{}", colons.to_ascii_uppercase())
    );
    assert_eq!(plain.to_string().parse::<Fingerprint>().unwrap(), plain);
    assert_eq!(plain.as_bytes()[..4], [0x01, 0x23, 0x45, 0x67]);

    let err = |text: &str| text.parse::<Fingerprint>().unwrap_err();
    assert_eq!(err(hex), FingerprintError::MissingPrefix);
    assert_eq!(err(&format!("SHA1:{hex}")), FingerprintError::MissingPrefix);
    assert_eq!(err(""), FingerprintError::MissingPrefix);
    assert_eq!(
        err(&format!("SHA256:{}", &hex[1..])),
        FingerprintError::Length(63)
    );
    assert_eq!(err(&format!("SHA256:{hex}0")), FingerprintError::Length(65));
    assert_eq!(err("SHA256:"), FingerprintError::Length(0));
    assert_eq!(
        err(&format!("SHA256:{}g", &hex[1..])),
        FingerprintError::NotHex {
            character: 'g',
            position: 7 + 63
        }
    );
    assert_eq!(
        err(&format!("SHA256: {hex}")),
        FingerprintError::NotHex {
            character: ' ',
            position: 7
        }
    );
    assert_eq!(err(&format!("SHA256:{colons}:")), FingerprintError::Colons);
    assert_eq!(err(&format!("SHA256::{colons}")), FingerprintError::Colons);
    assert_eq!(
        err(&format!("SHA256:{}", colons.replacen(':', "", 1))),
        FingerprintError::Colons
    );
    assert_eq!(
        err(&format!("SHA256:{}:{}", &hex[..3], &hex[3..])),
        FingerprintError::Colons
    );
    assert_eq!(
        err(&format!("SHA256:{}é", &hex[1..])),
        FingerprintError::NotHex {
            character: 'é',
            position: 70
        }
    );
    assert_eq!(
        err("SHA256:xyz").to_string(),
        "'x' (position 7) is not a hex digit"
    );
}

// ---- what the server presented, even when it was refused ----

#[test]
fn the_recorder_keeps_the_chain_of_a_refused_handshake() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let recorder = CertificateRecorder::new();
    assert!(recorder.certificates().is_empty());
    let options = TlsOptions::new().record_certificates(&recorder);
    handshake(client(&options), ca.server_config(), "localhost").unwrap_err();
    assert_eq!(recorder.certificates(), vec![ca.certificate_der().clone()]);

    let info = CertificateInfo::parse(&recorder.certificates()[0]).unwrap();
    assert_eq!(info.subject, "CN=localhost");
    assert_eq!(info.issuer, "CN=localhost");
    assert!(info.is_ca);
    assert_eq!(info.names, ["localhost", "127.0.0.1"]);
    assert_eq!(info.sha256, Fingerprint::of(ca.certificate_der()));
    assert_eq!(info.not_before_utc(), "1975-01-01 00:00:00 UTC");
    assert_eq!(info.not_after_utc(), "4096-01-01 00:00:00 UTC");
    assert!(CertificateInfo::parse(&b"not a certificate"[..].into()).is_err());
}

#[test]
fn a_plaintext_server_gets_a_hint() {
    let options = TlsOptions::new();
    let mut c = ClientConnection::new(client(&options), ServerName::try_from("localhost").unwrap())
        .unwrap();
    let mut greeting = &b"+OK POP3 server ready\r\n"[..];
    c.read_tls(&mut greeting).unwrap();
    let error = c.process_new_packets().unwrap_err();
    assert_eq!(
        describe_error(&error),
        "the server did not answer in TLS (is this a plaintext port? POP3 over implicit TLS is \
         port 995; on port 110 use STARTTLS: pop3 --tls starttls; Security::StartTls)"
    );
}

#[test]
fn a_missing_certificate_file_is_named() {
    let dir = std::env::temp_dir().join("pop3-tls-no-such-dir");
    let path = dir.join("ca.pem");
    let error = TlsOptions::new().add_ca_file(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "certificate file {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

// ---- a certificate made by the real `openssl req -x509` ----

#[test]
fn a_real_openssl_req_x509_certificate() {
    let dir = std::env::temp_dir().join(format!("pop3-tls-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("this test needs the openssl command");
    assert!(status.success());
    let pem = std::fs::read(&cert).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let key_der = PrivateKeyDer::from_pem_file(&key).unwrap();
    let server = ServerConfig::builder_with_provider(pop3_tests::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key_der)
        .unwrap();
    let server = Arc::new(server);
    assert!(
        CertificateInfo::parse(&der).unwrap().is_ca,
        "openssl's default is CA:TRUE"
    );

    // Refused without trust, accepted with its own file, and by its pin.
    let error =
        handshake(client(&TlsOptions::new()), Arc::clone(&server), "localhost").unwrap_err();
    assert!(describe_error(&error).contains("CA:TRUE"));
    let options = TlsOptions::new().add_ca_file(&cert).unwrap();
    handshake(client(&options), Arc::clone(&server), "localhost").unwrap();

    // Our fingerprint is openssl's.
    let output = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let openssl = text.trim().rsplit('=').next().unwrap();
    let pin: Fingerprint = format!("SHA256:{openssl}").parse().unwrap();
    assert_eq!(pin, Fingerprint::of(der.as_ref()));
    let options = TlsOptions::new()
        .without_webpki_roots()
        .pin_fingerprint(pin);
    handshake(client(&options), server, "localhost").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- SNI and certificate files ----

#[test]
fn sni_is_sent_unless_disabled() {
    let server_name_seen = |options: &TlsOptions, name: &str| {
        let mut c = ClientConnection::new(
            client(options),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        let mut s = ServerConnection::new(TestCa::shared().server_config()).unwrap();
        let mut hello = Vec::new();
        c.write_tls(&mut hello).unwrap();
        s.read_tls(&mut &hello[..]).unwrap();
        s.process_new_packets().unwrap();
        s.server_name().map(str::to_owned)
    };
    let options = TlsOptions::new();
    assert_eq!(
        server_name_seen(&options, "localhost").as_deref(),
        Some("localhost")
    );
    // Never for an IP address (RFC 6066 section 3).
    assert_eq!(server_name_seen(&options, "127.0.0.1"), None);
    assert_eq!(
        server_name_seen(&options.clone().disable_sni(), "localhost"),
        None
    );
}

#[test]
fn certificate_pem_is_checked() {
    let text = |r: Result<TlsOptions, pop3_tls::Error>| r.unwrap_err().to_string();
    assert_eq!(
        text(TlsOptions::new().add_ca_pem(b"")),
        "no certificate in the PEM data"
    );
    assert_eq!(
        text(
            TlsOptions::new()
                .add_ca_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        ),
        "no certificate in the PEM data"
    );
    assert!(
        text(
            TlsOptions::new()
                .add_ca_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
        )
        .starts_with("invalid PEM: "),
    );
    // A file with two certificates: both are trusted, each by exact match too.
    let dir = std::env::temp_dir().join(format!("pop3-tls-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (one, two) = (
        TestCa::openssl_self_signed().unwrap(),
        TestCa::openssl_self_signed().unwrap(),
    );
    let path = dir.join("both.pem");
    std::fs::write(
        &path,
        format!("{}{}", one.certificate_pem(), two.certificate_pem()),
    )
    .unwrap();
    let options = TlsOptions::new()
        .without_webpki_roots()
        .add_ca_file(&path)
        .unwrap();
    handshake(client(&options), one.server_config(), "localhost").unwrap();
    handshake(client(&options), two.server_config(), "localhost").unwrap();
    // An empty file is named in the error.
    std::fs::write(&path, "").unwrap();
    assert_eq!(
        text(TlsOptions::new().add_ca_file(&path)),
        format!(
            "certificate file {}: no certificate in the PEM data",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_certificate_error_reads_as_words() {
    use rustls::{CertificateError, OtherError};
    let other = |e: webpki::Error| {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    };
    let cases = [
        (
            rustls::Error::InvalidCertificate(CertificateError::Expired),
            "the server's certificate has expired",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
            "the server's certificate is not valid yet",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::Revoked),
            "the server's certificate has been revoked",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::BadSignature),
            "the server's certificate has an invalid signature",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
            "the server's certificate is malformed",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose),
            "the server's certificate is not meant for TLS servers (extended key usage)",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "the server's certificate is not valid for this host name",
        ),
        (
            rustls::Error::InvalidCertificate(CertificateError::UnhandledCriticalExtension),
            "the server's certificate has a critical extension we do not understand",
        ),
        (
            other(webpki::Error::EndEntityUsedAsCa),
            "the server's certificate chain uses a server certificate as a CA",
        ),
        (
            other(webpki::Error::NameConstraintViolation),
            "the server's certificate violates its CA's name constraints",
        ),
        (
            other(webpki::Error::MaximumPathDepthExceeded),
            "the server's certificate chain is too long for its CAs",
        ),
        (
            rustls::Error::NoCertificatesPresented,
            "the server presented no certificate",
        ),
        (
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            "the server aborted the TLS handshake: no TLS version or cipher suite in common",
        ),
        (
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion),
            "the server aborted the TLS handshake: it does not speak TLS 1.2 or 1.3",
        ),
        (
            rustls::Error::DecryptError,
            "a TLS record from the server did not decrypt (corrupted or tampered with)",
        ),
    ];
    for (error, words) in cases {
        assert_eq!(describe_error(&error), words, "{error:?}");
    }
    let text = describe_error(&other(webpki::Error::UnsupportedCertVersion));
    assert!(
        text.starts_with("the server's certificate was rejected ("),
        "{text}"
    );
    assert!(!text.contains("Other"), "{text}");
}
