//! One test for each limit in `Config`, and for each tolerated quirk (each also played split
//! at every offset).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Ev, play, rfc_config, texts};
use pop3_proto::{Client, Command, Config, Phase, ProtocolError, Quirk};

fn logged_in(config: Config) -> Client {
    let mut config = config;
    config.allow_plaintext_auth = true;
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.enqueue(Command::pass("p")).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.poll_transmit(&mut out);
    assert_eq!(c.phase(), Phase::Transaction);
    c
}

fn run(c: &mut Client, command: Command, input: &[u8]) -> Result<Vec<String>, ProtocolError> {
    c.enqueue(command).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    c.handle_input(input);
    let mut events = Vec::new();
    while let Some(e) = c.poll_event()? {
        events.push(format!("{e:?}"));
    }
    Ok(events)
}

#[test]
fn status_line_limit() {
    let mut c = logged_in(rfc_config());
    let long = format!("+OK {}\r\n", "x".repeat(600));
    assert_eq!(
        run(&mut c, Command::Noop, long.as_bytes()),
        Err(ProtocolError::LineTooLong {
            what: "status",
            limit: 512
        })
    );
    // Also when the line end has not arrived yet: the buffer does not grow past the limit.
    let mut c = logged_in(rfc_config());
    assert_eq!(
        run(&mut c, Command::Noop, &[b'+'; 512]),
        Err(ProtocolError::LineTooLong {
            what: "status",
            limit: 512
        })
    );
    let mut c = logged_in(rfc_config());
    assert_eq!(run(&mut c, Command::Noop, &[b'+'; 511]), Ok(vec![]));
}

#[test]
fn listing_line_limit() {
    let mut config = rfc_config();
    config.max_listing_line = 64;
    let mut c = logged_in(config);
    let input = format!("+OK\r\n1 {}\r\n.\r\n", "9".repeat(70));
    assert_eq!(
        run(&mut c, Command::List(None), input.as_bytes()),
        Err(ProtocolError::LineTooLong {
            what: "listing",
            limit: 64
        })
    );
}

#[test]
fn capability_count_limit() {
    let mut config = rfc_config();
    config.max_capabilities = 10;
    let mut c = logged_in(config);
    let mut input = b"+OK\r\n".to_vec();
    for i in 0..11 {
        input.extend_from_slice(format!("X-CAP-{i}\r\n").as_bytes());
    }
    input.extend_from_slice(b".\r\n");
    assert_eq!(
        run(&mut c, Command::Capa, &input),
        Err(ProtocolError::TooManyCapabilities { limit: 10 })
    );
}

#[test]
fn uid_length_limit() {
    let mut c = logged_in(rfc_config());
    let ok = format!("+OK\r\n1 {}\r\n.\r\n", "a".repeat(70));
    assert!(run(&mut c, Command::Uidl(None), ok.as_bytes()).is_ok());
    let too_long = format!("+OK\r\n1 {}\r\n.\r\n", "a".repeat(71));
    assert!(matches!(
        run(&mut c, Command::Uidl(None), too_long.as_bytes()),
        Err(ProtocolError::Malformed {
            what: "UIDL entry",
            ..
        })
    ));
    let mut c = logged_in(rfc_config());
    assert!(matches!(
        run(
            &mut c,
            Command::Uidl(None),
            b"+OK\r\n1 caf\xc3\xa9\r\n.\r\n"
        ),
        Err(ProtocolError::Malformed { .. })
    ));
}

#[test]
fn message_number_limit() {
    let mut config = rfc_config();
    config.max_message_number = 999;
    let mut c = logged_in(config.clone());
    assert!(run(&mut c, Command::List(None), b"+OK\r\n999 10\r\n.\r\n").is_ok());
    let mut c = logged_in(config);
    assert!(matches!(
        run(&mut c, Command::List(None), b"+OK\r\n1000 10\r\n.\r\n"),
        Err(ProtocolError::Malformed { .. })
    ));
    let mut c = logged_in(rfc_config());
    assert!(matches!(
        run(
            &mut c,
            Command::List(None),
            b"+OK\r\n4294967296 10\r\n.\r\n"
        ),
        Err(ProtocolError::Malformed { .. })
    ));
}

