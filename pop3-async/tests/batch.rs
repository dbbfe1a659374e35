//! Streamed bodies, pipelined batches, and no deadlock when the server answers before it
//! reads the rest of a batch.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{message, multiline, options};
use futures_core::Stream;
use pop3_async::{Connection, Error, RetrEvent};
use pop3_tests::MailboxServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// The kit's stateful mailbox server with `messages` (account alice / secret-a).
fn mailbox(messages: Vec<Vec<u8>>) -> MailboxServer {
    MailboxServer::start(messages).unwrap()
}

async fn session(server: &MailboxServer) -> Connection<TcpStream> {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    pop.user("alice").await.unwrap();
    pop.pass("secret-a").await.unwrap();
    pop
}

#[tokio::test]
async fn retr_stream_yields_bounded_chunks() {
    let big = message(7, 5_000_000);
    let server = mailbox(vec![big.clone(), message(8, 100)]);
    let mut pop = session(&server).await;
    let mut got = Vec::new();
    let mut chunks = 0;
    {
        let mut stream = pop.retr_stream(1);
        while let Some(chunk) = next(&mut stream).await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= 64 * 1024, "a chunk is at most one read");
            got.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert!(next(&mut stream).await.is_none(), "fused");
    }
    assert!(chunks > 10);
    assert_eq!(got, big);
    // TOP as a stream: headers only.
    let mut top = Vec::new();
    let mut stream = pop.top_stream(2, 0);
    while let Some(chunk) = next(&mut stream).await {
        top.extend_from_slice(&chunk.unwrap());
    }
    assert!(top.ends_with(b"\r\n\r\n"));
    // A refused RETR ends the stream with the server's error; the connection goes on.
    let mut stream = pop.retr_stream(99);
    assert!(matches!(
        next(&mut stream).await,
        Some(Err(Error::Server(_)))
    ));
    assert!(next(&mut stream).await.is_none());
    assert_eq!(pop.stat().await.unwrap().count, 2);
}

