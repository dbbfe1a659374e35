//! The TLS options and errors as the adapters' users meet them: a self-signed `CA:TRUE`
//! certificate trusted by its own PEM, a pin, and errors that carry their context (the
//! address of a refused connection, a hint for a plaintext port).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::TcpListener;

use pop3_tests::{MailboxServer, TestCa, generate_mail};
use pop3_tls::{Fingerprint, Options, Security, TlsOptions};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn openssl_style_server(ca: &TestCa) -> MailboxServer {
    MailboxServer::builder(generate_mail(1, 200, 3))
        .implicit_tls()
        .tls_config(ca.server_config())
        .start()
        .unwrap()
}

#[test]
fn both_adapters_trust_a_ca_true_certificate_by_its_own_pem_or_its_pin() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let server = openssl_style_server(&ca);
    let by_file = Options::new().tls(
        TlsOptions::new()
            .add_ca_pem(ca.certificate_pem().as_bytes())
            .unwrap(),
    );
    let by_pin = Options::new().pin_fingerprint(Fingerprint::of(ca.certificate_der()));
    for options in [&by_file, &by_pin] {
        let connection = pop3_blocking::Connection::connect(
            "localhost",
            server.port(),
            Security::Implicit,
            options,
        )
        .unwrap();
        assert!(connection.is_tls());
        connection.quit().unwrap();
        block_on(async {
            let connection = pop3_async::Connection::connect(
                "localhost",
                server.port(),
                Security::Implicit,
                options,
            )
            .await
            .unwrap();
            connection.quit().await.unwrap();
        });
    }
    // Untrusted: the plain words, through both adapters' Display.
    let expected = "TLS error: the server's certificate is a CA certificate (CA:TRUE)";
    let error = pop3_blocking::Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &Options::new(),
    )
    .unwrap_err();
    assert!(error.to_string().starts_with(expected), "{error}");
    let error = block_on(pop3_async::Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &Options::new(),
    ))
    .unwrap_err();
    assert!(error.to_string().starts_with(expected), "{error}");
}

#[test]
fn a_refused_connection_names_its_address() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let expected =
        format!("i/o error: connecting to 127.0.0.1:{port}: Connection refused (os error 111)");
    let error =
        pop3_blocking::Connection::connect("127.0.0.1", port, Security::None, &Options::new())
            .unwrap_err();
    assert!(
        matches!(&error, pop3_blocking::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    assert_eq!(error.to_string(), expected);
    let error = block_on(pop3_async::Connection::connect(
        "127.0.0.1",
        port,
        Security::None,
        &Options::new(),
    ))
    .unwrap_err();
    assert!(
        matches!(&error, pop3_async::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    assert_eq!(error.to_string(), expected);
}

#[test]
fn implicit_tls_on_a_plaintext_port_gets_a_hint() {
    let server = MailboxServer::start(generate_mail(1, 200, 3)).unwrap();
    let expected = "TLS error: the server did not answer in TLS (is this a plaintext port? \
                    POP3 over implicit TLS is port 995; on port 110 use STARTTLS: pop3 --tls \
                    starttls; Security::StartTls)";
    let error = pop3_blocking::Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &Options::new(),
    )
    .unwrap_err();
    assert_eq!(error.to_string(), expected);
    let error = block_on(pop3_async::Connection::connect(
        "localhost",
        server.port(),
        Security::Implicit,
        &Options::new(),
    ))
    .unwrap_err();
    assert_eq!(error.to_string(), expected);
}
