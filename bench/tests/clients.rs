//! The benchmark's clients against its server, in-process: each must receive the whole
//! mailbox, and the server must count it.

use std::sync::Arc;
use std::time::Duration;

use pop3_bench::clients;
use pop3_bench::mailbox::Mailbox;
use pop3_bench::server::Server;

type Run<'a> = Box<dyn Fn() -> std::io::Result<clients::Received> + 'a>;

fn check(delay: Duration, count: usize, size: usize) {
    let mailbox = Arc::new(Mailbox::generate(count, size, 3));
    let (octets, wire) = (mailbox.octets, mailbox.wire_bytes);
    let server = Server::start(mailbox, delay).expect("server");
    let port = server.addr().port();
    let runs: [(&str, Run<'_>); 6] = [
        ("blocking", Box::new(|| clients::blocking(port, None))),
        ("blocking@3", Box::new(|| clients::blocking(port, Some(3)))),
        ("async", Box::new(|| clients::asynchronous(port, None))),
        ("raw", Box::new(|| clients::raw(port, count as u64))),
        // Small reads, so that terminators are split across reads at many offsets.
        (
            "raw/1024",
            Box::new(|| clients::raw_with_buffer(port, count as u64, 1024)),
        ),
        (
            "raw/1031",
            Box::new(|| clients::raw_with_buffer(port, count as u64, 1031)),
        ),
    ];
    for (name, run) in runs {
        let since = server.accepted();
        let received = run().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(received.messages, count as u64, "{name}");
        if name.starts_with("raw") {
            // Wire bytes, to the byte: the replies up to the last terminator, no more.
            assert_eq!(received.bytes, wire, "{name}");
        } else {
            assert_eq!(received.bytes, octets, "{name}");
        }
        let reports = server.reports_since(since, Duration::from_secs(10));
        assert_eq!(reports.len(), 1, "{name}: {reports:?}");
        assert_eq!(reports[0].retrs, count as u64, "{name}");
        assert_eq!(reports[0].retr_bytes, wire, "{name}");
        assert!(reports[0].quit, "{name}");
    }
}

#[test]
fn small_messages() {
    check(Duration::ZERO, 300, 4096);
}

#[test]
fn large_messages() {
    // Larger than the server's direct-write threshold and than one read.
    check(Duration::ZERO, 3, 300 * 1024);
}

#[test]
fn with_delay() {
    check(Duration::from_millis(2), 20, 1000);
}
