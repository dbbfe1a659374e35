//! The SASL suite: SCRAM-SHA-1/256/512 and their -PLUS variants (both channel-binding types),
//! EXTERNAL and TLS client certificates, against the kit's reference SCRAM server side
//! ([`ScramServer`]), through the same [`Adapter`] as the [`suite`](crate::suite) module.
//! Instantiate it with one line per adapter:
//!
//! ```ignore
//! pop3_tests::sasl_suite!(Blocking);
//! ```
//!
//! It expands into one `#[test]` per function of this module, all named `sasl_*`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pop3_proto::login::{LoginChoiceError, LoginMethod};
use pop3_proto::sasl::ChannelBindingType;

use crate::suite::{Adapter, ConnectOptions, Failure, Security};
use crate::{
    ClientCa, KitError, ScramOutcome, ScramServer, ServerBinding, TlsVersion, certificate_pem,
};

/// Every mechanism the reference server offers by default.
const ALL: &str = "PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-512 SCRAM-SHA-512-PLUS";

/// Expands into one `#[test]` per function of [`sasl_suite`](mod@crate::sasl_suite) for the given
/// [`Adapter`] type.
#[macro_export]
macro_rules! sasl_suite {
    ($adapter:ty) => {
        $crate::__suite_tests!(sasl_suite, $adapter;
            sasl_login_binds_with_tls_exporter_on_tls13_and_end_point_on_tls12,
            sasl_every_scram_variant_by_name,
            sasl_login_prefers_sha512_without_plus,
            sasl_plain_variant_against_a_plus_server_is_a_downgrade,
            sasl_wrong_password_is_refused,
            sasl_external_with_a_client_certificate,
            sasl_client_certificate_without_external,
            sasl_plus_after_stls_binds_to_the_session_stls_started,
            sasl_plus_after_stls_fails_when_the_server_binds_differently,
            sasl_plain_variant_after_stls_is_a_downgrade,
            sasl_from_parts_binds_only_with_the_binding_the_caller_sets,
            sasl_parts_round_trip_keeps_the_binding_of_the_same_stream,
        );
    };
}

/// What a test of this suite returns.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

fn options() -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(10),
        ..ConnectOptions::default()
    }
}

/// Connects with implicit TLS, presenting the client certificate of `ca`.
fn connect_with_cert<A: Adapter>(server: &ScramServer, ca: &ClientCa) -> Result<A, Failure> {
    let options = ConnectOptions {
        client_cert: Some((ca.cert_pem.clone(), ca.key_pem.clone())),
        ..options()
    };
    A::connect("localhost", server.port(), Security::Implicit, &options)
}

fn connect<A: Adapter>(server: &ScramServer) -> Result<A, Failure> {
    A::connect("localhost", server.port(), Security::Implicit, &options())
}

fn connect_stls<A: Adapter>(server: &ScramServer) -> Result<A, Failure> {
    A::connect("localhost", server.port(), Security::StartTls, &options())
}

fn start_stls(version: TlsVersion, binding: ServerBinding) -> Result<ScramServer, KitError> {
    ScramServer::start_stls("alice", "pencil", ALL, version, binding)
}

