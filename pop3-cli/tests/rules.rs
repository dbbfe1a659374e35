//! `pop3 fetch`'s retention and size rules end to end: byte-exact transcripts against the
//! kit's ScriptedServer (what is sent, and above all what is not: no RETR or DELE in a dry
//! run, no DELE of a message a rule does not delete), and MailboxServer for whole runs.
//! `keep` cannot run on a fake clock in a binary: its tests write state files whose
//! first-seen times lie in the past, the way a file written days ago would.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
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

/// USER/PASS login; the CAPA lists UIDL and TOP, not PIPELINING (one command at a time, so
/// the transcript's order is the client's order).
const LOGIN: &str = "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\nUIDL\\r\\nTOP\\r\\n.\\r\\n\n\
     C: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK logged in\nC: CAPA\n\
     S-RAW: +OK\\r\\nUIDL\\r\\nTOP\\r\\n.\\r\\n\n";

/// `pop3 fetch --maildir DIR/Mail --state DIR/state ARGS...` against a scripted server that
/// plays `script` after the login; also returns the commands sent after the login.
fn scripted(script: &str, dir: &Path, args: &[&str]) -> (Run, Transcript, Vec<String>) {
    let script = Script::parse(&format!("{LOGIN}{script}")).unwrap();
    let server = ScriptedServer::start(script).unwrap();
    let mut global = plain_args(server.port());
    global.extend(["--auth".to_owned(), "user".to_owned()]);
    let maildir = dir.join("Mail");
    let state = dir.join("state");
    let r = run_with(
        &global,
        &[
            &[
                "fetch",
                "--maildir",
                maildir.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
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

/// The state file's lines.
fn state_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(state_path(dir))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The first-seen time of `uid` in a v3 state file.
fn first_seen(dir: &Path, uid: &str) -> Option<u64> {
    state_lines(dir).iter().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["S", t, _, u] | ["T" | "M", t, u] if *u == uid => t.parse().ok(),
            _ => None,
        }
    })
}

const LIST_5: &str = "C: LIST\nS-RAW: +OK\\r\\n1 100\\r\\n2 5000\\r\\n3 20000\\r\\n4 100\\r\\n5 100\\r\\n.\\r\\n\n\
     C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n3 c\\r\\n4 d\\r\\n5 e\\r\\n.\\r\\n\n";

#[test]
fn dry_run_sends_no_retr_or_dele_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        &format!("{LIST_5}C: QUIT\nS: +OK bye\n"),
        dir.path(),
        &[
            "--dry-run",
            "--delete",
            "--skip-larger-than",
            "1000",
            "--delete-larger-than",
            "10k",
            "--max-messages",
            "1",
        ],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "QUIT"]);
    assert_eq!(
        r.stdout_str(),
        "message 1 (UID a, 100 octets): fetch\n\
         message 2 (UID b, 5000 octets): skip (larger than skip-larger-than 1000)\n\
         message 3 (UID c, 20000 octets): delete unread (larger than delete-larger-than 10240)\n\
         message 4 (UID d, 100 octets): skip (session cap reached)\n\
         message 5 (UID e, 100 octets): skip (session cap reached)\n\
         dry run: 1 to fetch, 1 to delete (1 unread), 0 to mark seen, 0 already stored, 3 to leave; nothing was changed\n"
    );
    assert!(!dir.path().join("Mail").exists(), "no Maildir created");
    assert!(!state_path(dir.path()).exists(), "no state written");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing at all"
    );
}

