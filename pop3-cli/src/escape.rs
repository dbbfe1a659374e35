//! Server text on a terminal: every control character escaped.
//!
//! A server's greeting, `-ERR` text, capability lines and UIDs are shown to the user; written
//! raw, an escape sequence in them could rewrite the terminal (move the cursor, hide text,
//! set the window title, inject input on some terminals). [`escape`] is the one function all
//! text output goes through; `retr`/`top` to stdout are exempt (that output is the message,
//! byte for byte).

use std::borrow::Cow;
use std::io::{self, Write};

/// Whether `c` must not reach a terminal raw: the C0 controls, DEL, the C1 controls (U+0080 to
/// U+009F: a terminal in UTF-8 mode may read U+009B as CSI), and the Unicode format characters
/// that reorder or hide text (bidirectional overrides and isolates, line and paragraph
/// separators).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every character of [`needs_escape`] written as `\xNN` (below U+0080) or
/// `\u{N}` (above). Backslashes are left as they are: this is for showing text safely, not a
/// reversible encoding (`--json` gives the exact strings).
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// A JSON text made terminal-safe: serde_json escapes C0 controls already; DEL, C1 and the
/// format characters of [`escape`] (which can only occur inside strings) become `\uXXXX`,
/// which any JSON reader decodes to the same string.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(needs_escape) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A writer for the `-v` trace: each write (the trace formatter writes one event at a time)
/// is escaped, except a final line end.
#[derive(Debug)]
pub(crate) struct EscapingWriter<W>(pub(crate) W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let text = String::from_utf8_lossy(body);
        let escaped = escape(&text);
        self.0.write_all(escaped.as_bytes())?;
        self.0.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_not_copied() {
        assert!(matches!(escape("+OK ready"), Cow::Borrowed("+OK ready")));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("\r\n\t\0\u{7f}"), "\\x0d\\x0a\\x09\\x00\\x7f");
        assert_eq!(escape("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("caf\u{e9} \\x1b"), "caf\u{e9} \\x1b");
    }

    #[test]
    fn json_stays_json_and_loses_no_character() {
        let value = serde_json::json!({ "line": "a\u{1b}b\u{9b}c\u{7f}\u{202e}" });
        let text = json_text(&value);
        assert!(!text.chars().any(needs_escape), "{text}");
        assert_eq!(text, r#"{"line":"a\u001bb\u009bc\u007f\u202e"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back, value);
    }

    #[test]
    fn the_trace_writer_escapes_all_but_the_line_end() {
        let mut w = EscapingWriter(Vec::new());
        w.write_all(b"S: +OK \x1b]0;title\x07\r\n").expect("vec");
        assert_eq!(w.0, b"S: +OK \\x1b]0;title\\x07\\x0d\n");
    }
}
