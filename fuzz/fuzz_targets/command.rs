//! Command encoding: any command, with any arguments (CR, LF, NUL, spaces, long strings), in
//! either phase, with or without TLS, plaintext permission or an APOP timestamp, is queued on a
//! real `Client`. Accepted ⇒ the client sends exactly one CRLF-terminated line of at most 255
//! octets, byte for byte the line this target builds by hand from the raw fields (the APOP
//! digest with the md-5 crate directly, AUTH initial responses encoded here from RFC 4616,
//! 5802, 7628 and Google's XOAUTH2 text, never with the crate's mechanisms), and the trace
//! shows it with its secrets redacted. Refused ⇒ the error names a rule that the input really
//! broke, as checked here independently of the crate.
//!
//! Input: one flag byte, then fields separated by 0xFF: the keyword (`USER`, `AUTH`, ...), then
//! its arguments (for AUTH: the mechanism name, then the mechanism's parameters).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use md5::{Digest as _, Md5};
use pop3_fuzz::{fields, text};
use pop3_proto::sasl::{
    CramMd5, Login, Mechanism, OAuthBearer, Plain, SaslError, ScramSha256, XOAuth2,
};
use pop3_proto::{Client, Command, CommandKind, Config, EnqueueError, Event, Phase, Secret, Trace};

/// A caller-defined mechanism with any name (the crate must police the name).
struct Custom {
    name: String,
    initial: Option<Vec<u8>>,
    exposes: bool,
}

impl Mechanism for Custom {
    fn name(&self) -> &str {
        &self.name
    }
    fn exposes_secret(&self) -> bool {
        self.exposes
    }
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(self.initial.clone().map(Secret::new))
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Secret, SaslError> {
        Ok(Secret::default())
    }
}

fn number(f: Option<&[u8]>) -> u32 {
    let f = f.unwrap_or_default();
    if !f.is_empty() && f.iter().all(u8::is_ascii_digit) {
        return f.iter().fold(0u32, |v, &d| {
            v.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
        });
    }
    f.iter()
        .fold(f.len() as u32, |v, &b| v.rotate_left(5) ^ u32::from(b))
}

fn nonce(f: &[u8]) -> String {
    let n: String = f
        .iter()
        .filter(|&&b| (0x21..=0x7e).contains(&b) && b != b',')
        .map(|&b| b as char)
        .collect();
    if n.is_empty() { "n0nce".into() } else { n }
}

/// Builds the command the fields describe (deterministically: called once per copy needed).
fn build(f: &[&[u8]], exposes: bool) -> Option<Command> {
    let arg = |i: usize| f.get(i).copied();
    let s = |i: usize| text(arg(i).unwrap_or_default());
    let keyword = text(f.first()?).to_ascii_uppercase();
    Some(match keyword.as_str() {
        "USER" => Command::User(s(1)),
        "PASS" => Command::Pass(Secret::new(arg(1).unwrap_or_default())),
        "APOP" => Command::Apop {
            user: s(1),
            secret: Secret::new(arg(2).unwrap_or_default()),
        },
        "RPOP" => Command::Rpop(s(1)),
        "STAT" => Command::Stat,
        "LIST" => Command::List(arg(1).map(|a| number(Some(a)))),
        "RETR" => Command::Retr(number(arg(1))),
        "DELE" => Command::Dele(number(arg(1))),
        "NOOP" => Command::Noop,
        "RSET" => Command::Rset,
        "QUIT" => Command::Quit,
        "TOP" => Command::Top {
            msg: number(arg(1)),
            lines: number(arg(2)),
        },
        "UIDL" => Command::Uidl(arg(1).map(|a| number(Some(a)))),
        "CAPA" => Command::Capa,
        "STLS" => Command::Stls,
        "UTF8" => Command::Utf8,
        "LANG" => Command::Lang(arg(1).map(text)),
        "AUTH" => {
            let mech = s(1);
            let p = |i: usize| s(i + 2);
            let b = |i: usize| Secret::new(arg(i + 2).unwrap_or_default());
            match mech.as_str() {
                "PLAIN" => Command::auth(Plain::new(arg(2).map(text), p(1), b(2))),
                "LOGIN" => Command::auth(Login::new(p(0), b(1))),
                "CRAM-MD5" => Command::auth(CramMd5::new(p(0), b(1))),
                "XOAUTH2" => Command::auth(XOAuth2::new(p(0), b(1))),
                "OAUTHBEARER" => Command::auth(OAuthBearer::new(
                    p(0),
                    arg(3).map(text),
                    arg(4).map(|a| number(Some(a)) as u16),
                    b(3),
                )),
                "SCRAM-SHA-256" => Command::auth(ScramSha256::new(
                    p(0),
                    b(1),
                    nonce(arg(4).unwrap_or_default()),
                )),
                _ => Command::Auth(Box::new(Custom {
                    name: mech,
                    initial: arg(2).map(<[u8]>::to_vec),
                    exposes,
                })),
            }
        }
        _ => return None,
    })
}

