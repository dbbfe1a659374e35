//! Timeouts and cancel safety: a dropped future poisons the connection and nothing is
//! committed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{complete, message, multiline, options, serve, serve_script};
use futures_core::Stream;
use pop3_async::{Connection, Error};
use pop3_tests::{Script, ScriptedServer};
use tokio::net::TcpStream;

/// Greeting, CAPA, USER u, PASS p and the CAPA after login.
const LOGGED_IN: &str = r"
S: +OK ready
C: CAPA
S-RAW: +OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n
C: USER u
S: +OK
C: PASS p
S: +OK
C: CAPA
S-RAW: +OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n
";

async fn login(pop: &mut Connection<TcpStream>) {
    pop.user("u").await.unwrap();
    pop.pass("p").await.unwrap();
}

#[tokio::test]
async fn timeout_on_a_stalled_server_closes_the_connection() {
    // Stall: no answer to STAT.
    let server = serve(&format!("{LOGGED_IN}\nC: STAT\nEOF"));
    let mut options = options();
    options.timeout = Duration::from_millis(200);
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    // Nothing after STAT: no NOOP, no QUIT.
    complete(server).await;
}

#[tokio::test]
async fn stalled_greeting_times_out() {
    let server = serve("EOF");
    let mut options = options();
    options.timeout = Duration::from_millis(100);
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    assert!(matches!(
        Connection::new(tcp, &options).await,
        Err(Error::Timeout(pop3_async::pop3_proto::Expired::Timeout {
            awaiting: pop3_async::pop3_proto::Awaiting::Greeting,
            ..
        }))
    ));
    // The client sent nothing.
    complete(server).await;
}

/// A server that sends half of message 1 and then stalls until the client closes: nothing
/// may follow RETR 1 (no QUIT, nothing after the cancelled RETR). The client drops the
/// connection with the rest of the body unread, so it may close with a reset.
fn half_message_server() -> ScriptedServer {
    let body = multiline(&message(1, 200_000));
    serve_script(
        Script::parse(LOGGED_IN)
            .unwrap()
            .expect("DELE 2")
            .send("+OK deleted")
            .expect("RETR 1")
            .send("+OK")
            .send_raw(&body[..body.len() / 2])
            .expect_eof_or_reset(),
    )
}

#[tokio::test]
async fn dropped_retr_poisons_and_commits_nothing() {
    let server = half_message_server();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    // RETR 1 was the last command.
    complete(server).await;
}

#[tokio::test]
async fn dropped_body_stream_poisons() {
    let server = half_message_server();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    // No NOOP, no QUIT.
    complete(server).await;
}

#[tokio::test]
async fn select_cancellation_in_a_loop() {
    // The common pattern: a shutdown signal racing an operation.
    let server = half_message_server();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    // No QUIT.
    complete(server).await;
}

#[tokio::test]
async fn writer_error_keeps_the_connection_usable() {
    let server = serve_script(
        Script::parse(LOGGED_IN)
            .unwrap()
            .expect("RETR 1")
            .send("+OK")
            .send_raw(&multiline(&message(1, 300_000)))
            .expect("NOOP")
            .send("+OK still here"),
    );
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut pop = Connection::new(tcp, &options()).await.unwrap();
    login(&mut pop).await;
    let mut out = FullDisk(1000);
    assert!(matches!(pop.retr(1, &mut out).await, Err(Error::Io(_))));
    // The rest of the message is skipped; the session goes on.
    assert_eq!(pop.noop().await.unwrap().text, "still here");
    drop(pop);
    complete(server).await;
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
