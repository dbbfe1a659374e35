//! The `pop3` command's SASL options (issue 12): `--auth` with every SCRAM variant and
//! `external`, `--client-cert`/`--client-key`, and the same as config keys, against the kit's
//! reference SCRAM server (TLS 1.2 and 1.3, its own channel binding).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use pop3_scram_server::{ClientCa, ScramServer, TlsVersion};

const ALL: &str = "PLAIN SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-512 SCRAM-SHA-512-PLUS";

fn args(port: u16, ca: &std::path::Path) -> Vec<String> {
    [
        "--host",
        "localhost",
        "--port",
        &port.to_string(),
        "--ca-file",
        ca.to_str().unwrap(),
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--timeout",
        "20",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn every_auth_spelling_of_the_scram_family() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    for (version, spelling, mechanism) in [
        (TlsVersion::Tls13, "scram-sha-1", "SCRAM-SHA-1"),
        (TlsVersion::Tls13, "scram-sha-512", "SCRAM-SHA-512"),
        (TlsVersion::Tls13, "scram-sha-1-plus", "SCRAM-SHA-1-PLUS"),
        (
            TlsVersion::Tls12,
            "scram-sha-256-plus",
            "SCRAM-SHA-256-PLUS",
        ),
        (
            TlsVersion::Tls12,
            "scram-sha-512-plus",
            "SCRAM-SHA-512-PLUS",
        ),
        (TlsVersion::Tls13, "auto", "SCRAM-SHA-512-PLUS"),
    ] {
        // The plain variants against a server without -PLUS (else: a downgrade).
        let offered = if mechanism.ends_with("-PLUS") {
            ALL
        } else {
            mechanism
        };
        let server = ScramServer::start("alice", "secret-a", offered, version).unwrap();
        let r = run_with(&args(server.port(), &ca), &["--auth", spelling, "stat"]);
        r.expect_code(0);
        assert!(r.stdout_str().starts_with("0 0"), "{}", r.stdout_str());
        let outcome = server.finish().unwrap();
        assert_eq!(outcome.mechanism.as_deref(), Some(mechanism), "{spelling}");
        assert!(outcome.authenticated, "{spelling}: {outcome:?}");
    }
}

/// `--auth scram-sha-256` against a server offering -PLUS on a connection that can bind: the
/// downgrade rule refuses it before AUTH (a usage error, exit 2).
#[test]
fn a_downgrade_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = ScramServer::start("alice", "secret-a", ALL, TlsVersion::Tls13).unwrap();
    let r = run_with(
        &args(server.port(), &ca),
        &["--auth", "scram-sha-256", "stat"],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("-PLUS"), "{}", r.stderr);
    let outcome = server.finish().unwrap();
    assert_eq!(outcome.mechanism, None, "{outcome:?}");
}

#[test]
fn external_and_client_certificates_from_flags_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let client = ClientCa::generate("alice").unwrap();
    let (cert, key) = (dir.path().join("alice.pem"), dir.path().join("alice.key"));
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, &client.key_pem).unwrap();
    let cert_args = [
        "--client-cert",
        cert.to_str().unwrap(),
        "--client-key",
        key.to_str().unwrap(),
    ];

    // --auth external: no password is read (none is set here).
    let server = ScramServer::start_with(
        "alice",
        "secret-a",
        "EXTERNAL",
        TlsVersion::Tls13,
        Some(&client),
    )
    .unwrap();
    let r: Run = pop3()
        .env_remove("POP3_TEST_PASSWORD")
        .args([
            "--host",
            "localhost",
            "--port",
            &server.port().to_string(),
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "alice",
            "--auth",
            "external",
        ])
        .args(cert_args)
        .arg("stat")
        .output()
        .unwrap()
        .into();
    r.expect_code(0);
    let outcome = server.finish().unwrap();
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );

    // A client certificate with a password login, from the config file.
    let server =
        ScramServer::start_with("alice", "secret-a", ALL, TlsVersion::Tls12, Some(&client))
            .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[accounts.cert]
host = "localhost"
port = {}
ca-file = "{}"
user = "alice"
password-env = "POP3_TEST_PASSWORD"
auth = "scram-sha-512-plus"
client-cert = "{}"
client-key = "{}"
"#,
            server.port(),
            ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    run(&["--config", config, "--account", "cert", "stat"]).expect_code(0);
    let outcome = server.finish().unwrap();
    assert!(
        outcome.client_certificate && outcome.authenticated,
        "{outcome:?}"
    );
    assert_eq!(outcome.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));

    // One without the other is a usage error.
    run(&["--host", "localhost", "--client-cert", "x.pem", "stat"]).expect_code(2);
    // A key file that holds no key: a usage error naming the option.
    let r = run(&[
        "--host",
        "localhost",
        "--client-cert",
        cert.to_str().unwrap(),
        "--client-key",
        cert.to_str().unwrap(),
        "capa",
    ]);
    r.expect_code(2);
    assert!(r.stderr.contains("--client-cert"), "{}", r.stderr);
}