/// The rules, written out independently of the crate.
#[derive(Debug, PartialEq)]
enum Broken {
    Phase,
    Forbidden,
    Empty,
    Space,
    MechanismName,
    TooLong(usize),
    Zero,
    Cleartext,
    NoTimestamp,
    TlsActive,
}

fn digits(n: u32) -> usize {
    n.to_string().len()
}

fn broken_rules(
    cmd: &Command,
    logged_in: bool,
    tls: bool,
    plaintext_ok: bool,
    has_ts: bool,
) -> Vec<Broken> {
    let mut out = Vec::new();
    let kind = cmd.kind();
    let before_login_only = matches!(
        kind,
        CommandKind::User
            | CommandKind::Pass
            | CommandKind::Apop
            | CommandKind::Rpop
            | CommandKind::Auth
            | CommandKind::Stls
            | CommandKind::Utf8
    );
    let any_phase = matches!(
        kind,
        CommandKind::Capa | CommandKind::Lang | CommandKind::Quit
    );
    if !any_phase && before_login_only == logged_in {
        out.push(Broken::Phase);
    }
    let bad = |b: &[u8]| b.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0));
    let mut arg = |b: &[u8], space_ok: bool, empty_ok: bool| {
        if bad(b) {
            out.push(Broken::Forbidden);
        }
        if !empty_ok && b.is_empty() {
            out.push(Broken::Empty);
        }
        if !space_ok && b.contains(&b' ') {
            out.push(Broken::Space);
        }
    };
    let mut len = kind.keyword().len() + 2;
    match cmd {
        Command::User(s) | Command::Rpop(s) => {
            arg(s.as_bytes(), true, false);
            len += 1 + s.len();
        }
        Command::Pass(p) => {
            arg(p.expose(), true, true);
            len += 1 + p.len();
        }
        Command::Apop { user, secret } => {
            arg(user.as_bytes(), false, false);
            arg(secret.expose(), true, true);
            len += 1 + user.len() + 1 + 32;
        }
        Command::Lang(Some(t)) => {
            arg(t.as_bytes(), false, false);
            len += 1 + t.len();
        }
        Command::Auth(m) => {
            let name = m.name();
            arg(name.as_bytes(), false, false);
            len += 1 + name.len();
        }
        Command::List(Some(n)) | Command::Uidl(Some(n)) | Command::Retr(n) | Command::Dele(n) => {
            len += 1 + digits(*n)
        }
        Command::Top { msg, lines } => len += 2 + digits(*msg) + digits(*lines),
        _ => {}
    }
    if let Command::Auth(m) = cmd {
        if !m
            .name()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            out.push(Broken::MechanismName);
        }
    }
    match cmd {
        Command::List(Some(0))
        | Command::Uidl(Some(0))
        | Command::Retr(0)
        | Command::Dele(0)
        | Command::Top { msg: 0, .. } => out.push(Broken::Zero),
        _ => {}
    }
    if len > 255 {
        out.push(Broken::TooLong(len));
    }
    // APOP too: its digest of a predictable challenge is crackable offline.
    let cleartext = match cmd {
        Command::Pass(_) | Command::Apop { .. } => true,
        Command::Auth(m) => m.exposes_secret(),
        _ => false,
    };
    if cleartext && !tls && !plaintext_ok {
        out.push(Broken::Cleartext);
    }
    if kind == CommandKind::Apop && !has_ts {
        out.push(Broken::NoTimestamp);
    }
    if kind == CommandKind::Stls && tls {
        out.push(Broken::TlsActive);
    }
    out
}

fn matches_rule(e: &EnqueueError, kind: CommandKind, broken: &[Broken]) -> bool {
    let has = |b: Broken| broken.contains(&b);
    match e {
        EnqueueError::WrongPhase { command, .. } => *command == kind && has(Broken::Phase),
        EnqueueError::ForbiddenByte { command } => *command == kind && has(Broken::Forbidden),
        EnqueueError::InvalidArgument { command, reason } => {
            *command == kind
                && match *reason {
                    "empty" => has(Broken::Empty),
                    "contains a space" => has(Broken::Space),
                    _ => has(Broken::MechanismName),
                }
        }
        EnqueueError::LineTooLong { command, len } => {
            *command == kind && has(Broken::TooLong(*len))
        }
        EnqueueError::MessageNumberZero => has(Broken::Zero),
        EnqueueError::CleartextCredentials { command } => {
            *command == kind && has(Broken::Cleartext)
        }
        EnqueueError::ApopUnavailable => has(Broken::NoTimestamp),
        EnqueueError::TlsAlreadyActive => has(Broken::TlsActive),
        _ => false,
    }
}

