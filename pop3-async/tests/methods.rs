//! Every typed method against canned server bytes, checking what was sent byte for byte.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Peer, multiline, options, serve_one};
use pop3_async::pop3_proto::sasl::Plain;
use pop3_async::pop3_proto::{CommandKind, ResponseCode};
use pop3_async::{Connection, Error, LoginMethod, ScanListing, Security, Stat, UniqueIdListing};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CAPA: &str = "+OK\r\nUSER\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\nLANG\r\nUTF8\r\n.\r\n";

async fn greet<S: AsyncRead + AsyncWrite + Unpin>(peer: &mut Peer<S>, capa: &str) {
    peer.send("+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n")
        .await;
    peer.expect("CAPA").await;
    peer.send(capa).await;
}

async fn connect(addr: std::net::SocketAddr) -> Connection<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    Connection::new(tcp, &options()).await.unwrap()
}

#[tokio::test]
async fn every_method_on_canned_bytes() {
    let body = b"Subject: hi\r\n\r\n.leading dot\r\nline two\r\n".to_vec();
    let body2 = body.clone();
    let (addr, server) = serve_one(move |mut p| async move {
        greet(&mut p, CAPA).await;
        p.expect("UTF8").await;
        p.send("+OK UTF8 enabled\r\n").await;
        p.expect("LANG").await;
        p.send("+OK\r\nen English\r\nde Deutsch\r\n.\r\n").await;
        p.expect("LANG de").await;
        p.send("+OK Sprache geaendert\r\n").await;
        p.expect("USER alice").await;
        p.send("+OK\r\n").await;
        p.expect("PASS secret word").await;
        p.send("+OK maildrop locked\r\n").await;
        p.expect("CAPA").await;
        p.send(CAPA).await;
        p.expect("STAT").await;
        p.send("+OK 2 320\r\n").await;
        p.expect("LIST").await;
        p.send("+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n").await;
        p.expect("LIST 2").await;
        p.send("+OK 2 200\r\n").await;
        p.expect("UIDL").await;
        p.send("+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n")
            .await;
        p.expect("UIDL 1").await;
        p.send("+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n").await;
        for command in ["RETR 1", "RETR 1", "TOP 1 0"] {
            p.expect(command).await;
            p.send("+OK\r\n").await;
            p.send_raw(&multiline(&body2)).await;
        }
        p.expect("RETR 9").await;
        p.send("-ERR [SYS/PERM] no such message\r\n").await;
        p.expect("DELE 1").await;
        p.send("+OK message 1 deleted\r\n").await;
        p.expect("RSET").await;
        p.send("+OK\r\n").await;
        p.expect("NOOP").await;
        p.send("+OK\r\n").await;
        p.expect("QUIT").await;
        p.send("+OK dewey POP3 server signing off\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = connect(addr).await;
    assert!(pop.greeting().apop);
    assert_eq!(
        pop.greeting().text,
        "POP3 ready <1896.697170952@dbc.mtview.ca.us>"
    );
    assert!(pop.capabilities().unwrap().top);
    assert_eq!(pop.utf8().await.unwrap().text, "UTF8 enabled");
    assert_eq!(
        pop.lang().await.unwrap(),
        vec![
            ("en".into(), "English".into()),
            ("de".into(), "Deutsch".into())
        ]
    );
    pop.set_lang("de").await.unwrap();
    pop.user("alice").await.unwrap();
    assert_eq!(
        pop.pass("secret word").await.unwrap().text,
        "maildrop locked"
    );
    assert!(
        pop.capabilities().is_none(),
        "the CAPA asked after login goes out with the next command"
    );
    assert_eq!(
        pop.stat().await.unwrap(),
        Stat {
            count: 2,
            size: 320
        }
    );
    assert_eq!(
        pop.list().await.unwrap(),
        vec![
            ScanListing { msg: 1, size: 120 },
            ScanListing { msg: 2, size: 200 }
        ]
    );
    assert_eq!(
        pop.list_one(2).await.unwrap(),
        ScanListing { msg: 2, size: 200 }
    );
    let uids = pop.uidl().await.unwrap();
    assert_eq!(
        uids[1],
        UniqueIdListing {
            msg: 2,
            uid: "QhdPYR:00WBw1Ph7x7".into()
        }
    );
    assert_eq!(
        pop.uidl_one(1).await.unwrap().uid,
        "whqtswO00WBw418f9t5JxYwZ"
    );
    assert_eq!(pop.retr_vec(1).await.unwrap(), body);
    let mut out = Vec::new();
    assert_eq!(pop.retr(1, &mut out).await.unwrap(), body.len() as u64);
    assert_eq!(out, body);
    assert_eq!(pop.top_vec(1, 0).await.unwrap(), body);
    match pop.retr_vec(9).await {
        Err(Error::Server(e)) => {
            assert_eq!(e.command, CommandKind::Retr);
            assert_eq!(e.code, Some(ResponseCode::SysPerm));
            assert_eq!(e.text, "no such message");
        }
        other => panic!("expected -ERR, got {other:?}"),
    }
    pop.dele(1).await.unwrap();
    pop.rset().await.unwrap();
    pop.noop().await.unwrap();
    assert_eq!(
        pop.quit().await.unwrap().text,
        "dewey POP3 server signing off"
    );
    let received = server.await.unwrap();
    assert!(!received.is_empty());
}

#[tokio::test]
async fn usage_errors_send_nothing_and_keep_the_session() {
    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, "-ERR no CAPA\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = connect(addr).await;
    // RETR before login: wrong phase; an argument with CR LF: refused before anything is sent.
    assert!(matches!(pop.retr_vec(1).await, Err(Error::Usage(_))));
    assert!(matches!(
        pop.user("a\r\nDELE 1").await,
        Err(Error::Usage(_))
    ));
    drop(pop);
    // Exactly the automatic CAPA reached the server: no RETR, no USER, no smuggled DELE.
    assert_eq!(server.await.unwrap(), ["CAPA"]);
}

#[tokio::test]
async fn password_refused_without_tls_by_default() {
    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, CAPA).await;
        p.drain().await
    })
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut pop = Connection::new(tcp, &pop3_async::Options::default())
        .await
        .unwrap();
    assert!(matches!(pop.pass("x").await, Err(Error::Usage(_))));
    assert!(matches!(
        pop.login("alice", "x").await,
        Err(Error::Login(_))
    ));
    drop(pop);
    // Neither call put a credential (nor a USER) on the wire.
    assert_eq!(server.await.unwrap(), ["CAPA"]);
}

