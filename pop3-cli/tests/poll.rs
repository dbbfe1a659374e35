//! `pop3 poll` end to end: the binary against servers on loopback (the kit's `MailboxServer`
//! for real mailboxes, `ScriptedServer` for the replies a test needs), its JSON log lines read
//! as they come, signals sent to it, metrics scraped over HTTP, systemd notifications read
//! from a unix datagram socket.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pop3_demo_server::MailboxServer;
use pop3_scripted_server::{Script, ScriptedServer};
use serde_json::Value;

/// One `[accounts.NAME]` table for a kit server on loopback as alice, in cleartext.
fn account(name: &str, port: u16, maildir: &Path, extra: &str) -> String {
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = 10\n"
    };
    format!(
        "[accounts.{name}]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         allow-plaintext-auth = true\nuser = \"alice\"\npassword-env = \"POP3_TEST_PASSWORD\"\n\
         maildir = {maildir:?}\n{timeout}{extra}\n"
    )
}

/// A running `pop3 --config FILE poll ARGS` with its JSON log lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    /// Every line so far.
    seen: Vec<(Instant, Value)>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Daemon {
    fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = pop3();
        command
            .arg("--config")
            .arg(config)
            .args(["poll", "--log-format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send((Instant::now(), value)).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut daemon = Daemon {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        };
        daemon.expect(|l| l["event"] == "start", Duration::from_secs(20));
        daemon
    }

    /// The next line (after those already matched) that satisfies `want`, within `timeout`.
    #[track_caller]
    fn expect(&mut self, want: impl Fn(&Value) -> bool, timeout: Duration) -> (Instant, Value) {
        self.try_expect(want, timeout)
            .unwrap_or_else(|| panic!("no such line within {timeout:?}; seen: {:#?}", self.seen))
    }

    /// One poll line of each account, in any order.
    #[track_caller]
    fn expect_polls(&mut self, accounts: &[&str], timeout: Duration) -> Vec<Value> {
        let mut left: Vec<&str> = accounts.to_vec();
        let mut found = Vec::new();
        while !left.is_empty() {
            let (_, line) = self.expect(
                |l| l["event"] == "poll" && left.iter().any(|a| l["account"] == *a),
                timeout,
            );
            left.retain(|a| line["account"] != *a);
            found.push(line);
        }
        found
    }

    fn try_expect(
        &mut self,
        want: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self.lines.recv_timeout(left).ok()?;
            self.seen.push((at, line.clone()));
            if want(&line) {
                return Some((at, line));
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal)
            .unwrap();
    }

    /// SIGTERM, then the exit status and stderr (within `timeout`).
    fn terminate(mut self, timeout: Duration) -> (i32, Duration, Vec<Value>, String) {
        let sent = Instant::now();
        self.signal(rustix::process::Signal::TERM);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("poll did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = sent.elapsed();
        let mut rest: Vec<Value> = std::mem::take(&mut self.seen)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        rest.extend(self.lines.iter().map(|(_, v)| v));
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (status.code().unwrap_or(-1), took, rest, stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_poll(account: &str) -> impl Fn(&Value) -> bool + '_ {
    move |l| l["event"] == "poll" && l["account"] == account
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `poll --once` with the config file; its exit status and JSON lines.
fn once(config: &Path, args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = pop3()
        .arg("--config")
        .arg(config)
        .args(["poll", "--once", "--log-format", "json"])
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn polls<'a>(lines: &'a [Value], account: &'a str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["event"] == "poll" && l["account"] == account)
        .collect()
}

#[test]
fn two_hundred_accounts_at_once_every_message_verified() {
    const ACCOUNTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    let mut servers = Vec::new();
    for n in 0..ACCOUNTS {
        // Different mail in every mailbox, some of it large enough for several reads.
        let mail = sample_mail(1 + n % 4, 500 + (n * 977) % 40_000, n as u64);
        let server = MailboxServer::start(mail.clone()).unwrap();
        let maildir = dir.path().join(format!("m{n}"));
        config.push_str(&account(&format!("a{n}"), server.port(), &maildir, ""));
        servers.push((server, mail, maildir));
    }
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let (code, lines, stderr) = once(&path, &["--max-sessions", "200"]);
    assert_eq!(code, 0, "{stderr}\n{lines:#?}");
    eprintln!("200 accounts polled in {:?}", started.elapsed());
    let mut total = 0;
    for (n, (server, mail, maildir)) in servers.iter().enumerate() {
        let name = format!("a{n}");
        let lines = polls(&lines, &name);
        assert_eq!(lines.len(), 1, "one line for {name}");
        assert_eq!(lines[0]["result"], "ok", "{}", lines[0]);
        assert_eq!(lines[0]["stored"], mail.len(), "{}", lines[0]);
        assert_eq!(
            maildir_contents(maildir),
            expected_contents(&mail[..]),
            "{name}"
        );
        assert_eq!(server.logins(), 1, "{name}");
        total += mail.len();
    }
    assert!(total > 400);
    // Nothing twice: a second round stores nothing and keeps every message.
    let (code, lines, stderr) = once(&path, &["--max-sessions", "50"]);
    assert_eq!(code, 0, "{stderr}");
    for (n, (_, mail, maildir)) in servers.iter().enumerate() {
        let name = format!("a{n}");
        let line = polls(&lines, &name)[0];
        assert_eq!(
            (line["stored"].as_u64(), line["skipped"].as_u64()),
            (Some(0), Some(mail.len() as u64))
        );
        assert_eq!(maildir_contents(maildir), expected_contents(&mail[..]));
    }
}

#[test]
fn once_exits_with_the_worst_status() {
    let dir = tempfile::tempdir().unwrap();
    let good = MailboxServer::start(sample_mail(2, 800, 1)).unwrap();
    let refusing = MailboxServer::builder(sample_mail(1, 800, 2))
        .credentials("alice", "another-password")
        .start()
        .unwrap();
    // A port nothing listens on (bound, then closed).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = |n: &str| dir.path().join(n);
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account("good", good.port(), &m("good"), "")
            + &account("refusing", refusing.port(), &m("refusing"), ""),
    )
    .unwrap();
    // -ERR (a refused login) is 1.
    let (code, lines, _) = once(&path, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    assert_eq!(polls(&lines, "good")[0]["result"], "ok");
    let refused = polls(&lines, "refusing")[0];
    assert_eq!(refused["status"], 1, "{refused}");
    // Only the named account: 0.
    let (code, lines, _) = once(&path, &["--account", "good"]);
    assert_eq!(
        (code, lines.iter().filter(|l| l["event"] == "poll").count()),
        (0, 1)
    );
    // A network error is 3, worse than 1.
    std::fs::write(
        &path,
        account("refusing", refusing.port(), &m("refusing"), "")
            + &account("closed", closed, &m("closed"), ""),
    )
    .unwrap();
    let (code, lines, _) = once(&path, &[]);
    assert_eq!(code, 3, "{lines:#?}");
    assert_eq!(polls(&lines, "closed")[0]["result"], "error");
    // An account the file does not have is a usage error, before anything is polled.
    let (code, lines, stderr) = once(&path, &["--account", "nobody"]);
    assert_eq!((code, lines.len()), (2, 0), "{stderr}");
    assert!(stderr.contains("no [accounts.nobody]"), "{stderr}");
}

/// A server that accepts and then says nothing for 30 s.
fn silent_server() -> ScriptedServer {
    ScriptedServer::builder(Script::new().sleep(secs(30)))
        .accept_timeout(secs(60))
        .start()
        .unwrap()
}

#[test]
fn a_slow_server_never_delays_the_other_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let slow = silent_server();
    let fast = MailboxServer::start(sample_mail(1, 600, 3)).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "slow",
            slow.port(),
            &dir.path().join("slow"),
            "interval = \"1s\"\ntimeout = 20",
        ) + &account(
            "fast",
            fast.port(),
            &dir.path().join("fast"),
            "interval = \"1s\"",
        ),
    )
    .unwrap();
    // Two sessions: the slow account holds one the whole time.
    let mut daemon = Daemon::start(&path, &["--max-sessions", "2"], &[]);
    let (first, _) = daemon.expect(is_poll("fast"), secs(10));
    for _ in 0..3 {
        daemon.expect(is_poll("fast"), secs(10));
    }
    assert!(first.elapsed() < secs(10));
    assert!(
        daemon.seen.iter().all(|(_, l)| l["account"] != "slow"),
        "the slow account has not finished a poll: {:#?}",
        daemon.seen
    );
    // SIGTERM cuts the hung session off after the grace period, and still exits 0.
    let (code, took, _, stderr) = daemon.terminate(secs(15));
    assert_eq!(code, 0, "{stderr}");
    assert!(took < secs(9), "{took:?}");
}

#[test]
fn sigusr1_polls_now_and_sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let one = MailboxServer::start(sample_mail(2, 700, 4)).unwrap();
    let two = MailboxServer::start(sample_mail(3, 900, 5)).unwrap();
    let path = dir.path().join("config.toml");
    let first = account(
        "one",
        one.port(),
        &dir.path().join("one"),
        "interval = \"1h\"",
    );
    std::fs::write(&path, &first).unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let (_, line) = daemon.expect(is_poll("one"), secs(10));
    assert_eq!(
        (line["stored"].as_u64(), line["next"].as_str()),
        (Some(2), Some("1h"))
    );

    // New mail, SIGUSR1: polled now, not in an hour.
    one.push_message(b"Subject: late\r\n\r\narrived later\r\n");
    daemon.signal(rustix::process::Signal::USR1);
    let (_, line) = daemon.expect(is_poll("one"), secs(10));
    assert_eq!(line["stored"], 1, "{line}");

    // SIGHUP with a second account: it starts, the first keeps its schedule.
    std::fs::write(
        &path,
        first.clone()
            + &account(
                "two",
                two.port(),
                &dir.path().join("two"),
                "interval = \"1h\"",
            ),
    )
    .unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    let (_, line) = daemon.expect(|l| l["event"] == "reload", secs(10));
    assert_eq!(
        (&line["result"], &line["added"], &line["unchanged"]),
        (&"ok".into(), &1.into(), &1.into()),
        "{line}"
    );
    let (_, line) = daemon.expect(is_poll("two"), secs(10));
    assert_eq!(line["stored"], 3);
    assert!(
        daemon
            .try_expect(is_poll("one"), Duration::from_millis(500))
            .is_none()
    );

    // A config that no longer parses: an error line, the old config goes on.
    std::fs::write(&path, "[accounts.one\nhost = ").unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    let (_, line) = daemon.expect(|l| l["event"] == "reload", secs(10));
    assert_eq!(line["result"], "error", "{line}");
    assert!(
        line["error"].as_str().unwrap().contains("config file"),
        "{line}"
    );
    daemon.signal(rustix::process::Signal::USR1);
    daemon.expect_polls(&["one", "two"], secs(10));

    // A changed account restarts (polled at once); a removed one stops.
    std::fs::write(
        &path,
        account(
            "one",
            one.port(),
            &dir.path().join("one"),
            "interval = \"2h\"",
        ),
    )
    .unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    let (_, line) = daemon.expect(|l| l["event"] == "reload", secs(10));
    assert_eq!(
        (&line["changed"], &line["removed"]),
        (&1.into(), &1.into()),
        "{line}"
    );
    let (_, line) = daemon.expect(is_poll("one"), secs(10));
    assert_eq!((&line["stored"], &line["next"]), (&0.into(), &"2h".into()));

    let (code, took, lines, stderr) = daemon.terminate(secs(10));
    assert_eq!(code, 0, "{stderr}");
    assert!(took < secs(5), "{took:?}");
    assert!(lines.iter().any(|l| l["event"] == "stopped"));
    assert_eq!(maildir_contents(&dir.path().join("one")).len(), 3);
    assert_eq!(
        maildir_contents(&dir.path().join("two")),
        expected_contents(&sample_mail(3, 900, 5))
    );
}

#[test]
fn sigterm_lets_the_batch_in_flight_commit_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mail = sample_mail(300, 2000, 6);
    // Slow replies: the fetch takes seconds, so SIGTERM lands in the middle of it.
    let server = MailboxServer::builder(mail.clone())
        .reply_delay(Duration::from_millis(10))
        .start()
        .unwrap();
    let maildir = dir.path().join("m");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account("a", server.port(), &maildir, "delete = true"),
    )
    .unwrap();
    let daemon = Daemon::start(&path, &[], &[]);
    // Wait until the first batch is in new/.
    let deadline = Instant::now() + secs(30);
    while count_files(&maildir.join("new")) == 0 {
        assert!(Instant::now() < deadline, "nothing stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, took, lines, stderr) = daemon.terminate(secs(10));
    assert_eq!(code, 0, "{stderr}");
    assert!(took < secs(5), "{took:?}");
    let line = lines.iter().find(|l| l["event"] == "poll").unwrap();
    assert_eq!(
        (&line["result"], &line["interrupted"]),
        (&"ok".into(), &true.into()),
        "{line}"
    );
    let stored = line["stored"].as_u64().unwrap() as usize;
    assert!(stored > 0 && stored < mail.len(), "{line}");
    // Every message stored is recorded, deleted on the server (QUIT committed), and nothing
    // is left half-written.
    assert_eq!(count_files(&maildir.join("new")), stored);
    assert_eq!(count_files(&maildir.join("tmp")), 0);
    assert_eq!(server.messages().len(), mail.len() - stored);
    // The next poll fetches the rest: every message exactly once.
    let (code, _, stderr) = once(&path, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(maildir_contents(&maildir), expected_contents(&mail[..]));
    assert!(server.messages().is_empty());
}

/// A duration as the log shows it: `"1.742s"`, `"250ms"`, `"4s"`.
fn parse_shown(text: &str) -> Duration {
    if let Some(ms) = text.strip_suffix("ms") {
        return Duration::from_millis(ms.parse().unwrap());
    }
    Duration::from_secs_f64(text.strip_suffix('s').unwrap().parse().unwrap())
}

/// A server that answers PASS with `-ERR [CODE] ...`, for `connections` connections.
fn refusing_server(code: &str, connections: usize) -> ScriptedServer {
    let script = Script::parse(&format!(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: -ERR [{code}] not now
        C: QUIT
        S: +OK bye
        "
    ))
    .unwrap();
    ScriptedServer::builder(script)
        .connections(connections)
        .accept_timeout(secs(30))
        .start()
        .unwrap()
}

#[test]
fn auth_pauses_the_account_until_a_manual_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = refusing_server("AUTH", 2);
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "a",
            server.port(),
            &dir.path().join("m"),
            "interval = \"1s\"",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let (_, line) = daemon.expect(is_poll("a"), secs(10));
    assert_eq!(line["result"], "paused", "{line}");
    assert!(line["error"].as_str().unwrap().contains("[AUTH]"), "{line}");
    assert!(line["until"].as_str().unwrap().contains("SIGHUP"), "{line}");
    assert_eq!(line["next"], Value::Null);
    // An interval of 1 s, yet no second try.
    assert!(daemon.try_expect(is_poll("a"), secs(3)).is_none());
    // The manual check: one more try (paused again).
    daemon.signal(rustix::process::Signal::USR1);
    let (_, line) = daemon.expect(is_poll("a"), secs(10));
    assert_eq!(line["result"], "paused");
    let (code, _, _, stderr) = daemon.terminate(secs(10));
    assert_eq!(code, 0, "{stderr}");
    let transcripts = server.finish_all().unwrap();
    assert_eq!(transcripts.len(), 2);
    for t in transcripts {
        t.assert_complete();
    }
}

#[test]
fn in_use_backs_off_with_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let server = refusing_server("IN-USE", 4);
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "a",
            server.port(),
            &dir.path().join("m"),
            "interval = \"1s\"",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let mut times = Vec::new();
    let mut nexts = Vec::new();
    for _ in 0..4 {
        let (at, line) = daemon.expect(is_poll("a"), secs(15));
        assert_eq!(line["result"], "error", "{line}");
        assert!(
            line["error"].as_str().unwrap().contains("[IN-USE]"),
            "{line}"
        );
        times.push(at);
        nexts.push(line["next"].as_str().unwrap().to_owned());
    }
    // 1 s backed off: 0.5-1 s, then 1-2 s, then 2-4 s.
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(450) && gaps[0] < Duration::from_millis(5000),
        "{gaps:?}"
    );
    assert!(gaps[1] >= Duration::from_millis(950), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(1950), "{gaps:?} {nexts:?}");
    // The waits logged: within [d/2, d] of 1 s, 2 s, 4 s, 8 s.
    let logged: Vec<Duration> = nexts.iter().map(|n| parse_shown(n)).collect();
    for (k, wait) in logged.iter().enumerate() {
        let full = Duration::from_secs(1 << k);
        assert!(*wait >= full / 2 && *wait <= full, "{nexts:?}");
    }
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);
}

