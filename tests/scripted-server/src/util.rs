//! Byte escaping, for scripts and diagnostics. (MD5 and base64 come from the
//! md-5 and base64 crates.)

/// Renders bytes for diagnostics: printable ASCII as is, the rest escaped
/// (`\r`, `\n`, `\t`, `\\`, `\xNN`).
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Parses the escapes of [`escape_bytes`] (and `\0`) back into bytes.
pub(crate) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let digits = text
                    .get(i + 2..i + 4)
                    .ok_or_else(|| format!("truncated \\x escape at column {}", i + 1))?;
                let value = u8::from_str_radix(digits, 16)
                    .map_err(|_| format!("bad \\x escape {digits:?} at column {}", i + 1))?;
                out.push(value);
                i += 4;
                continue;
            }
            Some(&other) => {
                return Err(format!(
                    "unknown escape \\{} at column {}",
                    char::from(other),
                    i + 1
                ));
            }
            None => return Err("trailing backslash".to_owned()),
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let bytes = b"+OK\r\n\\ \x00\xff\t.";
        assert_eq!(unescape(&escape_bytes(bytes)).as_deref(), Ok(&bytes[..]));
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
    }
}
