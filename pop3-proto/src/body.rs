//! The body framer: finds the end of a multi-line RETR/TOP reply and undoes dot-stuffing,
//! streaming, however the input is split.
//!
//! RFC 1939 §3: each line ends in CRLF; a line that starts with `.` has had a `.` prepended
//! by the server; the line `.` CRLF ends the reply. The decoder never buffers: it hands back
//! ranges of the caller's input, and keeps only two bits of state between calls (whether it is
//! at the start of a line, and whether it has seen a `.` there).

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// The searcher for a line start with a dot, built once.
static LINE_DOT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n."));

/// What the decoder found at the front of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// `input[start..end]` is message data; `end` bytes of input are consumed.
    Data {
        /// The start of the data in the input (after a removed stuffing dot).
        start: usize,
        /// The end of the data, and the number of input bytes consumed.
        end: usize,
    },
    /// The terminator: `consumed` bytes (the terminator itself) are used up and the reply is
    /// complete.
    End {
        /// How many input bytes the terminator took.
        consumed: usize,
    },
    /// Nothing can be decided without more input; `consumed` bytes (a stuffing dot) were used.
    NeedMore {
        /// How many input bytes were used up.
        consumed: usize,
    },
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// A line exceeded the configured body-line limit.
    #[error("a message line exceeds the limit of {limit} octets")]
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
}

/// A streaming dot-unstuffer and terminator finder for one multi-line body.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    at_line_start: bool,
    accept_lf_terminator: bool,
    accept_dot_cr: bool,
    max_line: Option<usize>,
    line_len: usize,
    octets: u64,
}

impl BodyDecoder {
    /// A decoder for a reply whose first (status) line has just been consumed.
    ///
    /// `accept_lf_terminator`: `.` LF ends the body (for servers that speak bare LF).
    /// `accept_dot_cr`: `.` CR ends the body (the Cyrus quirk). `max_line`: refuse longer lines.
    pub fn new(accept_lf_terminator: bool, accept_dot_cr: bool, max_line: Option<usize>) -> Self {
        Self {
            at_line_start: true,
            accept_lf_terminator,
            accept_dot_cr,
            max_line,
            line_len: 0,
            octets: 0,
        }
    }

    /// The number of message octets decoded so far (after unstuffing).
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// The common case of [`decode`](Self::decode), small enough to inline: data up to the
    /// next line that starts with a dot. `None` (and no change) for everything else: a
    /// terminator, too little input, or a line-length limit to check.
    #[inline]
    pub(crate) fn fast_data(&mut self, input: &[u8]) -> Option<(usize, usize)> {
        if self.max_line.is_some() {
            return None;
        }
        let start = match input {
            [b'.', next, ..] if self.at_line_start && !matches!(next, b'\r' | b'\n') => 1,
            [first, ..] if !self.at_line_start || *first != b'.' => 0,
            _ => return None,
        };
        let rest = &input[start..];
        let len = match LINE_DOT.find(rest) {
            Some(i) => {
                self.at_line_start = true;
                i + 1
            }
            None => {
                self.at_line_start = rest.last() == Some(&b'\n');
                rest.len()
            }
        };
        if len == 0 {
            // Only a stuffing dot so far: let `decode` take it.
            self.at_line_start = true;
            return None;
        }
        self.octets += len as u64;
        Some((start, start + len))
    }

    /// Decodes from the front of `input`. Call again with the unconsumed rest until it answers
    /// [`Decoded::NeedMore`] (then wait for more input) or [`Decoded::End`].
    #[inline]
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        let mut start = 0;
        if self.at_line_start {
            match input.first() {
                None => return Ok(Decoded::NeedMore { consumed: 0 }),
                Some(b'.') => match (input.get(1), input.get(2)) {
                    (None, _) => return Ok(Decoded::NeedMore { consumed: 0 }),
                    (Some(b'\r'), Some(b'\n')) => return Ok(Decoded::End { consumed: 3 }),
                    (Some(b'\r'), _) if self.accept_dot_cr => {
                        return Ok(Decoded::End { consumed: 2 });
                    }
                    (Some(b'\r'), None) => return Ok(Decoded::NeedMore { consumed: 0 }),
                    (Some(b'\n'), _) if self.accept_lf_terminator => {
                        return Ok(Decoded::End { consumed: 2 });
                    }
                    // A stuffed line: drop the first dot (RFC 1939 §3).
                    _ => start = 1,
                },
                Some(_) => {}
            }
            self.at_line_start = false;
            self.line_len = 0;
        }
        let rest = &input[start..];
        if rest.is_empty() {
            return Ok(Decoded::NeedMore { consumed: start });
        }
        let len = match self.max_line {
            None => match LINE_DOT.find(rest) {
                // Up to and including the LF; the next call looks at the dot.
                Some(i) => {
                    self.at_line_start = true;
                    i + 1
                }
                None => {
                    self.at_line_start = rest.last() == Some(&b'\n');
                    rest.len()
                }
            },
            Some(limit) => self.limited_line(rest, limit)?,
        };
        self.octets += len as u64;
        Ok(Decoded::Data {
            start,
            end: start + len,
        })
    }

    /// The slow path with a line-length limit: one line (or the rest of the input) at a time.
    fn limited_line(&mut self, rest: &[u8], limit: usize) -> Result<usize, BodyError> {
        let (len, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => (i + 1, true),
            None => (rest.len(), false),
        };
        self.line_len += len;
        if self.line_len > limit {
            return Err(BodyError::LineTooLong { limit });
        }
        if complete {
            self.at_line_start = true;
        }
        Ok(len)
    }
}

