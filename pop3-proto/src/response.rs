//! Parsers for single-line server responses and for the lines of multi-line listings.
//!
//! Covers the status line (`+OK` / `-ERR`, RFC 1939 §3) with its optional extended response
//! code (RFC 2449 §8, RFC 3206, RFC 6856), SASL continuations (RFC 5034 §4), the STAT drop
//! listing, LIST scan listings, UIDL unique-id listings (RFC 1939 §5, §7) and LANG listings
//! (RFC 6856 §3).
//!
//! Every function takes one line *without* its trailing CRLF (or LF). None of them panics,
//! whatever bytes it is given, and all of them run in time linear in the length of the line.

use std::fmt;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_while1},
    character::complete::{char, digit1},
    combinator::{recognize, value},
    multi::many0_count,
    sequence::{delimited, pair, preceded},
};

/// The maximum length of a unique-id allowed by RFC 1939 §7 (`1*70` octets).
pub const RFC_MAX_UID_LEN: usize = 70;

/// The longest excerpt of server bytes an error message may echo.
const MAX_ECHO: usize = 64;

/// An extended response code (RFC 2449 §8) found at the start of a status line's text.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    /// `IN-USE` (RFC 2449 §8.1.1): the maildrop is locked by another session.
    InUse,
    /// `LOGIN-DELAY` (RFC 2449 §8.1.2): the user logged in too recently.
    LoginDelay,
    /// `SYS/TEMP` (RFC 3206 §4): a temporary system problem, possibly unrelated to the user.
    SysTemp,
    /// `SYS/PERM` (RFC 3206 §4): a permanent system problem needing administrator attention.
    SysPerm,
    /// `AUTH` (RFC 3206 §5): the failure is due to the credentials (wrong password, etc.).
    Auth,
    /// `UTF8` (RFC 6856 §2): the operation requires UTF-8 mode (or the user name is UTF-8).
    Utf8,
    /// Any other syntactically valid code, exactly as received (without the brackets).
    Other(String),
}

impl ResponseCode {
    /// Whether the code announces a transient condition, after which the same command may
    /// succeed later without any change on the client's side: `IN-USE`, `LOGIN-DELAY` and
    /// `SYS/TEMP`. `SYS/PERM`, `AUTH`, `UTF8` and unknown codes are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::InUse | Self::LoginDelay | Self::SysTemp)
    }

    /// The known code spelt `code` (ASCII case-insensitively), if any.
    fn known(code: &[u8]) -> Option<Self> {
        const KNOWN: [(&[u8], ResponseCode); 6] = [
            (b"IN-USE", ResponseCode::InUse),
            (b"LOGIN-DELAY", ResponseCode::LoginDelay),
            (b"SYS/TEMP", ResponseCode::SysTemp),
            (b"SYS/PERM", ResponseCode::SysPerm),
            (b"AUTH", ResponseCode::Auth),
            (b"UTF8", ResponseCode::Utf8),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(code))
            .map(|(_, c)| c.clone())
    }
}

impl fmt::Display for ResponseCode {
    /// The code in wire form, without the brackets (e.g. `SYS/TEMP`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InUse => "IN-USE",
            Self::LoginDelay => "LOGIN-DELAY",
            Self::SysTemp => "SYS/TEMP",
            Self::SysPerm => "SYS/PERM",
            Self::Auth => "AUTH",
            Self::Utf8 => "UTF8",
            Self::Other(s) => s,
        })
    }
}

/// Why a unique-id was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidError {
    /// The unique-id is empty.
    #[error("empty")]
    Empty,
    /// The unique-id is longer than allowed.
    #[error("{len} octets long, more than {max}")]
    TooLong {
        /// Its length in octets.
        len: usize,
        /// The maximum allowed length.
        max: usize,
    },
    /// The unique-id holds an octet outside 0x21..=0x7E.
    #[error("invalid octet 0x{byte:02x}")]
    InvalidByte {
        /// The first offending octet.
        byte: u8,
    },
}

/// Why a response line could not be parsed.
///
/// Messages never echo more than 64 characters of what the server sent.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line starts with neither `+OK` nor `-ERR` (followed by the end of the line or SP).
    #[error("not a status line (neither +OK nor -ERR)")]
    NotAStatusLine,
    /// A field that must be a decimal number is not one.
    #[error("invalid {what}: not a decimal number")]
    InvalidNumber {
        /// The field.
        what: &'static str,
    },
    /// A decimal number is outside its allowed range (including overflow).
    #[error("{what} out of range {min}..={max}")]
    NumberOutOfRange {
        /// The field.
        what: &'static str,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// The line ended before a required field.
    #[error("missing {what}")]
    MissingField {
        /// The field.
        what: &'static str,
    },
    /// A unique-id (UIDL) is malformed.
    #[error("invalid unique-id: {0}")]
    InvalidUid(#[from] UidError),
    /// Unexpected text follows the last field.
    #[error("trailing garbage after the last field")]
    TrailingGarbage,
    /// A CAPA line is not a capability (empty, or the tag holds invalid octets).
    #[error("invalid capability line {0:?}")]
    InvalidCapability(String),
    /// A LANG listing does not start with a language tag.
    #[error("invalid language tag")]
    InvalidLanguageTag,
}

/// At most [`MAX_ECHO`] characters of `bytes`, lossily decoded, for an error message.
pub(crate) fn echo(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_ECHO * 4).unwrap_or(bytes);
    let lossy = String::from_utf8_lossy(cut);
    let mut out: String = lossy.chars().take(MAX_ECHO).collect();
    if lossy.chars().nth(MAX_ECHO).is_some() || cut.len() < bytes.len() {
        out.push('…');
    }
    out
}