#[test]
fn wrong_message_number_in_single_listing() {
    let mut c = logged_in(rfc_config());
    assert_eq!(
        run(&mut c, Command::List(Some(2)), b"+OK 3 200\r\n"),
        Err(ProtocolError::WrongMessageNumber {
            expected: 2,
            got: 3
        })
    );
}

#[test]
fn body_lines_have_no_limit_by_default_but_one_can_be_set() {
    let line = "x".repeat(1 << 20);
    let input = format!("+OK\r\n{line}\r\n.\r\n");
    let mut c = logged_in(rfc_config());
    let mut got = 0;
    c.enqueue(Command::retr(1)).unwrap();
    c.poll_transmit(&mut Vec::new());
    c.handle_input(input.as_bytes());
    while let Some(e) = c.poll_event().unwrap() {
        if let pop3_proto::Event::Body { chunk, .. } = e {
            got += chunk.len();
        }
    }
    assert_eq!(got, line.len() + 2);
    let mut config = rfc_config();
    config.max_body_line = Some(1000);
    let mut c = logged_in(config);
    assert_eq!(
        run(&mut c, Command::retr(1), input.as_bytes()),
        Err(ProtocolError::BodyLineTooLong { limit: 1000 })
    );
}

#[test]
fn memory_is_bounded_by_one_input_whatever_the_message_size() {
    let mut c = logged_in(rfc_config());
    c.enqueue(Command::retr(1)).unwrap();
    c.poll_transmit(&mut Vec::new());
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    let line = b"0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(65536).collect();
    let mut total = 0usize;
    for _ in 0..160 {
        // 10 MiB, in 64 KiB reads that split lines anywhere
        c.handle_input(&chunk);
        assert!(c.buffered() <= 65536 + 3, "buffered {}", c.buffered());
        while let Some(e) = c.poll_event().unwrap() {
            if let pop3_proto::Event::Body { chunk, .. } = e {
                total += chunk.len();
            }
        }
        assert!(c.buffered() <= 3);
    }
    c.handle_input(b"\r\n.\r\n");
    while c.poll_event().unwrap().is_some() {}
    assert_eq!(total + 2, 160 * 65536 + 2);
    assert!(c.is_idle());
}

#[test]
fn pipeline_window_bounds_commands_in_flight() {
    let mut config = rfc_config();
    config.pipeline_window = 3;
    let mut c = logged_in(config);
    run(&mut c, Command::Capa, b"+OK\r\nPIPELINING\r\n.\r\n").unwrap();
    for n in 1..=10 {
        c.enqueue(Command::dele(n)).unwrap();
    }
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 1\r\nDELE 2\r\nDELE 3\r\n");
    assert_eq!(c.in_flight(), 3);
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    out.clear();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 4\r\n");
}

#[test]
fn no_pipelining_without_the_capability() {
    let mut c = logged_in(rfc_config());
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::dele(2)).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 1\r\n");
}

#[test]
fn eof_mid_body_and_after_quit() {
    let mut c = logged_in(rfc_config());
    run(&mut c, Command::retr(1), b"+OK\r\npartial").unwrap();
    c.handle_eof();
    let mut err = None;
    loop {
        match c.poll_event() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        err,
        Some(ProtocolError::UnexpectedEof {
            command: pop3_proto::CommandKind::Retr
        })
    );
    let mut c = logged_in(rfc_config());
    run(&mut c, Command::Quit, b"+OK bye\r\n").unwrap();
    c.handle_eof();
    assert_eq!(c.poll_event(), Ok(None));
    assert_eq!(c.phase(), Phase::Closed);
    let mut c = logged_in(rfc_config());
    c.handle_eof();
    assert_eq!(c.poll_event(), Err(ProtocolError::ConnectionClosed));
}

