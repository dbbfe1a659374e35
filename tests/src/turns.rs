//! A POP3 server that counts round trips ("turns") instead of measuring time.
//!
//! A turn is each time the server, having written its replies, waits and then receives new
//! client bytes: the number of times the client had to wait for the server. To make that
//! count exact whatever the scheduler does, the server answers nothing until the client has
//! been quiet for a settle time ([`TurnServer::DEFAULT_SETTLE`]): everything a client sends
//! without waiting for a reply (a pipeline window written in several pieces, the refills of a
//! sliding window, commands written in separate calls) then lands in one turn, and a client
//! that waits for a reply before sending more always starts a new turn, because no reply
//! comes before the quiet. A longer settle only makes a session slower, never miscounts it.
//!
//! The server accepts one connection, offers `USER` and `PIPELINING` in CAPA (no APOP
//! timestamp, no STLS, no SASL), accepts [`TurnServer::USER`] / [`TurnServer::PASSWORD`], and
//! answers CAPA, USER, PASS, STAT, LIST, UIDL, RETR, NOOP and QUIT; it writes the replies to
//! one turn in a single write.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::KitError;
use pop3_demo_server::multiline_body;

/// How long the server waits for a client to connect, and for the first byte of a turn.
const PATIENCE: Duration = Duration::from_secs(30);

/// A one-connection POP3 server that records the commands of each turn.
#[derive(Debug)]
pub struct TurnServer {
    addr: SocketAddr,
    thread: Option<JoinHandle<Result<Turns, KitError>>>,
}

/// The commands a client sent, turn by turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turns {
    turns: Vec<Vec<String>>,
}

impl TurnServer {
    /// The user name the server accepts.
    pub const USER: &'static str = "alice";
    /// The password the server accepts.
    pub const PASSWORD: &'static str = "secret-a";
    /// The quiet that ends a turn: far longer than a client's pause between two writes it makes
    /// without waiting for a reply, even on a loaded machine.
    pub const DEFAULT_SETTLE: Duration = Duration::from_millis(150);

    /// Binds 127.0.0.1 on a random port and serves `messages` to one connection, with
    /// [`DEFAULT_SETTLE`](Self::DEFAULT_SETTLE).
    pub fn start(messages: Vec<Vec<u8>>) -> Result<TurnServer, KitError> {
        Self::start_with_settle(messages, Self::DEFAULT_SETTLE)
    }

    /// [`start`](Self::start) with another settle time.
    pub fn start_with_settle(
        messages: Vec<Vec<u8>>,
        settle: Duration,
    ) -> Result<TurnServer, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let thread = std::thread::Builder::new()
            .name("pop3-tests turn server".into())
            .spawn(move || serve(&listener, &messages, settle))?;
        Ok(TurnServer {
            addr,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits for the session to end (QUIT or the client closing) and returns its turns.
    pub fn finish(mut self) -> Result<Turns, KitError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(KitError::ThreadPanicked),
            None => Err(KitError::Usage("the session was already finished".into())),
        }
    }
}

impl Turns {
    /// How many turns the session took.
    pub fn count(&self) -> usize {
        self.turns.len()
    }

    /// The command lines of each turn (without CRLF; the PASS argument included).
    pub fn lines(&self) -> &[Vec<String>] {
        &self.turns
    }

