//! The async adapter's API as a library user meets it (issue 15 §2), against the kit's
//! servers: the "already logged in" error, `BodyStream::next`, the tracing target, the
//! start-of-message event, the UID-safe helpers and the parsed view.
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use pop3_async::{Connection, Error, Options, Security};
use pop3_tests::{MailboxServer, Script, ScriptedServer};

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

/// For scripted transcripts: no automatic CAPA, so the wire holds only what the test calls.
fn scripted_options() -> Options {
    let mut config = pop3_async::Config::default();
    config.auto_capa = false;
    options().config(config)
}

async fn connect(server: &MailboxServer) -> Result<Connection, Error> {
    Connection::connect("127.0.0.1", server.port(), Security::None, &options()).await
}

fn mailbox(messages: &[&[u8]]) -> Result<MailboxServer, pop3_tests::KitError> {
    Ok(MailboxServer::start(
        messages.iter().map(|m| m.to_vec()).collect(),
    )?)
}

// ---- login() twice ----

#[test]
fn login_on_a_logged_in_connection_says_already_logged_in() -> TestResult {
    let server = mailbox(&[b"Subject: a\r\n\r\nhi\r\n"])?;
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        let error = pop.login("alice", "secret-a").await.unwrap_err();
        assert!(matches!(error, Error::AlreadyLoggedIn), "{error:?}");
        assert_eq!(
            error.to_string(),
            "already logged in: log in once per connection"
        );
        assert_eq!(pop.stat().await?.count, 1);
        assert_eq!(server.logins(), 1);
        pop.quit().await?;
        Ok(())
    })
}

#[test]
fn second_login_sends_nothing() -> TestResult {
    let server = ScriptedServer::start(Script::parse(
        "
        S: +OK ready
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK in
        C: NOOP
        S: +OK
        ",
    )?)?;
    block_on(async {
        let mut pop = Connection::connect(
            "127.0.0.1",
            server.port(),
            Security::None,
            &scripted_options(),
        )
        .await?;
        pop.login("alice", "secret-a").await?;
        assert!(matches!(
            pop.login("alice", "secret-a").await,
            Err(Error::AlreadyLoggedIn)
        ));
        pop.noop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received_str(),
        "USER alice\r\nPASS secret-a\r\nNOOP\r\n"
    );
    Ok(())
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

// ---- RetrEvent::Start ----

/// Records one event; consecutive chunks of a message are joined (read boundaries are not
/// part of the contract).
fn record(seen: &mut Vec<String>, msg: u32, event: &pop3_async::RetrEvent<'_>) {
    use pop3_async::RetrEvent;
    let line = match event {
        RetrEvent::Start => format!("{msg} start"),
        RetrEvent::Chunk(chunk) => {
            let text = String::from_utf8_lossy(chunk);
            let prefix = format!("{msg} chunk ");
            if let Some(last) = seen.last_mut().filter(|l| l.starts_with(&prefix)) {
                last.push_str(&text);
                return;
            }
            format!("{prefix}{text}")
        }
        RetrEvent::End { octets } => format!("{msg} end {octets}"),
        RetrEvent::Refused(e) => format!("{msg} refused {}", e.text),
        other => format!("{msg} {other:?}"),
    };
    seen.push(line);
}

#[test]
fn retr_many_starts_every_message_even_an_empty_one() -> TestResult {
    let server = mailbox(&[b"a\r\n", b"", b"c\r\n"])?;
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        for pipelined in [true, false] {
            let mut seen = Vec::new();
            let msgs: &[u32] = if pipelined { &[1, 2, 4, 3] } else { &[2] };
            pop.retr_many(msgs, |msg, event| {
                record(&mut seen, msg, &event);
                Ok(())
            })
            .await?;
            let expected: &[&str] = if pipelined {
                &[
                    "1 start",
                    "1 chunk a\r\n",
                    "1 end 3",
                    "2 start",
                    "2 end 0",
                    "4 refused no such message",
                    "3 start",
                    "3 chunk c\r\n",
                    "3 end 3",
                ]
            } else {
                &["2 start", "2 end 0"]
            };
            assert_eq!(seen, expected);
        }
        pop.quit().await?;
        Ok(())
    })
}

// ---- dele_uid and fetch_new ----

