//! `Client::last_status_line`: after each reply's events, the exact bytes of that reply's
//! status line (greeting, `+OK`, `-ERR`, the `+OK` to STLS), pipelined or not: the spacing,
//! the response code's spelling and bytes that are not UTF-8 as the server sent them, which
//! the events' parsed `code` and `text` do not keep. Every session is played whole, byte by
//! byte and cut at every offset, with byte-exact checks of what the client sends.
#![allow(clippy::unwrap_used)]

use pop3_proto::sasl::CramMd5;
use pop3_proto::{Client, Command, Config, Event, ResponseCode, Secret};

/// One step of a session.
enum Step {
    /// Queue a command, then send what the client has to send.
    Send(Command),
    /// The server's bytes (cut as the run's [`Cut`] says).
    Server(&'static [u8]),
    /// The TLS handshake after the `+OK` to STLS is done.
    Tls,
    /// At this point `last_status_line` is this.
    Line(&'static [u8]),
}

/// How the server's bytes are cut before they reach the client.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Whole,
    ByteByByte,
    /// Once, at this offset of all the server's bytes taken together.
    At(usize),
}

/// What a run saw: each reply event with `last_status_line` right after it, escaped
/// (`escape_ascii`, byte-exact and readable in a failure), consecutive equal entries merged
/// (the body chunks of one command); and everything the client sent.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    seen: Vec<(String, String)>,
    sent: Vec<u8>,
}

/// The event's name for the record, `None` for events that are no reply's (quirks, traces).
fn label(event: Event<'_>) -> Option<String> {
    Some(match event {
        Event::Greeting { ok, code, .. } => format!("greeting {ok} {code:?}"),
        Event::Ok { id, code, .. } => format!("ok {} {code:?}", id.get()),
        Event::Err { id, code, .. } => format!("err {} {code:?}", id.get()),
        Event::StartTls { id } => format!("starttls {}", id.get()),
        Event::Stat { id, count, size } => format!("stat {} {count} {size}", id.get()),
        Event::ListEntry { id, msg, size } => format!("list {} {msg} {size}", id.get()),
        Event::UidlEntry { id, msg, uid } => format!("uidl {} {msg} {uid}", id.get()),
        Event::Capabilities { id, .. } => format!("capabilities {}", id.get()),
        Event::Body { id, .. } => format!("body {}", id.get()),
        Event::BodyEnd { id, octets } => format!("body_end {} {octets}", id.get()),
        Event::LoggedIn { id } => format!("logged_in {}", id.get()),
        _ => return None,
    })
}

/// Drains the events, then sends.
fn drain(client: &mut Client, run: &mut Run) {
    // The event borrows the client: take what it says, then ask for the line.
    while let Some(event) = client.poll_event().unwrap() {
        let Some(label) = label(event) else {
            continue;
        };
        let entry = (label, client.last_status_line().escape_ascii().to_string());
        if run.seen.last() != Some(&entry) {
            run.seen.push(entry);
        }
    }
    client.poll_transmit(&mut run.sent);
}

fn play(config: &Config, steps: &dyn Fn() -> Vec<Step>, cut: Cut) -> Run {
    let mut client = Client::new(config.clone());
    let mut run = Run {
        seen: Vec::new(),
        sent: Vec::new(),
    };
    let mut offset = 0;
    for step in steps() {
        match step {
            Step::Send(command) => {
                client.enqueue(command).unwrap();
                drain(&mut client, &mut run);
            }
            Step::Server(bytes) => {
                let pieces: Vec<&[u8]> = match cut {
                    Cut::Whole => vec![bytes],
                    Cut::ByteByByte => bytes.chunks(1).collect(),
                    Cut::At(k) if k > offset && k < offset + bytes.len() => {
                        let (a, b) = bytes.split_at(k - offset);
                        vec![a, b]
                    }
                    Cut::At(_) => vec![bytes],
                };
                offset += bytes.len();
                for piece in pieces {
                    client.handle_input(piece);
                    drain(&mut client, &mut run);
                }
            }
            Step::Tls => {
                client.handle_tls_established().unwrap();
                drain(&mut client, &mut run);
            }
            Step::Line(line) => assert_eq!(
                client.last_status_line().escape_ascii().to_string(),
                line.escape_ascii().to_string(),
                "{cut:?}"
            ),
        }
    }
    run
}

