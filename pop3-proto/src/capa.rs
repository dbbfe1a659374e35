//! The capability list returned by CAPA (RFC 2449 §5-6, RFC 3206 §6, RFC 6856 §2-3).
//!
//! Feed each line of the multi-line CAPA answer (dot-unstuffed, without CRLF, without the
//! terminating `.`) to [`Capabilities::add_line`].

use nom::{IResult, Parser, bytes::complete::take_while1};

use crate::response::{ParseError, echo};

/// The `LOGIN-DELAY` capability (RFC 2449 §6.5): the minimum number of seconds between two
/// logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginDelay {
    /// The minimum delay between logins, in seconds.
    pub seconds: u32,
    /// `USER` was given: the delay may differ per user, and the value after authentication is
    /// the one that applies.
    pub per_user: bool,
}

/// How long the server keeps messages (the argument of `EXPIRE`, RFC 2449 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpirePolicy {
    /// `EXPIRE NEVER`: the server never deletes messages on its own.
    Never,
    /// `EXPIRE n`: messages may be deleted `n` days after they were first retrieved.
    ///
    /// `Days(0)` means that messages are deleted once they have been retrieved (at the end of
    /// the session, as if the client had sent DELE), so a client cannot leave mail on the
    /// server.
    Days(u32),
}

/// The `EXPIRE` capability (RFC 2449 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expire {
    /// The retention policy.
    pub policy: ExpirePolicy,
    /// `USER` was given: the policy may differ per user, and the value after authentication
    /// is the one that applies.
    pub per_user: bool,
}

/// The `UTF8` capability (RFC 6856 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Utf8Capability {
    /// `UTF8 USER` was given: the server accepts UTF-8 user names and passwords in USER and
    /// PASS.
    pub user: bool,
}

/// The set of capabilities a server announced in answer to CAPA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `TOP` (RFC 2449 §6.1).
    pub top: bool,
    /// `USER` (RFC 2449 §6.2): USER/PASS authentication is available.
    pub user: bool,
    /// `SASL` (RFC 2449 §6.3, RFC 5034): the mechanism names, upper-cased, without
    /// duplicates, in the order announced (at most 64; any beyond are ignored).
    pub sasl: Vec<String>,
    /// `RESP-CODES` (RFC 2449 §6.4): the server sends extended response codes.
    pub resp_codes: bool,
    /// `AUTH-RESP-CODE` (RFC 3206 §6): the server sends the `AUTH` response code.
    pub auth_resp_code: bool,
    /// `PIPELINING` (RFC 2449 §6.6).
    pub pipelining: bool,
    /// `UIDL` (RFC 2449 §6.8).
    pub uidl: bool,
    /// `STLS` (RFC 2595 §4).
    pub stls: bool,
    /// `LOGIN-DELAY` (RFC 2449 §6.5).
    pub login_delay: Option<LoginDelay>,
    /// `EXPIRE` (RFC 2449 §6.7).
    pub expire: Option<Expire>,
    /// `IMPLEMENTATION` (RFC 2449 §6.9): the server's self-description (lossy UTF-8).
    pub implementation: Option<String>,
    /// `UTF8` (RFC 6856 §2).
    pub utf8: Option<Utf8Capability>,
    /// `LANG` (RFC 6856 §3).
    pub lang: bool,
    /// Lines with an unknown tag, or a known tag with malformed arguments, verbatim (lossy
    /// UTF-8).
    pub other: Vec<String>,
    /// Every capability line as the server sent it, in order (lossy UTF-8), for display.
    pub lines: Vec<String>,
}

/// The most SASL mechanisms kept; further ones are ignored (this keeps parsing linear).
const MAX_SASL_MECHANISMS: usize = 64;

/// Whether `b` is a `cchar`: printable ASCII except `.`.
fn is_cchar(b: u8) -> bool {
    matches!(b, 0x21..=0x2d | 0x2f..=0x7e)
}

/// `capa-tag = 1*cchar` where `cchar = %x21-2D / %x2F-7F` (printable ASCII except `.`;
/// RFC 2449 §5, DEL excluded)
fn capa_tag(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_cchar).parse(i)
}

