//! The single-line parsers on arbitrary bytes, each compared with a plain reference
//! implementation of its grammar, plus the invariants of what they return.
//!
//! Input: a 4-byte header (flags, max uid length - 70, max message number selector) and then
//! server bytes; every line of them (split at LF, one CR before it dropped) goes through every
//! parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{Header, contains_ignore_case, is_subslice, lines};
use pop3_proto::apop::greeting_timestamp;
use pop3_proto::response::{
    ParseError, parse_continuation, parse_lang_listing, parse_scan_listing, parse_stat,
    parse_status_line, parse_unique_id_listing,
};
use pop3_proto::{Capabilities, ResponseCode};

fuzz_target!(|data: &[u8]| {
    let (mut h, payload) = Header::split(data, 4);
    let flags = h.u8();
    let unknown_codes = flags & 1 != 0;
    let max_uid_len = (usize::from(h.u8()) + 70) % 256;
    let max_msg = match h.u16() {
        0 => u32::MAX,
        n => u32::from(n - 1),
    };
    let mut caps = Capabilities::default();
    for line in lines(payload) {
        status(line, unknown_codes);
        continuation(line);
        stat(line);
        scan(line, max_msg);
        uidl(line, max_msg, max_uid_len);
        lang(line);
        capability(&mut caps, line);
        timestamp(line);
        // The status line's text is what STAT, LIST n and UIDL n replies are parsed from.
        if let Ok(st) = parse_status_line(line, unknown_codes) {
            stat(st.text.as_bytes());
            scan(st.text.as_bytes(), max_msg);
            uidl(st.text.as_bytes(), max_msg, max_uid_len);
        }
    }
});

fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- status lines ----

fn is_level(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'[' | b']' | b'/')
}

/// `"[" resp-level *("/" resp-level) "]"` at the start of `text`: the code and the rest.
fn ref_resp_code(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = text.strip_prefix(b"[")?;
    let end = inner.iter().position(|&b| !(is_level(b) || b == b'/'))?;
    if inner[end] != b']' {
        return None;
    }
    let code = &inner[..end];
    code.split(|&b| b == b'/')
        .all(|level| !level.is_empty())
        .then_some((code, &inner[end + 1..]))
}

fn known_code(code: &[u8]) -> Option<ResponseCode> {
    [
        ("IN-USE", ResponseCode::InUse),
        ("LOGIN-DELAY", ResponseCode::LoginDelay),
        ("SYS/TEMP", ResponseCode::SysTemp),
        ("SYS/PERM", ResponseCode::SysPerm),
        ("AUTH", ResponseCode::Auth),
        ("UTF8", ResponseCode::Utf8),
    ]
    .into_iter()
    .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(code))
    .map(|(_, c)| c)
}

fn status(line: &[u8], unknown: bool) {
    let got = parse_status_line(line, unknown);
    let (ok, rest) = if let Some(r) = line.strip_prefix(b"+OK") {
        (true, r)
    } else if let Some(r) = line.strip_prefix(b"-ERR") {
        (false, r)
    } else {
        assert_eq!(got, Err(ParseError::NotAStatusLine));
        return;
    };
    if !(rest.is_empty() || rest[0] == b' ') {
        assert_eq!(got, Err(ParseError::NotAStatusLine));
        return;
    }
    let st = got.expect("a +OK/-ERR line parses");
    assert_eq!(st.ok, ok);
    let text = trim_spaces(rest);
    let mut expected_code = None;
    let mut expected_text = text;
    if let Some((code, after)) = ref_resp_code(text) {
        let c = known_code(code).or_else(|| unknown.then(|| ResponseCode::Other(lossy(code))));
        if c.is_some() {
            expected_code = c;
            expected_text = trim_spaces(after);
        }
    }
    assert_eq!(st.code, expected_code);
    assert_eq!(st.text, lossy(expected_text));
    if let Some(code) = &st.code {
        // A recognised code re-displays to what the server wrote, in brackets.
        let shown = format!("[{code}]");
        assert!(
            contains_ignore_case(line, shown.as_bytes()),
            "{shown} not in the line"
        );
        assert!(unknown || !matches!(code, ResponseCode::Other(_)));
    }
    assert!(!st.text.starts_with(' ') && !st.text.ends_with(' ') && !st.text.ends_with('\t'));
}

fn continuation(line: &[u8]) {
    match parse_continuation(line) {
        Some(b64) => {
            assert!(line == b"+" || line.starts_with(b"+ "));
            assert!(is_subslice(line, b64) || b64.is_empty());
            assert_eq!(b64, trim_spaces(&line[1..]));
        }
        None => assert!(!(line == b"+" || line.starts_with(b"+ "))),
    }
}

// ---- numbers and listings ----

/// `1*DIGIT` followed by the end or SP: the value (`None` above u64::MAX) and the rest.
fn ref_number(i: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let end = i
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(i.len());
    if end == 0 || !(end == i.len() || i[end] == b' ') {
        return None;
    }
    let mut v: Option<u64> = Some(0);
    for &d in &i[..end] {
        v = v
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(d - b'0')));
    }
    Some((v, &i[end..]))
}

/// One or more SPs followed by something.
fn ref_sep(i: &[u8]) -> Option<&[u8]> {
    let n = i.iter().position(|&b| b != b' ')?;
    (n > 0).then(|| &i[n..])
}

