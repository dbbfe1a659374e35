//! Deterministic sample messages and the POP3 multi-line encoding.

/// A xorshift64* generator: deterministic, dependency-free, good enough for
/// sample text.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so that nearby seeds diverge and 0 works
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "pop3",
    "retr",
    "uidl",
    "top",
    "stat",
    "list",
    "dele",
    "noop",
    "quit",
    "capa",
    "stls",
    "sasl",
    "apop",
];

const UTF8_WORDS: &[&str] = &[
    "Grüße",
    "Köln",
    "naïve",
    "café",
    "señor",
    "smörgåsbord",
    "καλημέρα",
    "привет",
    "日本語",
    "中文",
    "한국어",
    "€",
    "📬",
];

const DAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Generates `count` deterministic RFC 5322 sample messages of about
/// `approx_size` bytes each (never less than the headers and the fixed
/// lines need, about 600 bytes).
///
/// Each message has `From`, `To`, `Subject`, `Message-ID` and `Date` headers,
/// CRLF line ends, body lines of at most 76 columns with UTF-8 (8-bit) text,
/// and the lines that exercise dot-stuffing: one starting with `.`, one with
/// `..`, and a line that is only `.`. The same `(count, approx_size, seed)`
/// always gives the same bytes; message `i` depends only on `seed` and `i`.
pub fn generate_mail(count: usize, approx_size: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| generate_message(i + 1, approx_size, seed))
        .collect()
}

fn generate_message(number: usize, approx_size: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed ^ (number as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let day = number % 28 + 1;
    let date = format!(
        "{}, {day:02} {} 2024 {:02}:{:02}:{:02} +0000",
        DAYS[number % 7],
        MONTHS[number % 12],
        number % 24,
        (number * 7) % 60,
        (number * 13) % 60
    );
    let sender = rng.below(9);
    let mut text = String::with_capacity(approx_size + 128);
    text.push_str(&format!(
        "From: Sender {sender} <sender{sender}@example.test>\r\n\
         To: Test User <user@example.test>\r\n\
         Subject: Test message {number} (seed {seed})\r\n\
         Message-ID: <gen-{seed}-{number}@example.test>\r\n\
         Date: {date}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n"
    ));
    text.push_str(&format!(
        "This is generated test message number {number}.\r\n"
    ));
    text.push_str(".hidden line starting with a single dot\r\n");
    text.push_str("..line starting with two dots\r\n");
    text.push_str(".\r\n");
    text.push_str("Grüße aus Köln: naïve café, καλημέρα, привет, 日本語.\r\n");

    let trailer = format!("-- \r\nEnd of generated message {number}.\r\n");
    let mut line_no = 0usize;
    while text.len() + trailer.len() < approx_size {
        line_no += 1;
        let mut line = String::new();
        if line_no % 9 == 0 {
            line.push('.');
        }
        loop {
            let word = if rng.below(8) == 0 {
                UTF8_WORDS[rng.below(UTF8_WORDS.len())]
            } else {
                WORDS[rng.below(WORDS.len())]
            };
            let sep = usize::from(!line.is_empty() && !line.ends_with('.'));
            if line.chars().count() + sep + word.chars().count() > 76 {
                break;
            }
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            if rng.below(6) == 0 {
                break;
            }
        }
        // keep close to the requested size: cut the last line short
        let room = approx_size.saturating_sub(text.len() + trailer.len() + 2);
        if line.len() > room {
            let mut cut = room.max(1);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            if line.is_empty() {
                line.push('x');
            }
        }
        text.push_str(&line);
        text.push_str("\r\n");
    }
    text.push_str(&trailer);
    text.into_bytes()
}

/// Normalises line ends to CRLF (a lone `\n` or `\r` becomes `\r\n`) and
/// makes sure the message ends with a line end: the form in which a POP3
/// server sends a message and counts its size.
pub fn to_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The multi-line body of a RETR reply for `message` as RFC 1939 puts it on
/// the wire: CRLF line ends ([`to_crlf`]), every line that starts with `.`
/// gets another `.` in front, and the terminating `.` CRLF line. The `+OK`
/// status line is not included.
pub fn multiline_body(message: &[u8]) -> Vec<u8> {
    let crlf = to_crlf(message);
    let mut out = Vec::with_capacity(crlf.len() + crlf.len() / 64 + 8);
    for line in crlf.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = generate_mail(20, 3000, 7);
        assert_eq!(a, generate_mail(20, 3000, 7));
        assert_ne!(a, generate_mail(20, 3000, 8));
        // message i depends only on (seed, i)
        assert_eq!(generate_mail(3, 3000, 7), a[..3]);
        for m in &a {
            assert!((2900..=3100).contains(&m.len()), "size {}", m.len());
            let text = std::str::from_utf8(m).expect("utf-8");
            assert!(text.contains("\r\n.\r\n"));
            assert!(text.contains("\r\n..line"));
            assert!(text.contains("\r\n.hidden"));
            assert!(!text.contains('\u{0}'));
            // only CRLF line ends, lines within 76 columns
            assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
            assert!(text.lines().all(|l| l.chars().count() <= 76), "long line");
            assert!(m.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn never_cuts_inside_a_character() {
        // Regression: 300 messages of 2000 bytes cut a line inside a multi-byte character.
        for seed in 0..4 {
            for m in generate_mail(300, 2000, seed) {
                assert!(std::str::from_utf8(&m).is_ok());
            }
        }
    }

    #[test]
    fn small_size_still_has_the_fixed_lines() {
        let m = &generate_mail(1, 10, 1)[0];
        assert!(m.windows(5).any(|w| w == b"\r\n.\r\n"));
    }

    #[test]
    fn crlf_and_stuffing() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(to_crlf(b""), b"");
        assert_eq!(
            multiline_body(b".a\n..b\n.\nc\n"),
            b"..a\r\n...b\r\n..\r\nc\r\n.\r\n"
        );
        assert_eq!(multiline_body(b""), b".\r\n");
    }
}
