//! Helpers shared by the `pop3` binary's end-to-end tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pop3_demo_server::TestCa;

/// The binary under test.
pub fn pop3() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .stdin(Stdio::null())
        .env_remove("XDG_CONFIG_HOME")
        .env("POP3_TEST_PASSWORD", "secret-a");
    command
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with the output unless the exit status is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit status {} (expected {code})\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout_str(),
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout_str()))
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `pop3 ARGS`.
pub fn run(args: &[&str]) -> Run {
    pop3().args(args).output().expect("run pop3").into()
}

/// The global options to reach a kit server on 127.0.0.1 as alice in cleartext.
pub fn plain_args(port: u16) -> Vec<String> {
    [
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--timeout",
        "20",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs `pop3 GLOBAL... ARGS...`.
pub fn run_with(global: &[String], args: &[&str]) -> Run {
    pop3()
        .args(global)
        .args(args)
        .output()
        .expect("run pop3")
        .into()
}

/// The test CA's certificate in a file (for `--ca-file`).
pub fn ca_file(dir: &Path) -> PathBuf {
    let path = dir.join("test-ca.pem");
    std::fs::write(&path, TestCa::shared().certificate_pem()).expect("write the CA");
    path
}

/// CRLF → LF, as `fetch` stores messages.
pub fn lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        if message[i] == b'\r' && message.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(message[i]);
        i += 1;
    }
    out
}

/// How a kit server's message is stored by `fetch`: its CRLF wire form with LF line ends.
pub fn stored_form(message: &[u8]) -> Vec<u8> {
    lf(&pop3_demo_server::to_crlf(message))
}

/// Every file in `new/` and `cur/` of a Maildir, by content, with its count.
pub fn maildir_contents(maildir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut contents = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let bytes = std::fs::read(entry.path()).expect("read a message");
            *contents.entry(bytes).or_insert(0) += 1;
        }
    }
    contents
}

/// The multiset of `messages` as stored.
pub fn expected_contents<'a>(
    messages: impl IntoIterator<Item = &'a Vec<u8>>,
) -> BTreeMap<Vec<u8>, usize> {
    let mut contents = BTreeMap::new();
    for m in messages {
        *contents.entry(stored_form(m)).or_insert(0) += 1;
    }
    contents
}

/// The number of files in `dir` (0 if missing).
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// The only state file in a Maildir (`.pop3-state.*`, not the lock).
pub fn state_file(maildir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(maildir)
        .expect("read the maildir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(".pop3-state.") && !name.ends_with(".lock") && !name.ends_with(".tmp")
        })
        .collect();
    assert_eq!(found.len(), 1, "one state file in {}", maildir.display());
    found.pop().expect("one")
}

/// The UIDs recorded as stored in a state file.
pub fn stored_uids(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state)
        .expect("read the state")
        .lines()
        .filter_map(|l| l.strip_prefix("S "))
        // v3: `S <first-seen> <size|-> <uid>`; v1 and v2: `S <uid>`.
        .map(|rest| rest.rsplit(' ').next().unwrap_or(rest).to_owned())
        .collect()
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
];

/// `count` deterministic, distinct messages of about `size` bytes, CRLF, with lines that need
/// dot-stuffing and 8-bit text (the kit's `generate_mail` panics for many sizes and seeds).
pub fn sample_mail(count: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|n| {
            let mut text = format!(
                "From: tester <t@example.test>\r\nSubject: message {n} of seed {seed}\r\n\
                 Message-ID: <{seed}.{n}@example.test>\r\n\r\n\
                 .dot line\r\n..two dots\r\n.\r\nnaïve café ✓\r\n"
            );
            let mut i = n.wrapping_mul(7) ^ seed as usize;
            while text.len() < size {
                let mut line = String::new();
                while line.len() < 60 {
                    i = i.wrapping_mul(31).wrapping_add(17);
                    line.push_str(WORDS[i % WORDS.len()]);
                    line.push(' ');
                }
                text.push_str(line.trim_end());
                text.push_str("\r\n");
            }
            text.into_bytes()
        })
        .collect()
}
