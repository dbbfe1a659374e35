//! `pop3 fetch` against servers that reuse UIDs, send listings that contradict themselves,
//! refuse UIDL, and against local limits (file size, open files): nothing is lost, nothing is
//! deleted unstored.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use pop3_demo_server::MailboxServer;
use pop3_scripted_server::{Script, ScriptedServer, Transcript};

/// A plaintext login for scripts; the post-login CAPA lists UIDL when `uidl`.
fn login(uidl: bool) -> String {
    let after = if uidl {
        r"S-RAW: +OK\r\nUIDL\r\nTOP\r\n.\r\n"
    } else {
        r"S-RAW: +OK\r\nTOP\r\n.\r\n"
    };
    format!(
        "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\nUIDL\\r\\nTOP\\r\\n.\\r\\n\n\
         C: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK logged in\nC: CAPA\n{after}\n"
    )
}

/// `pop3 --json fetch --maildir MD --state MD/state ARGS...` against a scripted server:
/// login, then `script`. (An explicit state file: each scripted server has a new port, and
/// the default state file is keyed by the port.)
fn fetch(uidl_capa: bool, script: &str, maildir: &Path, args: &[&str]) -> (Run, Transcript) {
    let script = Script::parse(&format!("{}{script}", login(uidl_capa))).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned(), "--json".to_owned()]);
    let md = maildir.to_str().unwrap();
    let state = format!("{md}/.pop3-state.test");
    let r = run_with(
        &global,
        &[&["fetch", "--maildir", md, "--state", &state][..], args].concat(),
    );
    (r, server.finish().unwrap())
}

/// The commands the client sent after the login.
fn commands_after_login(transcript: &Transcript) -> Vec<String> {
    let received = transcript.received_str();
    received
        .split("\r\n")
        .skip_while(|l| !l.starts_with("PASS"))
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The state file's text with each first-seen time (v3 `S`, `M`, `T` lines) shown as `<t>`.
fn state_text(maildir: &Path) -> String {
    let text = std::fs::read_to_string(state_file(maildir)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some((tag @ ("S" | "M" | "T"), rest))
                if text.starts_with("pop3-cli fetch state v3") =>
            {
                let (time, rest) = rest.split_once(' ').unwrap();
                assert!(time.parse::<u64>().is_ok(), "{line:?}");
                out.push_str(&format!("{tag} <t> {rest}\n"));
            }
            _ => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

// ---- item 1: a reused UID ----

#[test]
fn a_reused_uid_is_fetched_as_new_after_a_committed_delete() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nfirst\r\n.\r\n
        C: DELE 1
        S: +OK
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.json()["deleted"], 1);
    // QUIT committed the deletion: the UID left the state.
    assert!(
        stored_uids(&state_file(&maildir)).is_empty(),
        "{}",
        state_text(&maildir)
    );

    // The server gives UID "a" to a new message: it is stored, and only then deleted.
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 12\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nsecond\r\n.\r\n
        C: DELE 1
        S: +OK
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.json()["stored"], 1);
    let contents = maildir_contents(&maildir);
    assert!(contents.contains_key(&b"first\n"[..]), "{contents:?}");
    assert!(contents.contains_key(&b"second\n"[..]), "{contents:?}");
}

#[test]
fn an_uncommitted_delete_marks_the_uid_before_the_dele_is_sent() {
    // The server drops the connection on DELE (some delete on disconnect, so the deletion may
    // have happened): the state marks "a" deleting, written before the DELE went out.
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, _) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nfirst\r\n.\r\n
        C: DELE 1
        CLOSE
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(3);
    assert_eq!(
        state_text(&maildir),
        "pop3-cli fetch state v3\nS <t> 10 a\nD a\n"
    );

    // Next run: "a" is listed with other content (reused): downloaded, compared, stored, then
    // deleted.
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 12\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nsecond\r\n.\r\n
        C: DELE 1
        S: +OK
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.json()["stored"], 1);
    let contents = maildir_contents(&maildir);
    assert_eq!(contents.len(), 2, "{contents:?}");
    assert!(stored_uids(&state_file(&maildir)).is_empty());
}

