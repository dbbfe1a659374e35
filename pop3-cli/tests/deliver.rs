//! `pop3 fetch` into each delivery target, against the real programs: Python's `mailbox`
//! reading the mbox back, procmail as the MDA, Dovecot's LMTP service (started by
//! `scripts/dovecot/lmtp.sh`, found through `POP3_LMTP_ADDR` and `POP3_LMTP_DIR`), and a
//! small tmpfs mounted by the test for a full disk. Kills land at the targets' pause points
//! (`POP3_TEST_PAUSE_AT`, debug builds), as in `cli_kill.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pop3_demo_server::MailboxServer;

/// Messages whose bodies need mboxrd quoting: lines starting with `From `, `>From `,
/// `>>From `, and ones that only look similar.
fn tricky_mail(count: usize, seed: u64) -> Vec<Vec<u8>> {
    sample_mail(count, 600, seed)
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mut text = String::from_utf8(m).unwrap();
            text.push_str(&format!(
                "From the desk of {i}\r\n>From a quote\r\n>>From deeper\r\nFrom\r\n>From\r\n From indented\r\nFrom:not a separator\r\n"
            ));
            if i % 3 == 0 {
                text = format!("Return-Path: <sender{i}@example.test>\r\n{text}");
            }
            text.into_bytes()
        })
        .collect()
}

/// The messages of an mbox as Python's `mailbox` module reads them, with the mboxrd quoting
/// undone (one `>` off each `>+From ` line): (From_ line, message).
fn read_mbox(path: &Path) -> Vec<(String, Vec<u8>)> {
    let script = r#"
import mailbox, sys, json, re, base64
box = mailbox.mbox(sys.argv[1], create=False)
out = []
for key in box.keys():
    raw = box.get_bytes(key)
    lines = [l[1:] if re.match(rb'^>+From ', l) else l for l in raw.split(b'\n')]
    out.append([box.get_message(key).get_from(), base64.b64encode(b'\n'.join(lines)).decode()])
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<(String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    read.into_iter()
        .map(|(from, b64)| (from, base64_decode(&b64)))
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// A message's Subject line, to name it in failures.
fn subject(message: &[u8]) -> String {
    String::from_utf8_lossy(message)
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or("(no subject)")
        .to_owned()
}

/// Panics, naming the messages by subject, unless `got` and `want` hold the same messages
/// the same number of times.
#[track_caller]
fn assert_same(got: &BTreeMap<Vec<u8>, usize>, want: &BTreeMap<Vec<u8>, usize>, what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<String> = want
        .iter()
        .filter(|(m, n)| got.get(*m) != Some(*n))
        .map(|(m, n)| format!("{} x{n} (got {:?})", subject(m), got.get(m)))
        .collect();
    let extra: Vec<String> = got
        .iter()
        .filter(|(m, _)| !want.contains_key(*m))
        .map(|(m, n)| format!("{} x{n} ({} bytes)", subject(m), m.len()))
        .collect();
    panic!("{what}: missing or miscounted {missing:?}; unexpected {extra:?}");
}

/// The mbox's messages by content, with their counts.
fn mbox_contents(path: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut contents = BTreeMap::new();
    for (_, message) in read_mbox(path) {
        *contents.entry(message).or_insert(0) += 1;
    }
    contents
}

/// Runs `pop3 fetch` until it stops at the `n`-th `phase`, then kills it; `false` if the run
/// ended without reaching it (its exit status is then checked to be 0).
fn paused_and_killed(args: &[String], fetch: &[&str], phase: &str, n: u64) -> bool {
    let mut child = pop3()
        .args(args)
        .arg("fetch")
        .args(fetch)
        .arg("-q")
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
        assert_eq!(status.code(), Some(0), "{phase} {n}: {line}{rest}");
        return false;
    }
    let pid = rustix::process::Pid::from_child(&child);
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::UNTRACED)
        .unwrap()
        .unwrap();
    assert!(status.stopped(), "{status:?}");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed: {status:?}");
    true
}

