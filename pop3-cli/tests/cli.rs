//! Every command of the `pop3` binary end to end, against the kit's MailboxServer and
//! ScriptedServer, with exit statuses checked.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use pop3_demo_server::{MailboxServer, to_crlf};
use pop3_scripted_server::{Script, ScriptedServer, Transcript};

fn tls_args(port: u16, ca: &std::path::Path) -> Vec<String> {
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
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

// ---- usage errors: exit 2 ----

#[test]
fn usage_errors_exit_2() {
    run(&["--help"]).expect_code(0);
    run(&["--version"]).expect_code(0);
    run(&[]).expect_code(2);
    run(&["frobnicate"]).expect_code(2);
    run(&["--no-such-option", "stat"]).expect_code(2);
    let r = run(&["stat"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--host"), "{}", r.stderr);
    run(&["--host", "127.0.0.1", "list", "0"]).expect_code(2);
    run(&["--host", "127.0.0.1", "top", "1"]).expect_code(2);
    run(&["--host", "127.0.0.1", "dele"]).expect_code(2);
    run(&["--host", "127.0.0.1", "--tls", "sometimes", "capa"]).expect_code(2);
    run(&["--host", "127.0.0.1", "--timeout", "0", "capa"]).expect_code(2);
    run(&["--host", "127.0.0.1", "--auth", "kerberos", "capa"]).expect_code(2);
    // One password source only.
    run(&[
        "--host",
        "127.0.0.1",
        "--password-env",
        "A",
        "--password-file",
        "/dev/null",
        "stat",
    ])
    .expect_code(2);
    // --config without --account, an unknown account, a missing maildir.
    run(&["--config", "/nonexistent", "--host", "x", "stat"]).expect_code(2);
    run(&["--config", "/nonexistent", "--account", "x", "stat"]).expect_code(2);
    run(&["--host", "127.0.0.1", "--user", "a", "fetch"]).expect_code(2);
    run(&[
        "--host",
        "127.0.0.1",
        "--user",
        "a",
        "fetch",
        "--maildir",
        "/nonexistent",
        "--batch",
        "513",
    ])
    .expect_code(2);
}

#[test]
fn missing_password_source_exit_2() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let port = server.port().to_string();
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--user",
        "alice",
        "stat",
    ]);
    r.expect_code(2);
    assert!(r.stderr.contains("password"), "{}", r.stderr);
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_NO_SUCH_VARIABLE",
        "stat",
    ]);
    r.expect_code(2);
}

// ---- network failures: exit 3 ----

#[test]
fn closed_port_exit_3() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let r = run_with(&plain_args(port), &["stat"]);
    r.expect_code(3);
    assert!(r.stderr.contains("network error"), "{}", r.stderr);
    run(&["--host", "127.0.0.1", "--port", &port.to_string(), "capa"]).expect_code(3);
}

#[test]
fn timeout_exit_3() {
    // A server that greets, then never answers and never closes until the client is gone:
    // the client's exit can only come from its own timeout (bounded by that event, not by a
    // clock).
    let server = ScriptedServer::builder(
        Script::parse(
            "
            S: +OK ready
            C: CAPA
            EOF
            ",
        )
        .unwrap(),
    )
    .read_timeout(Duration::from_secs(120))
    .start()
    .unwrap();
    let port = server.port();
    let started = Instant::now();
    let mut args = plain_args(port);
    args.extend(["--timeout".to_owned(), "0.5".to_owned()]);
    let r = run_with(&args, &["stat"]);
    let elapsed = started.elapsed();
    r.expect_code(3);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    // The client sent its CAPA, then nothing until it closed the connection.
    server.finish().unwrap().assert_complete();
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    // Only to tell `--timeout 0.5` (given last) from plain_args's `--timeout 20`: 19.5 s of
    // slack, so a loaded 2-core machine cannot make it fail.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn untrusted_certificate_exit_3() {
    let server = MailboxServer::builder(sample_mail(1, 500, 1))
        .implicit_tls()
        .start()
        .unwrap();
    let r = run(&[
        "--host",
        "localhost",
        "--port",
        &server.port().to_string(),
        "capa",
    ]);
    r.expect_code(3);
    assert!(r.stderr.contains("TLS"), "{}", r.stderr);
}

#[test]
fn protocol_violation_exit_3() {
    let script = Script::new().send("HELLO this is not POP3");
    let server = ScriptedServer::start(script).unwrap();
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &server.port().to_string(),
        "--tls",
        "none",
        "capa",
    ]);
    r.expect_code(3);
    assert!(r.stderr.contains("protocol"), "{}", r.stderr);
}

