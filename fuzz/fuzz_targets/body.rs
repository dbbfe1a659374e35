//! The body framer fed arbitrary bytes in arbitrary chunks, compared with a plain line-by-line
//! unstuffing of the whole input (`pop3_proto::body::reference_unstuff` for the RFC rule, and a
//! local generalisation of it for the bare-LF and `.` CR terminators).
//!
//! Input: an 8-byte header (flags, chunk mode, line limit, chunk seed) and then the body bytes
//! as the server sends them after the `+OK` line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{Header, chunks};
use pop3_proto::body::{BodyDecoder, BodyError, Decoded, reference_unstuff};

/// What the reference found: the body, where the terminator starts, and its line.
struct Reference {
    body: Vec<u8>,
    /// Every line before the terminator (or every line, unterminated), unstuffed, line end kept.
    lines: Vec<Vec<u8>>,
    /// Offset of the terminator line, if any.
    end_at: Option<usize>,
}

/// The RFC rule line by line, with the optional terminators: `.` LF (bare-LF servers) and `.` CR
/// (Cyrus). Without a terminator the whole input is unstuffed, the last line maybe partial.
fn reference(input: &[u8], lf: bool, dot_cr: bool) -> Reference {
    let mut out = Reference {
        body: Vec::new(),
        lines: Vec::new(),
        end_at: None,
    };
    let mut pos = 0;
    while pos < input.len() {
        let end = input[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(input.len(), |i| pos + i + 1);
        let line = &input[pos..end];
        if line == b".\r\n" || (lf && line == b".\n") || (dot_cr && line.starts_with(b".\r")) {
            out.end_at = Some(pos);
            return out;
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(line);
        out.body.extend_from_slice(unstuffed);
        out.lines.push(unstuffed.to_vec());
        pos = end;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (mut h, input) = Header::split(data, 8);
    let flags = h.u8();
    let lf = flags & 1 != 0;
    let dot_cr = flags & 2 != 0;
    let mode = h.u8();
    let limit = h.u16();
    let max_line = (flags & 4 != 0).then_some(usize::from(limit));
    let seed = h.u32();

    // Feed the way the client does: unconsumed bytes stay at the front, new ones are appended.
    let mut dec = BodyDecoder::new(lf, dot_cr, max_line);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut consumed = 0usize;
    let mut ended = None;
    let mut error = None;
    'feed: for piece in chunks(input, mode, seed) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&buf) {
                Ok(Decoded::Data { start, end }) => {
                    assert!(start <= 1 && start <= end && end <= buf.len());
                    assert!(end > 0, "Data that consumes nothing would loop forever");
                    out.extend_from_slice(&buf[start..end]);
                    buf.drain(..end);
                    consumed += end;
                }
                Ok(Decoded::End { consumed: n }) => {
                    assert!(n == 2 || n == 3);
                    ended = Some((consumed, n));
                    break 'feed;
                }
                Ok(Decoded::NeedMore { consumed: n }) => {
                    assert!(n <= 1 && n <= buf.len());
                    buf.drain(..n);
                    consumed += n;
                    // At most a dot and a CR wait for the next chunk.
                    assert!(buf.len() <= 2, "the decoder held back {} bytes", buf.len());
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(dec.octets(), out.len() as u64);

    let r = reference(input, lf, dot_cr);
    if let Some(BodyError::LineTooLong { limit }) = error {
        // Only if some line really is longer than the limit.
        assert_eq!(Some(limit), max_line);
        assert!(
            r.lines.iter().any(|l| l.len() > limit),
            "LineTooLong without a long line"
        );
        return;
    }
    if let Some(limit) = max_line {
        // Every complete line went through the decoder: none may be longer.
        for l in r.lines.iter().filter(|l| l.ends_with(b"\n")) {
            assert!(
                l.len() <= limit,
                "a line of {} octets went through a limit of {limit}",
                l.len()
            );
        }
    }
    match (ended, r.end_at) {
        (Some((at, n)), Some(ref_at)) => {
            assert_eq!(at, ref_at, "the terminator was found elsewhere");
            assert_eq!(out, r.body);
            let term = &input[at..];
            let expected_n: &[usize] = if term.starts_with(b".\r\n") {
                // `.` CR LF is 3 bytes, unless `.` CR arrived alone and the Cyrus quirk took it.
                if dot_cr { &[2, 3] } else { &[3] }
            } else {
                &[2]
            };
            assert!(
                expected_n.contains(&n),
                "terminator length {n} for {:?}",
                &term[..term.len().min(3)]
            );
            if !lf && !dot_cr {
                assert_eq!(reference_unstuff(input), Some((out.clone(), at + n)));
            }
        }
        (None, None) => {
            // Unterminated: all that was decoded is the unstuffed input, but for at most a
            // dot and a CR held back at a line start.
            assert!(
                r.body.starts_with(&out),
                "decoded bytes differ from the reference"
            );
            assert!(r.body.len() - out.len() <= 1);
            assert!(input.len() - consumed <= 2);
            if !lf && !dot_cr {
                assert_eq!(reference_unstuff(input), None);
            }
        }
        (got, want) => panic!("decoder terminator {got:?}, reference {want:?}"),
    }
});
