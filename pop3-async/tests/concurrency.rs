//! 500 sessions at once against one server on a multi-threaded runtime, every byte verified.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{MailServer, message, options};
use futures_core::Stream;
use pop3_async::{Connection, RetrEvent};
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
    let (addr, server) = MailServer::start(mailboxes.clone()).await;
    let mailboxes = Arc::new(mailboxes);
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let mut tasks = Vec::new();
    for user in 0..SESSIONS {
        let mailboxes = mailboxes.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let expected = &mailboxes[user];
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut options = options();
            options.timeout = std::time::Duration::from_secs(60);
            let mut pop = Connection::new(tcp, &options).await.unwrap();
            pop.user(&format!("user{user}")).await.unwrap();
            pop.pass(format!("pass{user}")).await.unwrap();
            // Every session is connected and logged in before any fetches.
            barrier.wait().await;
            let stat = pop.stat().await.unwrap();
            assert_eq!(stat.count as usize, expected.len());
            assert_eq!(
                stat.size as usize,
                expected.iter().map(Vec::len).sum::<usize>()
            );
            let uids = pop.uidl().await.unwrap();
            assert_eq!(uids[0].uid, format!("uid-{user}-1"));
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
    // The server records a session once it has seen the client close: wait for the last.
    for _ in 0..500 {
        if server.log.lock().unwrap().len() == SESSIONS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let log = server.log.lock().unwrap();
    assert_eq!(log.len(), SESSIONS);
    assert!(
        log.iter()
            .all(|session| session.last().map(String::as_str) == Some("QUIT"))
    );
}
