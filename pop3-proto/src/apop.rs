//! APOP authentication (RFC 1939 §7): the greeting's timestamp and the digest sent back.

use md5::{Digest, Md5};

/// The longest timestamp accepted, angle brackets included.
const MAX_TIMESTAMP_LEN: usize = 512;

/// Whether `b` may appear in the local part or the domain of a timestamp: printable ASCII
/// except `<`, `>` and `@`.
fn is_timestamp_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'<' | b'>' | b'@')
}

/// `timestamp = "<" 1*tchar "@" 1*tchar ">"` where `tchar` is printable ASCII (0x21-0x7E)
/// except `<`, `>` and `@` (a restricted `msg-id`, RFC 1939 §7)
///
/// Finds the APOP timestamp in the text of the server greeting: the bytes from the first `<`
/// to the next `>`, which must have this form and be at most 512 octets long. Returns it
/// angle brackets included, or `None` (the server then does not offer APOP). Runs in linear
/// time.
pub fn greeting_timestamp(greeting_text: &[u8]) -> Option<&[u8]> {
    let start = memchr::memchr(b'<', greeting_text)?;
    let from = greeting_text.get(start..)?;
    let window = from.get(..MAX_TIMESTAMP_LEN).unwrap_or(from);
    let end = memchr::memchr(b'>', window)?;
    let timestamp = window.get(..=end)?;
    let inner = timestamp.get(1..end)?;
    let at = memchr::memchr(b'@', inner)?;
    let (local, domain) = (inner.get(..at)?, inner.get(at + 1..)?);
    let valid = |part: &[u8]| !part.is_empty() && part.iter().copied().all(is_timestamp_char);
    (valid(local) && valid(domain)).then_some(timestamp)
}

/// `relaxed-timestamp = "<" 1*vchar ">"` where `vchar` is printable ASCII (0x21-0x7E) except
/// `<` and `>`
///
/// The relaxed form of [`greeting_timestamp`], for
/// [`Config::relaxed_apop_timestamp`](crate::Config::relaxed_apop_timestamp): the bytes from the
/// first `<` to the next `>`, at most 512 octets, need not carry an `@` (CPython's poplib test
/// server greets with `<timestamp>`). The collision attacks on APOP (Leurent 2007, Sasaki et
/// al. 2008) need a server-chosen challenge with non-printable bytes, so printable ASCII still
/// shuts them out. A strict timestamp is also a relaxed one. Runs in linear time.
pub fn relaxed_greeting_timestamp(greeting_text: &[u8]) -> Option<&[u8]> {
    let start = memchr::memchr(b'<', greeting_text)?;
    let from = greeting_text.get(start..)?;
    let window = from.get(..MAX_TIMESTAMP_LEN).unwrap_or(from);
    let end = memchr::memchr(b'>', window)?;
    let timestamp = window.get(..=end)?;
    let inner = timestamp.get(1..end)?;
    let valid = !inner.is_empty()
        && inner
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'<');
    valid.then_some(timestamp)
}