/// A parsed status line: `+OK` or `-ERR`, an optional response code, and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// `true` for `+OK`, `false` for `-ERR`.
    pub ok: bool,
    /// The extended response code, if one was recognised (see [`parse_status_line`]).
    pub code: Option<ResponseCode>,
    /// The human-readable text (lossy UTF-8), without the response code if one was recognised.
    pub text: String,
}

/// `SP` as a tolerant separator: one or more spaces.
fn sp(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b| b == b' ').parse(i)
}

/// Whether `b` is a `resp-level` octet: any CHAR except `[`, `]`, `/`, SP or CTL.
fn is_resp_level_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'[' | b']' | b'/')
}

/// `resp-level = 1*<any CHAR except "[", "]", "/", SP, or CTL>`
fn resp_level(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_resp_level_char).parse(i)
}

/// `resp-code = "[" resp-level *("/" resp-level) "]"`
///
/// Returns the code without the brackets.
fn resp_code(i: &[u8]) -> IResult<&[u8], &[u8]> {
    delimited(
        char('['),
        recognize(pair(
            resp_level,
            many0_count(preceded(char('/'), resp_level)),
        )),
        char(']'),
    )
    .parse(i)
}

/// `status = "+OK" / "-ERR"` (upper case, as RFC 1939 §3 requires of servers)
///
/// Must be followed by the end of the line or SP.
fn status(i: &[u8]) -> IResult<&[u8], bool> {
    let (rest, ok) = alt((value(true, tag("+OK")), value(false, tag("-ERR")))).parse(i)?;
    if rest.is_empty() || rest.first() == Some(&b' ') {
        Ok((rest, ok))
    } else {
        Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        )))
    }
}

/// `SP`s trimmed from both ends.
fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Parses a status line: `+OK`, `+OK text`, `-ERR` or `-ERR text`.
///
/// The indicator is case-sensitive and must be followed by the end of the line or SP; several
/// SPs and trailing spaces are tolerated, and the text is decoded as lossy UTF-8.
///
/// A response code is recognised only when the text starts with a syntactically valid
/// `resp-code` (RFC 2449 §8) **and** either it is a known code (`IN-USE`, `LOGIN-DELAY`,
/// `SYS/TEMP`, `SYS/PERM`, `AUTH`, `UTF8`, case-insensitively) or `accept_unknown_codes` is
/// set — which the caller should do only once CAPA showed `RESP-CODES` or `AUTH-RESP-CODE`,
/// because servers that do not speak RFC 2449 may start their text with something bracketed
/// (Office 365 ends its greeting with a bracketed base64 blob, for example). When a code is
/// recognised, `text` is what follows the `]`, without leading spaces; otherwise `text` is
/// the whole text.
pub fn parse_status_line(
    line: &[u8],
    accept_unknown_codes: bool,
) -> Result<StatusLine, ParseError> {
    let status = status_line(line, accept_unknown_codes)?;
    Ok(StatusLine {
        ok: status.ok,
        code: status.code,
        text: String::from_utf8_lossy(status.text).into_owned(),
    })
}

/// A status line parsed as [`parse_status_line`] does, its text still bytes of the line: the
/// client decodes it into a buffer it reuses, so that a reply costs no allocation.
#[derive(Debug)]
pub(crate) struct StatusView<'a> {
    pub(crate) ok: bool,
    pub(crate) code: Option<ResponseCode>,
    pub(crate) text: &'a [u8],
}

/// [`parse_status_line`] without decoding the text.
pub(crate) fn status_line(
    line: &[u8],
    accept_unknown_codes: bool,
) -> Result<StatusView<'_>, ParseError> {
    let (rest, ok) = status(line).map_err(|_| ParseError::NotAStatusLine)?;
    let text = trim_spaces(rest);
    let mut code = None;
    let mut text_bytes = text;
    if let Ok((after, raw)) = resp_code(text) {
        let parsed = match ResponseCode::known(raw) {
            Some(c) => Some(c),
            None if accept_unknown_codes => Some(ResponseCode::Other(
                String::from_utf8_lossy(raw).into_owned(),
            )),
            None => None,
        };
        if parsed.is_some() {
            code = parsed;
            text_bytes = trim_spaces(after);
        }
    }
    Ok(StatusView {
        ok,
        code,
        text: text_bytes,
    })
}

/// Replaces `out` with `bytes` decoded as [`String::from_utf8_lossy`] does (one U+FFFD per
/// invalid sequence), reusing `out`'s allocation.
pub(crate) fn decode_lossy_into(out: &mut String, bytes: &[u8]) {
    out.clear();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// The raw text of a status line: what follows the indicator (`+OK`, `-ERR`) and the spaces
/// after it, as bytes of the line itself (no response code taken off, no UTF-8 decoding), so
/// that a caller can lend parts of it out of its buffer. Empty without text.
pub fn status_text(line: &[u8]) -> &[u8] {
    let text_at = memchr::memchr(b' ', line).unwrap_or(line.len());
    line.get(text_at..).unwrap_or_default().trim_ascii_start()
}

/// A parsed greeting (RFC 1939 §4): its status line, and what the client learns from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GreetingLine<'a> {
    /// The status line (response codes: only the known ones, since CAPA has not been seen).
    pub status: StatusLine,
    /// The APOP timestamp, angle brackets included, if the text carries a well-formed one
    /// (see [`greeting_timestamp`](crate::apop::greeting_timestamp)).
    pub timestamp: Option<&'a [u8]>,
    /// The text has brackets that are not a response code (Office 365 ends its greeting with
    /// a bracketed blob): the quirk [`BracketedGreetingText`](crate::Quirk::BracketedGreetingText).
    pub bracketed_text: bool,
}