#[test]
fn mbox_is_mboxrd_that_python_reads_back() {
    let mail = tricky_mail(40, 61);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("inbox.mbox");
    let args = plain_args(server.port());
    let m = mbox.to_str().unwrap();
    let r = run_with(&args, &["--json", "fetch", "--mbox", m, "--batch", "7"]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["stored"], 40, "{json}");
    assert_eq!(json["mbox"], m, "{json}");
    assert_same(
        &mbox_contents(&mbox),
        &expected_contents(&mail),
        "first run",
    );
    // The envelope sender from Return-Path, else MAILER-DAEMON.
    let read = read_mbox(&mbox);
    let with_sender = read
        .iter()
        .filter(|(from, _)| from.starts_with("sender"))
        .count();
    assert_eq!(with_sender, 14);
    assert!(
        read.iter()
            .all(|(from, _)| from.starts_with("sender") || from.starts_with("MAILER-DAEMON "))
    );
    // The quoting on disk is mboxrd: one more '>' than in the message.
    let raw = std::fs::read_to_string(&mbox).unwrap();
    assert!(raw.contains("\n>From the desk of 0\n>>From a quote\n>>>From deeper\nFrom\n>From\n From indented\nFrom:not"));
    // Nothing twice on a second run; no lock or journal left.
    run_with(&args, &["fetch", "--mbox", m, "-q"]).expect_code(0);
    assert_same(
        &mbox_contents(&mbox),
        &expected_contents(&mail),
        "second run",
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.ends_with(".lock") && !n.contains("pop3-state")
                || n.ends_with(".mbox.tmp")
                || n.ends_with("inbox.mbox.mbox")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn killed_mbox_fetch_is_exactly_once() {
    let mail = tricky_mail(60, 62);
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(1))
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("mbox");
    // A mail reader's mbox already holds a message (no final blank line).
    std::fs::write(
        &mbox,
        "From old@example.test Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n",
    )
    .unwrap();
    let args = plain_args(server.port());
    let m = mbox.to_str().unwrap();
    let fetch = ["--mbox", m, "--batch", "5", "--delete"];
    let cases = [
        // Journal written, nothing appended.
        ("journaled", 1),
        // Half an append: the recovery cuts it off.
        ("appending", 1),
        // Appended and synced, not recorded: the recovery records it.
        ("appended", 1),
        ("appending", 2),
        ("recorded", 2),
        ("appended", 2),
        ("dele", 2),
        ("journaled", 3),
    ];
    for (phase, n) in cases {
        let started = Instant::now();
        assert!(
            paused_and_killed(&args, &fetch, phase, n),
            "{phase} {n} not reached"
        );
        eprintln!("killed at {phase} {n} after {:?}", started.elapsed());
        // Whatever the moment, the mbox parses, and holds no message twice.
        let contents = mbox_contents(&mbox);
        for (content, count) in &contents {
            assert_eq!(
                *count,
                1,
                "twice after a kill at {phase} {n}: {}",
                subject(content)
            );
        }
        // Nothing the server deleted is missing.
        let left = expected_contents(&server.messages());
        for content in expected_contents(&mail).keys() {
            assert!(
                left.contains_key(content) || contents.contains_key(content),
                "lost after a kill at {phase} {n}"
            );
        }
    }
    let r = run_with(&args, &["--json", "fetch", "--mbox", m, "--delete"]);
    r.expect_code(0);
    let mut expected = expected_contents(&mail);
    expected.insert(b"Subject: old\n\nold\n".to_vec(), 1);
    assert_same(&mbox_contents(&mbox), &expected, "after the kills");
    assert!(server.messages().is_empty());
    assert!(!dir.path().join("mbox.lock").exists());
}

/// `--dry-run` after a kill between an mbox append and its record: the append the journal
/// names is in the mbox, so those messages are shown as stored (as the next run records
/// them), and the dry run changes nothing (the journal, the mbox and the state stay).
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn a_dry_run_counts_an_intact_mbox_append_as_stored() {
    let mail = sample_mail(12, 600, 65);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("inbox");
    let m = mbox.to_str().unwrap();
    let args = plain_args(server.port());
    assert!(paused_and_killed(
        &args,
        &["--mbox", m, "--batch", "5"],
        "appended",
        1
    ));
    let snapshot = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    assert!(
        before.iter().any(|(name, _)| name.ends_with("inbox.mbox")),
        "no journal: {:?}",
        before.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let r = run_with(&args, &["--json", "fetch", "--mbox", m, "--dry-run"]);
    r.expect_code(0);
    let json = r.json();
    let actions: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    let mut expected = vec!["stored"; 5];
    expected.extend(["fetch"; 7]);
    assert_eq!(actions, expected, "{json}");
    assert!(before == snapshot(), "the dry run changed the directory");
    // The real run agrees: the five are recovered, the seven fetched, nothing twice.
    let r = run_with(&args, &["--json", "fetch", "--mbox", m]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["recovered"], 5, "{json}");
    assert_eq!(json["stored"], 7, "{json}");
    assert_same(&mbox_contents(&mbox), &expected_contents(&mail), "the mbox");
}

#[test]
fn a_locked_mbox_is_waited_for_up_to_the_timeout() {
    let mail = sample_mail(5, 500, 63);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("mbox");
    let m = mbox.to_str().unwrap();
    let args = plain_args(server.port());
    // Python's mailbox takes the same two locks (fcntl and FILE.lock) as mutt and procmail.
    let hold = |seconds: f64| {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import mailbox,sys,time\nb=mailbox.mbox(sys.argv[1])\nb.lock()\nprint('locked',flush=True)\ntime.sleep(float(sys.argv[2]))\nb.unlock()",
                m,
                &seconds.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        child
    };
    // Held past the timeout: the account stops, nothing recorded or deleted.
    let mut holder = hold(4.0);
    let started = Instant::now();
    let r = run_with(
        &args,
        &[
            "fetch",
            "--mbox",
            m,
            "--delete",
            "--deliver-timeout",
            "1",
            "-q",
        ],
    );
    r.expect_code(3);
    assert!(
        r.stderr.contains("locked by another program"),
        "{}",
        r.stderr
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.messages().len(), 5, "nothing deleted");
    holder.wait().unwrap();
    // Released within the timeout: waited for, then delivered.
    let mut holder = hold(1.5);
    let started = Instant::now();
    run_with(
        &args,
        &[
            "fetch",
            "--mbox",
            m,
            "--delete",
            "--deliver-timeout",
            "30",
            "-q",
        ],
    )
    .expect_code(0);
    assert!(started.elapsed() >= Duration::from_secs(1), "did not wait");
    holder.wait().unwrap();
    assert_same(
        &mbox_contents(&mbox),
        &expected_contents(&mail),
        "after the wait",
    );
    assert!(server.messages().is_empty());
}

/// A procmail MDA delivering into `maildir` (its rc file in `dir`).
fn procmail(dir: &Path, maildir: &Path) -> String {
    let rc = dir.join("procmailrc");
    std::fs::write(
        &rc,
        format!(
            "DEFAULT={}/\nLOGFILE={}/procmail.log\n",
            maildir.display(),
            dir.display()
        ),
    )
    .unwrap();
    format!("procmail -f %F -m {}", rc.display())
}

#[test]
fn mda_procmail_delivers_and_failures_stay_on_the_server() {
    let mail = sample_mail(12, 700, 64);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    // An MDA that refuses messages 3 and 7 (exit 75) and times out on message 5.
    let flaky = format!(
        "f={0}/m.$$; cat > $f; \
         if grep -q 'Subject: message 5 of' $f; then sleep 30; fi; \
         if grep -q 'Subject: message [37] of' $f; then echo 'mailbox busy' >&2; exit 75; fi; \
         {1} < $f",
        dir.path().display(),
        procmail(dir.path(), &maildir)
    );
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--mda",
            &flaky,
            "--state",
            s,
            "--delete",
            "--deliver-timeout",
            "2",
        ],
    );
    r.expect_code(3);
    let json = r.json();
    assert_eq!(json["stored"], 9, "{json}");
    assert_eq!(json["deleted"], 9, "{json}");
    let undelivered = json["undelivered"].as_array().unwrap();
    assert_eq!(undelivered.len(), 3, "{json}");
    assert!(
        r.stderr.contains("exited with status 75: mailbox busy"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ran past the timeout"), "{}", r.stderr);
    assert!(
        r.stderr.contains("left on the server for the next run"),
        "{}",
        r.stderr
    );
    // The three stay on the server, unrecorded.
    assert_eq!(server.messages().len(), 3);
    // The next run with a working MDA delivers them; every message once.
    run_with(
        &args,
        &[
            "fetch",
            "--mda",
            &procmail(dir.path(), &maildir),
            "--state",
            s,
            "--delete",
            "-q",
        ],
    )
    .expect_code(0);
    assert!(server.messages().is_empty());
    assert_same(
        &maildir_contents(&maildir),
        &expected_contents(&mail),
        "procmail's Maildir",
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn a_crash_after_an_mda_delivery_costs_at_most_one_duplicate() {
    let mail = sample_mail(10, 600, 65);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let args = plain_args(server.port());
    let state = dir.path().join("state");
    let mda = procmail(dir.path(), &maildir);
    let fetch = [
        "--mda",
        &mda,
        "--state",
        state.to_str().unwrap(),
        "--delete",
    ];
    // Killed after the MDA took message 4, before it was recorded.
    assert!(paused_and_killed(&args, &fetch, "delivered", 4));
    run_with(
        &args,
        &[
            "fetch",
            "--mda",
            &mda,
            "--state",
            state.to_str().unwrap(),
            "--delete",
            "-q",
        ],
    )
    .expect_code(0);
    let contents = maildir_contents(&maildir);
    let expected = expected_contents(&mail);
    let distinct: BTreeMap<Vec<u8>, usize> = contents.keys().map(|k| (k.clone(), 1)).collect();
    assert_same(&distinct, &expected, "nothing lost");
    let extra: usize = contents.values().map(|c| c - 1).sum();
    assert_eq!(extra, 1, "exactly the one in flight twice");
    assert!(server.messages().is_empty());
}

/// The private Dovecot LMTP server of `scripts/dovecot/lmtp.sh`: (TCP address, runtime dir).
fn dovecot_lmtp() -> Option<(String, PathBuf)> {
    match (
        std::env::var("POP3_LMTP_ADDR"),
        std::env::var("POP3_LMTP_DIR"),
    ) {
        (Ok(addr), Ok(dir)) => Some((addr, PathBuf::from(dir))),
        _ => {
            assert_ne!(
                std::env::var("POP3_INTEROP").as_deref(),
                Ok("required"),
                "POP3_INTEROP=required but POP3_LMTP_ADDR/POP3_LMTP_DIR are not set (start scripts/dovecot/lmtp.sh)"
            );
            eprintln!("SKIPPED: no Dovecot LMTP server (set POP3_LMTP_ADDR and POP3_LMTP_DIR)");
            None
        }
    }
}

/// The messages Dovecot stored in alice's folder `folder`.
fn dovecot_folder(dir: &Path, folder: &str) -> BTreeMap<Vec<u8>, usize> {
    let root = dir.join("mail/alice/Maildir").join(format!(".{folder}"));
    let mut contents = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            // Dovecot adds Return-Path and Delivered-To (and Received) at the top: drop
            // them.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let body = text
                .split_once("From: tester")
                .map(|(_, rest)| format!("From: tester{rest}"))
                .unwrap_or(text);
            *contents.entry(body.into_bytes()).or_insert(0) += 1;
        }
    }
    contents
}

fn unique_folder(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{}x{nanos}", std::process::id())
}

#[test]
fn lmtp_dovecot_delivers_over_tcp_and_unix_socket() {
    let Some((addr, lmtp_dir)) = dovecot_lmtp() else {
        return;
    };
    for (via, address) in [
        ("tcp", addr.clone()),
        ("unix", lmtp_dir.join("run/lmtp").display().to_string()),
    ] {
        let mail = sample_mail(15, 900, 66);
        let server = MailboxServer::start(mail.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let args = plain_args(server.port());
        let folder = unique_folder(via);
        let rcpt = format!("alice+{folder}@example.test");
        let state = dir.path().join("state");
        let r = run_with(
            &args,
            &[
                "--json",
                "fetch",
                "--lmtp",
                &address,
                "--lmtp-rcpt",
                &rcpt,
                "--state",
                state.to_str().unwrap(),
                "--delete",
            ],
        );
        r.expect_code(0);
        assert_eq!(r.json()["stored"], 15, "{}", r.stdout_str());
        assert!(server.messages().is_empty());
        assert_same(
            &dovecot_folder(&lmtp_dir, &folder),
            &expected_contents(&mail),
            via,
        );
    }
}

#[test]
fn lmtp_temporary_and_permanent_failures_leave_the_message() {
    let Some((addr, _)) = dovecot_lmtp() else {
        return;
    };
    let mail = sample_mail(3, 900, 67);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = plain_args(server.port());
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    // carol is over quota: Dovecot answers 452 (temporary).
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--lmtp",
            &addr,
            "--lmtp-rcpt",
            "carol@example.test",
            "--state",
            s,
            "--delete",
        ],
    );
    r.expect_code(3);
    assert_eq!(r.json()["stored"], 0);
    assert!(
        r.stderr.contains("(temporary)") && r.stderr.contains("452"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("left on the server for the next run"),
        "{}",
        r.stderr
    );
    assert_eq!(server.messages().len(), 3);
    // No such user: 550 (permanent), reported as such.
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--lmtp",
            &addr,
            "--lmtp-rcpt",
            "nobody@example.test",
            "--state",
            s,
            "--delete",
        ],
    );
    r.expect_code(3);
    assert!(
        r.stderr.contains("permanent delivery failure"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("550"), "{}", r.stderr);
    assert_eq!(server.messages().len(), 3);
    // Then a good recipient takes them all (they were never recorded).
    let folder = unique_folder("retry");
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--lmtp",
            &addr,
            "--lmtp-rcpt",
            &format!("alice+{folder}@x"),
            "--state",
            s,
            "--delete",
        ],
    );
    r.expect_code(0);
    assert_eq!(r.json()["stored"], 3);
    assert!(server.messages().is_empty());
}

