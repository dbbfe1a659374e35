//! Property: any command either encodes to exactly one valid line, or is refused for a rule
//! it really broke.
#![allow(clippy::unwrap_used)]

use pop3_proto::{Client, Command, Config, EnqueueError};
use proptest::prelude::*;

fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9@._-]{0,20}",
        "[ -~]{0,60}",
        "[a-z]{0,5}[\r\n\0][a-z]{0,5}",
        "[a-z ]{200,300}",
        "\\PC{0,30}",
    ]
}

fn command() -> impl Strategy<Value = (Command, String, u32)> {
    (0u8..16, arg(), any::<u32>(), any::<u32>()).prop_map(|(k, s, n, m)| {
        let n = if n % 4 == 0 { 0 } else { n };
        let cmd = match k {
            0 => Command::user(s.clone()),
            1 => Command::pass(s.clone()),
            2 => Command::apop(s.clone(), "secret"),
            3 => Command::Rpop(s.clone()),
            4 => Command::Lang(Some(s.clone())),
            5 => Command::retr(n),
            6 => Command::dele(n),
            7 => Command::top(n, m),
            8 => Command::List(Some(n)),
            9 => Command::Uidl(Some(n)),
            10 => Command::Stat,
            11 => Command::Noop,
            12 => Command::Rset,
            13 => Command::Capa,
            14 => Command::Utf8,
            _ => Command::apop("user", s.clone()),
        };
        (cmd, s, n)
    })
}

fn client(transaction: bool) -> Client {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    let mut c = Client::new(config);
    c.handle_input(b"+OK ready <1.2@host>\r\n");
    while c.poll_event().unwrap().is_some() {}
    if transaction {
        c.enqueue(Command::pass("x")).unwrap();
        c.poll_transmit(&mut Vec::new());
        c.handle_input(b"+OK\r\n");
        while c.poll_event().unwrap().is_some() {}
    }
    c
}

proptest! {
    #[test]
    fn encodes_to_one_valid_line_or_is_refused((cmd, s, n) in command()) {
        let kind = cmd.kind();
        let transaction = matches!(kind.keyword(), "RETR" | "DELE" | "TOP" | "LIST" | "UIDL" | "STAT" | "NOOP" | "RSET");
        let mut c = client(transaction);
        let secret_arg = matches!(kind.keyword(), "APOP") && !s.is_empty() && s.as_str() != "secret" && !s.contains(' ');
        match c.enqueue(cmd) {
            Ok(_) => {
                let mut out = Vec::new();
                c.poll_transmit(&mut out);
                prop_assert!(out.ends_with(b"\r\n"));
                let body = &out[..out.len() - 2];
                prop_assert!(!body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0), "{out:?}");
                prop_assert!(out.len() <= 255);
                prop_assert!(body.starts_with(kind.keyword().as_bytes()));
                // The argument comes back from the line as it was given.
                let text = String::from_utf8_lossy(body);
                match kind.keyword() {
                    "USER" | "PASS" | "RPOP" | "LANG" => prop_assert_eq!(text.split_once(' ').map(|(_, a)| a.to_owned()), Some(s)),
                    "RETR" | "DELE" | "LIST" | "UIDL" => prop_assert_eq!(text.split_once(' ').map(|(_, a)| a.parse::<u32>().unwrap()), Some(n)),
                    _ => {}
                }
            }
            Err(EnqueueError::ForbiddenByte { .. }) => {
                prop_assert!(s.contains(['\r', '\n', '\0']) || secret_arg);
            }
            Err(EnqueueError::LineTooLong { len, .. }) => prop_assert!(len > 255),
            Err(EnqueueError::MessageNumberZero) => prop_assert_eq!(n, 0),
            Err(EnqueueError::InvalidArgument { reason, .. }) => {
                prop_assert!((reason == "empty" && s.is_empty()) || (reason == "contains a space" && s.contains(' ')), "{reason}");
            }
            Err(e) => prop_assert!(false, "unexpected refusal {e}"),
        }
    }
}
