//! `pop3 serverinfo`, `--ca-file` with a self-signed `CA:TRUE` certificate, and
//! `--tls-fingerprint`, against the kit's servers and the private Dovecot (gated as in
//! `cli_dovecot.rs`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use pop3_blocking::Fingerprint;
use pop3_demo_server::{MailboxServer, TestCa, generate_mail};
use pop3_dovecot_peer::DovecotPeer;
use pop3_scripted_server::{Script, ScriptedServer};

fn write_pem(dir: &Path, name: &str, ca: &TestCa) -> PathBuf {
    let path = dir.join(name);
    ca.write_certificate_pem(&path).unwrap();
    path
}

fn args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--host",
        "localhost",
        "--port",
        &port.to_string(),
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--timeout",
        "20",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn openssl_style_server(ca: &TestCa, stls: bool) -> MailboxServer {
    let builder = MailboxServer::builder(generate_mail(2, 300, 5)).tls_config(ca.server_config());
    let builder = if stls {
        builder.stls()
    } else {
        builder.implicit_tls()
    };
    builder.start().unwrap()
}

// ---- --ca-file with the certificate `openssl req -x509` makes ----

#[test]
fn ca_file_trusts_an_openssl_style_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::openssl_self_signed().unwrap();
    let pem = write_pem(dir.path(), "self-signed.pem", &ca);
    let pem = pem.to_str().unwrap();

    let server = openssl_style_server(&ca, false);
    let r = run_with(&args(server.port(), &["--ca-file", pem]), &["stat"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str().split(' ').next(), Some("2"));
    let server = openssl_style_server(&ca, true);
    run_with(
        &args(server.port(), &["--ca-file", pem, "--tls", "starttls"]),
        &["stat"],
    )
    .expect_code(0);

    // Without it: refused, in plain words, with the way out.
    let server = openssl_style_server(&ca, false);
    let r = run_with(&args(server.port(), &[]), &["stat"]);
    r.expect_code(3);
    assert!(
        r.stderr.starts_with(&format!(
            "pop3: localhost:{}: TLS error: the server's certificate is a CA certificate (CA:TRUE), not a server certificate",
            server.port()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pop3 --ca-file FILE"), "{}", r.stderr);
    assert!(r.stderr.contains("--tls-fingerprint"), "{}", r.stderr);
    assert!(!r.stderr.contains("Other"), "{}", r.stderr);
    assert_eq!(server.logins(), 0);

    // A missing file is named.
    let missing = dir.path().join("missing.pem");
    let r = run_with(
        &args(server.port(), &["--ca-file", missing.to_str().unwrap()]),
        &["stat"],
    );
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        format!(
            "pop3: --ca-file: certificate file {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

// ---- --tls-fingerprint ----

#[test]
fn tls_fingerprint_pins_the_certificate() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let right = Fingerprint::of(ca.certificate_der());
    let wrong = Fingerprint::of(TestCa::shared().certificate_der());
    let server = openssl_style_server(&ca, false);
    let port = server.port();

    // Right: in the colon form, and as 64 bare lower-case hex digits.
    run_with(
        &args(port, &["--tls-fingerprint", &right.to_string()]),
        &["stat"],
    )
    .expect_code(0);
    let bare: String = right.to_string()[7..].replace(':', "").to_ascii_lowercase();
    run_with(
        &args(port, &["--tls-fingerprint", &format!("SHA256:{bare}")]),
        &["stat"],
    )
    .expect_code(0);

    // Wrong: exit 3, both fingerprints shown, no login attempted.
    let logins = server.logins();
    let r = run_with(
        &args(port, &["--tls-fingerprint", &wrong.to_string()]),
        &["stat"],
    );
    r.expect_code(3);
    assert_eq!(
        r.stderr,
        format!(
            "pop3: localhost:{port}: TLS error: certificate pin mismatch: the server's certificate has the fingerprint {right}, but {wrong} was pinned\n"
        )
    );
    assert_eq!(server.logins(), logins);

    // Malformed: a usage error naming the problem.
    let r = run_with(&args(port, &["--tls-fingerprint", &bare]), &["stat"]);
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("a fingerprint starts with \"SHA256:\" (only SHA-256 is supported)"),
        "{}",
        r.stderr
    );
    let r = run_with(
        &args(
            port,
            &["--tls-fingerprint", &format!("SHA256:{}", &bare[2..])],
        ),
        &["stat"],
    );
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("a SHA-256 fingerprint has 64 hex digits, not 62"),
        "{}",
        r.stderr
    );

    // The config key.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.home]\nhost = \"localhost\"\nport = {port}\nuser = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\ntls-fingerprint = \"{right}\"\n\n[accounts.bad]\nhost = \"localhost\"\nport = {port}\ntls-fingerprint = \"SHA256:00\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    run(&["--config", config, "--account", "home", "stat"]).expect_code(0);
    // The command line wins over the account.
    run(&[
        "--config",
        config,
        "--account",
        "home",
        "--tls-fingerprint",
        &wrong.to_string(),
        "stat",
    ])
    .expect_code(3);
    let r = run(&["--config", config, "--account", "bad", "serverinfo"]);
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "pop3: the account's tls-fingerprint: a SHA-256 fingerprint has 64 hex digits, not 2\n"
    );
}

// ---- serverinfo against scripted servers: exact output ----

const CAPA_REPLY: &str =
    r"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN SCRAM-SHA-256\r\nX-ODD \x1b[2J\r\n.\r\n";

#[test]
fn serverinfo_text_over_implicit_tls() {
    let script = Script::parse(&format!(
        "
        S-RAW: +OK [IN-USE] hello \\x1b[31m <1.2@x>\\r\\n
        C: CAPA
        S-RAW: {CAPA_REPLY}
        C: QUIT
        S: +OK bye
        "
    ))
    .unwrap();
    let server = ScriptedServer::builder(script)
        .implicit_tls()
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let port = server.port();
    // No credentials needed: no --user, no password source.
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &port.to_string(),
        "--ca-file",
        ca.to_str().unwrap(),
        "serverinfo",
    ]);
    r.expect_code(0);
    server.finish().unwrap().assert_complete();
    let fingerprint = Fingerprint::of(TestCa::shared().certificate_der());
    assert_eq!(
        r.stdout_str(),
        format!(
            "server: localhost:{port} (TLS: implicit)
greeting: +OK [IN-USE] hello \\x1b[31m <1.2@x>
TLS: TLSv1.3, TLS13_AES_256_GCM_SHA384
certificate 1:
  subject: CN=localhost
  issuer: CN=localhost
  valid: 1975-01-01 00:00:00 UTC to 4096-01-01 00:00:00 UTC
  names: localhost, 127.0.0.1
  sha256: {fingerprint}
certificate trusted: yes
capabilities:
  TOP
  UIDL
  SASL PLAIN SCRAM-SHA-256
  X-ODD \\x1b[2J
SASL mechanisms: PLAIN SCRAM-SHA-256
"
        )
    );
}

#[test]
fn serverinfo_json_over_starttls() {
    let script = Script::parse(&format!(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nSTLS\r\nUSER\r\n.\r\n
        C: STLS
        S: +OK go ahead
        STARTTLS
        C: CAPA
        S-RAW: {CAPA_REPLY}
        C: QUIT
        S: +OK bye
        "
    ))
    .unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let port = server.port();
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &port.to_string(),
        "--tls",
        "starttls",
        "--ca-file",
        ca.to_str().unwrap(),
        "--json",
        "serverinfo",
    ]);
    r.expect_code(0);
    server.finish().unwrap().assert_complete();
    let fingerprint = Fingerprint::of(TestCa::shared().certificate_der());
    assert_eq!(
        r.json(),
        serde_json::json!({
            "host": "localhost",
            "port": port,
            "tls_mode": "starttls",
            "greeting": "+OK ready",
            "capabilities_before_stls": ["STLS", "USER"],
            "tls": { "version": "TLSv1.3", "cipher_suite": "TLS13_AES_256_GCM_SHA384" },
            "certificates": [{
                "subject": "CN=localhost",
                "issuer": "CN=localhost",
                "not_before": "1975-01-01 00:00:00 UTC",
                "not_after": "4096-01-01 00:00:00 UTC",
                "names": ["localhost", "127.0.0.1"],
                "ca": false,
                "sha256": fingerprint.to_string(),
            }],
            "trusted": true,
            "error": null,
            "capabilities": ["TOP", "UIDL", "SASL PLAIN SCRAM-SHA-256", "X-ODD \u{1b}[2J"],
            "sasl": ["PLAIN", "SCRAM-SHA-256"],
        })
    );
}

