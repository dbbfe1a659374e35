//! The body framer fed arbitrary bytes in arbitrary chunks, checked against the reference in
//! `pop3-proto/tests/common/reference.rs` (written from RFC 1939 section 3, sharing no code with
//! the decoder; the property tests in `pop3-proto/tests/framing.rs` use the same file).
//!
//! Input: an 8-byte header (flags, chunk mode, line limit, chunk seed) and then the payload.
//! Flags: 1 LF lines (a bare-LF server), 2 the `.` CR terminator, 4 a line limit, 8 round trip.
//! Without the round-trip flag the payload is the reply as the server sends it after the `+OK`
//! line, and the decoder must say what the reference says. With it the payload is a message:
//! encoded the way a conformant server encodes it, it must decode to the same bytes.
#![no_main]

#[path = "../../pop3-proto/tests/common/reference.rs"]
mod reference;

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{Header, chunks};
use pop3_proto::body::{BodyDecoder, BodyError, Decoded};
use reference::{Rules, sent_body, stuff, stuff_lf, unstuff};

/// What the decoder did with the input.
struct Outcome {
    body: Vec<u8>,
    consumed: usize,
    /// The terminator: where it started and how long the decoder took it to be.
    ended: Option<(usize, usize)>,
    error: Option<BodyError>,
}

/// Feeds `input` the way the client does: unconsumed bytes stay at the front, new ones are
/// appended.
fn decode(input: &[u8], rules: Rules, max_line: Option<usize>, mode: u8, seed: u32) -> Outcome {
    let mut dec = BodyDecoder::new(rules.lf_lines, rules.dot_cr, max_line);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Outcome {
        body: Vec::new(),
        consumed: 0,
        ended: None,
        error: None,
    };
    'feed: for piece in chunks(input, mode, seed) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&buf) {
                Ok(Decoded::Data { start, end }) => {
                    assert!(start <= 1 && start <= end && end <= buf.len());
                    assert!(end > 0, "Data that consumes nothing would loop forever");
                    out.body.extend_from_slice(&buf[start..end]);
                    buf.drain(..end);
                    out.consumed += end;
                }
                Ok(Decoded::End { consumed: n }) => {
                    assert!(n == 2 || n == 3);
                    out.ended = Some((out.consumed, n));
                    break 'feed;
                }
                Ok(Decoded::NeedMore { consumed: n }) => {
                    assert!(n <= 1 && n <= buf.len());
                    buf.drain(..n);
                    out.consumed += n;
                    // At most a dot and a CR wait for the next chunk.
                    assert!(buf.len() <= 2, "the decoder held back {} bytes", buf.len());
                    break;
                }
                Err(e) => {
                    out.error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(dec.octets(), out.body.len() as u64);
    out
}

/// The terminator the decoder found against the reference's: the same place, and the same
/// length, except that with the `.` CR quirk a `.` CR at the end of a chunk is taken at once
/// (two octets) even if an LF follows in the next one (the client swallows it).
fn same_end(input: &[u8], got: Option<(usize, usize)>, want: Option<(usize, usize)>, dot_cr: bool) {
    match (got, want) {
        (Some((at, n)), Some((ref_at, ref_n))) => {
            assert_eq!(at, ref_at, "the terminator was found elsewhere");
            assert!(
                n == ref_n || (dot_cr && n == 2 && ref_n == 3 && input[at + 1] == b'\r'),
                "terminator length {n}, the reference {ref_n}"
            );
        }
        (None, None) => {}
        (got, want) => panic!("decoder terminator {got:?}, reference {want:?}"),
    }
}

/// The longest line of `body`, counted as the line limit counts: octets up to any LF.
fn longest_line(body: &[u8]) -> usize {
    body.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let (mut h, payload) = Header::split(data, 8);
    let flags = h.u8();
    let rules = Rules {
        lf_lines: flags & 1 != 0,
        dot_cr: flags & 2 != 0,
    };
    let mode = h.u8();
    let limit = h.u16();
    let max_line = (flags & 4 != 0).then_some(usize::from(limit));
    let seed = h.u32();

    if flags & 8 != 0 {
        // Round trip: any message, encoded by a conformant server, decodes to itself (with the
        // line end the server adds to a message that lacks one), however it is split.
        let wire = if rules.lf_lines {
            stuff_lf(payload)
        } else {
            stuff(payload)
        };
        let sent = sent_body(payload, rules.lf_lines);
        let got = decode(&wire, rules, max_line, mode, seed);
        match (got.error, max_line) {
            (Some(BodyError::LineTooLong { limit }), Some(max)) => {
                assert_eq!(limit, max);
                assert!(
                    longest_line(&sent) > limit,
                    "LineTooLong without a long line"
                );
            }
            (Some(e), _) => panic!("{e:?} without a limit"),
            (None, _) => {
                if let Some(max) = max_line {
                    assert!(longest_line(&sent) <= max, "a long line went through");
                }
                assert_eq!(got.body, sent, "the message changed on its way");
                let end = wire.len() - if rules.lf_lines { 2 } else { 3 };
                same_end(
                    &wire,
                    got.ended,
                    Some((end, wire.len() - end)),
                    rules.dot_cr,
                );
            }
        }
        return;
    }

    // Any input: the decoder says what the reference says.
    let got = decode(payload, rules, max_line, mode, seed);
    let want = unstuff(payload, rules);
    if let Some(BodyError::LineTooLong { limit }) = got.error {
        // Only if some line of the body really is longer than the limit.
        assert_eq!(Some(limit), max_line);
        assert!(
            longest_line(&want.body) > limit,
            "LineTooLong without a long line"
        );
        assert!(want.body.starts_with(&got.body));
        return;
    }
    if let Some(limit) = max_line {
        // Every line went through the decoder: none may be longer.
        assert!(
            longest_line(&want.body) <= limit,
            "a line longer than {limit} went through"
        );
    }
    assert_eq!(
        got.body, want.body,
        "decoded bytes differ from the reference"
    );
    same_end(payload, got.ended, want.end, rules.dot_cr);
    if got.ended.is_none() {
        // Unterminated: everything is consumed but a held-back dot and CR.
        assert!(payload.len() - got.consumed <= 2);
    }
});
