//! `pop3 fetch` on servers that announce `EXPIRE` (RFC 2449 §6.7), end to end: byte-exact
//! transcripts against the kit's ScriptedServer (what is sent, and what is not: no DELE that
//! the server's EXPIRE 0 does for us, no QUIT that would expire a message the target did not
//! take), MailboxServer announcing and carrying out `EXPIRE 0` for whole runs and kills, and
//! state files whose first-seen times lie in the past for `EXPIRE n`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use pop3_demo_server::MailboxServer;
use pop3_scripted_server::{Script, ScriptedServer, Transcript};

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// USER/PASS login; the CAPA before login announces `EXPIRE 30 USER` (a per-user policy), the
/// one after login the user's policy `after`. No PIPELINING: the transcript's order is the
/// client's order.
fn login(after: &str) -> String {
    format!(
        "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\nUIDL\\r\\nEXPIRE 30 USER\\r\\n.\\r\\n\n\
         C: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK logged in\nC: CAPA\n\
         S-RAW: +OK\\r\\nUIDL\\r\\n{after}.\\r\\n\n"
    )
}

/// `pop3 fetch --maildir DIR/Mail --state DIR/state ARGS...` against a scripted server that
/// plays `script` after a login whose CAPA says `after` (`"EXPIRE 0\\r\\n"`); also returns the
/// commands sent after the login.
fn scripted(
    after: &str,
    script: &str,
    dir: &Path,
    args: &[&str],
) -> (Run, Transcript, Vec<String>) {
    let script = Script::parse(&format!("{}{script}", login(after))).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned(), "--json".to_owned()]);
    let maildir = dir.join("Mail");
    let r = run_with(
        &global,
        &[
            &[
                "fetch",
                "--maildir",
                maildir.to_str().unwrap(),
                "--state",
                state_path(dir).to_str().unwrap(),
            ][..],
            args,
        ]
        .concat(),
    );
    let transcript = server.finish().unwrap();
    let commands = transcript
        .received_str()
        .split("\r\n")
        .skip_while(|l| !l.starts_with("PASS"))
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (r, transcript, commands)
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// The state file's lines after the header.
fn state_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(state_path(dir))
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The Maildir's messages (`new/`), sorted.
fn stored(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = maildir_contents(&dir.join("Mail"))
        .into_iter()
        .flat_map(|(content, n)| std::iter::repeat_n(String::from_utf8(content).unwrap(), n))
        .collect();
    all.sort();
    all
}

const TWO: &str = "C: LIST\nS-RAW: +OK\\r\\n1 7\\r\\n2 8\\r\\n.\\r\\n\n\
     C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n.\\r\\n\n\
     C: RETR 1\nS-RAW: +OK\\r\\nfirst\\r\\n.\\r\\n\n\
     C: RETR 2\nS-RAW: +OK\\r\\nsecond\\r\\n.\\r\\n\n";

#[test]
fn expire_0_records_retrieved_uids_as_deleted_and_forgets_them_after_quit() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "EXPIRE 0\\r\\n",
        &format!("{TWO}C: QUIT\nS: +OK bye\n"),
        dir.path(),
        &[],
    );
    r.expect_code(0);
    t.assert_complete();
    // No DELE: the server deletes what it handed out; QUIT commits it.
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "RETR 2", "QUIT"]);
    assert_eq!(stored(dir.path()), ["first\n", "second\n"]);
    assert!(
        state_lines(dir.path()).is_empty(),
        "the UIDs left with the QUIT: {:?}",
        state_lines(dir.path())
    );
    let json = r.json();
    assert_eq!(json["server_expired"], 2, "{json}");
    assert_eq!(json["deleted"], 0, "{json}");
    // One notice, however many messages.
    let notices = json["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{json}");
    assert!(
        notices[0]
            .as_str()
            .unwrap()
            .contains("messages cannot be left on the server"),
        "{json}"
    );
}

