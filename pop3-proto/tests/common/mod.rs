//! A transcript driver: plays `C:`/`S:` transcripts against the client, checks byte-exact what
//! it sends, and returns its events in an owned, comparable form.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use pop3_proto::{Client, Command, Config, Event, ProtocolError};

/// An owned event, with adjacent body chunks of one command merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Body(u64, Vec<u8>),
    Uid(u64, u32, String),
    Caps(u64, String),
    Other(String),
    Error(ProtocolError),
}

/// How the server's bytes are cut before they reach the client.
#[derive(Debug, Clone, Copy)]
pub enum Split {
    Whole,
    ByteByByte,
    /// Cut once, at this offset of all server bytes taken together.
    At(usize),
}

enum Block {
    Client(Vec<u8>),
    Server(Vec<u8>),
    Tls,
    Eof,
}

fn parse(transcript: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for raw in transcript.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "TLS" {
            blocks.push(Block::Tls);
            continue;
        }
        if line == "EOF" {
            blocks.push(Block::Eof);
            continue;
        }
        let (who, rest) = line.split_at(2);
        let text = rest.strip_prefix(' ').unwrap_or(rest);
        let bytes = unescape(text);
        match (who, blocks.last_mut()) {
            ("C:", Some(Block::Client(b))) => b.extend_from_slice(&bytes),
            ("C:", _) => blocks.push(Block::Client(bytes)),
            ("S:", Some(Block::Server(b))) => b.extend_from_slice(&bytes),
            ("S:", _) => blocks.push(Block::Server(bytes)),
            _ => panic!("bad transcript line {raw:?}"),
        }
    }
    blocks
}

/// `\r`, `\n`, `\xNN`, `\\`; a line without a trailing `\` escape gets CRLF appended; a line
/// ending in `\` gets nothing appended.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut crlf = true;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                None => {
                    crlf = false;
                    i += 1;
                    continue;
                }
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b'\\') => out.push(b'\\'),
                Some(b'x') => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                Some(c) => panic!("bad escape \\{}", *c as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if crlf {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn owned(event: Event<'_>) -> Ev {
    match event {
        Event::Body { id, chunk } => Ev::Body(id.get(), chunk.to_vec()),
        Event::UidlEntry { id, msg, uid } => Ev::Uid(id.get(), msg, uid.to_owned()),
        Event::Capabilities { id, capabilities } => Ev::Caps(id.get(), format!("{capabilities:?}")),
        other => Ev::Other(format!("{other:?}")),
    }
}

fn push(events: &mut Vec<Ev>, ev: Ev) {
    if let (Some(Ev::Body(a, prev)), Ev::Body(b, chunk)) = (events.last_mut(), &ev) {
        if *a == *b {
            prev.extend_from_slice(chunk);
            return;
        }
    }
    events.push(ev);
}

fn drain(client: &mut Client, events: &mut Vec<Ev>) -> bool {
    loop {
        match client.poll_event() {
            Ok(Some(event)) => push(events, owned(event)),
            Ok(None) => return true,
            Err(e) => {
                events.push(Ev::Error(e));
                return false;
            }
        }
    }
}

/// The result of one play.
#[derive(Debug)]
pub struct Played {
    pub events: Vec<Ev>,
    pub client: Client,
}

/// Plays `transcript` with `commands` (queued one at a time, whenever the client has sent
/// everything it had and the next `C:` bytes are not all sent yet), cutting the server's bytes
/// as `split` says. Panics if what the client sends differs from the `C:` lines.
pub fn play_split(
    config: Config,
    transcript: &str,
    commands: Vec<Command>,
    split: Split,
) -> Played {
    let blocks = parse(transcript);
    let mut client = Client::new(config);
    let mut commands = commands.into_iter();
    let mut events = Vec::new();
    let mut offset = 0usize; // server bytes fed so far, for Split::At
    let mut alive = true;
    for block in blocks {
        match block {
            Block::Client(expected) => {
                let mut sent = Vec::new();
                client.poll_transmit(&mut sent);
                while sent.len() < expected.len() && alive {
                    let Some(command) = commands.next() else {
                        break;
                    };
                    let kind = command.kind();
                    if let Err(e) = client.enqueue(command) {
                        panic!("enqueue {kind} failed: {e}");
                    }
                    client.poll_transmit(&mut sent);
                    alive = drain(&mut client, &mut events);
                }
                assert_eq!(
                    String::from_utf8_lossy(&sent),
                    String::from_utf8_lossy(&expected),
                    "the client sent something else"
                );
            }
            Block::Server(bytes) => {
                let pieces: Vec<&[u8]> = match split {
                    Split::Whole => vec![&bytes[..]],
                    Split::ByteByByte => bytes.chunks(1).collect(),
                    Split::At(k) if k > offset && k < offset + bytes.len() => {
                        let (a, b) = bytes.split_at(k - offset);
                        vec![a, b]
                    }
                    Split::At(_) => vec![&bytes[..]],
                };
                offset += bytes.len();
                for piece in pieces {
                    if !alive {
                        break;
                    }
                    client.handle_input(piece);
                    alive = drain(&mut client, &mut events);
                }
            }
            Block::Tls => {
                client.handle_tls_established().unwrap();
                alive = drain(&mut client, &mut events);
            }
            Block::Eof => {
                client.handle_eof();
                alive = drain(&mut client, &mut events);
            }
        }
    }
    if alive {
        let mut rest = Vec::new();
        client.poll_transmit(&mut rest);
        assert!(
            rest.is_empty(),
            "the client sent more than the transcript shows: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    Played { events, client }
}

fn server_len(transcript: &str) -> usize {
    parse(transcript)
        .iter()
        .map(|b| match b {
            Block::Server(s) => s.len(),
            _ => 0,
        })
        .sum()
}

/// Plays the transcript whole, byte by byte and split at every offset; all plays must give the
/// same events. Returns them. `commands` is called once per play.
pub fn play(config: Config, transcript: &str, commands: impl Fn() -> Vec<Command>) -> Played {
    let whole = play_split(config.clone(), transcript, commands(), Split::Whole);
    let bytewise = play_split(config.clone(), transcript, commands(), Split::ByteByByte);
    assert_eq!(
        whole.events, bytewise.events,
        "byte-by-byte feeding changed the events"
    );
    for k in 1..server_len(transcript) {
        let split = play_split(config.clone(), transcript, commands(), Split::At(k));
        assert_eq!(
            whole.events, split.events,
            "splitting at offset {k} changed the events"
        );
    }
    whole
}

/// The config of the RFC examples: no automatic CAPA (the examples show none), plaintext
/// authentication allowed (the examples run without TLS).
pub fn rfc_config() -> Config {
    let mut config = Config::default();
    config.auto_capa = false;
    config.allow_plaintext_auth = true;
    config
}

/// The `Other` events' debug strings, for `contains` checks.
pub fn texts(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Ev::Other(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}