#[test]
fn login_delay_spaces_the_logins() {
    let dir = tempfile::tempdir().unwrap();
    // LOGIN-DELAY 2 after login (the per-user value), with an interval of 1 s.
    let script = Script::parse(
        r"
        S: +OK ready
        C: CAPA
        S-RAW: +OK\r\nUSER\r\nUIDL\r\nLOGIN-DELAY 900 USER\r\n.\r\n
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nUIDL\r\nLOGIN-DELAY 2\r\nEXPIRE NEVER\r\n.\r\n
        C: LIST
        S-RAW: +OK\r\n.\r\n
        C: UIDL
        S-RAW: +OK\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
    )
    .unwrap();
    let server = ScriptedServer::builder(script)
        .connections(2)
        .accept_timeout(secs(30))
        .start()
        .unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "a",
            server.port(),
            &dir.path().join("m"),
            "interval = \"1s\"",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let (first, line) = daemon.expect(is_poll("a"), secs(10));
    assert_eq!(
        (
            &line["result"],
            &line["login_delay"],
            &line["next"],
            &line["expire"]
        ),
        (&"ok".into(), &"2s".into(), &"2s".into(), &"never".into()),
        "{line}"
    );
    let (second, _) = daemon.expect(is_poll("a"), secs(10));
    assert!(
        second - first >= Duration::from_millis(1900),
        "{:?}",
        second - first
    );
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);
    for t in server.finish_all().unwrap() {
        t.assert_complete();
    }
}

