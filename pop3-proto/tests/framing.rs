//! Multi-line framing (RFC 1939 section 3): only CRLF "." CRLF ends a body and only a "." right
//! after CRLF is a stuffing dot, so message content can neither end a message early nor forge
//! the replies behind it. Checked through the `Client` with scripted transcripts (fed whole,
//! byte by byte and split at every offset), and with property tests against the reference in
//! `common/reference.rs`, which is written from the RFC's text and shares no code with the
//! decoder.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/reference.rs"]
mod reference;

use common::{Ev, play, rfc_config, texts};
use pop3_proto::body::{BodyDecoder, BodyError, Decoded};
use pop3_proto::{Client, Command, Config, Event, Pipelining};
use proptest::prelude::*;
use reference::{Rules, sent_body, stuff, stuff_lf, unstuff};

fn pipelining_config() -> Config {
    let mut config = rfc_config();
    config.pipelining = Pipelining::Always;
    config
}

fn login_and_two_retrs() -> Vec<Command> {
    vec![
        Command::user("u"),
        Command::pass("p"),
        Command::retr(1),
        Command::retr(2),
        Command::Quit,
    ]
}

/// The bodies of the events, by command id, and the rest as text.
fn bodies(events: &[Ev]) -> Vec<(u64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Body(id, bytes) => Some((*id, bytes.clone())),
            _ => None,
        })
        .collect()
}

/// A message that carries `hello` LF `.` CRLF `+OK forged` CRLF: with two RETRs pipelined, the
/// forged `+OK` must not end message 1, and message 2 gets its own bytes.
#[test]
fn forged_reply_after_a_bare_lf_is_message_data_under_pipelining() {
    let t = r"
        S: +OK hi
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: RETR 1
        C: RETR 2
        S: +OK first
        S: hello\n.\r\n+OK forged\r\nFrom: evil\r\n.
        S: +OK second
        S: message two
        S: .
        C: QUIT
        S: +OK bye
    ";
    let played = play(pipelining_config(), t, login_and_two_retrs);
    assert_eq!(
        bodies(&played.events),
        vec![
            (2, b"hello\n.\r\n+OK forged\r\nFrom: evil\r\n".to_vec()),
            (3, b"message two\r\n".to_vec()),
        ],
        "{:?}",
        played.events
    );
    let texts = texts(&played.events);
    let done: Vec<&String> = texts
        .iter()
        .filter(|e| e.starts_with("Ok {") || e.starts_with("BodyEnd"))
        .collect();
    assert_eq!(
        done,
        [
            "Ok { id: CommandId(0), command: User, code: None, text: \"\" }",
            "Ok { id: CommandId(1), command: Pass, code: None, text: \"\" }",
            "BodyEnd { id: CommandId(2), octets: 33 }",
            "Ok { id: CommandId(2), command: Retr, code: None, text: \"first\" }",
            "BodyEnd { id: CommandId(3), octets: 13 }",
            "Ok { id: CommandId(3), command: Retr, code: None, text: \"second\" }",
            "Ok { id: CommandId(4), command: Quit, code: None, text: \"bye\" }",
        ]
    );
    assert!(
        !played
            .events
            .iter()
            .any(|e| matches!(e, Ev::Error(_)) || format!("{e:?}").contains("forged\""))
    );
}

/// `a` LF `.b`: the dot follows a bare LF, so it is data and stays.
#[test]
fn a_dot_after_a_bare_lf_is_kept() {
    let t = r"
        S: +OK hi
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: RETR 1
        C: RETR 2
        S: +OK
        S: a\n.b\n..c\r\n..d\r\n.
        S: +OK
        S: \n.\r\n.
        C: QUIT
        S: +OK bye
    ";
    let played = play(pipelining_config(), t, login_and_two_retrs);
    assert_eq!(
        bodies(&played.events),
        vec![
            (2, b"a\n.b\n..c\r\n.d\r\n".to_vec()),
            (3, b"\n.\r\n".to_vec()),
        ],
        "{:?}",
        played.events
    );
}

