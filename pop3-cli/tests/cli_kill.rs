//! `pop3 fetch` killed with SIGKILL at named moments, then resumed: no message is lost, none is
//! stored twice, and with `--delete` exactly what was stored is deleted.
//!
//! Each kill lands exactly where its case says: the debug build of `pop3` stops itself
//! (SIGSTOP) at the N-th time it reaches a phase when `POP3_TEST_PAUSE_AT=PHASE:N` is set (see
//! `src/test_hook.rs`). While it is stopped, the test reads the Maildir, the state file and
//! the server, checks that they show the window the phase names (for `renamed`: the batch in
//! `new/`, reserved, not yet recorded), then kills it. A case whose run never reaches its
//! phase fails.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use pop3_demo_server::MailboxServer;

/// What the test knows about the mail: each message's stored form and its UID.
struct Mail {
    mail: Vec<Vec<u8>>,
    uid_of: HashMap<Vec<u8>, String>,
}

impl Mail {
    fn new(mail: Vec<Vec<u8>>, uids: &[String]) -> Self {
        assert_eq!(mail.len(), uids.len());
        let uid_of = mail
            .iter()
            .zip(uids)
            .map(|(m, uid)| (stored_form(m), uid.clone()))
            .collect();
        Self { mail, uid_of }
    }
}

/// A state file, parsed strictly.
#[derive(Debug, Default)]
struct StateText {
    stored: BTreeSet<String>,
    deleting: BTreeSet<String>,
    /// (name, UID), in file order.
    pending: Vec<(String, String)>,
}

impl StateText {
    fn pending_names(&self) -> HashSet<&str> {
        self.pending.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The state file of a Maildir, if there is one.
fn find_state(maildir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(maildir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(".pop3-state.") && !name.ends_with(".lock") && !name.ends_with(".tmp")
        })
}

fn parse_state(path: &Path) -> StateText {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("pop3-cli fetch state v3"), "{text}");
    assert!(
        text.ends_with('\n'),
        "a state file is written whole: {text:?}"
    );
    let mut state = StateText::default();
    for line in lines {
        match line.split_once(' ') {
            Some(("S", rest)) => {
                // `S <first-seen> <size|-> <uid>`
                let uid = rest.rsplit(' ').next().unwrap();
                assert_eq!(rest.split(' ').count(), 3, "{line:?}");
                assert!(state.stored.insert(uid.to_owned()), "S {uid} twice");
            }
            // Seen, not (yet) stored: the next run fetches it.
            Some(("T", _)) => {}
            Some(("D", uid)) => assert!(state.deleting.insert(uid.to_owned()), "D {uid} twice"),
            Some(("P", rest)) => {
                let (name, uid) = rest.split_once(' ').unwrap();
                state.pending.push((name.to_owned(), uid.to_owned()));
            }
            _ => panic!("unexpected state line {line:?}"),
        }
    }
    state
}

/// Everything a kill can leave, read while `pop3` is stopped (or after it was killed).
struct Snapshot {
    /// new/ names with their contents.
    new: BTreeMap<String, Vec<u8>>,
    /// tmp/ names with their sizes.
    tmp: BTreeMap<String, u64>,
    state: Option<StateText>,
    /// The UIDs the server still has (deletions committed by QUIT are gone).
    server_uids: HashSet<String>,
    logins: usize,
}

/// Names and UIDs, not contents.
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("new", &self.new.keys().collect::<Vec<_>>())
            .field("tmp", &self.tmp)
            .field("state", &self.state)
            .field("server_uids", &self.server_uids.len())
            .field("logins", &self.logins)
            .finish()
    }
}

fn snapshot(maildir: &Path, server: &MailboxServer) -> Snapshot {
    let read = |sub: &str| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(maildir.join(sub)).map_or(Vec::new(), |entries| {
            entries
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name().into_string().unwrap(), e.path())
                })
                .collect()
        })
    };
    Snapshot {
        new: read("new")
            .into_iter()
            .map(|(name, path)| (name, std::fs::read(path).unwrap()))
            .collect(),
        tmp: read("tmp")
            .into_iter()
            .map(|(name, path)| (name, std::fs::metadata(path).unwrap().len()))
            .collect(),
        state: find_state(maildir).map(|p| parse_state(&p)),
        server_uids: server.uids().into_iter().collect(),
        logins: server.logins(),
    }
}

