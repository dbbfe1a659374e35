//! Listings a server cannot be trusted with (issue 10 items 2, 4 and 12): the entry limit of
//! LIST, UIDL and LANG, repeated message numbers and unique-ids, and `UIDL n` answered without
//! the message number.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Ev, play, rfc_config, texts};
use pop3_proto::{Client, Command, Config, MAX_NAMED_DUPLICATES, Phase, ProtocolError};

fn logged_in(config: Config) -> Client {
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.enqueue(Command::pass("p")).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.poll_transmit(&mut out);
    assert_eq!(c.phase(), Phase::Transaction);
    c
}

/// Runs `command` against `input`; the events as debug strings, or the fatal error.
fn run(c: &mut Client, command: Command, input: &[u8]) -> Result<Vec<String>, ProtocolError> {
    c.enqueue(command).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c.handle_input(input);
    let mut events = Vec::new();
    while let Some(e) = c.poll_event()? {
        events.push(format!("{e:?}"));
    }
    Ok(events)
}

fn limited(limit: usize) -> Config {
    let mut config = rfc_config();
    config.max_listing_entries = limit;
    config
}

// ---- item 4: the entry limit ----

#[test]
fn the_default_entry_limit_fits_real_mailboxes() {
    assert_eq!(Config::default().max_listing_entries, 1_000_000);
}

#[test]
fn list_uidl_and_lang_are_bounded_by_max_listing_entries() {
    type Case = (fn() -> Command, &'static [u8], &'static [u8], &'static str);
    let cases: [Case; 3] = [
        (
            || Command::List(None),
            b"+OK\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n",
            b"+OK\r\n1 10\r\n2 20\r\n3 30\r\n4 40\r\n.\r\n",
            "LIST",
        ),
        (
            || Command::Uidl(None),
            b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n",
            b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n4 d\r\n.\r\n",
            "UIDL",
        ),
        (
            || Command::Lang(None),
            b"+OK\r\nen English\r\nde Deutsch\r\nfr Francais\r\n.\r\n",
            b"+OK\r\nen English\r\nde Deutsch\r\nfr Francais\r\nit Italiano\r\n.\r\n",
            "LANG",
        ),
    ];
    for (command, at_limit, over, listing) in cases {
        let mut c = logged_in(limited(3));
        let events = run(&mut c, command(), at_limit).unwrap();
        assert_eq!(
            events.len(),
            4,
            "{listing}: three entries and the Ok: {events:?}"
        );
        let mut c = logged_in(limited(3));
        assert_eq!(
            run(&mut c, command(), over),
            Err(ProtocolError::TooManyEntries { listing, limit: 3 })
        );
        // Sticky, and the message names the limit.
        let error = c.poll_event().unwrap_err();
        assert!(
            error.to_string().contains("Config::max_listing_entries"),
            "{error}"
        );
    }
}

#[test]
fn the_limit_stops_an_endless_listing_at_the_first_entry_over_it() {
    let mut c = logged_in(limited(2));
    c.enqueue(Command::List(None)).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c.handle_input(b"+OK\r\n1 1\r\n2 2\r\n3 3\r\n");
    let mut entries = 0;
    loop {
        match c.poll_event() {
            Ok(Some(_)) => entries += 1,
            Ok(None) => panic!("the third entry must fail"),
            Err(e) => {
                assert_eq!(
                    e,
                    ProtocolError::TooManyEntries {
                        listing: "LIST",
                        limit: 2
                    }
                );
                break;
            }
        }
    }
    assert_eq!(entries, 2);
}

// ---- item 2: repeated numbers and unique-ids ----

#[test]
fn a_list_that_repeats_a_message_number_is_a_protocol_violation() {
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: LIST
        S: +OK 3 messages
        S: 1 100
        S: 2 200
        S: 1 100
        S: .
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::pass("p"), Command::List(None)]
    });
    let last = played.events.last().unwrap();
    assert_eq!(
        *last,
        Ev::Error(ProtocolError::DuplicateEntries {
            listing: "LIST",
            numbers: vec![1],
            uids: vec![],
            repeated: 1
        })
    );
    assert!(
        !texts(&played.events)
            .iter()
            .any(|e| e.starts_with("Ok { id: CommandId(1)")),
        "no Ok for the LIST: {:?}",
        played.events
    );
    assert_eq!(
        played.client.error().unwrap().to_string(),
        "the LIST listing repeats message number(s) 1 (1 repeated entry in all)"
    );
}

#[test]
fn a_uidl_that_repeats_a_number_or_a_uid_is_a_protocol_violation() {
    // A repeated UID (two messages would share one "already stored" record).
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: UIDL
        S: +OK
        S: 1 whqtswO00WBw418f9t5JxYwZ
        S: 2 QhdPYR:00WBw1Ph7x7
        S: 3 whqtswO00WBw418f9t5JxYwZ
        S: .
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::pass("p"), Command::Uidl(None)]
    });
    assert_eq!(
        *played.events.last().unwrap(),
        Ev::Error(ProtocolError::DuplicateEntries {
            listing: "UIDL",
            numbers: vec![],
            uids: vec!["whqtswO00WBw418f9t5JxYwZ".into()],
            repeated: 1
        })
    );
    // A repeated message number (with another UID).
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: UIDL
        S: +OK
        S: 1 a
        S: 2 b
        S: 2 c
        S: .
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::pass("p"), Command::Uidl(None)]
    });
    assert_eq!(
        *played.events.last().unwrap(),
        Ev::Error(ProtocolError::DuplicateEntries {
            listing: "UIDL",
            numbers: vec![2],
            uids: vec![],
            repeated: 1
        })
    );
    // A UID repeated in LIST's sense is no concern of LIST; a clean UIDL passes.
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: UIDL
        S: +OK
        S: 1 a
        S: 2 b
        S: .
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::pass("p"), Command::Uidl(None)]
    });
    assert!(
        texts(&played.events)
            .last()
            .unwrap()
            .starts_with("Ok { id: CommandId(1), command: Uidl"),
        "{:?}",
        played.events
    );
}