/// `GET path` over HTTP/1.1; the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of `metric{account="NAME"}` in a scrape.
fn metric(body: &str, metric: &str, account: &str) -> Option<f64> {
    let prefix = format!("{metric}{{account=\"{account}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[test]
fn metrics_over_http_and_text_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mail = sample_mail(3, 1000, 7);
    let server = MailboxServer::start(mail.clone()).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "good",
            server.port(),
            &dir.path().join("good"),
            "interval = \"1h\"",
        ) + &account("bad", 1, &dir.path().join("bad"), "interval = \"1h\""),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &["--metrics", "127.0.0.1:0"], &[]);
    let start = daemon.seen[0].1.clone();
    let addr = start["metrics"].as_str().unwrap().to_owned();
    daemon.expect_polls(&["good", "bad"], secs(10));
    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let bytes: usize = mail.iter().map(Vec::len).sum();
    assert_eq!(
        metric(&body, "pop3_poll_messages_total", "good"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "pop3_poll_bytes_total", "good"),
        Some(bytes as f64)
    );
    assert_eq!(metric(&body, "pop3_poll_errors_total", "good"), Some(0.0));
    assert_eq!(metric(&body, "pop3_poll_errors_total", "bad"), Some(1.0));
    assert_eq!(
        metric(&body, "pop3_poll_last_success_timestamp_seconds", "bad"),
        None
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = metric(&body, "pop3_poll_last_success_timestamp_seconds", "good").unwrap();
    assert!((now - 30.0..=now + 1.0).contains(&last), "{last} {now}");
    let next = metric(&body, "pop3_poll_next_poll_timestamp_seconds", "good").unwrap();
    assert!(
        (now + 3500.0..=now + 3601.0).contains(&next),
        "{next} {now}"
    );
    assert!(
        body.contains("# TYPE pop3_poll_messages_total counter"),
        "{body}"
    );
    assert_eq!(http_get(&addr, "/other").0, "HTTP/1.1 404 Not Found");
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);

    // The text format: one line per poll per account, `key=value` words.
    let output = pop3()
        .arg("--config")
        .arg(&path)
        .args(["poll", "--once", "--account", "good"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let poll_lines: Vec<&str> = text.lines().filter(|l| l.contains(" poll ")).collect();
    assert_eq!(poll_lines.len(), 1, "{text}");
    assert!(
        poll_lines[0].contains(" poll account=good result=ok status=0 listed=3 stored=0 "),
        "{text}"
    );
}

#[test]
fn ready_watchdog_and_stopping_over_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(secs(10))).unwrap();
    let server = MailboxServer::start(sample_mail(1, 500, 8)).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "a",
            server.port(),
            &dir.path().join("m"),
            "interval = \"1h\"",
        ),
    )
    .unwrap();
    let socket_env = socket_path.to_str().unwrap().to_owned();
    let daemon = Daemon::start(
        &path,
        &[],
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "400000")],
    );
    let mut buf = [0u8; 4096];
    let mut receive = || {
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let ready = receive();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(receive(), "WATCHDOG=1");
    }
    // Every 200 ms (half of WATCHDOG_USEC).
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);
    let mut rest = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert!(rest.iter().any(|m| m == "STOPPING=1"), "{rest:?}");
}