/// The reference unstuffer the tests and fuzzers compare the decoder with: the whole reply at
/// once, line by line, the RFC's rule as plainly as it can be written. Returns the body and the
/// number of bytes up to and including the terminator, or `None` if no terminator was found.
#[doc(hidden)]
pub fn reference_unstuff(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let end = input[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)?;
        let line = &input[pos..end];
        if line == b".\r\n" {
            return Some((out, end));
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        pos = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces at the given split points, the way the client does: unconsumed
    /// bytes stay at the front of the buffer and new bytes are appended.
    fn decode_split(input: &[u8], splits: &[usize]) -> Option<(Vec<u8>, usize)> {
        let mut dec = BodyDecoder::new(false, false, None);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        let mut total = 0;
        let mut points: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|&s| s < input.len())
            .collect();
        points.sort_unstable();
        points.push(input.len());
        for p in points {
            if p < fed {
                continue;
            }
            buf.extend_from_slice(&input[fed..p]);
            fed = p;
            loop {
                match dec.decode(&buf).ok()? {
                    Decoded::Data { start, end } => {
                        out.extend_from_slice(&buf[start..end]);
                        buf.drain(..end);
                        total += end;
                    }
                    Decoded::End { consumed } => return Some((out, total + consumed)),
                    Decoded::NeedMore { consumed } => {
                        buf.drain(..consumed);
                        total += consumed;
                        break;
                    }
                }
            }
        }
        None
    }

    #[test]
    fn unstuffs_and_ends() {
        let wire = b"a\r\n..b\r\n.c\r\n\r\n.\r\nNEXT";
        let (body, used) = decode_split(wire, &[]).expect("terminated");
        assert_eq!(body, b"a\r\n.b\r\nc\r\n\r\n");
        assert_eq!(used, wire.len() - 4);
        assert_eq!(reference_unstuff(wire), Some((body, used)));
    }

    #[test]
    fn every_split_gives_the_same_body() {
        let wire = b"..\r\n.\r\r\n..x\r\nplain line\r\n.\r\n";
        let expected = reference_unstuff(wire);
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                assert_eq!(decode_split(wire, &[i, j]), expected, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn empty_body() {
        assert_eq!(decode_split(b".\r\n", &[]), Some((Vec::new(), 3)));
        assert_eq!(decode_split(b".\r\n", &[1, 2]), Some((Vec::new(), 3)));
    }

    #[test]
    fn lf_terminator_only_when_accepted() {
        let mut strict = BodyDecoder::new(false, false, None);
        assert_eq!(
            strict.decode(b".\nmore"),
            Ok(Decoded::Data { start: 1, end: 6 })
        );
        let mut lf = BodyDecoder::new(true, false, None);
        assert_eq!(lf.decode(b".\nmore"), Ok(Decoded::End { consumed: 2 }));
    }

    #[test]
    fn dot_cr_terminator_only_when_accepted() {
        let mut strict = BodyDecoder::new(false, false, None);
        assert_eq!(strict.decode(b".\r"), Ok(Decoded::NeedMore { consumed: 0 }));
        let mut cyrus = BodyDecoder::new(false, true, None);
        assert_eq!(cyrus.decode(b".\r"), Ok(Decoded::End { consumed: 2 }));
        assert_eq!(cyrus.decode(b".\r\n"), Ok(Decoded::End { consumed: 3 }));
    }

    #[test]
    fn line_limit() {
        let mut dec = BodyDecoder::new(false, false, Some(8));
        assert!(matches!(
            dec.decode(b"1234567\n"),
            Ok(Decoded::Data { start: 0, end: 8 })
        ));
        assert_eq!(dec.decode(b"12345"), Ok(Decoded::Data { start: 0, end: 5 }));
        assert_eq!(
            dec.decode(b"6789"),
            Err(BodyError::LineTooLong { limit: 8 })
        );
    }

    proptest::proptest! {
        #[test]
        fn any_body_round_trips(lines in proptest::collection::vec(proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'.'), proptest::strategy::Just(b'\r'),
                proptest::strategy::Just(b'\n'), proptest::num::u8::ANY], 0..40), 0..20),
            splits in proptest::collection::vec(0usize..2000, 0..6)) {
            // Any body bytes, as CRLF lines: stuff, terminate, decode, compare.
            let mut body = Vec::new();
            let mut wire = Vec::new();
            for line in &lines {
                let line: Vec<u8> = line.iter().copied().filter(|&b| b != b'\n').collect();
                let line = if line.last() == Some(&b'\r') { &line[..line.len() - 1] } else { &line[..] };
                body.extend_from_slice(line);
                body.extend_from_slice(b"\r\n");
                if line.first() == Some(&b'.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let (decoded, used) = decode_split(&wire, &splits).expect("terminated");
            proptest::prop_assert_eq!(&decoded, &body);
            proptest::prop_assert_eq!(used, wire.len());
        }

        #[test]
        fn matches_reference_on_any_input(wire in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'.'), proptest::strategy::Just(b'\r'),
                proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'a')], 0..200),
            splits in proptest::collection::vec(0usize..200, 0..6)) {
            proptest::prop_assert_eq!(decode_split(&wire, &splits), reference_unstuff(&wire));
        }
    }
}
