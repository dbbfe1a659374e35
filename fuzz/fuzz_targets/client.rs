//! The whole `Client`: a fixed command script per scenario (USER/PASS and the TRANSACTION
//! commands; STLS; AUTH PLAIN; AUTH SCRAM-SHA-256; APOP with UTF8 and LANG), queued as the
//! phases allow, while arbitrary server bytes arrive in arbitrary chunks under a config variant
//! (bare LF, `.` CR, automatic CAPA, small limits, pipelining window, EOF).
//!
//! Oracles: no panic; after every `handle_input` and drain the client's buffered input is within
//! the configured line limits (plus the last chunk once it has failed); every event of a command
//! belongs to a command that was queued (or to an automatic CAPA), comes before its terminal
//! event and is of the command's kind (bodies for RETR/TOP, entries for LIST/UIDL/LANG, ...),
//! terminal events of the queued commands come in queue order, BodyEnd counts the body octets
//! delivered; a refused `enqueue` names a reason the state explains; a `ProtocolError` is
//! sticky, and then nothing more is sent.
//!
//! Input: a 16-byte header (see `Knobs`), then the server bytes.
#![no_main]

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{Header, chunks, lines};
use pop3_proto::sasl::{Plain, ScramSha256};
use pop3_proto::{
    Client, Command, CommandKind, Config, EnqueueError, Event, Phase, Pipelining, ProtocolError,
};

/// `POP3_FUZZ_DEBUG=1` prints every event and the outcome (to see how deep an input goes).
static DEBUG: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("POP3_FUZZ_DEBUG").is_some());

fn cat<const N: usize>(parts: [Vec<Command>; N]) -> Vec<Command> {
    parts.into_iter().flatten().collect()
}

fn script(scenario: u8) -> Vec<Command> {
    let user_pass = || vec![Command::user("mrose"), Command::pass("secret")];
    let transaction = || {
        vec![
            Command::Stat,
            Command::List(None),
            Command::Uidl(None),
            Command::retr(1),
            Command::top(1, 0),
            Command::Capa,
            Command::List(Some(1)),
            Command::Uidl(Some(2)),
            Command::Lang(None),
            Command::Noop,
            Command::dele(1),
            Command::Rset,
            Command::Quit,
        ]
    };
    match scenario % 5 {
        0 => cat([user_pass(), transaction()]),
        1 => cat([
            vec![Command::Stls],
            user_pass(),
            vec![Command::Stat, Command::retr(1), Command::Quit],
        ]),
        2 => vec![
            Command::auth(Plain::new(None, "test".into(), "test".into())),
            Command::Stat,
            Command::List(None),
            Command::retr(1),
            Command::Quit,
        ],
        3 => vec![
            Command::auth(ScramSha256::new(
                "user".into(),
                "pencil".into(),
                "rOprNGfwEbeRWgbNEkqO".into(),
            )),
            Command::Uidl(None),
            Command::top(1, 0),
            Command::Quit,
        ],
        _ => vec![
            Command::Utf8,
            Command::Lang(Some("*".into())),
            Command::apop("mrose", "tanstaaf"),
            Command::Stat,
            Command::retr(1),
            Command::dele(1),
            Command::Quit,
        ],
    }
}

/// What the test knows about a queued command.
#[derive(Debug)]
struct Known {
    kind: CommandKind,
    /// `LIST n` / `UIDL n`: the number asked for.
    number: Option<u32>,
    done: bool,
    body: u64,
    body_ended: bool,
    data: bool,
}

fn number_of(c: &Command) -> Option<u32> {
    match c {
        Command::List(n) | Command::Uidl(n) => *n,
        _ => None,
    }
}

/// The bytes the client holds unconsumed.
fn buffered(client: &Client) -> usize {
    client.buffered()
}