// ---- capa ----

#[test]
fn capa_before_login_plain_and_json() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let port = server.port().to_string();
    let base = ["--host", "127.0.0.1", "--port", &port, "--tls", "none"];
    let r = run(&[&base[..], &["capa"]].concat());
    r.expect_code(0);
    let lines: Vec<String> = r.stdout_str().lines().map(str::to_owned).collect();
    for expected in [
        "TOP",
        "UIDL",
        "PIPELINING",
        "USER",
        "SASL PLAIN",
        "IMPLEMENTATION pop3-tests",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} in {lines:?}"
        );
    }
    assert_eq!(server.logins(), 0, "capa does not log in");

    let r = run(&[&base[..], &["--json", "capa"]].concat());
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["pipelining"], true);
    assert_eq!(json["uidl"], true);
    assert_eq!(json["tls"], false);
    assert_eq!(json["sasl"], serde_json::json!(["PLAIN"]));
    assert_eq!(json["implementation"], "pop3-tests");

    // After login: no USER, no SASL.
    let r = run_with(&plain_args(server.port()), &["capa", "--login"]);
    r.expect_code(0);
    assert!(!r.stdout_str().lines().any(|l| l == "USER"));
    assert_eq!(server.logins(), 1);
}

#[test]
fn capa_over_implicit_tls_and_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = MailboxServer::builder(sample_mail(1, 500, 1))
        .implicit_tls()
        .start()
        .unwrap();
    let r = run_with(&tls_args(server.port(), &ca), &["--json", "capa"]);
    r.expect_code(0);
    assert_eq!(r.json()["tls"], true);

    let server = MailboxServer::builder(sample_mail(1, 500, 1))
        .stls()
        .start()
        .unwrap();
    let mut args = tls_args(server.port(), &ca);
    args.extend(["--tls".to_owned(), "starttls".to_owned()]);
    let r = run_with(&args, &["--json", "capa"]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["tls"], true);
    assert_eq!(json["stls"], false, "STLS is gone after the upgrade");
    // And a login over the upgraded connection.
    run_with(&args, &["stat"]).expect_code(0);
}

// ---- stat, list, uidl ----

#[test]
fn stat_list_uidl_text_and_json() {
    let mail = sample_mail(5, 1500, 7);
    let sizes: Vec<usize> = mail.iter().map(|m| to_crlf(m).len()).collect();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = MailboxServer::builder(mail.clone())
        .implicit_tls()
        .start()
        .unwrap();
    let args = tls_args(server.port(), &ca);

    let r = run_with(&args, &["stat"]);
    r.expect_code(0);
    let total: usize = sizes.iter().sum();
    assert_eq!(r.stdout_str(), format!("5 {total}\n"));
    let json = run_with(&args, &["--json", "stat"]).json();
    assert_eq!(json, serde_json::json!({ "count": 5, "size": total }));

    let r = run_with(&args, &["list"]);
    r.expect_code(0);
    let expected: String = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {s}\n", i + 1))
        .collect();
    assert_eq!(r.stdout_str(), expected);
    let json = run_with(&args, &["--json", "list"]).json();
    assert_eq!(json[4], serde_json::json!({ "msg": 5, "size": sizes[4] }));
    let r = run_with(&args, &["list", "3"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str(), format!("3 {}\n", sizes[2]));

    let uids = server.uids();
    let r = run_with(&args, &["uidl"]);
    r.expect_code(0);
    let expected: String = uids
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{} {u}\n", i + 1))
        .collect();
    assert_eq!(r.stdout_str(), expected);
    let json = run_with(&args, &["--json", "uidl", "2"]).json();
    assert_eq!(json, serde_json::json!([{ "msg": 2, "uid": uids[1] }]));

    // -ERR: exit 1.
    let r = run_with(&args, &["list", "9"]);
    r.expect_code(1);
    assert!(r.stderr.contains("-ERR"), "{}", r.stderr);
    run_with(&args, &["uidl", "9"]).expect_code(1);
}

// ---- top, retr ----

#[test]
fn top_and_retr_write_raw_unstuffed_bytes() {
    let mail = sample_mail(3, 2000, 3);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let args = plain_args(server.port());

    let r = run_with(&args, &["retr", "2"]);
    r.expect_code(0);
    assert_eq!(r.stdout, to_crlf(&mail[1]), "retr is the raw CRLF message");
    assert!(r.stdout.windows(5).any(|w| w == b"\r\n.\r\n"), "unstuffed");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("msg.eml");
    let r = run_with(&args, &["retr", "3", "-o", out.to_str().unwrap()]);
    r.expect_code(0);
    assert!(r.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), to_crlf(&mail[2]));

    let r = run_with(&args, &["top", "1", "2"]);
    r.expect_code(0);
    let wire = to_crlf(&mail[0]);
    let header_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &wire[header_end..];
    let two_lines: usize = body
        .split_inclusive(|&b| b == b'\n')
        .take(2)
        .map(<[u8]>::len)
        .sum();
    assert_eq!(r.stdout, &wire[..header_end + two_lines]);

    // -ERR: exit 1, and no file is left behind.
    let missing = dir.path().join("missing.eml");
    run_with(&args, &["retr", "7", "-o", missing.to_str().unwrap()]).expect_code(1);
    assert!(!missing.exists());
    run_with(&args, &["top", "7", "0"]).expect_code(1);
}

