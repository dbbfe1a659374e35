//! The server's view of a command line, for the fuzzers and tests: a plain, strict parser of
//! POP3 command lines as a server reads them, and the same description built from a
//! [`Command`], so that what the client sends can be checked to parse back to what was asked.
//!
//! Not part of the stable API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::command::{Command, MAX_COMMAND_LINE};

/// A command line as a server understands it: the command and its arguments, owned.
///
/// Numbers are parsed; strings are kept as bytes. AUTH's initial response is base64-decoded
/// (`=` is the empty response, RFC 5034 §4); APOP's digest is kept as sent (32 lowercase hex
/// digits).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ParsedCommand {
    User(Vec<u8>),
    Pass(Vec<u8>),
    Apop {
        user: Vec<u8>,
        digest: Vec<u8>,
    },
    Rpop(Vec<u8>),
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Top {
        msg: u32,
        lines: u32,
    },
    Uidl(Option<u32>),
    Capa,
    Stls,
    Auth {
        mechanism: Vec<u8>,
        initial_response: Option<Vec<u8>>,
    },
    Utf8,
    Lang(Option<Vec<u8>>),
}

/// Parses one command line, CRLF included, as a strict server would: the line ends in the only
/// CRLF it holds, contains no NUL, is at most [`MAX_COMMAND_LINE`] octets long, the keyword is
/// one of RFC 1939/2449/2595/5034/6856's (upper case, as the client sends it), and arguments are
/// separated by exactly one SP. USER, PASS and RPOP take the rest of the line as their single
/// argument (spaces included; PASS may be empty), as RFC 1939 §7 lets servers do. Message
/// numbers are `1*DIGIT` without sign that fit a `u32` (0 is refused, leading zeros are not
/// produced by the client and refused too). Returns `None` for anything else.
pub fn parse_command_line(line: &[u8]) -> Option<ParsedCommand> {
    if line.len() > MAX_COMMAND_LINE {
        return None;
    }
    let body = line.strip_suffix(b"\r\n")?;
    if body.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return None;
    }
    let (keyword, rest) = match body.iter().position(|&b| b == b' ') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let args = || {
        rest.map(|r| r.split(|&b| b == b' ').collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let word = |a: &[u8]| (!a.is_empty()).then(|| a.to_vec());
    let one_number = || match args().as_slice() {
        [n] => number(n),
        _ => None,
    };
    let optional_number = || match rest {
        None => Some(None),
        Some(_) => one_number().map(Some),
    };
    let none = |c: ParsedCommand| rest.is_none().then_some(c);
    Some(match keyword {
        b"USER" => ParsedCommand::User(word(rest?)?),
        b"PASS" => ParsedCommand::Pass(rest.unwrap_or_default().to_vec()),
        b"RPOP" => ParsedCommand::Rpop(word(rest?)?),
        b"APOP" => match args().as_slice() {
            [user, digest]
                if digest.len() == 32
                    && digest
                        .iter()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                ParsedCommand::Apop {
                    user: word(user)?,
                    digest: digest.to_vec(),
                }
            }
            _ => return None,
        },
        b"STAT" => none(ParsedCommand::Stat)?,
        b"NOOP" => none(ParsedCommand::Noop)?,
        b"RSET" => none(ParsedCommand::Rset)?,
        b"QUIT" => none(ParsedCommand::Quit)?,
        b"CAPA" => none(ParsedCommand::Capa)?,
        b"STLS" => none(ParsedCommand::Stls)?,
        b"UTF8" => none(ParsedCommand::Utf8)?,
        b"LIST" => ParsedCommand::List(optional_number()?),
        b"UIDL" => ParsedCommand::Uidl(optional_number()?),
        b"RETR" => ParsedCommand::Retr(one_number()?),
        b"DELE" => ParsedCommand::Dele(one_number()?),
        b"TOP" => match args().as_slice() {
            [msg, lines] => ParsedCommand::Top {
                msg: number(msg)?,
                lines: count(lines)?,
            },
            _ => return None,
        },
        b"LANG" => match rest {
            None => ParsedCommand::Lang(None),
            Some(_) => match args().as_slice() {
                [tag] => ParsedCommand::Lang(Some(word(tag)?)),
                _ => return None,
            },
        },
        b"AUTH" => {
            let args = args();
            let (mechanism, initial) = match args.as_slice() {
                [m] => (*m, None),
                [m, ir] => (*m, Some(*ir)),
                _ => return None,
            };
            if mechanism.is_empty()
                || !mechanism
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return None;
            }
            let initial_response = match initial {
                None => None,
                Some(b"=") => Some(Vec::new()),
                Some(b"") => return None,
                Some(b64) => Some(BASE64.decode(b64).ok()?),
            };
            ParsedCommand::Auth {
                mechanism: mechanism.to_vec(),
                initial_response,
            }
        }
        _ => return None,
    })
}

/// `1*DIGIT` without a leading zero, fitting a `u32`, at least 1.
fn number(digits: &[u8]) -> Option<u32> {
    count(digits).filter(|&n| n != 0)
}