#[test]
fn dry_run_with_a_filter_sends_top_only_and_leaves_the_state_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let old = now() - 30 * DAY;
    let before = format!("pop3-cli fetch state v3\nS {old} 100 a\n");
    std::fs::write(state_path(dir.path()), &before).unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 100\\r\\n2 100\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n.\\r\\n\n\
         C: TOP 2 0\nS-RAW: +OK\\r\\nSubject: spam\\r\\n\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &[
            "--dry-run",
            "--keep",
            "7d",
            "--filter",
            "grep -q spam && exit 1; exit 0",
        ],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "TOP 2 0", "QUIT"]);
    let out = r.stdout_str();
    assert!(
        out.contains("message 1 (UID a, 100 octets): delete (kept since"),
        "{out}"
    );
    assert!(
        out.contains("message 2 (UID b, 100 octets): delete unread (filter: exit 1)"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(state_path(dir.path())).unwrap(),
        before
    );
    assert!(
        !dir.path().join("state.lock").exists(),
        "not even a lock file"
    );
}

#[test]
fn size_rules_and_the_message_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        &format!(
            "{LIST_5}C: DELE 3\nS: +OK\n\
             C: RETR 1\nS-RAW: +OK\\r\\nfirst\\r\\n.\\r\\n\n\
             C: RETR 4\nS-RAW: +OK\\r\\nfourth\\r\\n.\\r\\n\n\
             C: QUIT\nS: +OK bye\n"
        ),
        dir.path(),
        &[
            "--skip-larger-than",
            "1000",
            "--delete-larger-than",
            "10000",
            "--max-messages",
            "2",
        ],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(
        commands,
        ["LIST", "UIDL", "DELE 3", "RETR 1", "RETR 4", "QUIT"]
    );
    // The unread deletion is reported, whatever the verbosity.
    assert!(
        r.stderr.contains(
            "message 3 (UID c, 20000 octets): delete unread (larger than delete-larger-than 10000)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout_str().contains("stored 2 of 5"),
        "{}",
        r.stdout_str()
    );
    assert!(
        r.stdout_str().contains("2 left on the server by a rule"),
        "{}",
        r.stdout_str()
    );
    let contents = maildir_contents(&dir.path().join("Mail"));
    assert!(contents.contains_key(&b"first\n"[..]) && contents.contains_key(&b"fourth\n"[..]));
    // a and d stored; b and e seen (fetched later, or never for b); c deleted: forgotten.
    let lines = state_lines(dir.path());
    let tags: Vec<String> = lines
        .iter()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {}", f[0], f[f.len() - 1])
        })
        .collect();
    assert_eq!(tags, ["S a", "T b", "S d", "T e"], "{lines:?}");
    assert_eq!(lines[0], "pop3-cli fetch state v3");

    // Next session: e (within the cap now), b still too large; c is gone from the server.
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 100\\r\\n2 5000\\r\\n3 100\\r\\n4 100\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n3 d\\r\\n4 e\\r\\n.\\r\\n\n\
         C: RETR 4\nS-RAW: +OK\\r\\nfifth\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--skip-larger-than", "1000", "--max-messages", "2"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "RETR 4", "QUIT"]);
}

#[test]
fn the_byte_cap_never_passes_a_message_over_for_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 60\\r\\n2 500\\r\\n3 50\\r\\n4 1\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n3 c\\r\\n4 d\\r\\n.\\r\\n\n\
         C: RETR 1\nS-RAW: +OK\\r\\none\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--max-bytes", "100"],
    );
    r.expect_code(0);
    t.assert_complete();
    // b can never fit (skipped), c would pass the cap: c and d wait, in order.
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "QUIT"]);
}