/// A CR at the end of one read and LF "." at the start of the next is still CRLF ".": the
/// state carries across reads (`play` splits at every offset, this pins the awkward one).
#[test]
fn crlf_split_between_reads_still_starts_a_line() {
    let mut c = Client::new(rfc_config());
    let mut body = Vec::new();
    let mut ended = false;
    for (input, command) in [
        (&b"+OK hi\r\n"[..], Some(Command::user("u"))),
        (b"+OK\r\n", Some(Command::pass("p"))),
        (b"+OK\r\n", Some(Command::retr(1))),
        (b"+OK\r\nx\r", None),
        (b"\n..y\r", None),
        (b"\n.\r\n", None),
    ] {
        c.handle_input(input);
        while let Some(event) = c.poll_event().unwrap() {
            match event {
                Event::Body { chunk, .. } => body.extend_from_slice(chunk),
                Event::BodyEnd { .. } => ended = true,
                _ => {}
            }
        }
        if let Some(command) = command {
            c.enqueue(command).unwrap();
            c.poll_transmit(&mut Vec::new());
        }
    }
    assert_eq!(body, b"x\r\n.y\r\n");
    assert!(ended);
    assert!(c.is_idle());
}

/// A server whose greeting ends in a bare LF speaks LF: a line starts after any LF, `.` LF ends
/// the body, and `..` after LF is unstuffed. `.` CR LF ends it too (the CR belongs to the line
/// end, as in the status lines).
#[test]
fn bare_lf_server_lines_start_after_any_lf() {
    let t = r"
        S: +OK hi\n\
        C: USER u
        S: +OK\n\
        C: PASS p
        S: +OK\n\
        C: RETR 1
        C: RETR 2
        S: +OK\nline\n..dot\n.\r\n\
        S: +OK\na\r\n..\r\n.\n\
        C: QUIT
        S: +OK\n\
    ";
    let played = play(pipelining_config(), t, login_and_two_retrs);
    assert_eq!(
        bodies(&played.events),
        vec![(2, b"line\n.dot\n".to_vec()), (3, b"a\r\n.\r\n".to_vec())],
        "{:?}",
        played.events
    );
}

/// The framing is decided by the greeting, once: a server that greeted with CRLF is framed by
/// CRLF even when a later status line ends in a bare LF, so `.` LF is data, not the end.
#[test]
fn a_crlf_server_never_gets_lf_framing() {
    let t = r"
        S: +OK hi
        C: USER u
        S: +OK\n\
        C: PASS p
        S: +OK
        C: RETR 1
        S: +OK
        S: x\n.\n..\n
        S: .
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::user("u"), Command::pass("p"), Command::retr(1)]
    });
    assert_eq!(
        bodies(&played.events),
        vec![(2, b"x\n.\n..\n\r\n".to_vec())],
        "{:?}",
        played.events
    );
}

// ---- the decoder against the reference ----

/// Feeds `wire` to a fresh decoder in pieces cut at `splits`, the way the client does
/// (unconsumed bytes stay at the front, new bytes are appended). Returns the body, the octets
/// consumed (the terminator included) if it ended, or the error.
fn decode_split(
    wire: &[u8],
    splits: &[usize],
    rules: Rules,
    max_line: Option<usize>,
) -> Result<(Vec<u8>, Option<usize>), BodyError> {
    let mut dec = BodyDecoder::new(rules.lf_lines, rules.dot_cr, max_line);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut total = 0;
    let mut points: Vec<usize> = splits.iter().copied().filter(|&s| s < wire.len()).collect();
    points.sort_unstable();
    points.push(wire.len());
    for p in points {
        if p < fed {
            continue;
        }
        buf.extend_from_slice(&wire[fed..p]);
        fed = p;
        loop {
            match dec.decode(&buf)? {
                Decoded::Data { start, end } => {
                    assert!(end > 0 && start <= 1 && start <= end && end <= buf.len());
                    out.extend_from_slice(&buf[start..end]);
                    buf.drain(..end);
                    total += end;
                }
                Decoded::End { consumed } => {
                    assert_eq!(dec.octets(), out.len() as u64);
                    return Ok((out, Some(total + consumed)));
                }
                Decoded::NeedMore { consumed } => {
                    buf.drain(..consumed);
                    total += consumed;
                    assert!(buf.len() <= 2, "held back {} octets", buf.len());
                    break;
                }
            }
        }
    }
    assert_eq!(dec.octets(), out.len() as u64);
    Ok((out, None))
}

