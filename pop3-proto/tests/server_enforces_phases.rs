//! `Config::server_enforces_phases` (issue 14, for `pop3.poplib`): commands of either phase may
//! be queued, the server judging; everything that protects the connection still holds. And
//! `Command::Extension`, the raw validated line a legacy API's `_shortcmd`/`_longcmd` needs.
//! Transcripts byte-exact, each played whole, byte by byte and split at every offset.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Ev, play, rfc_config, texts};
use pop3_proto::{Client, Command, CommandKind, Config, EnqueueError, Event, Phase, Pipelining};

fn relaxed() -> Config {
    let mut config = rfc_config();
    config.server_enforces_phases = true;
    config
}

fn greeted(config: Config) -> Client {
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    while c.poll_event().unwrap().is_some() {}
    c
}

fn sent(c: &mut Client) -> String {
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    String::from_utf8(out).unwrap()
}

fn drain(c: &mut Client) -> Vec<String> {
    let mut events = Vec::new();
    while let Some(e) = c.poll_event().unwrap() {
        events.push(format!("{e:?}"));
    }
    events
}

/// Off by default: a command of the other phase is refused, before and after login.
#[test]
fn off_by_default() {
    assert!(!Config::default().server_enforces_phases);
    let c = &mut greeted(rfc_config());
    assert_eq!(
        c.enqueue(Command::Stat),
        Err(EnqueueError::WrongPhase {
            command: CommandKind::Stat,
            phase: Phase::Authorization
        })
    );
    c.enqueue(Command::pass("p")).unwrap();
    sent(c);
    c.handle_input(b"+OK in\r\n");
    drain(c);
    assert_eq!(c.phase(), Phase::Transaction);
    assert_eq!(
        c.enqueue(Command::user("u")),
        Err(EnqueueError::WrongPhase {
            command: CommandKind::User,
            phase: Phase::Transaction
        })
    );
}

/// CPython's test server session: STAT, LIST and RETR before login (the server answers them),
/// USER after PASS, a second PASS, an extension command each way, QUIT into UPDATE.
#[test]
fn the_server_judges_the_phase() {
    let played = play(
        relaxed(),
        r"
        S: +OK dummy pop3 server ready.
        C: STAT
        S: -ERR not logged in
        C: LIST 1
        S: +OK 1 1
        C: RETR 1
        S: +OK 3 octets
        S: ..a
        S: .
        C: USER guido
        S: +OK password required
        C: PASS python
        S: +OK 10 messages
        C: USER invalid
        S: -ERR already logged in
        C: PASS again
        S: +OK whatever
        C: echo +hello world
        S: +OK hello world
        C: XLIST 1
        S: +OK list follows
        S: line one
        S: ..dot
        S: .
        C: DELE 1
        S: +OK deleted
        C: QUIT
        S: +OK bye
        ",
        || {
            vec![
                Command::Stat,
                Command::List(Some(1)),
                Command::retr(1),
                Command::user("guido"),
                Command::pass("python"),
                Command::user("invalid"),
                Command::pass("again"),
                Command::extension("echo +hello world", false),
                Command::extension("XLIST 1", true),
                Command::dele(1),
                Command::Quit,
            ]
        },
    );
    let texts = texts(&played.events);
    let logged_in: Vec<_> = texts.iter().filter(|t| t.starts_with("LoggedIn")).collect();
    assert_eq!(logged_in, ["LoggedIn { id: CommandId(4) }"], "{texts:#?}");
    assert!(texts.contains(
        &r#"Err { id: CommandId(0), command: Stat, code: None, text: "not logged in" }"#.into()
    ));
    assert!(texts.contains(&"ListEntry { id: CommandId(1), msg: 1, size: 1 }".into()));
    assert!(played.events.contains(&Ev::Body(2, b".a\r\n".to_vec())));
    assert!(texts.contains(
        &r#"Err { id: CommandId(5), command: User, code: None, text: "already logged in" }"#.into()
    ));
    assert!(texts.contains(
        &r#"Ok { id: CommandId(6), command: Pass, code: None, text: "whatever" }"#.into()
    ));
    assert!(texts.contains(
        &r#"Ok { id: CommandId(7), command: Extension, code: None, text: "hello world" }"#.into()
    ));
    assert!(
        played
            .events
            .contains(&Ev::Body(8, b"line one\r\n.dot\r\n".to_vec()))
    );
    assert!(texts.contains(&"BodyEnd { id: CommandId(8), octets: 16 }".into()));
    assert!(texts.contains(
        &r#"Ok { id: CommandId(8), command: Extension, code: None, text: "list follows" }"#.into()
    ));
    assert_eq!(played.client.phase(), Phase::Closed);
}