// ---- dele ----

#[test]
fn dele_marks_then_quit_commits() {
    let mail = sample_mail(4, 800, 4);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let args = plain_args(server.port());
    run_with(&args, &["dele", "1", "3"]).expect_code(0);
    assert_eq!(server.messages(), vec![mail[1].clone(), mail[3].clone()]);

    // All or nothing: one refused DELE deletes nothing.
    let r = run_with(&args, &["dele", "1", "9"]);
    r.expect_code(1);
    assert!(r.stderr.contains("nothing was deleted"), "{}", r.stderr);
    assert_eq!(server.messages().len(), 2);
}

#[test]
fn dele_wire_transcript() {
    let script = Script::parse(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nUIDL\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK logged in
        C: CAPA
        S-RAW: +OK\r\nUIDL\r\n.\r\n
        C: DELE 2
        S: +OK deleted
        C: DELE 3
        S: +OK deleted
        C: QUIT
        S: +OK bye
        ",
    )
    .unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut args = plain_args(server.port());
    args.extend(["--auth".to_owned(), "user".to_owned()]);
    run_with(&args, &["dele", "2", "3"]).expect_code(0);
    server.finish().unwrap().assert_complete();
}

// ---- login ----

#[test]
fn authentication_failure_exit_1() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let r = pop3()
        .args(plain_args(server.port()))
        .env("POP3_TEST_PASSWORD", "wrong")
        .arg("stat")
        .output()
        .unwrap();
    let r = Run::from(r);
    r.expect_code(1);
    assert!(r.stderr.contains("-ERR"), "{}", r.stderr);
}

#[test]
fn no_password_in_the_clear_unless_allowed() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let port = server.port().to_string();
    let base = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
    ];
    // auto: only USER/PASS and PLAIN are offered, both send the password.
    let r = run(&[&base[..], &["stat"]].concat());
    r.expect_code(2);
    assert!(r.stderr.contains("--allow-plaintext-auth"), "{}", r.stderr);
    // An explicit method that sends it: refused too, before anything is sent.
    let r = run(&[&base[..], &["--auth", "plain", "stat"]].concat());
    r.expect_code(2);
    assert_eq!(server.logins(), 0);
    // APOP keeps the password off the wire, but its digest can be cracked offline: refused
    // too (issue 10 item 9; see apop_without_tls_needs_allow_plaintext_auth).
    run(&[&base[..], &["--auth", "apop", "stat"]].concat()).expect_code(2);
    // Allowed explicitly.
    run(&[&base[..], &["--allow-plaintext-auth", "stat"]].concat()).expect_code(0);
    run(&[
        &base[..],
        &["--allow-plaintext-auth", "--auth", "user", "stat"],
    ]
    .concat())
    .expect_code(0);
}

#[test]
fn explicit_methods_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = MailboxServer::builder(sample_mail(2, 500, 1))
        .implicit_tls()
        .start()
        .unwrap();
    for method in ["auto", "user", "plain", "apop"] {
        let mut args = tls_args(server.port(), &ca);
        args.extend(["--auth".to_owned(), method.to_owned()]);
        let r = run_with(&args, &["stat"]);
        r.expect_code(0);
    }
    // A mechanism the server does not offer: it says -ERR.
    let mut args = tls_args(server.port(), &ca);
    args.extend(["--auth".to_owned(), "cram-md5".to_owned()]);
    run_with(&args, &["stat"]).expect_code(1);
}