/// `param = 1*pchar` where `pchar = %x21-7F` (RFC 2449 §5; any non-SP octet tolerated)
///
/// Returns the parameters of a capability line, split on runs of SP.
fn params(i: &[u8]) -> impl Iterator<Item = &[u8]> {
    i.split(|&b| b == b' ').filter(|p| !p.is_empty())
}

/// `line` without its leading SPs.
fn trim_start_spaces(mut line: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = line {
        line = rest;
    }
    line
}

/// Parses a decimal `1*DIGIT` that fits a `u32`.
fn decimal_u32(p: &[u8]) -> Option<u32> {
    if p.is_empty() || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(p).ok()?.parse().ok()
}

/// The argument list `(value) [SP "USER"]` shared by LOGIN-DELAY and EXPIRE; `None` if
/// malformed.
fn value_and_user<'a, T>(
    mut params: impl Iterator<Item = &'a [u8]>,
    value: impl FnOnce(&[u8]) -> Option<T>,
) -> Option<(T, bool)> {
    let v = value(params.next()?)?;
    let per_user = match params.next() {
        None => false,
        Some(p) if p.eq_ignore_ascii_case(b"USER") => true,
        Some(_) => return None,
    };
    if params.next().is_some() {
        return None;
    }
    Some((v, per_user))
}