/// RFC 5802 §5.1 saslname: `=` and `,` escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The AUTH initial response the fields describe, written out from each mechanism's RFC.
fn expected_initial(f: &[&[u8]]) -> Option<Vec<u8>> {
    let arg = |i: usize| f.get(i).copied();
    let s = |i: usize| text(arg(i).unwrap_or_default());
    let raw = |i: usize| arg(i).unwrap_or_default().to_vec();
    let mut out = Vec::new();
    match s(1).as_str() {
        // RFC 4616: [authzid] NUL authcid NUL passwd.
        "PLAIN" => {
            out.extend_from_slice(arg(2).map(text).unwrap_or_default().as_bytes());
            out.push(0);
            out.extend_from_slice(s(3).as_bytes());
            out.push(0);
            out.extend_from_slice(&raw(4));
        }
        // Both wait for a challenge.
        "LOGIN" | "CRAM-MD5" => return None,
        "XOAUTH2" => {
            out.extend_from_slice(format!("user={}\x01auth=Bearer ", s(2)).as_bytes());
            out.extend_from_slice(&raw(3));
            out.extend_from_slice(b"\x01\x01");
        }
        // RFC 7628 §3.1: gs2 header with the authzid, then host, port and auth key/values.
        "OAUTHBEARER" => {
            let user = s(2);
            let mut head = String::from("n,");
            if !user.is_empty() {
                head += &format!("a={}", saslname(&user));
            }
            head.push_str(",\x01");
            if let Some(host) = arg(3) {
                head += &format!("host={}\x01", text(host));
            }
            if let Some(port) = arg(4) {
                head += &format!("port={}\x01", number(Some(port)) as u16);
            }
            head.push_str("auth=Bearer ");
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(&raw(5));
            out.extend_from_slice(b"\x01\x01");
        }
        // RFC 5802 §7: client-first-message, no channel binding, no authzid.
        "SCRAM-SHA-256" => {
            let first = format!(
                "n,,n={},r={}",
                saslname(&s(2)),
                nonce(arg(4).unwrap_or_default())
            );
            out.extend_from_slice(first.as_bytes());
        }
        _ => return arg(2).map(<[u8]>::to_vec),
    }
    Some(out)
}