/// A tmpfs of `kib` KiB mounted at `dir` (needs root); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount a tmpfs (the full-disk tests run as root)"
        );
        Tmpfs(dir.to_owned())
    }

    fn grow(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_account_and_deletes_nothing_unstored() {
    for target in ["maildir", "mbox"] {
        let mail = sample_mail(80, 8000, 68);
        let server = MailboxServer::start(mail.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let disk = Tmpfs::mount(&dir.path().join("disk"), 256);
        let place = dir.path().join("disk/box");
        let p = place.to_str().unwrap();
        let args = plain_args(server.port());
        let fetch = [
            "fetch",
            &format!("--{target}"),
            p,
            "--delete",
            "--batch",
            "8",
        ];
        let r = run_with(&args, &fetch);
        r.expect_code(3);
        assert!(
            r.stderr.contains("No space left on device"),
            "{target}: {}",
            r.stderr
        );
        let stored = if target == "maildir" {
            maildir_contents(&place)
        } else {
            mbox_contents(&place)
        };
        // Stored at most once, and nothing deleted on the server that is not stored; the
        // rest is left on the server (a message stored but not yet recorded stays there too:
        // the next run recognises it).
        let left = expected_contents(&server.messages());
        assert!(!left.is_empty(), "{target}: the disk was not full");
        for (content, count) in &stored {
            assert_eq!(*count, 1, "{target}: stored twice: {}", subject(content));
        }
        for content in expected_contents(&mail).keys() {
            assert!(
                left.contains_key(content) || stored.contains_key(content),
                "{target}: lost {}",
                subject(content)
            );
        }
        // With room again, the rest arrives; nothing twice.
        disk.grow(4096);
        run_with(&args, &fetch).expect_code(0);
        let stored = if target == "maildir" {
            maildir_contents(&place)
        } else {
            mbox_contents(&place)
        };
        assert_same(&stored, &expected_contents(&mail), target);
        assert!(server.messages().is_empty());
    }
}

/// The retention and size rules over a target other than the Maildir: `--dry-run` touches
/// nothing (no mbox, no state), `delete-larger-than` deletes without handing the message to
/// the MDA, and `keep` deletes only what the MDA took (a message it refused is kept, though
/// first seen as long ago as the others).
#[test]
fn rules_apply_to_every_target() {
    let small = sample_mail(6, 700, 71);
    let big = sample_mail(1, 30_000, 72).remove(0);
    let mut mail = small.clone();
    mail.insert(3, big);
    let server = MailboxServer::start(mail).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = plain_args(server.port());

    let mbox = dir.path().join("inbox.mbox");
    let r = run_with(
        &args,
        &[
            "--json",
            "fetch",
            "--mbox",
            mbox.to_str().unwrap(),
            "--dry-run",
            "--delete-larger-than",
            "10k",
        ],
    );
    r.expect_code(0);
    let json = r.json();
    let actions: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "fetch",
            "fetch",
            "fetch",
            "delete-unread",
            "fetch",
            "fetch",
            "fetch"
        ],
        "{json}"
    );
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "a dry run created {created:?}");
    assert_eq!(server.messages().len(), 7);

    // An MDA (procmail) that logs every Subject it gets and, while `refuse` exists, refuses
    // message 3.
    let maildir = dir.path().join("Mail");
    let log = dir.path().join("subjects.log");
    let refuse = dir.path().join("refuse");
    std::fs::write(&refuse, "").unwrap();
    let mda = format!(
        "f={0}/m.$$; cat > $f; grep -m1 '^Subject:' $f >> {1}; \
         if [ -e {2} ] && grep -q 'Subject: message 3 of seed 71' $f; then exit 75; fi; \
         {3} < $f",
        dir.path().display(),
        log.display(),
        refuse.display(),
        procmail(dir.path(), &maildir)
    );
    let state = dir.path().join("state");
    let fetch = |extra: &[&str]| {
        let mut argv = vec![
            "--json",
            "fetch",
            "--mda",
            &mda,
            "--state",
            state.to_str().unwrap(),
            "--keep",
            "0s",
        ];
        argv.extend_from_slice(extra);
        run_with(&args, &argv)
    };
    let r = fetch(&["--delete-larger-than", "10k"]);
    r.expect_code(3);
    let json = r.json();
    assert_eq!(json["stored"], 5, "{json}");
    assert_eq!(json["deleted_unread"], 1, "{json}");
    assert_eq!(json["deleted"], 1, "{json}");
    assert_eq!(json["undelivered"].as_array().unwrap().len(), 1, "{json}");
    assert!(r.stderr.contains("delete unread"), "{}", r.stderr);
    assert_eq!(server.messages().len(), 6);

    // Every stored message is now past `keep`; message 3, refused, is not stored: kept.
    std::fs::remove_file(&refuse).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r = fetch(&[]);
    r.expect_code(0);
    let json = r.json();
    assert_eq!(json["stored"], 1, "{json}");
    assert_eq!(json["expired"], 5, "{json}");
    assert_eq!(server.messages(), vec![small[2].clone()]);

    std::thread::sleep(Duration::from_millis(1100));
    let r = fetch(&[]);
    r.expect_code(0);
    assert_eq!(r.json()["expired"], 1, "{}", r.json());
    assert!(server.messages().is_empty());
    assert_same(
        &maildir_contents(&maildir),
        &expected_contents(&small),
        "procmail's Maildir",
    );
    let subjects = std::fs::read_to_string(&log).unwrap();
    assert!(!subjects.contains("seed 72"), "{subjects}");
    assert_eq!(subjects.lines().count(), 7, "{subjects}");
}