#[tokio::test]
async fn refused_greeting() {
    let (addr, _server) = serve_one(|mut p| async move {
        p.send("-ERR [IN-USE] go away\r\n").await;
        p.drain().await
    })
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    match Connection::new(tcp, &options()).await {
        Err(Error::GreetingRefused { code, text }) => {
            assert_eq!(code, Some(ResponseCode::InUse));
            assert_eq!(text, "go away");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn auth_plain_and_login_choice() {
    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, CAPA).await;
        // login(): PLAIN is preferred over USER/PASS.
        p.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==").await;
        p.send("+OK\r\n").await;
        // Nothing follows the login until the next command.
        p.drain().await
    })
    .await;
    let mut pop = connect(addr).await;
    assert_eq!(
        pop.login("alice", "secret").await.unwrap(),
        LoginMethod::Plain
    );
    drop(pop);
    server.await.unwrap();

    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, CAPA).await;
        p.expect("AUTH PLAIN AGJvYgBodW50ZXIy").await;
        p.send("-ERR [AUTH] invalid\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = connect(addr).await;
    let refused = pop
        .auth(Plain::new(None, "bob".into(), "hunter2".into()))
        .await;
    assert!(
        matches!(refused, Err(Error::Server(ref e)) if e.code == Some(ResponseCode::Auth)),
        "{refused:?}"
    );
    // The session goes on after -ERR (NOOP is refused locally: still AUTHORIZATION).
    assert!(matches!(pop.noop().await, Err(Error::Usage(_))));
    drop(pop);
    // The refused NOOP never reached the server.
    assert_eq!(
        server.await.unwrap(),
        ["CAPA", "AUTH PLAIN AGJvYgBodW50ZXIy"]
    );
}

#[tokio::test]
async fn apop_digest() {
    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, "-ERR\r\n").await;
        // RFC 1939 §7's example.
        p.expect("APOP mrose c4c9334bac560ecc979e58001b3e22fb")
            .await;
        p.send("+OK maildrop has 1 message (369 octets)\r\n").await;
        p.expect("CAPA").await;
        p.send("-ERR\r\n").await;
        p.expect("STAT").await;
        p.send("+OK 1 369\r\n").await;
        p.drain().await
    })
    .await;
    let mut pop = connect(addr).await;
    pop.apop("mrose", "tanstaaf").await.unwrap();
    assert_eq!(pop.stat().await.unwrap().count, 1);
    drop(pop);
    server.await.unwrap();
}

#[tokio::test]
async fn connect_helper_plain() {
    let (addr, server) = serve_one(|mut p| async move {
        greet(&mut p, CAPA).await;
        p.expect("QUIT").await;
        p.send("+OK bye\r\n").await;
        p.drain().await
    })
    .await;
    let pop = Connection::connect("127.0.0.1", addr.port(), Security::None, &options())
        .await
        .unwrap();
    assert!(!pop.is_tls());
    pop.quit().await.unwrap();
    server.await.unwrap();
}
