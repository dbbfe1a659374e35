//! The async adapter's own API as a library user meets it (issue 15 §2): `BodyStream::next`.
//! What both adapters have (the "already logged in" error, the start-of-message event, the
//! UID-safe helpers, the parsed view) is in the kit's shared `api_suite`, run on both adapters
//! by `blocking.rs` and `async.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use pop3_async::{Connection, Error, Options, Security};
use pop3_tests::MailboxServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
});

fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

fn options() -> Options {
    Options::default()
        .timeout(Duration::from_secs(10))
        .allow_plaintext(true)
}

async fn connect(server: &MailboxServer) -> Result<Connection, Error> {
    Connection::connect("127.0.0.1", server.port(), Security::None, &options()).await
}

// ---- BodyStream::next, without futures-util ----

#[test]
fn body_stream_next_yields_the_body_then_none() -> TestResult {
    let big: Vec<u8> = pop3_tests::generate_mail(1, 200_000, 7).remove(0);
    let small = b"Subject: s\r\n\r\n.dot\r\nline\r\n".to_vec();
    let server = MailboxServer::start(vec![small.clone(), big.clone()])?;
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        for (msg, expected) in [(1, &small), (2, &big)] {
            let mut body = pop.retr_stream(msg);
            let mut got = Vec::new();
            let mut chunks = 0;
            while let Some(chunk) = body.next().await {
                got.extend_from_slice(&chunk?);
                chunks += 1;
            }
            // Ended: stays ended.
            assert!(body.next().await.is_none());
            assert_eq!(&got, &pop3_tests::to_crlf(expected), "message {msg}");
            assert!(chunks >= 1);
        }
        let mut top = pop.top_stream(1, 0);
        let mut headers = Vec::new();
        while let Some(chunk) = top.next().await {
            headers.extend_from_slice(&chunk?);
        }
        assert_eq!(headers, b"Subject: s\r\n\r\n");
        // A refused message: one error, then the end; the session goes on.
        let mut missing = pop.retr_stream(9);
        assert!(matches!(missing.next().await, Some(Err(Error::Server(_)))));
        assert!(missing.next().await.is_none());
        assert_eq!(pop.stat().await?.count, 2);
        pop.quit().await?;
        Ok(())
    })
}
