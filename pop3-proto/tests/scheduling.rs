//! The send side's rules at their edges, each found unchecked by cargo-mutants: nothing after
//! QUIT, one `*` per AUTH, a window of 1, the list seen before login while the CAPA after it
//! is in flight, and RFC 5034 §4's 255-octet line with an initial response.
#![allow(clippy::unwrap_used)]

mod common;

use pop3_proto::sasl::{Mechanism, SaslError};
use pop3_proto::{Client, Command, Config, EnqueueError, Pipelining, Secret};

fn config() -> Config {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    config
}

fn drain(c: &mut Client) {
    while c.poll_event().unwrap().is_some() {}
}

fn send(c: &mut Client) -> String {
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    String::from_utf8(out).unwrap()
}

fn logged_in(config: Config) -> Client {
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    c.enqueue(Command::pass("x")).unwrap();
    send(&mut c);
    c.handle_input(b"+OK\r\n");
    drain(&mut c);
    c
}

#[test]
fn nothing_is_queued_after_quit() {
    let mut c = logged_in(config());
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(c.enqueue(Command::Noop), Err(EnqueueError::Closed));
    assert_eq!(c.enqueue(Command::Quit), Err(EnqueueError::Closed));
    assert_eq!(send(&mut c), "QUIT\r\n");
}

/// A mechanism of any name with a fixed initial response.
struct Fixed(&'static str, Vec<u8>);

impl Mechanism for Fixed {
    fn name(&self) -> &str {
        self.0
    }
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(Some(Secret::new(self.1.clone())))
    }
    fn step(&mut self, _: &[u8]) -> Result<Secret, SaslError> {
        Ok(Secret::default())
    }
}

#[test]
fn auth_is_cancelled_once() {
    let mut c = Client::new(config());
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    c.enqueue(Command::auth(Fixed("X", Vec::new()))).unwrap();
    assert_eq!(send(&mut c), "AUTH X =\r\n");
    c.cancel_auth().unwrap();
    assert_eq!(c.cancel_auth(), Err(EnqueueError::NoAuthInProgress));
    assert_eq!(send(&mut c), "*\r\n");
}

#[test]
fn a_window_of_one_is_no_pipelining() {
    let mut config = config();
    config.pipelining = Pipelining::Always;
    config.pipeline_window = 1;
    let mut c = logged_in(config);
    c.enqueue(Command::Stat).unwrap();
    c.enqueue(Command::Noop).unwrap();
    assert_eq!(send(&mut c), "STAT\r\n");
    c.handle_input(b"+OK 0 0\r\n");
    drain(&mut c);
    assert_eq!(send(&mut c), "NOOP\r\n");
}

#[test]
fn without_pipelining_before_login_the_capa_after_it_goes_alone() {
    let mut config = config();
    config.auto_capa = true;
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    assert_eq!(send(&mut c), "CAPA\r\n");
    c.handle_input(b"+OK\r\nUSER\r\n.\r\n");
    drain(&mut c);
    c.enqueue(Command::pass("x")).unwrap();
    assert_eq!(send(&mut c), "PASS x\r\n");
    c.handle_input(b"+OK\r\n");
    drain(&mut c);
    c.enqueue(Command::Stat).unwrap();
    c.enqueue(Command::Noop).unwrap();
    // The list before login had no PIPELINING: one command at a time.
    assert_eq!(send(&mut c), "CAPA\r\n");
    c.handle_input(b"+OK\r\nUSER\r\n.\r\n");
    drain(&mut c);
    assert_eq!(send(&mut c), "STAT\r\n");
}

#[test]
fn the_initial_response_goes_on_the_line_up_to_exactly_255_octets() {
    // "AUTH " + name + " " + base64 + CRLF: 183 octets are 244 base64 characters, so a
    // 3-character name makes the line 255 octets, a 4-character one 256.
    let initial = vec![b'a'; 183];
    for (name, on_line) in [("XYZ", true), ("WXYZ", false)] {
        let mut c = Client::new(config());
        c.handle_input(b"+OK hi\r\n");
        drain(&mut c);
        c.enqueue(Command::auth(Fixed(name, initial.clone())))
            .unwrap();
        let line = send(&mut c);
        if on_line {
            assert_eq!(line.len(), 255, "{line}");
            assert!(line.starts_with(&format!("AUTH {name} YWFh")));
        } else {
            assert_eq!(line, format!("AUTH {name}\r\n"));
            // It answers the first, empty, challenge instead.
            c.handle_input(b"+ \r\n");
            drain(&mut c);
            assert_eq!(send(&mut c).len(), 244 + 2);
        }
    }
}