#[test]
fn bare_lf_server_is_tolerated_and_reported() {
    let t = r"
        S: +OK hi\n\
        C: USER u
        S: +OK\n\
        C: PASS p
        S: +OK\n\
        C: RETR 1
        S: +OK\nline one\n..dot\n.\n\
        C: QUIT
        S: +OK\n\
    ";
    let played = play(rfc_config(), t, || {
        vec![
            Command::user("u"),
            Command::pass("p"),
            Command::retr(1),
            Command::Quit,
        ]
    });
    assert!(
        played
            .events
            .contains(&Ev::Body(2, b"line one\n.dot\n".to_vec()))
    );
    assert!(
        texts(&played.events)
            .iter()
            .filter(|e| e.contains("Quirk(BareLineFeed)"))
            .count()
            == 1
    );
    assert_eq!(played.client.phase(), Phase::Closed);
}

#[test]
fn crlf_server_cannot_end_a_body_with_dot_lf() {
    // A message line "." LF inside a CRLF session is data (the smuggling case), not the end;
    // and the "." follows a bare LF, not CRLF, so it is not a stuffing dot either: it stays.
    let t = r"
        S: +OK hi
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: RETR 1
        S: +OK
        S: a\n.\n+OK fake\r\n.
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::user("u"), Command::pass("p"), Command::retr(1)]
    });
    let bodies: Vec<&Ev> = played
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Body(..)))
        .collect();
    assert_eq!(
        bodies,
        [&Ev::Body(2, b"a\n.\n+OK fake\r\n".to_vec())],
        "{:?}",
        played.events
    );
}

#[test]
fn bare_lf_can_be_refused() {
    let mut config = rfc_config();
    config.quirks.bare_lf = false;
    let mut c = Client::new(config);
    c.handle_input(b"+OK hi\n");
    assert_eq!(c.poll_event(), Err(ProtocolError::BareLineFeed));
}

#[test]
fn dot_cr_terminator_quirk() {
    let t = r"
        S: +OK hi
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: RETR 1
        S: +OK
        S: body
        S: .\r\
        C: NOOP
        S: \n+OK
    ";
    let mut config = rfc_config();
    config.quirks.dot_cr_terminator = true;
    let played = play(config, t, || {
        vec![
            Command::user("u"),
            Command::pass("p"),
            Command::retr(1),
            Command::Noop,
        ]
    });
    assert!(played.events.contains(&Ev::Body(2, b"body\r\n".to_vec())));
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("Quirk(DotCrTerminator)"))
    );
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("Ok { id: CommandId(3), command: Noop"))
    );
}

#[test]
fn missing_capa_is_tolerated_and_reported() {
    let t = r"
        S: +OK hi
        C: CAPA
        S: -ERR unknown command
        C: USER u
        S: +OK
    ";
    let mut config = rfc_config();
    config.auto_capa = true;
    let played = play(config, t, || vec![Command::user("u")]);
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("Quirk(MissingCapa)"))
    );
    assert_eq!(
        played.client.capabilities(),
        Some(&pop3_proto::Capabilities::default())
    );
    assert_eq!(played.client.quirks_seen(), &[Quirk::MissingCapa]);
}

#[test]
fn office365_bracketed_greeting_is_text() {
    let t = "S: +OK The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADEAMwBDAEEAMAAwADEANQAuAG4AYQBtAHAAcgBkADEAMwAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]\n";
    let played = play(rfc_config(), t, Vec::new);
    let e = texts(&played.events);
    assert!(e.iter().any(|e| e.contains("Greeting { ok: true, code: None, text: \"The Microsoft Exchange POP3 service is ready. [TQBOA")), "{e:?}");
    assert!(e.iter().any(|e| e.contains("Quirk(BracketedGreetingText)")));
}