/// What must hold at every moment, whenever the process dies:
/// - no content twice in the Maildir;
/// - a state file exists as soon as the Maildir holds any file in new/ or tmp/;
/// - every UID recorded as stored has its message in new/, and every UID marked deleting is
///   recorded as stored;
/// - every file in new/ is recorded, or reserved (a kill between the rename and the state
///   write), or its message is gone from the server (deletion committed, UID forgotten);
/// - every file in tmp/ is reserved, for a UID not recorded (or marked deleting: downloaded
///   again to compare).
fn check_invariants(maildir: &Path, mail: &Mail, snap: &Snapshot) {
    let contents = maildir_contents(maildir);
    for (content, count) in &contents {
        assert_eq!(
            *count,
            1,
            "stored twice: {}",
            String::from_utf8_lossy(&content[..content.len().min(80)])
        );
    }
    let Some(state) = &snap.state else {
        assert!(
            snap.new.is_empty() && snap.tmp.is_empty(),
            "files in the Maildir but no state file: {snap:?}"
        );
        return;
    };
    let in_new: HashMap<&str, &str> = snap
        .new
        .iter()
        .map(|(name, content)| {
            let uid = mail
                .uid_of
                .get(content)
                .unwrap_or_else(|| panic!("new/{name} holds no message of the server"));
            (uid.as_str(), name.as_str())
        })
        .collect();
    for uid in &state.stored {
        assert!(
            in_new.contains_key(uid.as_str()),
            "{uid} is recorded but not in new/"
        );
    }
    for uid in &state.deleting {
        assert!(state.stored.contains(uid), "D {uid} without S {uid}");
    }
    let reserved = state.pending_names();
    for (uid, name) in &in_new {
        assert!(
            state.stored.contains(*uid)
                || reserved.contains(name)
                || !snap.server_uids.contains(*uid),
            "new/{name} ({uid}) is neither recorded nor reserved, and the server still has it"
        );
    }
    for name in snap.tmp.keys() {
        let Some((_, uid)) = state.pending.iter().find(|(n, _)| n == name) else {
            panic!("tmp/{name} is not reserved in the state");
        };
        assert!(
            !state.stored.contains(uid) || state.deleting.contains(uid),
            "tmp/{name} belongs to {uid}, which is recorded as stored"
        );
    }
}

/// Checks that `snap` shows the window `phase` names. `batch` is the `--batch` size, and
/// `logins` the server's login count before the run started.
fn check_window(phase: &str, snap: &Snapshot, batch: usize, logins: usize) {
    let described = format!("at {phase}: {snap:?}");
    if phase == "prepared" {
        // Before login, with what an interrupted run left resolved: no reservation, nothing
        // in tmp/.
        assert_eq!(snap.logins, logins, "logged in already {described}");
        assert!(snap.tmp.is_empty(), "tmp/ not cleaned up {described}");
        if let Some(state) = &snap.state {
            assert!(state.pending.is_empty(), "reservations left {described}");
        }
        return;
    }
    assert_eq!(snap.logins, logins + 1, "not logged in {described}");
    let state = snap
        .state
        .as_ref()
        .unwrap_or_else(|| panic!("no state file after login {described}"));
    // The batch being committed is the first in the reservations (the state written before
    // it reserved it, then the batch after it).
    let committing = &state.pending[..batch.min(state.pending.len())];
    let unrecorded = |uid: &String| !state.stored.contains(uid) || state.deleting.contains(uid);
    match phase {
        "opened" => {
            // Mid-download: a message's file was just created, nothing of it written yet.
            let empty: Vec<&String> = snap
                .tmp
                .iter()
                .filter(|(_, size)| **size == 0)
                .map(|(name, _)| name)
                .collect();
            assert_eq!(empty.len(), 1, "one file just opened {described}");
        }
        "synced" => {
            // The batch is complete in tmp/, none of it in new/ or recorded.
            assert!(!committing.is_empty(), "no batch {described}");
            for (name, uid) in committing {
                assert!(
                    snap.tmp.get(name).is_some_and(|size| *size > 0),
                    "tmp/{name} missing or empty {described}"
                );
                assert!(!snap.new.contains_key(name), "{name} in new/ {described}");
                assert!(unrecorded(uid), "{uid} recorded {described}");
            }
        }
        "renamed" => {
            // Between the rename and the state write: the batch is in new/ and only its
            // reservation names it.
            assert!(!committing.is_empty(), "no batch {described}");
            for (name, uid) in committing {
                assert!(!snap.tmp.contains_key(name), "{name} in tmp/ {described}");
                if !state.deleting.contains(uid) {
                    assert!(
                        snap.new.contains_key(name),
                        "{name} not in new/ {described}"
                    );
                    assert!(!state.stored.contains(uid), "{uid} recorded {described}");
                }
            }
        }
        "recorded" => {
            // The state was just written: everything in new/ is recorded, nothing reserved
            // is in new/, and the last batch recorded is in new/.
            let reserved = state.pending_names();
            assert!(
                snap.new.keys().all(|n| !reserved.contains(n.as_str())),
                "a reserved name in new/ {described}"
            );
            assert!(!state.stored.is_empty(), "nothing recorded {described}");
        }
        "dele" | "quit" => {
            // The deletion marks are durable, and the server still has those messages (no
            // QUIT yet): the next run must compare them with the Maildir.
            assert!(!state.deleting.is_empty(), "no deletion mark {described}");
            for uid in &state.deleting {
                assert!(
                    snap.server_uids.contains(uid),
                    "{uid} gone before QUIT {described}"
                );
            }
            if phase == "quit" {
                assert!(snap.tmp.is_empty(), "files left in tmp/ {described}");
                assert!(state.pending.is_empty(), "reservations left {described}");
            }
        }
        "requested" => {
            // The RETRs of a batch (and of those ahead) just queued, the commit of the batch
            // before possibly half-way (the whole process is stopped): nothing of the batches
            // ahead is staged yet, only the batch just read is.
            assert!(!state.pending.is_empty(), "nothing reserved {described}");
        }
        other => panic!("unknown phase {other}"),
    }
}