#[test]
fn the_filter_decides_and_a_broken_filter_never_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let filter = "h=$(cat); case \"$h\" in *'Subject: spam'*) exit 1;; *'Subject: later'*) exit 2;; \
                  *'Subject: crash'*) kill -9 $$;; *'Subject: odd'*) exit 7;; *'Subject: slow'*) sleep 30;; esac; \
                  [ \"$POP3_FILTER_UID\" = e ] && [ \"$POP3_FILTER_SIZE\" = 100 ] && [ \"$POP3_FILTER_USER\" = alice ]";
    let tops: String = ["spam", "later", "crash", "odd", "ham", "slow"]
        .iter()
        .zip(1..)
        .map(|(subject, n)| {
            format!("C: TOP {n} 0\nS-RAW: +OK\\r\\nFrom: x@y\\r\\nSubject: {subject}\\r\\n\\r\\n.\\r\\n\n")
        })
        .collect();
    let (r, t, commands) = scripted(
        &format!(
            "C: LIST\nS-RAW: +OK\\r\\n1 100\\r\\n2 100\\r\\n3 100\\r\\n4 100\\r\\n5 100\\r\\n6 100\\r\\n.\\r\\n\n\
             C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n3 c\\r\\n4 d\\r\\n5 e\\r\\n6 f\\r\\n.\\r\\n\n\
             {tops}C: DELE 1\nS: +OK\n\
             C: RETR 5\nS-RAW: +OK\\r\\nham\\r\\n.\\r\\n\n\
             C: QUIT\nS: +OK bye\n"
        ),
        dir.path(),
        &["--filter", filter, "--filter-timeout", "1"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(
        commands,
        [
            "LIST", "UIDL", "TOP 1 0", "TOP 2 0", "TOP 3 0", "TOP 4 0", "TOP 5 0", "TOP 6 0",
            "DELE 1", "RETR 5", "QUIT"
        ]
    );
    for line in [
        "message 1 (UID a, 100 octets): delete unread (filter: exit 1)",
        "message 3 (UID c, 100 octets): skip (filter failed: killed by signal 9)",
        "message 4 (UID d, 100 octets): skip (filter failed: exit status 7)",
        "message 6 (UID f, 100 octets): skip (filter failed: timed out after 1s)",
    ] {
        assert!(r.stderr.contains(line), "{line:?} not in {}", r.stderr);
    }
    assert!(
        !r.stderr.contains("message 2"),
        "exit 2 is quiet: {}",
        r.stderr
    );
}

#[test]
fn keep_deletes_only_stored_messages_first_seen_long_ago_with_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let (old, young) = (now() - 8 * DAY, now() - DAY);
    std::fs::write(
        state_path(dir.path()),
        format!(
            "pop3-cli fetch state v3\nS {old} 10 old\nS {young} 10 young\nS {old} 10 resized\n\
             T {old} seen-not-stored\nM {old} marked\n"
        ),
    )
    .unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n2 10\\r\\n3 12\\r\\n4 10\\r\\n5 10\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 old\\r\\n2 young\\r\\n3 resized\\r\\n4 seen-not-stored\\r\\n5 marked\\r\\n.\\r\\n\n\
         C: DELE 1\nS: +OK\n\
         C: RETR 4\nS-RAW: +OK\\r\\nfourth\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--keep", "7d"],
    );
    r.expect_code(0);
    t.assert_complete();
    // Only "old": "young" is not due, "resized" is listed with another size (maybe another
    // message under a reused UID), the one seen long ago but never stored is fetched (not
    // deleted), the marked one is left alone.
    assert_eq!(commands, ["LIST", "UIDL", "DELE 1", "RETR 4", "QUIT"]);
    assert!(
        r.stderr
            .contains("message 3 (UID resized, 12 octets): leave (stored with 10 octets"),
        "{}",
        r.stderr
    );
    assert_eq!(
        first_seen(dir.path(), "old"),
        None,
        "forgotten once QUIT committed it"
    );
    assert_eq!(first_seen(dir.path(), "young"), Some(young));
    // Stored now, its days counted from when it was first seen.
    assert_eq!(first_seen(dir.path(), "seen-not-stored"), Some(old));
    assert!(state_lines(dir.path()).contains(&format!("S {old} 10 seen-not-stored")));
    assert_eq!(first_seen(dir.path(), "marked"), Some(old));

    // And a message first seen long ago but stored now is deleted by the next run.
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 seen-not-stored\\r\\n.\\r\\n\n\
         C: DELE 1\nS: +OK\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--keep", "7d"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "DELE 1", "QUIT"]);
}