#[test]
fn dele_uid_deletes_only_the_message_the_caller_believes_in() -> TestResult {
    let server = mailbox(&[b"one\r\n", b"two\r\n", b"three\r\n"])?;
    let uids = server.uids();
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        pop.dele_uid(2, &uids[1]).await?;
        pop.quit().await?;
        Ok::<_, Error>(())
    })?;
    assert_eq!(server.uids(), [uids[0].clone(), uids[2].clone()]);

    // A later session with the stale belief "message 2 is uids[1]": number 2 is now uids[2].
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        let error = pop.dele_uid(2, &uids[1]).await.unwrap_err();
        let Error::Uid(pop3_async::UidError::Mismatch {
            msg,
            expected,
            found,
        }) = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!((*msg, expected, found), (2, &uids[1], &uids[2]));
        assert!(error.to_string().contains("nothing was deleted"), "{error}");
        assert!(matches!(
            pop.dele_uid(7, &uids[0]).await,
            Err(Error::Server(_))
        ));
        pop.quit().await?;
        Ok::<_, Error>(())
    })?;
    assert_eq!(server.uids(), [uids[0].clone(), uids[2].clone()]);
    Ok(())
}

#[test]
fn dele_uid_sends_no_dele_on_a_mismatch() -> TestResult {
    let server = ScriptedServer::start(Script::parse(
        "
        S: +OK ready
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK in
        C: UIDL 2
        S: +OK 2 zzz
        C: UIDL 1
        S: +OK 1 aaa
        C: DELE 1
        S: +OK marked
        C: NOOP
        S: +OK
        ",
    )?)?;
    block_on(async {
        let mut pop = Connection::connect(
            "127.0.0.1",
            server.port(),
            Security::None,
            &scripted_options(),
        )
        .await?;
        pop.login("alice", "secret-a").await?;
        assert!(matches!(
            pop.dele_uid(2, "yyy").await,
            Err(Error::Uid(pop3_async::UidError::Mismatch { .. }))
        ));
        pop.dele_uid(1, "aaa").await?;
        pop.noop().await?;
        Ok::<_, Error>(())
    })?;
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received_str(),
        "USER alice\r\nPASS secret-a\r\nUIDL 2\r\nUIDL 1\r\nDELE 1\r\nNOOP\r\n"
    );
    Ok(())
}

/// A store that fails to record the n-th UID.
#[derive(Default)]
struct FailingStore {
    seen: std::collections::HashSet<String>,
    fail_at: usize,
}

impl pop3_async::SeenStore for FailingStore {
    fn is_seen(&self, uid: &str) -> bool {
        self.seen.contains(uid)
    }

    fn record(&mut self, uid: &str) -> std::io::Result<()> {
        if self.seen.len() + 1 == self.fail_at {
            return Err(std::io::Error::other("disk full"));
        }
        self.seen.insert(uid.to_owned());
        Ok(())
    }
}

