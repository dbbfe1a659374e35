//! `TlsOptions::add_crl_pem`: a certificate its CA revoked fails the handshake; the same CA's
//! other certificate, or a CRL that lists nothing, does not; and certificates of other CAs
//! (unknown revocation status) are still accepted. Through the blocking adapter, against
//! real TLS handshakes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use pop3_blocking::{Connection, Error, Options, Security};
use pop3_tests::network::RevokingCa;
use pop3_tests::rustls::{CertificateError, ServerConfig};
use pop3_tests::{Script, ScriptedServer, TestCa};
use pop3_tls::TlsOptions;

fn server(config: Arc<ServerConfig>) -> ScriptedServer {
    let script = Script::parse(
        r"
        S: +OK hi
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        ",
    )
    .unwrap();
    ScriptedServer::builder(script)
        .tls_config(config)
        .implicit_tls()
        .start()
        .unwrap()
}

fn connect(config: Arc<ServerConfig>, tls: TlsOptions) -> Result<(), Error> {
    let server = server(config);
    let options = Options::default().timeout(Duration::from_secs(10)).tls(tls);
    let result =
        Connection::connect("localhost", server.port(), Security::Implicit, &options).map(drop);
    drop(server.finish());
    result
}

#[test]
fn a_revoked_certificate_is_refused_and_the_others_are_not() {
    let ca = RevokingCa::generate().unwrap();
    let trusting = TlsOptions::default()
        .add_ca_pem(ca.ca_pem.as_bytes())
        .unwrap();
    let with_crl = trusting.clone().add_crl_pem(ca.crl_pem.as_bytes()).unwrap();

    connect(ca.revoked.clone(), trusting.clone()).expect("without the CRL the certificate is fine");
    let error = connect(ca.revoked.clone(), with_crl.clone()).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Tls(pop3_tests::rustls::Error::InvalidCertificate(
                CertificateError::Revoked
            ))
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("revoked"), "{error}");
    connect(ca.good.clone(), with_crl).expect("the CA's other certificate is not revoked");
    let empty = trusting.add_crl_pem(ca.empty_crl_pem.as_bytes()).unwrap();
    connect(ca.revoked, empty).expect("a CRL that lists nothing");
}

#[test]
fn a_crl_of_another_ca_does_not_break_its_servers() {
    let ca = RevokingCa::generate().unwrap();
    let other = TestCa::generate().unwrap();
    let tls = TlsOptions::default()
        .add_ca_pem(other.certificate_pem().as_bytes())
        .unwrap()
        .add_crl_pem(ca.crl_pem.as_bytes())
        .unwrap();
    connect(other.server_config(), tls).expect("unknown revocation status is allowed");
}

#[test]
fn crl_files_are_checked_when_added() {
    let dir = std::env::temp_dir().join(format!("pop3-crl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let error = TlsOptions::default().add_crl_file(&not_pem).unwrap_err();
    assert!(error.to_string().contains("no CRL"), "{error}");
    let error = TlsOptions::default()
        .add_crl_file(dir.join("missing.pem"))
        .unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
