//! The adapters' API as a library user meets it (issue 15 §2), against the kit's servers: the
//! "already logged in" error, the start-of-message event, the UID-safe helpers (`dele_uid`,
//! `fetch_new`) and the parsed view (`retr_parsed`, the adapters' `mime` feature), through the
//! same [`Adapter`] as the [`suite`](crate::suite) module. Instantiate it with one line per
//! adapter:
//!
//! ```ignore
//! pop3_tests::api_suite!(Blocking);
//! ```
//!
//! It expands into one `#[test]` per function of this module, all named `api_*`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use pop3_proto::ProtocolError;
use pop3_proto::request::RetrEvent;
use pop3_proto::uid::{FetchReport, SeenStore, UidError};

use crate::sasl_suite::TestResult;
use crate::suite::{Adapter, ConnectOptions, Failure, Security};
use crate::{MailboxServer, Script, ScriptedServer};

/// Expands into one `#[test]` per function of [`api_suite`](mod@crate::api_suite) for the given
/// [`Adapter`] type.
#[macro_export]
macro_rules! api_suite {
    ($adapter:ty) => {
        $crate::__suite_tests!(api_suite, $adapter;
            api_login_on_a_logged_in_connection_says_already_logged_in,
            api_second_login_sends_nothing,
            api_retr_many_starts_every_message_even_an_empty_one,
            api_dele_uid_deletes_only_the_message_the_caller_believes_in,
            api_dele_uid_sends_no_dele_on_a_mismatch,
            api_fetch_new_fetches_only_what_is_not_recorded_and_never_deletes,
            api_fetch_new_refuses_a_listing_with_duplicate_uids_before_fetching,
            api_retr_parsed_gives_headers_and_parts_of_a_multipart_message,
        );
    };
}

fn options() -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(10),
        ..ConnectOptions::plaintext()
    }
}

/// For scripted transcripts: no automatic CAPA, so the wire holds only what the test calls.
fn scripted_options() -> ConnectOptions {
    let mut options = options();
    options.config.auto_capa = false;
    options
}

fn connect<A: Adapter>(server: &MailboxServer) -> Result<A, Failure> {
    A::connect("127.0.0.1", server.port(), Security::None, &options())
}

/// Runs `after_login` (script lines after a USER/PASS login) on a scripted server, logs in
/// with no automatic CAPA, hands the session to `session`, and checks that the script
/// completed and that the client sent exactly the login then `wire`.
fn scripted_after_login<A: Adapter>(
    after_login: &str,
    wire: &str,
    session: impl FnOnce(A) -> TestResult,
) -> TestResult {
    let script =
        format!("S: +OK ready\nC: USER alice\nS: +OK\nC: PASS secret-a\nS: +OK in\n{after_login}");
    let server = ScriptedServer::start(Script::parse(&script)?)?;
    let mut pop = A::connect(
        "127.0.0.1",
        server.port(),
        Security::None,
        &scripted_options(),
    )?;
    pop.login("alice", "secret-a")?;
    session(pop)?;
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received_str(),
        format!("USER alice\r\nPASS secret-a\r\n{wire}")
    );
    Ok(())
}

fn mailbox(messages: &[&[u8]]) -> Result<MailboxServer, crate::KitError> {
    Ok(MailboxServer::start(
        messages.iter().map(|m| m.to_vec()).collect(),
    )?)
}

// ---- login() twice ----

/// A second `login` is refused locally with its own error, and the session goes on.
pub fn api_login_on_a_logged_in_connection_says_already_logged_in<A: Adapter>() -> TestResult {
    let server = mailbox(&[b"Subject: a\r\n\r\nhi\r\n"])?;
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.login("alice", "secret-a").unwrap_err();
    let Failure::AlreadyLoggedIn(message) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(message, "already logged in: log in once per connection");
    // Nothing was sent, and the session goes on.
    assert_eq!(pop.stat()?.count, 1);
    assert_eq!(server.logins(), 1);
    pop.quit()?;
    Ok(())
}

/// The second `login` sends nothing: the transcript.
pub fn api_second_login_sends_nothing<A: Adapter>() -> TestResult {
    scripted_after_login::<A>("C: NOOP\nS: +OK\n", "NOOP\r\n", |mut pop| {
        assert!(matches!(
            pop.login("alice", "secret-a"),
            Err(Failure::AlreadyLoggedIn(_))
        ));
        pop.noop()?;
        Ok(())
    })
}

// ---- RetrEvent::Start ----