#[test]
fn repeats_are_named_up_to_a_cap_and_counted() {
    let mut input = b"+OK\r\n".to_vec();
    for n in 1..=30u32 {
        input.extend_from_slice(format!("{n} uid-{n}\r\n").as_bytes());
    }
    // Every entry again: 30 repeats of both the number and the UID.
    for n in 1..=30u32 {
        input.extend_from_slice(format!("{n} uid-{n}\r\n").as_bytes());
    }
    input.extend_from_slice(b".\r\n");
    let mut c = logged_in(rfc_config());
    let error = run(&mut c, Command::Uidl(None), &input).unwrap_err();
    let expected_numbers: Vec<u32> = (1..=10).collect();
    let expected_uids: Vec<String> = (1..=10).map(|n| format!("uid-{n}")).collect();
    assert_eq!(
        error,
        ProtocolError::DuplicateEntries {
            listing: "UIDL",
            numbers: expected_numbers,
            uids: expected_uids,
            repeated: 30
        }
    );
    assert_eq!(MAX_NAMED_DUPLICATES, 10);
    let message = error.to_string();
    assert!(
        message.starts_with("the UIDL listing repeats message number(s) 1, 2, 3"),
        "{message}"
    );
    assert!(
        message.ends_with("(30 repeated entries in all)"),
        "{message}"
    );
    assert!(!message.contains("uid-11"), "{message}");
}

#[test]
fn each_listing_is_checked_on_its_own() {
    // The same numbers in two LISTs, and in a LIST and a UIDL, are no repeat.
    let mut c = logged_in(rfc_config());
    run(&mut c, Command::List(None), b"+OK\r\n1 10\r\n2 20\r\n.\r\n").unwrap();
    run(&mut c, Command::List(None), b"+OK\r\n1 10\r\n2 20\r\n.\r\n").unwrap();
    run(&mut c, Command::Uidl(None), b"+OK\r\n1 a\r\n2 b\r\n.\r\n").unwrap();
    assert!(c.error().is_none());
}

// ---- item 12: `UIDL n` answered without the message number ----

#[test]
fn uidl_n_answered_with_the_uid_alone_is_a_quirk() {
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: UIDL 3
        S: +OK whqtswO00WBw418f9t5JxYwZ
        C: UIDL 4
        S: +OK 4 QhdPYR:00WBw1Ph7x7
        C: UIDL 5
        S: +OK 12345
    ";
    let played = play(rfc_config(), t, || {
        vec![
            Command::pass("p"),
            Command::Uidl(Some(3)),
            Command::Uidl(Some(4)),
            Command::Uidl(Some(5)),
        ]
    });
    let e = &played.events;
    let at = e
        .iter()
        .position(|ev| *ev == Ev::Uid(1, 3, "whqtswO00WBw418f9t5JxYwZ".into()))
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        e[at + 1],
        Ev::Other("Quirk(UidlWithoutMessageNumber)".into())
    );
    assert_eq!(e[at + 3], Ev::Uid(2, 4, "QhdPYR:00WBw1Ph7x7".into()));
    // A lone number that is not the one asked for is a (numeric) unique-id.
    assert_eq!(e[at + 5], Ev::Uid(3, 5, "12345".into()));
    // Reported once.
    assert_eq!(
        texts(e).iter().filter(|t| t.starts_with("Quirk")).count(),
        1,
        "{e:?}"
    );
    assert!(played.client.error().is_none());
}

#[test]
fn uidl_n_answered_with_the_number_alone_stays_an_error() {
    // `+OK 3` to `UIDL 3`: the number with the UID missing, or a UID "3"? Ambiguous: refused.
    for reply in ["+OK 3", "+OK 03", "+OK"] {
        let t = format!(
            r"
            S: +OK hi
            C: PASS p
            S: +OK
            C: UIDL 3
            S: {reply}
        "
        );
        let played = play(rfc_config(), &t, || {
            vec![Command::pass("p"), Command::Uidl(Some(3))]
        });
        assert!(
            matches!(
                played.events.last(),
                Some(Ev::Error(ProtocolError::Malformed {
                    what: "UIDL reply",
                    ..
                }))
            ),
            "{reply}: {:?}",
            played.events
        );
    }
    // Two tokens whose first is not the number: not this quirk either.
    let t = r"
        S: +OK hi
        C: PASS p
        S: +OK
        C: UIDL 3
        S: +OK abc def
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::pass("p"), Command::Uidl(Some(3))]
    });
    assert!(
        matches!(played.events.last(), Some(Ev::Error(_))),
        "{:?}",
        played.events
    );
}