async fn fetch(
    server: &MailboxServer,
    store: &mut std::collections::BTreeSet<String>,
    stored: &mut Vec<(String, Vec<u8>)>,
) -> Result<pop3_async::FetchReport, Error> {
    use pop3_async::RetrEvent;
    let mut pop = connect(server).await?;
    pop.login("alice", "secret-a").await?;
    let report = pop
        .fetch_new(store, |entry, event| {
            match event {
                RetrEvent::Start => stored.push((entry.uid.clone(), Vec::new())),
                RetrEvent::Chunk(chunk) => {
                    let last = stored.last_mut().unwrap();
                    assert_eq!(last.0, entry.uid);
                    last.1.extend_from_slice(chunk);
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
    pop.quit().await?;
    Ok(report)
}

#[test]
fn fetch_new_fetches_only_what_is_not_recorded_and_never_deletes() -> TestResult {
    let server = mailbox(&[b"one\r\n", b"", b"three\r\n"])?;
    let uids = server.uids();
    let mut store = std::collections::BTreeSet::new();
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let report = block_on(fetch(&server, &mut store, &mut stored))?;
    let fetched: Vec<&str> = report.fetched.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(fetched, uids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(report.refused.is_empty());
    assert_eq!(
        stored,
        [
            (uids[0].clone(), b"one\r\n".to_vec()),
            (uids[1].clone(), Vec::new()),
            (uids[2].clone(), b"three\r\n".to_vec()),
        ]
    );
    assert_eq!(store.len(), 3);

    server.push_message(b"four\r\n");
    stored.clear();
    let report = block_on(fetch(&server, &mut store, &mut stored))?;
    let new_uid = server.uids()[3].clone();
    assert_eq!(report.fetched.len(), 1);
    assert_eq!(report.fetched[0].uid, new_uid);
    assert_eq!(stored, [(new_uid, b"four\r\n".to_vec())]);
    stored.clear();
    assert!(
        block_on(fetch(&server, &mut store, &mut stored))?
            .fetched
            .is_empty()
    );
    assert!(stored.is_empty());
    assert_eq!(server.messages().len(), 4);

    let mut failing = FailingStore {
        fail_at: 2,
        ..FailingStore::default()
    };
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        let error = pop
            .fetch_new(&mut failing, |_, _| Ok(()))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Io(e) if e.to_string() == "disk full"),
            "{error:?}"
        );
        assert_eq!(pop.stat().await?.count, 4);
        pop.quit().await?;
        Ok::<_, Error>(())
    })?;
    assert_eq!(failing.seen.len(), 1);
    assert!(failing.seen.contains(&uids[0]));
    Ok(())
}

#[test]
fn fetch_new_refuses_a_listing_with_duplicate_uids_before_fetching() -> TestResult {
    let server = ScriptedServer::start(Script::parse(
        "
        S: +OK ready
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK in
        C: UIDL
        S: +OK
        S: 1 same
        S: 2 other
        S: 3 same
        S: .
        ",
    )?)?;
    let mut store = std::collections::HashSet::new();
    block_on(async {
        let mut pop = Connection::connect(
            "127.0.0.1",
            server.port(),
            Security::None,
            &scripted_options(),
        )
        .await?;
        pop.login("alice", "secret-a").await?;
        let error = pop.fetch_new(&mut store, |_, _| Ok(())).await.unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Protocol(pop3_async::pop3_proto::ProtocolError::DuplicateEntries { listing: "UIDL", uids, .. })
                if uids == &["same"]
            ),
            "{error:?}"
        );
        // A repeated UID is a protocol violation (the core's typed error): the session is over.
        Ok::<_, Error>(())
    })?;
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received_str(),
        "USER alice\r\nPASS secret-a\r\nUIDL\r\n"
    );
    assert!(store.is_empty());
    Ok(())
}

// ---- the parsed view (feature `mime`) ----

const MULTIPART: &[u8] = b"From: Alice <alice@example.com>\r\n\
To: bob@example.com\r\n\
Subject: =?utf-8?q?caf=C3=A9?= report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello Bob.\r\n\
.dotted line\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello Bob.</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAw==\r\n\
--outer--\r\n";

fn check_parsed(message: &pop3_async::mail_parser::Message<'_>) {
    use pop3_async::mail_parser::MimeHeaders as _;
    assert_eq!(message.subject(), Some("café report"));
    let from = message.from().and_then(|from| from.first()).unwrap();
    assert_eq!(from.name(), Some("Alice"));
    assert_eq!(from.address(), Some("alice@example.com"));
    assert_eq!(
        message.to().and_then(|to| to.first()).unwrap().address(),
        Some("bob@example.com")
    );
    // The dot-stuffed line arrives unstuffed.
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("Hello Bob.\r\n.dotted line")
    );
    assert_eq!(message.body_html(0).as_deref(), Some("<p>Hello Bob.</p>"));
    assert_eq!(message.attachment_count(), 1);
    let attachment = message.attachment(0).unwrap();
    assert_eq!(attachment.attachment_name(), Some("data.bin"));
    assert_eq!(attachment.contents(), [0, 1, 2, 3]);
    // multipart/mixed, multipart/alternative, text, html, attachment.
    assert_eq!(message.parts.len(), 5);
}

#[test]
fn retr_parsed_gives_headers_and_parts_of_a_multipart_message() -> TestResult {
    let server = mailbox(&[
        MULTIPART,
        b"",
        b"Subject: big\r\n\r\nxxxxxxxxxxxxxxxxxxxx\r\n",
    ])?;
    block_on(async {
        let mut pop = connect(&server).await?;
        pop.login("alice", "secret-a").await?;
        let message = pop.retr_parsed(1, 1 << 20).await?;
        check_parsed(&message);
        assert!(matches!(
            pop.retr_parsed(2, 1 << 20).await,
            Err(Error::NotAMessage { msg: 2 })
        ));
        assert!(matches!(
            pop.retr_parsed(3, 37).await,
            Err(Error::MessageTooLarge { msg: 3, limit: 37 })
        ));
        assert_eq!(pop.retr_parsed(3, 38).await?.subject(), Some("big"));
        assert!(matches!(
            pop.retr_parsed(9, 100).await,
            Err(Error::Server(_))
        ));
        assert_eq!(pop.stat().await?.count, 3);
        pop.quit().await?;
        Ok(())
    })
}