/// Plays the session whole, byte by byte and cut at every offset; each run must send `sent`
/// and see `seen`.
fn check(config: &Config, steps: &dyn Fn() -> Vec<Step>, sent: &[u8], seen: &[(&str, &[u8])]) {
    let total: usize = steps()
        .iter()
        .map(|s| match s {
            Step::Server(b) => b.len(),
            _ => 0,
        })
        .sum();
    let expected = Run {
        seen: seen
            .iter()
            .map(|(label, line)| ((*label).to_owned(), line.escape_ascii().to_string()))
            .collect(),
        sent: sent.to_vec(),
    };
    let cuts = [Cut::Whole, Cut::ByteByByte]
        .into_iter()
        .chain((1..total).map(Cut::At));
    for cut in cuts {
        let run = play(config, steps, cut);
        assert_eq!(
            String::from_utf8_lossy(&run.sent),
            String::from_utf8_lossy(&expected.sent),
            "sent, {cut:?}"
        );
        assert_eq!(run, expected, "{cut:?}");
    }
}

fn config() -> Config {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    config
}

/// Nine pipelined commands answered in one burst: every reply's events, the data events
/// before its terminal event included, see that reply's own line, never the next one's
/// (already in the buffer). A queued `Ok` after a body's `BodyEnd` sees its body's `+OK`.
#[test]
fn pipelined_replies_each_have_their_own_line() {
    let steps = || {
        vec![
            Step::Line(b""),
            Step::Server(b"+OK   POP3  ready \t <1896.697170952@dbc.mtview.ca.us>  \r\n"),
            Step::Send(Command::user("alice")),
            Step::Server(b"+OK  \r\n"),
            Step::Send(Command::pass("secret")),
            Step::Server(b"+OK [IN-USE]? no:  logged   in\r\n"),
            Step::Send(Command::Capa),
            Step::Server(
                b"+OK Capability list follows\r\nPIPELINING\r\nRESP-CODES\r\nUIDL\r\nTOP\r\n.\r\n",
            ),
            Step::Send(Command::Stat),
            Step::Send(Command::List(Some(1))),
            Step::Send(Command::Uidl(Some(2))),
            Step::Send(Command::retr(1)),
            Step::Send(Command::dele(1)),
            Step::Send(Command::top(2, 0)),
            Step::Send(Command::Noop),
            Step::Send(Command::Rset),
            Step::Send(Command::List(None)),
            Step::Server(
                b"+OK 2 320\r\n\
                  +OK 1 120\r\n\
                  +OK 2 uid-two\r\n\
                  +OK 120 octets\r\nline\r\n..dot\r\n.\r\n\
                  -ERR [in-use]   message   locked \r\n\
                  +OK\r\nSubject: x\r\n\r\n.\r\n\
                  +OK \r\n\
                  +OK \xe9t\xe9 \xff 2 messages\r\n\
                  +OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n",
            ),
            Step::Line(b"+OK 2 messages"),
        ]
    };
    check(
        &config(),
        &steps,
        b"USER alice\r\nPASS secret\r\nCAPA\r\n\
          STAT\r\nLIST 1\r\nUIDL 2\r\nRETR 1\r\nDELE 1\r\nTOP 2 0\r\nNOOP\r\nRSET\r\nLIST\r\n",
        &[
            (
                "greeting true None",
                b"+OK   POP3  ready \t <1896.697170952@dbc.mtview.ca.us>  ",
            ),
            ("ok 0 None", b"+OK  "),
            ("logged_in 1", b"+OK [IN-USE]? no:  logged   in"),
            ("ok 1 Some(InUse)", b"+OK [IN-USE]? no:  logged   in"),
            ("capabilities 2", b"+OK Capability list follows"),
            ("ok 2 None", b"+OK Capability list follows"),
            ("stat 3 2 320", b"+OK 2 320"),
            ("ok 3 None", b"+OK 2 320"),
            ("list 4 1 120", b"+OK 1 120"),
            ("ok 4 None", b"+OK 1 120"),
            ("uidl 5 2 uid-two", b"+OK 2 uid-two"),
            ("ok 5 None", b"+OK 2 uid-two"),
            ("body 6", b"+OK 120 octets"),
            ("body_end 6 12", b"+OK 120 octets"),
            ("ok 6 None", b"+OK 120 octets"),
            // The code is parsed (RESP-CODES) and upper-cased; the line keeps its spelling.
            ("err 7 Some(InUse)", b"-ERR [in-use]   message   locked "),
            ("body 8", b"+OK"),
            ("body_end 8 14", b"+OK"),
            ("ok 8 None", b"+OK"),
            ("ok 9 None", b"+OK "),
            ("ok 10 None", b"+OK \xe9t\xe9 \xff 2 messages"),
            ("list 11 1 120", b"+OK 2 messages"),
            ("list 11 2 200", b"+OK 2 messages"),
            ("ok 11 None", b"+OK 2 messages"),
        ],
    );
}