#[test]
fn a_config_error_pauses_only_that_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = MailboxServer::start(sample_mail(1, 500, 9)).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account("good", server.port(), &dir.path().join("good"), "")
            + &account(
                "odd",
                server.port(),
                &dir.path().join("odd"),
                "interval = \"often\"",
            ),
    )
    .unwrap();
    let (code, lines, _) = once(&path, &[]);
    assert_eq!(code, 2, "{lines:#?}");
    assert_eq!(polls(&lines, "good")[0]["result"], "ok");
    let pause = lines
        .iter()
        .find(|l| l["event"] == "pause" && l["account"] == "odd")
        .unwrap();
    assert!(
        pause["error"].as_str().unwrap().contains("interval"),
        "{pause}"
    );
}

#[test]
fn auto_interval_lengthens_while_empty_and_shortens_when_mail_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = MailboxServer::start(sample_mail(2, 600, 10)).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "a",
            server.port(),
            &dir.path().join("m"),
            "interval = \"auto\"\ninterval-min = \"1s\"\ninterval-max = \"4s\"",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let next = |daemon: &mut Daemon| {
        let (at, line) = daemon.expect(is_poll("a"), secs(15));
        (
            at,
            line["stored"].as_u64().unwrap(),
            line["next"].as_str().unwrap().to_owned(),
        )
    };
    // Mail: the shortest interval; then empty polls double it up to the longest.
    let (t0, stored, wait) = next(&mut daemon);
    assert_eq!((stored, wait.as_str()), (2, "1s"));
    let (t1, _, wait) = next(&mut daemon);
    assert_eq!(wait, "2s");
    let (t2, _, wait) = next(&mut daemon);
    assert_eq!(wait, "4s");
    let (t3, _, wait) = next(&mut daemon);
    assert_eq!(wait, "4s");
    assert!(t1 - t0 >= Duration::from_millis(950), "{:?}", t1 - t0);
    assert!(t2 - t1 >= Duration::from_millis(1950), "{:?}", t2 - t1);
    assert!(t3 - t2 >= Duration::from_millis(3950), "{:?}", t3 - t2);
    // Mail again: halved.
    server.push_message(b"Subject: more\r\n\r\nmore mail\r\n");
    let (_, stored, wait) = next(&mut daemon);
    assert_eq!((stored, wait.as_str()), (1, "2s"));
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);
}