/// Whether an arbitrary server line would make SCRAM spend many PBKDF2 iterations.
fn slow_scram(payload: &[u8]) -> bool {
    lines(payload).any(|l| {
        let Some(b64) = l.strip_prefix(b"+ ") else {
            return false;
        };
        let Ok(c) = BASE64.decode(b64.trim_ascii()) else {
            return false;
        };
        c.windows(2).enumerate().any(|(k, w)| {
            w == b"i=" && {
                let d: Vec<u8> = c[k + 2..]
                    .iter()
                    .copied()
                    .take_while(u8::is_ascii_digit)
                    .collect();
                d.len() > 4
                    || std::str::from_utf8(&d)
                        .ok()
                        .and_then(|d| d.parse::<u32>().ok())
                        .unwrap_or(0)
                        > 4096
            }
        })
    })
}

struct Run {
    client: Client,
    script: std::vec::IntoIter<Command>,
    next: Option<Command>,
    known: HashMap<u64, Known>,
    last_terminal: Option<u64>,
    auto_done: Vec<u64>,
    greeted: bool,
    id_event_seen: bool,
    tls_due: bool,
    quit_done: bool,
    /// Send and queue after every event (as an event loop may), not only between reads.
    interleave: bool,
    wire: Vec<u8>,
    config: Config,
}

impl Run {
    /// Queues script commands while the phase allows.
    fn enqueue_more(&mut self) {
        loop {
            let Some(command) = self.next.take().or_else(|| self.script.next()) else {
                return;
            };
            let kind = command.kind();
            let number = number_of(&command);
            let phase = self.client.phase();
            match self.client.enqueue(command) {
                Ok(id) => {
                    let k = Known {
                        kind,
                        number,
                        done: false,
                        body: 0,
                        body_ended: false,
                        data: false,
                    };
                    assert!(
                        self.known.insert(id.get(), k).is_none(),
                        "an id was given twice"
                    );
                }
                Err(EnqueueError::WrongPhase { command, phase: p }) => {
                    assert_eq!(command, kind);
                    assert_eq!(p, phase);
                    // Not yet: keep it for after the next replies. Rebuild it (enqueue took it).
                    self.next = Some(rebuild(kind, number));
                    return;
                }
                Err(EnqueueError::Closed) => {
                    assert!(
                        self.client.error().is_some()
                            || matches!(phase, Phase::Closed | Phase::Update)
                            || kind == CommandKind::Quit
                            || self.quit_queued()
                    );
                    return;
                }
                Err(EnqueueError::ApopUnavailable) if phase == Phase::Greeting => {
                    // The timestamp comes with the greeting: try again after it.
                    self.next = Some(Command::apop("mrose", "tanstaaf"));
                    return;
                }
                Err(EnqueueError::ApopUnavailable) => assert!(!self.client.apop_available()),
                Err(EnqueueError::TlsAlreadyActive) => assert!(self.client.is_tls()),
                Err(e) => panic!("{kind} refused: {e:?}"),
            }
        }
    }

    fn quit_queued(&self) -> bool {
        self.known.values().any(|k| k.kind == CommandKind::Quit)
    }