/// The exact command line the fields describe, CRLF included; the AUTH initial response only
/// where it fits in 255 octets (RFC 5034 §4).
fn expected_line(f: &[&[u8]], timestamp: &[u8]) -> Vec<u8> {
    let arg = |i: usize| f.get(i).copied();
    let s = |i: usize| text(arg(i).unwrap_or_default());
    let keyword = text(f[0]).to_ascii_uppercase();
    let mut line = keyword.clone().into_bytes();
    let mut push = |bytes: &[u8]| {
        line.push(b' ');
        line.extend_from_slice(bytes);
    };
    match keyword.as_str() {
        "USER" | "RPOP" => push(s(1).as_bytes()),
        "PASS" => push(arg(1).unwrap_or_default()),
        "APOP" => {
            push(s(1).as_bytes());
            let digest = Md5::new()
                .chain_update(timestamp)
                .chain_update(arg(2).unwrap_or_default())
                .finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            push(hex.as_bytes());
        }
        "LIST" | "UIDL" => {
            if let Some(a) = arg(1) {
                push(number(Some(a)).to_string().as_bytes());
            }
        }
        "RETR" | "DELE" => push(number(arg(1)).to_string().as_bytes()),
        "TOP" => {
            push(number(arg(1)).to_string().as_bytes());
            push(number(arg(2)).to_string().as_bytes());
        }
        "LANG" => {
            if let Some(a) = arg(1) {
                push(text(a).as_bytes());
            }
        }
        "AUTH" => {
            push(s(1).as_bytes());
            if let Some(initial) = expected_initial(f) {
                let encoded = if initial.is_empty() {
                    "=".to_owned()
                } else {
                    BASE64.encode(&initial)
                };
                if line.len() + 1 + encoded.len() + 2 <= 255 {
                    line.push(b' ');
                    line.extend_from_slice(encoded.as_bytes());
                }
            }
        }
        _ => {}
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// The sent trace line the client should show: the command line, its secrets redacted.
fn expected_trace(cmd: &Command, line: &[u8]) -> String {
    match cmd {
        Command::Pass(_) => "PASS <redacted>".into(),
        Command::Apop { user, .. } => format!("APOP {user} <redacted>"),
        Command::Auth(m) => format!("AUTH {} <initial response redacted>", m.name()),
        _ => String::from_utf8_lossy(line.strip_suffix(b"\r\n").unwrap_or(line)).into_owned(),
    }
}

fn drain(client: &mut Client, sent: &mut Vec<String>) {
    while let Some(event) = client
        .poll_event()
        .expect("the scripted server follows the protocol")
    {
        if let Event::Trace(Trace::Sent(s)) = event {
            sent.push(s.clone());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let tls = flags & 1 != 0;
    let plaintext_ok = flags & 2 != 0;
    let has_ts = flags & 4 != 0;
    let logged_in = flags & 8 != 0;
    let exposes = flags & 16 != 0;
    let f = fields(rest);
    let Some(command) = build(&f, exposes) else {
        return;
    };
    let kind = command.kind();

    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = plaintext_ok;
    config.trace = true;
    let mut client = Client::new(config);
    if tls {
        client
            .handle_tls_established()
            .expect("implicit TLS before the greeting");
    }
    let timestamp: &[u8] = b"<1.2@x>";
    client.handle_input(if has_ts {
        b"+OK hi <1.2@x>\r\n"
    } else {
        b"+OK hi\r\n"
    });
    let mut sent = Vec::new();
    drain(&mut client, &mut sent);
    let mut wire = Vec::new();
    if logged_in {
        let login = Custom {
            name: "X".into(),
            initial: None,
            exposes: false,
        };
        client
            .enqueue(Command::Auth(Box::new(login)))
            .expect("AUTH X is valid");
        client.poll_transmit(&mut wire);
        assert_eq!(wire, b"AUTH X\r\n");
        client.handle_input(b"+OK\r\n");
        drain(&mut client, &mut sent);
        assert_eq!(client.phase(), Phase::Transaction);
        wire.clear();
        sent.clear();
    }

    let broken = broken_rules(&command, logged_in, tls, plaintext_ok, has_ts);
    let validate = build(&f, exposes).map(|c| c.validate());
    // What AUTH's initial response should be, written out by hand.
    let initial = if kind == CommandKind::Auth {
        expected_initial(&f)
    } else {
        None
    };
    match client.enqueue(command) {
        Err(e) => {
            assert!(
                matches_rule(&e, kind, &broken),
                "{kind} refused with {e:?}, but the broken rules are {broken:?}"
            );
            if !broken.contains(&Broken::Phase) {
                if let Some(Err(v)) = &validate {
                    assert_eq!(*v, e, "enqueue and validate disagree");
                }
            }
            assert_eq!(client.poll_transmit(&mut wire), 0);
            assert!(client.error().is_none());
        }
        Ok(id) => {
            assert!(
                broken.is_empty(),
                "{kind} accepted although it breaks {broken:?}"
            );
            assert_eq!(validate, Some(Ok(())));
            client.poll_transmit(&mut wire);
            drain(&mut client, &mut sent);
            assert!(
                wire.ends_with(b"\r\n"),
                "not CRLF-terminated: {:?}",
                String::from_utf8_lossy(&wire)
            );
            let body = &wire[..wire.len() - 2];
            assert!(
                !body.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
                "CR, LF or NUL inside the line"
            );
            assert!(wire.len() <= 255, "{} octets", wire.len());
            let command = build(&f, exposes).expect("built before");
            let expected = expected_line(&f, timestamp);
            assert_eq!(
                String::from_utf8_lossy(&wire),
                String::from_utf8_lossy(&expected)
            );
            assert_eq!(wire, expected);
            // AUTH: was the initial response deferred (it did not fit, RFC 5034 §4)?
            let on_line = kind != CommandKind::Auth
                || wire.len() > 7 + text(f.get(1).copied().unwrap_or_default()).len();
            assert_eq!(sent, vec![expected_trace(&command, &wire)], "trace");
            if let (Some(i), false) = (&initial, on_line) {
                // The deferred initial response answers the first, empty, challenge.
                let mut more = Vec::new();
                client.handle_input(b"+ \r\n");
                drain(&mut client, &mut sent);
                client.poll_transmit(&mut more);
                let mut want = if i.is_empty() {
                    Vec::new()
                } else {
                    BASE64.encode(i).into_bytes()
                };
                want.extend_from_slice(b"\r\n");
                assert_eq!(more, want, "deferred initial response");
            }
            assert_eq!(client.in_flight(), 1);
            let _ = id;
        }
    }
});