/// Runs `pop3 fetch` until it stops at the `n`-th `phase`, checks the window and the
/// invariants while it is stopped, then kills it. Returns the snapshot.
fn fetch_paused_and_killed(
    args: &[String],
    maildir: &Path,
    extra: &[&str],
    (phase, n): (&str, u64),
    batch: usize,
    server: &MailboxServer,
    mail: &Mail,
) -> Snapshot {
    let logins = server.logins();
    let mut child = pop3()
        .args(args)
        .args(["fetch", "--maildir", maildir.to_str().unwrap(), "-q"])
        .args(extra)
        .env("POP3_TEST_PAUSE_AT", format!("{phase}:{n}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    if line != format!("pop3-test-hook: paused at {phase} {n}\n") {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        let status = child.wait().unwrap();
        panic!("the run did not stop at {phase} {n} ({status:?}): {line}{rest}");
    }
    // The announcement comes just before the SIGSTOP: wait for the stop itself.
    let pid = rustix::process::Pid::from_child(&child);
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::UNTRACED)
        .unwrap()
        .unwrap();
    assert!(status.stopped(), "{status:?}");
    let snap = snapshot(maildir, server);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed: {status:?}");
    check_window(phase, &snap, batch, logins);
    check_invariants(maildir, mail, &snap);
    // After the kill, nothing changed but that the process is gone.
    check_invariants(maildir, mail, &snapshot(maildir, server));
    snap
}

/// The UIDs a snapshot at `renamed` shows delivered but not recorded.
fn delivered_unrecorded(snap: &Snapshot) -> Vec<String> {
    let Some(state) = &snap.state else {
        return Vec::new();
    };
    state
        .pending
        .iter()
        .filter(|(name, uid)| snap.new.contains_key(name) && !state.stored.contains(uid))
        .map(|(_, uid)| uid.clone())
        .collect()
}

