//! The blocking adapter's API as a library user meets it (issue 15 §2), against the kit's
//! servers: the "already logged in" error, the tracing target, the start-of-message event, the
//! UID-safe helpers and the parsed view.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use pop3_blocking::{Connection, Error, Options, Security};
use pop3_tests::{MailboxServer, Script, ScriptedServer};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn options() -> Options {
    Options::default()
        .timeout(Duration::from_secs(10))
        .allow_plaintext(true)
}

/// For scripted transcripts: no automatic CAPA, so the wire holds only what the test calls.
fn scripted_options() -> Options {
    let mut config = pop3_blocking::Config::default();
    config.auto_capa = false;
    options().config(config)
}

fn connect(server: &MailboxServer) -> Result<Connection, Error> {
    Connection::connect("127.0.0.1", server.port(), Security::None, &options())
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
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.login("alice", "secret-a").unwrap_err();
    assert!(matches!(error, Error::AlreadyLoggedIn), "{error:?}");
    assert_eq!(
        error.to_string(),
        "already logged in: log in once per connection"
    );
    // Nothing was sent, and the session goes on.
    assert_eq!(pop.stat()?.count, 1);
    assert_eq!(server.logins(), 1);
    pop.quit()?;
    Ok(())
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
    let mut pop = Connection::connect(
        "127.0.0.1",
        server.port(),
        Security::None,
        &scripted_options(),
    )?;
    pop.login("alice", "secret-a")?;
    assert!(matches!(
        pop.login("alice", "secret-a"),
        Err(Error::AlreadyLoggedIn)
    ));
    pop.noop()?;
    drop(pop);
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received_str(),
        "USER alice\r\nPASS secret-a\r\nNOOP\r\n"
    );
    Ok(())
}

// ---- RetrEvent::Start ----

/// Records one event; consecutive chunks of a message are joined (read boundaries are not
/// part of the contract).
fn record(seen: &mut Vec<String>, msg: u32, event: &pop3_blocking::RetrEvent<'_>) {
    use pop3_blocking::RetrEvent;
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
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    for pipelined in [true, false] {
        let mut seen = Vec::new();
        let msgs: &[u32] = if pipelined { &[1, 2, 4, 3] } else { &[2] };
        pop.retr_many(msgs, |msg, event| {
            record(&mut seen, msg, &event);
            Ok(())
        })?;
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
    // A caller creates the file on Start: the empty message gets its (empty) file.
    let dir = std::env::temp_dir().join(format!("pop3-api-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    pop.retr_many(&[2], |msg, event| {
        if let pop3_blocking::RetrEvent::Start = event {
            let path = dir.join(format!("message-{msg}.eml"));
            std::fs::File::create(&path)?;
            files.push(path);
        }
        Ok(())
    })?;
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0])?, b"");
    std::fs::remove_dir_all(&dir)?;
    pop.quit()?;
    Ok(())
}

// ---- dele_uid and fetch_new ----