#[test]
fn password_sources() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let port = server.port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "secret-a\nsecond line ignored\n").unwrap();
    let base = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "--user",
        "alice",
    ];
    run(&[
        &base[..],
        &["--password-file", file.to_str().unwrap(), "stat"],
    ]
    .concat())
    .expect_code(0);
    run(&[&base[..], &["--password-file", "/nonexistent/pw", "stat"]].concat()).expect_code(2);
    run(&[
        &base[..],
        &["--password-cmd", "printf 'secret-a\\nx\\n'", "stat"],
    ]
    .concat())
    .expect_code(0);
    run(&[&base[..], &["--password-cmd", "exit 3", "stat"]].concat()).expect_code(2);
    run(&[&base[..], &["--password-cmd", "echo wrong", "stat"]].concat()).expect_code(1);
}

#[test]
fn config_file_accounts() {
    let server = MailboxServer::start(sample_mail(2, 500, 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("pop3");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[accounts.test]
host = "127.0.0.1"
port = {}
tls = "none"
user = "alice"
password-cmd = "echo secret-a"
auth = "user"
allow-plaintext-auth = true
timeout = 10
maildir = "{}"

[accounts.broken]
host = "127.0.0.1"
port = {}
tls = "none"
"#,
            server.port(),
            dir.path().join("Mail").display(),
            server.port()
        ),
    )
    .unwrap();
    // The default location, through XDG_CONFIG_HOME.
    let r: Run = pop3()
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--account", "test", "stat"])
        .output()
        .unwrap()
        .into();
    r.expect_code(0);
    assert!(r.stdout_str().starts_with("2 "));
    // --config, and the account's maildir for fetch.
    let config = config.to_str().unwrap();
    run(&["--config", config, "--account", "test", "fetch"]).expect_code(0);
    assert_eq!(count_files(&dir.path().join("Mail/new")), 2);
    // Command-line options win: a wrong user is refused by the server.
    run(&[
        "--config",
        config,
        "--account",
        "test",
        "--user",
        "bob",
        "stat",
    ])
    .expect_code(1);
    run(&["--config", config, "--account", "nope", "stat"]).expect_code(2);
    run(&["--config", config, "--account", "broken", "stat"]).expect_code(2);
    std::fs::write(dir.path().join("bad.toml"), "[accounts.x]\nhots = 1\n").unwrap();
    let bad = dir.path().join("bad.toml");
    run(&["--config", bad.to_str().unwrap(), "--account", "x", "stat"]).expect_code(2);
}

#[test]
fn verbose_trace_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = MailboxServer::builder(sample_mail(1, 500, 1))
        .implicit_tls()
        .start()
        .unwrap();
    for method in ["user", "plain"] {
        let mut args = tls_args(server.port(), &ca);
        args.extend(["--auth".to_owned(), method.to_owned(), "-v".to_owned()]);
        let r = run_with(&args, &["stat"]);
        r.expect_code(0);
        assert!(r.stderr.contains("C: STAT"), "{}", r.stderr);
        assert!(r.stderr.contains("S: +OK"), "{}", r.stderr);
        assert!(!r.stderr.contains("secret-a"), "{}", r.stderr);
        assert!(!r.stderr.contains("c2VjcmV0LWE"), "base64 of the password");
        assert!(!r.stderr.contains("AGFsaWNlAHNlY3JldC1h"), "PLAIN response");
    }
    // Without -v: nothing on stderr.
    let r = run_with(&tls_args(server.port(), &ca), &["stat"]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

// ---- fetch ----

#[test]
fn fetch_stores_new_mail_once() {
    let mail = sample_mail(150, 1500, 11);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());

    let r = run_with(&args, &["fetch", "--maildir", md, "--batch", "16"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("stored 150 of 150"),
        "{}",
        r.stdout_str()
    );
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
    assert_eq!(count_files(&maildir.join("tmp")), 0);
    let state = state_file(&maildir);
    assert_eq!(stored_uids(&state), server.uids());
    assert!(
        !std::fs::read_to_string(&state).unwrap().contains("\nP "),
        "nothing reserved after a complete run"
    );

    // Again: nothing new.
    let r = run_with(&args, &["--json", "fetch", "--maildir", md]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["stored"], 0);
    assert_eq!(json["skipped"], 150);
    assert_eq!(json["uidl"], true);
    assert_eq!(count_files(&maildir.join("new")), 150);

    // One more message on the server: exactly it.
    let extra = b"Subject: late\r\n\r\nA late message.\r\n".to_vec();
    server.push_message(&extra);
    let r = run_with(&args, &["--json", "fetch", "--maildir", md]);
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 1);
    let mut all = mail.clone();
    all.push(extra);
    assert_eq!(maildir_contents(&maildir), expected_contents(&all));
    // The server was never asked to delete anything.
    assert_eq!(server.messages().len(), 151);
}