#[test]
fn unknown_codes_only_after_resp_codes() {
    let mut c = logged_in(rfc_config());
    let e = run(&mut c, Command::Noop, b"-ERR [X-THING] text\r\n").unwrap();
    assert!(
        e.iter()
            .any(|e| e.contains("code: None, text: \"[X-THING] text\"")),
        "{e:?}"
    );
    run(&mut c, Command::Capa, b"+OK\r\nRESP-CODES\r\n.\r\n").unwrap();
    let e = run(&mut c, Command::Noop, b"-ERR [X-THING] text\r\n").unwrap();
    assert!(
        e.iter()
            .any(|e| e.contains("code: Some(Other(\"X-THING\")), text: \"text\"")),
        "{e:?}"
    );
}

#[test]
fn empty_body_and_empty_listing() {
    let mut c = logged_in(rfc_config());
    let e = run(&mut c, Command::retr(1), b"+OK\r\n.\r\n").unwrap();
    assert!(
        e.iter()
            .any(|e| e.contains("BodyEnd { id: CommandId(1), octets: 0 }")),
        "{e:?}"
    );
    let e = run(&mut c, Command::List(None), b"+OK 0 messages\r\n.\r\n").unwrap();
    assert!(
        e.iter()
            .any(|e| e.contains("Ok { id: CommandId(2), command: List"))
    );
}

#[test]
fn utf8_and_lang() {
    let t = r"
        S: +OK hi
        C: UTF8
        S: +OK I am UTF-8 now
        C: LANG
        S: +OK Language listing follows
        S: en English
        S: fr Français
        S: .
        C: LANG fr
        S: +OK Bienvenue
    ";
    let played = play(rfc_config(), t, || {
        vec![
            Command::Utf8,
            Command::Lang(None),
            Command::Lang(Some("fr".into())),
        ]
    });
    assert!(played.client.is_utf8());
    let e = texts(&played.events);
    assert!(
        e.iter().any(|e| e
            .contains("LangEntry { id: CommandId(1), tag: \"fr\", description: \"Français\" }")),
        "{e:?}"
    );
}

#[test]
fn capabilities_that_appear_after_login_are_used_and_reported() {
    // Gmail: PIPELINING, TOP and UIDL only after login.
    let t = r"
        S: +OK Gpop ready
        C: CAPA
        S: +OK Capability list follows
        S: USER
        S: RESP-CODES
        S: EXPIRE 0
        S: LOGIN-DELAY 300
        S: SASL PLAIN XOAUTH2 OAUTHBEARER
        S: .
        C: USER u
        S: +OK send PASS
        C: PASS p
        S: +OK Welcome.
        C: CAPA
        S: +OK Capability list follows
        S: USER
        S: RESP-CODES
        S: EXPIRE 0
        S: LOGIN-DELAY 300
        S: TOP
        S: UIDL
        S: X-GOOGLE-RICO
        S: PIPELINING
        S: .
        C: RETR 1
        C: RETR 2
        S: +OK
        S: a
        S: .
        S: +OK
        S: b
        S: .
    ";
    let mut config = rfc_config();
    config.auto_capa = true;
    let played = play(config, t, || {
        vec![
            Command::user("u"),
            Command::pass("p"),
            Command::retr(1),
            Command::retr(2),
        ]
    });
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("Quirk(CapabilitiesAfterLogin)"))
    );
    assert!(played.client.capabilities().unwrap().pipelining);
}

#[test]
fn xoauth2_error_challenge_is_answered_with_an_empty_line() {
    use pop3_proto::sasl::XOAuth2;
    // user=u^Aauth=Bearer t^A^A
    let t = r"
        S: +OK hi
        C: AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHQBAQ==
        S: + eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=
        C: 
        S: -ERR [AUTH] Invalid credentials
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::auth(XOAuth2::new(
            "u".into(),
            pop3_proto::Secret::from("t"),
        ))]
    });
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("Err { id: CommandId(0), command: Auth, code: Some(Auth)"))
    );
    assert_eq!(played.client.phase(), Phase::Authorization);
}

