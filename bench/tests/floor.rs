//! The floor client against the benchmark's server: every message lands in `new/` as `pop3
//! fetch` stores it (dot-unstuffed, LF line ends), and the server counts the whole mailbox.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pop3_bench::floor::floor;
use pop3_bench::mailbox::Mailbox;
use pop3_bench::server::Server;

/// A RETR reply's message as fetch stores it: the status line dropped, the terminator
/// dropped, dot-unstuffed, CRLF made LF.
fn stored_form(retr: &[u8]) -> Vec<u8> {
    let status_end = retr.iter().position(|&b| b == b'\n').expect("status line") + 1;
    let body = &retr[status_end..retr.len() - 3];
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_prefix(b".")
            .filter(|_| line.starts_with(b"."))
            .unwrap_or(line);
        match line.strip_suffix(b"\r\n") {
            Some(text) => {
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

fn check(count: usize, size: usize) {
    let mailbox = Arc::new(Mailbox::generate(count, size, 5));
    let expected: BTreeMap<Vec<u8>, usize> =
        mailbox.messages.iter().fold(BTreeMap::new(), |mut m, msg| {
            *m.entry(stored_form(&msg.retr)).or_insert(0) += 1;
            m
        });
    let wire = mailbox.wire_bytes;
    let server = Server::start(mailbox, Duration::ZERO).expect("server");
    let dir = std::env::temp_dir().join(format!("pop3-bench-floor-{}-{count}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let received = floor(server.addr().port(), count as u64, &dir).expect("floor");
    assert_eq!(received.messages, count as u64);
    let mut found: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("new")).expect("new/") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        *found.entry(bytes).or_insert(0) += 1;
    }
    assert_eq!(std::fs::read_dir(dir.join("tmp")).expect("tmp/").count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        found == expected,
        "the floor's files differ from fetch's form"
    );
    let reports = server.reports_since(0, Duration::from_secs(10));
    assert_eq!(reports.iter().map(|r| r.retr_bytes).sum::<u64>(), wire);
}

#[test]
fn small_messages_land_as_fetch_stores_them() {
    check(200, 4096);
}

#[test]
fn large_messages_land_as_fetch_stores_them() {
    // Longer than one read of the floor's buffer.
    check(3, 600 * 1024);
}
