//! SCRAM-SHA-1/256/512 and their -PLUS variants (both channel-binding types) through
//! `pop3-async`, against the kit's reference SCRAM server side. `sasl_blocking.rs` runs the
//! same cases through `pop3-blocking`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pop3_async::pop3_proto::login::{LoginChoiceError, LoginMethod};
use pop3_async::pop3_proto::sasl::ChannelBindingType;
use pop3_async::{Connection, Error, Options, Security, TlsOptions};
use pop3_tests::{ClientCa, ScramServer, ServerBinding, TestCa, TlsVersion};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ALL: &str = "PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-512 SCRAM-SHA-512-PLUS";

fn options() -> Options {
    let tls = TlsOptions::default()
        .add_ca_pem(TestCa::shared().certificate_pem().as_bytes())
        .unwrap();
    Options::default().timeout(Duration::from_secs(10)).tls(tls)
}

static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

fn connect(server: &ScramServer) -> Result<Connection, Error> {
    block_on(Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options(),
    ))
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
        assert_eq!(
            block_on(pop.login("alice", "pencil"))?,
            LoginMethod::ScramSha512Plus
        );
        assert_eq!(block_on(pop.stat())?.count, 0);
        block_on(pop.quit())?;
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
            assert_eq!(block_on(pop.login_with(method, "alice", "pencil"))?, method);
            block_on(pop.quit())?;
            let outcome = server.finish()?;
            assert_eq!(outcome.mechanism.as_deref(), Some(method.name()));
            assert!(outcome.authenticated, "{method} {version:?} {outcome:?}");
        }
    }
    // Without -PLUS on offer, the plain variants say `y` (we could have bound).
    for method in [ScramSha1, ScramSha256, ScramSha512] {
        let server = ScramServer::start("alice", "pencil", method.name(), TlsVersion::Tls13)?;
        let mut pop = connect(&server)?;
        assert_eq!(block_on(pop.login_with(method, "alice", "pencil"))?, method);
        block_on(pop.quit())?;
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
    assert_eq!(
        block_on(pop.login("alice", "pencil"))?,
        LoginMethod::ScramSha512
    );
    block_on(pop.quit())?;
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
    let error = block_on(pop.login_with(LoginMethod::ScramSha256, "alice", "pencil")).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Login(LoginChoiceError::ChannelBindingDowngrade(
                LoginMethod::ScramSha256
            ))
        ),
        "{error:?}"
    );
    block_on(pop.quit())?;
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
    let error = block_on(pop.login("alice", "crayon")).unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    block_on(pop.quit())?;
    let outcome = server.finish()?;
    assert_eq!(outcome.refusal.as_deref(), Some("e=invalid-proof"));
    Ok(())
}

fn options_with_client_cert(ca: &ClientCa) -> Options {
    let cert =
        pop3_async::ClientCertificate::from_pem(ca.cert_pem.as_bytes(), ca.key_pem.as_bytes())
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
    let mut pop = block_on(Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options_with_client_cert(&ca),
    ))?;
    assert_eq!(
        block_on(pop.login_with(LoginMethod::External, "alice", ""))?,
        LoginMethod::External
    );
    assert_eq!(block_on(pop.stat())?.count, 0);
    block_on(pop.quit())?;
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
    let mut pop = block_on(Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options_with_client_cert(&ca),
    ))?;
    assert_eq!(
        block_on(pop.login("alice", "pencil"))?,
        LoginMethod::ScramSha512Plus
    );
    block_on(pop.quit())?;
    let outcome = server.finish()?;
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );

    let server = ScramServer::start_with("alice", "pencil", ALL, TlsVersion::Tls13, Some(&ca))?;
    let refused = block_on(Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &options(),
    ));
    assert!(refused.is_err());
    let outcome = server.finish()?;
    assert!(outcome.refusal.unwrap().starts_with("handshake"));
    Ok(())
}

fn connect_stls(server: &ScramServer) -> Result<Connection, Error> {
    block_on(Connection::connect(
        "localhost",
        server.port(),
        Security::StartTls,
        &options(),
    ))
}

/// -PLUS after STLS, on TLS 1.3 (`tls-exporter`) and TLS 1.2 (`tls-server-end-point`): the
/// server binds to its own end of the TLS session STLS started, so the login proves that
/// the client's binding is the one of that session.
#[test]
fn plus_after_stls_binds_to_the_session_stls_started() -> TestResult {
    for (version, kind, header) in [
        (
            TlsVersion::Tls13,
            ChannelBindingType::TlsExporter,
            "p=tls-exporter,,",
        ),
        (
            TlsVersion::Tls12,
            ChannelBindingType::TlsServerEndPoint,
            "p=tls-server-end-point,,",
        ),
    ] {
        let server =
            ScramServer::start_stls("alice", "pencil", ALL, version, ServerBinding::Correct)?;
        let mut pop = connect_stls(&server)?;
        assert_eq!(pop.channel_binding().map(|b| b.kind()), Some(kind));
        assert_eq!(
            block_on(pop.login("alice", "pencil"))?,
            LoginMethod::ScramSha512Plus
        );
        assert_eq!(block_on(pop.stat())?.count, 0);
        block_on(pop.quit())?;
        let outcome = server.finish()?;
        assert!(
            outcome.stls && outcome.authenticated,
            "{version:?} {outcome:?}"
        );
        assert_eq!(outcome.gs2_header.as_deref(), Some(header));
        // CAPA before TLS (no SASL there), STLS, CAPA again over TLS, then AUTH.
        assert_eq!(outcome.lines[..3], ["CAPA", "STLS", "CAPA"]);
        assert!(outcome.lines[3].starts_with("AUTH SCRAM-SHA-512-PLUS "));
    }
    Ok(())
}