impl Capabilities {
    /// Adds one line of a CAPA answer: `capability = capa-tag *(SP param)`.
    ///
    /// Tags are case-insensitive and extra spaces are tolerated. Known tags without arguments
    /// (`TOP`, `UIDL`, ...) are recognised even when followed by parameters, which RFC 2449
    /// lets future extensions add. A known tag with malformed arguments (say
    /// `LOGIN-DELAY abc`) does not fail: the line is kept in [`Capabilities::other`], as an
    /// unknown capability would be, because a server's sloppiness about one capability should
    /// not cost the client the whole session; the corresponding field is left unchanged.
    ///
    /// # Errors
    ///
    /// [`ParseError::InvalidCapability`] if the line is not a capability at all: empty (or
    /// only spaces), or its tag holds an octet that is not printable ASCII. The set is then
    /// left unchanged; the caller may ignore the error and go on with the next line.
    pub fn add_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        let trimmed = trim_start_spaces(line);
        let invalid = || ParseError::InvalidCapability(echo(line));
        let (rest, tag) = capa_tag(trimmed).map_err(|_| invalid())?;
        if !(rest.is_empty() || rest.first() == Some(&b' ')) {
            return Err(invalid());
        }
        self.lines.push(String::from_utf8_lossy(line).into_owned());
        let mut args = params(rest);
        let known = |name: &str| tag.eq_ignore_ascii_case(name.as_bytes());
        let handled = if known("TOP") {
            self.top = true;
            true
        } else if known("USER") {
            self.user = true;
            true
        } else if known("SASL") {
            for mech in args {
                if self.sasl.len() >= MAX_SASL_MECHANISMS {
                    break;
                }
                let mech = String::from_utf8_lossy(mech).to_ascii_uppercase();
                if !self.sasl.contains(&mech) {
                    self.sasl.push(mech);
                }
            }
            true
        } else if known("RESP-CODES") {
            self.resp_codes = true;
            true
        } else if known("AUTH-RESP-CODE") {
            self.auth_resp_code = true;
            true
        } else if known("PIPELINING") {
            self.pipelining = true;
            true
        } else if known("UIDL") {
            self.uidl = true;
            true
        } else if known("STLS") {
            self.stls = true;
            true
        } else if known("LANG") {
            self.lang = true;
            true
        } else if known("UTF8") {
            let user = args.any(|p| p.eq_ignore_ascii_case(b"USER"));
            self.utf8 = Some(Utf8Capability { user });
            true
        } else if known("IMPLEMENTATION") {
            let text = trim_start_spaces(rest);
            let end = text.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
            let text = text.get(..end).unwrap_or_default();
            self.implementation = Some(String::from_utf8_lossy(text).into_owned());
            true
        } else if known("LOGIN-DELAY") {
            match value_and_user(args, decimal_u32) {
                Some((seconds, per_user)) => {
                    self.login_delay = Some(LoginDelay { seconds, per_user });
                    true
                }
                None => false,
            }
        } else if known("EXPIRE") {
            let policy = |p: &[u8]| {
                if p.eq_ignore_ascii_case(b"NEVER") {
                    Some(ExpirePolicy::Never)
                } else {
                    decimal_u32(p).map(ExpirePolicy::Days)
                }
            };
            match value_and_user(args, policy) {
                Some((policy, per_user)) => {
                    self.expire = Some(Expire { policy, per_user });
                    true
                }
                None => false,
            }
        } else {
            false
        };
        if !handled {
            self.other.push(String::from_utf8_lossy(line).into_owned());
        }
        Ok(())
    }

    /// Whether the SASL mechanism `mech` was announced (ASCII case-insensitively).
    pub fn supports_sasl(&self, mech: &str) -> bool {
        self.sasl.iter().any(|m| m.eq_ignore_ascii_case(mech))
    }

    /// Whether the server announced `RESP-CODES` or `AUTH-RESP-CODE`, so that bracketed
    /// text at the start of a status line may be taken as a response code even when unknown
    /// (the `accept_unknown_codes` argument of [`crate::response::parse_status_line`]).
    pub fn accepts_response_codes(&self) -> bool {
        self.resp_codes || self.auth_resp_code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn capa(lines: &[&str]) -> Capabilities {
        let mut c = Capabilities::default();
        for l in lines {
            c.add_line(l.as_bytes()).expect("valid capability line");
        }
        c
    }

    #[test]
    fn dovecot_before_login() {
        let c = capa(&[
            "TOP",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "AUTH-RESP-CODE",
            "STLS",
            "USER",
            "SASL PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256",
        ]);
        assert!(c.top && c.uidl && c.resp_codes && c.pipelining && c.auth_resp_code);
        assert!(c.stls && c.user);
        assert_eq!(
            c.sasl,
            [
                "PLAIN",
                "LOGIN",
                "CRAM-MD5",
                "DIGEST-MD5",
                "SCRAM-SHA-1",
                "SCRAM-SHA-256"
            ]
        );
        assert!(c.supports_sasl("scram-sha-256"));
        assert!(!c.supports_sasl("XOAUTH2"));
        assert!(c.accepts_response_codes());
        assert!(c.other.is_empty());
        assert_eq!(c.login_delay, None);
        assert_eq!(c.expire, None);
        assert_eq!(c.implementation, None);
        assert!(!c.lang);
        assert_eq!(c.utf8, None);
    }

    #[test]
    fn rfc2449_example() {
        let c = capa(&[
            "TOP",
            "USER",
            "SASL CRAM-MD5 KERBEROS_V4",
            "RESP-CODES",
            "LOGIN-DELAY 900",
            "PIPELINING",
            "EXPIRE 60",
            "UIDL",
            "IMPLEMENTATION Shlemazle-Plotz-v302",
        ]);
        let mut expected = Capabilities {
            top: true,
            user: true,
            sasl: vec!["CRAM-MD5".into(), "KERBEROS_V4".into()],
            resp_codes: true,
            pipelining: true,
            uidl: true,
            ..Capabilities::default()
        };
        expected.login_delay = Some(LoginDelay {
            seconds: 900,
            per_user: false,
        });
        expected.expire = Some(Expire {
            policy: ExpirePolicy::Days(60),
            per_user: false,
        });
        expected.implementation = Some("Shlemazle-Plotz-v302".into());
        expected.lines = c.lines.clone();
        assert_eq!(c, expected);
        assert_eq!(c.lines[2], "SASL CRAM-MD5 KERBEROS_V4");
        assert_eq!(c.lines.len(), 9);
    }

    #[test]
    fn gmail() {
        let c = capa(&[
            "USER",
            "RESP-CODES",
            "EXPIRE 0",
            "LOGIN-DELAY 300",
            "TOP",
            "UIDL",
            "X-GOOGLE-RICO",
            "SASL PLAIN XOAUTH2 OAUTHBEARER",
        ]);
        assert!(c.user && c.resp_codes && c.top && c.uidl);
        assert!(!c.auth_resp_code && !c.pipelining && !c.stls);
        assert_eq!(
            c.expire,
            Some(Expire {
                policy: ExpirePolicy::Days(0),
                per_user: false
            })
        );
        assert_eq!(
            c.login_delay,
            Some(LoginDelay {
                seconds: 300,
                per_user: false
            })
        );
        assert_eq!(c.other, ["X-GOOGLE-RICO"]);
        assert_eq!(c.sasl, ["PLAIN", "XOAUTH2", "OAUTHBEARER"]);
        assert!(c.supports_sasl("xoauth2"));
        assert!(c.accepts_response_codes());
    }

    #[test]
    fn arguments() {
        let c = capa(&["EXPIRE NEVER"]);
        assert_eq!(
            c.expire,
            Some(Expire {
                policy: ExpirePolicy::Never,
                per_user: false
            })
        );
        let c = capa(&["expire never user"]);
        assert_eq!(
            c.expire,
            Some(Expire {
                policy: ExpirePolicy::Never,
                per_user: true
            })
        );
        let c = capa(&["EXPIRE 30 USER"]);
        assert_eq!(
            c.expire,
            Some(Expire {
                policy: ExpirePolicy::Days(30),
                per_user: true
            })
        );
        let c = capa(&["LOGIN-DELAY 900 USER"]);
        assert_eq!(
            c.login_delay,
            Some(LoginDelay {
                seconds: 900,
                per_user: true
            })
        );
        let c = capa(&["  login-delay   900   user  "]);
        assert_eq!(
            c.login_delay,
            Some(LoginDelay {
                seconds: 900,
                per_user: true
            })
        );
        let c = capa(&["UTF8 USER"]);
        assert_eq!(c.utf8, Some(Utf8Capability { user: true }));
        let c = capa(&["UTF8"]);
        assert_eq!(c.utf8, Some(Utf8Capability { user: false }));
        let c = capa(&["LANG"]);
        assert!(c.lang);
        let c = capa(&["IMPLEMENTATION Dovecot 2.3"]);
        assert_eq!(c.implementation.as_deref(), Some("Dovecot 2.3"));
        let c = capa(&["IMPLEMENTATION   Dovecot  2.3  "]);
        assert_eq!(c.implementation.as_deref(), Some("Dovecot  2.3"));
        let c = capa(&["IMPLEMENTATION"]);
        assert_eq!(c.implementation.as_deref(), Some(""));
        let c = capa(&[
            "top",
            "Uidl",
            "stls",
            "pipelining",
            "sasl plain",
            "SASL PLAIN Login",
        ]);
        assert!(c.top && c.uidl && c.stls && c.pipelining);
        assert_eq!(c.sasl, ["PLAIN", "LOGIN"]);
        // Argumentless tags tolerate future parameters.
        let c = capa(&["TOP FUTURE-PARAM"]);
        assert!(c.top && c.other.is_empty());
    }

    #[test]
    fn malformed_known_tags_go_to_other() {
        for line in [
            "LOGIN-DELAY abc",
            "LOGIN-DELAY",
            "LOGIN-DELAY -1",
            "LOGIN-DELAY 99999999999",
            "LOGIN-DELAY 900 USER EXTRA",
            "LOGIN-DELAY 900 NOTUSER",
            "EXPIRE",
            "EXPIRE soon",
            "EXPIRE 30 USER X",
        ] {
            let c = capa(&[line]);
            assert_eq!(c.other, [line], "{line}");
            assert_eq!(c.login_delay, None, "{line}");
            assert_eq!(c.expire, None, "{line}");
        }
        // A later malformed line does not erase an earlier good one.
        let c = capa(&["LOGIN-DELAY 60", "LOGIN-DELAY x"]);
        assert_eq!(
            c.login_delay,
            Some(LoginDelay {
                seconds: 60,
                per_user: false
            })
        );
    }

    #[test]
    fn invalid_lines() {
        let mut c = Capabilities::default();
        for bad in [
            &b""[..],
            b"   ",
            b"TO\x01P",
            b"\xc3\xa9TOP",
            b".",
            b"TOP.X",
            b"\tTOP",
        ] {
            assert!(
                matches!(c.add_line(bad), Err(ParseError::InvalidCapability(_))),
                "{bad:?}"
            );
        }
        assert_eq!(c, Capabilities::default());
        // Parameters may hold anything.
        c.add_line(b"X-FOO caf\xc3\xa9 \xff").expect("valid");
        assert_eq!(c.other, ["X-FOO café \u{fffd}"]);
        let err = c.add_line(&[0u8; 10_000]).expect_err("invalid");
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn numbers_are_plain_digits() {
        // `+5` parses as 5 in Rust's `str::parse`, but is no `1*DIGIT`.
        for line in [
            "LOGIN-DELAY +5",
            "LOGIN-DELAY 5x",
            "LOGIN-DELAY ",
            "EXPIRE +1",
        ] {
            let c = capa(&[line]);
            assert_eq!((c.login_delay, c.expire), (None, None), "{line:?}");
        }
        assert_eq!(
            capa(&["LOGIN-DELAY 900"]).login_delay.map(|d| d.seconds),
            Some(900)
        );
    }

    #[test]
    fn response_codes_are_accepted_only_when_announced() {
        assert!(!capa(&["TOP", "UIDL", "SASL PLAIN"]).accepts_response_codes());
        assert!(!Capabilities::default().accepts_response_codes());
        assert!(capa(&["RESP-CODES"]).accepts_response_codes());
        assert!(capa(&["AUTH-RESP-CODE"]).accepts_response_codes());
    }

    proptest! {
        #[test]
        fn a_line_is_kept_whole_or_changes_nothing(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..10)) {
            let mut c = Capabilities::default();
            for l in &lines {
                let before = c.clone();
                match c.add_line(l) {
                    Err(_) => prop_assert_eq!(&c, &before),
                    Ok(()) => {
                        // The raw line is appended, as sent (lossily decoded).
                        prop_assert_eq!(c.lines.len(), before.lines.len() + 1);
                        prop_assert_eq!(c.lines.last().map(String::as_str), Some(&*String::from_utf8_lossy(l)));
                    }
                }
            }
            prop_assert_eq!(c.supports_sasl("PLAIN"), c.sasl.iter().any(|m| m == "PLAIN"));
        }

        #[test]
        fn printable_tags_are_accepted_and_known_ones_recognised(spaces in " {0,2}", tag in "[A-Za-z][A-Za-z0-9\\-]{0,15}", arg in "( [A-Za-z0-9]{1,8}){0,2}") {
            // RFC 2449 §6: a capability is a tag of printable characters, then parameters.
            let line = format!("{spaces}{tag}{arg}");
            let mut c = Capabilities::default();
            prop_assert!(c.add_line(line.as_bytes()).is_ok(), "{line:?}");
            let is = |name: &str| tag.eq_ignore_ascii_case(name);
            prop_assert_eq!(c.top, is("TOP"));
            prop_assert_eq!(c.user, is("USER"));
            prop_assert_eq!(c.uidl, is("UIDL"));
            prop_assert_eq!(c.pipelining, is("PIPELINING"));
            prop_assert_eq!(c.stls, is("STLS"));
            prop_assert_eq!(c.resp_codes, is("RESP-CODES"));
            let known = ["TOP", "USER", "UIDL", "PIPELINING", "STLS", "RESP-CODES", "AUTH-RESP-CODE",
                "SASL", "LANG", "UTF8", "IMPLEMENTATION", "LOGIN-DELAY", "EXPIRE"];
            if !known.iter().any(|k| is(k)) {
                // An unknown tag is kept, never dropped and never mistaken for a known one.
                prop_assert_eq!(c.other.len(), 1);
            }
        }

        #[test]
        fn sasl_is_capped(n in 0usize..200) {
            let mechs: Vec<String> = (0..n).map(|i| format!("M{i}")).collect();
            let c = capa(&[&format!("SASL {}", mechs.join(" "))]);
            prop_assert_eq!(c.sasl.len(), n.min(64));
        }

        #[test]
        fn login_delay_roundtrip(seconds in any::<u32>(), per_user in any::<bool>()) {
            let line = format!("LOGIN-DELAY {seconds}{}", if per_user { " USER" } else { "" });
            let c = capa(&[&line]);
            prop_assert_eq!(c.login_delay, Some(LoginDelay { seconds, per_user }));
        }
    }
}