/// Parses the server greeting: a status line whose text may carry an APOP timestamp.
pub fn parse_greeting(line: &[u8]) -> Result<GreetingLine<'_>, ParseError> {
    let status = parse_status_line(line, false)?;
    let timestamp = crate::apop::greeting_timestamp(status_text(line));
    let bracketed_text = status.code.is_none() && status.text.contains('[');
    Ok(GreetingLine {
        status,
        timestamp,
        bracketed_text,
    })
}

/// The `+OK` answer to `UIDL n`, the whole status line: [`parse_unique_id_one`] on its raw
/// [`status_text`], so that the unique-id borrows from `line`.
pub fn parse_unique_id_reply(
    line: &[u8],
    expected: u32,
    max_message_number: u32,
    max_uid_len: usize,
) -> Result<(u32, &str, bool), ParseError> {
    parse_unique_id_one(status_text(line), expected, max_message_number, max_uid_len)
}

/// `continue-req = "+" [SP [base64]]` (RFC 5034 §4, tolerating extra and trailing spaces)
///
/// Returns the base64 part (possibly empty, trailing spaces trimmed) if `line` is a SASL
/// continuation, `None` otherwise (in particular for `+OK ...`). The base64 is not checked.
pub fn parse_continuation(line: &[u8]) -> Option<&[u8]> {
    match line {
        [b'+'] => Some(&[]),
        [b'+', b' ', ..] => line.get(1..).map(trim_spaces),
        _ => None,
    }
}

/// Parses a decimal field `1*DIGIT` into a value in `min..=max`, requiring it to be followed
/// by the end of the input or SP.
fn number<'a>(
    i: &'a [u8],
    what: &'static str,
    min: u64,
    max: u64,
) -> Result<(&'a [u8], u64), ParseError> {
    if i.is_empty() {
        return Err(ParseError::MissingField { what });
    }
    let (rest, digits) =
        digit1::<_, nom::error::Error<&[u8]>>(i).map_err(|_| ParseError::InvalidNumber { what })?;
    if !(rest.is_empty() || rest.first() == Some(&b' ')) {
        return Err(ParseError::InvalidNumber { what });
    }
    let out_of_range = ParseError::NumberOutOfRange { what, min, max };
    let mut value: u64 = 0;
    for d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| out_of_range.clone())?;
    }
    if value < min || value > max {
        return Err(out_of_range);
    }
    Ok((rest, value))
}

/// The separator before a required field: one or more SPs, or [`ParseError::MissingField`].
fn field_sep<'a>(i: &'a [u8], what: &'static str) -> Result<&'a [u8], ParseError> {
    match sp(i) {
        Ok((rest, _)) if !rest.is_empty() => Ok(rest),
        _ => Err(ParseError::MissingField { what }),
    }
}

/// `msg = 1*DIGIT` (a message number, 1..=`max_message_number`)
fn msg(i: &[u8], max_message_number: u32) -> Result<(&[u8], u32), ParseError> {
    let (rest, n) = number(i, "message number", 1, u64::from(max_message_number))?;
    // `n <= max_message_number`, so this never fails.
    let n = u32::try_from(n).map_err(|_| ParseError::NumberOutOfRange {
        what: "message number",
        min: 1,
        max: u64::from(max_message_number),
    })?;
    Ok((rest, n))
}

/// `drop-listing = count SP size [SP *CHAR]` (RFC 1939 §5, STAT; trailing text tolerated)
///
/// Parses the text of a `+OK` answer to STAT into the message count and the maildrop size
/// in octets.
pub fn parse_stat(text: &str) -> Result<(u32, u64), ParseError> {
    let i = trim_spaces(text.as_bytes());
    let (rest, count) = number(i, "message count", 0, u64::from(u32::MAX))?;
    let rest = field_sep(rest, "maildrop size")?;
    let (_, size) = number(rest, "maildrop size", 0, u64::MAX)?;
    let count = u32::try_from(count).map_err(|_| ParseError::NumberOutOfRange {
        what: "message count",
        min: 0,
        max: u64::from(u32::MAX),
    })?;
    Ok((count, size))
}

/// `scan-listing = msg SP size [SP *CHAR]` (RFC 1939 §5, LIST)
///
/// Parses one line of a multi-line LIST answer, or the text of a `+OK` answer to `LIST n`.
/// The message number must lie in `1..=max_message_number`; several SPs between the fields
/// and anything after the size and a SP are tolerated.
pub fn parse_scan_listing(line: &[u8], max_message_number: u32) -> Result<(u32, u64), ParseError> {
    let (rest, n) = msg(line, max_message_number)?;
    let rest = field_sep(rest, "message size")?;
    let (_, size) = number(rest, "message size", 0, u64::MAX)?;
    Ok((n, size))
}

/// `unique-id = 1*70<0x21 to 0x7E>` (RFC 1939 §7; the length limit is `max_uid_len`)
fn unique_id(i: &[u8], max_uid_len: usize) -> Result<(&[u8], &str), ParseError> {
    let end = memchr::memchr(b' ', i).unwrap_or(i.len());
    let (uid, rest) = i.split_at(end);
    if uid.is_empty() {
        return Err(UidError::Empty.into());
    }
    if let Some(&byte) = uid.iter().find(|b| !(0x21..=0x7e).contains(*b)) {
        return Err(UidError::InvalidByte { byte }.into());
    }
    if uid.len() > max_uid_len {
        return Err(UidError::TooLong {
            len: uid.len(),
            max: max_uid_len,
        }
        .into());
    }
    let uid = std::str::from_utf8(uid).map_err(|_| UidError::InvalidByte { byte: 0x80 })?;
    Ok((rest, uid))
}