#[test]
fn oauthbearer_error_challenge_is_answered_with_ctrl_a() {
    use pop3_proto::sasl::OAuthBearer;
    let t = r"
        S: +OK hi
        C: AUTH OAUTHBEARER bixhPXUsAWF1dGg9QmVhcmVyIHQBAQ==
        S: + eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=
        C: AQ==
        S: -ERR [AUTH] Invalid credentials
    ";
    let played = play(rfc_config(), t, || {
        vec![Command::auth(OAuthBearer::new(
            "u".into(),
            None,
            None,
            pop3_proto::Secret::from("t"),
        ))]
    });
    assert!(
        texts(&played.events)
            .iter()
            .any(|e| e.contains("code: Some(Auth)"))
    );
}

#[test]
fn pipelining_can_be_forced_or_refused() {
    let mut config = rfc_config();
    config.pipelining = pop3_proto::Pipelining::Always;
    let mut c = logged_in(config);
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::dele(2)).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(
        out, b"DELE 1\r\nDELE 2\r\n",
        "pipelined without the capability"
    );
    let mut config = rfc_config();
    config.pipelining = pop3_proto::Pipelining::Never;
    let mut c = logged_in(config);
    run(&mut c, Command::Capa, b"+OK\r\nPIPELINING\r\n.\r\n").unwrap();
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::dele(2)).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 1\r\n", "one at a time despite the capability");
}

#[test]
fn pipeline_bytes_bound_commands_in_flight() {
    let mut config = rfc_config();
    config.max_pipeline_bytes = 20;
    let mut c = logged_in(config);
    run(&mut c, Command::Capa, b"+OK\r\nPIPELINING\r\n.\r\n").unwrap();
    for n in 1..=10 {
        c.enqueue(Command::dele(n)).unwrap();
    }
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    // "DELE n\r\n" is 8 bytes. Config documents a hard bound on the bytes in flight: two are
    // 16 <= 20, a third would make 24.
    assert_eq!(out, b"DELE 1\r\nDELE 2\r\n");
    // Each reply frees room for exactly one more.
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    out.clear();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 3\r\n");
}

#[test]
fn a_command_longer_than_the_pipeline_byte_bound_still_goes_alone() {
    let mut config = rfc_config();
    config.max_pipeline_bytes = 4;
    let mut c = logged_in(config);
    run(&mut c, Command::Capa, b"+OK\r\nPIPELINING\r\n.\r\n").unwrap();
    c.enqueue(Command::dele(1)).unwrap();
    c.enqueue(Command::dele(2)).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 1\r\n");
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    out.clear();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"DELE 2\r\n");
}

#[test]
fn the_capa_after_login_goes_with_the_next_commands_never_behind_pass() {
    // Issue 10 item 11: nothing follows PASS before its reply; the CAPA asked after login
    // then rides in one write with the RETRs queued next (the list before login said
    // PIPELINING).
    let t = r"
        S: +OK hi
        C: CAPA
        S: +OK
        S: PIPELINING
        S: USER
        S: .
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: CAPA
        C: RETR 1
        C: RETR 2
        S: +OK
        S: PIPELINING
        S: .
        S: +OK
        S: a
        S: .
        S: +OK
        S: b
        S: .
    ";
    let mut config = rfc_config();
    config.auto_capa = true;
    let played = play(config, t, || {
        vec![
            Command::user("u"),
            Command::pass("p"),
            Command::retr(1),
            Command::retr(2),
        ]
    });
    assert!(played.client.capabilities().unwrap().pipelining);
    assert_eq!(played.client.phase(), Phase::Transaction);
    // A refused PASS: no CAPA follows (the list before login still holds).
    let t = r"
        S: +OK hi
        C: CAPA
        S: +OK
        S: PIPELINING
        S: USER
        S: .
        C: USER u
        S: +OK
        C: PASS p
        S: -ERR [AUTH] no
    ";
    let mut config = rfc_config();
    config.auto_capa = true;
    let played = play(config, t, || vec![Command::user("u"), Command::pass("p")]);
    assert_eq!(played.client.phase(), Phase::Authorization);
    assert!(played.client.capabilities().unwrap().user);
    assert!(played.client.is_idle());
}

