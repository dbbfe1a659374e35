//! The synthetic mailbox: `N` messages of exactly `S` octets, with every RETR reply rendered
//! once, up front, so that serving it is one large write.
//!
//! The messages look like mail: CRLF line ends, headers, 40-76 character lines, empty lines,
//! lines that begin with `.` (dot-stuffed on the wire: the clients must unstuff them), lines
//! that are exactly `.`, and a few long lines (900-2000 octets, under Python poplib's 2048
//! limit). The content is deterministic for a given seed.

/// The smallest message size accepted: the synthetic headers take about 450-520 octets.
pub const MIN_SIZE: usize = 600;

/// One message of the mailbox.
#[derive(Debug)]
pub struct Message {
    /// Its unique-id (UIDL).
    pub uid: String,
    /// Its size in octets (unstuffed, CRLF line ends), as LIST reports it.
    pub size: usize,
    /// The whole RETR reply: `+OK <size> octets` CRLF, the dot-stuffed message, `.` CRLF.
    pub retr: Box<[u8]>,
    /// Where the message starts in `retr` (after the status line).
    pub body_start: usize,
    /// Where the headers end in `retr` (just after the blank line).
    pub header_end: usize,
}

/// The whole mailbox.
#[derive(Debug)]
pub struct Mailbox {
    /// The messages; message number `i` is `messages[i - 1]`.
    pub messages: Vec<Message>,
    /// The sum of the message sizes.
    pub octets: u64,
    /// The sum of the RETR reply sizes (what a full download puts on the wire).
    pub wire_bytes: u64,
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyz      ABCDEFGHIJKLMNOP0123456789,-'!?:";
const LETTERS: &[u8; 52] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Appends `n` characters of text (six random bits per character).
fn fill_text(rng: &mut Rng, out: &mut Vec<u8>, n: usize) {
    let mut bits = 0u64;
    let mut left = 0u32;
    for _ in 0..n {
        if left < 6 {
            bits = rng.next();
            left = 64;
        }
        out.push(ALPHABET[(bits & 63) as usize]);
        bits >>= 6;
        left -= 6;
    }
}

/// Generates message `index` (1-based) of exactly `size` octets and renders its RETR reply.
///
/// # Panics
///
/// If `size` is below [`MIN_SIZE`].
pub fn message(seed: u64, index: usize, size: usize) -> Message {
    assert!(
        size >= MIN_SIZE,
        "messages must have at least {MIN_SIZE} octets"
    );
    let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let uid = format!("pb{seed:x}-{index:08}");
    let a = rng.range(1, 999);
    let (hh, mm, ss) = (rng.range(0, 23), rng.range(0, 59), rng.range(0, 59));
    let mut headers = format!(
        "Return-Path: <sender{a}@example.org>\r\n\
         Received: from mx{a}.example.org by bench.invalid with SMTP id {uid};\r\n\
         \x20       Mon, 1 Jan 2024 {hh:02}:{mm:02}:{ss:02} +0000\r\n\
         From: Sender {a} <sender{a}@example.org>\r\n\
         To: Bench User <bench@example.net>\r\n\
         Subject: synthetic message {index} (seed {seed})\r\n\
         Date: Mon, 1 Jan 2024 {hh:02}:{mm:02}:{ss:02} +0000\r\n\
         Message-ID: <{uid}@bench.invalid>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         X-Bench-Size: {size}\r\n"
    );
    if size - headers.len() - 2 == 1 {
        // A one-octet body cannot be made of CRLF lines: pad a header instead.
        headers.insert(headers.len() - 2, ' ');
    }
    headers.push_str("\r\n");
    let status = format!("+OK {size} octets\r\n");
    let mut out = Vec::with_capacity(status.len() + size + size / 24 + 8);
    out.extend_from_slice(status.as_bytes());
    let body_start = out.len();
    out.extend_from_slice(headers.as_bytes());
    let header_end = out.len();

    let mut left = size - headers.len();
    while left > 0 {
        let r = rng.next() % 1000;
        // (leading dots, line length without CRLF)
        let (dots, mut len) = if r < 8 {
            (1, 1) // "." alone, ".." on the wire
        } else if r < 16 {
            (2, rng.range(2, 76)) // "..text"
        } else if r < 50 {
            (1, rng.range(1, 76)) // ".text"
        } else if r < 54 && left > 4000 {
            (0, rng.range(900, 2000)) // a long line
        } else if r < 70 {
            (0, 0) // an empty line
        } else {
            (0, rng.range(40, 76))
        };
        if len + 2 > left {
            len = left - 2;
        }
        if left - (len + 2) == 1 {
            len += 1;
        }
        let dots = dots.min(len);
        if dots > 0 {
            out.push(b'.'); // the stuffing
            out.extend(std::iter::repeat_n(b'.', dots));
        }
        let rest = len - dots;
        if rest > 0 {
            out.push(LETTERS[(rng.next() % 52) as usize]);
            fill_text(&mut rng, &mut out, rest - 1);
        }
        out.extend_from_slice(b"\r\n");
        left -= len + 2;
    }
    out.extend_from_slice(b".\r\n");
    Message {
        uid,
        size,
        retr: out.into_boxed_slice(),
        body_start,
        header_end,
    }
}

impl Mailbox {
    /// Generates `count` messages of `size` octets, on every core.
    ///
    /// # Panics
    ///
    /// If `size` is below [`MIN_SIZE`].
    pub fn generate(count: usize, size: usize, seed: u64) -> Mailbox {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, count.max(1));
        let per_thread = count.div_ceil(threads).max(1);
        let mut messages = Vec::with_capacity(count);
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let first = t * per_thread + 1;
                        let last = ((t + 1) * per_thread).min(count);
                        (first..=last)
                            .map(|i| message(seed, i, size))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for part in parts {
                match part.join() {
                    Ok(part) => messages.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
        let octets = messages.iter().map(|m| m.size as u64).sum();
        let wire_bytes = messages.iter().map(|m| m.retr.len() as u64).sum();
        Mailbox {
            messages,
            octets,
            wire_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in wire.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn exact_sizes_crlf_and_stuffing() {
        for size in [600, 601, 602, 603, 1000, 4096, 65536, 1 << 20] {
            for index in 1..=10 {
                let m = message(7, index, size);
                assert!(m.retr.ends_with(b"\r\n.\r\n"));
                let raw = unstuff(&m.retr[m.body_start..m.retr.len() - 3]);
                assert_eq!(raw.len(), size, "size {size}, message {index}");
                for (i, &b) in raw.iter().enumerate() {
                    if b == b'\n' {
                        assert_eq!(raw[i - 1], b'\r');
                    }
                    if b == b'\r' {
                        assert_eq!(raw[i + 1], b'\n');
                    }
                }
                let terminators = m.retr.windows(5).filter(|w| w == b"\r\n.\r\n").count();
                assert_eq!(terminators, 1, "only the real terminator");
                assert_eq!(&m.retr[m.header_end - 4..m.header_end], b"\r\n\r\n");
            }
        }
        let m = message(1, 1, 1 << 20);
        assert!(m.retr.windows(4).any(|w| w == b"\n..\r"), "a lone dot line");
        assert!(m.retr.windows(4).any(|w| w == b"\n..."), "a dot-dot line");
    }

    #[test]
    fn deterministic_and_totals() {
        assert_eq!(message(3, 5, 4096).retr, message(3, 5, 4096).retr);
        let mb = Mailbox::generate(7, 1000, 1);
        assert_eq!(mb.messages.len(), 7);
        assert_eq!(mb.octets, 7000);
        assert_eq!(mb.messages[6].uid, "pb1-00000007");
        assert!(mb.wire_bytes > mb.octets);
    }
}