#[test]
fn the_expire_policy_is_logged_once_per_account_and_expire_0_is_carried_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = MailboxServer::builder(sample_mail(3, 700, 21))
        .expire("0")
        .start()
        .unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        account(
            "x",
            server.port(),
            &dir.path().join("x"),
            "interval = \"1h\"\nkeep = \"7d\"",
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&path, &[], &[]);
    let (_, first) = daemon.expect(is_poll("x"), secs(10));
    assert_eq!(first["stored"], 3, "{first}");
    assert_eq!(first["server_expired"], 3, "{first}");
    assert_eq!(first["expire"], "0d", "{first}");
    let notices = first["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{first}");
    assert!(
        notices[0]
            .as_str()
            .unwrap()
            .ends_with("so keep is not honoured"),
        "{first}"
    );
    assert!(server.messages().is_empty(), "expired at the QUIT");

    // The next poll: the same policy, not logged again.
    server.push_message(b"Subject: later\r\n\r\nlater\r\n");
    daemon.signal(rustix::process::Signal::USR1);
    let (_, second) = daemon.expect(is_poll("x"), secs(10));
    assert_eq!(second["stored"], 1, "{second}");
    assert_eq!(second["server_expired"], 1, "{second}");
    assert!(second.get("expire").is_none(), "{second}");
    assert!(second.get("notices").is_none(), "{second}");
    assert!(server.messages().is_empty());
    let (code, _, _, _) = daemon.terminate(secs(10));
    assert_eq!(code, 0);
}