/// The phase follows the replies: a refused PASS leaves AUTHORIZATION, and the STAT queued
/// behind it is sent only after that reply (nothing is pipelined behind a login), even with
/// pipelining forced on.
#[test]
fn nothing_is_pipelined_behind_a_login_or_an_extension() {
    let mut config = relaxed();
    config.pipelining = Pipelining::Always;
    let c = &mut greeted(config);
    c.enqueue(Command::pass("p")).unwrap();
    c.enqueue(Command::Stat).unwrap();
    assert_eq!(sent(c), "PASS p\r\n");
    c.handle_input(b"-ERR no\r\n");
    drain(c);
    assert_eq!(c.phase(), Phase::Authorization);
    assert_eq!(sent(c), "STAT\r\n");
    c.handle_input(b"-ERR log in first\r\n");
    drain(c);
    // An extension holds the pipe too; ordinary commands are pipelined (forced on).
    c.enqueue(Command::extension("XSTUFF", false)).unwrap();
    c.enqueue(Command::Noop).unwrap();
    c.enqueue(Command::Noop).unwrap();
    assert_eq!(sent(c), "XSTUFF\r\n");
    c.handle_input(b"+OK\r\n");
    drain(c);
    assert_eq!(sent(c), "NOOP\r\nNOOP\r\n");
    // QUIT follows commands in flight (it is no barrier), and nothing follows it.
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(sent(c), "QUIT\r\n");
    c.handle_input(b"-ERR\r\n-ERR\r\n");
    drain(c);
    assert_eq!(sent(c), "");
}

/// What protects the connection is unchanged: STLS only before login and never on TLS, the
/// bytes after its +OK fatal, arguments and lines checked, nothing after QUIT.
#[test]
fn the_connection_rules_still_hold() {
    let c = &mut greeted(relaxed());
    assert_eq!(
        c.enqueue(Command::user("a\r\nDELE 1")),
        Err(EnqueueError::ForbiddenByte {
            command: CommandKind::User
        })
    );
    c.enqueue(Command::pass("p")).unwrap();
    sent(c);
    c.handle_input(b"+OK\r\n");
    drain(c);
    assert_eq!(
        c.enqueue(Command::Stls),
        Err(EnqueueError::WrongPhase {
            command: CommandKind::Stls,
            phase: Phase::Transaction
        })
    );
    c.enqueue(Command::Quit).unwrap();
    assert_eq!(c.enqueue(Command::Noop), Err(EnqueueError::Closed));
    assert_eq!(sent(c), "QUIT\r\n");
    assert_eq!(c.phase(), Phase::Update);

    // STLS before login: the +OK pauses the client, and a byte before the handshake is fatal.
    let c = &mut greeted(relaxed());
    c.enqueue(Command::Stls).unwrap();
    c.enqueue(Command::Stat).unwrap();
    assert_eq!(sent(c), "STLS\r\n");
    c.handle_input(b"+OK go\r\n-ERR injected\r\n");
    assert!(drain_until_error(c));
    assert_eq!(c.handle_tls_established(), Err(EnqueueError::Closed));

    // Plaintext credentials stay the caller's choice.
    let mut config = Config::default();
    config.server_enforces_phases = true;
    config.auto_capa = false;
    let c = &mut greeted(config);
    assert_eq!(
        c.enqueue(Command::pass("p")),
        Err(EnqueueError::CleartextCredentials {
            command: CommandKind::Pass
        })
    );
}

fn drain_until_error(c: &mut Client) -> bool {
    loop {
        match c.poll_event() {
            Ok(Some(Event::StartTls { .. })) => {}
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(e) => return e == pop3_proto::ProtocolError::StartTlsInjection,
        }
    }
}