#[test]
fn fetch_over_tls_with_state_option_and_pipelining_off() {
    let mail = sample_mail(20, 1000, 12);
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let server = MailboxServer::builder(mail.clone())
        .implicit_tls()
        .start()
        .unwrap();
    let maildir = dir.path().join("Mail");
    let state = dir.path().join("state/alice.state");
    let mut args = tls_args(server.port(), &ca);
    args.extend(["--pipelining".to_owned(), "off".to_owned()]);
    run_with(
        &args,
        &[
            "fetch",
            "--maildir",
            maildir.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--quiet",
        ],
    )
    .expect_code(0);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
    assert_eq!(stored_uids(&state).len(), 20);
}

#[test]
fn fetch_delete_deletes_exactly_what_was_stored() {
    let mail = sample_mail(40, 1200, 13);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());

    // First without --delete: stored, kept on the server.
    run_with(&args, &["fetch", "--maildir", md, "-q"]).expect_code(0);
    assert_eq!(server.messages().len(), 40);
    let extra = b"Subject: new\r\n\r\nnew\r\n".to_vec();
    server.push_message(&extra);
    // With --delete: the 40 stored earlier and the new one are deleted, nothing twice stored.
    let r = run_with(&args, &["--json", "fetch", "--maildir", md, "--delete"]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["stored"], 1);
    assert_eq!(json["deleted"], 41);
    assert!(server.messages().is_empty());
    let mut all = mail.clone();
    all.push(extra);
    assert_eq!(maildir_contents(&maildir), expected_contents(&all));
}

/// A plaintext login for scripts, then `CAPA` after login.
const SCRIPT_LOGIN: &str = r"
S: +OK ready
C: CAPA
S-RAW: +OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n
C: USER alice
S: +OK
C: PASS secret-a
S: +OK logged in
C: CAPA
S-RAW: +OK\r\nUIDL\r\nTOP\r\n.\r\n
";

fn scripted_fetch(script: &str, fetch_args: &[&str]) -> (Run, Transcript) {
    scripted_fetch_after(SCRIPT_LOGIN, script, fetch_args)
}

/// [`scripted_fetch`] with another login script.
fn scripted_fetch_after(login: &str, script: &str, fetch_args: &[&str]) -> (Run, Transcript) {
    let script = Script::parse(&format!("{login}{script}")).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut args = plain_args(server.port());
    args.extend(["--auth".to_owned(), "user".to_owned(), "--json".to_owned()]);
    let r = run_with(&args, &[&["fetch"], fetch_args].concat());
    (r, server.finish().unwrap())
}

#[test]
fn fetch_without_uidl_needs_delete() {
    // A server that does not announce UIDL (a -ERR to UIDL from one that does is an error).
    let login = SCRIPT_LOGIN.replace(
        r"S-RAW: +OK\r\nUIDL\r\nTOP\r\n.\r\n",
        r"S-RAW: +OK\r\nTOP\r\n.\r\n",
    );
    let scripted_fetch = |script: &str, args: &[&str]| scripted_fetch_after(&login, script, args);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let (r, transcript) = scripted_fetch(
        r"
        C: LIST
        S-RAW: +OK\r\n1 20\r\n2 20\r\n.\r\n
        C: UIDL
        S: -ERR no UIDL here
        C: QUIT
        S: +OK bye
        ",
        &["--maildir", md],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("UIDL"), "{}", r.stderr);
    assert!(r.stderr.contains("--delete"), "{}", r.stderr);
    transcript.assert_complete();
    assert_eq!(count_files(&maildir.join("new")), 0);

    let (r, transcript) = scripted_fetch(
        r"
        C: LIST
        S-RAW: +OK\r\n1 20\r\n2 20\r\n.\r\n
        C: UIDL
        S: -ERR no UIDL here
        C: RETR 1
        S-RAW: +OK\r\nSubject: one\r\n\r\nfirst\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\nSubject: two\r\n\r\n..second\r\n.\r\n
        C: DELE 1
        S: +OK
        C: DELE 2
        S: +OK
        C: QUIT
        S: +OK bye
        ",
        &["--maildir", md, "--delete"],
    );
    r.expect_code(0);
    transcript.assert_complete();
    let contents = maildir_contents(&maildir);
    assert_eq!(contents.len(), 2);
    assert!(contents.contains_key(&b"Subject: one\n\nfirst\n"[..]));
    assert!(contents.contains_key(&b"Subject: two\n\n.second\n"[..]));
}

