//! Implicit TLS, STLS, certificate verification and the STARTTLS injection check.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Peer, options, serve_one, tls_server};
use pop3_async::pop3_proto::ProtocolError;
use pop3_async::{Connection, Error, LoginMethod, Options, Security, TlsOptions};
use tokio_rustls::TlsAcceptor;

const CAPA_STLS: &str = "+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n";
const CAPA_TLS: &str = "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n";

fn trusting(pem: &str) -> Options {
    Options::default()
        .timeout(std::time::Duration::from_secs(10))
        .tls(TlsOptions::default().add_ca_pem(pem.as_bytes()).unwrap())
}

#[tokio::test]
async fn stls_upgrade_then_login_over_tls() {
    let (config, pem) = tls_server();
    let (addr, server) = serve_one(move |mut p| async move {
        p.send("+OK ready\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_STLS).await;
        p.expect("STLS").await;
        p.send("+OK begin TLS\r\n").await;
        let tls = TlsAcceptor::from(config)
            .accept(p.into_inner())
            .await
            .unwrap();
        let mut p = Peer::new(tls);
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==").await;
        p.send("+OK\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.expect("QUIT").await;
        p.send("+OK bye\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = Connection::connect(
        "localhost",
        addr.port(),
        Security::StartTls,
        &trusting(&pem),
    )
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
    server.await.unwrap();
}

#[tokio::test]
async fn implicit_tls() {
    let (config, pem) = tls_server();
    let (addr, server) = serve_one(move |p| async move {
        let tls = TlsAcceptor::from(config)
            .accept(p.into_inner())
            .await
            .unwrap();
        let mut p = Peer::new(tls);
        p.send("+OK ready\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.expect("USER alice").await;
        p.send("+OK\r\n").await;
        p.expect("PASS secret").await;
        p.send("+OK\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.expect("QUIT").await;
        p.send("+OK bye\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = Connection::connect(
        "localhost",
        addr.port(),
        Security::Implicit,
        &trusting(&pem),
    )
    .await
    .unwrap();
    assert!(pop.is_tls());
    // USER/PASS is allowed over TLS without any option.
    pop.user("alice").await.unwrap();
    pop.pass("secret").await.unwrap();
    pop.quit().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn unknown_ca_and_wrong_name_fail_verification() {
    let (config, pem) = tls_server();
    let c = config.clone();
    let (addr, _server) = serve_one(move |p| async move {
        let _ = TlsAcceptor::from(c).accept(p.into_inner()).await;
    })
    .await;
    let untrusted = Connection::connect(
        "localhost",
        addr.port(),
        Security::Implicit,
        &Options::default(),
    )
    .await;
    assert!(matches!(untrusted, Err(Error::Tls(_))), "{untrusted:?}");

    let (addr, _server) = serve_one(move |p| async move {
        let _ = TlsAcceptor::from(config).accept(p.into_inner()).await;
    })
    .await;
    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = Connection::connect(
        "127.0.0.1",
        addr.port(),
        Security::Implicit,
        &trusting(&pem),
    )
    .await;
    assert!(matches!(wrong_name, Err(Error::Tls(_))), "{wrong_name:?}");
}

#[tokio::test]
async fn dangerous_accept_any_certificate() {
    let (config, _) = tls_server();
    let (addr, server) = serve_one(move |p| async move {
        let tls = TlsAcceptor::from(config)
            .accept(p.into_inner())
            .await
            .unwrap();
        let mut p = Peer::new(tls);
        p.send("+OK ready\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.drain().await
    })
    .await;
    let options = Options::default().tls(TlsOptions::default().dangerous_accept_any_certificate());
    let pop = Connection::connect("127.0.0.1", addr.port(), Security::Implicit, &options)
        .await
        .unwrap();
    assert!(pop.is_tls());
    drop(pop);
    // The whole exchange ran over the TLS session the server accepted.
    assert_eq!(server.await.unwrap(), ["CAPA"]);
}

#[tokio::test]
async fn stls_injection_fails() {
    let (addr, server) = serve_one(|mut p| async move {
        p.send("+OK ready\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_STLS).await;
        p.expect("STLS").await;
        // A man in the middle appends a plaintext reply to be read as if it came over TLS.
        p.send("+OK begin TLS\r\n+OK injected\r\n").await;
        p.drain().await
    })
    .await;
    let result =
        Connection::connect("localhost", addr.port(), Security::StartTls, &options()).await;
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::StartTlsInjection))
        ),
        "{result:?}"
    );
    let received = server.await.unwrap();
    assert_eq!(
        received,
        ["CAPA", "STLS"],
        "nothing sent after the injection"
    );
}

#[tokio::test]
async fn stls_refused() {
    let (addr, server) = serve_one(|mut p| async move {
        p.send("+OK ready\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA_TLS).await;
        p.expect("STLS").await;
        p.send("-ERR not here\r\n").await;
        p.drain().await
    })
    .await;
    let result =
        Connection::connect("localhost", addr.port(), Security::StartTls, &options()).await;
    assert!(matches!(result, Err(Error::Server(_))), "{result:?}");
    drop(result);
    // Nothing followed the refused STLS in plaintext.
    assert_eq!(server.await.unwrap(), ["CAPA", "STLS"]);
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