    /// Each turn as its commands' verbs, runs of the same verb shortened to `VERB xN`:
    /// `["CAPA", "USER", "PASS", "CAPA, STAT", "RETR x512", ...]`.
    pub fn shape(&self) -> Vec<String> {
        self.turns
            .iter()
            .map(|turn| {
                let mut runs: Vec<(String, usize)> = Vec::new();
                for line in turn {
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    match runs.last_mut() {
                        Some((last, n)) if *last == verb => *n += 1,
                        _ => runs.push((verb, 1)),
                    }
                }
                runs.iter()
                    .map(|(verb, n)| match n {
                        1 => verb.clone(),
                        n => format!("{verb} x{n}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect()
    }
}

fn serve(
    listener: &TcpListener,
    messages: &[Vec<u8>],
    settle: Duration,
) -> Result<Turns, KitError> {
    let mut socket = accept(listener)?;
    socket.set_nodelay(true)?;
    let bodies: Vec<Vec<u8>> = messages.iter().map(|m| multiline_body(m)).collect();
    let mut session = Session {
        bodies: &bodies,
        user_ok: false,
        logged_in: false,
    };
    let mut turns = Turns::default();
    let mut pending = Vec::new();
    socket.write_all(b"+OK turn counter ready\r\n")?;
    loop {
        let (lines, eof) = read_turn(&mut socket, &mut pending, settle)?;
        if lines.is_empty() {
            return Ok(turns);
        }
        let mut out = Vec::new();
        let mut quit = false;
        for line in &lines {
            quit |= session.answer(line, &mut out);
            if quit {
                break;
            }
        }
        turns.turns.push(lines);
        socket.write_all(&out)?;
        if quit || eof {
            return Ok(turns);
        }
    }
}

fn accept(listener: &TcpListener) -> Result<TcpStream, KitError> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((socket, _)) => {
                socket.set_nonblocking(false)?;
                return Ok(socket);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(KitError::Timeout("no client connected".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads one turn: waits (up to [`PATIENCE`]) for the client's first byte, then reads until
/// the client has been quiet for `settle` with only whole lines received. Returns the lines
/// (empty at the end of input) and whether the input ended.
fn read_turn(
    socket: &mut TcpStream,
    pending: &mut Vec<u8>,
    settle: Duration,
) -> Result<(Vec<String>, bool), KitError> {
    let mut buf = [0u8; 16 * 1024];
    let mut eof = false;
    loop {
        // The first byte of a turn, or the rest of an unfinished line: wait long.
        let waiting_long = pending.is_empty() || !pending.ends_with(b"\n");
        socket.set_read_timeout(Some(if waiting_long { PATIENCE } else { settle }))?;
        match socket.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if !waiting_long
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(KitError::Timeout("the client sent nothing for 30 s".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let complete = pending
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let lines = pending[..complete]
        .split_inclusive(|&b| b == b'\n')
        .map(|line| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8_lossy(line).into_owned()
        })
        .collect();
    pending.drain(..complete);
    Ok((lines, eof))
}

struct Session<'a> {
    bodies: &'a [Vec<u8>],
    user_ok: bool,
    logged_in: bool,
}

impl Session<'_> {
    /// Appends the reply to `line` to `out`; true for QUIT.
    fn answer(&mut self, line: &str, out: &mut Vec<u8>) -> bool {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let verb = verb.to_ascii_uppercase();
        let message = |arg: &str| {
            arg.parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.bodies.get(i))
        };
        let ok = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(format!("+OK {text}\r\n").as_bytes());
        };
        let err = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(format!("-ERR {text}\r\n").as_bytes());
        };
        match (verb.as_str(), self.logged_in) {
            ("CAPA", _) => out.extend_from_slice(b"+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n"),
            ("USER", false) => {
                self.user_ok = arg == TurnServer::USER;
                ok(out, "send PASS");
            }
            ("PASS", false) if self.user_ok && arg == TurnServer::PASSWORD => {
                self.logged_in = true;
                ok(out, "logged in");
            }
            ("PASS", false) => {
                self.user_ok = false;
                err(out, "[AUTH] invalid user or password");
            }
            ("STAT", true) => {
                let size: usize = self.bodies.iter().map(|b| wire_size(b)).sum();
                ok(out, &format!("{} {size}", self.bodies.len()));
            }
            ("LIST" | "UIDL", true) if arg.is_empty() => {
                ok(out, "listing follows");
                for (i, body) in self.bodies.iter().enumerate() {
                    let value = if verb == "LIST" {
                        wire_size(body).to_string()
                    } else {
                        format!("uid-{}", i + 1)
                    };
                    out.extend_from_slice(format!("{} {value}\r\n", i + 1).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
            }
            ("RETR", true) => match message(arg) {
                Some(body) => {
                    ok(out, &format!("{} octets", wire_size(body)));
                    out.extend_from_slice(body);
                }
                None => err(out, "no such message"),
            },
            ("NOOP", true) => ok(out, ""),
            ("QUIT", _) => {
                ok(out, "bye");
                return true;
            }
            _ => err(out, "unknown command or wrong state"),
        }
        false
    }
}

/// A message's size as the server counts it: the body without stuffing and terminator.
fn wire_size(body: &[u8]) -> usize {
    let stuffed = body
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| line.starts_with(b".."))
        .count();
    body.len() - 3 - stuffed
}