/// The APOP digest: the lowercase hexadecimal MD5 of `timestamp` (angle brackets included)
/// followed by `secret`, as 32 ASCII bytes, ready for `APOP name digest`.
pub fn apop_digest(timestamp: &[u8], secret: &[u8]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut md5 = Md5::new();
    md5.update(timestamp);
    md5.update(secret);
    let hash: [u8; 16] = md5.finalize().into();
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(hash) {
        pair.copy_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1939_example() {
        let greeting = b"POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
        let ts = greeting_timestamp(greeting).expect("timestamp");
        assert_eq!(ts, b"<1896.697170952@dbc.mtview.ca.us>");
        assert_eq!(
            &apop_digest(ts, b"tanstaaf"),
            b"c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn finds_timestamps() {
        assert_eq!(greeting_timestamp(b"<a@b>"), Some(&b"<a@b>"[..]));
        assert_eq!(
            greeting_timestamp(b"Dovecot ready. <1f2.3a.5e8d@mail.example> trailing"),
            Some(&b"<1f2.3a.5e8d@mail.example>"[..])
        );
        assert_eq!(greeting_timestamp(b"x <a@b> <c@d>"), Some(&b"<a@b>"[..]));
        let mut long = b"<".to_vec();
        long.extend(std::iter::repeat_n(b'a', 255));
        long.push(b'@');
        long.extend(std::iter::repeat_n(b'b', 254));
        long.push(b'>');
        assert_eq!(long.len(), 512);
        assert_eq!(greeting_timestamp(&long), Some(&long[..]));
        long.insert(1, b'a');
        assert_eq!(greeting_timestamp(&long), None);
    }

    #[test]
    fn refuses_malformed_timestamps() {
        for bad in [
            &b"ready"[..],
            b"ready <>",
            b"ready <abc>",
            b"ready <a@b@c>",
            b"ready <a b@c>",
            b"ready <a@b c>",
            b"ready <@b>",
            b"ready <a@>",
            b"ready <a@b",
            b"ready <a<b@c>",
            b"ready a@b>",
            b"ready <caf\xc3\xa9@b>",
            b"ready <a@b\x7f>",
            b"ready <a@b\x00>",
            b"ready <a\t@b>",
            b"ready <junk> <a@b>",
        ] {
            assert_eq!(
                greeting_timestamp(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn relaxed_timestamps() {
        // CPython's test server, and every strict timestamp.
        for (greeting, ts) in [
            (
                &b"+OK dummy pop3 server ready. <timestamp>"[..],
                &b"<timestamp>"[..],
            ),
            (
                b"ready <1896.697170952@dbc.mtview.ca.us>",
                b"<1896.697170952@dbc.mtview.ca.us>",
            ),
            (b"<a@b@c>", b"<a@b@c>"),
            (b"x <a> <b@c>", b"<a>"),
        ] {
            assert_eq!(relaxed_greeting_timestamp(greeting), Some(ts));
            if !ts.contains(&b'@') {
                assert_eq!(greeting_timestamp(greeting), None);
            }
        }
        // Still refused: nothing in the brackets, non-printable or non-ASCII bytes (what the
        // collision attacks need), spaces, a second `<`, an unclosed bracket, over 512 octets.
        for bad in [
            &b"ready"[..],
            b"ready <>",
            b"ready <a b>",
            b"ready <a\tb>",
            b"ready <a\x00b>",
            b"ready <a\x7f>",
            b"ready <caf\xc3\xa9>",
            b"ready <a<b>",
            b"ready <abc",
            b"ready abc>",
        ] {
            assert_eq!(
                relaxed_greeting_timestamp(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"<".to_vec();
        long.extend(std::iter::repeat_n(b'a', 510));
        long.push(b'>');
        assert_eq!(relaxed_greeting_timestamp(&long), Some(&long[..]));
        long.insert(1, b'a');
        assert_eq!(relaxed_greeting_timestamp(&long), None);
    }

    #[test]
    fn digest_is_lowercase_hex() {
        assert_eq!(&apop_digest(b"", b""), b"d41d8cd98f00b204e9800998ecf8427e");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Some(ts) = greeting_timestamp(&bytes) {
                prop_assert!(ts.len() <= 512);
                prop_assert!(ts.starts_with(b"<") && ts.ends_with(b">"));
                prop_assert_eq!(ts.iter().filter(|&&b| b == b'@').count(), 1);
            }
            if let Some(ts) = relaxed_greeting_timestamp(&bytes) {
                prop_assert!(ts.len() <= 512);
                prop_assert!(ts.starts_with(b"<") && ts.ends_with(b">"));
            }
            // Strict implies relaxed, and the same bytes.
            if let Some(ts) = greeting_timestamp(&bytes) {
                prop_assert_eq!(relaxed_greeting_timestamp(&bytes), Some(ts));
            }
            let d = apop_digest(&bytes, &bytes);
            prop_assert!(d.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }

        #[test]
        fn finds_embedded(prefix in "[ -;=?-~]{0,40}", local in "[!-;=?A-~]{1,30}", domain in "[!-;=?A-~]{1,30}", suffix in "[ -~]{0,40}") {
            let ts = format!("<{local}@{domain}>");
            let greeting = format!("{prefix}{ts}{suffix}");
            prop_assert_eq!(greeting_timestamp(greeting.as_bytes()), Some(ts.as_bytes()));
        }
    }
}
