//! A reference for multi-line replies, written from RFC 1939 section 3 and nothing else (not
//! from `pop3_proto::body`), for the tests and the body fuzz target (which includes this file
//! with `#[path]`). It is deliberately slow and plain: the whole input at once, line by line.
//!
//! RFC 1939 section 3, the text this follows:
//!
//! > [...] after sending the first line of the response and a CRLF, any additional lines are
//! > sent, each terminated by a CRLF pair. When all lines of the response have been sent, a
//! > final line is sent, consisting of a termination octet (decimal code 046, ".") and a CRLF
//! > pair. If any line of the multi-line response begins with the termination octet, the line
//! > is "byte-stuffed" by pre-pending the termination octet to that line of the response.
//! > Hence a multi-line response is terminated with the five octets "CRLF.CRLF". When
//! > examining a multi-line response, the client checks to see if the line begins with the
//! > termination octet. If so and if octets other than CRLF follow, the first octet of the
//! > line (the termination octet) is stripped away. If so and if CRLF immediately follows the
//! > termination character, then the response from the POP server is ended and the line
//! > containing ".CRLF" is not considered part of the multi-line response.
//!
//! So a line is everything up to and including a CRLF pair; a bare CR or a bare LF is an octet
//! of the line like any other. Two tolerated deviations, each a switch:
//!
//! - `lf_lines` (a server that ends its lines with a bare LF, decided once per connection):
//!   a line ends at any LF. The final line is "." LF, or "." CR LF (a CR right before the LF
//!   belongs to the line end, as in the server's status lines).
//! - `dot_cr` (Cyrus 3.4.6): a line that begins with "." CR, the CR not followed by LF (or
//!   followed by nothing yet), is the final line, two octets long.
#![allow(dead_code, unreachable_pub)]

/// The framing rules of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Lines end at any LF (a bare-LF server), not only at CRLF.
    pub lf_lines: bool,
    /// "." CR alone ends the reply (the Cyrus quirk).
    pub dot_cr: bool,
}

/// What the reference made of a reply (the octets after the first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstuffed {
    /// The message: every line before the final one, termination octets stripped.
    pub body: Vec<u8>,
    /// The same, line by line (each with its line end; the last one may lack it when the
    /// input ends without a final line).
    pub lines: Vec<Vec<u8>>,
    /// The final line: where it starts and how many octets it has. `None` if the input holds
    /// no final line.
    pub end: Option<(usize, usize)>,
}

/// Splits `input` into lines, each with its line end; the last one may be partial.
fn lines(input: &[u8], lf_lines: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < input.len() {
        let ends_here = if lf_lines {
            input[i] == b'\n'
        } else {
            input[i] == b'\n' && i > start && input[i - 1] == b'\r'
        };
        if ends_here {
            out.push(&input[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < input.len() {
        out.push(&input[start..]);
    }
    out
}

/// Is `line` (as split by [`lines`]) the final line, and if so how long is it?
fn final_line(line: &[u8], rules: Rules) -> Option<usize> {
    if line == b".\r\n" {
        return Some(3);
    }
    if rules.lf_lines && line == b".\n" {
        return Some(2);
    }
    // "." CR, and the CR is not the start of a CRLF line end.
    if rules.dot_cr && line.starts_with(b".\r") && line.get(2) != Some(&b'\n') {
        return Some(2);
    }
    None
}

/// Reads a multi-line reply the way RFC 1939 section 3 says a client examines it.
///
/// When the input has no final line, the body holds every octet that is already decided: a
/// partial last line that begins with "." is left out while what follows the "." cannot yet
/// tell a stuffed line from the final line ("." alone, or "." CR).
pub fn unstuff(input: &[u8], rules: Rules) -> Unstuffed {
    let mut out = Unstuffed {
        body: Vec::new(),
        lines: Vec::new(),
        end: None,
    };
    let mut at = 0;
    for line in lines(input, rules.lf_lines) {
        if let Some(len) = final_line(line, rules) {
            out.end = Some((at, len));
            return out;
        }
        at += line.len();
        // "." or "." CR (only ever the partial last line): the octets still to come decide
        // between a stuffed line and the final line.
        if line == b"." || line == b".\r" {
            break;
        }
        let kept = if line.first() == Some(&b'.') {
            &line[1..]
        } else {
            line
        };
        out.body.extend_from_slice(kept);
        out.lines.push(kept.to_vec());
    }
    out
}

/// Encodes `body` the way a conformant server sends it (RFC 1939 section 3): CRLF lines, a "."
/// prepended to every line that begins with ".", and the final line "." CRLF. A body that does
/// not end in CRLF gets CRLF added (a line must end in CRLF), which [`sent_body`] reports.
pub fn stuff(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() + 8);
    for line in lines(&sent_body(body, false), false) {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// The same for a server that ends its lines with a bare LF: every line that begins with "."
/// gets another, the final line is "." LF, and a body that does not end in LF gets LF added.
pub fn stuff_lf(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() + 8);
    for line in lines(&sent_body(body, true), true) {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\n");
    wire
}

/// The message a server encoding `body` really sends: `body` with a line end added when it
/// does not end in one (CRLF, or LF for a bare-LF server). Empty stays empty.
pub fn sent_body(body: &[u8], lf_lines: bool) -> Vec<u8> {
    let mut out = body.to_vec();
    if lf_lines {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    } else if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn reference_examples() {
    let crlf = Rules::default();
    // RFC 1939's rule on its own examples.
    let r = unstuff(b"a\r\n..b\r\n.c\r\n.\r\nNEXT", crlf);
    assert_eq!(r.body, b"a\r\n.b\r\nc\r\n");
    assert_eq!(r.end, Some((12, 3)));
    // A bare LF is an octet of the line: the dot after it is data, and "." CRLF after a bare
    // LF is not the final line.
    let r = unstuff(b"hello\n.\r\n+OK forged\r\n.\r\n", crlf);
    assert_eq!(r.body, b"hello\n.\r\n+OK forged\r\n");
    assert_eq!(r.end, Some((21, 3)));
    assert_eq!(unstuff(b"a\n.b\r\n.\r\n", crlf).body, b"a\n.b\r\n");
    // A bare-LF server.
    let lf = Rules {
        lf_lines: true,
        dot_cr: false,
    };
    let r = unstuff(b"a\n..b\n.\n", lf);
    assert_eq!((r.body, r.end), (b"a\n.b\n".to_vec(), Some((6, 2))));
    assert_eq!(unstuff(b"a\n.\r\n", lf).end, Some((2, 3)));
    // Encoding.
    assert_eq!(stuff(b".a\n.b"), b"..a\n.b\r\n.\r\n");
    assert_eq!(stuff(b""), b".\r\n");
    assert_eq!(stuff_lf(b".a\r\n.b"), b"..a\r\n..b\n.\n");
}