/// `Command::Extension`: the line as given, checked like every command line, and never a
/// keyword whose reply changes the session.
#[test]
fn extension_lines_are_checked() {
    let c = &mut greeted(rfc_config());
    for line in [
        "XTND XMIT\r\nDELE 1",
        "X\0",
        "X\n",
        "",
        "USER\talice",
        "caf\u{e9}",
    ] {
        assert!(
            c.enqueue(Command::extension(line, false)).is_err(),
            "{line:?}"
        );
    }
    assert!(c.enqueue(Command::extension(" STAT", false)).is_err());
    for keyword in [
        "USER a",
        "pass b",
        "Apop a b",
        "RPOP a",
        "AUTH PLAIN",
        "stls",
        "QUIT",
        "UTF8",
    ] {
        assert!(
            matches!(
                c.enqueue(Command::extension(keyword, false)),
                Err(EnqueueError::InvalidArgument {
                    command: CommandKind::Extension,
                    ..
                })
            ),
            "{keyword:?}"
        );
    }
    let long = format!("X {}", "a".repeat(252));
    assert_eq!(
        c.enqueue(Command::extension(long, false)),
        Err(EnqueueError::LineTooLong {
            command: CommandKind::Extension,
            len: 256
        })
    );
    c.enqueue(Command::extension(format!("X {}", "a".repeat(251)), false))
        .unwrap();
    // Allowed in any phase, also without the switch (the server judges a vendor command).
    c.enqueue(Command::extension("XSENDER 1", false)).unwrap();
    assert_eq!(sent(c).len(), 255);
}

/// With the switch on, a trace still redacts: an extension's arguments are left out.
#[test]
fn extension_arguments_stay_out_of_traces() {
    let mut config = relaxed();
    config.trace = true;
    let c = &mut greeted(config);
    c.enqueue(Command::extension("XAUTH secret", false))
        .unwrap();
    assert_eq!(sent(c), "XAUTH secret\r\n");
    let events = drain(c);
    assert!(
        events.contains(&r#"Trace(Sent("XAUTH <arguments redacted>"))"#.to_string()),
        "{events:?}"
    );
}

/// `Quirks::loose_status_indicator` (for `pop3.poplib`, whose callers' servers were written
/// against the standard module): off by default, a `+ Hola` greeting or a `-err` reply is
/// malformed; on, the first octet answers, reported once as a quirk. During AUTH a `+ `
/// line stays a continuation.
#[test]
fn loose_status_indicator_when_configured() {
    let mut c = Client::new(rfc_config());
    assert!(!Config::default().quirks.loose_status_indicator);
    c.handle_input(b"+ Hola mundo\r\n");
    assert!(matches!(
        c.poll_event(),
        Err(pop3_proto::ProtocolError::Malformed {
            what: "greeting",
            ..
        })
    ));

    let mut config = relaxed();
    config.quirks.loose_status_indicator = true;
    let played = play(
        config,
        r"
        S: + Hola mundo
        C: echo -err
        S: -err
        C: NOOP
        S: +OK
        C: echo +
        S: +
        ",
        || {
            vec![
                Command::extension("echo -err", false),
                Command::Noop,
                Command::extension("echo +", false),
            ]
        },
    );
    let texts = texts(&played.events);
    assert_eq!(
        texts,
        [
            r#"Quirk(LooseStatusIndicator)"#,
            r#"Greeting { ok: true, code: None, text: "Hola mundo", apop: false }"#,
            r#"Err { id: CommandId(0), command: Extension, code: None, text: "" }"#,
            r#"Ok { id: CommandId(1), command: Noop, code: None, text: "" }"#,
            r#"Ok { id: CommandId(2), command: Extension, code: None, text: "" }"#,
        ],
    );
}

/// With `loose_status_indicator` on, a `+ ` line during AUTH is still a SASL continuation.
#[test]
fn loose_status_indicator_keeps_sasl_continuations() {
    let mut config = relaxed();
    config.quirks.loose_status_indicator = true;
    let played = play(
        config,
        r"
        S: +OK hi
        C: AUTH LOGIN
        S: + VXNlcm5hbWU6
        C: dQ==
        S: + UGFzc3dvcmQ6
        C: cA==
        S: +OK in
        ",
        || {
            vec![Command::auth(pop3_proto::sasl::Login::new(
                "u".into(),
                "p".into(),
            ))]
        },
    );
    let texts = texts(&played.events);
    assert!(
        texts.contains(&"LoggedIn { id: CommandId(0) }".to_string()),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("LooseStatusIndicator")),
        "{texts:?}"
    );
}
