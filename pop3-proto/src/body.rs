//! The body framer: finds the end of a multi-line RETR/TOP reply and undoes dot-stuffing,
//! streaming, however the input is split.
//!
//! RFC 1939 §3: each line ends in CRLF; a line that starts with `.` has had a `.` prepended
//! by the server; the line `.` CRLF ends the reply. A line starts only after CRLF (or at the
//! start of the body): a bare CR or a bare LF inside a message is an octet of its line like any
//! other. So `hello` LF `.` CRLF `+OK forged` CRLF is message data, not the end of the message
//! and a forged reply (the SMTP-smuggling class of bug, which under pipelining would shift the
//! bodies onto the wrong messages), and the dot of `a` LF `.b` stays.
//!
//! Two tolerated deviations, fixed when the decoder is made (once per connection, never mixed):
//!
//! - **LF lines** (`lf_lines`, for a server whose greeting ended in a bare LF and that ends
//!   every line so): a line starts after any LF. The body ends with `.` LF, or with `.` CR LF
//!   (the CR belongs to the line end, as in that server's status lines); a `.` that starts any
//!   other line is a stuffing dot.
//! - **`.` CR** (`accept_dot_cr`, Cyrus 3.4.6): `.` CR at a line start ends the body even
//!   without its LF; the client swallows the LF if it follows.
//!
//! The decoder never buffers: it hands back ranges of the caller's input, and keeps a few bits
//! of state between calls (whether it is at the start of a line, and whether the last octet it
//! handed out was a CR, so that a CRLF split between two reads still starts a line). The common
//! case is one `memmem` search for CRLF `.` per chunk (the fast path, `fast_data`); a
//! line-length limit, a stuffing dot or a CR at the end of the input goes the slow way.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// The searcher for a line start with a dot (CRLF framing), built once.
static CRLF_DOT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n."));

/// The searcher for a line start with a dot when lines end in a bare LF.
static LF_DOT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n."));

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
    /// At the start of a line: the start of the body, or right after a line end.
    at_line_start: bool,
    /// The last octet handed out was a CR (CRLF framing only): an LF at the front of the next
    /// input completes a CRLF, and a line starts after it.
    after_cr: bool,
    /// Lines end at any LF (a bare-LF server), not only at CRLF.
    lf_lines: bool,
    accept_dot_cr: bool,
    max_line: Option<usize>,
    line_len: usize,
    octets: u64,
}