#[test]
fn an_uncertain_uid_with_the_stored_content_is_not_stored_twice() {
    // QUIT answered -ERR: the deletion may or may not have happened. The next run finds the
    // same message under "a": downloaded again, found identical in the Maildir, not stored a
    // second time; without --delete the mark is cleared, the message stays.
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, _) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n2 b\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nfirst\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\nother\r\n.\r\n
        C: DELE 1
        S: +OK
        C: DELE 2
        S: +OK
        C: QUIT
        S: -ERR [SYS/TEMP] some deleted messages not removed
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(1);
    assert_eq!(
        state_text(&maildir),
        "pop3-cli fetch state v3\nS <t> 10 a\nD a\nS <t> 10 b\nD b\n"
    );
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nfirst\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &[],
    );
    r.expect_code(0);
    t.assert_complete();
    let json = r.json();
    assert_eq!(json["stored"], 0);
    assert_eq!(json["verified"], 1);
    assert_eq!(count_files(&maildir.join("new")), 2);
    assert_eq!(count_files(&maildir.join("tmp")), 0);
    // "b" is gone from the listing, so from the state; "a" is known to exist: no mark.
    assert_eq!(
        state_text(&maildir),
        "pop3-cli fetch state v3\nS <t> 10 a\n"
    );
}

// ---- item 2: listings that lie ----

fn assert_nothing_fetched(r: &Run, t: &Transcript, maildir: &Path) {
    r.expect_code(3);
    assert!(r.stderr.contains("protocol violation"), "{}", r.stderr);
    let commands = commands_after_login(t);
    assert!(
        commands
            .iter()
            .all(|c| !c.starts_with("RETR") && !c.starts_with("DELE")),
        "{commands:?}"
    );
    assert_eq!(count_files(&maildir.join("new")), 0);
}

#[test]
fn a_repeated_uid_is_a_protocol_violation_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n2 b\r\n3 a\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    assert_nothing_fetched(&r, &t, &maildir);
    assert!(
        r.stderr.contains('a') && r.stderr.contains('3'),
        "{}",
        r.stderr
    );
}

#[test]
fn a_repeated_message_number_is_a_protocol_violation() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    for (list, uidl) in [
        (r"1 10\r\n2 10\r\n2 10\r\n", r"1 a\r\n2 b\r\n"),
        (r"1 10\r\n2 10\r\n", r"1 a\r\n2 b\r\n2 c\r\n"),
    ] {
        let (r, t) = fetch(
            true,
            &format!(
                "C: LIST\nS-RAW: +OK\\r\\n{list}.\\r\\n\nC: UIDL\nS-RAW: +OK\\r\\n{uidl}.\\r\\n\nC: QUIT\nS: +OK bye\n"
            ),
            &maildir,
            &["--delete"],
        );
        assert_nothing_fetched(&r, &t, &maildir);
        // The core's typed error names the repeated number.
        assert!(
            r.stderr.contains("repeats message number(s) 2 "),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn uidl_and_list_must_name_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    // UIDL leaves out message 2 (today it would never be fetched).
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n3 c\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    assert_nothing_fetched(&r, &t, &maildir);
    assert!(
        r.stderr.contains("UIDL leaves out message 2 of LIST"),
        "{}",
        r.stderr
    );
    // UIDL names messages LIST does not have.
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n4 d\r\n5 e\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    assert_nothing_fetched(&r, &t, &maildir);
    assert!(
        r.stderr
            .contains("UIDL lists message 4, 5 that LIST does not"),
        "{}",
        r.stderr
    );
}

// ---- item 3: -ERR to UIDL ----

#[test]
fn uidl_refused_by_a_server_that_announces_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S: -ERR [SYS/TEMP] try later
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(1);
    t.assert_complete();
    assert!(r.stderr.contains("try later"), "{}", r.stderr);
    assert!(r.stderr.contains("announces UIDL"), "{}", r.stderr);
    assert_eq!(count_files(&maildir.join("new")), 0);
}

#[test]
fn uidl_refused_after_uids_were_recorded_is_an_error() {
    // The server does not announce UIDL, but answered it before: the state holds its UIDs.
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, t) = fetch(
        false,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nfirst\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &[],
    );
    r.expect_code(0);
    t.assert_complete();
    let (r, t) = fetch(
        false,
        r"
        C: LIST
        S-RAW: +OK\r\n1 10\r\n.\r\n
        C: UIDL
        S: -ERR [SYS/TEMP] try later
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &["--delete"],
    );
    r.expect_code(1);
    t.assert_complete();
    assert!(r.stderr.contains("state file holds UIDs"), "{}", r.stderr);
    assert_eq!(count_files(&maildir.join("new")), 1, "nothing stored twice");
}

// ---- item 5: smaller items ----

#[test]
fn the_default_state_file_is_keyed_by_port() {
    // Two servers behind one host name, with the same UIDs (uid-1, uid-2, ...): each one's
    // mail is stored.
    let first = sample_mail(3, 400, 51);
    let second = sample_mail(3, 400, 52);
    let a = MailboxServer::start(first.clone()).unwrap();
    let b = MailboxServer::start(second.clone()).unwrap();
    assert_eq!(a.uids(), b.uids());
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    run_with(&plain_args(a.port()), &["fetch", "--maildir", md, "-q"]).expect_code(0);
    let r = run_with(&plain_args(b.port()), &["--json", "fetch", "--maildir", md]);
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 3);
    let all: Vec<Vec<u8>> = first.iter().chain(&second).cloned().collect();
    assert_eq!(maildir_contents(&maildir), expected_contents(&all));
    let state = r.json()["state"].as_str().unwrap().to_owned();
    assert!(
        state.contains(&format!("@127.0.0.1-{}.", b.port())),
        "{state}"
    );
}