    /// Checks one event against what was queued.
    fn check(&mut self, event: &Event<'_>) {
        if let Event::Greeting { ok, .. } = event {
            assert!(!self.greeted, "two greetings");
            assert!(!self.id_event_seen, "the greeting after a reply");
            self.greeted = true;
            let _ = ok;
            return;
        }
        let Some(id) = event.id() else { return };
        self.id_event_seen = true;
        assert!(self.greeted, "a reply before the greeting");
        let id = id.get();
        let Some(k) = self.known.get_mut(&id) else {
            // Not queued by the test: only an automatic CAPA.
            assert!(
                self.config.auto_capa,
                "event for unknown command #{id}: {event:?}"
            );
            assert!(
                !self.auto_done.contains(&id),
                "event after the terminal event of auto CAPA #{id}"
            );
            match event {
                Event::Ok { command, .. } | Event::Err { command, .. } => {
                    assert_eq!(*command, CommandKind::Capa);
                    self.auto_done.push(id);
                }
                Event::Capabilities { capabilities, .. } => {
                    assert!(capabilities.sasl.len() <= 64);
                    assert!(
                        capabilities.lines.len() <= self.config.max_capabilities,
                        "more CAPA lines than max_capabilities"
                    );
                }
                other => panic!("{other:?} for an automatic CAPA"),
            }
            return;
        };
        assert!(
            !k.done,
            "event after the terminal event of #{id}: {event:?}"
        );
        let kind = k.kind;
        match event {
            Event::Ok { command, .. } | Event::Err { command, .. } => {
                assert_eq!(*command, kind);
                if matches!(kind, CommandKind::Retr | CommandKind::Top) {
                    // A body ends before its +OK; a -ERR has none.
                    assert_eq!(
                        k.body_ended,
                        matches!(event, Event::Ok { .. }),
                        "#{id} {event:?}"
                    );
                }
                if matches!(event, Event::Err { .. }) {
                    assert!(!k.data, "data events before -ERR for #{id}");
                }
                if matches!(kind, CommandKind::Stat) && matches!(event, Event::Ok { .. }) {
                    assert!(k.data, "STAT +OK without its drop listing");
                }
            }
            Event::StartTls { .. } => assert_eq!(kind, CommandKind::Stls),
            Event::LoggedIn { .. } => {
                assert!(matches!(
                    kind,
                    CommandKind::Pass | CommandKind::Apop | CommandKind::Auth | CommandKind::Rpop
                ));
                assert_eq!(self.client.phase(), Phase::Transaction);
            }
            Event::Stat { .. } => {
                assert_eq!(kind, CommandKind::Stat);
                assert!(!k.data, "two STAT listings");
            }
            Event::ListEntry { msg, .. } => {
                assert_eq!(kind, CommandKind::List);
                assert!(*msg >= 1 && *msg <= self.config.max_message_number);
                if let Some(n) = k.number {
                    assert_eq!(*msg, n);
                    assert!(!k.data);
                }
            }
            Event::UidlEntry { msg, uid, .. } => {
                assert_eq!(kind, CommandKind::Uidl);
                assert!(*msg >= 1 && *msg <= self.config.max_message_number);
                assert!(!uid.is_empty() && uid.len() <= self.config.max_uid_len);
                assert!(uid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                if let Some(n) = k.number {
                    assert_eq!(*msg, n);
                }
            }
            Event::LangEntry { tag, .. } => {
                assert_eq!(kind, CommandKind::Lang);
                assert!(!tag.is_empty());
            }
            Event::Capabilities { capabilities, .. } => {
                assert_eq!(kind, CommandKind::Capa);
                assert!(capabilities.sasl.len() <= 64);
                assert!(
                    capabilities.lines.len() <= self.config.max_capabilities,
                    "more CAPA lines than max_capabilities"
                );
            }
            Event::Body { chunk, .. } => {
                assert!(matches!(kind, CommandKind::Retr | CommandKind::Top));
                assert!(!k.body_ended);
                assert!(!chunk.is_empty(), "an empty body chunk");
                if let Some(limit) = self.config.max_body_line {
                    // A chunk never holds more than one line's worth beyond the limit.
                    let longest = chunk
                        .split(|&b| b == b'\n')
                        .map(<[u8]>::len)
                        .max()
                        .unwrap_or(0);
                    assert!(longest <= limit, "a body line over the limit was delivered");
                }
                k.body += chunk.len() as u64;
            }
            Event::BodyEnd { octets, .. } => {
                assert!(matches!(kind, CommandKind::Retr | CommandKind::Top));
                assert!(!k.body_ended);
                assert_eq!(*octets, k.body, "BodyEnd counts what was delivered");
                k.body_ended = true;
            }
            other => panic!("unexpected event {other:?}"),
        }
        if !event.is_terminal() {
            k.data = true;
        }
        if event.is_terminal() {
            self.terminal(id, kind);
            if matches!(event, Event::StartTls { .. }) {
                self.tls_due = true;
            }
        }
    }

    /// The terminal event of a queued command: in queue order, once.
    fn terminal(&mut self, id: u64, kind: CommandKind) {
        if let Some(k) = self.known.get_mut(&id) {
            k.done = true;
        }
        if let Some(last) = self.last_terminal {
            assert!(id > last, "#{id} completed after #{last}");
        }
        self.last_terminal = Some(id);
        if kind == CommandKind::Quit {
            self.quit_done = true;
        }
    }

    /// An event this target does not model (a newer variant): only the id rules apply.
    fn check_other(&mut self, id: Option<u64>, terminal: bool, what: &str) {
        let Some(id) = id else { return };
        self.id_event_seen = true;
        match self.known.get(&id) {
            Some(k) => {
                assert!(!k.done, "{what} after the terminal event of #{id}");
                let kind = k.kind;
                if terminal {
                    self.terminal(id, kind);
                }
            }
            None => {
                assert!(self.config.auto_capa, "{what} for unknown command #{id}");
                assert!(
                    !self.auto_done.contains(&id),
                    "{what} after the terminal event of auto CAPA #{id}"
                );
                if terminal {
                    self.auto_done.push(id);
                }
            }
        }
    }

    /// Drains the events; returns the fatal error, if one came.
    fn drain(&mut self) -> Option<ProtocolError> {
        loop {
            // The event borrows the client: copy it out, then check it with the run borrowed.
            let owned = match self.client.poll_event() {
                Ok(Some(e)) => {
                    if *DEBUG {
                        eprintln!("event: {e:?}");
                    }
                    Owned::from(&e)
                }
                Ok(None) => return None,
                Err(e) => return Some(e),
            };
            owned.check(self);
            if self.interleave {
                if let Some(e) = self.tls() {
                    return Some(e);
                }
                self.client.poll_transmit(&mut self.wire);
                self.enqueue_more();
            }
        }
    }

    /// After StartTls: the handshake, then `handle_tls_established`. Bytes that were already
    /// buffered (received in plaintext after the `+OK`) must never be taken as TLS data.
    fn tls(&mut self) -> Option<ProtocolError> {
        if !self.tls_due {
            return None;
        }
        self.tls_due = false;
        let plaintext = buffered(&self.client);
        let r = self.client.handle_tls_established();
        // Closed: the injection was caught as the bytes arrived (a fatal error already), and
        // the late handshake is refused.
        if plaintext > 0 || r == Err(EnqueueError::Closed) {
            match self.client.poll_event() {
                Err(ProtocolError::StartTlsInjection) => {
                    return Some(ProtocolError::StartTlsInjection);
                }
                other => panic!(
                    "{plaintext} plaintext bytes received before TLS were accepted after it \
                     (handle_tls_established: {r:?}, then {other:?})"
                ),
            }
        }
        r.expect("TLS was due after StartTls");
        None
    }
}

/// Events own their data here so that the checks can borrow the run mutably.
enum Owned {
    Event(Event<'static>),
    Uid {
        id: pop3_proto::CommandId,
        msg: u32,
        uid: String,
    },
    Body {
        id: pop3_proto::CommandId,
        chunk: Vec<u8>,
    },
    Caps {
        id: pop3_proto::CommandId,
        caps: pop3_proto::Capabilities,
    },
    Greeting {
        ok: bool,
        code: Option<pop3_proto::response::ResponseCode>,
        text: String,
        apop: bool,
    },
    Reply {
        ok: bool,
        id: pop3_proto::CommandId,
        command: CommandKind,
        code: Option<pop3_proto::response::ResponseCode>,
        text: String,
    },
    Lang {
        id: pop3_proto::CommandId,
        tag: String,
        description: String,
    },
    Trace(pop3_proto::Trace),
    Other {
        id: Option<u64>,
        terminal: bool,
        what: String,
    },
}

impl Owned {
    fn from(e: &Event<'_>) -> Self {
        match e {
            Event::UidlEntry { id, msg, uid } => Self::Uid {
                id: *id,
                msg: *msg,
                uid: (*uid).to_owned(),
            },
            Event::Body { id, chunk } => Self::Body {
                id: *id,
                chunk: chunk.to_vec(),
            },
            Event::Capabilities { id, capabilities } => Self::Caps {
                id: *id,
                caps: (*capabilities).clone(),
            },
            Event::Greeting {
                ok,
                code,
                text,
                apop,
            } => Self::Greeting {
                ok: *ok,
                code: code.cloned(),
                text: text.to_string(),
                apop: *apop,
            },
            Event::Ok {
                id,
                command,
                code,
                text,
            } => Self::Reply {
                ok: true,
                id: *id,
                command: *command,
                code: code.cloned(),
                text: text.to_string(),
            },
            Event::Err {
                id,
                command,
                code,
                text,
            } => Self::Reply {
                ok: false,
                id: *id,
                command: *command,
                code: code.cloned(),
                text: text.to_string(),
            },
            Event::Stat { id, count, size } => Self::Event(Event::Stat {
                id: *id,
                count: *count,
                size: *size,
            }),
            Event::ListEntry { id, msg, size } => Self::Event(Event::ListEntry {
                id: *id,
                msg: *msg,
                size: *size,
            }),
            Event::LangEntry {
                id,
                tag,
                description,
            } => Self::Lang {
                id: *id,
                tag: tag.to_string(),
                description: description.to_string(),
            },
            Event::BodyEnd { id, octets } => Self::Event(Event::BodyEnd {
                id: *id,
                octets: *octets,
            }),
            Event::StartTls { id } => Self::Event(Event::StartTls { id: *id }),
            Event::LoggedIn { id } => Self::Event(Event::LoggedIn { id: *id }),
            Event::Quirk(q) => Self::Event(Event::Quirk(*q)),
            Event::Trace(t) => Self::Trace((*t).clone()),
            other => Self::Other {
                id: other.id().map(pop3_proto::CommandId::get),
                terminal: other.is_terminal(),
                what: format!("{other:?}"),
            },
        }
    }