#[test]
fn keep_never_deletes_on_a_uid_whose_deletion_was_not_committed() {
    // "a" was being deleted when the last run ended (a D line): the message now listed under
    // "a" may be a new one reusing the UID. keep must not count its days from the old one's:
    // it is fetched (compared with the Maildir) and its first-seen time starts now.
    let dir = tempfile::tempdir().unwrap();
    let old = now() - 30 * DAY;
    std::fs::write(
        state_path(dir.path()),
        format!("pop3-cli fetch state v3\nS {old} 10 a\nD a\n"),
    )
    .unwrap();
    let start = now();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n.\\r\\n\n\
         C: RETR 1\nS-RAW: +OK\\r\\nnew one\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--keep", "7d"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "RETR 1", "QUIT"], "no DELE");
    let seen = first_seen(dir.path(), "a").unwrap();
    assert!(
        seen >= start,
        "first seen {seen}, the run started at {start}"
    );
    assert_eq!(
        state_lines(dir.path()),
        [
            "pop3-cli fetch state v3".to_owned(),
            format!("S {seen} 10 a")
        ]
    );
}

#[test]
fn a_v2_state_is_migrated_with_first_seen_now() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(state_path(dir.path()), "pop3-cli fetch state v2\nS a\n").unwrap();
    let start = now();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--keep", "1d"],
    );
    r.expect_code(0);
    t.assert_complete();
    // Never deleted sooner than keep after the upgrade; its size recorded from this listing.
    assert_eq!(commands, ["LIST", "UIDL", "QUIT"]);
    let seen = first_seen(dir.path(), "a").unwrap();
    assert!(seen >= start && seen <= now(), "{seen}");
    assert_eq!(state_lines(dir.path())[1], format!("S {seen} 10 a"));
}

#[test]
fn only_new_marks_the_mail_already_there_and_fetches_what_comes_later() {
    let server = MailboxServer::start(sample_mail(3, 500, 5)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());
    let r = run_with(&args, &["--json", "fetch", "--maildir", md, "--only-new"]);
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 0);
    assert_eq!(r.json()["marked_seen"], 3);
    assert_eq!(count_files(&maildir.join("new")), 0);
    let later = sample_mail(1, 700, 99).remove(0);
    server.push_message(&later);
    // The same flag on later runs does not mark the new message: only the first use does.
    let r = run_with(
        &args,
        &["--json", "fetch", "--maildir", md, "--only-new", "--delete"],
    );
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 1);
    assert_eq!(
        r.json()["deleted"],
        1,
        "--delete deletes what was stored, not the marked ones"
    );
    assert_eq!(server.uids().len(), 3);
    let contents = maildir_contents(&maildir);
    assert_eq!(contents.keys().collect::<Vec<_>>(), [&lf(&later)]);
}

#[test]
fn only_new_on_an_empty_mailbox_still_records_the_first_use() {
    let server = MailboxServer::start(Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Mail");
    let args = plain_args(server.port());
    run_with(
        &args,
        &[
            "fetch",
            "-q",
            "--maildir",
            md.to_str().unwrap(),
            "--only-new",
        ],
    )
    .expect_code(0);
    server.push_message(&sample_mail(1, 300, 7)[0]);
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--maildir",
            md.to_str().unwrap(),
            "--only-new",
        ],
    );
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 1);
}

#[test]
fn keep_against_a_mailbox_server_deletes_what_is_due() {
    let mail = sample_mail(3, 400, 21);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let state = dir.path().join("state");
    let st = state.to_str().unwrap();
    let args = plain_args(server.port());
    run_with(
        &args,
        &[
            "fetch",
            "-q",
            "--maildir",
            md,
            "--state",
            st,
            "--keep",
            "7d",
        ],
    )
    .expect_code(0);
    assert_eq!(server.uids().len(), 3, "nothing due yet");
    // Ten days pass for the first message: its first-seen time moves back.
    let uids = server.uids();
    let text = std::fs::read_to_string(&state).unwrap();
    let old = now() - 10 * DAY;
    let aged: String = text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() == 4 && f[0] == "S" && f[3] == uids[0] {
                format!("S {old} {} {}\n", f[2], f[3])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(aged, text);
    std::fs::write(&state, aged).unwrap();
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--maildir",
            md,
            "--state",
            st,
            "--keep",
            "7d",
        ],
    );
    r.expect_code(0);
    assert_eq!(r.json()["deleted"], 1);
    assert_eq!(r.json()["expired"], 1);
    assert_eq!(server.uids(), uids[1..]);
    assert_eq!(count_files(&maildir.join("new")), 3, "the Maildir keeps it");
}