#[test]
fn pipelining_goes_on_across_login_while_the_new_capa_is_asked() {
    // After AUTH (nothing may follow it on the wire) the CAPA goes after the +OK; the list
    // before login said PIPELINING, so the commands queued behind the CAPA go with it; the
    // new list (no PIPELINING) then rules: one at a time.
    let t = r"
        S: +OK hi
        C: CAPA
        S: +OK
        S: PIPELINING
        S: SASL PLAIN
        S: .
        C: AUTH PLAIN AHUAcA==
        S: +OK
        C: CAPA
        C: RETR 1
        C: RETR 2
        S: +OK
        S: TOP
        S: .
        S: +OK
        S: a
        S: .
        S: +OK
        S: b
        S: .
        C: RETR 3
        S: +OK
        S: c
        S: .
    ";
    let mut config = rfc_config();
    config.auto_capa = true;
    let played = play(config, t, || {
        vec![
            Command::auth(pop3_proto::sasl::Plain::new(
                None,
                "u".into(),
                pop3_proto::Secret::from("p"),
            )),
            Command::retr(1),
            Command::retr(2),
            Command::retr(3),
        ]
    });
    assert!(
        !played.client.capabilities().unwrap().pipelining,
        "the new list rules"
    );
}

/// The byte bound is exact for every command with arguments: with room for exactly two lines
/// both go, with one byte less only the first (so the client's idea of each line's length is
/// the length it really sends).
#[test]
fn the_pipeline_byte_bound_is_exact_for_every_command_shape() {
    let commands: [fn() -> Command; 7] = [
        || Command::retr(4_000_000_000),
        || Command::dele(12),
        || Command::top(123_456, 7_890),
        || Command::List(Some(99_999)),
        || Command::Uidl(Some(1)),
        || Command::Lang(Some("pt-BR".into())),
        || Command::Noop,
    ];
    for make in commands {
        let line = |c: Command| {
            let mut config = rfc_config();
            config.pipelining = pop3_proto::Pipelining::Always;
            let mut c1 = logged_in(config);
            c1.enqueue(c).unwrap();
            let mut out = Vec::new();
            c1.poll_transmit(&mut out);
            out.len()
        };
        let one = line(make());
        for (bound, expected) in [(one + one, 2), (one + one - 1, 1)] {
            let mut config = rfc_config();
            config.pipelining = pop3_proto::Pipelining::Always;
            config.max_pipeline_bytes = bound;
            let mut c = logged_in(config);
            c.enqueue(make()).unwrap();
            c.enqueue(make()).unwrap();
            c.enqueue(make()).unwrap();
            let mut out = Vec::new();
            c.poll_transmit(&mut out);
            assert_eq!(
                out.len(),
                one * expected,
                "{:?} with a bound of {bound}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}

/// `max_status_line` counts the line end: a 512-octet status line passes, 513 octets are
/// refused, also when the whole line is already buffered.
#[test]
fn the_status_line_limit_is_exact() {
    for (len, ok) in [(512, true), (513, false)] {
        let mut c = Client::new(rfc_config());
        let mut greeting = b"+OK ".to_vec();
        greeting.resize(len - 2, b'x');
        greeting.extend_from_slice(b"\r\n");
        c.handle_input(&greeting);
        let got = c.poll_event().map(|e| e.is_some());
        if ok {
            assert_eq!(got, Ok(true), "{len}");
        } else {
            assert_eq!(
                got,
                Err(ProtocolError::LineTooLong {
                    what: "status",
                    limit: 512
                }),
                "{len}"
            );
        }
    }
}