    fn check(self, run: &mut Run) {
        match self {
            Self::Event(e) => run.check(&e),
            Self::Uid { id, msg, uid } => run.check(&Event::UidlEntry { id, msg, uid: &uid }),
            Self::Body { id, chunk } => run.check(&Event::Body { id, chunk: &chunk }),
            Self::Caps { id, caps } => run.check(&Event::Capabilities {
                id,
                capabilities: &caps,
            }),
            Self::Greeting {
                ok,
                code,
                text,
                apop,
            } => run.check(&Event::Greeting {
                ok,
                code: code.as_ref(),
                text: &text,
                apop,
            }),
            Self::Reply {
                ok: true,
                id,
                command,
                code,
                text,
            } => run.check(&Event::Ok {
                id,
                command,
                code: code.as_ref(),
                text: &text,
            }),
            Self::Reply {
                ok: false,
                id,
                command,
                code,
                text,
            } => run.check(&Event::Err {
                id,
                command,
                code: code.as_ref(),
                text: &text,
            }),
            Self::Lang {
                id,
                tag,
                description,
            } => run.check(&Event::LangEntry {
                id,
                tag: &tag,
                description: &description,
            }),
            Self::Trace(line) => run.check(&Event::Trace(&line)),
            Self::Other { id, terminal, what } => run.check_other(id, terminal, &what),
        }
    }
}

fn rebuild(kind: CommandKind, number: Option<u32>) -> Command {
    match kind {
        CommandKind::Stat => Command::Stat,
        CommandKind::List => Command::List(number),
        CommandKind::Uidl => Command::Uidl(number),
        CommandKind::Retr => Command::retr(1),
        CommandKind::Top => Command::top(1, 0),
        CommandKind::Capa => Command::Capa,
        CommandKind::Lang => Command::Lang(None),
        CommandKind::Noop => Command::Noop,
        CommandKind::Dele => Command::dele(1),
        CommandKind::Rset => Command::Rset,
        CommandKind::Quit => Command::Quit,
        CommandKind::Pass => Command::pass("secret"),
        CommandKind::User => Command::user("mrose"),
        CommandKind::Utf8 => Command::Utf8,
        other => panic!("{other} is never refused for its phase in these scripts"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut h, payload) = Header::split(data, 16);
    let flags = h.u8();
    let scenario = h.u8() % 5;
    let chunk_mode = h.u8();
    let window = h.u8();
    let limits = [h.u8(), h.u8(), h.u8(), h.u8(), h.u8(), h.u8(), h.u8()];
    let seed = h.u32();
    let extra = h.u8();
    if scenario == 3 && slow_scram(payload) {
        return;
    }

    let mut config = Config::default();
    config.quirks.bare_lf = flags & 1 == 0;
    config.quirks.dot_cr_terminator = flags & 2 != 0;
    config.auto_capa = flags & 4 != 0;
    config.trace = flags & 8 != 0;
    config.quirks.missing_capa = flags & 32 == 0;
    config.allow_plaintext_auth = true;
    config.pipeline_window = if window == 0 {
        64
    } else {
        usize::from(window % 8) + 1
    };
    config.pipelining = match (extra >> 2) & 3 {
        1 => Pipelining::Always,
        2 => Pipelining::Never,
        _ => Pipelining::Auto,
    };
    if flags & 16 != 0 {
        config.max_status_line = 8 + usize::from(limits[0]);
        config.max_listing_line = 4 + usize::from(limits[1]);
        config.max_continuation_line = 8 + 4 * usize::from(limits[2]);
        config.max_capabilities = usize::from(limits[3] % 16);
        config.max_uid_len = usize::from(limits[4] % 80);
        config.max_message_number = u32::from(limits[5]);
    }
    if flags & 128 != 0 {
        config.max_body_line = Some(usize::from(limits[6]));
    }
    let eof = flags & 64 != 0;
    let line_bound = config
        .max_status_line
        .max(config.max_listing_line)
        .max(config.max_continuation_line)
        .max(3);

    let mut run = Run {
        client: Client::new(config.clone()),
        script: script(scenario).into_iter(),
        next: None,
        known: HashMap::new(),
        last_terminal: None,
        auto_done: Vec::new(),
        greeted: false,
        id_event_seen: false,
        tls_due: false,
        quit_done: false,
        interleave: extra & 2 == 0,
        wire: Vec::new(),
        config,
    };
    if extra & 1 != 0 && scenario != 1 {
        // Implicit TLS (RFC 8314).
        run.client
            .handle_tls_established()
            .expect("TLS before anything was received");
    }
    run.enqueue_more();
    let mut failed: Option<ProtocolError> = None;
    let mut largest = 0;
    let pieces = chunks(payload, chunk_mode, seed);
    for piece in pieces {
        run.client.poll_transmit(&mut run.wire);
        run.client.handle_input(piece);
        largest = largest.max(piece.len());
        let error = run.drain().or_else(|| run.tls());
        let held = buffered(&run.client);
        if let Some(e) = error {
            assert!(
                held <= line_bound + largest,
                "buffered {held} after a failure"
            );
            failed = Some(e);
            break;
        }
        assert!(
            held <= line_bound,
            "buffered {held} over the line limit {line_bound}"
        );
        run.enqueue_more();
    }
    if failed.is_none() && eof {
        run.client.handle_eof();
        failed = run.drain();
    }
    if failed.is_none() {
        run.client.poll_transmit(&mut run.wire);
    }
    let wire = std::mem::take(&mut run.wire);
    if *DEBUG {
        eprintln!(
            "end: {:?}, error {failed:?}, sent {:?}",
            run.client,
            String::from_utf8_lossy(&wire)
        );
    }
    if let Some(e) = failed {
        // Sticky: the same error, nothing sent, nothing queued, input ignored.
        assert_eq!(run.client.poll_event().err(), Some(e.clone()));
        assert_eq!(run.client.error(), Some(&e));
        run.client.handle_input(b"+OK\r\n");
        assert_eq!(run.client.poll_event().err(), Some(e.clone()));
        let mut more = Vec::new();
        assert_eq!(run.client.poll_transmit(&mut more), 0);
        assert!(more.is_empty());
        assert_eq!(
            run.client.enqueue(Command::Noop).err(),
            Some(EnqueueError::Closed)
        );
    }
    if run.quit_done {
        assert_eq!(run.client.phase(), Phase::Closed);
    }
    // What was sent is command lines and SASL responses: CRLF-terminated, no NUL, no bare CR/LF.
    if !wire.is_empty() {
        assert!(wire.ends_with(b"\r\n"));
        for line in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let body = line.strip_suffix(b"\r").expect("every line ends in CRLF");
            assert!(!body.iter().any(|&b| matches!(b, b'\r' | 0)));
            assert!(
                line.len() + 1 <= 255
                    || body
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
            );
        }
    }
});