#[test]
fn dele_uid_deletes_only_the_message_the_caller_believes_in() -> TestResult {
    let server = mailbox(&[b"one\r\n", b"two\r\n", b"three\r\n"])?;
    let uids = server.uids();
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    pop.dele_uid(2, &uids[1])?;
    pop.quit()?;
    assert_eq!(server.uids(), [uids[0].clone(), uids[2].clone()]);

    // A later session with the stale belief "message 2 is uids[1]": number 2 is now uids[2].
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.dele_uid(2, &uids[1]).unwrap_err();
    let Error::Uid(pop3_blocking::UidError::Mismatch {
        msg,
        expected,
        found,
    }) = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((*msg, expected, found), (2, &uids[1], &uids[2]));
    assert!(error.to_string().contains("nothing was deleted"), "{error}");
    // A number the server does not have: its -ERR, nothing deleted.
    assert!(matches!(pop.dele_uid(7, &uids[0]), Err(Error::Server(_))));
    pop.quit()?;
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
    let mut pop = Connection::connect(
        "127.0.0.1",
        server.port(),
        Security::None,
        &scripted_options(),
    )?;
    pop.login("alice", "secret-a")?;
    assert!(matches!(
        pop.dele_uid(2, "yyy"),
        Err(Error::Uid(pop3_blocking::UidError::Mismatch { .. }))
    ));
    pop.dele_uid(1, "aaa")?;
    pop.noop()?;
    drop(pop);
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

impl pop3_blocking::SeenStore for FailingStore {
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

#[test]
fn fetch_new_fetches_only_what_is_not_recorded_and_never_deletes() -> TestResult {
    use pop3_blocking::RetrEvent;
    let server = mailbox(&[b"one\r\n", b"", b"three\r\n"])?;
    let uids = server.uids();
    let mut store = std::collections::HashSet::new();
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let fetch = |store: &mut std::collections::HashSet<String>,
                 stored: &mut Vec<(String, Vec<u8>)>|
     -> Result<pop3_blocking::FetchReport, Error> {
        let mut pop = connect(&server)?;
        pop.login("alice", "secret-a")?;
        let report = pop.fetch_new(store, |entry, event| {
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
        })?;
        pop.quit()?;
        Ok(report)
    };
    let report = fetch(&mut store, &mut stored)?;
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

    // A new message arrives: only it is fetched.
    server.push_message(b"four\r\n");
    stored.clear();
    let report = fetch(&mut store, &mut stored)?;
    let new_uid = server.uids()[3].clone();
    assert_eq!(report.fetched.len(), 1);
    assert_eq!(report.fetched[0].uid, new_uid);
    assert_eq!(stored, [(new_uid, b"four\r\n".to_vec())]);
    // Nothing new: nothing fetched.
    stored.clear();
    assert!(fetch(&mut store, &mut stored)?.fetched.is_empty());
    assert!(stored.is_empty());
    // Never deletes.
    assert_eq!(server.messages().len(), 4);

    // A store that fails on the second record: the error comes back, the first stays recorded,
    // and the connection is still usable.
    let mut failing = FailingStore {
        fail_at: 2,
        ..FailingStore::default()
    };
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.fetch_new(&mut failing, |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.to_string() == "disk full"),
        "{error:?}"
    );
    assert_eq!(failing.seen.len(), 1);
    assert!(failing.seen.contains(&uids[0]));
    assert_eq!(pop.stat()?.count, 4);
    pop.quit()?;
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
    let mut pop = Connection::connect(
        "127.0.0.1",
        server.port(),
        Security::None,
        &scripted_options(),
    )?;
    pop.login("alice", "secret-a")?;
    let mut store = std::collections::HashSet::new();
    let error = pop.fetch_new(&mut store, |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Protocol(pop3_blocking::pop3_proto::ProtocolError::DuplicateEntries { listing: "UIDL", uids, .. })
                if uids == &["same"]
        ),
        "{error:?}"
    );
    // A repeated UID is a protocol violation (the core's typed error): the session is over.
    drop(pop);
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

fn check_parsed(message: &pop3_blocking::mail_parser::Message<'_>) {
    use pop3_blocking::mail_parser::MimeHeaders as _;
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
    let mut pop = connect(&server)?;
    pop.login("alice", "secret-a")?;
    let message = pop.retr_parsed(1, 1 << 20)?;
    check_parsed(&message);
    assert!(matches!(
        pop.retr_parsed(2, 1 << 20),
        Err(Error::NotAMessage { msg: 2 })
    ));
    assert!(matches!(
        pop.retr_parsed(3, 37),
        Err(Error::MessageTooLarge { msg: 3, limit: 37 })
    ));
    // Within the limit (the message is 38 octets: one more is too many), and the session is in step after the refusal.
    assert_eq!(pop.retr_parsed(3, 38)?.subject(), Some("big"));
    assert!(matches!(pop.retr_parsed(9, 100), Err(Error::Server(_))));
    assert_eq!(pop.stat()?.count, 3);
    pop.quit()?;
    Ok(())
}
