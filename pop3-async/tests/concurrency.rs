//! 500 sessions at once on a multi-threaded runtime, each against a mailbox of its own (the
//! kit's stateful server, one per session, so that bytes mixed up between sessions show),
//! every byte verified.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{message, options};
use futures_core::Stream;
use pop3_async::{Connection, RetrEvent};
use pop3_tests::MailboxServer;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

const SESSIONS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_sessions_at_once() {
    let mailboxes: Vec<Vec<Vec<u8>>> = (0..SESSIONS)
        .map(|u| {
            (0..4)
                .map(|i| message((u * 10 + i) as u64, 1000 + (u * 37 + i * 4001) % 30_000))
                .collect()
        })
        .collect();
    let servers: Vec<MailboxServer> = mailboxes
        .iter()
        .map(|m| MailboxServer::start(m.clone()).unwrap())
        .collect();
    let uids: Vec<Vec<String>> = servers.iter().map(MailboxServer::uids).collect();
    let uids = Arc::new(uids);
    let mailboxes = Arc::new(mailboxes);
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut tasks = Vec::new();
    for user in 0..SESSIONS {
        let mailboxes = mailboxes.clone();
        let uids = uids.clone();
        let barrier = barrier.clone();
        let addr = servers[user].addr();
        tasks.push(tokio::spawn(async move {
            let expected = &mailboxes[user];
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut options = options();
            options.timeout = std::time::Duration::from_secs(60);
            let mut pop = Connection::new(tcp, &options).await.unwrap();
            pop.user("alice").await.unwrap();
            pop.pass("secret-a").await.unwrap();
            // Every session is connected and logged in before any fetches.
            barrier.wait().await;
            let stat = pop.stat().await.unwrap();
            assert_eq!(stat.count as usize, expected.len());
            assert_eq!(
                stat.size as usize,
                expected.iter().map(Vec::len).sum::<usize>()
            );
            let listed = pop.uidl().await.unwrap();
            assert_eq!(listed[0].uid, uids[user][0]);
            let all: Vec<u32> = (1..=stat.count).collect();
            let mut body = Vec::new();
            let mut verified = 0;
            pop.retr_many(&all, |msg, event| {
                match event {
                    RetrEvent::Start => assert!(body.is_empty()),
                    RetrEvent::Chunk(bytes) => body.extend_from_slice(bytes),
                    RetrEvent::End { octets } => {
                        assert_eq!(
                            body,
                            expected[msg as usize - 1],
                            "user {user} message {msg}"
                        );
                        assert_eq!(octets as usize, body.len());
                        body.clear();
                        verified += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(verified, expected.len());
            // And once more as a stream.
            let mut streamed = Vec::new();
            let mut stream = pop.retr_stream(2);
            while let Some(chunk) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
            {
                streamed.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(streamed, expected[1]);
            pop.quit().await.unwrap();
        }));
    }
    // A panicking session would leave the others at the barrier: bound the wait.
    tokio::time::timeout(std::time::Duration::from_secs(300), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("sessions did not finish");
    // Every session ended with QUIT (counted once its +OK was sent, so before quit() returned).
    for (user, server) in servers.iter().enumerate() {
        assert_eq!((user, server.logins(), server.quits()), (user, 1, 1));
    }
}
