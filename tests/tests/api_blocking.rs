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

fn connect(server: &MailboxServer) -> Result<Connection, Error> {
    Connection::connect("127.0.0.1", server.port(), Security::None, &options())
}

fn mailbox(messages: &[&[u8]]) -> Result<MailboxServer, pop3_tests::KitError> {
    MailboxServer::start(messages.iter().map(|m| m.to_vec()).collect())
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
        C: CAPA
        S: +OK
        S: USER
        S: .
        C: USER alice
        S: +OK
        C: PASS secret-a
        S: +OK in
        C: CAPA
        S: +OK
        S: USER
        S: .
        C: NOOP
        S: +OK
        ",
    )?)?;
    let mut pop = Connection::connect("127.0.0.1", server.port(), Security::None, &options())?;
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
        "CAPA\r\nUSER alice\r\nPASS secret-a\r\nCAPA\r\nNOOP\r\n"
    );
    Ok(())
}

// ---- one tracing target ----

mod collect {
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::{Context, SubscriberExt as _};

    /// A subscriber that keeps `target message` of every event at DEBUG or above under
    /// exactly `target`, and nothing else (so `enabled!` under another target is false).
    pub(crate) fn subscriber(
        target: &'static str,
    ) -> (
        impl tracing::Subscriber + Send + Sync,
        Arc<Mutex<Vec<String>>>,
    ) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        // Exactly this target: `Targets` would match any target that starts with it
        // (`pop3_async::connection` starts with `pop3`).
        let layer = Collect(lines.clone()).with_filter(filter_fn(move |meta| {
            meta.target() == target && *meta.level() <= tracing::Level::DEBUG
        }));
        (tracing_subscriber::registry().with(layer), lines)
    }

    struct Collect(Arc<Mutex<Vec<String>>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            let line = format!("{} {}", event.metadata().target(), message.0);
            self.0.lock().unwrap().push(line);
        }
    }
}

#[test]
fn the_trace_arrives_under_the_one_documented_target_with_pass_redacted() -> TestResult {
    assert_eq!(pop3_blocking::TRACE_TARGET, "pop3");
    let server = mailbox(&[b"Subject: a\r\n\r\nhi\r\n"])?;
    let (subscriber, lines) = collect::subscriber(pop3_blocking::TRACE_TARGET);
    tracing::subscriber::with_default(subscriber, || -> TestResult {
        let mut pop = connect(&server)?;
        pop.user("alice")?;
        pop.pass("secret-a")?;
        pop.stat()?;
        pop.quit()?;
        Ok(())
    })?;
    let lines = lines.lock().unwrap().clone();
    let expected_in_order = [
        "pop3 C: CAPA",
        "pop3 C: USER alice",
        "pop3 C: PASS <redacted>",
        "pop3 C: STAT",
        "pop3 S: +OK 1 18",
        "pop3 C: QUIT",
    ];
    let mut at = 0;
    for want in expected_in_order {
        let found = lines[at..].iter().position(|l| l == want);
        assert!(
            found.is_some(),
            "{want:?} missing (in order) from {lines:#?}"
        );
        at += found.unwrap_or(0) + 1;
    }
    assert!(
        lines.iter().any(|l| l.starts_with("pop3 S: +OK")),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l.starts_with("pop3 ")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("secret-a")), "{lines:#?}");
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
