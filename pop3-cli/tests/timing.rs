//! Read deadlines through the `pop3` binary: a trickled greeting times out with exit 3, and
//! `--speed-limit`/`--speed-time` (and their config keys) cut a body that trickles.
//!
//! The upper time bounds are generous (10 s over the limit) because this machine shares two
//! cores among several builds; the trickles last 30 s, so a client they hold still fails.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use pop3_scripted_server::{Script, ScriptedServer};

const SLACK: Duration = Duration::from_secs(10);

/// Thirty seconds of one byte every 200 ms, never a line end.
fn endless_drip(script: Script) -> Script {
    script.drip(&[b'1'; 150], 1, Duration::from_millis(200))
}

/// `+OK ` and then the endless drip: a greeting that never ends.
fn trickled_greeting() -> ScriptedServer {
    ScriptedServer::start(endless_drip(Script::new().send_raw(b"+OK "))).unwrap()
}

/// The greeting, the automatic CAPA, USER/PASS and the CAPA after login, then RETR 1 whose
/// body trickles.
fn trickled_body() -> ScriptedServer {
    let script = Script::parse(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: RETR 1
        S: +OK
        ",
    )
    .unwrap();
    ScriptedServer::start(endless_drip(script)).unwrap()
}

#[test]
fn trickled_greeting_times_out_exit_3() {
    let server = trickled_greeting();
    let mut args = plain_args(server.port());
    args.extend(["--timeout".to_owned(), "1".to_owned()]);
    let started = Instant::now();
    let r = run_with(&args, &["stat"]);
    let elapsed = started.elapsed();
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("timed out after 1 s waiting for the greeting"),
        "{}",
        r.stderr
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1) + SLACK, "{elapsed:?}");
    let transcript = server.finish().unwrap();
    assert!(transcript.hung_up(), "{transcript}");
    assert_eq!(transcript.received(), b"");
}

#[test]
fn speed_limit_flags_cut_a_trickled_body_exit_3() {
    let server = trickled_body();
    let mut args = plain_args(server.port());
    args.extend(["--speed-limit", "100", "--speed-time", "1.5"].map(str::to_owned));
    let started = Instant::now();
    let r = run_with(&args, &["retr", "1"]);
    let elapsed = started.elapsed();
    r.expect_code(3);
    assert!(
        r.stderr.contains(
            "the rest of the reply to RETR 1 came in slower than the speed limit of 100 \
             bytes/s over 1.5 s"
        ),
        "{}",
        r.stderr
    );
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500) + SLACK, "{elapsed:?}");
    let transcript = server.finish().unwrap();
    assert!(transcript.hung_up(), "{transcript}");
    assert_eq!(transcript.mismatch(), None);
    // No QUIT after the cut: nothing is committed.
    assert_eq!(
        transcript.received(),
        b"CAPA\r\nUSER alice\r\nPASS secret-a\r\nCAPA\r\nRETR 1\r\n"
    );
}

#[test]
fn speed_limit_config_keys() {
    let server = trickled_body();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.slow]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\n\
             password-env = \"POP3_TEST_PASSWORD\"\nallow-plaintext-auth = true\n\
             speed-limit = 200\nspeed-time = 1\n",
            server.port()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let r = run(&["--config", config, "--account", "slow", "retr", "1"]);
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("slower than the speed limit of 200 bytes/s over 1 s"),
        "{}",
        r.stderr
    );
    let transcript = server.finish().unwrap();
    assert!(transcript.hung_up(), "{transcript}");
    assert!(
        transcript.received().ends_with(b"RETR 1\r\n"),
        "{transcript}"
    );
}

#[test]
fn speed_limit_usage_errors_exit_2() {
    for args in [
        ["--speed-time", "0"],
        ["--speed-time", "x"],
        ["--speed-limit", "-1"],
        ["--speed-limit", "1.5"],
    ] {
        run(&[&["--host", "127.0.0.1"][..], &args, &["capa"]].concat()).expect_code(2);
    }
    let r = run(&["--host", "127.0.0.1", "--speed-time", "0", "capa"]);
    assert!(
        r.stderr
            .contains("the speed time must be more than 0 and at most 86400 seconds"),
        "{}",
        r.stderr
    );
}