#[test]
fn quit_enters_update_only_from_transaction() {
    let mut c = logged_in(config());
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(send(&mut c), "QUIT\r\n");
    assert_eq!(c.phase(), pop3_proto::Phase::Update);
    // Before login, QUIT commits nothing: no UPDATE phase (RFC 1939 §6).
    let mut c = Client::new(config());
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(send(&mut c), "QUIT\r\n");
    assert_eq!(c.phase(), pop3_proto::Phase::Authorization);
}

/// With PIPELINING, QUIT follows the commands in flight in the same write (it holds the pipe,
/// it waits for no empty pipe); their replies come first, in order, and only QUIT's own
/// reply closes the session. Nothing is sent after QUIT. Each server split gives the same.
#[test]
fn quit_follows_commands_in_flight_and_nothing_follows_it() {
    let transcript = "
        S: +OK hi
        C: PASS x
        S: +OK in
        C: DELE 1
        C: DELE 2
        C: QUIT
        S: +OK deleted
        S: -ERR gone
        S: +OK bye
    ";
    let mut config = config();
    config.pipelining = Pipelining::Always;
    let played = common::play(config.clone(), transcript, || {
        vec![
            Command::pass("x"),
            Command::dele(1),
            Command::dele(2),
            Command::Quit,
        ]
    });
    let texts = common::texts(&played.events);
    let replies: Vec<&String> = texts
        .iter()
        .filter(|e| e.starts_with("Ok") || e.starts_with("Err"))
        .collect();
    assert_eq!(replies.len(), 4, "{texts:?}");
    assert!(replies[1].contains("command: Dele") && replies[1].starts_with("Ok"));
    assert!(replies[2].contains("command: Dele") && replies[2].starts_with("Err"));
    assert!(replies[3].contains("command: Quit") && replies[3].starts_with("Ok"));
    assert_eq!(played.client.phase(), pop3_proto::Phase::Closed);

    // In one write, and the phase stays UPDATE until QUIT's own reply.
    let mut c = logged_in(config);
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::dele(2)).unwrap();
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(c.enqueue(Command::Noop), Err(EnqueueError::Closed));
    assert_eq!(send(&mut c), "DELE 1\r\nDELE 2\r\nQUIT\r\n");
    c.handle_input(b"+OK\r\n+OK\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), pop3_proto::Phase::Update);
    assert_eq!(send(&mut c), "");
    c.handle_input(b"+OK bye\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), pop3_proto::Phase::Closed);
    assert_eq!(send(&mut c), "");
}

/// `phase()` is the phase of the replies processed so far: a QUIT pipelined behind commands in
/// flight leaves the phase TRANSACTION until the last reply before it is in (the fuzz target
/// `client` found `Event::LoggedIn` read while the phase already said UPDATE).
#[test]
fn a_pipelined_quit_enters_update_after_the_replies_before_it() {
    let mut config = config();
    config.pipelining = Pipelining::Always;
    let mut c = logged_in(config);
    c.enqueue(Command::Stat).unwrap();
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(send(&mut c), "STAT\r\nDELE 1\r\nQUIT\r\n");
    assert_eq!(c.phase(), pop3_proto::Phase::Transaction);
    c.handle_input(b"+OK 1 10\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), pop3_proto::Phase::Transaction);
    // A -ERR before QUIT moves on too.
    c.handle_input(b"-ERR no\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), pop3_proto::Phase::Update);
    c.handle_input(b"+OK bye\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), pop3_proto::Phase::Closed);
}

/// Without pipelining QUIT still waits for the reply ahead of it.
#[test]
fn quit_without_pipelining_goes_alone() {
    let mut c = logged_in(config());
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(send(&mut c), "DELE 1\r\n");
    assert_eq!(send(&mut c), "");
    c.handle_input(b"+OK\r\n");
    drain(&mut c);
    assert_eq!(send(&mut c), "QUIT\r\n");
}