/// The `+OK` to STLS (its terminal event is `StartTls`, which carries no text) has its
/// line; SASL continuations are not status lines and leave it; the `+OK` to AUTH replaces it.
#[test]
fn starttls_and_auth_lines() {
    let steps = || {
        vec![
            Step::Server(b"+OK ready\r\n"),
            Step::Send(Command::Stls),
            Step::Server(b"+OK  Begin TLS   negotiation  now\r\n"),
            Step::Line(b"+OK  Begin TLS   negotiation  now"),
            Step::Tls,
            // RFC 2195's example exchange.
            Step::Send(Command::auth(CramMd5::new(
                "tim".into(),
                Secret::from("tanstaaftanstaaf"),
            ))),
            Step::Server(b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"),
            Step::Line(b"+OK  Begin TLS   negotiation  now"),
            Step::Server(b"+OK [auth]  maildrop  locked\r\n"),
        ]
    };
    check(
        &config(),
        &steps,
        b"STLS\r\nAUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n",
        &[
            ("greeting true None", b"+OK ready"),
            ("starttls 0", b"+OK  Begin TLS   negotiation  now"),
            ("logged_in 1", b"+OK [auth]  maildrop  locked"),
            ("ok 1 Some(Auth)", b"+OK [auth]  maildrop  locked"),
        ],
    );
}

/// A refused greeting with a lower-case response code: the event has the parsed code, the
/// line the server's spelling and spacing.
#[test]
fn refused_greeting_keeps_the_code_as_sent() {
    let steps = || vec![Step::Server(b"-ERR [in-use]  mailbox   busy \r\n")];
    check(
        &config(),
        &steps,
        b"",
        &[(
            "greeting false Some(InUse)",
            b"-ERR [in-use]  mailbox   busy ",
        )],
    );
    // What the event says, for comparison: the code's spelling is gone.
    let mut client = Client::new(config());
    client.handle_input(b"-ERR [in-use]  mailbox   busy \r\n");
    let Some(Event::Greeting { code, .. }) = client.poll_event().unwrap() else {
        panic!("no greeting");
    };
    assert_eq!(code, Some(&ResponseCode::InUse));
}

/// A bare-LF server (the quirk on): the line ends before the LF; a CR inside it, not
/// before the LF, is kept.
#[test]
fn bare_lf_lines_end_before_the_lf() {
    let mut config = config();
    config.quirks.bare_lf = true;
    let steps = || {
        vec![
            Step::Server(b"+OK hi\n"),
            Step::Send(Command::user("a")),
            Step::Server(b"+OK a\rb \n"),
            Step::Send(Command::pass("p")),
            Step::Server(b"-ERR  no\n"),
        ]
    };
    check(
        &config,
        &steps,
        b"USER a\r\nPASS p\r\n",
        &[
            ("greeting true None", b"+OK hi"),
            ("ok 0 None", b"+OK a\rb "),
            ("err 1 None", b"-ERR  no"),
        ],
    );
}

/// The line outlives the reads after its reply (the input buffer is compacted on each read:
/// the line is kept), until the next reply's status line is complete.
#[test]
fn the_line_outlives_the_next_reads() {
    let steps = || {
        vec![
            Step::Server(b"+OK hi\r\n"),
            Step::Send(Command::user("a")),
            Step::Server(b"+OK  one \r\n"),
            Step::Send(Command::pass("p")),
            Step::Server(b"-ERR t"),
            Step::Line(b"+OK  one "),
            Step::Server(b"w"),
            Step::Line(b"+OK  one "),
            Step::Server(b"o\r\n"),
            Step::Line(b"-ERR two"),
        ]
    };
    check(
        &config(),
        &steps,
        b"USER a\r\nPASS p\r\n",
        &[
            ("greeting true None", b"+OK hi"),
            ("ok 0 None", b"+OK  one "),
            ("err 1 None", b"-ERR two"),
        ],
    );
}
