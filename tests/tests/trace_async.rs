//! The async adapter's trace under the one documented target (`pop3_async::TRACE_TARGET`).
//!
//! Alone in its own test binary: `tracing` caches each call site's interest globally, and a
//! scoped subscriber (`with_default`) races with other tests' threads registering the same call
//! sites, which made this test flaky when it shared a binary with the others.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/trace_collect.rs"]
mod collect;

use std::future::Future;
use std::time::Duration;

use pop3_async::{Connection, Error, Options, Security};
use pop3_tests::MailboxServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn connect(server: &MailboxServer) -> Result<Connection, Error> {
    let options = Options::default()
        .timeout(Duration::from_secs(10))
        .allow_plaintext(true);
    Connection::connect("127.0.0.1", server.port(), Security::None, &options).await
}

fn mailbox(messages: &[&[u8]]) -> Result<MailboxServer, pop3_tests::KitError> {
    Ok(MailboxServer::start(
        messages.iter().map(|m| m.to_vec()).collect(),
    )?)
}

#[test]
fn the_trace_arrives_under_the_one_documented_target_with_pass_redacted() -> TestResult {
    assert_eq!(pop3_async::TRACE_TARGET, "pop3");
    let server = mailbox(&[b"Subject: a\r\n\r\nhi\r\n"])?;
    let (subscriber, lines) = collect::subscriber(pop3_async::TRACE_TARGET);
    // `block_on` polls the future on this thread, so the scoped subscriber sees the
    // connection's `enabled!` check and its events.
    tracing::subscriber::with_default(subscriber, || {
        block_on(async {
            let mut pop = connect(&server).await?;
            pop.user("alice").await?;
            pop.pass("secret-a").await?;
            pop.stat().await?;
            pop.quit().await?;
            Ok::<_, Error>(())
        })
    })?;
    let lines = lines.lock().unwrap().clone();
    let expected_in_order = [
        "pop3 C: USER alice",
        "pop3 C: PASS <redacted>",
        "pop3 C: STAT",
        "pop3 S: +OK 1 18",
        "pop3 C: QUIT",
    ];
    let mut at = 0;
    for want in expected_in_order {
        let found = lines[at..].iter().position(|l| l == want);
        assert!(
            found.is_some(),
            "{want:?} missing (in order) from {lines:#?}"
        );
        at += found.unwrap_or(0) + 1;
    }
    assert!(
        lines.iter().any(|l| l.starts_with("pop3 S: +OK")),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l.starts_with("pop3 ")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("secret-a")), "{lines:#?}");
    Ok(())
}