/// `unique-id-listing = msg SP unique-id` (RFC 1939 §7, UIDL)
///
/// Parses one line of a multi-line UIDL answer, or the text of a `+OK` answer to `UIDL n`.
/// The message number must lie in `1..=max_message_number` and the unique-id must have
/// 1..=`max_uid_len` octets in 0x21..=0x7E ([`RFC_MAX_UID_LEN`] is the RFC's limit); several
/// SPs between the fields and trailing spaces are tolerated, anything else after the
/// unique-id is [`ParseError::TrailingGarbage`].
pub fn parse_unique_id_listing(
    line: &[u8],
    max_message_number: u32,
    max_uid_len: usize,
) -> Result<(u32, &str), ParseError> {
    let (rest, n) = msg(line, max_message_number)?;
    let rest = match sp(rest) {
        Ok((rest, _)) => rest,
        Err(_) => return Err(ParseError::MissingField { what: "unique-id" }),
    };
    let (rest, uid) = unique_id(rest, max_uid_len)?;
    if rest.iter().any(|&b| b != b' ') {
        return Err(ParseError::TrailingGarbage);
    }
    Ok((n, uid))
}

/// The text of a `+OK` answer to `UIDL n`: `msg SP unique-id` (RFC 1939 §7), or, from a server
/// that leaves the message number out (seen from a Python-based server), the unique-id alone.
///
/// Returns the message number, the unique-id, and whether the number was missing. A lone token
/// is taken as the unique-id only when that is unambiguous: a lone decimal number equal to
/// `expected` may as well be the message number with the unique-id missing, so it stays an
/// error (the error [`parse_unique_id_listing`] gives). Any other lone token that is a valid
/// unique-id is the unique-id of message `expected`.
pub fn parse_unique_id_one(
    text: &[u8],
    expected: u32,
    max_message_number: u32,
    max_uid_len: usize,
) -> Result<(u32, &str, bool), ParseError> {
    let error = match parse_unique_id_listing(text, max_message_number, max_uid_len) {
        Ok((n, uid)) => return Ok((n, uid, false)),
        Err(e) => e,
    };
    let token = trim_spaces(text);
    if token.is_empty() || token.contains(&b' ') {
        return Err(error);
    }
    let as_number = std::str::from_utf8(token)
        .ok()
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok());
    if as_number == Some(u64::from(expected)) {
        return Err(error);
    }
    match unique_id(token, max_uid_len) {
        Ok((_, uid)) => Ok((expected, uid, true)),
        Err(_) => Err(error),
    }
}

/// `language-tag = 1*(ALPHA / DIGIT / "-")` (a loose form of the RFC 5646 `Language-Tag`)
fn language_tag(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-').parse(i)
}