#[test]
fn the_rules_come_from_the_account_too() {
    let mail = vec![
        sample_mail(1, 200, 1).remove(0),
        sample_mail(1, 3000, 2).remove(0),
        sample_mail(1, 20_000, 3).remove(0),
        sample_mail(1, 200, 4).remove(0),
    ];
    let server = MailboxServer::start(mail).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.t]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow-plaintext-auth = true\n\
             user = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\nmaildir = \"{}\"\n\
             skip-larger-than = \"2k\"\ndelete-larger-than = 10000\nmax-messages = 1\nkeep = \"7d\"\n\
             filter = \"exit 0\"\nfilter-timeout = 5\n",
            server.port(),
            dir.path().join("Mail").display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let r = run(&[
        "--config",
        c,
        "--account",
        "t",
        "--json",
        "fetch",
        "--dry-run",
    ]);
    r.expect_code(0);
    let json = r.json();
    let actions: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["fetch", "skip", "delete-unread", "skip"]);
    // The flag wins over the key.
    let r = run(&[
        "--config",
        c,
        "--account",
        "t",
        "--json",
        "fetch",
        "--dry-run",
        "--max-messages",
        "5",
        "--skip-larger-than",
        "1M",
    ]);
    let json = r.json();
    let actions: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["fetch", "fetch", "delete-unread", "fetch"]);
    // keep with --delete contradicts itself; a bad key is a usage error.
    run(&[
        "--config",
        c,
        "--account",
        "t",
        "fetch",
        "--delete",
        "--dry-run",
    ])
    .expect_code(2);
    std::fs::write(&config, "[accounts.t]\nhost = \"x\"\nkeep = \"soon\"\n").unwrap();
    run(&[
        "--config",
        c,
        "--account",
        "t",
        "--user",
        "u",
        "fetch",
        "--maildir",
        "/tmp/x",
        "--dry-run",
    ])
    .expect_code(2);
}

#[test]
fn only_new_downloads_nothing_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n2 20\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n2 b\\r\\n.\\r\\n\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--only-new", "--filter", "exit 1", "--delete"],
    );
    r.expect_code(0);
    t.assert_complete();
    // No RETR, no TOP (the filter is not asked about marked messages), no DELE.
    assert_eq!(commands, ["LIST", "UIDL", "QUIT"]);
    let lines = state_lines(dir.path());
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[1].starts_with("M ") && lines[1].ends_with(" a"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("M ") && lines[2].ends_with(" b"),
        "{lines:?}"
    );
}

#[test]
fn poll_follows_each_accounts_rules() {
    let small = sample_mail(1, 300, 31).remove(0);
    let large = sample_mail(1, 30_000, 32).remove(0);
    let server = MailboxServer::start(vec![small.clone(), large]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let config = dir.path().join("config.toml");
    let account = |extra: &str| {
        format!(
            "[accounts.t]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow-plaintext-auth = true\n\
             user = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\nmaildir = \"{}\"\n{extra}",
            server.port(),
            maildir.display()
        )
    };
    std::fs::write(&config, account("skip-larger-than = \"10k\"\n")).unwrap();
    let c = config.to_str().unwrap();
    run(&["--config", c, "poll", "--once"]).expect_code(0);
    assert_eq!(
        maildir_contents(&maildir).keys().collect::<Vec<_>>(),
        [&lf(&small)]
    );
    assert_eq!(server.uids().len(), 2, "nothing deleted");
    // An unread deletion is in the poll's log line.
    std::fs::write(&config, account("delete-larger-than = \"10k\"\n")).unwrap();
    let r = run(&["--config", c, "poll", "--once", "--log-format", "json"]);
    r.expect_code(0);
    let line: serde_json::Value = r
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["event"] == "poll")
        .unwrap();
    assert_eq!(line["deleted_unread"], 1, "{line}");
    let notice = line["notices"][0].as_str().unwrap();
    assert!(
        notice.contains("delete unread (larger than delete-larger-than 10240)"),
        "{notice}"
    );
    assert_eq!(server.uids().len(), 1);
    // keep with delete contradicts itself: a usage error for that account.
    std::fs::write(&config, account("keep = \"7d\"\ndelete = true\n")).unwrap();
    run(&["--config", c, "poll", "--once"]).expect_code(2);
}