/// `1*DIGIT` without a leading zero (except `0` itself), fitting a `u32`.
fn count(digits: &[u8]) -> Option<u32> {
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What a server should read when the client sends `command`.
///
/// `timestamp` is the greeting's APOP timestamp (needed for APOP's digest). For AUTH,
/// `initial_response` is the initial response the line should carry (it is left for the first
/// continuation when it does not fit), as raw bytes; the mechanism is not called here.
pub fn describe(
    command: &Command,
    timestamp: Option<&[u8]>,
    initial_response: Option<&[u8]>,
) -> ParsedCommand {
    let bytes = |s: &str| s.as_bytes().to_vec();
    match command {
        Command::User(s) => ParsedCommand::User(bytes(s)),
        Command::Pass(s) => ParsedCommand::Pass(s.expose().to_vec()),
        Command::Apop { user, secret } => ParsedCommand::Apop {
            user: bytes(user),
            digest: crate::apop::apop_digest(timestamp.unwrap_or_default(), secret.expose())
                .to_vec(),
        },
        Command::Rpop(s) => ParsedCommand::Rpop(bytes(s)),
        Command::Stat => ParsedCommand::Stat,
        Command::List(n) => ParsedCommand::List(*n),
        Command::Retr(n) => ParsedCommand::Retr(*n),
        Command::Dele(n) => ParsedCommand::Dele(*n),
        Command::Noop => ParsedCommand::Noop,
        Command::Rset => ParsedCommand::Rset,
        Command::Quit => ParsedCommand::Quit,
        Command::Top { msg, lines } => ParsedCommand::Top {
            msg: *msg,
            lines: *lines,
        },
        Command::Uidl(n) => ParsedCommand::Uidl(*n),
        Command::Capa => ParsedCommand::Capa,
        Command::Stls => ParsedCommand::Stls,
        Command::Auth(mechanism) => ParsedCommand::Auth {
            mechanism: bytes(mechanism.name()),
            initial_response: initial_response.map(<[u8]>::to_vec),
        },
        Command::Utf8 => ParsedCommand::Utf8,
        Command::Lang(tag) => ParsedCommand::Lang(tag.as_deref().map(bytes)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_client_sends() {
        let p = |s: &[u8]| parse_command_line(s);
        assert_eq!(
            p(b"USER mrose\r\n"),
            Some(ParsedCommand::User(b"mrose".to_vec()))
        );
        assert_eq!(
            p(b"USER a b\r\n"),
            Some(ParsedCommand::User(b"a b".to_vec()))
        );
        assert_eq!(p(b"PASS \r\n"), Some(ParsedCommand::Pass(Vec::new())));
        assert_eq!(
            p(b"PASS  x \r\n"),
            Some(ParsedCommand::Pass(b" x ".to_vec()))
        );
        assert_eq!(
            p(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
            Some(ParsedCommand::Apop {
                user: b"mrose".to_vec(),
                digest: b"c4c9334bac560ecc979e58001b3e22fb".to_vec()
            })
        );
        assert_eq!(p(b"STAT\r\n"), Some(ParsedCommand::Stat));
        assert_eq!(p(b"LIST\r\n"), Some(ParsedCommand::List(None)));
        assert_eq!(p(b"LIST 2\r\n"), Some(ParsedCommand::List(Some(2))));
        assert_eq!(
            p(b"TOP 1 0\r\n"),
            Some(ParsedCommand::Top { msg: 1, lines: 0 })
        );
        assert_eq!(
            p(b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n"),
            Some(ParsedCommand::Auth {
                mechanism: b"PLAIN".to_vec(),
                initial_response: Some(b"test\0test\0test".to_vec())
            })
        );
        assert_eq!(
            p(b"AUTH X =\r\n"),
            Some(ParsedCommand::Auth {
                mechanism: b"X".to_vec(),
                initial_response: Some(Vec::new())
            })
        );
        assert_eq!(
            p(b"LANG *\r\n"),
            Some(ParsedCommand::Lang(Some(b"*".to_vec())))
        );
    }

    #[test]
    fn refuses_what_a_strict_server_refuses() {
        for bad in [
            &b"STAT"[..],
            b"STAT\n",
            b"STAT \r\n",
            b"stat\r\n",
            b"RETR 0\r\n",
            b"RETR 01\r\n",
            b"RETR +1\r\n",
            b"RETR 4294967296\r\n",
            b"RETR  1\r\n",
            b"RETR 1 \r\n",
            b"LIST \r\n",
            b"TOP 1\r\n",
            b"USER \r\n",
            b"USER a\rb\r\n",
            b"USER a\0\r\n",
            b"APOP mrose C4C9334BAC560ECC979E58001B3E22FB\r\n",
            b"APOP mrose short\r\n",
            b"AUTH PL AIN\r\n",
            b"AUTH PLAIN ***\r\n",
            b"AUTH PLAIN \r\n",
            b"LANG a b\r\n",
            b"XTND\r\n",
            b"STAT\r\nSTAT\r\n",
        ] {
            assert_eq!(
                parse_command_line(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"USER ".to_vec();
        long.extend(std::iter::repeat_n(b'u', 249));
        long.extend_from_slice(b"\r\n");
        assert_eq!(long.len(), 256);
        assert_eq!(parse_command_line(&long), None);
        long.remove(5);
        assert!(parse_command_line(&long).is_some());
    }

    #[test]
    fn describes_commands() {
        let ts = b"<1896.697170952@dbc.mtview.ca.us>";
        assert_eq!(
            describe(&Command::apop("mrose", "tanstaaf"), Some(ts), None),
            parse_command_line(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n").unwrap()
        );
        assert_eq!(
            describe(&Command::top(3, 7), None, None),
            ParsedCommand::Top { msg: 3, lines: 7 }
        );
        let plain = Command::auth(crate::sasl::Plain::new(None, "u".into(), "p".into()));
        assert_eq!(
            describe(&plain, None, Some(b"\0u\0p")),
            ParsedCommand::Auth {
                mechanism: b"PLAIN".to_vec(),
                initial_response: Some(b"\0u\0p".to_vec())
            }
        );
    }
}
