//! `pop3 fetch` keeps the wire busy across its durable batches when the server pipelines:
//! the RETRs of the next batches are written before the replies of the batch being stored
//! are read, and each batch's DELEs go out behind them, so that neither a commit nor the
//! DELEs cost a round trip. Each script below makes the server wait for those commands
//! before it sends the replies they must precede: a client that waited for a batch's
//! replies first would stall there (and fail on its short timeout).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fmt::Write as _;

use common::*;
use pop3_scripted_server::{Script, ScriptedServer, Transcript};

/// Messages of the mailbox; each is `SIZE` octets on the wire (as LIST says).
const MESSAGES: u32 = 16;

fn body(msg: u32) -> String {
    // 100 octets: "Subject: NN\r\n\r\n" and a padded line.
    let head = format!("Subject: {msg:02}\r\n\r\n");
    let pad = 100 - head.len() - 2;
    format!("{head}{}\r\n", "x".repeat(pad))
}

/// A login whose CAPAs (before and after login) list PIPELINING, then LIST and UIDL.
fn prelude() -> String {
    let capa = r"S-RAW: +OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n";
    let mut s = format!(
        "S: +OK ready\nC: CAPA\n{capa}\nC: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK logged in\n\
         C: CAPA\n{capa}\nC: LIST\nS: +OK\n"
    );
    for m in 1..=MESSAGES {
        writeln!(s, "S: {m} {}", body(m).len()).unwrap();
    }
    s.push_str("S: .\nC: UIDL\nS: +OK\n");
    for m in 1..=MESSAGES {
        writeln!(s, "S: {m} uid-{m}").unwrap();
    }
    s.push_str("S: .\n");
    s
}

fn expect(s: &mut String, verb: &str, msgs: std::ops::RangeInclusive<u32>) {
    for m in msgs {
        writeln!(s, "C: {verb} {m}").unwrap();
    }
}

fn retr_replies(s: &mut String, msgs: std::ops::RangeInclusive<u32>) {
    for m in msgs {
        let escaped = body(m).replace("\r\n", r"\r\n");
        writeln!(s, r"S-RAW: +OK\r\n{escaped}.\r\n").unwrap();
    }
}

/// `pop3 --json fetch --maildir MD --state ... --batch 4 --batch-bytes 400 ARGS` against
/// the script (batches of 4 messages; 800 octets, two batches, requested ahead).
fn fetch(script: &str, maildir: &std::path::Path, args: &[&str]) -> (Run, Transcript) {
    let script = Script::parse(&format!("{}{script}", prelude())).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let global: Vec<String> = [
        "--host",
        "127.0.0.1",
        "--port",
        &server.port().to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--auth",
        "user",
        "--json",
        // A client that waits where the script does not answer fails fast.
        "--timeout",
        "5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let md = maildir.to_str().unwrap();
    let state = format!("{md}/.pop3-state.test");
    let run = run_with(
        &global,
        &[
            &[
                "fetch",
                "--maildir",
                md,
                "--state",
                &state,
                "--batch",
                "4",
                "--batch-bytes",
                "400",
            ][..],
            args,
        ]
        .concat(),
    );
    (run, server.finish().unwrap())
}

fn stored_bodies(maildir: &std::path::Path) -> Vec<String> {
    let mut bodies: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    bodies.sort();
    bodies
}

fn wanted_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = (1..=MESSAGES)
        .map(|m| body(m).replace("\r\n", "\n"))
        .collect();
    bodies.sort();
    bodies
}

#[test]
fn the_next_batches_are_requested_before_a_batch_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("md");
    let mut script = String::new();
    // Batches 1 to 3 (800 octets ahead of batch 1) before any reply.
    expect(&mut script, "RETR", 1..=12);
    retr_replies(&mut script, 1..=4);
    // Batch 4 once batch 1 is read, before batch 2 is: 800 octets ahead of batch 2.
    expect(&mut script, "RETR", 13..=16);
    retr_replies(&mut script, 5..=16);
    script.push_str("C: QUIT\nS: +OK bye\n");
    let (run, transcript) = fetch(&script, &maildir, &[]);
    transcript.assert_complete();
    run.expect_code(0);
    let summary = run.json();
    assert_eq!(summary["stored"], 16, "{summary}");
    assert_eq!(summary["batches"], 4, "{summary}");
    assert_eq!(stored_bodies(&maildir), wanted_bodies());
    // Every UID recorded, nothing reserved any more.
    let state = std::fs::read_to_string(maildir.join(".pop3-state.test")).unwrap();
    for m in 1..=MESSAGES {
        assert!(state.contains(&format!(" uid-{m}\n")), "{state}");
    }
    assert!(!state.lines().any(|l| l.starts_with("P ")), "{state}");
}

#[test]
fn the_deles_of_a_stored_batch_go_out_behind_the_retrs_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("md");
    let mut script = String::new();
    expect(&mut script, "RETR", 1..=12);
    retr_replies(&mut script, 1..=4);
    expect(&mut script, "RETR", 13..=16);
    retr_replies(&mut script, 5..=8);
    // Batch 1 is durable once batch 2 is read: its DELEs come before batch 3 is answered.
    expect(&mut script, "DELE", 1..=4);
    retr_replies(&mut script, 9..=16);
    for _ in 1..=4 {
        script.push_str("S: +OK deleted\n");
    }
    expect(&mut script, "DELE", 5..=16);
    for _ in 5..=16 {
        script.push_str("S: +OK deleted\n");
    }
    script.push_str("C: QUIT\nS: +OK bye\n");
    let (run, transcript) = fetch(&script, &maildir, &["--delete"]);
    transcript.assert_complete();
    run.expect_code(0);
    let summary = run.json();
    assert_eq!(summary["stored"], 16, "{summary}");
    assert_eq!(summary["deleted"], 16, "{summary}");
    assert_eq!(stored_bodies(&maildir), wanted_bodies());
    // QUIT committed the deletions: the UIDs left the state.
    let state = std::fs::read_to_string(maildir.join(".pop3-state.test")).unwrap();
    assert!(!state.contains("uid-"), "{state}");
}

/// Without PIPELINING nothing is requested ahead: batch by batch, as before.
#[test]
fn without_pipelining_each_batch_waits_for_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("md");
    let mut script = String::new();
    for m in 1..=MESSAGES {
        expect(&mut script, "RETR", m..=m);
        retr_replies(&mut script, m..=m);
    }
    script.push_str("C: QUIT\nS: +OK bye\n");
    let script = script.replace(r"PIPELINING\r\n", "");
    let prelude = prelude().replace(r"PIPELINING\r\n", "");
    let script = Script::parse(&format!("{prelude}{script}")).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let md = maildir.to_str().unwrap();
    let state = format!("{md}/.pop3-state.test");
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned(), "--json".to_owned()]);
    let run = run_with(
        &global,
        &["fetch", "--maildir", md, "--state", &state, "--batch", "4"],
    );
    let transcript = server.finish().unwrap();
    transcript.assert_complete();
    run.expect_code(0);
    assert_eq!(run.json()["stored"], 16);
    assert_eq!(stored_bodies(&maildir), wanted_bodies());
}
