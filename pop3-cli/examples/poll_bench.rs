//! The `pop3 poll` scale benchmark: N accounts in one `poll` process against one loopback
//! server (`pop3-demo-server`'s `MailboxServer`, a thread per connection).
//!
//! ```text
//! cargo build --release -p pop3-cli --bin pop3 --example poll_bench
//! target/release/examples/poll_bench [ACCOUNTS] [MAX_SESSIONS] [POP3_BINARY]
//! ```
//!
//! Defaults: 1000 accounts, 64 sessions, `target/release/pop3`. It measures:
//! - the first round (`poll --once`, every account fetching its 5 messages) and an idle
//!   round (`poll --once` again, nothing new: login, LIST, UIDL, QUIT): polls per second;
//! - the daemon's resident memory (`VmRSS`) once every account has been polled and is idle
//!   (interval 1h), for ACCOUNTS accounts and for 1, with one session at a time: the
//!   difference per account is the memory of an idle account; and with MAX_SESSIONS, where
//!   the allocator keeps some of the sessions' buffers.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pop3_demo_server::{MailboxServer, generate_mail};

const MESSAGES: usize = 5;

fn main() {
    let mut args = std::env::args().skip(1);
    let accounts: usize = args.next().map_or(1000, |a| a.parse().unwrap());
    let sessions: usize = args.next().map_or(64, |a| a.parse().unwrap());
    let binary = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/pop3".to_owned()),
    );
    assert!(
        binary.exists(),
        "{} not found: build it with --release",
        binary.display()
    );
    let server = MailboxServer::start(generate_mail(MESSAGES, 2000, 1939)).unwrap();
    let dir = std::env::temp_dir().join(format!("pop3-poll-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, "all", accounts, server.port());
    let one = write_config(&dir, "one", 1, server.port());
    println!(
        "{accounts} accounts, {MESSAGES} messages of ~2000 bytes each, --max-sessions {sessions}, one loopback server, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let sessions = sessions.to_string();
    let (first, polls) = once(&binary, &config, &sessions);
    assert_eq!(polls, accounts);
    println!(
        "first round (fetch {} messages): {:.2} s, {:.0} polls/s",
        accounts * MESSAGES,
        first.as_secs_f64(),
        accounts as f64 / first.as_secs_f64()
    );
    let (idle, polls) = once(&binary, &config, &sessions);
    assert_eq!(polls, accounts);
    println!(
        "idle round (nothing new): {:.2} s, {:.0} polls/s",
        idle.as_secs_f64(),
        accounts as f64 / idle.as_secs_f64()
    );

    // One session at a time, so that what stays resident is the accounts', not the allocator's
    // memory kept from 64 sessions at once.
    let (rss_all, _) = daemon_rss(&binary, &config, "1", accounts);
    let (rss_one, _) = daemon_rss(&binary, &one, "1", 1);
    let per_account = (rss_all.saturating_sub(rss_one)) as f64 / (accounts.max(2) - 1) as f64;
    println!(
        "daemon, every account idle, --max-sessions 1: VmRSS {rss_all} KiB with {accounts} accounts, {rss_one} KiB with 1: {per_account:.1} KiB per idle account"
    );
    let (rss_busy, hwm_busy) = daemon_rss(&binary, &config, &sessions, accounts);
    println!(
        "daemon, every account idle, --max-sessions {sessions}: VmRSS {rss_busy} KiB (peak {hwm_busy} KiB)"
    );
    println!("server connections: {}", server.connections());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config of `accounts` accounts on `port`, each with its own Maildir.
fn write_config(dir: &Path, name: &str, accounts: usize, port: u16) -> PathBuf {
    let mut text = String::new();
    for n in 0..accounts {
        let maildir = dir.join(format!("{name}-{n}"));
        text.push_str(&format!(
            "[accounts.a{n}]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             allow-plaintext-auth = true\nuser = \"alice\"\npassword-env = \"POP3_BENCH_PASSWORD\"\n\
             maildir = {maildir:?}\ninterval = \"1h\"\n\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn pop3(binary: &Path, config: &Path, sessions: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .env("POP3_BENCH_PASSWORD", "secret-a")
        .arg("--config")
        .arg(config)
        .args(["poll", "--log-format", "json", "--max-sessions", sessions])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// `poll --once`: its duration and the number of successful polls.
fn once(binary: &Path, config: &Path, sessions: &str) -> (Duration, usize) {
    let started = Instant::now();
    let output = pop3(binary, config, sessions)
        .arg("--once")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(output.status.success(), "{:?}", output.status);
    let ok = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("\"event\":\"poll\"") && l.contains("\"result\":\"ok\""))
        .count();
    (took, ok)
}

/// Starts the daemon, waits until `accounts` polls succeeded (every account idle after), and
/// reads its VmRSS and VmHWM (KiB).
fn daemon_rss(binary: &Path, config: &Path, sessions: &str, accounts: usize) -> (u64, u64) {
    let mut child = pop3(binary, config, sessions).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut ok = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("\"event\":\"poll\"") && line.contains("\"result\":\"ok\"") {
            ok += 1;
            if ok == accounts {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let result = (field("VmRSS:"), field("VmHWM:"));
    let _ = child.kill();
    let _ = child.wait();
    result
}