#[test]
fn fetch_hostile_uids() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    // UIDs with path syntax never reach the file system. (A repeated UID is a protocol
    // violation: see cli_fetch_safety.rs.)
    let (r, transcript) = scripted_fetch(
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 ../../evil\r\n2 a/b\r\n3 .\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nm1\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\nm2\r\n.\r\n
        C: RETR 3
        S-RAW: +OK\r\nm4\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &["--maildir", md],
    );
    r.expect_code(0);
    transcript.assert_complete();
    let json = r.json();
    assert_eq!(json["stored"], 3);
    let contents = maildir_contents(&maildir);
    assert_eq!(contents.len(), 3);
    assert!(contents.values().all(|&n| n == 1));
    assert!(!dir.path().join("evil").exists());
    assert!(!maildir.join("a").exists());
    for sub in ["new", "cur", "tmp"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!name.contains("evil") && !name.contains('/'), "{name}");
        }
    }
    let state = state_file(&maildir);
    assert_eq!(stored_uids(&state), ["../../evil", "a/b", "."]);
}

#[test]
fn fetch_refused_retr_is_neither_stored_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let (r, transcript) = scripted_fetch(
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 u1\r\n2 u2\r\n3 u3\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nm1\r\n.\r\n
        C: RETR 2
        S: -ERR [SYS/TEMP] cannot read message 2
        C: RETR 3
        S-RAW: +OK\r\nm3\r\n.\r\n
        C: DELE 1
        S: +OK
        C: DELE 3
        S: +OK
        C: QUIT
        S: +OK bye
        ",
        &["--maildir", md, "--delete"],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("message 2"), "{}", r.stderr);
    transcript.assert_complete();
    assert_eq!(count_files(&maildir.join("new")), 2);
    assert_eq!(count_files(&maildir.join("tmp")), 0);
    // QUIT committed the deletions of u1 and u3: their UIDs left the state (a server may give
    // them to new messages).
    assert_eq!(stored_uids(&state_file(&maildir)), Vec::<String>::new());
}

#[test]
fn fetch_quit_refused_means_deletions_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let (r, transcript) = scripted_fetch(
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 u1\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nm1\r\n.\r\n
        C: DELE 1
        S: +OK
        C: QUIT
        S: -ERR [SYS/TEMP] could not remove messages
        ",
        &["--maildir", md, "--delete"],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("not committed"), "{}", r.stderr);
    transcript.assert_complete();
    // Stored and recorded all the same: the next run deletes it without storing it again.
    assert_eq!(stored_uids(&state_file(&maildir)), ["u1"]);
}

#[test]
fn fetch_survives_server_drops() {
    // Every connection is cut in the middle of its 25th RETR: each run stores what arrived
    // complete and exits 3; the runs together store everything exactly once.
    let mail = sample_mail(80, 1500, 14);
    let server = MailboxServer::builder(mail.clone())
        .drop_in_retr(25)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 10, "no progress");
        let r = run_with(&args, &["fetch", "--maildir", md, "--batch", "10", "-q"]);
        if r.code == 0 {
            break;
        }
        r.expect_code(3);
        assert!(count_files(&maildir.join("tmp")) == 0, "partial file left");
    }
    assert!(runs >= 4, "{runs} runs");
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
}

#[test]
fn concurrent_fetch_is_locked_out() {
    let server = MailboxServer::builder(sample_mail(10, 500, 15))
        .reply_delay(Duration::from_millis(300))
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap().to_owned();
    let args = plain_args(server.port());
    let mut first = pop3()
        .args(&args)
        .args(["fetch", "--maildir", &md, "-q"])
        .spawn()
        .unwrap();
    // Wait until the first holds the lock (it writes the state file after UIDL).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&maildir)
        .map(|d| {
            d.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".pop3-state.") && !name.ends_with(".lock")
            })
        })
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = run_with(&args, &["fetch", "--maildir", &md, "-q"]);
    r.expect_code(3);
    assert!(r.stderr.contains("locked"), "{}", r.stderr);
    assert!(first.wait().unwrap().success());
    assert_eq!(count_files(&maildir.join("new")), 10);
}

// ---- demo ----