#[test]
fn dry_run_refuses_a_uidl_refusal_as_fetch_does() {
    // The CAPA announces UIDL: a -ERR to it is a failure for a dry run too (fetch would stop
    // there), not a listing without UIDs.
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS: -ERR [SYS/TEMP] try later\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--dry-run", "--delete"],
    );
    r.expect_code(1);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "QUIT"]);
    assert!(
        r.stderr
            .contains("UIDL refused (the server announces UIDL)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_refused_top_leaves_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t, commands) = scripted(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS-RAW: +OK\\r\\n1 a\\r\\n.\\r\\n\n\
         C: TOP 1 0\nS: -ERR no such command\n\
         C: QUIT\nS: +OK bye\n",
        dir.path(),
        &["--filter", "exit 1"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(commands, ["LIST", "UIDL", "TOP 1 0", "QUIT"], "no DELE");
    assert!(
        r.stderr
            .contains("message 1 (UID a, 10 octets): skip (filter failed: TOP refused"),
        "{}",
        r.stderr
    );
}

#[test]
fn without_uidl_the_size_rules_work_with_delete_and_keep_is_refused() {
    // No UIDL in CAPA and a -ERR to it: a server that never had UIDL.
    const NO_UIDL: &str = "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\n.\\r\\n\n\
         C: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK logged in\nC: CAPA\n\
         S-RAW: +OK\\r\\nUSER\\r\\n.\\r\\n\n";
    let run_script = |script: &str, args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let server =
            ScriptedServer::start(Script::parse(&format!("{NO_UIDL}{script}")).unwrap()).unwrap();
        let mut global = plain_args(server.port());
        global.extend(["--auth".to_owned(), "user".to_owned()]);
        let md = dir.path().join("Mail");
        let r = run_with(
            &global,
            &[&["fetch", "--maildir", md.to_str().unwrap()][..], args].concat(),
        );
        (r, server.finish().unwrap(), dir)
    };
    let (r, t, dir) = run_script(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n2 50000\\r\\n.\\r\\n\n\
         C: UIDL\nS: -ERR not supported\n\
         C: DELE 2\nS: +OK\n\
         C: RETR 1\nS-RAW: +OK\\r\\nsmall\\r\\n.\\r\\n\n\
         C: DELE 1\nS: +OK\n\
         C: QUIT\nS: +OK bye\n",
        &["--delete", "--delete-larger-than", "1k"],
    );
    r.expect_code(0);
    t.assert_complete();
    assert!(
        r.stderr.contains(
            "message 2 (50000 octets): delete unread (larger than delete-larger-than 1024)"
        ),
        "{}",
        r.stderr
    );
    let contents = maildir_contents(&dir.path().join("Mail"));
    assert_eq!(contents.keys().collect::<Vec<_>>(), [&b"small\n".to_vec()]);
    let (r, t, _) = run_script(
        "C: LIST\nS-RAW: +OK\\r\\n1 10\\r\\n.\\r\\n\n\
         C: UIDL\nS: -ERR not supported\n\
         C: QUIT\nS: +OK bye\n",
        &["--only-new", "--delete"],
    );
    r.expect_code(2);
    t.assert_complete();
    assert!(r.stderr.contains("which only-new needs"), "{}", r.stderr);
}