#[test]
fn exactly_one_target_per_run_and_account() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Two on the command line: clap refuses.
    let r = run_with(
        &plain_args(1),
        &["fetch", "--maildir", d, "--mbox", &format!("{d}/mbox")],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
    // --lmtp needs --lmtp-rcpt, and --lmtp-rcpt needs --lmtp.
    let r = run_with(&plain_args(1), &["fetch", "--lmtp", "127.0.0.1:24"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--lmtp-rcpt"), "{}", r.stderr);
    let r = run_with(
        &plain_args(1),
        &["fetch", "--mda", "true", "--lmtp-rcpt", "a@b"],
    );
    r.expect_code(2);
    // Two in one account: refused, naming the keys.
    let mail = sample_mail(3, 400, 69);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts.two]\nhost = \"127.0.0.1\"\nuser = \"alice\"\nmaildir = \"{d}/M\"\nmbox = \"{d}/mbox\"\n\
             [accounts.mbox]\nhost = \"127.0.0.1\"\nport = PORT\ntls = \"none\"\nallow-plaintext-auth = true\n\
             user = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\nmbox = \"{d}/from-config.mbox\"\ndeliver-timeout = 5\n"
        )
        .replace("PORT", &server.port().to_string()),
    )
    .unwrap();
    let r = pop3()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--account",
            "two",
            "fetch",
        ])
        .output()
        .unwrap();
    let r = Run::from(r);
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("more than one of maildir, mbox, mda, lmtp"),
        "{}",
        r.stderr
    );
    // The account's mbox key is the target when the command line names none.
    let r = Run::from(
        pop3()
            .args([
                "--config",
                config.to_str().unwrap(),
                "--account",
                "mbox",
                "fetch",
                "-q",
            ])
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    assert_same(
        &mbox_contents(&dir.path().join("from-config.mbox")),
        &expected_contents(&mail),
        "the account's mbox",
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the pause points exist in debug builds only"
)]
fn a_crash_after_an_lmtp_delivery_costs_at_most_one_duplicate() {
    let Some((addr, lmtp_dir)) = dovecot_lmtp() else {
        return;
    };
    let mail = sample_mail(8, 700, 70);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = plain_args(server.port());
    let folder = unique_folder("kill");
    let rcpt = format!("alice+{folder}@example.test");
    let state = dir.path().join("state");
    let fetch = [
        "--lmtp",
        addr.as_str(),
        "--lmtp-rcpt",
        rcpt.as_str(),
        "--state",
        state.to_str().unwrap(),
        "--delete",
    ];
    // Killed after Dovecot answered 250 for message 3, before it was recorded.
    assert!(paused_and_killed(&args, &fetch, "delivered", 3));
    run_with(&args, &[&["fetch", "-q"][..], &fetch[..]].concat()).expect_code(0);
    let contents = dovecot_folder(&lmtp_dir, &folder);
    let distinct: BTreeMap<Vec<u8>, usize> = contents.keys().map(|k| (k.clone(), 1)).collect();
    assert_same(&distinct, &expected_contents(&mail), "nothing lost");
    let extra: usize = contents.values().map(|c| c - 1).sum();
    assert_eq!(extra, 1, "exactly the one in flight twice");
    assert!(server.messages().is_empty());
}
