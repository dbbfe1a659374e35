//! The `Client`'s getters, each against a state built for it: the adapters decide from them
//! (`is_idle`, `awaiting` for the read deadline, `buffered`), so a getter that lies would
//! make a driver hang or time out wrongly.
#![allow(clippy::unwrap_used)]

use pop3_proto::{
    Awaiting, Client, Command, CommandKind, Config, EnqueueError, Event, Phase, ProtocolError,
};

fn config() -> Config {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    config
}

fn drain(c: &mut Client) {
    while c.poll_event().unwrap().is_some() {}
}

fn greeted() -> Client {
    let mut c = Client::new(config());
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    c
}

fn send(c: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    out
}

#[test]
fn debug_shows_the_state_and_nothing_else() {
    let mut c = Client::new(config());
    c.enqueue(Command::user("alice")).unwrap();
    c.enqueue(Command::pass("hunter2")).unwrap();
    // The greeting and a partial line in one read: the buffer's start has moved.
    c.handle_input(b"+OK hi\r\n+OK");
    drain(&mut c);
    assert_eq!(send(&mut c), b"USER alice\r\n");
    assert_eq!(
        format!("{c:?}"),
        "Client { phase: Authorization, tls: false, queued: 1, in_flight: 1, buffered: 3, \
         error: None, .. }"
    );
}

#[test]
fn config_is_the_one_given() {
    let mut config = config();
    config.max_listing_entries = 1234;
    let c = Client::new(config);
    assert_eq!(c.config().max_listing_entries, 1234);
    assert!(!c.config().auto_capa);
}

#[test]
fn utf8_only_after_the_server_accepted_it() {
    let mut c = greeted();
    assert!(!c.is_utf8());
    c.enqueue(Command::Utf8).unwrap();
    send(&mut c);
    c.handle_input(b"-ERR no\r\n");
    drain(&mut c);
    assert!(!c.is_utf8());
    c.enqueue(Command::Utf8).unwrap();
    send(&mut c);
    c.handle_input(b"+OK UTF8 enabled\r\n");
    drain(&mut c);
    assert!(c.is_utf8());
}

#[test]
fn awaiting_follows_the_session() {
    let mut c = Client::new(config());
    assert_eq!(c.awaiting(), Awaiting::Greeting);
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    assert_eq!(c.awaiting(), Awaiting::Nothing);
    c.enqueue(Command::Stls).unwrap();
    send(&mut c);
    match c.awaiting() {
        Awaiting::Status(f) => assert_eq!((f.kind, f.msg), (CommandKind::Stls, None)),
        other => panic!("{other:?}"),
    }
    c.handle_input(b"+OK begin\r\n");
    drain(&mut c);
    assert_eq!(c.phase(), Phase::TlsHandshake);
    assert_eq!(c.awaiting(), Awaiting::TlsHandshake);
    c.handle_tls_established().unwrap();
    c.enqueue(Command::pass("x")).unwrap();
    send(&mut c);
    c.handle_input(b"+OK in\r\n");
    drain(&mut c);
    c.enqueue(Command::retr(7)).unwrap();
    send(&mut c);
    match c.awaiting() {
        Awaiting::Status(f) => assert_eq!((f.kind, f.msg), (CommandKind::Retr, Some(7))),
        other => panic!("{other:?}"),
    }
    c.handle_input(b"+OK 10 octets\r\nSubject");
    drain(&mut c);
    match c.awaiting() {
        Awaiting::MultiLine(f) => assert_eq!((f.kind, f.msg), (CommandKind::Retr, Some(7))),
        other => panic!("{other:?}"),
    }
    // The server hangs up mid-body: nothing more to wait for.
    c.handle_eof();
    assert_eq!(c.awaiting(), Awaiting::Nothing);
}

#[test]
fn awaiting_nothing_after_a_fatal_error_even_with_commands_in_flight() {
    let mut c = greeted();
    c.enqueue(Command::user("a")).unwrap();
    send(&mut c);
    c.handle_input(b"garbage\r\n");
    assert!(c.poll_event().is_err());
    assert_eq!(c.in_flight(), 1);
    assert_eq!(c.awaiting(), Awaiting::Nothing);
}

