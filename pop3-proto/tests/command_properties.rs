//! Property: any command either encodes to exactly the line RFC 1939 gives it, or is refused
//! for the rule it really broke.
//!
//! The oracle is written here from the RFCs, independently of `command.rs`: the expected
//! line is built by hand (the APOP digest with the `md-5` crate directly), its length is
//! counted on that line, and the expected refusal follows RFC 1939's grammar and RFC 2449 §4's
//! 255-octet limit. The implementation's answer must equal the oracle's exactly.
#![allow(clippy::unwrap_used)]

use md5::{Digest as _, Md5};
use pop3_proto::{Client, Command, Config, EnqueueError};
use proptest::prelude::*;

/// The greeting's APOP timestamp.
const TIMESTAMP: &str = "<1.2@host>";

fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9@._-]{0,20}",
        "[ -~]{0,60}",
        "[a-z]{0,5}[\r\n\0][a-z]{0,5}",
        "[a-z ]{200,300}",
        "[a-z]{230,260}",
        "\\PC{0,30}",
    ]
}

/// A command, and what the oracle expects of it.
#[derive(Debug)]
struct Case {
    command: Command,
    expected: Result<Vec<u8>, Refusal>,
    transaction: bool,
}

/// The refusals, as the oracle names them.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    ForbiddenByte,
    Empty,
    Space,
    Zero,
    TooLong(usize),
}

