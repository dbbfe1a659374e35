//! Timeouts and cancel safety: a dropped future poisons the connection and nothing is
//! committed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Peer, message, multiline, options, serve_one};
use futures_core::Stream;
use pop3_async::{Connection, Error};
use tokio::net::TcpStream;

const CAPA: &str = "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n";

async fn logged_in(p: &mut Peer<TcpStream>) {
    p.send("+OK ready\r\n").await;
    p.expect("CAPA").await;
    p.send(CAPA).await;
    p.expect("USER u").await;
    p.send("+OK\r\n").await;
    p.expect("PASS p").await;
    p.send("+OK\r\n").await;
    p.expect("CAPA").await;
    p.send(CAPA).await;
}

async fn login(pop: &mut Connection<TcpStream>) {
    pop.user("u").await.unwrap();
    pop.pass("p").await.unwrap();
}

#[tokio::test]
async fn timeout_on_a_stalled_server_closes_the_connection() {
    let (addr, server) = serve_one(|mut p| async move {
        logged_in(&mut p).await;
        p.expect("STAT").await;
        // Stall: no answer.
        p.drain().await
    })
    .await;
    let mut options = options();
    options.timeout = Duration::from_millis(200);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &options).await.unwrap();
    login(&mut pop).await;
    let started = std::time::Instant::now();
    let error = pop.stat().await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "timed out after 0.2 s waiting for the reply to STAT"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(pop.noop().await, Err(Error::Unusable(_))));
    drop(pop);
    let received = server.await.unwrap();
    assert!(
        !received.iter().any(|l| l == "QUIT" || l == "NOOP"),
        "{received:?}"
    );
}

#[tokio::test]
async fn stalled_greeting_times_out() {
    let (addr, _server) = serve_one(|p| async move { p.drain().await }).await;
    let mut options = options();
    options.timeout = Duration::from_millis(100);
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(matches!(
        Connection::new(tcp, &options).await,
        Err(Error::Timeout(pop3_async::pop3_proto::Expired::Timeout {
            awaiting: pop3_async::pop3_proto::Awaiting::Greeting,
            ..
        }))
    ));
}

/// A server that sends half of message 1 and then stalls, logging everything it receives.
async fn half_message_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    serve_one(|mut p| async move {
        logged_in(&mut p).await;
        p.expect("DELE 2").await;
        p.send("+OK deleted\r\n").await;
        p.expect("RETR 1").await;
        let body = multiline(&message(1, 200_000));
        p.send("+OK\r\n").await;
        p.send_raw(&body[..body.len() / 2]).await;
        p.drain().await
    })
    .await
}

#[tokio::test]
async fn dropped_retr_poisons_and_commits_nothing() {
    let (addr, server) = half_message_server().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    login(&mut pop).await;
    pop.dele(2).await.unwrap();
    // The caller gives up on RETR midway: its future is dropped.
    let cut = tokio::time::timeout(Duration::from_millis(300), pop.retr_vec(1)).await;
    assert!(cut.is_err(), "the retr should still be waiting");
    assert!(pop.is_poisoned());
    assert!(matches!(pop.stat().await, Err(Error::Poisoned)));
    assert!(matches!(pop.dele(1).await, Err(Error::Poisoned)));
    // QUIT would commit DELE 2: a poisoned connection refuses it.
    assert!(matches!(pop.quit().await, Err(Error::Poisoned)));
    let received = server.await.unwrap();
    assert_eq!(
        received.last().map(String::as_str),
        Some("RETR 1"),
        "{received:?}"
    );
    assert!(!received.iter().any(|l| l == "QUIT"));
}

#[tokio::test]
async fn dropped_body_stream_poisons() {
    let (addr, server) = half_message_server().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    login(&mut pop).await;
    pop.dele(2).await.unwrap();
    {
        let mut stream = pop.retr_stream(1);
        let first = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await;
        assert!(matches!(first, Some(Ok(ref chunk)) if !chunk.is_empty()));
    }
    assert!(matches!(pop.noop().await, Err(Error::Poisoned)));
    assert!(matches!(pop.quit().await, Err(Error::Poisoned)));
    let received = server.await.unwrap();
    assert!(
        !received.iter().any(|l| l == "QUIT" || l == "NOOP"),
        "{received:?}"
    );
}

#[tokio::test]
async fn select_cancellation_in_a_loop() {
    // The common pattern: a shutdown signal racing an operation.
    let (addr, server) = half_message_server().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    login(&mut pop).await;
    pop.dele(2).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(());
    });
    tokio::select! {
        _ = rx => {}
        r = pop.retr_vec(1) => panic!("the server stalls, yet retr returned {r:?}"),
    }
    assert!(matches!(pop.list().await, Err(Error::Poisoned)));
    drop(pop);
    let received = server.await.unwrap();
    assert!(!received.iter().any(|l| l == "QUIT"));
}

#[tokio::test]
async fn writer_error_keeps_the_connection_usable() {
    let (addr, server) = serve_one(|mut p| async move {
        logged_in(&mut p).await;
        p.expect("RETR 1").await;
        p.send("+OK\r\n").await;
        p.send_raw(&multiline(&message(1, 300_000))).await;
        p.expect("NOOP").await;
        p.send("+OK still here\r\n").await;
        p.drain().await
    })
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    login(&mut pop).await;
    let mut out = FullDisk(1000);
    assert!(matches!(pop.retr(1, &mut out).await, Err(Error::Io(_))));
    // The rest of the message is skipped; the session goes on.
    assert_eq!(pop.noop().await.unwrap().text, "still here");
    drop(pop);
    server.await.unwrap();
}

/// A writer that fails once it has taken its capacity.
struct FullDisk(usize);

impl tokio::io::AsyncWrite for FullDisk {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk full")));
        }
        let n = buf.len().min(self.0);
        self.0 -= n;
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