#[test]
fn queued_in_flight_and_idle_count_each_part() {
    // Queued before the greeting: not idle, nothing in flight.
    let mut c = Client::new(config());
    assert!(c.is_idle());
    c.enqueue(Command::Capa).unwrap();
    assert_eq!((c.queued(), c.in_flight()), (1, 0));
    assert!(!c.is_idle());
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    assert_eq!(send(&mut c), b"CAPA\r\n");
    // Only in flight.
    assert_eq!((c.queued(), c.in_flight()), (0, 1));
    assert!(!c.is_idle());
    c.handle_input(b"+OK\r\nTOP\r\n.\r\n");
    drain(&mut c);
    assert!(c.is_idle());
    // Only an event waiting to be reported.
    let mut traced = config();
    traced.trace = true;
    let mut c = Client::new(traced);
    c.handle_input(b"+OK hi\r\n");
    assert!(matches!(c.poll_event().unwrap(), Some(Event::Trace(_))));
    assert_eq!((c.queued(), c.in_flight()), (0, 0));
    assert!(!c.is_idle(), "the Greeting event is still to come");
    drain(&mut c);
    assert!(c.is_idle());
}

#[test]
fn buffered_counts_unconsumed_bytes() {
    let mut c = Client::new(config());
    assert_eq!(c.buffered(), 0);
    c.handle_input(b"+OK h");
    drain(&mut c);
    assert_eq!(c.buffered(), 5, "a partial line stays buffered");
    c.handle_input(b"i\r\n+O");
    drain(&mut c);
    assert_eq!(
        c.buffered(),
        2,
        "the greeting consumed, the next partial line kept"
    );
}

#[test]
fn implicit_tls_only_before_anything_was_received() {
    let mut c = Client::new(config());
    c.handle_input(b"+OK h");
    assert_eq!(c.handle_tls_established(), Err(EnqueueError::UnexpectedTls));
    assert!(!c.is_tls());
    let mut fresh = Client::new(config());
    fresh.handle_tls_established().unwrap();
    assert!(fresh.is_tls());
    assert_eq!(
        fresh.handle_tls_established(),
        Err(EnqueueError::TlsAlreadyActive)
    );
    assert_eq!(fresh.error(), None::<&ProtocolError>);
}

#[test]
fn the_input_buffer_is_reused_when_events_are_drained_between_reads() {
    // A long session of replies, each read whole and drained: the buffer never has to grow
    // past its first size, so it is never reallocated (memory is one read plus a partial line).
    let mut c = greeted();
    let first = c.input_buffer(4096).as_ptr();
    c.commit_input(0);
    for i in 0..2000 {
        c.enqueue(Command::Capa).unwrap();
        send(&mut c);
        let reply = format!("+OK {i}\r\nTOP\r\nUIDL\r\n.\r\n");
        let buf = c.input_buffer(4096);
        assert_eq!(buf.as_ptr(), first, "reallocated after {i} replies");
        buf[..reply.len()].copy_from_slice(reply.as_bytes());
        c.commit_input(reply.len());
        drain(&mut c);
        assert_eq!(c.buffered(), 0);
    }
}

#[test]
fn events_queued_before_a_body_come_before_its_chunks() {
    // Tracing on, and the first bare LF of the session ends the RETR status line: that line
    // queues a quirk and a trace line at once; both come out before the first body chunk.
    let mut config = config();
    config.trace = true;
    config.quirks.bare_lf = true;
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    drain(&mut c);
    c.enqueue(Command::pass("x")).unwrap();
    send(&mut c);
    c.handle_input(b"+OK\r\n");
    drain(&mut c);
    c.enqueue(Command::retr(1)).unwrap();
    send(&mut c);
    c.handle_input(b"+OK 7 octets\nhello\r\n.\r\n");
    let mut order = Vec::new();
    while let Some(event) = c.poll_event().unwrap() {
        order.push(match event {
            Event::Body { .. } => "body",
            Event::BodyEnd { .. } => "end",
            Event::Trace(_) => "trace",
            Event::Quirk(_) => "quirk",
            Event::Ok { .. } => "ok",
            _ => "other",
        });
    }
    // The sent line's trace, then the quirk and the received line's trace, then the body.
    assert_eq!(order, ["trace", "quirk", "trace", "body", "end", "ok"]);
}