#[test]
fn serverinfo_shows_an_untrusted_certificate_and_exits_3() {
    let ca = TestCa::openssl_self_signed().unwrap();
    let fingerprint = Fingerprint::of(ca.certificate_der());
    let server = openssl_style_server(&ca, false);
    let port = server.port();
    let global = ["--host", "localhost", "--port", &port.to_string()];

    let r = pop3().args(global).arg("serverinfo").output().unwrap();
    let r = Run::from(r);
    r.expect_code(3);
    let text = r.stdout_str();
    assert!(
        text.starts_with(&format!(
            "server: localhost:{port} (TLS: implicit)
TLS: handshake aborted at the certificate check
certificate 1:
  subject: CN=localhost
  issuer: CN=localhost
  valid: 1975-01-01 00:00:00 UTC to 4096-01-01 00:00:00 UTC
  names: localhost, 127.0.0.1
  CA: yes
  sha256: {fingerprint}
certificate trusted: NO: the server's certificate is a CA certificate (CA:TRUE)"
        )),
        "{text}"
    );
    assert!(!text.contains("capabilities"), "{text}");
    assert_eq!(
        r.stderr,
        format!("pop3: localhost:{port}: the server's certificate is not trusted\n")
    );

    let r = Run::from(
        pop3()
            .args(global)
            .args(["--json", "serverinfo"])
            .output()
            .unwrap(),
    );
    r.expect_code(3);
    let json = r.json();
    assert_eq!(json["trusted"], false);
    assert_eq!(json["tls"], serde_json::Value::Null);
    assert_eq!(json["certificates"][0]["sha256"], fingerprint.to_string());
    assert_eq!(json["certificates"][0]["ca"], true);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("the server's certificate is a CA certificate")
    );

    // The fingerprint it printed is the pin that makes it trusted.
    let printed = json["certificates"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = Run::from(
        pop3()
            .args(global)
            .args(["--tls-fingerprint", &printed, "serverinfo"])
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("certificate trusted: yes\n"),
        "{}",
        r.stdout_str()
    );
    assert!(
        r.stdout_str().contains("capabilities:\n"),
        "{}",
        r.stdout_str()
    );

    // A plaintext port: the hint, with host and port.
    let plain = MailboxServer::start(generate_mail(1, 100, 1)).unwrap();
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &plain.port().to_string(),
        "serverinfo",
    ]);
    r.expect_code(3);
    assert!(
        r.stderr.starts_with(&format!(
            "pop3: localhost:{}: TLS error: the server did not answer in TLS (is this a plaintext port?",
            plain.port()
        )),
        "{}",
        r.stderr
    );
}

