//! `pop3 poll` against the private Dovecot (`scripts/dovecot/start.sh`), gated by
//! `POP3_INTEROP` (required in CI: an unreachable peer fails; auto: skipped with a note).
//! Read-only: alice's 1000 messages are fetched, never deleted.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use pop3_dovecot_peer::DovecotPeer;

#[test]
fn poll_once_two_accounts_on_dovecot_implicit_tls_and_stls() {
    let Some(peer) = DovecotPeer::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = peer.certificate_path();
    let account = |name: &str, port: u16, tls: &str| {
        format!(
            "[accounts.{name}]\nhost = \"localhost\"\nport = {port}\ntls = \"{tls}\"\n\
             ca-file = {ca:?}\nuser = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\n\
             maildir = {:?}\ntimeout = 30\n\n",
            dir.path().join(name)
        )
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        account("implicit", peer.tls_addr().port(), "implicit")
            + &account("stls", peer.addr().port(), "starttls"),
    )
    .unwrap();
    let run = || {
        let output = pop3()
            .arg("--config")
            .arg(&config)
            .args(["poll", "--once", "--log-format", "json"])
            .output()
            .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (
            output.status.code(),
            lines,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, lines, stderr) = run();
    assert_eq!(code, Some(0), "{stderr}\n{lines:#?}");
    let expected = maildir_contents(&peer.maildir("alice"));
    assert!(expected.values().sum::<usize>() >= 1000);
    for name in ["implicit", "stls"] {
        let line = lines
            .iter()
            .find(|l| l["event"] == "poll" && l["account"] == name)
            .unwrap();
        assert_eq!(line["result"], "ok", "{line}");
        assert_eq!(line["login"], "SCRAM-SHA-256", "{line}");
        assert_eq!(maildir_contents(&dir.path().join(name)), expected, "{name}");
    }
    // Nothing twice.
    let (code, lines, stderr) = run();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "poll")
            .all(|l| l["stored"] == 0),
        "{lines:#?}"
    );
}