#[test]
fn demo_fetches_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("demo");
    let r = run(&[
        "demo",
        "--messages",
        "30",
        "--maildir",
        maildir.to_str().unwrap(),
    ]);
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(out.contains("30 messages"), "{out}");
    assert!(out.contains("PLAIN over TLS"), "{out}");
    assert!(out.contains("stored 0 messages"), "{out}");
    assert_eq!(count_files(&maildir.join("new")), 30);

    let r = run(&["--json", "demo", "--messages", "5"]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["first"]["stored"], 5);
    assert_eq!(json["second"]["stored"], 0);
    assert_eq!(json["second"]["skipped"], 5);
    let path = json["first"]["maildir"].as_str().unwrap().to_owned();
    assert_eq!(count_files(&std::path::Path::new(&path).join("new")), 5);
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn capa_on_a_server_without_capa() {
    let server = MailboxServer::builder(sample_mail(2, 500, 1))
        .no_capa()
        .start()
        .unwrap();
    let port = server.port().to_string();
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "capa",
    ]);
    r.expect_code(1);
    assert!(r.stderr.contains("no CAPA"), "{}", r.stderr);
    // fetch still works: UIDL answers even without CAPA.
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Mail");
    run_with(
        &plain_args(server.port()),
        &["fetch", "--maildir", md.to_str().unwrap()],
    )
    .expect_code(0);
    assert_eq!(count_files(&md.join("new")), 2);
}

