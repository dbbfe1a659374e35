//! `pop3 fetch` killed with SIGKILL at many moments, then resumed: no message is lost, none is
//! stored twice, and with `--delete` exactly what was stored is deleted.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use pop3_tests::MailboxServer;

/// When to kill a run: after this many files reached new/ (counting from the run's start), or
/// after this long, whichever comes first.
#[derive(Debug, Clone, Copy)]
struct KillAt {
    files: usize,
    after: Duration,
}

const fn at(files: usize, millis: u64) -> KillAt {
    KillAt {
        files,
        after: Duration::from_millis(millis),
    }
}

/// Spawns `pop3 fetch` and kills it at `kill`; returns whether it was killed (false: it
/// finished first, successfully).
fn fetch_and_kill(args: &[String], maildir: &Path, extra: &[&str], kill: KillAt) -> bool {
    let before = count_files(&maildir.join("new"));
    let mut child = pop3()
        .args(args)
        .args(["fetch", "--maildir", maildir.to_str().unwrap(), "-q"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "fetch failed on its own: {status:?}");
            return false;
        }
        let stored = count_files(&maildir.join("new")).saturating_sub(before);
        if stored >= kill.files || started.elapsed() >= kill.after {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            // It may have finished between the check and the kill.
            return !status.success();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// No content twice in the Maildir, and every UID the state records has its message there.
fn check_invariants(maildir: &Path, mail: &[Vec<u8>], uids: &[String]) {
    let contents = maildir_contents(maildir);
    for (content, count) in &contents {
        assert_eq!(
            *count,
            1,
            "stored twice: {}",
            String::from_utf8_lossy(&content[..content.len().min(80)])
        );
    }
    let Ok(state) = std::fs::read_dir(maildir).map(|entries| {
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(".pop3-state.") && !name.ends_with(".lock") && !name.ends_with(".tmp")
        })
    }) else {
        return;
    };
    let Some(state) = state else { return };
    for uid in stored_uids(&state) {
        let index = uids.iter().position(|u| *u == uid).unwrap();
        assert!(
            contents.contains_key(&stored_form(&mail[index])),
            "{uid} is recorded but not in the Maildir"
        );
    }
}

/// Files in new/ and tmp/, and the reserved names that are already in new/ (a kill between
/// the rename and the state write).
fn describe(maildir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(maildir) else {
        return "nothing yet".to_owned();
    };
    let state = entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with(".pop3-state.") && !name.ends_with(".lock") && !name.ends_with(".tmp")
    });
    let reserved_in_new = state.map_or(0, |state| {
        std::fs::read_to_string(state)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("P "))
            .filter(|l| {
                maildir
                    .join("new")
                    .join(l.split(' ').next().unwrap())
                    .exists()
            })
            .count()
    });
    format!(
        "{} in new/, {} in tmp/, {reserved_in_new} delivered but not yet recorded",
        count_files(&maildir.join("new")),
        count_files(&maildir.join("tmp"))
    )
}

fn kill_schedule() -> Vec<KillAt> {
    vec![
        at(usize::MAX, 5),
        at(usize::MAX, 40),
        at(1, 5_000),
        at(7, 5_000),
        at(8, 5_000),
        at(15, 5_000),
        at(usize::MAX, 120),
        at(20, 5_000),
        at(29, 5_000),
        at(3, 5_000),
        at(usize::MAX, 250),
        at(40, 5_000),
    ]
}

#[test]
fn killed_fetch_resumes_without_loss_or_duplicates() {
    let mail = sample_mail(300, 1500, 31);
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(1))
        .start()
        .unwrap();
    let uids = server.uids();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let mut kills = 0;
    for kill in kill_schedule() {
        if fetch_and_kill(&args, &maildir, &["--batch", "7"], kill) {
            kills += 1;
        }
        eprintln!("after {kill:?}: {}", describe(&maildir));
        check_invariants(&maildir, &mail, &uids);
    }
    assert!(kills >= 8, "only {kills} runs were killed");
    assert!(count_files(&maildir.join("new")) > 0);

    let r = run_with(
        &args,
        &["--json", "fetch", "--maildir", maildir.to_str().unwrap()],
    );
    r.expect_code(0);
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail));
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
    assert_eq!(server.messages().len(), mail.len());
}

#[test]
fn killed_fetch_with_delete_deletes_exactly_what_was_stored() {
    let mail = sample_mail(200, 1200, 32);
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(1))
        .start()
        .unwrap();
    let uids = server.uids();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let expected = expected_contents(&mail);
    for kill in kill_schedule() {
        fetch_and_kill(&args, &maildir, &["--batch", "6", "--delete"], kill);
        check_invariants(&maildir, &mail, &uids);
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
    assert!(server.messages().is_empty(), "everything stored is deleted");
    assert_eq!(maildir_contents(&maildir), expected);
    assert_eq!(count_files(&maildir.join("tmp")), 0);
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