#[tokio::test]
async fn retr_many_and_dele_many_pipelined() {
    let messages: Vec<Vec<u8>> = (0..50).map(|i| message(i, 500 + 97 * i as usize)).collect();
    let server = mailbox(messages.clone());
    let mut pop = session(&server).await;
    // The CAPA asked after login goes out with the next command: unknown until then.
    assert!(pop.capabilities().is_none());
    let wanted: Vec<u32> = (1..=50).chain([99, 3]).collect();
    let mut bodies: Vec<(u32, Vec<u8>, Option<u64>)> = Vec::new();
    let mut refused = Vec::new();
    pop.retr_many(&wanted, |msg, event| {
        match event {
            RetrEvent::Chunk(bytes) => match bodies.last_mut() {
                Some((m, body, None)) if *m == msg => body.extend_from_slice(bytes),
                _ => bodies.push((msg, bytes.to_vec(), None)),
            },
            RetrEvent::End { octets } => match bodies.last_mut() {
                Some((m, _, end @ None)) if *m == msg => *end = Some(octets),
                _ => bodies.push((msg, Vec::new(), Some(octets))),
            },
            RetrEvent::Refused(e) => refused.push((msg, e.text)),
            RetrEvent::Start => {}
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .await
    .unwrap();
    assert!(pop.capabilities().unwrap().pipelining);
    assert_eq!(refused, [(99, "no such message".to_owned())]);
    assert_eq!(bodies.len(), 51);
    for (msg, body, octets) in &bodies {
        let expected = &messages[*msg as usize - 1];
        assert_eq!(body, expected, "message {msg}");
        assert_eq!(*octets, Some(expected.len() as u64));
    }
    let results = pop.dele_many(&[1, 2, 99, 4]).await.unwrap();
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    assert_eq!(results[2].as_ref().unwrap_err().text, "no such message");
    assert!(
        matches!(pop.dele_many(&[5, 0]).await, Err(Error::Usage(_))),
        "message 0 queues nothing"
    );
    assert!(pop.retr_many(&[], |_, _| Ok(())).await.is_ok());
    pop.quit().await.unwrap();
    // QUIT removed 1, 2 and 4, and only those: the refused batch sent nothing (the server
    // would have taken DELE 5).
    let left: Vec<Vec<u8>> = messages
        .iter()
        .enumerate()
        .filter(|(i, _)| ![0, 1, 3].contains(i))
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(server.messages(), left);
    assert_eq!(server.quits(), 1);
}

#[tokio::test]
async fn retr_many_callback_error_stops_the_batch_but_not_the_session() {
    let messages: Vec<Vec<u8>> = (0..20).map(|i| message(i, 3000)).collect();
    let server = mailbox(messages);
    let mut pop = session(&server).await;
    let all: Vec<u32> = (1..=20).collect();
    let result = pop
        .retr_many(&all, |msg, _| {
            if msg == 5 {
                Err(std::io::Error::other("stop"))
            } else {
                Ok(())
            }
        })
        .await;
    assert!(matches!(result, Err(Error::Io(_))));
    assert_eq!(pop.stat().await.unwrap().count, 20);
}

/// The far end of an in-memory pipe (so not a TCP server like the kit's): after each read, it
/// writes the replies to every complete command in it before it reads again. With a small
/// pipe, a client that does not read while it writes deadlocks.
async fn greedy_server<S: AsyncRead + AsyncWrite + Unpin>(io: S, messages: Arc<Vec<Vec<u8>>>) {
    let (mut reader, mut writer) = tokio::io::split(io);
    writer.write_all(b"+OK greedy\r\n").await.unwrap();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(pending.drain(..end + 2).collect()).unwrap();
            let mut words = line.trim_end().split(' ');
            match (words.next().unwrap(), words.next()) {
                ("CAPA", _) => out.extend_from_slice(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"),
                ("RETR", Some(n)) => {
                    let m = &messages[n.parse::<usize>().unwrap() - 1];
                    out.extend_from_slice(b"+OK\r\n");
                    out.extend_from_slice(&multiline(m));
                }
                ("QUIT", _) => {
                    out.extend_from_slice(b"+OK bye\r\n");
                    writer.write_all(&out).await.unwrap();
                    return;
                }
                _ => out.extend_from_slice(b"+OK\r\n"),
            }
        }
        writer.write_all(&out).await.unwrap();
    }
}

async fn fetch_all<S: AsyncRead + AsyncWrite + Unpin>(io: S, messages: &[Vec<u8>]) {
    let mut pop = Connection::new(io, &options()).await.unwrap();
    pop.user("u").await.unwrap();
    pop.pass("p").await.unwrap();
    let all: Vec<u32> = (1..=messages.len() as u32).collect();
    let mut current = Vec::new();
    let mut done = 0;
    pop.retr_many(&all, |msg, event| {
        match event {
            RetrEvent::Start => assert!(current.is_empty()),
            RetrEvent::Chunk(bytes) => current.extend_from_slice(bytes),
            RetrEvent::End { .. } => {
                assert_eq!(current, messages[msg as usize - 1], "message {msg}");
                current.clear();
                done += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(done, messages.len());
    pop.quit().await.unwrap();
}

#[tokio::test]
async fn no_deadlock_over_a_small_duplex_pipe() {
    let messages: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..2000)
            .map(|i| message(i, 200 + (i as usize % 7) * 300))
            .collect(),
    );
    let (client, server) = tokio::io::duplex(64);
    let server = tokio::spawn(greedy_server(server, messages.clone()));
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        fetch_all(client, &messages),
    )
    .await
    .expect("deadlock: the batch did not finish");
    server.await.unwrap();
}

#[tokio::test]
async fn no_deadlock_over_tcp() {
    let messages: Vec<Vec<u8>> = (0..2000)
        .map(|i| message(i, 4000 + (i as usize % 5) * 1000))
        .collect();
    // The kit's mailbox server answers each command as it reads it, so it stops reading while
    // a reply does not fit: a client that does not read while it writes deadlocks.
    let server = MailboxServer::builder(messages.clone())
        .credentials("u", "p")
        .start()
        .unwrap();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        fetch_all(tcp, &messages),
    )
    .await
    .expect("deadlock: the batch did not finish");
    assert_eq!(server.quits(), 1);
}