const BATCH: usize = 7;

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn killed_fetch_resumes_without_loss_or_duplicates() {
    let mail = sample_mail(300, 1500, 31);
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(1))
        .start()
        .unwrap();
    let uids = server.uids();
    let kit = Mail::new(mail, &uids);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let batch = BATCH.to_string();
    let extra = ["--batch", batch.as_str()];
    let cases = [
        ("prepared", 1),
        ("opened", 1),
        ("opened", 5),
        ("synced", 1),
        ("renamed", 1),
        ("prepared", 1),
        ("recorded", 1),
        ("renamed", 3),
        ("opened", 20),
        ("synced", 2),
        ("renamed", 2),
        ("recorded", 4),
        // With the server pipelining, the RETRs of the batches ahead are on the wire while
        // the batch before is committed.
        ("requested", 3),
        ("requested", 6),
        ("renamed", 1),
    ];
    let mut to_recover: Vec<String> = Vec::new();
    let mut windows = 0;
    for case in cases {
        let snap = fetch_paused_and_killed(&args, &maildir, &extra, case, BATCH, &server, &kit);
        // What the last kill left delivered but unrecorded was recovered (recorded) before
        // anything else.
        if let Some(state) = &snap.state {
            for uid in &to_recover {
                assert!(
                    state.stored.contains(uid),
                    "{uid} not recovered at {case:?}"
                );
            }
        }
        to_recover = delivered_unrecorded(&snap);
        if case.0 == "renamed" {
            assert_eq!(to_recover.len(), BATCH, "a whole batch in the window");
            windows += 1;
        }
    }
    assert_eq!(windows, 4);

    let r = run_with(
        &args,
        &["--json", "fetch", "--maildir", maildir.to_str().unwrap()],
    );
    r.expect_code(0);
    assert_eq!(r.json()["recovered"], BATCH, "{}", r.stdout_str());
    assert_eq!(maildir_contents(&maildir), expected_contents(&kit.mail));
    assert_eq!(
        count_files(&maildir.join("tmp")),
        0,
        "partial files are cleaned up"
    );
    let mut recorded = stored_uids(&state_file(&maildir));
    recorded.sort();
    let mut all = uids.clone();
    all.sort();
    assert_eq!(recorded, all);
    // Nothing was deleted on the server.
    assert_eq!(server.messages().len(), kit.mail.len());
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn killed_fetch_with_delete_deletes_exactly_what_was_stored() {
    const BATCH: usize = 6;
    let mail = sample_mail(200, 1200, 32);
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(1))
        .start()
        .unwrap();
    let uids = server.uids();
    let kit = Mail::new(mail, &uids);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let expected = expected_contents(&kit.mail);
    let batch = BATCH.to_string();
    let extra = ["--batch", batch.as_str(), "--delete"];
    let cases = [
        ("prepared", 1),
        ("synced", 1),
        // The first batch is marked deleting, its DELEs not sent.
        ("dele", 1),
        ("renamed", 2),
        ("dele", 3),
        ("recorded", 2),
        ("opened", 10),
        // Everything stored and marked deleted, QUIT not sent: nothing is deleted.
        ("quit", 1),
    ];
    for case in cases {
        let before = server.uids().len();
        fetch_paused_and_killed(&args, &maildir, &extra, case, BATCH, &server, &kit);
        // No run got as far as an answered QUIT: the server deleted nothing.
        assert_eq!(
            server.uids().len(),
            before,
            "deleted without QUIT at {case:?}"
        );
        // Whatever the server no longer has is in the Maildir.
        let left: BTreeMap<Vec<u8>, usize> = expected_contents(&server.messages());
        let stored = maildir_contents(&maildir);
        for content in expected.keys() {
            assert!(
                left.contains_key(content) || stored.contains_key(content),
                "a message was deleted on the server without being stored"
            );
        }
    }
    // The kill before QUIT left every message on the server, marked deleting in the state.
    assert_eq!(server.messages().len(), kit.mail.len());
    let state = parse_state(&state_file(&maildir));
    assert_eq!(state.deleting.len(), kit.mail.len(), "{state:?}");

    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--maildir",
            maildir.to_str().unwrap(),
            "--delete",
        ],
    );
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["verified"], kit.mail.len(), "{json}");
    assert_eq!(json["deleted"], kit.mail.len(), "{json}");
    assert!(server.messages().is_empty(), "everything stored is deleted");
    assert_eq!(maildir_contents(&maildir), expected);
    assert_eq!(count_files(&maildir.join("tmp")), 0);
    assert!(stored_uids(&state_file(&maildir)).is_empty());
}

#[test]
fn delivered_but_unrecorded_messages_are_recognised() {
    // A run killed between the rename into new/ and the state write leaves files that only the
    // reservation in the state names. Simulate it exactly: fetch everything, then turn the
    // last batch's stored UIDs back into reservations; a mail reader has meanwhile moved one
    // file to cur/ with flags.
    let mail = sample_mail(12, 800, 33);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let md = maildir.to_str().unwrap();
    let args = plain_args(server.port());
    run_with(&args, &["fetch", "--maildir", md, "-q"]).expect_code(0);

    let state = state_file(&maildir);
    let mut names: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort_by_key(|n| {
        // Q<counter> orders the names as they were reserved.
        n.split('Q')
            .nth(1)
            .and_then(|r| r.split('.').next())
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    let uids = server.uids();
    let mut text = String::from("pop3-cli fetch state v1\n");
    for uid in &uids[..8] {
        text.push_str(&format!("S {uid}\n"));
    }
    for (name, uid) in names[8..].iter().zip(&uids[8..]) {
        text.push_str(&format!("P {name} {uid}\n"));
    }
    // One reservation whose file never made it out of tmp/ (partial).
    std::fs::write(maildir.join("tmp/123.M1P1Q999.host"), b"partial").unwrap();
    text.push_str("P 123.M1P1Q999.host uid-unknown\n");
    std::fs::write(&state, text).unwrap();
    std::fs::rename(
        maildir.join("new").join(&names[9]),
        maildir.join("cur").join(format!("{}:2,S", names[9])),
    )
    .unwrap();

    let r = run_with(&args, &["--json", "fetch", "--maildir", md]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["recovered"], 4);
    assert_eq!(json["stored"], 0);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
    assert!(!maildir.join("tmp/123.M1P1Q999.host").exists());
    assert_eq!(stored_uids(&state).len(), 12);
}