#[test]
fn expire_0_marks_each_uid_deleting_in_the_write_that_records_it() {
    // QUIT refused: nothing is known to be committed, so the state shows what was written
    // before QUIT, and every UID recorded is marked deleting.
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "EXPIRE 0\\r\\n",
        &format!("{TWO}C: QUIT\nS: -ERR cannot commit\n"),
        dir.path(),
        &[],
    );
    assert_ne!(r.code, 0, "{r:?}");
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "RETR 2", "QUIT"]);
    let lines = state_lines(dir.path());
    let t0 = now();
    let mut kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f.as_slice() {
                ["S", time, size, uid] => {
                    let time: u64 = time.parse().unwrap();
                    assert!(time <= t0 && time + 60 > t0, "{l}");
                    format!("S {size} {uid}")
                }
                _ => l.clone(),
            }
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["D a", "D b", "S 7 a", "S 8 b"], "{lines:?}");

    // The next run: the server (which did not commit) still lists them: downloaded again,
    // found in the Maildir, not stored twice; QUIT commits and they leave the state.
    let (r, t, commands) = scripted(
        "EXPIRE 0\\r\\n",
        &format!("{TWO}C: QUIT\nS: +OK bye\n"),
        dir.path(),
        &[],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "RETR 2", "QUIT"]);
    assert_eq!(stored(dir.path()), ["first\n", "second\n"]);
    assert_eq!(r.json()["verified"], 2);
    assert!(state_lines(dir.path()).is_empty());
}

#[test]
fn expire_0_does_not_quit_while_a_retrieved_message_was_not_delivered() {
    // The MDA refuses the second message: QUIT would make the server expire it, so the
    // session ends without QUIT, and nothing is deleted.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivered");
    std::fs::create_dir(&out).unwrap();
    let mda = format!(
        "m=$(cat); case \"$m\" in second*) exit 75;; esac; printf '%s' \"$m\" > {}/$$",
        out.display()
    );
    let script = Script::parse(&format!("{}{TWO}", login("EXPIRE 0\\r\\n"))).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned(), "--json".to_owned()]);
    let state = state_path(dir.path());
    let r = run_with(
        &global,
        &["fetch", "--mda", &mda, "--state", state.to_str().unwrap()],
    );
    let t = server.finish().unwrap();
    t.assert_complete();
    let received = t.received_str();
    assert!(
        received.ends_with("RETR 1\r\nRETR 2\r\n"),
        "no QUIT after the RETRs: {received:?}"
    );
    assert_eq!(count_files(&out), 1, "{r:?}");
    let json = r.json();
    assert_eq!(json["stored"], 1, "{json}");
    assert!(
        json["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("ended without QUIT")),
        "{json}"
    );
    // The stored one stays marked (its deletion is not committed); the other is unrecorded.
    let lines = state_lines(dir.path());
    assert!(lines.iter().any(|l| l == "D a"), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.ends_with(" b") && l.starts_with('S')),
        "{lines:?}"
    );
}

#[test]
fn expire_0_keep_is_not_honoured_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, _) = scripted(
        "EXPIRE 0\\r\\n",
        &format!("{TWO}C: QUIT\nS: +OK bye\n"),
        dir.path(),
        &["--keep", "7d"],
    );
    r.expect_code(0);
    t.assert_complete();
    let json = r.json();
    let notices = json["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{json}");
    assert!(
        notices[0]
            .as_str()
            .unwrap()
            .ends_with("so keep is not honoured"),
        "{json}"
    );
}

/// A state file: stored UIDs with their first-seen times and sizes.
fn write_state(dir: &Path, stored: &[(&str, u64, u64)]) {
    let mut text = "pop3-cli fetch state v3\n".to_owned();
    for (uid, first_seen, size) in stored {
        text.push_str(&format!("S {first_seen} {size} {uid}\n"));
    }
    std::fs::write(state_path(dir), text).unwrap();
}

/// A Maildir holding `messages` (LF line ends, as stored).
fn seed_maildir(dir: &Path, messages: &[&str]) {
    let maildir = dir.join("Mail");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (i, m) in messages.iter().enumerate() {
        std::fs::write(maildir.join("new").join(format!("100{i}.seed.host")), m).unwrap();
    }
}