// ---- serverinfo against Dovecot ----

#[test]
fn serverinfo_against_dovecot() {
    let Some(peer) = DovecotPeer::from_env() else {
        return;
    };
    let cert = peer.certificate_path();
    let pem = std::fs::read(&cert).unwrap();
    let der = pop3_demo_server::load_certificates_pem(&cert)
        .unwrap()
        .remove(0);
    let fingerprint = Fingerprint::of(der.as_ref());
    assert!(!pem.is_empty());
    let cert = cert.to_str().unwrap();

    // STARTTLS on the cleartext port.
    let port = peer.addr().port().to_string();
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &port,
        "--tls",
        "starttls",
        "--ca-file",
        cert,
        "--json",
        "serverinfo",
    ]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["trusted"], true);
    assert!(
        json["greeting"].as_str().unwrap().starts_with("+OK"),
        "{json}"
    );
    let before: Vec<&str> = json["capabilities_before_stls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(before.contains(&"STLS"), "{json}");
    let after: Vec<&str> = json["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!after.contains(&"STLS"), "{json}");
    assert!(after.iter().any(|l| l.starts_with("SASL ")), "{json}");
    assert!(
        json["sasl"].as_array().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(
        json["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1."),
        "{json}"
    );
    assert_eq!(json["certificates"][0]["sha256"], fingerprint.to_string());

    // Implicit TLS, text.
    let tls_port = peer.tls_addr().port().to_string();
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &tls_port,
        "--ca-file",
        cert,
        "serverinfo",
    ]);
    r.expect_code(0);
    let text = r.stdout_str();
    assert!(
        text.contains(&format!("  sha256: {fingerprint}\n")),
        "{text}"
    );
    assert!(text.contains("certificate trusted: yes\n"), "{text}");
    assert!(text.contains("\nSASL mechanisms: "), "{text}");

    // Untrusted (the webpki roots only): shown, then exit 3; pinned: trusted.
    let r = run(&["--host", "localhost", "--port", &tls_port, "serverinfo"]);
    r.expect_code(3);
    assert!(
        r.stdout_str()
            .contains(&format!("  sha256: {fingerprint}\n"))
    );
    assert!(
        r.stdout_str()
            .contains("certificate trusted: NO: the server's certificate is not signed by an authority we trust"),
        "{}",
        r.stdout_str()
    );
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &tls_port,
        "--tls-fingerprint",
        &fingerprint.to_string(),
        "serverinfo",
    ]);
    r.expect_code(0);
}

#[test]
fn a_refused_connection_names_its_address_once() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for command in ["capa", "serverinfo"] {
        let r = run(&[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tls",
            "none",
            command,
        ]);
        r.expect_code(3);
        assert_eq!(
            r.stderr,
            format!(
                "pop3: network error: connecting to 127.0.0.1:{port}: Connection refused (os error 111)\n"
            )
        );
    }
}

#[test]
fn serverinfo_without_tls() {
    let script = Script::parse(
        r"
        S: +OK plain
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nSASL CRAM-MD5\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
    )
    .unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let port = server.port();
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
        "serverinfo",
    ]);
    r.expect_code(0);
    server.finish().unwrap().assert_complete();
    assert_eq!(
        r.stdout_str(),
        format!(
            "server: 127.0.0.1:{port} (TLS: none)
greeting: +OK plain
capabilities:
  USER
  SASL CRAM-MD5
SASL mechanisms: CRAM-MD5
"
        )
    );
}
