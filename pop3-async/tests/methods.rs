//! Every typed method against canned server bytes, checking what was sent byte for byte.
#![allow(clippy::unwrap_used)]

mod common;

use common::{complete, multiline, options, serve, serve_script};
use pop3_async::pop3_proto::sasl::Plain;
use pop3_async::pop3_proto::{CommandKind, ResponseCode};
use pop3_async::{Connection, Error, LoginMethod, ScanListing, Security, Stat, UniqueIdListing};
use pop3_tests::Script;
use tokio::net::TcpStream;

/// The CAPA reply, escaped for `S-RAW`.
const CAPA: &str = r"+OK\r\nUSER\r\nTOP\r\nUIDL\r\nSASL PLAIN\r\nLANG\r\nUTF8\r\n.\r\n";

/// The greeting, the automatic CAPA and its reply (`capa`, escaped for `S-RAW`), then `rest`.
fn greet(capa: &str, rest: &str) -> String {
    format!(
        r"
        S: +OK POP3 ready <1896.697170952@dbc.mtview.ca.us>
        C: CAPA
        S-RAW: {capa}
        {rest}
        "
    )
}

async fn connect(addr: std::net::SocketAddr) -> Connection<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    Connection::new(tcp, &options()).await.unwrap()
}

#[tokio::test]
async fn every_method_on_canned_bytes() {
    let body = b"Subject: hi\r\n\r\n.leading dot\r\nline two\r\n".to_vec();
    let mut script = Script::parse(&greet(
        CAPA,
        &format!(
            r"
        C: UTF8
        S: +OK UTF8 enabled
        C: LANG
        S-RAW: +OK\r\nen English\r\nde Deutsch\r\n.\r\n
        C: LANG de
        S: +OK Sprache geaendert
        C: USER alice
        S: +OK
        C: PASS secret word
        S: +OK maildrop locked
        C: CAPA
        S-RAW: {CAPA}
        C: STAT
        S: +OK 2 320
        C: LIST
        S-RAW: +OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n
        C: LIST 2
        S: +OK 2 200
        C: UIDL
        S-RAW: +OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n
        C: UIDL 1
        S: +OK 1 whqtswO00WBw418f9t5JxYwZ
        "
        ),
    ))
    .unwrap();
    for command in ["RETR 1", "RETR 1", "TOP 1 0"] {
        script = script
            .expect(command)
            .send("+OK")
            .send_raw(&multiline(&body));
    }
    let script = script
        .expect("RETR 9")
        .send("-ERR [SYS/PERM] no such message")
        .expect("DELE 1")
        .send("+OK message 1 deleted")
        .expect("RSET")
        .send("+OK")
        .expect("NOOP")
        .send("+OK")
        .expect("QUIT")
        .send("+OK dewey POP3 server signing off")
        .expect_eof();
    let server = serve_script(script);
    let addr = server.addr();
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
    complete(server).await;
}

#[tokio::test]
async fn usage_errors_send_nothing_and_keep_the_session() {
    let server = serve(&greet(r"-ERR no CAPA\r\n", "EOF"));
    let mut pop = connect(server.addr()).await;
    // RETR before login: wrong phase; an argument with CR LF: refused before anything is sent.
    assert!(matches!(pop.retr_vec(1).await, Err(Error::Usage(_))));
    assert!(matches!(
        pop.user("a\r\nDELE 1").await,
        Err(Error::Usage(_))
    ));
    drop(pop);
    // Exactly the automatic CAPA reached the server: no RETR, no USER, no smuggled DELE.
    assert_eq!(complete(server).await.received(), b"CAPA\r\n");
}

#[tokio::test]
async fn password_refused_without_tls_by_default() {
    let server = serve(&greet(CAPA, "EOF"));
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    assert_eq!(complete(server).await.received(), b"CAPA\r\n");
}

#[tokio::test]
async fn refused_greeting() {
    let server = serve("S: -ERR [IN-USE] go away");
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
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
    let server = serve(&greet(
        CAPA,
        r"
        # login(): PLAIN is preferred over USER/PASS.
        C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
        S: +OK
        # Nothing follows the login until the next command.
        EOF
        ",
    ));
    let mut pop = connect(server.addr()).await;
    assert_eq!(
        pop.login("alice", "secret").await.unwrap(),
        LoginMethod::Plain
    );
    drop(pop);
    complete(server).await;

    let server = serve(&greet(
        CAPA,
        r"
        C: AUTH PLAIN AGJvYgBodW50ZXIy
        S: -ERR [AUTH] invalid
        EOF
        ",
    ));
    let mut pop = connect(server.addr()).await;
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
        complete(server).await.received(),
        b"CAPA\r\nAUTH PLAIN AGJvYgBodW50ZXIy\r\n"
    );
}

#[tokio::test]
async fn apop_digest() {
    let server = serve(&greet(
        r"-ERR\r\n",
        r"
        # RFC 1939 §7's example.
        C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
        S: +OK maildrop has 1 message (369 octets)
        C: CAPA
        S: -ERR
        C: STAT
        S: +OK 1 369
        ",
    ));
    let mut pop = connect(server.addr()).await;
    pop.apop("mrose", "tanstaaf").await.unwrap();
    assert_eq!(pop.stat().await.unwrap().count, 1);
    drop(pop);
    complete(server).await;
}

#[tokio::test]
async fn connect_helper_plain() {
    let server = serve(&greet(
        CAPA,
        r"
        C: QUIT
        S: +OK bye
        ",
    ));
    let pop = Connection::connect("127.0.0.1", server.port(), Security::None, &options())
        .await
        .unwrap();
    assert!(!pop.is_tls());
    pop.quit().await.unwrap();
    complete(server).await;
}