/// `login()` picks the strongest -PLUS and binds with the type of the TLS version.
pub fn sasl_login_binds_with_tls_exporter_on_tls13_and_end_point_on_tls12<A: Adapter>() -> TestResult
{
    for (version, binding) in [
        (TlsVersion::Tls13, "p=tls-exporter,,"),
        (TlsVersion::Tls12, "p=tls-server-end-point,,"),
    ] {
        let server = ScramServer::start("alice", "pencil", ALL, version)?;
        let mut pop = connect::<A>(&server)?;
        assert!(pop.can_bind());
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
pub fn sasl_every_scram_variant_by_name<A: Adapter>() -> TestResult {
    use LoginMethod::*;
    for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
        for method in [ScramSha1Plus, ScramSha256Plus, ScramSha512Plus] {
            let server = ScramServer::start("alice", "pencil", ALL, version)?;
            let mut pop = connect::<A>(&server)?;
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
        let mut pop = connect::<A>(&server)?;
        assert_eq!(pop.login_with(method, "alice", "pencil")?, method);
        pop.quit()?;
        let outcome = server.finish()?;
        assert_eq!(outcome.gs2_header.as_deref(), Some("y,,"));
        assert!(outcome.authenticated, "{method} {outcome:?}");
    }
    Ok(())
}

/// SHA-512 without -PLUS on offer: `login()` takes it over SHA-256 and SHA-1.
pub fn sasl_login_prefers_sha512_without_plus<A: Adapter>() -> TestResult {
    let server = ScramServer::start(
        "alice",
        "pencil",
        "PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-512",
        TlsVersion::Tls13,
    )?;
    let mut pop = connect::<A>(&server)?;
    assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512);
    pop.quit()?;
    let outcome = server.finish()?;
    assert_eq!(outcome.gs2_header.as_deref(), Some("y,,"));
    assert!(outcome.authenticated);
    Ok(())
}

/// Asks for the plain `method` by name where -PLUS is on offer and the connection can bind:
/// checks that it is refused as a downgrade before AUTH is sent; returns the server's outcome.
#[track_caller]
fn refused_as_downgrade<A: Adapter>(
    mut pop: A,
    server: ScramServer,
    method: LoginMethod,
) -> Result<ScramOutcome, Box<dyn std::error::Error>> {
    let error = pop.login_with(method, "alice", "pencil").unwrap_err();
    assert!(
        matches!(
            error,
            Failure::Login(LoginChoiceError::ChannelBindingDowngrade(m)) if m == method
        ),
        "{error:?}"
    );
    pop.quit()?;
    let outcome = server.finish()?;
    assert!(!outcome.lines.iter().any(|l| l.starts_with("AUTH")));
    Ok(outcome)
}

/// RFC 5802 downgrade rule: the plain variant by name, while the server offers -PLUS and the
/// connection can bind, is refused before anything is sent.
pub fn sasl_plain_variant_against_a_plus_server_is_a_downgrade<A: Adapter>() -> TestResult {
    let server = ScramServer::start("alice", "pencil", ALL, TlsVersion::Tls13)?;
    let pop = connect::<A>(&server)?;
    let outcome = refused_as_downgrade(pop, server, LoginMethod::ScramSha256)?;
    assert_eq!(outcome.mechanism, None);
    Ok(())
}

/// The reference server refuses a wrong password: the test is not a rubber stamp.
pub fn sasl_wrong_password_is_refused<A: Adapter>() -> TestResult {
    let server = ScramServer::start("alice", "pencil", ALL, TlsVersion::Tls12)?;
    let mut pop = connect::<A>(&server)?;
    let error = pop.login("alice", "crayon").unwrap_err();
    assert!(matches!(error, Failure::Server(_)), "{error:?}");
    pop.quit()?;
    let outcome = server.finish()?;
    assert_eq!(outcome.refusal.as_deref(), Some("e=invalid-proof"));
    Ok(())
}

/// EXTERNAL with a TLS client certificate: no password crosses the wire.
pub fn sasl_external_with_a_client_certificate<A: Adapter>() -> TestResult {
    let ca = ClientCa::generate("alice")?;
    let server = ScramServer::start_with(
        "alice",
        "pencil",
        "EXTERNAL PLAIN",
        TlsVersion::Tls13,
        Some(&ca),
    )?;
    let mut pop = connect_with_cert::<A>(&server, &ca)?;
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
pub fn sasl_client_certificate_without_external<A: Adapter>() -> TestResult {
    let ca = ClientCa::generate("alice")?;
    let server = ScramServer::start_with("alice", "pencil", ALL, TlsVersion::Tls12, Some(&ca))?;
    let mut pop = connect_with_cert::<A>(&server, &ca)?;
    assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512Plus);
    pop.quit()?;
    let outcome = server.finish()?;
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );

    let server = ScramServer::start_with("alice", "pencil", ALL, TlsVersion::Tls13, Some(&ca))?;
    let refused = connect::<A>(&server);
    assert!(refused.is_err());
    let outcome = server.finish()?;
    assert!(outcome.refusal.unwrap().starts_with("handshake"));
    Ok(())
}