#[test]
fn expire_n_reverifies_stored_uids_older_than_n_minus_one_days() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    // EXPIRE 5: a UID is trusted for 4 days after it was first seen.
    seed_maildir(dir.path(), &["old a\n", "recent b\n", "old c\n"]);
    write_state(
        dir.path(),
        &[
            ("a", t - 10 * DAY, 7),
            ("b", t - 3 * DAY, 10),
            ("c", t - 4 * DAY - 60, 7),
        ],
    );
    let (r, tr, commands) = scripted(
        "EXPIRE 5\\r\\n",
        // a: the server expired the old message and gave its UID to a new one; b: trusted
        // (only its UID is looked at); c: the same message still there.
        "C: LIST\nS-RAW: +OK\\r\\n1 7\\r\\n2 10\\r\\n3 7\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n3 c\\r\\n.\\r\\n\n\
         C: RETR 1\nS-RAW: +OK\\r\\nnew a\\r\\n.\\r\\n\n\
         C: RETR 3\nS-RAW: +OK\\r\\nold c\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--keep", "30d"],
    );
    r.expect_code(0);
    tr.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "RETR 3", "QUIT"]);
    assert_eq!(
        stored(dir.path()),
        ["new a\n", "old a\n", "old c\n", "recent b\n"],
        "the new message under a reused UID is stored; the old one is not stored twice"
    );
    // The new message under `a` is first seen now; `c` keeps its time (still untrusted).
    let first_seen = |uid: &str| -> u64 {
        state_lines(dir.path())
            .iter()
            .find_map(|l| match l.split(' ').collect::<Vec<_>>().as_slice() {
                ["S", time, _, u] if *u == uid => time.parse().ok(),
                _ => None,
            })
            .unwrap()
    };
    assert!(first_seen("a") >= t, "{:?}", state_lines(dir.path()));
    assert_eq!(first_seen("c"), t - 4 * DAY - 60);
    assert_eq!(first_seen("b"), t - 3 * DAY);
    let json = r.json();
    assert_eq!(json["stored"], 1, "{json}");
    assert_eq!(json["verified"], 1, "{json}");
    assert_eq!(
        json["deleted"], 0,
        "keep never deletes on a suspect UID: {json}"
    );
    // keep (30 days) is longer than the server keeps messages: said once.
    let notices = json["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{json}");
    assert!(
        notices[0]
            .as_str()
            .unwrap()
            .contains("(EXPIRE 5), sooner than keep (30 days)"),
        "{json}"
    );
}

#[test]
fn expire_never_and_none_trust_stored_uids() {
    for after in ["EXPIRE NEVER\\r\\n", ""] {
        let dir = tempfile::tempdir().unwrap();
        seed_maildir(dir.path(), &["old a\n"]);
        write_state(dir.path(), &[("a", now() - 400 * DAY, 7)]);
        let (r, t, commands) = scripted(
            after,
            "C: LIST\nS-RAW: +OK\\r\\n1 7\\r\\n.\\r\\n\n\
             C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n.\\r\\n\n\
             C: QUIT\nS: +OK bye\n",
            dir.path(),
            &[],
        );
        r.expect_code(0);
        t.assert_complete();
        assert_eq!(commands, ["LIST", "UIDL", "QUIT"], "{after}");
        assert!(r.json()["notices"].as_array().unwrap().is_empty());
    }
}

#[test]
fn expire_0_whole_runs_against_a_server_that_expires() {
    let mail = sample_mail(12, 800, 5);
    let server = MailboxServer::builder(mail.clone())
        .expire("0")
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let r = run_with(
        &args,
        &[
            "fetch",
            "--maildir",
            maildir.to_str().unwrap(),
            "--batch",
            "5",
        ],
    );
    r.expect_code(0);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
    assert!(server.messages().is_empty(), "the server expired them all");
    assert!(stored_uids(&state_file(&maildir)).is_empty());
    // New mail later: fetched as new (the UIDs of the old ones are forgotten).
    let more = sample_mail(3, 500, 6);
    for m in &more {
        server.push_message(m);
    }
    let r = run_with(&args, &["fetch", "--maildir", maildir.to_str().unwrap()]);
    r.expect_code(0);
    let all: Vec<Vec<u8>> = mail.iter().chain(&more).cloned().collect();
    assert_eq!(maildir_contents(&maildir), expected_contents(&all));
}