fn ref_msg(i: &[u8], max: u32) -> Option<(u32, &[u8])> {
    let (n, rest) = ref_number(i)?;
    let n = n.filter(|&n| n >= 1 && n <= u64::from(max))?;
    Some((n as u32, rest))
}

fn ref_scan(line: &[u8], max: u32) -> Option<(u32, u64)> {
    let (n, rest) = ref_msg(line, max)?;
    let (size, _) = ref_number(ref_sep(rest)?)?;
    Some((n, size?))
}

fn scan(line: &[u8], max: u32) {
    let got = parse_scan_listing(line, max);
    assert_eq!(got.as_ref().ok().copied(), ref_scan(line, max));
    if let Ok((n, _)) = got {
        assert!(n >= 1 && n <= max);
    }
}

fn stat(line: &[u8]) {
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let i = trim_spaces(text.as_bytes());
    let expected = (|| {
        let (count, rest) = ref_number(i)?;
        let count = u32::try_from(count?).ok()?;
        let (size, _) = ref_number(ref_sep(rest)?)?;
        Some((count, size?))
    })();
    assert_eq!(parse_stat(text).ok(), expected);
}

fn ref_uidl(line: &[u8], max: u32, max_len: usize) -> Option<(u32, &[u8])> {
    let (n, rest) = ref_msg(line, max)?;
    let spaces = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    if spaces == 0 {
        return None;
    }
    let rest = &rest[spaces..];
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let uid = &rest[..end];
    if uid.is_empty() || uid.len() > max_len || !uid.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    rest[end..].iter().all(|&b| b == b' ').then_some((n, uid))
}

fn uidl(line: &[u8], max: u32, max_len: usize) {
    let got = parse_unique_id_listing(line, max, max_len);
    let expected = ref_uidl(line, max, max_len);
    assert_eq!(got.as_ref().ok().map(|(n, u)| (*n, u.as_bytes())), expected);
    if let Ok((n, uid)) = got {
        assert!(n >= 1 && n <= max);
        assert!(
            !uid.is_empty()
                && uid.len() <= max_len
                && uid.bytes().all(|b| (0x21..=0x7e).contains(&b))
        );
        assert!(
            is_subslice(line, uid.as_bytes()),
            "the uid is lent from the line"
        );
    }
}

fn lang(line: &[u8]) {
    let end = line
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        .unwrap_or(line.len());
    let expected = (end > 0 && (end == line.len() || line[end] == b' '))
        .then(|| (lossy(&line[..end]), lossy(trim_spaces(&line[end..]))));
    let got = parse_lang_listing(line);
    assert_eq!(got.as_ref().ok().cloned(), expected);
    if let Err(e) = got {
        assert_eq!(e, ParseError::InvalidLanguageTag);
    }
}

// ---- CAPA ----

fn capability(caps: &mut Capabilities, line: &[u8]) {
    let before = caps.clone();
    let trimmed = &line[line.iter().position(|&b| b != b' ').unwrap_or(line.len())..];
    let end = trimmed
        .iter()
        .position(|&b| !matches!(b, 0x21..=0x2d | 0x2f..=0x7e))
        .unwrap_or(trimmed.len());
    let valid = end > 0 && (end == trimmed.len() || trimmed[end] == b' ');
    match caps.add_line(line) {
        Ok(()) => {
            assert!(valid, "accepted a line without a capability tag");
            // Kept verbatim for display, and nothing else is lost.
            assert_eq!(caps.lines.len(), before.lines.len() + 1);
            assert_eq!(
                caps.lines.last().map(String::as_bytes),
                Some(String::from_utf8_lossy(line).as_bytes())
            );
            assert!(caps.other.len() >= before.other.len());
            assert!(caps.sasl.len() >= before.sasl.len());
        }
        Err(e) => {
            assert!(!valid, "refused a valid capability line: {e}");
            assert!(matches!(e, ParseError::InvalidCapability(_)));
            assert_eq!(*caps, before, "a refused line changed the set");
            // At most 64 characters of the line, each shown escaped (`\u{10ffff}` at worst).
            assert!(
                e.to_string().chars().count() <= 64 * 10 + 64,
                "the error echoes too much"
            );
        }
    }
    assert!(caps.sasl.len() <= 64);
    for (i, m) in caps.sasl.iter().enumerate() {
        assert_eq!(*m, m.to_ascii_uppercase());
        assert!(!caps.sasl[..i].contains(m), "duplicate SASL mechanism");
    }
}

// ---- APOP ----

fn timestamp(text: &[u8]) {
    let expected = (|| {
        let start = text.iter().position(|&b| b == b'<')?;
        let from = &text[start..];
        let end = from.iter().position(|&b| b == b'>')?;
        if end + 1 > 512 {
            return None;
        }
        let ts = &from[..=end];
        let inner = &ts[1..end];
        let at = inner.iter().position(|&b| b == b'@')?;
        let ok = |p: &[u8]| {
            !p.is_empty()
                && p.iter()
                    .all(|&b| (0x21..=0x7e).contains(&b) && !matches!(b, b'<' | b'>' | b'@'))
        };
        (ok(&inner[..at]) && ok(&inner[at + 1..])).then_some(ts)
    })();
    let got = greeting_timestamp(text);
    assert_eq!(got, expected);
    if let Some(ts) = got {
        assert!(is_subslice(text, ts));
        assert!(ts.starts_with(b"<") && ts.ends_with(b">") && ts.len() <= 512);
        assert_eq!(ts.iter().filter(|&&b| b == b'@').count(), 1);
    }
}