/// The same, with a server that computes its binding wrong (another exporter label on 1.3,
/// another hash of its certificate on 1.2): every -PLUS variant is refused, so the binding
/// the client sends is really checked against the TLS session.
#[test]
fn plus_after_stls_fails_when_the_server_binds_differently() -> TestResult {
    use LoginMethod::*;
    for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
        for method in [ScramSha1Plus, ScramSha256Plus, ScramSha512Plus] {
            let server =
                ScramServer::start_stls("alice", "pencil", ALL, version, ServerBinding::Wrong)?;
            let mut pop = connect_stls(&server)?;
            let error = block_on(pop.login_with(method, "alice", "pencil")).unwrap_err();
            assert!(
                matches!(error, Error::Server(_)),
                "{method} {version:?} {error:?}"
            );
            block_on(pop.quit())?;
            let outcome = server.finish()?;
            assert_eq!(
                outcome.refusal.as_deref(),
                Some("e=channel-bindings-dont-match"),
                "{method} {version:?}"
            );
            assert!(!outcome.authenticated);
        }
    }
    Ok(())
}

/// The downgrade rule after STLS: -PLUS appears in the CAPA read over TLS, so the plain
/// variant by name is refused before AUTH is sent.
#[test]
fn plain_variant_after_stls_is_a_downgrade() -> TestResult {
    let server = ScramServer::start_stls(
        "alice",
        "pencil",
        ALL,
        TlsVersion::Tls12,
        ServerBinding::Correct,
    )?;
    let mut pop = connect_stls(&server)?;
    let error = block_on(pop.login_with(LoginMethod::ScramSha512, "alice", "pencil")).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Login(LoginChoiceError::ChannelBindingDowngrade(
                LoginMethod::ScramSha512
            ))
        ),
        "{error:?}"
    );
    block_on(pop.quit())?;
    let outcome = server.finish()?;
    assert!(outcome.stls);
    assert!(!outcome.lines.iter().any(|l| l.starts_with("AUTH")));
    Ok(())
}

/// STLS with a TLS handshake of the caller's own (`stls_start`, `into_parts`, `from_parts`):
/// `from_parts` cannot see inside the caller's stream, so the session carries no binding
/// (nothing stale from before STLS either) and logs in without binding (`n`), until the
/// caller sets the binding of its TLS session; then -PLUS verifies.
#[test]
fn from_parts_binds_only_with_the_binding_the_caller_sets() -> TestResult {
    for set_binding in [false, true] {
        let server = ScramServer::start_stls(
            "alice",
            "pencil",
            ALL,
            TlsVersion::Tls13,
            ServerBinding::Correct,
        )?;
        let method = block_on(async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port())).await?;
            let mut pop = Connection::new(tcp, &options()).await?;
            assert!(pop.channel_binding().is_none());
            pop.stls_start().await?;
            let (tcp, mut session) = pop.into_parts();
            assert!(session.channel_binding().is_none());
            let config = TlsOptions::default()
                .add_ca_pem(TestCa::shared().certificate_pem().as_bytes())?
                .build()?;
            let name = pop3_async::rustls::pki_types::ServerName::try_from("localhost")?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            if set_binding {
                session.set_channel_binding(pop3_async::channel_binding(tls.get_ref().1));
            }
            let mut pop = Connection::from_parts(tls, session).await?;
            let method = pop.login("alice", "pencil").await?;
            pop.quit().await?;
            Ok::<_, Box<dyn std::error::Error>>(method)
        })?;
        let expected = match set_binding {
            true => LoginMethod::ScramSha512Plus,
            false => LoginMethod::ScramSha512,
        };
        assert_eq!(method, expected);
        let outcome = server.finish()?;
        assert!(outcome.authenticated, "{outcome:?}");
        let header = match set_binding {
            true => "p=tls-exporter,,",
            false => "n,,",
        };
        assert_eq!(outcome.gs2_header.as_deref(), Some(header));
    }
    Ok(())
}

/// `into_parts` and `from_parts` on the same TLS stream keep the binding of that stream (the
/// one `connect` set after the handshake STLS started), and -PLUS still verifies.
#[test]
fn parts_round_trip_keeps_the_binding_of_the_same_stream() -> TestResult {
    let server = ScramServer::start_stls(
        "alice",
        "pencil",
        ALL,
        TlsVersion::Tls12,
        ServerBinding::Correct,
    )?;
    let pop = connect_stls(&server)?;
    let before = pop.channel_binding().cloned();
    assert!(before.is_some());
    let (stream, session) = pop.into_parts();
    let mut pop = block_on(Connection::from_parts(stream, session))?;
    assert_eq!(pop.channel_binding(), before.as_ref());
    assert_eq!(
        block_on(pop.login("alice", "pencil"))?,
        LoginMethod::ScramSha512Plus
    );
    block_on(pop.quit())?;
    let outcome = server.finish()?;
    assert!(outcome.authenticated, "{outcome:?}");
    Ok(())
}