/// Records one event; consecutive chunks of a message are joined (read boundaries are not
/// part of the contract).
fn record(seen: &mut Vec<String>, msg: u32, event: &RetrEvent<'_>) {
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

/// `retr_many` reports `Start` for every message, an empty one included, pipelined or not;
/// a caller that creates its file on `Start` gets one for the empty message.
pub fn api_retr_many_starts_every_message_even_an_empty_one<A: Adapter>() -> TestResult {
    let server = mailbox(&[b"a\r\n", b"", b"c\r\n"])?;
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    for pipelined in [true, false] {
        let mut seen = Vec::new();
        let msgs: &[u32] = if pipelined { &[1, 2, 4, 3] } else { &[2] };
        pop.retr_many_events(msgs, &mut |msg, event| {
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
    pop.retr_many_events(&[2], &mut |msg, event| {
        if let RetrEvent::Start = event {
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

/// `dele_uid` deletes a message only under the UID the caller believes in; a stale belief is a
/// typed mismatch, and nothing is deleted.
pub fn api_dele_uid_deletes_only_the_message_the_caller_believes_in<A: Adapter>() -> TestResult {
    let server = mailbox(&[b"one\r\n", b"two\r\n", b"three\r\n"])?;
    let uids = server.uids();
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    pop.dele_uid(2, &uids[1])?;
    pop.quit()?;
    assert_eq!(server.uids(), [uids[0].clone(), uids[2].clone()]);

    // A later session with the stale belief "message 2 is uids[1]": number 2 is now uids[2].
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.dele_uid(2, &uids[1]).unwrap_err();
    let Failure::Uid(
        UidError::Mismatch {
            msg,
            expected,
            found,
        },
        message,
    ) = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((*msg, expected, found), (2, &uids[1], &uids[2]));
    assert!(message.contains("nothing was deleted"), "{message}");
    // A number the server does not have: its -ERR, nothing deleted.
    assert!(matches!(pop.dele_uid(7, &uids[0]), Err(Failure::Server(_))));
    pop.quit()?;
    assert_eq!(server.uids(), [uids[0].clone(), uids[2].clone()]);
    Ok(())
}

/// On a mismatch `dele_uid` sends no DELE: the transcript.
pub fn api_dele_uid_sends_no_dele_on_a_mismatch<A: Adapter>() -> TestResult {
    scripted_after_login::<A>(
        "C: UIDL 2\nS: +OK 2 zzz\nC: UIDL 1\nS: +OK 1 aaa\nC: DELE 1\nS: +OK marked\nC: NOOP\nS: +OK\n",
        "UIDL 2\r\nUIDL 1\r\nDELE 1\r\nNOOP\r\n",
        |mut pop| {
            assert!(matches!(
                pop.dele_uid(2, "yyy"),
                Err(Failure::Uid(UidError::Mismatch { .. }, _))
            ));
            pop.dele_uid(1, "aaa")?;
            pop.noop()?;
            Ok(())
        },
    )
}

/// `fetch_new` fetches only the UIDs the store has not recorded, never deletes, and a store
/// that fails to record stops it with the store's error, the connection still usable.
pub fn api_fetch_new_fetches_only_what_is_not_recorded_and_never_deletes<A: Adapter>() -> TestResult
{
    let server = mailbox(&[b"one\r\n", b"", b"three\r\n"])?;
    let uids = server.uids();
    let mut store = BTreeSet::new();
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let fetch = |store: &mut BTreeSet<String>,
                 stored: &mut Vec<(String, Vec<u8>)>|
     -> Result<FetchReport, Failure> {
        let mut pop = connect::<A>(&server)?;
        pop.login("alice", "secret-a")?;
        let report = pop.fetch_new(store, &mut |entry, event| {
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
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    let error = pop.fetch_new(&mut failing, &mut |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(&error, Failure::Io(_, e) if e == "disk full"),
        "{error:?}"
    );
    assert_eq!(failing.seen.len(), 1);
    assert!(failing.seen.contains(&uids[0]));
    assert_eq!(pop.stat()?.count, 4);
    pop.quit()?;
    Ok(())
}

/// A UIDL listing with a repeated UID is refused (the core's typed error) before any RETR.
pub fn api_fetch_new_refuses_a_listing_with_duplicate_uids_before_fetching<A: Adapter>()
-> TestResult {
    let mut store = HashSet::new();
    scripted_after_login::<A>(
        "C: UIDL\nS: +OK\nS: 1 same\nS: 2 other\nS: 3 same\nS: .\n",
        "UIDL\r\n",
        |mut pop| {
            let error = pop.fetch_new(&mut store, &mut |_, _| Ok(())).unwrap_err();
            assert!(
                matches!(
                    &error,
                    Failure::Protocol(ProtocolError::DuplicateEntries { listing: "UIDL", uids, .. })
                        if uids == &["same"]
                ),
                "{error:?}"
            );
            // A repeated UID is a protocol violation (the core's typed error): the session is over.
            Ok(())
        },
    )?;
    assert!(store.is_empty());
    Ok(())
}

// ---- the parsed view (feature `mime`) ----

/// A multipart/mixed message with a multipart/alternative part and an attachment.
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

fn check_parsed(message: &mail_parser::Message<'_>) {
    use mail_parser::MimeHeaders as _;
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

/// `retr_parsed` gives the headers and parts of a multipart message, refuses an empty one and
/// one over the limit, and the session stays in step.
pub fn api_retr_parsed_gives_headers_and_parts_of_a_multipart_message<A: Adapter>() -> TestResult {
    let server = mailbox(&[
        MULTIPART,
        b"",
        b"Subject: big\r\n\r\nxxxxxxxxxxxxxxxxxxxx\r\n",
    ])?;
    let mut pop = connect::<A>(&server)?;
    pop.login("alice", "secret-a")?;
    let message = pop.retr_parsed(1, 1 << 20)?;
    check_parsed(&message);
    assert!(matches!(
        pop.retr_parsed(2, 1 << 20),
        Err(Failure::NotAMessage { msg: 2 })
    ));
    assert!(matches!(
        pop.retr_parsed(3, 37),
        Err(Failure::MessageTooLarge { msg: 3, limit: 37 })
    ));
    // Within the limit (the message is 38 octets: one more is too many), and the session is in step after the refusal.
    assert_eq!(pop.retr_parsed(3, 38)?.subject(), Some("big"));
    assert!(matches!(pop.retr_parsed(9, 100), Err(Failure::Server(_))));
    assert_eq!(pop.stat()?.count, 3);
    pop.quit()?;
    Ok(())
}

/// A store that fails to record the n-th UID.
#[derive(Default)]
struct FailingStore {
    seen: HashSet<String>,
    fail_at: usize,
}

impl SeenStore for FailingStore {
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