/// What the reference says the decoder must return, when the input is decoded whole.
fn expected(wire: &[u8], rules: Rules) -> (Vec<u8>, Option<usize>) {
    let r = unstuff(wire, rules);
    (r.body, r.end.map(|(at, len)| at + len))
}

/// Body bytes rich in what breaks framers: CR, LF, dots, and plain octets.
fn body_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'.'),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'a'),
            any::<u8>()
        ],
        0..max,
    )
}

#[test]
fn decoder_examples_agree_with_the_reference() {
    let crlf = Rules::default();
    for wire in [
        &b"hello\n.\r\n+OK forged\r\n.\r\n"[..],
        b"a\n.b\r\n.\r\n",
        b"..\r\n.\r\r\n..x\r\nplain line\r\n.\r\n",
        b".\r\n",
        b"\r\n.\r\n",
        b"\r.\r\n\r\n.\r\n",
        b"x\r\r\n..\r\n.\r\n",
    ] {
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                assert_eq!(
                    decode_split(wire, &[i, j], crlf, None),
                    Ok(expected(wire, crlf)),
                    "{:?} split at {i},{j}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }
    assert_eq!(
        expected(b"hello\n.\r\n+OK forged\r\n.\r\n", crlf),
        (b"hello\n.\r\n+OK forged\r\n".to_vec(), Some(24))
    );
}

/// With the Cyrus quirk, "." CR at the end of a piece is taken at once as a two-octet end (the
/// client swallows the LF that may follow): the body is the same, the terminator may be one
/// octet shorter than the reference's "." CRLF.
fn same_with_dot_cr(
    wire: &[u8],
    got: Result<(Vec<u8>, Option<usize>), BodyError>,
    want: (Vec<u8>, Option<usize>),
) -> Result<(), TestCaseError> {
    let (body, used) = got.map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&body, &want.0);
    match (used, want.1) {
        (Some(u), Some(w)) => prop_assert!(
            u == w || (u + 1 == w && wire[u] == b'\n' && wire[u - 1] == b'\r'),
            "used {u}, the reference {w}"
        ),
        (u, w) => prop_assert_eq!(u, w),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any body, encoded as a conformant server encodes it, decodes to the same bytes (with
    /// the CRLF the server adds to a body that lacks one), whole or split anywhere.
    #[test]
    fn any_body_round_trips(body in body_bytes(300),
            splits in proptest::collection::vec(0usize..400, 0..6)) {
        let wire = stuff(&body);
        let crlf = Rules::default();
        prop_assert_eq!(decode_split(&wire, &[], crlf, None),
            Ok((sent_body(&body, false), Some(wire.len()))));
        prop_assert_eq!(decode_split(&wire, &splits, crlf, None),
            Ok((sent_body(&body, false), Some(wire.len()))));
        // With a line limit no line reaches (the slow path), the same.
        prop_assert_eq!(decode_split(&wire, &splits, crlf, Some(usize::MAX)),
            Ok((sent_body(&body, false), Some(wire.len()))));
        // The Cyrus quirk changes nothing for a conformant server (it stuffs every line that
        // begins with a dot, so "." CR at a line start is always its end).
        let cyrus = Rules { lf_lines: false, dot_cr: true };
        same_with_dot_cr(&wire, decode_split(&wire, &splits, cyrus, None),
            (sent_body(&body, false), Some(wire.len())))?;
    }

    /// The same for a server that speaks bare LF.
    #[test]
    fn any_body_round_trips_from_a_bare_lf_server(body in body_bytes(300),
            splits in proptest::collection::vec(0usize..400, 0..6)) {
        let wire = stuff_lf(&body);
        let lf = Rules { lf_lines: true, dot_cr: false };
        prop_assert_eq!(decode_split(&wire, &splits, lf, None),
            Ok((sent_body(&body, true), Some(wire.len()))));
        prop_assert_eq!(decode_split(&wire, &splits, lf, Some(usize::MAX)),
            Ok((sent_body(&body, true), Some(wire.len()))));
    }

    /// On any input at all (hostile or broken servers), the decoder says what the reference
    /// says, however the input is split, in every framing mode, with and without a line limit
    /// that no line reaches.
    #[test]
    fn decoder_agrees_with_the_reference_on_any_input(wire in body_bytes(200),
            splits in proptest::collection::vec(0usize..200, 0..6),
            lf_lines: bool, dot_cr: bool, limit: bool) {
        let rules = Rules { lf_lines, dot_cr };
        let max_line = limit.then_some(usize::MAX);
        let got = decode_split(&wire, &splits, rules, max_line);
        let want = expected(&wire, rules);
        if dot_cr {
            same_with_dot_cr(&wire, got, want)?;
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    /// A line limit refuses exactly the bodies with a longer line (lines counted up to any LF).
    #[test]
    fn line_limit_refuses_only_long_lines(body in body_bytes(200),
            splits in proptest::collection::vec(0usize..300, 0..6), limit in 1usize..40) {
        let wire = stuff(&body);
        let longest = sent_body(&body, false)
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        let got = decode_split(&wire, &splits, Rules::default(), Some(limit));
        if longest > limit {
            prop_assert_eq!(got, Err(BodyError::LineTooLong { limit }));
        } else {
            prop_assert_eq!(got, Ok((sent_body(&body, false), Some(wire.len()))));
        }
    }
}

// ---- the client's fast path against its slow path ----

/// Two pipelined RETRs whose replies are `replies`, fed in pieces cut at `splits`. Returns
/// every event as text (bodies merged per command) and what is left in the buffer.
fn fetch_two(
    config: Config,
    greeting: &[u8],
    replies: &[u8],
    splits: &[usize],
) -> (Vec<Ev>, usize) {
    let mut c = Client::new(config);
    let eol: &[u8] = if greeting.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut ok = b"+OK".to_vec();
    ok.extend_from_slice(eol);
    c.handle_input(greeting);
    while c.poll_event().unwrap().is_some() {}
    for command in [Command::user("u"), Command::pass("p")] {
        c.enqueue(command).unwrap();
        c.poll_transmit(&mut Vec::new());
        c.handle_input(&ok);
        while c.poll_event().unwrap().is_some() {}
    }
    c.enqueue(Command::retr(1)).unwrap();
    c.enqueue(Command::retr(2)).unwrap();
    c.poll_transmit(&mut Vec::new());
    let mut events: Vec<Ev> = Vec::new();
    let push = |events: &mut Vec<Ev>, ev: Ev| {
        if let (Some(Ev::Body(a, prev)), Ev::Body(b, chunk)) = (events.last_mut(), &ev) {
            if a == b {
                prev.extend_from_slice(chunk);
                return;
            }
        }
        events.push(ev);
    };
    let mut points: Vec<usize> = splits
        .iter()
        .copied()
        .filter(|&s| s < replies.len())
        .collect();
    points.sort_unstable();
    points.push(replies.len());
    let mut fed = 0;
    for p in points {
        if p < fed {
            continue;
        }
        c.handle_input(&replies[fed..p]);
        fed = p;
        loop {
            match c.poll_event() {
                Ok(Some(Event::Body { id, chunk })) => {
                    assert!(!chunk.is_empty());
                    push(&mut events, Ev::Body(id.get(), chunk.to_vec()));
                }
                Ok(Some(other)) => push(&mut events, Ev::Other(format!("{other:?}"))),
                Ok(None) => break,
                Err(e) => {
                    events.push(Ev::Error(e));
                    return (events, c.buffered());
                }
            }
        }
    }
    (events, c.buffered())
}

/// The fast path (the fast branch of `poll_event`) gives exactly what the slow path gives: a
/// config with a line limit no line reaches turns the fast path off. (That the fast path
/// serves the ordinary case is checked inside the crate, where it can be counted.)
fn fast_matches_slow(
    greeting: &[u8],
    replies: &[u8],
    splits: &[usize],
    dot_cr: bool,
) -> Result<(), TestCaseError> {
    let mut fast_config = pipelining_config();
    fast_config.quirks.dot_cr_terminator = dot_cr;
    let mut slow_config = fast_config.clone();
    slow_config.max_body_line = Some(usize::MAX);
    let slow = fetch_two(slow_config, greeting, replies, splits);
    let fast = fetch_two(fast_config, greeting, replies, splits);
    prop_assert_eq!((&fast.0, fast.1), (&slow.0, slow.1));
    Ok(())
}

#[test]
fn plain_bodies_agree_on_both_paths() {
    // The first chunk after a status line comes from the slow path (it parsed the status
    // line); each stuffed line after it is a chunk of its own for the fast path (counted by
    // the crate's own `fast_path_serves_plain_bodies`).
    let replies = b"+OK\r\nline one\r\n..b\r\n..c\r\nline four\r\n..d\r\n.\r\n+OK\r\nx\r\n.\r\n";
    fast_matches_slow(b"+OK hi\r\n", replies, &[], false).unwrap();
    let (events, buffered) = fetch_two(pipelining_config(), b"+OK hi\r\n", replies, &[]);
    assert_eq!(buffered, 0);
    assert_eq!(
        bodies(&events),
        vec![
            (2, b"line one\r\n.b\r\n.c\r\nline four\r\n.d\r\n".to_vec()),
            (3, b"x\r\n".to_vec())
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary reply bytes (not just well-formed ones), split anywhere: the fast path and
    /// the slow path agree on every event and on what is left unconsumed.
    #[test]
    fn fast_path_agrees_with_slow_path(body in body_bytes(200), second in body_bytes(40),
            splits in proptest::collection::vec(0usize..300, 0..6), dot_cr: bool) {
        let mut replies = b"+OK\r\n".to_vec();
        replies.extend_from_slice(&body);
        replies.extend_from_slice(b"\r\n.\r\n+OK\r\n");
        replies.extend_from_slice(&second);
        fast_matches_slow(b"+OK hi\r\n", &replies, &splits, dot_cr)?;
    }

    /// The same from a bare-LF server.
    #[test]
    fn fast_path_agrees_with_slow_path_for_a_bare_lf_server(body in body_bytes(200),
            second in body_bytes(40), splits in proptest::collection::vec(0usize..300, 0..6)) {
        let mut replies = b"+OK\n".to_vec();
        replies.extend_from_slice(&body);
        replies.extend_from_slice(b"\n.\n+OK\n");
        replies.extend_from_slice(&second);
        fast_matches_slow(b"+OK hi\n", &replies, &splits, false)?;
    }

    /// Through the whole client: two pipelined messages with any content, encoded by a
    /// conformant server, arrive whole and each under its own command, however split.
    #[test]
    fn pipelined_messages_keep_their_own_bytes(first in body_bytes(200), second in body_bytes(200),
            splits in proptest::collection::vec(0usize..500, 0..6)) {
        let mut replies = b"+OK\r\n".to_vec();
        replies.extend_from_slice(&stuff(&first));
        replies.extend_from_slice(b"+OK\r\n");
        replies.extend_from_slice(&stuff(&second));
        let (events, buffered) =
            fetch_two(pipelining_config(), b"+OK hi\r\n", &replies, &splits);
        let mut want = Vec::new();
        for (id, body) in [(2, sent_body(&first, false)), (3, sent_body(&second, false))] {
            if !body.is_empty() {
                want.push((id, body));
            }
        }
        prop_assert_eq!(bodies(&events), want);
        prop_assert_eq!(buffered, 0);
        prop_assert!(!events.iter().any(|e| matches!(e, Ev::Error(_))));
    }
}