/// Runs `pop3 fetch TARGET...` until it stops at the `n`-th `phase`, then kills it.
fn fetch_killed_at(args: &[String], target: &[&str], phase: &str, n: u64) {
    let mut child = pop3()
        .args(args)
        .arg("fetch")
        .args(target)
        .args(["-q", "--batch", "4"])
        .env("POP3_TEST_PAUSE_AT", format!("{phase}:{n}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line, format!("pop3-test-hook: paused at {phase} {n}\n"));
    let pid = rustix::process::Pid::from_child(&child);
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::UNTRACED)
        .unwrap()
        .unwrap();
    assert!(status.stopped(), "{status:?}");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn expire_0_killed_between_retr_and_quit_loses_nothing_and_stores_nothing_twice() {
    // `renamed`: a batch delivered, not recorded (recovered by the next run, then compared
    // by content); `recorded`: recorded and marked; `quit`: everything recorded, QUIT not
    // sent. The kill ends the session without QUIT: the server expires nothing.
    for (phase, n) in [("renamed", 1), ("recorded", 2), ("quit", 1)] {
        let mail = sample_mail(10, 600, 9);
        let server = MailboxServer::builder(mail.clone())
            .expire("0")
            .start()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Mail");
        let args = plain_args(server.port());
        fetch_killed_at(&args, &["--maildir", maildir.to_str().unwrap()], phase, n);
        assert_eq!(server.messages().len(), 10, "nothing expired at {phase}");
        let state = std::fs::read_to_string(state_file(&maildir)).unwrap();
        for uid in stored_uids(&state_file(&maildir)) {
            assert!(
                state.lines().any(|l| l == format!("D {uid}")),
                "{uid} recorded without its mark at {phase}: {state}"
            );
        }
        let r = run_with(&args, &["fetch", "--maildir", maildir.to_str().unwrap()]);
        r.expect_code(0);
        assert_eq!(
            maildir_contents(&maildir),
            expected_contents(&mail),
            "after a kill at {phase}"
        );
        assert!(server.messages().is_empty(), "at {phase}");
        assert!(stored_uids(&state_file(&maildir)).is_empty(), "at {phase}");
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn expire_0_killed_after_an_mbox_append_stores_nothing_twice() {
    // Appended and synced, not recorded: the next run recovers the append from the journal,
    // marks those UIDs (retrieved in a session the server might have expired) and compares
    // them by digest.
    let mail = sample_mail(10, 600, 11);
    let server = MailboxServer::builder(mail.clone())
        .expire("0")
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("inbox");
    let m = mbox.to_str().unwrap();
    let args = plain_args(server.port());
    fetch_killed_at(&args, &["--mbox", m], "appended", 1);
    assert_eq!(server.messages().len(), 10, "nothing expired");
    let r = run_with(&args, &["--json", "fetch", "--mbox", m]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["recovered"], 4, "{json}");
    assert_eq!(json["verified"], 4, "{json}");
    assert_eq!(json["stored"], 6, "{json}");
    let text = String::from_utf8_lossy(&std::fs::read(&mbox).unwrap()).into_owned();
    for n in 1..=10 {
        let id = format!("Message-ID: <11.{n}@example.test>");
        assert_eq!(text.matches(&id).count(), 1, "{id}");
    }
    assert!(server.messages().is_empty());
}

#[test]
fn expire_0_does_not_quit_after_a_local_error() {
    // The LMTP server is gone: the target is unusable after the RETR (an error, not an
    // undelivered message). Without EXPIRE a QUIT would follow (committing nothing of ours);
    // under EXPIRE 0 it would expire what was retrieved, so the session ends without it.
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lmtp = closed.local_addr().unwrap().to_string();
    drop(closed);
    let script = Script::parse(&format!(
        "{}C: LIST\nS-RAW: +OK\\r\\n1 7\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n.\\r\\n\n\
         C: RETR 1\nS-RAW: +OK\\r\\nfirst\\r\\n.\\r\\n\n",
        login("EXPIRE 0\\r\\n")
    ))
    .unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned()]);
    let state = state_path(dir.path());
    let r = run_with(
        &global,
        &[
            "fetch",
            "--lmtp",
            &lmtp,
            "--lmtp-rcpt",
            "alice@example.test",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
    let t = server.finish().unwrap();
    t.assert_complete();
    assert!(
        t.received_str().ends_with("UIDL\r\nRETR 1\r\n"),
        "no QUIT: {:?}",
        t.received_str()
    );
    let text = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        !text.lines().any(|l| l.starts_with("S ")),
        "nothing recorded as stored: {text}"
    );
}
