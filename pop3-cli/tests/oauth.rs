//! `pop3 oauth login` and the token store end to end, against a local OAuth token endpoint
//! (`oauth_endpoint`: HTTPS with the demo server's test CA, std threads) and a
//! ScriptedServer. The store here is the file (`oauth-token-file`); `oauth_keyring` tests the
//! OS keyring.
//!
//! The token endpoint implements RFC 8628's device authorization and the refresh token grant
//! as the handlers of each test say, and records every request with its time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod oauth_endpoint;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use oauth_endpoint::*;
use pop3_scripted_server::{Script, ScriptedServer};
use serde_json::{Value, json};

// ---- the account, the store, the POP3 side ----

struct Account {
    _dir: tempfile::TempDir,
    config: PathBuf,
    store: PathBuf,
}

/// A config with `[accounts.t]` for `pop_port` (cleartext, alice) and the token endpoint,
/// plus `extra` lines.
fn account(tokens: &TokenServer, pop_port: u16, extra: &str) -> Account {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let store = dir.path().join("store").join("t.json");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.t]\nhost = \"127.0.0.1\"\nport = {pop_port}\ntls = \"none\"\nallow-plaintext-auth = true\n\
             user = \"alice\"\ntimeout = 10\noauth-client-id = \"client-1\"\n\
             oauth-device-authorization-endpoint = \"{}\"\noauth-token-endpoint = \"{}\"\n\
             oauth-scopes = \"pop offline_access\"\noauth-ca-file = \"{}\"\noauth-token-file = \"{}\"\n{extra}\n",
            tokens.url("/device"),
            tokens.url("/token"),
            ca.display(),
            store.display()
        ),
    )
    .unwrap();
    Account {
        _dir: dir,
        config,
        store,
    }
}

