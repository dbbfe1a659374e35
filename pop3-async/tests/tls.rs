//! Implicit TLS, STLS, certificate verification and the STARTTLS injection check.
#![allow(clippy::unwrap_used)]

mod common;

use common::{complete, localhost_ca, options, serve};
use pop3_async::pop3_proto::ProtocolError;
use pop3_async::{Connection, Error, LoginMethod, Options, Security, TlsOptions};
use pop3_tests::{Script, ScriptedServer, TestCa};

/// The CAPA replies, escaped for `S-RAW`.
const CAPA_STLS: &str = r"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n";
const CAPA_TLS: &str = r"+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n";

/// The kit's scripted server with `ca`'s certificate, for one connection of `script`.
fn serve_tls(ca: &TestCa, implicit: bool, script: &str) -> ScriptedServer {
    let builder =
        ScriptedServer::builder(Script::parse(script).unwrap()).tls_config(ca.server_config());
    if implicit {
        builder.implicit_tls().start().unwrap()
    } else {
        builder.start().unwrap()
    }
}

/// The server's side of a connection whose client refused the certificate: the handshake
/// failed, and the client sent nothing over TLS.
async fn assert_refused(server: ScriptedServer) {
    let transcript = server.finish_async().await.unwrap();
    assert!(!transcript.is_complete(), "{transcript}");
    assert!(transcript.received().is_empty(), "{transcript}");
}

fn trusting(pem: &str) -> Options {
    Options::default()
        .timeout(std::time::Duration::from_secs(10))
        .tls(TlsOptions::default().add_ca_pem(pem.as_bytes()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stls_upgrade_then_login_over_tls() {
    let ca = localhost_ca();
    let pem = ca.certificate_pem();
    let server = serve_tls(
        &ca,
        false,
        &format!(
            r"
            S: +OK ready
            C: CAPA
            S-RAW: {CAPA_STLS}
            C: STLS
            S: +OK begin TLS
            STARTTLS
            C: CAPA
            S-RAW: {CAPA_TLS}
            C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
            S: +OK
            C: CAPA
            S-RAW: {CAPA_TLS}
            C: QUIT
            S: +OK bye
            "
        ),
    );
    let addr = server.addr();
    let options = trusting(pem);
    // On a spawned task of a multi-thread runtime: connecting, STLS and login are `Send`.
    tokio::spawn(async move {
        let mut pop = Connection::connect("localhost", addr.port(), Security::StartTls, &options)
            .await
            .unwrap();
        assert!(pop.is_tls());
        assert!(
            !pop.capabilities().unwrap().stls,
            "capabilities re-read after STLS"
        );
        // Over TLS, the default policy allows PLAIN.
        assert_eq!(
            pop.login("alice", "secret").await.unwrap(),
            LoginMethod::Plain
        );
        pop.quit().await.unwrap();
    })
    .await
    .unwrap();
    let transcript = complete(server).await;
    assert_eq!(transcript.received_before_tls(), b"CAPA\r\nSTLS\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls() {
    let ca = localhost_ca();
    let pem = ca.certificate_pem();
    let server = serve_tls(
        &ca,
        true,
        &format!(
            r"
            S: +OK ready
            C: CAPA
            S-RAW: {CAPA_TLS}
            C: USER alice
            S: +OK
            C: PASS secret
            S: +OK
            C: CAPA
            S-RAW: {CAPA_TLS}
            C: QUIT
            S: +OK bye
            "
        ),
    );
    let addr = server.addr();
    let options = trusting(pem);
    // On a spawned task: the implicit-TLS handshake is `Send` too.
    tokio::spawn(async move {
        let mut pop = Connection::connect("localhost", addr.port(), Security::Implicit, &options)
            .await
            .unwrap();
        assert!(pop.is_tls());
        // USER/PASS is allowed over TLS without any option.
        pop.user("alice").await.unwrap();
        pop.pass("secret").await.unwrap();
        pop.quit().await.unwrap();
    })
    .await
    .unwrap();
    complete(server).await;
}

#[tokio::test]
async fn unknown_ca_and_wrong_name_fail_verification() {
    let ca = localhost_ca();
    let server = serve_tls(&ca, true, "S: +OK ready");
    let untrusted = Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &Options::default(),
    )
    .await;
    assert!(matches!(untrusted, Err(Error::Tls(_))), "{untrusted:?}");
    assert_refused(server).await;

    let server = serve_tls(&ca, true, "S: +OK ready");
    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = Connection::connect(
        "127.0.0.1",
        server.port(),
        Security::Implicit,
        &trusting(ca.certificate_pem()),
    )
    .await;
    assert!(matches!(wrong_name, Err(Error::Tls(_))), "{wrong_name:?}");
    assert_refused(server).await;
}

#[tokio::test]
async fn dangerous_accept_any_certificate() {
    let ca = localhost_ca();
    let server = serve_tls(
        &ca,
        true,
        &format!(
            r"
            S: +OK ready
            C: CAPA
            S-RAW: {CAPA_TLS}
            EOF
            "
        ),
    );
    let options = Options::default().tls(TlsOptions::default().dangerous_accept_any_certificate());
    let pop = Connection::connect("127.0.0.1", server.port(), Security::Implicit, &options)
        .await
        .unwrap();
    assert!(pop.is_tls());
    drop(pop);
    // The whole exchange ran over the TLS session the server accepted.
    let transcript = complete(server).await;
    assert_eq!(transcript.tls_offset(), Some(0));
    assert_eq!(transcript.received(), b"CAPA\r\n");
}

#[tokio::test]
async fn stls_injection_fails() {
    let server = serve(&format!(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: {CAPA_STLS}
        C: STLS
        # A man in the middle appends a plaintext reply to be read as if it came over TLS.
        S-RAW: +OK begin TLS\r\n+OK injected\r\n
        EOF
        "
    ));
    let result =
        Connection::connect("localhost", server.port(), Security::StartTls, &options()).await;
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::StartTlsInjection))
        ),
        "{result:?}"
    );
    // Nothing sent after the injection.
    assert_eq!(complete(server).await.received(), b"CAPA\r\nSTLS\r\n");
}

#[tokio::test]
async fn stls_refused() {
    let server = serve(&format!(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: {CAPA_TLS}
        C: STLS
        S: -ERR not here
        EOF
        "
    ));
    let result =
        Connection::connect("localhost", server.port(), Security::StartTls, &options()).await;
    assert!(matches!(result, Err(Error::Server(_))), "{result:?}");
    drop(result);
    // Nothing followed the refused STLS in plaintext.
    assert_eq!(complete(server).await.received(), b"CAPA\r\nSTLS\r\n");
}

#[test]
fn bad_ca_pem_is_an_error() {
    assert!(
        TlsOptions::default()
            .add_ca_pem(b"not a certificate")
            .is_err()
    );
    assert!(
        TlsOptions::default()
            .add_ca_file("/nonexistent/ca.pem")
            .is_err()
    );
}