fn forbidden(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

/// The line for `keyword` and `args`, or the refusal RFC 2449 §4 demands for its length.
fn line(keyword: &str, args: &[&str]) -> Result<Vec<u8>, Refusal> {
    let mut line = keyword.as_bytes().to_vec();
    for a in args {
        line.push(b' ');
        line.extend_from_slice(a.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    if line.len() > 255 {
        return Err(Refusal::TooLong(line.len()));
    }
    Ok(line)
}

/// A word argument (USER, RPOP: spaces allowed for Exchange; LANG, APOP's name: no spaces).
fn word(s: &str, spaces: bool) -> Result<(), Refusal> {
    if forbidden(s) {
        Err(Refusal::ForbiddenByte)
    } else if s.is_empty() {
        Err(Refusal::Empty)
    } else if !spaces && s.contains(' ') {
        Err(Refusal::Space)
    } else {
        Ok(())
    }
}

fn number(n: u32) -> Result<(), Refusal> {
    if n == 0 { Err(Refusal::Zero) } else { Ok(()) }
}

fn apop_digest(secret: &str) -> String {
    let digest = Md5::new()
        .chain_update(TIMESTAMP.as_bytes())
        .chain_update(secret.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn case() -> impl Strategy<Value = Case> {
    (0u8..16, arg(), arg(), any::<u32>(), any::<u32>()).prop_map(|(k, s, t, n, m)| {
        let n = if n % 4 == 0 { 0 } else { n };
        let num = n.to_string();
        let (command, expected, transaction) = match k {
            0 => (
                Command::user(s.clone()),
                word(&s, true).and_then(|()| line("USER", &[&s])),
                false,
            ),
            // PASS may be empty and may contain spaces (RFC 1939 §7).
            1 => (
                Command::pass(s.clone()),
                if forbidden(&s) {
                    Err(Refusal::ForbiddenByte)
                } else {
                    line("PASS", &[&s])
                },
                false,
            ),
            2 | 15 => {
                let (user, secret) = if k == 2 { (&s, &t) } else { (&t, &s) };
                let expected = word(user, false).and_then(|()| {
                    if forbidden(secret) {
                        Err(Refusal::ForbiddenByte)
                    } else {
                        line("APOP", &[user, &apop_digest(secret)])
                    }
                });
                (Command::apop(user.clone(), secret.clone()), expected, false)
            }
            3 => (
                Command::Rpop(s.clone()),
                word(&s, true).and_then(|()| line("RPOP", &[&s])),
                false,
            ),
            4 => (
                Command::Lang(Some(s.clone())),
                word(&s, false).and_then(|()| line("LANG", &[&s])),
                false,
            ),
            5 => (
                Command::retr(n),
                number(n).and_then(|()| line("RETR", &[&num])),
                true,
            ),
            6 => (
                Command::dele(n),
                number(n).and_then(|()| line("DELE", &[&num])),
                true,
            ),
            7 => (
                Command::top(n, m),
                number(n).and_then(|()| line("TOP", &[&num, &m.to_string()])),
                true,
            ),
            8 => (
                Command::List(Some(n)),
                number(n).and_then(|()| line("LIST", &[&num])),
                true,
            ),
            9 => (
                Command::Uidl(Some(n)),
                number(n).and_then(|()| line("UIDL", &[&num])),
                true,
            ),
            10 => (Command::Stat, line("STAT", &[]), true),
            11 => (Command::Noop, line("NOOP", &[]), true),
            12 => (Command::Rset, line("RSET", &[]), true),
            13 => (Command::Capa, line("CAPA", &[]), false),
            _ => (Command::Utf8, line("UTF8", &[]), false),
        };
        Case {
            command,
            expected,
            transaction,
        }
    })
}

fn client(transaction: bool) -> Client {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    let mut c = Client::new(config);
    c.handle_input(format!("+OK ready {TIMESTAMP}\r\n").as_bytes());
    while c.poll_event().unwrap().is_some() {}
    if transaction {
        c.enqueue(Command::pass("x")).unwrap();
        c.poll_transmit(&mut Vec::new());
        c.handle_input(b"+OK\r\n");
        while c.poll_event().unwrap().is_some() {}
    }
    c
}

fn refusal(e: &EnqueueError) -> Option<Refusal> {
    Some(match e {
        EnqueueError::ForbiddenByte { .. } => Refusal::ForbiddenByte,
        EnqueueError::InvalidArgument {
            reason: "empty", ..
        } => Refusal::Empty,
        EnqueueError::InvalidArgument {
            reason: "contains a space",
            ..
        } => Refusal::Space,
        EnqueueError::MessageNumberZero => Refusal::Zero,
        EnqueueError::LineTooLong { len, .. } => Refusal::TooLong(*len),
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn encodes_to_the_rfc_line_or_is_refused_for_the_rule_it_broke(case in case()) {
        let mut c = client(case.transaction);
        let kind = case.command.kind();
        let got = match c.enqueue(case.command) {
            Ok(_) => {
                let mut out = Vec::new();
                c.poll_transmit(&mut out);
                Ok(out)
            }
            Err(e) => Err(refusal(&e).ok_or_else(|| TestCaseError::fail(format!("unexpected refusal of {kind}: {e}")))?),
        };
        prop_assert_eq!(&got, &case.expected, "{}", kind);
        if let Ok(line) = &got {
            // Whatever the model says, a line on the wire is one line of at most 255 octets.
            prop_assert!(line.len() <= 255);
            prop_assert!(!line[..line.len() - 2].iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)));
        }
    }
}

/// The boundary of RFC 2449 §4 exactly: 255 octets pass, 256 are refused with their length.
#[test]
fn the_255_octet_boundary() {
    // "USER " + name + CRLF.
    for (name_len, expected) in [(248, Ok(255)), (249, Err(256))] {
        let name = "u".repeat(name_len);
        let mut c = client(false);
        let got = match c.enqueue(Command::user(name)) {
            Ok(_) => {
                let mut out = Vec::new();
                c.poll_transmit(&mut out);
                Ok(out.len())
            }
            Err(EnqueueError::LineTooLong { len, .. }) => Err(len),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(got, expected, "name of {name_len}");
    }
    // APOP: "APOP " + name + " " + 32 hex digits + CRLF.
    for (name_len, expected) in [(215, Ok(255)), (216, Err(256))] {
        let mut c = client(false);
        let got = match c.enqueue(Command::apop("a".repeat(name_len), "s")) {
            Ok(_) => {
                let mut out = Vec::new();
                c.poll_transmit(&mut out);
                Ok(out.len())
            }
            Err(EnqueueError::LineTooLong { len, .. }) => Err(len),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(got, expected, "APOP name of {name_len}");
    }
}

/// A SASL mechanism's name goes on the command line as it is: only letters, digits, `-` and
/// `_` (RFC 4422 §3.1), checked for any mechanism, including the caller's own.
#[test]
fn mechanism_names_are_checked() {
    use pop3_proto::sasl::{Mechanism, SaslError};
    struct Named(&'static str);
    impl Mechanism for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn initial_response(&mut self) -> Result<Option<pop3_proto::Secret>, SaslError> {
            Ok(None)
        }
        fn step(&mut self, _: &[u8]) -> Result<pop3_proto::Secret, SaslError> {
            Ok(pop3_proto::Secret::default())
        }
    }
    for (name, ok) in [
        ("X-OAUTH_2", true),
        ("GS2-KRB5", true),
        ("SCRAM-SHA-256", true),
        ("BAD/NAME", false),
        ("BAD NAME", false),
        ("BAD=", false),
        ("", false),
        ("X\r\nDELE 1", false),
        // "AUTH " + name + CRLF: 248 characters make 255 octets, 249 too many.
        (&*"A".repeat(248).leak(), true),
        (&*"A".repeat(249).leak(), false),
    ] {
        let mut c = client(false);
        let got = c.enqueue(Command::auth(Named(name)));
        assert_eq!(got.is_ok(), ok, "{name:?}: {got:?}");
        if ok {
            let mut out = Vec::new();
            c.poll_transmit(&mut out);
            assert_eq!(out, format!("AUTH {name}\r\n").as_bytes());
        }
    }
}