impl Account {
    fn run(&self, args: &[&str]) -> Run {
        pop3()
            .arg("--config")
            .arg(&self.config)
            .args(["--account", "t"])
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    fn write_store(&self, value: Value) {
        std::fs::create_dir_all(self.store.parent().unwrap()).unwrap();
        std::fs::write(&self.store, value.to_string()).unwrap();
        std::fs::set_permissions(&self.store, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn read_store(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.store).unwrap()).unwrap()
    }
}

// ---- the device authorization flow ----

#[test]
fn login_polls_through_pending_and_slow_down_then_stores_the_tokens() {
    let tokens = TokenServer::start(true, |req, n| match (req.path.as_str(), n) {
        ("/device", 0) => device_reply(1),
        ("/token", 1) => refused("authorization_pending"),
        ("/token", 2) => refused("slow_down"),
        ("/token", 3) => ok(json!({
            "access_token": "acc-token-1", "refresh_token": "ref-token-1",
            "token_type": "Bearer", "expires_in": 3600,
        })),
        _ => panic!("unexpected request {n}: {req:?}"),
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-token-1"));
    let acct = account(&tokens, pop.port(), "");
    let before = now();
    let r = acct.run(&["-vv", "oauth", "login"]);
    r.expect_code(0);
    assert!(
        r.stderr
            .contains("open https://example.test/device and enter the code WDJB-MJHT"),
        "{}",
        r.stderr
    );
    assert!(r.stdout_str().contains("signed in"), "{}", r.stdout_str());
    assert_no_secret(&r, &["acc-token-1", "ref-token-1", "dev-code-1"]);

    let requests = tokens.requests();
    assert_eq!(requests.len(), 4);
    let device = &requests[0];
    assert_eq!(device.path, "/device");
    assert_eq!(
        device.form.get("client_id").map(String::as_str),
        Some("client-1")
    );
    assert_eq!(
        device.form.get("scope").map(String::as_str),
        Some("pop offline_access")
    );
    for poll in &requests[1..] {
        assert_eq!(poll.path, "/token");
        assert_eq!(
            poll.form.get("grant_type").map(String::as_str),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(
            poll.form.get("device_code").map(String::as_str),
            Some("dev-code-1")
        );
        assert_eq!(
            poll.form.get("client_id").map(String::as_str),
            Some("client-1")
        );
        assert!(!poll.form.contains_key("client_secret"));
    }
    // The interval is honoured, and slow_down adds 5 seconds to it (RFC 8628 section 3.5).
    let gap = |a: usize, b: usize| requests[b].at.duration_since(requests[a].at);
    assert!(gap(0, 1) >= Duration::from_millis(950), "{:?}", gap(0, 1));
    assert!(gap(1, 2) >= Duration::from_millis(950), "{:?}", gap(1, 2));
    assert!(gap(1, 2) < Duration::from_secs(5), "{:?}", gap(1, 2));
    assert!(gap(2, 3) >= Duration::from_millis(5950), "{:?}", gap(2, 3));

    let mode = std::fs::metadata(&acct.store).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = acct.read_store();
    assert_eq!(stored["refresh_token"], "ref-token-1");
    assert_eq!(stored["access_token"], "acc-token-1");
    let expires = stored["expires_at"].as_u64().unwrap();
    assert!(
        (before + 3600..=now() + 3600).contains(&expires),
        "{expires}"
    );

    // The next session uses the stored access token without asking the endpoint again.
    let r = acct.run(&["-v", "stat"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str(), "0 0\n");
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 4);
    assert_no_secret(&r, &["acc-token-1", "ref-token-1"]);
}

#[test]
fn login_refused_or_expired_exits_1() {
    for (error, message) in [
        ("access_denied", "the sign-in was refused"),
        ("expired_token", "the code expired"),
        ("invalid_client", "invalid_client"),
    ] {
        let tokens = TokenServer::start(true, move |req, _| match req.path.as_str() {
            "/device" => device_reply(1),
            _ => refused(error),
        });
        let acct = account(
            &tokens,
            closed_port(),
            "oauth-client-secret = \"shh-secret\"",
        );
        let r = acct.run(&["oauth", "login"]);
        r.expect_code(1);
        assert!(r.stderr.contains(message), "{error}: {}", r.stderr);
        assert!(!acct.store.exists());
        let requests = tokens.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        // The client secret goes with the token request (client_secret_post).
        assert_eq!(
            requests[1].form.get("client_secret").map(String::as_str),
            Some("shh-secret")
        );
        assert_no_secret(&r, &["shh-secret", "dev-code-1"]);
    }
}

#[test]
fn login_without_a_refresh_token_warns() {
    let tokens = TokenServer::start(true, |req, _| match req.path.as_str() {
        "/device" => device_reply(1),
        _ => ok(json!({"access_token": "acc-only", "token_type": "bearer", "expires_in": "3600"})),
    });
    let acct = account(&tokens, closed_port(), "");
    let r = acct.run(&["oauth", "login"]);
    r.expect_code(0);
    assert!(r.stderr.contains("no refresh token"), "{}", r.stderr);
    let stored = acct.read_store();
    assert_eq!(stored["access_token"], "acc-only");
    assert_eq!(stored["refresh_token"], Value::Null);
    assert!(stored["expires_at"].as_u64().unwrap() > now() + 3000);
}

// ---- the refresh before each session ----

#[test]
fn an_expired_or_expiring_access_token_is_refreshed_before_the_session() {
    // Expired, about to expire (within the margin), and of unknown expiry.
    for expires_at in [json!(now() - 10), json!(now() + 30), Value::Null] {
        let tokens = TokenServer::start(true, |req, n| {
            assert_eq!((req.path.as_str(), n), ("/token", 0));
            ok(json!({
                "access_token": "acc-token-2", "refresh_token": "ref-token-2",
                "token_type": "Bearer", "expires_in": 3599,
            }))
        });
        let pop = pop_server_expecting(&xoauth2_line("acc-token-2"));
        let acct = account(&tokens, pop.port(), "");
        acct.write_store(json!({
            "refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": expires_at,
        }));
        let inode = std::fs::metadata(&acct.store).unwrap().ino();
        let r = acct.run(&["-vv", "stat"]);
        r.expect_code(0);
        pop.finish().unwrap().assert_complete();
        let requests = tokens.requests();
        assert_eq!(requests.len(), 1);
        let form = &requests[0].form;
        assert_eq!(
            form.get("grant_type").map(String::as_str),
            Some("refresh_token")
        );
        assert_eq!(
            form.get("refresh_token").map(String::as_str),
            Some("ref-token-1")
        );
        assert_eq!(form.get("client_id").map(String::as_str), Some("client-1"));
        // The rotated refresh token replaced the old one, in a new 0600 file.
        let stored = acct.read_store();
        assert_eq!(stored["refresh_token"], "ref-token-2");
        assert_eq!(stored["access_token"], "acc-token-2");
        assert!(stored["expires_at"].as_u64().unwrap() >= now() + 3500);
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&acct.store).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_ne!(meta.ino(), inode);
        assert_no_secret(
            &r,
            &["acc-token-1", "ref-token-1", "acc-token-2", "ref-token-2"],
        );
    }
}

#[test]
fn two_sessions_at_once_refresh_once() {
    // The provider rotates refresh tokens and refuses a spent one, as Microsoft can: two
    // processes that both spent ref-token-1 would fail one of them. The store's lock makes
    // the second wait, then find the first one's fresh access token.
    let tokens = TokenServer::start(true, |req, n| {
        if n > 0 || req.form.get("refresh_token").map(String::as_str) != Some("ref-token-1") {
            return refused("invalid_grant");
        }
        Answer {
            delay: Duration::from_millis(1500),
            ..ok(
                json!({"access_token": "acc-token-2", "refresh_token": "ref-token-2", "expires_in": 3600}),
            )
        }
    });
    let pops = [
        pop_server_expecting(&xoauth2_line("acc-token-2")),
        pop_server_expecting(&xoauth2_line("acc-token-2")),
    ];
    let acct = account(&tokens, pops[0].port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() - 1}));
    let children: Vec<_> = pops
        .iter()
        .map(|pop| {
            pop3()
                .arg("--config")
                .arg(&acct.config)
                .args(["--account", "t", "--port", &pop.port().to_string(), "stat"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let r: Run = child.wait_with_output().unwrap().into();
        r.expect_code(0);
    }
    for pop in pops {
        pop.finish().unwrap().assert_complete();
    }
    assert_eq!(tokens.requests().len(), 1);
    assert_eq!(acct.read_store()["refresh_token"], "ref-token-2");
}

#[test]
fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let tokens = TokenServer::start(true, |_, _| {
        ok(json!({"access_token": "acc-token-2", "token_type": "Bearer", "expires_in": 600}))
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-token-2"));
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(
        json!({"refresh_token": "ref-token-1", "access_token": null, "expires_at": null}),
    );
    acct.run(&["stat"]).expect_code(0);
    pop.finish().unwrap().assert_complete();
    let stored = acct.read_store();
    assert_eq!(stored["refresh_token"], "ref-token-1");
    assert_eq!(stored["access_token"], "acc-token-2");
}

#[test]
fn a_revoked_refresh_token_says_to_log_in_again() {
    let tokens = TokenServer::start(true, |_, _| refused("invalid_grant"));
    let acct = account(&tokens, closed_port(), "");
    let stored = json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() - 1});
    acct.write_store(stored.clone());
    let r = acct.run(&["-v", "stat"]);
    r.expect_code(1);
    assert!(r.stderr.contains("invalid_grant"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("run `pop3 oauth login --account t` again"),
        "{}",
        r.stderr
    );
    assert_eq!(acct.read_store(), stored);
    assert_no_secret(&r, &["acc-token-1", "ref-token-1"]);
}

#[test]
fn a_slow_token_endpoint_times_out() {
    let tokens = TokenServer::start(true, |_, _| Answer {
        delay: Duration::from_secs(8),
        ..ok(json!({"access_token": "late", "token_type": "Bearer"}))
    });
    let acct = account(&tokens, closed_port(), "");
    acct.write_store(
        json!({"refresh_token": "ref-token-1", "access_token": null, "expires_at": null}),
    );
    let start = Instant::now();
    let r = acct.run(&["--timeout", "1", "stat"]);
    r.expect_code(3);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(
        r.stderr.contains("no complete answer within 1.0 s"),
        "{}",
        r.stderr
    );
    assert_eq!(tokens.requests().len(), 1);
}

#[test]
fn an_unreachable_endpoint_leaves_an_unexpired_token_in_use() {
    // Within the refresh margin but not expired: the endpoint times out, the token still works.
    let tokens = TokenServer::start(true, |_, _| Answer {
        delay: Duration::from_secs(8),
        ..ok(json!({"access_token": "late", "token_type": "Bearer"}))
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-token-1"));
    let acct = account(&tokens, pop.port(), "");
    let stored = json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 60});
    acct.write_store(stored.clone());
    let r = acct.run(&["--timeout", "1", "stat"]);
    r.expect_code(0);
    assert!(r.stderr.contains("warning: OAuth endpoint"), "{}", r.stderr);
    assert!(
        r.stderr.contains("using the stored access token"),
        "{}",
        r.stderr
    );
    pop.finish().unwrap().assert_complete();
    assert_eq!(acct.read_store(), stored);
    assert_no_secret(&r, &["acc-token-1", "ref-token-1"]);
}

#[test]
fn the_token_endpoint_certificate_is_verified() {
    let tokens = TokenServer::start(true, |_, _| ok(json!({"access_token": "x"})));
    let acct = account(&tokens, closed_port(), "");
    // The same account without the test CA.
    let text = std::fs::read_to_string(&acct.config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("oauth-ca-file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&acct.config, text).unwrap();
    acct.write_store(json!({"refresh_token": "ref-token-1"}));
    let r = acct.run(&["stat"]);
    r.expect_code(3);
    assert!(r.stderr.contains("TLS error"), "{}", r.stderr);
    assert!(tokens.requests().is_empty());
}

#[test]
fn plain_http_only_on_loopback_and_only_when_allowed() {
    let tokens = TokenServer::start(false, |_, _| {
        ok(json!({"access_token": "acc-token-2", "token_type": "Bearer", "expires_in": 600}))
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-token-2"));
    let refused_acct = account(&tokens, pop.port(), "");
    let r = refused_acct.run(&["stat"]);
    r.expect_code(2);
    assert!(r.stderr.contains("oauth-allow-http"), "{}", r.stderr);
    let acct = account(&tokens, pop.port(), "oauth-allow-http = true");
    acct.write_store(json!({"refresh_token": "ref-token-1"}));
    acct.run(&["stat"]).expect_code(0);
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 1);
}

// ---- -ERR [AUTH]: one refresh, one retry ----

#[test]
fn err_auth_refreshes_once_and_retries_once_with_xoauth2() {
    let tokens = TokenServer::start(true, |req, n| {
        assert_eq!((req.path.as_str(), n), ("/token", 0));
        ok(
            json!({"access_token": "acc-token-2", "refresh_token": "ref-token-2", "expires_in": 3600}),
        )
    });
    let script = Script::parse(&format!(
        "{GREETING}C: {}\nS: -ERR [AUTH] token expired\nC: {}\n{AFTER_LOGIN}",
        xoauth2_line("acc-token-1"),
        xoauth2_line("acc-token-2")
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    let r = acct.run(&["-vv", "stat"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str(), "0 0\n");
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 1);
    // The trace ran (both AUTH lines, redacted) and said why it tried again.
    assert_eq!(
        r.stderr
            .matches("C: AUTH XOAUTH2 <initial response redacted>")
            .count(),
        2,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("refreshing it and trying once more"),
        "{}",
        r.stderr
    );
    assert_eq!(acct.read_store()["refresh_token"], "ref-token-2");
    assert_no_secret(
        &r,
        &["acc-token-1", "ref-token-1", "acc-token-2", "ref-token-2"],
    );
}

#[test]
fn err_auth_refreshes_once_and_retries_once_with_oauthbearer() {
    let tokens = TokenServer::start(true, |_, n| {
        assert_eq!(n, 0, "one refresh only");
        ok(json!({"access_token": "acc-token-2", "expires_in": 3600}))
    });
    // The OAUTHBEARER message names the server's port, known only once the script runs: the
    // script checks the prefixes, the transcript the exact lines.
    let error = base64::engine::general_purpose::STANDARD
        .encode(r#"{"status":"invalid_token","schemes":"bearer","scope":"pop"}"#);
    let script = Script::parse(&format!(
        "{GREETING}C-PREFIX: AUTH OAUTHBEARER \nS: + {error}\nC: AQ==\nS: -ERR [AUTH] invalid token\n\
         C-PREFIX: AUTH OAUTHBEARER \n{AFTER_LOGIN}"
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let port = pop.port();
    let acct = account(&tokens, port, "auth = \"oauthbearer\"");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    let r = acct.run(&["-v", "stat"]);
    r.expect_code(0);
    let transcript = pop.finish().unwrap();
    transcript.assert_complete();
    let sent = String::from_utf8_lossy(transcript.received()).into_owned();
    let first = format!("{}\r\n", oauthbearer_line("acc-token-1", port));
    let second = format!("{}\r\n", oauthbearer_line("acc-token-2", port));
    let at_first = sent.find(&first).unwrap_or_else(|| panic!("{sent}"));
    let at_second = sent.find(&second).unwrap_or_else(|| panic!("{sent}"));
    assert!(at_first < at_second);
    assert_eq!(sent.matches("AUTH OAUTHBEARER").count(), 2);
    // Refreshed without rotation: the old refresh token stays.
    assert_eq!(acct.read_store()["refresh_token"], "ref-token-1");
    assert_no_secret(&r, &["acc-token-1", "ref-token-1", "acc-token-2"]);
}

#[test]
fn a_second_err_auth_is_final() {
    let tokens = TokenServer::start(true, |_, _| {
        ok(json!({"access_token": "acc-token-2", "expires_in": 3600}))
    });
    let script = Script::parse(&format!(
        "{GREETING}C: {}\nS: -ERR [AUTH] no\nC: {}\nS: -ERR [AUTH] still no\nC: QUIT\nS: +OK bye\n",
        xoauth2_line("acc-token-1"),
        xoauth2_line("acc-token-2")
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    let r = acct.run(&["stat"]);
    r.expect_code(1);
    assert!(r.stderr.contains("still no"), "{}", r.stderr);
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 1);
}

#[test]
fn a_bare_err_is_retried_only_from_a_server_without_auth_resp_code() {
    // Without AUTH-RESP-CODE the server cannot say [AUTH]: a bare -ERR may be the token.
    // XOAUTH2's error challenge (as Gmail sends it) is answered with an empty line.
    let tokens = TokenServer::start(true, |_, n| {
        assert_eq!(n, 0, "one refresh only");
        ok(json!({"access_token": "acc-token-2", "expires_in": 3600}))
    });
    let error = base64::engine::general_purpose::STANDARD
        .encode(r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#);
    let script = Script::parse(&format!(
        "{GREETING}C: {}\nS: + {error}\nC:\nS: -ERR authentication failed\nC: {}\n{AFTER_LOGIN}",
        xoauth2_line("acc-token-1"),
        xoauth2_line("acc-token-2")
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    acct.run(&["stat"]).expect_code(0);
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 1);

    // With AUTH-RESP-CODE, a bare -ERR is not about the credentials: no refresh, no retry.
    let tokens = TokenServer::start(true, |_, _| panic!("no refresh expected"));
    let script = Script::parse(&format!(
        "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nSASL XOAUTH2\\r\\nAUTH-RESP-CODE\\r\\n.\\r\\n\n\
         C: {}\nS: -ERR mailbox unavailable\nC: QUIT\nS: +OK bye\n",
        xoauth2_line("acc-token-1"),
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    let r = acct.run(&["stat"]);
    r.expect_code(1);
    assert!(r.stderr.contains("mailbox unavailable"), "{}", r.stderr);
    pop.finish().unwrap().assert_complete();
    assert!(tokens.requests().is_empty());
}

#[test]
fn an_err_without_auth_code_is_not_retried() {
    let tokens = TokenServer::start(true, |_, _| panic!("no refresh expected"));
    let script = Script::parse(&format!(
        "{GREETING}C: {}\nS: -ERR [SYS/TEMP] try later\nC: QUIT\nS: +OK bye\n",
        xoauth2_line("acc-token-1"),
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() + 3600}));
    acct.run(&["stat"]).expect_code(1);
    pop.finish().unwrap().assert_complete();
    assert!(tokens.requests().is_empty());
}

// ---- configuration ----

#[test]
fn configuration_errors_exit_2() {
    let tokens = TokenServer::start(true, |_, _| panic!("no request expected"));
    let pop_port = closed_port();
    // No token stored yet.
    let acct = account(&tokens, pop_port, "");
    let r = acct.run(&["stat"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("pop3 oauth login --account t"),
        "{}",
        r.stderr
    );
    // A token file others can read.
    acct.write_store(json!({"refresh_token": "r"}));
    std::fs::set_permissions(&acct.store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = acct.run(&["stat"]);
    r.expect_code(2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    // A method that takes no token; a password source next to OAuth; no client id; oauth
    // keys without a provider or endpoint; a bad tenant; an unknown provider.
    for (extra, expect) in [
        ("auth = \"plain\"", "auth must be xoauth2 or oauthbearer"),
        ("password-env = \"X\"", "both OAuth"),
        ("oauth-tenant = \"common\"", "oauth-tenant is for"),
    ] {
        let acct = account(&tokens, pop_port, extra);
        let r = acct.run(&["stat"]);
        r.expect_code(2);
        assert!(r.stderr.contains(expect), "{extra}: {}", r.stderr);
    }
    let dir = tempfile::tempdir().unwrap();
    for (body, expect) in [
        (
            "oauth-client-id = \"c\"",
            "need oauth-provider or oauth-token-endpoint",
        ),
        (
            "oauth-provider = \"microsoft\"",
            "oauth-client-id is required",
        ),
        ("oauth-provider = \"yahoo\"", "unknown variant"),
        (
            "oauth-provider = \"microsoft\"\noauth-client-id = \"c\"\noauth-tenant = \"a/b\"",
            "not a tenant",
        ),
        (
            "oauth-token-endpoint = \"http://example.com/t\"\noauth-client-id = \"c\"\noauth-allow-http = true",
            "loopback",
        ),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("[accounts.t]\nhost = \"h\"\n{body}\n")).unwrap();
        let r = run(&[
            "--config",
            config.to_str().unwrap(),
            "--account",
            "t",
            "oauth",
            "login",
        ]);
        r.expect_code(2);
        assert!(r.stderr.contains(expect), "{body}: {}", r.stderr);
    }
    // `oauth login` needs an account with OAuth.
    let r = run(&["oauth", "login"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--account"), "{}", r.stderr);
}

#[test]
fn a_password_source_on_the_command_line_wins_over_the_store() {
    let tokens = TokenServer::start(true, |_, _| panic!("no request expected"));
    let script = Script::parse(&format!(
        "{GREETING}C: {}\nS: -ERR [AUTH] expired\nC: QUIT\nS: +OK bye\n",
        xoauth2_line("tok-from-env")
    ))
    .unwrap();
    let pop = ScriptedServer::start(script).unwrap();
    let acct = account(&tokens, pop.port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1", "access_token": "acc-token-1", "expires_at": now() - 1}));
    let r: Run = pop3()
        .env("TOKEN", "tok-from-env")
        .arg("--config")
        .arg(&acct.config)
        .args(["--account", "t", "--password-env", "TOKEN", "stat"])
        .output()
        .unwrap()
        .into();
    // Its token is used as it is: neither refreshed before nor after the refusal.
    r.expect_code(1);
    pop.finish().unwrap().assert_complete();
    assert!(tokens.requests().is_empty());
}

#[test]
fn logout_removes_the_tokens() {
    let tokens = TokenServer::start(true, |_, _| panic!("no request expected"));
    let acct = account(&tokens, closed_port(), "");
    acct.write_store(json!({"refresh_token": "ref-token-1"}));
    let r = acct.run(&["oauth", "logout"]);
    r.expect_code(0);
    assert!(!acct.store.exists());
    let r = acct.run(&["oauth", "logout"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("no tokens stored"),
        "{}",
        r.stdout_str()
    );
}
