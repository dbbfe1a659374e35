//! SCRAM-SHA-1/256/512 and their -PLUS variants (both channel-binding types) through
//! `pop3-blocking`, against the kit's reference SCRAM server side. `sasl_async.rs` runs the
//! same cases through `pop3-async`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pop3_blocking::pop3_proto::login::{LoginChoiceError, LoginMethod};
use pop3_blocking::{Connection, Error, Options, Security, TlsOptions};
use pop3_tests::{ClientCa, ScramServer, TestCa, TlsVersion};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ALL: &str = "PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-512 SCRAM-SHA-512-PLUS";

fn options() -> Options {
    let tls = TlsOptions::default()
        .add_ca_pem(TestCa::shared().certificate_pem().as_bytes())
        .unwrap();
    Options::default().timeout(Duration::from_secs(10)).tls(tls)
}

fn connect(server: &ScramServer) -> Result<Connection, Error> {
    Connection::connect("localhost", server.port(), Security::Implicit, &options())
}

/// `login()` picks the strongest -PLUS and binds with the type of the TLS version.
#[test]
fn login_binds_with_tls_exporter_on_tls13_and_end_point_on_tls12() -> TestResult {
    for (version, binding) in [
        (TlsVersion::Tls13, "p=tls-exporter,,"),
        (TlsVersion::Tls12, "p=tls-server-end-point,,"),
    ] {
        let server = ScramServer::start("alice", "pencil", ALL, version)?;
        let mut pop = connect(&server)?;
        assert!(pop.channel_binding().is_some());
        assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512Plus);
        assert_eq!(pop.stat()?.count, 0);
        pop.quit()?;
        let outcome = server.finish()?;
        assert_eq!(outcome.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));
        assert_eq!(outcome.gs2_header.as_deref(), Some(binding), "{version:?}");
        assert!(outcome.authenticated, "{outcome:?}");
    }
    Ok(())
}

/// Each -PLUS and plain variant by name, over both TLS versions.
#[test]
fn every_scram_variant_by_name() -> TestResult {
    use LoginMethod::*;
    for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
        for method in [ScramSha1Plus, ScramSha256Plus, ScramSha512Plus] {
            let server = ScramServer::start("alice", "pencil", ALL, version)?;
            let mut pop = connect(&server)?;
            assert_eq!(pop.login_with(method, "alice", "pencil")?, method);
            pop.quit()?;
            let outcome = server.finish()?;
            assert_eq!(outcome.mechanism.as_deref(), Some(method.name()));
            assert!(outcome.authenticated, "{method} {version:?} {outcome:?}");
        }
    }
    // Without -PLUS on offer, the plain variants say `y` (we could have bound).
    for method in [ScramSha1, ScramSha256, ScramSha512] {
        let server = ScramServer::start("alice", "pencil", method.name(), TlsVersion::Tls13)?;
        let mut pop = connect(&server)?;
        assert_eq!(pop.login_with(method, "alice", "pencil")?, method);
        pop.quit()?;
        let outcome = server.finish()?;
        assert_eq!(outcome.gs2_header.as_deref(), Some("y,,"));
        assert!(outcome.authenticated, "{method} {outcome:?}");
    }
    Ok(())
}

/// SHA-512 without -PLUS on offer: `login()` takes it over SHA-256 and SHA-1.
#[test]
fn login_prefers_sha512_without_plus() -> TestResult {
    let server = ScramServer::start(
        "alice",
        "pencil",
        "PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-512",
        TlsVersion::Tls13,
    )?;
    let mut pop = connect(&server)?;
    assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512);
    pop.quit()?;
    let outcome = server.finish()?;
    assert_eq!(outcome.gs2_header.as_deref(), Some("y,,"));
    assert!(outcome.authenticated);
    Ok(())
}

/// RFC 5802 downgrade rule: the plain variant by name, while the server offers -PLUS and the
/// connection can bind, is refused before anything is sent.
#[test]
fn plain_variant_against_a_plus_server_is_a_downgrade() -> TestResult {
    let server = ScramServer::start("alice", "pencil", ALL, TlsVersion::Tls13)?;
    let mut pop = connect(&server)?;
    let error = pop
        .login_with(LoginMethod::ScramSha256, "alice", "pencil")
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Login(LoginChoiceError::ChannelBindingDowngrade(
                LoginMethod::ScramSha256
            ))
        ),
        "{error:?}"
    );
    pop.quit()?;
    let outcome = server.finish()?;
    assert_eq!(outcome.mechanism, None);
    assert!(!outcome.lines.iter().any(|l| l.starts_with("AUTH")));
    Ok(())
}

/// The reference server refuses a wrong password: the test is not a rubber stamp.
#[test]
fn wrong_password_is_refused() -> TestResult {
    let server = ScramServer::start("alice", "pencil", ALL, TlsVersion::Tls12)?;
    let mut pop = connect(&server)?;
    let error = pop.login("alice", "crayon").unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    pop.quit()?;
    let outcome = server.finish()?;
    assert_eq!(outcome.refusal.as_deref(), Some("e=invalid-proof"));
    Ok(())
}

fn options_with_client_cert(ca: &ClientCa) -> Options {
    let cert =
        pop3_blocking::ClientCertificate::from_pem(ca.cert_pem.as_bytes(), ca.key_pem.as_bytes())
            .unwrap();
    options().client_cert(cert)
}

/// EXTERNAL with a TLS client certificate: no password crosses the wire.
#[test]
fn external_with_a_client_certificate() -> TestResult {
    let ca = ClientCa::generate("alice")?;
    let server = ScramServer::start_with(
        "alice",
        "pencil",
        "EXTERNAL PLAIN",
        TlsVersion::Tls13,
        Some(&ca),
    )?;
    let mut pop = Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options_with_client_cert(&ca),
    )?;
    assert_eq!(
        pop.login_with(LoginMethod::External, "alice", "")?,
        LoginMethod::External
    );
    assert_eq!(pop.stat()?.count, 0);
    pop.quit()?;
    let outcome = server.finish()?;
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );
    assert_eq!(outcome.lines[1], "AUTH EXTERNAL =");
    Ok(())
}

/// A server that requires a client certificate, with a password login (no EXTERNAL); and
/// the same server refuses the handshake without one.
#[test]
fn client_certificate_without_external() -> TestResult {
    let ca = ClientCa::generate("alice")?;
    let server = ScramServer::start_with("alice", "pencil", ALL, TlsVersion::Tls12, Some(&ca))?;
    let mut pop = Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options_with_client_cert(&ca),
    )?;
    assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512Plus);
    pop.quit()?;
    let outcome = server.finish()?;
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );

    let server = ScramServer::start_with("alice", "pencil", ALL, TlsVersion::Tls13, Some(&ca))?;
    let refused = Connection::connect("localhost", server.port(), Security::Implicit, &options());
    assert!(refused.is_err());
    let outcome = server.finish()?;
    assert!(outcome.refusal.unwrap().starts_with("handshake"));
    Ok(())
}