/// The default state file name of earlier versions (user and host only).
fn legacy_name(user: &str, host: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes().chain([0]).chain(host.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!(".pop3-state.{user}@{host}.{:08x}", hash as u32)
}

#[test]
fn an_old_default_state_file_is_carried_over() {
    let mail = sample_mail(4, 400, 53);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    std::fs::create_dir_all(&maildir).unwrap();
    // An earlier version stored the first three.
    let legacy = maildir.join(legacy_name("alice", "127.0.0.1"));
    let uids = server.uids();
    std::fs::write(
        &legacy,
        format!(
            "pop3-cli fetch state v1\nS {}\nS {}\nS {}\n",
            uids[0], uids[1], uids[2]
        ),
    )
    .unwrap();
    let r = run_with(
        &plain_args(server.port()),
        &["--json", "fetch", "--maildir", md],
    );
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["stored"], 1);
    assert_eq!(json["skipped"], 3);
    assert!(!legacy.exists(), "renamed");
    let state = state_file(&maildir);
    assert!(
        state
            .to_str()
            .unwrap()
            .contains(&format!("@127.0.0.1-{}.", server.port())),
        "{}",
        state.display()
    );
    assert_eq!(stored_uids(&state), uids);
}

#[test]
fn the_total_of_list_sizes_saturates() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let (r, t) = fetch(
        true,
        r"
        C: LIST
        S-RAW: +OK\r\n1 18446744073709551615\r\n2 18446744073709551615\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n1 a\r\n2 b\r\n.\r\n
        C: RETR 1
        S-RAW: +OK\r\nm1\r\n.\r\n
        C: RETR 2
        S-RAW: +OK\r\nm2\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        &maildir,
        &[],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(count_files(&maildir.join("new")), 2);
}

/// `pop3 ARGS...` run by `sh` after `prelude` (ulimit and trap settings, inherited).
fn run_limited(prelude: &str, args: &[String]) -> Run {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_pop3"))
        .args(args)
        .env_remove("XDG_CONFIG_HOME")
        .env("POP3_TEST_PASSWORD", "secret-a")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_partial_file_is_removed_when_its_final_flush_fails() {
    // RLIMIT_FSIZE of 2048 bytes (4 blocks of 512), SIGXFSZ ignored: writing the 6000-byte
    // message (buffered whole, written by the final flush) fails with EFBIG.
    let big = vec![sample_mail(1, 6000, 54).remove(0)];
    let server = MailboxServer::start(big).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let mut args = plain_args(server.port());
    args.extend(["fetch", "--maildir", maildir.to_str().unwrap(), "-q"].map(str::to_owned));
    let r = run_limited("trap '' XFSZ; ulimit -f 4", &args);
    r.expect_code(3);
    assert!(r.stderr.contains("tmp/"), "{}", r.stderr);
    assert_eq!(count_files(&maildir.join("tmp")), 0, "partial file left");
    assert_eq!(count_files(&maildir.join("new")), 0);
    assert!(stored_uids(&state_file(&maildir)).is_empty());
}

#[test]
fn fetch_respects_a_low_open_file_limit_whatever_the_batch() {
    let mail = sample_mail(120, 300, 55);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Soft and hard limit 48: --batch 512 is capped.
    let maildir = dir.path().join("Mail");
    let mut args = plain_args(server.port());
    args.extend(
        [
            "-vv",
            "fetch",
            "--maildir",
            maildir.to_str().unwrap(),
            "--batch",
            "512",
            "-q",
        ]
        .map(str::to_owned),
    );
    let r = run_limited("ulimit -n 48", &args);
    r.expect_code(0);
    assert!(r.stderr.contains("--batch 512 capped"), "{}", r.stderr);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));

    // A low soft limit under a higher hard one is raised (no cap needed for 120 messages).
    let maildir = dir.path().join("Mail2");
    args.iter_mut()
        .filter(|a| a.ends_with("/Mail"))
        .for_each(|a| *a = maildir.to_str().unwrap().to_owned());
    let r = run_limited("ulimit -Sn 48; ulimit -Hn 4096", &args);
    r.expect_code(0);
    assert!(
        r.stderr
            .contains("raised the open-file limit from 48 to 4096"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("capped"), "{}", r.stderr);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
}