/// Runs `pop3 GLOBAL... ARGS` against a ScriptedServer playing the login of SCRIPT_LOGIN
/// (optionally with PIPELINING in the post-login CAPA) then `script`.
fn scripted(script: &str, pipelining: bool, extra: &[&str], rest: &[&str]) -> (Run, Transcript) {
    let login = if pipelining {
        SCRIPT_LOGIN.replace(
            r"S-RAW: +OK\r\nUIDL\r\nTOP\r\n.\r\n",
            r"S-RAW: +OK\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n",
        )
    } else {
        SCRIPT_LOGIN.to_owned()
    };
    let script = Script::parse(&format!("{login}{script}")).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut args = plain_args(server.port());
    args.extend(["--auth".to_owned(), "user".to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let r = run_with(&args, rest);
    (r, server.finish().unwrap())
}

#[test]
fn scripted_transcripts_of_every_inspection_command() {
    let (r, t) = scripted(
        "C: STAT\nS: +OK 2 320\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["stat"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout_str(), "2 320\n");

    let (r, t) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 120\\r\\n2 200\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["list"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout_str(), "1 120\n2 200\n");

    let (r, t) = scripted(
        "C: LIST 2\nS: +OK 2 200\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["list", "2"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout_str(), "2 200\n");

    let (r, t) = scripted(
        "C: UIDL\nS-RAW: +OK\\r\\n1 abc\\r\\n2 d/e\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n",
        false,
        &["--json"],
        &["uidl"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(
        r.json(),
        serde_json::json!([{ "msg": 1, "uid": "abc" }, { "msg": 2, "uid": "d/e" }])
    );

    let (r, t) = scripted(
        "C: UIDL 9\nS: -ERR no such message\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["uidl", "9"],
    );
    r.expect_code(1);
    t.assert_complete();

    let (r, t) = scripted(
        "C: TOP 1 0\nS-RAW: +OK\\r\\nSubject: x\\r\\n\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["top", "1", "0"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout, b"Subject: x\r\n\r\n");

    let (r, t) = scripted(
        "C: RETR 1\nS-RAW: +OK\\r\\nSubject: x\\r\\n\\r\\n..a\\r\\n..\\r\\nb\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n",
        false,
        &[],
        &["retr", "1"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout, b"Subject: x\r\n\r\n.a\r\n.\r\nb\r\n");

    // capa: no login, nothing but CAPA and QUIT.
    let script = Script::parse("S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nTOP\\r\\nX-FOO bar\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n").unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let port = server.port().to_string();
    let r = run(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "capa",
    ]);
    r.expect_code(0);
    server.finish().unwrap().assert_complete();
    assert_eq!(r.stdout_str(), "TOP\nX-FOO bar\n");
}

#[test]
fn fetch_pipelines_a_batch_when_the_server_allows_it() {
    // The server answers only after all three RETRs arrived: a client that waits for each
    // reply would stall here (and the script would time out).
    let pipelined = r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n
        C: RETR 1
        C: RETR 2
        C: RETR 3
        S-RAW: +OK\r\nm1\r\n.\r\n+OK\r\nm2\r\n.\r\n+OK\r\nm3\r\n.\r\n
        C: DELE 1
        C: DELE 2
        C: DELE 3
        S-RAW: +OK\r\n+OK\r\n+OK\r\n
        C: QUIT
        S: +OK bye
        ";
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Mail");
    let (r, t) = scripted(
        pipelined,
        true,
        &[],
        &["fetch", "--maildir", md.to_str().unwrap(), "--delete"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(count_files(&md.join("new")), 3);

    // --pipelining off: one command at a time, even though the server offers PIPELINING.
    let one_by_one = r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n2 b\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nm1\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\nm2\r\n.\r\n
        C: QUIT
        S: +OK bye
        ";
    let md = dir.path().join("Mail2");
    let (r, t) = scripted(
        one_by_one,
        true,
        &["--pipelining", "off"],
        &["fetch", "--maildir", md.to_str().unwrap()],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(count_files(&md.join("new")), 2);
}

#[test]
fn oauth_tokens_from_the_password_sources() {
    use base64::Engine as _;
    let ir = base64::engine::general_purpose::STANDARD
        .encode(b"user=alice\x01auth=Bearer tok-123\x01\x01");
    for (method, expect) in [
        ("xoauth2", format!("C: AUTH XOAUTH2 {ir}")),
        ("oauthbearer", "C-PREFIX: AUTH OAUTHBEARER ".to_owned()),
    ] {
        let script = Script::parse(&format!(
            "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nSASL XOAUTH2 OAUTHBEARER\\r\\n.\\r\\n\n{expect}\n\
             S: +OK welcome\nC: CAPA\nS-RAW: +OK\\r\\n.\\r\\n\nC: STAT\nS: +OK 0 0\nC: QUIT\nS: +OK bye\n"
        ))
        .unwrap();
        let server = ScriptedServer::start(script).unwrap();
        let port = server.port().to_string();
        let r: Run = pop3()
            .env("TOKEN", "tok-123")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--tls",
                "none",
                "--user",
                "alice",
                "--password-env",
                "TOKEN",
                "--auth",
                method,
                "--allow-plaintext-auth",
                "-v",
                "stat",
            ])
            .output()
            .unwrap()
            .into();
        r.expect_code(0);
        server.finish().unwrap().assert_complete();
        assert_eq!(r.stdout_str(), "0 0\n");
        assert!(
            !r.stderr.contains("tok-123") && !r.stderr.contains(&ir),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn pipelining_on_warns_when_the_server_does_not_offer_it() {
    let (r, t) = scripted(
        "C: STAT\nS: +OK 0 0\nC: QUIT\nS: +OK bye\n",
        false,
        &["--pipelining", "on"],
        &["stat"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert!(r.stderr.contains("PIPELINING"), "{}", r.stderr);
}

/// Issue 10 item 9: `--auth apop` without TLS needs `--allow-plaintext-auth`, like every
/// password method (an observer can crack the APOP digest offline); nothing is sent.
#[test]
fn apop_without_tls_needs_allow_plaintext_auth() {
    let server = MailboxServer::start(sample_mail(1, 500, 1)).unwrap();
    let port = server.port().to_string();
    let base = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--auth",
        "apop",
    ];
    let r = run(&[&base[..], &["stat"]].concat());
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("refusing to send credentials (APOP) over a connection without TLS"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--allow-plaintext-auth"), "{}", r.stderr);
    assert_eq!(server.logins(), 0);
    run(&[&base[..], &["--allow-plaintext-auth", "stat"]].concat()).expect_code(0);
    assert_eq!(server.logins(), 1);
}

/// A full or closed stdout is a local failure (exit 3, a line on stderr), never a panic: the
/// summary of `fetch` (text and JSON) and of `--dry-run` are written where the other commands'
/// output is.
#[test]
fn fetch_with_stdout_full_is_a_local_failure_not_a_panic() {
    let mail = sample_mail(3, 500, 5);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());
    for extra in [
        &["fetch", "--maildir", md][..],
        &["--json", "fetch", "--maildir", md],
        &["fetch", "--dry-run", "--maildir", md],
        &["--json", "fetch", "--dry-run", "--maildir", md],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let output = pop3()
            .args(&args)
            .args(extra)
            .stdout(full)
            .output()
            .expect("run pop3");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{extra:?}: {stderr}");
        assert!(stderr.contains("stdout"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    // The messages were stored durably all the same.
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
}