/// `lang-listing = language-tag [SP description]` (RFC 6856 §3, LANG)
///
/// Returns the language tag and the description (lossy UTF-8, possibly empty, surrounding
/// spaces trimmed).
pub fn parse_lang_listing(line: &[u8]) -> Result<(String, String), ParseError> {
    let (rest, tag) = language_tag(line).map_err(|_| ParseError::InvalidLanguageTag)?;
    let description = match rest {
        [] => rest,
        [b' ', ..] => trim_spaces(rest),
        _ => return Err(ParseError::InvalidLanguageTag),
    };
    Ok((
        String::from_utf8_lossy(tag).into_owned(),
        String::from_utf8_lossy(description).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn st(line: &str, unknown: bool) -> StatusLine {
        parse_status_line(line.as_bytes(), unknown).expect("status line")
    }

    #[test]
    fn status_text_is_the_raw_text_after_the_indicator() {
        assert_eq!(status_text(b"+OK 1 abc"), b"1 abc");
        assert_eq!(status_text(b"+OK"), b"");
        assert_eq!(status_text(b"-ERR   x y "), b"x y ");
        // No response code taken off, no decoding.
        assert_eq!(status_text(b"+OK [IN-USE] \xff"), b"[IN-USE] \xff");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn greeting_timestamp_code_and_brackets() {
        let line = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
        let g = parse_greeting(line).unwrap();
        assert!(g.status.ok);
        assert_eq!(g.timestamp, Some(&b"<1896.697170952@dbc.mtview.ca.us>"[..]));
        assert!(!g.bracketed_text);
        // The timestamp borrows from the line.
        let ts = g.timestamp.unwrap();
        assert!(line.as_ptr_range().contains(&ts.as_ptr()));

        // Office 365: a bracketed blob that is not a response code.
        let g = parse_greeting(b"+OK The Microsoft Exchange POP3 service is ready. [QQBNAFMA]")
            .unwrap();
        assert_eq!(g.timestamp, None);
        assert!(g.bracketed_text);
        assert_eq!(g.status.code, None);

        // A known response code is a code, not bracketed text; unknown codes are not taken
        // before CAPA.
        let g = parse_greeting(b"-ERR [SYS/TEMP] try later").unwrap();
        assert!(!g.status.ok);
        assert_eq!(g.status.code, Some(ResponseCode::SysTemp));
        assert!(!g.bracketed_text);
        assert!(parse_greeting(b"+OK [X-NEW] hi").unwrap().bracketed_text);

        // A malformed timestamp offers no APOP.
        assert_eq!(
            parse_greeting(b"+OK hi <no-at-sign>").unwrap().timestamp,
            None
        );
        assert_eq!(
            parse_greeting(b"OK hi"),
            Err(ParseError::NotAStatusLine),
            "not a status line"
        );
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn unique_id_reply_from_the_whole_line() {
        let line = b"+OK 2 QhdPYR:00WBw1Ph7x7";
        let (msg, uid, missing) = parse_unique_id_reply(line, 2, 1000, 70).unwrap();
        assert_eq!((msg, uid, missing), (2, "QhdPYR:00WBw1Ph7x7", false));
        assert!(line.as_ptr_range().contains(&uid.as_ptr()), "borrowed");
        // Several spaces after the indicator.
        assert_eq!(
            parse_unique_id_reply(b"+OK   7 abc", 7, 1000, 70).unwrap(),
            (7, "abc", false)
        );
        // The number left out (a Python-based server): unambiguous, so accepted.
        assert_eq!(
            parse_unique_id_reply(b"+OK abc", 3, 1000, 70).unwrap(),
            (3, "abc", true)
        );
        // The number alone: the uid is missing.
        assert!(parse_unique_id_reply(b"+OK 3", 3, 1000, 70).is_err());
        assert!(parse_unique_id_reply(b"+OK", 3, 1000, 70).is_err());
    }

    #[test]
    fn status_basic() {
        assert_eq!(
            st("+OK", false),
            StatusLine {
                ok: true,
                code: None,
                text: String::new()
            }
        );
        assert!(!st("-ERR", false).ok);
        assert_eq!(st("+OK POP3 server ready", false).text, "POP3 server ready");
        assert_eq!(st("-ERR no such message", false).text, "no such message");
        assert_eq!(st("+OK   spaced  out   ", false).text, "spaced  out");
        assert_eq!(st("+OK ", false).text, "");
        assert_eq!(st("-ERR  ", false).text, "");
    }

    #[test]
    fn status_rejects() {
        for bad in [
            "", "+", "+O", "+ok", "-err", "+OKAY", "-ERROR", "OK", "* OK", " +OK", "+OK\tx",
            "-ERRx", "+ abc",
        ] {
            assert_eq!(
                parse_status_line(bad.as_bytes(), true),
                Err(ParseError::NotAStatusLine),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_lossy_utf8() {
        let s = parse_status_line(b"+OK caf\xe9 \xc3\xa9", false).expect("ok");
        assert_eq!(s.text, "caf\u{fffd} é");
    }

    #[test]
    fn status_known_codes() {
        let cases = [
            ("-ERR [IN-USE] locked", ResponseCode::InUse),
            ("-ERR [LOGIN-DELAY] wait", ResponseCode::LoginDelay),
            ("-ERR [SYS/TEMP] later", ResponseCode::SysTemp),
            ("-ERR [SYS/PERM] never", ResponseCode::SysPerm),
            ("-ERR [AUTH] bad password", ResponseCode::Auth),
            ("-ERR [UTF8] need utf8", ResponseCode::Utf8),
            ("-ERR [sys/temp] later", ResponseCode::SysTemp),
            ("-ERR [In-Use] locked", ResponseCode::InUse),
        ];
        for (line, code) in cases {
            let s = st(line, false);
            assert!(!s.ok);
            assert_eq!(s.code, Some(code), "{line}");
            assert!(!s.text.starts_with('['), "{line}");
        }
        let s = st("-ERR [AUTH]", false);
        assert_eq!((s.code, s.text.as_str()), (Some(ResponseCode::Auth), ""));
        let s = st("-ERR [AUTH]Bad", false);
        assert_eq!((s.code, s.text.as_str()), (Some(ResponseCode::Auth), "Bad"));
        let s = st("-ERR   [AUTH]    Bad  ", false);
        assert_eq!((s.code, s.text.as_str()), (Some(ResponseCode::Auth), "Bad"));
    }

    #[test]
    fn status_unknown_codes() {
        let s = st("-ERR [X-FOO/BAR] hmm", false);
        assert_eq!((s.code, s.text.as_str()), (None, "[X-FOO/BAR] hmm"));
        let s = st("-ERR [X-FOO/BAR] hmm", true);
        assert_eq!(
            (s.code, s.text.as_str()),
            (Some(ResponseCode::Other("X-FOO/BAR".into())), "hmm")
        );
        // Not a resp-code syntactically: stays text even when unknown codes are accepted.
        for line in [
            "-ERR [] x",
            "-ERR [A//B] x",
            "-ERR [/A] x",
            "-ERR [A/] x",
            "-ERR [A B] x",
            "-ERR [A[B] x",
            "-ERR [A x",
            "-ERR x [AUTH]",
        ] {
            let s = st(line, true);
            assert_eq!(s.code, None, "{line}");
            assert_eq!(s.text, line.get(5..).unwrap_or_default(), "{line}");
        }
    }

    #[test]
    fn office365_greeting_stays_text() {
        let line = "+OK The Microsoft Exchange POP3 service is ready. \
                    [QQBNADAAUABSADAAMQBDAEEAMAAwADAAOQAuAG4AYQBtAHAAcgBkADAAMQAuAHAAcgBvAGQA]";
        let s = st(line, false);
        assert_eq!(s.code, None);
        assert!(s.text.starts_with("The Microsoft"));
        let s = st("+OK [QQBNADAAUABSADAAMQBD==] ready", false);
        assert_eq!(
            (s.code, s.text.as_str()),
            (None, "[QQBNADAAUABSADAAMQBD==] ready")
        );
    }

    #[test]
    fn code_display_and_transience() {
        for (code, wire) in [
            (ResponseCode::InUse, "IN-USE"),
            (ResponseCode::LoginDelay, "LOGIN-DELAY"),
            (ResponseCode::SysTemp, "SYS/TEMP"),
            (ResponseCode::SysPerm, "SYS/PERM"),
            (ResponseCode::Auth, "AUTH"),
            (ResponseCode::Utf8, "UTF8"),
            (ResponseCode::Other("x-Foo/1".into()), "x-Foo/1"),
        ] {
            assert_eq!(code.to_string(), wire);
            let line = format!("-ERR [{wire}] t");
            assert_eq!(st(&line, true).code, Some(code));
        }
        assert!(ResponseCode::InUse.is_transient());
        assert!(ResponseCode::LoginDelay.is_transient());
        assert!(ResponseCode::SysTemp.is_transient());
        assert!(!ResponseCode::SysPerm.is_transient());
        assert!(!ResponseCode::Auth.is_transient());
        assert!(!ResponseCode::Utf8.is_transient());
        assert!(!ResponseCode::Other("X".into()).is_transient());
    }

    #[test]
    fn continuation() {
        assert_eq!(parse_continuation(b"+"), Some(&b""[..]));
        assert_eq!(parse_continuation(b"+ "), Some(&b""[..]));
        assert_eq!(parse_continuation(b"+ dGVzdA=="), Some(&b"dGVzdA=="[..]));
        assert_eq!(parse_continuation(b"+  dGVzdA==  "), Some(&b"dGVzdA=="[..]));
        assert_eq!(parse_continuation(b"+OK"), None);
        assert_eq!(parse_continuation(b"+OK dGVzdA=="), None);
        assert_eq!(parse_continuation(b"+dGVzdA=="), None);
        assert_eq!(parse_continuation(b"-ERR"), None);
        assert_eq!(parse_continuation(b""), None);
        assert_eq!(parse_continuation(b" +"), None);
    }

    #[test]
    fn stat() {
        assert_eq!(parse_stat("2 320"), Ok((2, 320)));
        assert_eq!(parse_stat("0 0"), Ok((0, 0)));
        assert_eq!(parse_stat("2  320 "), Ok((2, 320)));
        assert_eq!(parse_stat("2 320 messages"), Ok((2, 320)));
        assert_eq!(
            parse_stat("4294967295 18446744073709551615"),
            Ok((u32::MAX, u64::MAX))
        );
        assert_eq!(
            parse_stat(""),
            Err(ParseError::MissingField {
                what: "message count"
            })
        );
        assert_eq!(
            parse_stat("2"),
            Err(ParseError::MissingField {
                what: "maildrop size"
            })
        );
        assert_eq!(
            parse_stat("2 "),
            Err(ParseError::MissingField {
                what: "maildrop size"
            })
        );
        assert_eq!(
            parse_stat("x 1"),
            Err(ParseError::InvalidNumber {
                what: "message count"
            })
        );
        assert_eq!(
            parse_stat("+2 1"),
            Err(ParseError::InvalidNumber {
                what: "message count"
            })
        );
        assert_eq!(
            parse_stat("2 -1"),
            Err(ParseError::InvalidNumber {
                what: "maildrop size"
            })
        );
        assert_eq!(
            parse_stat("2 320x"),
            Err(ParseError::InvalidNumber {
                what: "maildrop size"
            })
        );
        assert_eq!(
            parse_stat("4294967296 1"),
            Err(ParseError::NumberOutOfRange {
                what: "message count",
                min: 0,
                max: 4294967295
            })
        );
        assert!(matches!(
            parse_stat("1 18446744073709551616"),
            Err(ParseError::NumberOutOfRange {
                what: "maildrop size",
                ..
            })
        ));
    }

    #[test]
    fn scan_listing() {
        assert_eq!(parse_scan_listing(b"1 120", 2), Ok((1, 120)));
        assert_eq!(parse_scan_listing(b"2 200 extra stuff", 2), Ok((2, 200)));
        assert_eq!(parse_scan_listing(b"2  200  ", 2), Ok((2, 200)));
        assert_eq!(parse_scan_listing(b"002 7", 2), Ok((2, 7)));
        let range = |max| ParseError::NumberOutOfRange {
            what: "message number",
            min: 1,
            max,
        };
        assert_eq!(parse_scan_listing(b"0 120", 2), Err(range(2)));
        assert_eq!(parse_scan_listing(b"3 120", 2), Err(range(2)));
        assert_eq!(parse_scan_listing(b"1 120", 0), Err(range(0)));
        assert_eq!(
            parse_scan_listing(b"99999999999999999999999 1", 5),
            Err(range(5))
        );
        assert_eq!(
            parse_scan_listing(b"", 2),
            Err(ParseError::MissingField {
                what: "message number"
            })
        );
        assert_eq!(
            parse_scan_listing(b"1", 2),
            Err(ParseError::MissingField {
                what: "message size"
            })
        );
        assert_eq!(
            parse_scan_listing(b"1 +5", 2),
            Err(ParseError::InvalidNumber {
                what: "message size"
            })
        );
        assert_eq!(
            parse_scan_listing(b"-1 5", 2),
            Err(ParseError::InvalidNumber {
                what: "message number"
            })
        );
        assert_eq!(
            parse_scan_listing(b" 1 5", 2),
            Err(ParseError::InvalidNumber {
                what: "message number"
            })
        );
        assert_eq!(
            parse_scan_listing(b"1\t5", 2),
            Err(ParseError::InvalidNumber {
                what: "message number"
            })
        );
    }

    #[test]
    fn unique_id_listing() {
        assert_eq!(
            parse_unique_id_listing(b"1 whqtswO00WBw418f9t5JxYwZ", 2, 70),
            Ok((1, "whqtswO00WBw418f9t5JxYwZ"))
        );
        assert_eq!(
            parse_unique_id_listing(b"2  QhdPYR:00WBw1Ph7x7  ", 2, 70),
            Ok((2, "QhdPYR:00WBw1Ph7x7"))
        );
        assert_eq!(parse_unique_id_listing(b"1 !~", 1, 70), Ok((1, "!~")));
        let long = [b'a'; 71];
        let mut line = b"1 ".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(
            parse_unique_id_listing(&line, 1, 70),
            Err(ParseError::InvalidUid(UidError::TooLong {
                len: 71,
                max: 70
            }))
        );
        assert!(parse_unique_id_listing(&line, 1, 71).is_ok());
        assert_eq!(
            parse_unique_id_listing(b"1 ", 1, 70),
            Err(ParseError::InvalidUid(UidError::Empty))
        );
        assert_eq!(
            parse_unique_id_listing(b"1", 1, 70),
            Err(ParseError::MissingField { what: "unique-id" })
        );
        assert_eq!(
            parse_unique_id_listing(b"1 ab\x7fc", 1, 70),
            Err(ParseError::InvalidUid(UidError::InvalidByte { byte: 0x7f }))
        );
        assert_eq!(
            parse_unique_id_listing(b"1 ab\xc3\xa9", 1, 70),
            Err(ParseError::InvalidUid(UidError::InvalidByte { byte: 0xc3 }))
        );
        assert_eq!(
            parse_unique_id_listing(b"1 abc def", 1, 70),
            Err(ParseError::TrailingGarbage)
        );
        assert!(matches!(
            parse_unique_id_listing(b"2 abc", 1, 70),
            Err(ParseError::NumberOutOfRange { .. })
        ));
    }

    #[test]
    fn lang_listing() {
        let l = |s: &[u8]| parse_lang_listing(s);
        assert_eq!(l(b"en English"), Ok(("en".into(), "English".into())));
        assert_eq!(
            l(b"en-boont English Boontling dialect"),
            Ok(("en-boont".into(), "English Boontling dialect".into()))
        );
        assert_eq!(l(b"es Espa\xc3\xb1ol"), Ok(("es".into(), "Español".into())));
        assert_eq!(l(b"de"), Ok(("de".into(), String::new())));
        assert_eq!(l(b"de  "), Ok(("de".into(), String::new())));
        assert_eq!(
            l(b"i-default Default \xff"),
            Ok(("i-default".into(), "Default \u{fffd}".into()))
        );
        assert_eq!(l(b""), Err(ParseError::InvalidLanguageTag));
        assert_eq!(l(b" en English"), Err(ParseError::InvalidLanguageTag));
        assert_eq!(l(b"en_US English"), Err(ParseError::InvalidLanguageTag));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            ParseError::NotAStatusLine.to_string(),
            "not a status line (neither +OK nor -ERR)"
        );
        assert_eq!(
            ParseError::NumberOutOfRange {
                what: "message number",
                min: 1,
                max: 3
            }
            .to_string(),
            "message number out of range 1..=3"
        );
        assert_eq!(
            ParseError::InvalidUid(UidError::TooLong { len: 80, max: 70 }).to_string(),
            "invalid unique-id: 80 octets long, more than 70"
        );
        assert_eq!(
            ParseError::InvalidUid(UidError::InvalidByte { byte: 0x7f }).to_string(),
            "invalid unique-id: invalid octet 0x7f"
        );
        let huge = vec![b'x'; 100_000];
        let msg = ParseError::InvalidCapability(echo(&huge)).to_string();
        assert!(msg.len() < 120, "{msg}");
        assert_eq!(echo(b"short"), "short");
        assert_eq!(echo(&[b'y'; 64]).len(), 64);
        assert!(echo(&[b'y'; 65]).ends_with('…'));
        assert!(echo("é".repeat(300).as_bytes()).chars().count() <= 65);
    }

    /// The grammar of RFC 1939 §3, §5 and §7 (with the tolerances the docs promise: several
    /// SPs between fields, trailing text after a size, trailing SPs after a unique-id), written
    /// as plainly as possible on whitespace-split tokens, independently of the nom parsers.
    mod reference {
        pub(super) fn digits(t: &[u8]) -> Option<u64> {
            if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(t).ok()?.parse().ok()
        }

        /// The first token up to a SP, and the rest after one or more SPs.
        pub(super) fn token(b: &[u8]) -> (&[u8], &[u8]) {
            let end = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
            let (t, mut rest) = b.split_at(end);
            while let [b' ', r @ ..] = rest {
                rest = r;
            }
            (t, rest)
        }

        pub(super) fn is_status(b: &[u8]) -> Option<bool> {
            for (tag, ok) in [(&b"+OK"[..], true), (b"-ERR", false)] {
                if let Some(rest) = b.strip_prefix(tag) {
                    if rest.is_empty() || rest[0] == b' ' {
                        return Some(ok);
                    }
                }
            }
            None
        }

        pub(super) fn scan(b: &[u8], max: u32) -> Option<(u32, u64)> {
            let (n, rest) = token(b);
            let n = u32::try_from(digits(n)?)
                .ok()
                .filter(|&n| n >= 1 && n <= max)?;
            if !b[..b.len() - rest.len()].ends_with(b" ") {
                return None;
            }
            let (size, _) = token(rest);
            Some((n, digits(size)?))
        }

        pub(super) fn stat(text: &[u8]) -> Option<(u32, u64)> {
            let mut t = text;
            while let [b' ', r @ ..] = t {
                t = r;
            }
            while let [r @ .., b' ' | b'\t'] = t {
                t = r;
            }
            let (count, rest) = token(t);
            let count = u32::try_from(digits(count)?).ok()?;
            if rest.is_empty() {
                return None;
            }
            let (size, _) = token(rest);
            Some((count, digits(size)?))
        }

        pub(super) fn uidl(b: &[u8], max: u32, uid_len: usize) -> Option<(u32, Vec<u8>)> {
            let (n, rest) = token(b);
            let n = u32::try_from(digits(n)?)
                .ok()
                .filter(|&n| n >= 1 && n <= max)?;
            if rest.is_empty() || !b[..b.len() - rest.len()].ends_with(b" ") {
                return None;
            }
            let (uid, after) = token(rest);
            let fine = !uid.is_empty()
                && uid.len() <= uid_len
                && uid.iter().all(|c| (0x21..=0x7e).contains(c))
                && after.is_empty();
            fine.then(|| (n, uid.to_vec()))
        }
    }

    fn check_against_reference(
        bytes: &[u8],
        max: u32,
        uid_len: usize,
        unknown: bool,
    ) -> Result<(), TestCaseError> {
        let status = parse_status_line(bytes, unknown);
        prop_assert_eq!(
            status.as_ref().ok().map(|s| s.ok),
            reference::is_status(bytes)
        );
        if let Ok(st) = &status {
            let rest = &bytes[if st.ok { 3 } else { 4 }..];
            if st.code.is_none() {
                let lossy = String::from_utf8_lossy(rest);
                prop_assert_eq!(
                    st.text.trim_matches(' '),
                    lossy
                        .trim_start_matches(' ')
                        .trim_end_matches([' ', '\t'])
                        .trim_matches(' ')
                );
            } else {
                prop_assert!(rest.trim_ascii_start().starts_with(b"["));
            }
        }
        let continuation = parse_continuation(bytes);
        prop_assert_eq!(
            continuation.is_some(),
            bytes == b"+" || bytes.starts_with(b"+ ")
        );
        if let Some(c) = continuation {
            prop_assert!(c.first() != Some(&b' ') && !c.ends_with(b" "));
            prop_assert!(c.is_empty() || bytes.windows(c.len()).any(|w| w == c));
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            prop_assert_eq!(parse_stat(text).ok(), reference::stat(bytes));
        }
        prop_assert_eq!(
            parse_scan_listing(bytes, max).ok(),
            reference::scan(bytes, max)
        );
        prop_assert_eq!(
            parse_unique_id_listing(bytes, max, uid_len)
                .ok()
                .map(|(n, u)| (n, u.as_bytes().to_vec())),
            reference::uidl(bytes, max, uid_len)
        );
        Ok(())
    }

    #[test]
    fn echo_keeps_max_echo_characters_whatever_their_width() {
        let ascii = "a".repeat(200);
        assert_eq!(echo(ascii.as_bytes()), format!("{}…", "a".repeat(MAX_ECHO)));
        // Two-byte characters: MAX_ECHO of them fit, nothing is cut.
        let wide = "é".repeat(MAX_ECHO);
        assert_eq!(echo(wide.as_bytes()), wide);
        // Four-byte characters filling the byte window exactly, then one byte more: every
        // character fits, but the input was cut, and the ellipsis says so.
        let mut emoji = "🦀".repeat(MAX_ECHO).into_bytes();
        emoji.push(b'!');
        assert_eq!(echo(&emoji), format!("{}…", "🦀".repeat(MAX_ECHO)));
        assert_eq!(echo(b"short"), "short");
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in any::<u32>(), uid_len in 0usize..100, unknown in any::<bool>()) {
            check_against_reference(&bytes, max, uid_len, unknown)?;
            let lang = parse_lang_listing(&bytes);
            if let Ok((tag, _)) = &lang {
                prop_assert!(!tag.is_empty() && bytes.starts_with(tag.as_bytes()));
            }
            let e = echo(&bytes);
            prop_assert!(e.chars().count() <= MAX_ECHO + 1);
        }

        /// The client's reused text buffer holds what `String::from_utf8_lossy` would make,
        /// whatever it held before.
        #[test]
        fn lossy_decoding_into_a_reused_buffer(bytes in proptest::collection::vec(any::<u8>(), 0..64), before in ".{0,20}") {
            let mut out = before;
            decode_lossy_into(&mut out, &bytes);
            prop_assert_eq!(out, String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn agrees_with_the_reference_on_likely_lines(s in "[+\\-OKER \\[\\]/A-Z0-9a-z]{0,40}|[0-9]{1,3}( {1,2}[0-9a-z!~]{0,8}){0,3} ?", unknown in any::<bool>(), max in 0u32..1000) {
            check_against_reference(s.as_bytes(), max, 70, unknown)?;
        }

        #[test]
        fn scan_listing_roundtrip(n in 1u32.., size in any::<u64>(), extra in "( [ -~]*)?") {
            let line = format!("{n} {size}{extra}");
            prop_assert_eq!(parse_scan_listing(line.as_bytes(), n), Ok((n, size)));
            prop_assert_eq!(parse_scan_listing(line.as_bytes(), u32::MAX), Ok((n, size)));
            if n > 1 {
                prop_assert!(parse_scan_listing(line.as_bytes(), n - 1).is_err());
            }
        }

        #[test]
        fn stat_roundtrip(count in any::<u32>(), size in any::<u64>()) {
            prop_assert_eq!(parse_stat(&format!("{count} {size}")), Ok((count, size)));
        }

        #[test]
        fn uidl_roundtrip(n in 1u32.., uid in "[!-~]{1,70}") {
            let line = format!("{n} {uid}");
            prop_assert_eq!(parse_unique_id_listing(line.as_bytes(), n, 70), Ok((n, uid.as_str())));
        }

        #[test]
        fn status_roundtrip(ok in any::<bool>(), text in "[ -~]{0,60}") {
            let line = format!("{} {text}", if ok { "+OK" } else { "-ERR" });
            let s = parse_status_line(line.as_bytes(), false).expect("valid status line");
            prop_assert_eq!(s.ok, ok);
            if s.code.is_none() {
                prop_assert_eq!(s.text.as_str(), text.trim_start_matches(' ').trim_end_matches([' ', '\t']));
            }
        }
    }
}
