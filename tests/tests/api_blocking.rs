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
    assert_eq!(error.to_string(), "already logged in: log in once per connection");
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