/// -PLUS after STLS, on TLS 1.3 (`tls-exporter`) and TLS 1.2 (`tls-server-end-point`): the
/// server binds to its own end of the TLS session STLS started, so the login proves that
/// the client's binding is the one of that session.
pub fn sasl_plus_after_stls_binds_to_the_session_stls_started<A: Adapter>() -> TestResult {
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
        let server = start_stls(version, ServerBinding::Correct)?;
        let mut pop = connect_stls::<A>(&server)?;
        assert_eq!(pop.channel_binding().map(|b| b.kind()), Some(kind));
        assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512Plus);
        assert_eq!(pop.stat()?.count, 0);
        pop.quit()?;
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
pub fn sasl_plus_after_stls_fails_when_the_server_binds_differently<A: Adapter>() -> TestResult {
    use LoginMethod::*;
    for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
        for method in [ScramSha1Plus, ScramSha256Plus, ScramSha512Plus] {
            let server = start_stls(version, ServerBinding::Wrong)?;
            let mut pop = connect_stls::<A>(&server)?;
            let error = pop.login_with(method, "alice", "pencil").unwrap_err();
            assert!(
                matches!(error, Failure::Server(_)),
                "{method} {version:?} {error:?}"
            );
            pop.quit()?;
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
pub fn sasl_plain_variant_after_stls_is_a_downgrade<A: Adapter>() -> TestResult {
    let server = start_stls(TlsVersion::Tls12, ServerBinding::Correct)?;
    let pop = connect_stls::<A>(&server)?;
    let outcome = refused_as_downgrade(pop, server, LoginMethod::ScramSha512)?;
    assert!(outcome.stls);
    Ok(())
}

/// STLS with a TLS handshake of the caller's own (`stls_start`, `into_parts`, `from_parts`):
/// `from_parts` cannot see inside the caller's stream, so the session carries no binding
/// (nothing stale from before STLS either: [`Adapter::stls_by_parts`] checks the session
/// between `into_parts` and `from_parts`) and logs in without binding (`n`), until the caller
/// sets the binding of its TLS session; then -PLUS verifies.
pub fn sasl_from_parts_binds_only_with_the_binding_the_caller_sets<A: Adapter>() -> TestResult {
    for set_binding in [false, true] {
        let server = start_stls(TlsVersion::Tls13, ServerBinding::Correct)?;
        let pop = A::connect("127.0.0.1", server.port(), Security::None, &options())?;
        assert!(pop.channel_binding().is_none());
        let mut pop = pop.stls_by_parts(certificate_pem(), "localhost", set_binding)?;
        assert_eq!(pop.can_bind(), set_binding);
        let expected = match set_binding {
            true => LoginMethod::ScramSha512Plus,
            false => LoginMethod::ScramSha512,
        };
        assert_eq!(pop.login("alice", "pencil")?, expected);
        pop.quit()?;
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
pub fn sasl_parts_round_trip_keeps_the_binding_of_the_same_stream<A: Adapter>() -> TestResult {
    let server = start_stls(TlsVersion::Tls12, ServerBinding::Correct)?;
    let pop = connect_stls::<A>(&server)?;
    let before = pop.channel_binding();
    assert!(before.is_some());
    let mut pop = pop.parts_round_trip()?;
    assert_eq!(pop.channel_binding(), before);
    assert_eq!(pop.login("alice", "pencil")?, LoginMethod::ScramSha512Plus);
    pop.quit()?;
    let outcome = server.finish()?;
    assert!(outcome.authenticated, "{outcome:?}");
    Ok(())
}