impl BodyDecoder {
    /// A decoder for a reply whose first (status) line has just been consumed.
    ///
    /// `lf_lines`: the server ends its lines with a bare LF (its greeting did): a line starts
    /// after any LF, and `.` LF (or `.` CR LF) ends the body. Without it only CRLF ends a line,
    /// and only `.` CRLF right after CRLF ends the body. `accept_dot_cr`: `.` CR ends the body
    /// (the Cyrus quirk). `max_line`: refuse longer lines (counted up to any LF, so that a
    /// message with bare-LF line ends is not one long line).
    pub fn new(lf_lines: bool, accept_dot_cr: bool, max_line: Option<usize>) -> Self {
        Self {
            at_line_start: true,
            after_cr: false,
            lf_lines,
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
    /// terminator or a stuffing dot that needs a closer look, too little input, a CR handed
    /// out last (the next LF may complete a CRLF), or a line-length limit to check.
    #[inline(always)]
    pub(crate) fn fast_data(&mut self, input: &[u8]) -> Option<(usize, usize)> {
        if self.max_line.is_some() || self.after_cr {
            return None;
        }
        let start = match input {
            [b'.', next, ..] if self.at_line_start && !matches!(next, b'\r' | b'\n') => 1,
            [first, ..] if !self.at_line_start || *first != b'.' => 0,
            _ => return None,
        };
        // Not empty: a stuffing dot is followed by at least one octet.
        let len = self.scan(&input[start..]);
        self.octets += len as u64;
        Some((start, start + len))
    }

    /// Message data from the front of `rest` (not empty, not at a line start's dot): up to and
    /// including the line end before the next line that starts with a dot, or all of it.
    /// Leaves the state as it is after the last octet handed out.
    #[inline(always)]
    fn scan(&mut self, rest: &[u8]) -> usize {
        // The statics, not a pointer in `self`: the search is measurably faster (decode bench).
        let found = if self.lf_lines {
            LF_DOT.find(rest).map(|i| i + 1)
        } else {
            CRLF_DOT.find(rest).map(|i| i + 2)
        };
        match found {
            // Up to and including the LF; the next call looks at the dot.
            Some(len) => {
                self.at_line_start = true;
                self.after_cr = false;
                len
            }
            None => self.take_all(rest),
        }
    }

    /// All of `rest` is data: once per read at most, kept out of the hot loop.
    #[cold]
    #[inline(never)]
    fn take_all(&mut self, rest: &[u8]) -> usize {
        let prev_cr = self.after_cr;
        self.after(rest, prev_cr);
        rest.len()
    }

    /// The state after handing out `data` (not empty); `prev_cr`: the octet before it was a CR.
    fn after(&mut self, data: &[u8], prev_cr: bool) {
        let last = data[data.len() - 1];
        if self.lf_lines {
            self.at_line_start = last == b'\n';
            self.after_cr = false;
        } else {
            let before = match data.len() {
                1 => prev_cr,
                n => data[n - 2] == b'\r',
            };
            self.at_line_start = last == b'\n' && before;
            self.after_cr = last == b'\r';
        }
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
                    (Some(b'\n'), _) if self.lf_lines => {
                        return Ok(Decoded::End { consumed: 2 });
                    }
                    // A stuffed line: drop the first dot (RFC 1939 §3: "If so and if octets
                    // other than CRLF follow, the first octet of the line [...] is stripped").
                    _ => start = 1,
                },
                Some(_) => {}
            }
            self.at_line_start = false;
        }
        let rest = &input[start..];
        if rest.is_empty() {
            return Ok(Decoded::NeedMore { consumed: start });
        }
        let len = match self.max_line {
            Some(limit) => self.limited_line(rest, limit)?,
            None if self.after_cr && rest[0] == b'\n' => {
                // The LF of a CRLF split between two inputs: a line starts after it.
                self.after_cr = false;
                self.at_line_start = true;
                1
            }
            None => self.scan(rest),
        };
        self.octets += len as u64;
        Ok(Decoded::Data {
            start,
            end: start + len,
        })
    }

    /// The slow path with a line-length limit: up to the next LF (or the rest of the input) at
    /// a time. The limit counts the octets up to any LF, bare or not.
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
            self.line_len = 0;
        }
        let prev_cr = self.after_cr;
        self.after(&rest[..len], prev_cr);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a test feeds the decoder.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Path {
        /// `decode` only.
        Slow,
        /// `fast_data` first, then `decode` when it declines, as the client does.
        Fast,
    }

    /// What [`feed`] saw: the chunks, the bytes consumed, whether the terminator was found,
    /// and how many chunks came from `fast_data`.
    type Fed = (Vec<Vec<u8>>, usize, bool, usize);

    /// Feeds `input` in pieces at the given split points, the way the client does: unconsumed
    /// bytes stay at the front of the buffer and new bytes are appended. Returns the chunks,
    /// the bytes consumed in all, and whether the terminator was found.
    fn feed(
        mut dec: BodyDecoder,
        input: &[u8],
        splits: &[usize],
        path: Path,
    ) -> Result<Fed, BodyError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunks = Vec::new();
        let mut fed = 0;
        let mut total = 0;
        let mut fast = 0;
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
                if path == Path::Fast {
                    if let Some((start, end)) = dec.fast_data(&buf) {
                        assert!(start < end, "an empty fast chunk");
                        chunks.push(buf[start..end].to_vec());
                        buf.drain(..end);
                        total += end;
                        fast += 1;
                        continue;
                    }
                }
                match dec.decode(&buf)? {
                    Decoded::Data { start, end } => {
                        if end > start {
                            chunks.push(buf[start..end].to_vec());
                        }
                        buf.drain(..end);
                        total += end;
                    }
                    Decoded::End { consumed } => {
                        assert_eq!(dec.octets(), chunks.concat().len() as u64);
                        return Ok((chunks, total + consumed, true, fast));
                    }
                    Decoded::NeedMore { consumed } => {
                        buf.drain(..consumed);
                        total += consumed;
                        break;
                    }
                }
            }
        }
        assert_eq!(dec.octets(), chunks.concat().len() as u64);
        Ok((chunks, total, false, fast))
    }

    /// The body and the bytes consumed, if the terminator was found.
    fn decode_split(input: &[u8], splits: &[usize]) -> Option<(Vec<u8>, usize)> {
        let dec = BodyDecoder::new(false, false, None);
        match feed(dec, input, splits, Path::Slow) {
            Ok((chunks, used, true, _)) => Some((chunks.concat(), used)),
            _ => None,
        }
    }

    #[test]
    fn unstuffs_and_ends() {
        let wire = b"a\r\n..b\r\n.c\r\n\r\n.\r\nNEXT";
        assert_eq!(
            decode_split(wire, &[]),
            Some((b"a\r\n.b\r\nc\r\n\r\n".to_vec(), wire.len() - 4))
        );
    }

    #[test]
    fn every_split_gives_the_same_body() {
        let wire = b"..\r\n.\r\r\n..x\r\nplain line\r\n.\r\n";
        let expected = Some((b".\r\n\r\r\n.x\r\nplain line\r\n".to_vec(), wire.len()));
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                assert_eq!(decode_split(wire, &[i, j]), expected, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn only_crlf_starts_a_line() {
        // A bare LF is data: the dot after it stays, and "." CRLF after it does not end.
        let wire = b"hello\n.\r\n+OK forged\r\na\n.b\r\n\r.\r\n.\r\n";
        let expected = Some((wire[..wire.len() - 3].to_vec(), wire.len()));
        for i in 0..=wire.len() {
            assert_eq!(decode_split(wire, &[i]), expected, "split at {i}");
        }
        // A CRLF split between two inputs still starts a line.
        assert_eq!(
            decode_split(b"x\r\n..y\r\n.\r\n", &[2, 7]),
            Some((b"x\r\n.y\r\n".to_vec(), 11))
        );
    }

    #[test]
    fn empty_body() {
        assert_eq!(decode_split(b".\r\n", &[]), Some((Vec::new(), 3)));
        assert_eq!(decode_split(b".\r\n", &[1, 2]), Some((Vec::new(), 3)));
    }

    #[test]
    fn lf_terminator_only_with_lf_lines() {
        let mut strict = BodyDecoder::new(false, false, None);
        assert_eq!(
            strict.decode(b".\nmore"),
            Ok(Decoded::Data { start: 1, end: 6 })
        );
        let mut lf = BodyDecoder::new(true, false, None);
        assert_eq!(lf.decode(b".\nmore"), Ok(Decoded::End { consumed: 2 }));
        let mut lf = BodyDecoder::new(true, false, None);
        assert_eq!(lf.decode(b".\r\nmore"), Ok(Decoded::End { consumed: 3 }));
        // With LF lines a line starts after any LF.
        let mut lf = BodyDecoder::new(true, false, None);
        assert_eq!(
            lf.decode(b"a\n..b\n"),
            Ok(Decoded::Data { start: 0, end: 2 })
        );
        assert_eq!(lf.decode(b"..b\n"), Ok(Decoded::Data { start: 1, end: 4 }));
        assert_eq!(lf.decode(b".\n"), Ok(Decoded::End { consumed: 2 }));
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

    #[test]
    fn fast_data_takes_the_common_cases() {
        // Mid-line data, a whole line, and a stuffed line: the fast path serves them.
        let mut dec = BodyDecoder::new(false, false, None);
        assert_eq!(dec.fast_data(b"abc"), Some((0, 3)));
        assert_eq!(dec.fast_data(b"d\r\n..e\r\n"), Some((0, 3)));
        assert_eq!(dec.fast_data(b"..e\r\nf\r\n.\r\n"), Some((1, 8)));
        // The end, a lone dot, a CR at the end of the input: not for the fast path.
        assert_eq!(dec.fast_data(b".\r\n"), None);
        assert_eq!(dec.fast_data(b"."), None);
        let mut dec = BodyDecoder::new(false, false, None);
        assert_eq!(dec.fast_data(b"x\r"), Some((0, 2)));
        assert_eq!(dec.fast_data(b"\n.\r\n"), None);
        assert_eq!(dec.octets(), 2);
        // With LF lines, "\n." is the line start.
        let mut dec = BodyDecoder::new(true, false, None);
        assert_eq!(dec.fast_data(b"a\n..b\n.\n"), Some((0, 2)));
        assert_eq!(dec.fast_data(b"..b\n.\n"), Some((1, 4)));
        assert_eq!(dec.octets(), 5);
        // A line limit turns it off.
        let mut dec = BodyDecoder::new(false, false, Some(100));
        assert_eq!(dec.fast_data(b"abc"), None);
    }

    fn byte() -> impl proptest::strategy::Strategy<Value = u8> {
        proptest::prop_oneof![
            proptest::strategy::Just(b'.'),
            proptest::strategy::Just(b'\r'),
            proptest::strategy::Just(b'\n'),
            proptest::strategy::Just(b'a'),
            proptest::num::u8::ANY
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 1024, ..proptest::prelude::ProptestConfig::default()
        })]

        /// The fast path gives what the slow path gives, chunk for chunk concatenated and
        /// consumption alike, on any input (a hostile server's included), in every mode,
        /// however split. (The decoder against an independent reference, and the round trip
        /// of any body, are in `tests/framing.rs`.)
        #[test]
        fn fast_path_matches_slow_path(wire in proptest::collection::vec(byte(), 0..300),
                splits in proptest::collection::vec(0usize..300, 0..8),
                lf_lines: bool, dot_cr: bool) {
            let dec = BodyDecoder::new(lf_lines, dot_cr, None);
            let slow = feed(dec.clone(), &wire, &splits, Path::Slow).map(|r| (r.0.concat(), r.1, r.2));
            let fast = feed(dec, &wire, &splits, Path::Fast).map(|r| (r.0.concat(), r.1, r.2));
            proptest::prop_assert_eq!(&fast, &slow);
            // And the line-limited slow path, with a limit no line reaches.
            let limited = BodyDecoder::new(lf_lines, dot_cr, Some(usize::MAX));
            let limited = feed(limited, &wire, &splits, Path::Fast).map(|r| (r.0.concat(), r.1, r.2));
            proptest::prop_assert_eq!(&limited, &slow);
        }
    }
}
