//! The fast POP3 server: a canned, pre-rendered mailbox on loopback, so that the server is
//! never what a benchmark measures.
//!
//! - Every RETR reply is rendered at start-up ([`Mailbox`]); serving one is a single write of a
//!   prepared buffer (small replies are coalesced into writes of up to 256 KiB, large ones are
//!   written straight from the mailbox).
//! - Pipelined commands are read in bulk and answered strictly in order.
//! - An optional delay emulates a network round trip: the reply to a command that arrived at
//!   time `t` leaves at `t + delay` (the greeting `delay` after the connection). Commands that
//!   arrive together are answered together after one delay, so a pipelining client pays the
//!   delay once per window and a lock-step client once per command, as with a real RTT.
//! - USER/PASS, CAPA (with PIPELINING), STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT.
//!   DELE only marks a message in the session: the canned mailbox never changes.
//! - Each connection is counted: commands, RETR replies and their bytes, as written to the
//!   socket. The benchmark checks with these that a client received the whole mailbox.
//!
//! Plain TCP only: TLS would benchmark the TLS library.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mailbox::Mailbox;

/// The user name the server accepts.
pub const USER: &str = "bench";
/// The password the server accepts.
pub const PASSWORD: &str = "bench";

/// Replies are coalesced until this many bytes are buffered.
const FLUSH_AT: usize = 256 * 1024;
/// Replies at least this large are written straight from the mailbox.
const BIG: usize = 64 * 1024;
/// The read buffer for commands.
const READ_BUFFER: usize = 64 * 1024;
/// The longest command line accepted.
const MAX_LINE: usize = 16 * 1024;

const CAPA: &[u8] = b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\nIMPLEMENTATION pop3-bench\r\n.\r\n";

/// What one connection did, reported when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    /// The connection's number (1 for the first).
    pub id: u64,
    /// Command lines received.
    pub commands: u64,
    /// RETR replies (with a message) written in full.
    pub retrs: u64,
    /// The bytes of those replies.
    pub retr_bytes: u64,
    /// Every byte written.
    pub bytes_out: u64,
    /// Whether the client sent QUIT.
    pub quit: bool,
    /// How the connection ended, if not cleanly.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    mailbox: Arc<Mailbox>,
    delay: Duration,
    stop: AtomicBool,
    accepted: AtomicU64,
    finished: Mutex<Vec<ConnectionReport>>,
    changed: Condvar,
    /// STAT, LIST and UIDL of the full mailbox, rendered once.
    stat: Vec<u8>,
    list: Vec<u8>,
    uidl: Vec<u8>,
}

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `mailbox` on an ephemeral loopback port, each reply `delay` after its
    /// command.
    pub fn start(mailbox: Arc<Mailbox>, delay: Duration) -> io::Result<Server> {
        Self::bind(mailbox, delay, "127.0.0.1:0")
    }

    /// Like [`Server::start`], on the given address.
    pub fn bind(mailbox: Arc<Mailbox>, delay: Duration, addr: &str) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let (stat, list, uidl) = render_listings(&mailbox);
        let shared = Arc::new(Shared {
            mailbox,
            delay,
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            finished: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            stat,
            list,
            uidl,
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("pop3-bench-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Waits until at least one connection after the first `since` has been accepted and
    /// every accepted connection has ended (at most `timeout`), then returns the reports of
    /// the connections after the first `since`.
    pub fn reports_since(&self, since: u64, timeout: Duration) -> Vec<ConnectionReport> {
        let deadline = Instant::now() + timeout;
        let mut finished = self
            .shared
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            let accepted = self.accepted();
            let done = finished.iter().filter(|r| r.id > since).count() as u64;
            if accepted > since && done >= accepted - since {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Wake up now and then: a connection may be accepted without a report yet.
            let wait = (deadline - now).min(Duration::from_millis(5));
            finished = self
                .shared
                .changed
                .wait_timeout(finished, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let mut reports: Vec<_> = finished.iter().filter(|r| r.id > since).cloned().collect();
        reports.sort_by_key(|r| r.id);
        reports
    }

    /// Stops accepting connections (the open ones run to their end).
    pub fn stop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            // Wake the acceptor up.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = acceptor.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for socket in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(socket) = socket else { continue };
        let id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("pop3-bench-conn-{id}"))
            .spawn(move || {
                let report = serve(socket, &shared, id);
                shared
                    .finished
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(report);
                shared.changed.notify_all();
            });
        if spawned.is_err() {
            eprintln!("pop3-bench server: cannot start a thread for connection {id}");
        }
    }
}

fn render_listings(mailbox: &Mailbox) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let count = mailbox.messages.len();
    let stat = format!("+OK {count} {}\r\n", mailbox.octets).into_bytes();
    let mut list = format!("+OK {count} messages ({} octets)\r\n", mailbox.octets);
    let mut uidl = String::from("+OK unique-id listing follows\r\n");
    for (i, m) in mailbox.messages.iter().enumerate() {
        let _ = write!(list, "{} {}\r\n", i + 1, m.size);
        let _ = write!(uidl, "{} {}\r\n", i + 1, m.uid);
    }
    list.push_str(".\r\n");
    uidl.push_str(".\r\n");
    (stat, list.into_bytes(), uidl.into_bytes())
}

fn serve(socket: TcpStream, shared: &Shared, id: u64) -> ConnectionReport {
    let _ = socket.set_nodelay(true);
    let mut session = Session::new(shared);
    let mut out = Out::new(&socket);
    let result = if shared.delay.is_zero() {
        serve_direct(&socket, &mut session, &mut out)
    } else {
        serve_delayed(&socket, &mut session, &mut out, shared.delay)
    };
    let result = result.and_then(|()| out.flush());
    let _ = socket.shutdown(Shutdown::Both);
    ConnectionReport {
        id,
        commands: session.commands,
        retrs: out.retrs,
        retr_bytes: out.retr_bytes,
        bytes_out: out.bytes_out,
        quit: session.quit,
        error: result.err().map(|e| e.to_string()),
    }
}

/// No delay: read a batch of commands, answer every complete one, write the answers.
fn serve_direct(
    socket: &TcpStream,
    session: &mut Session<'_>,
    out: &mut Out<'_>,
) -> io::Result<()> {
    out.small(session.greeting())?;
    out.flush()?;
    let mut buf = vec![0; READ_BUFFER];
    let mut have = 0;
    loop {
        let n = (&*socket).read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[pos..have]) {
            let line = trim_cr(&buf[pos..pos + i]);
            pos += i + 1;
            if !session.handle(line, out)? {
                return out.flush();
            }
        }
        buf.copy_within(pos..have, 0);
        have -= pos;
        if have >= MAX_LINE {
            out.small(b"-ERR command line too long\r\n")?;
            return out.flush();
        }
        out.flush()?;
    }
}

/// With a delay: a reader thread stamps each command with its arrival time; this thread sends
/// each reply at arrival + delay, in order.
fn serve_delayed(
    socket: &TcpStream,
    session: &mut Session<'_>,
    out: &mut Out<'_>,
    delay: Duration,
) -> io::Result<()> {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader_socket = socket.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0; READ_BUFFER];
        let mut have = 0;
        loop {
            let n = match (&reader_socket).read(&mut buf[have..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let arrived = Instant::now();
            have += n;
            let mut pos = 0;
            while let Some(i) = memchr::memchr(b'\n', &buf[pos..have]) {
                let line = trim_cr(&buf[pos..pos + i]).to_vec();
                pos += i + 1;
                if tx.send((arrived, line)).is_err() {
                    return;
                }
            }
            buf.copy_within(pos..have, 0);
            have -= pos;
            if have >= MAX_LINE {
                return;
            }
        }
    });
    let result = (|| {
        sleep_until(start + delay);
        out.small(session.greeting())?;
        loop {
            let (arrived, line) = match rx.try_recv() {
                Ok(next) => next,
                Err(_) => {
                    out.flush()?;
                    match rx.recv() {
                        Ok(next) => next,
                        Err(_) => return Ok(()),
                    }
                }
            };
            let due = arrived + delay;
            if due > Instant::now() {
                out.flush()?;
                sleep_until(due);
            }
            if !session.handle(&line, out)? {
                return out.flush();
            }
        }
    })();
    let _ = socket.shutdown(Shutdown::Both);
    drop(rx);
    let _ = reader.join();
    result
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The reply writer: coalesces small replies, writes large ones directly, counts.
struct Out<'a> {
    socket: &'a TcpStream,
    buf: Vec<u8>,
    /// RETR replies in `buf`, not yet written.
    pending_retrs: u64,
    pending_retr_bytes: u64,
    retrs: u64,
    retr_bytes: u64,
    bytes_out: u64,
}

impl<'a> Out<'a> {
    fn new(socket: &'a TcpStream) -> Self {
        Out {
            socket,
            buf: Vec::with_capacity(FLUSH_AT + BIG),
            pending_retrs: 0,
            pending_retr_bytes: 0,
            retrs: 0,
            retr_bytes: 0,
            bytes_out: 0,
        }
    }

    fn small(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn big(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() < BIG {
            return self.small(bytes);
        }
        self.flush()?;
        (&*self.socket).write_all(bytes)?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    fn retr(&mut self, reply: &[u8]) -> io::Result<()> {
        if reply.len() < BIG {
            self.pending_retrs += 1;
            self.pending_retr_bytes += reply.len() as u64;
            self.small(reply)
        } else {
            self.big(reply)?;
            self.retrs += 1;
            self.retr_bytes += reply.len() as u64;
            Ok(())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (&*self.socket).write_all(&self.buf)?;
            self.bytes_out += self.buf.len() as u64;
            self.buf.clear();
        }
        self.retrs += std::mem::take(&mut self.pending_retrs);
        self.retr_bytes += std::mem::take(&mut self.pending_retr_bytes);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Authorization,
    Transaction,
}

struct Session<'a> {
    shared: &'a Shared,
    state: State,
    user: Option<String>,
    deleted: Vec<bool>,
    deleted_count: usize,
    deleted_octets: u64,
    commands: u64,
    quit: bool,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared) -> Self {
        Session {
            shared,
            state: State::Authorization,
            user: None,
            deleted: vec![false; shared.mailbox.messages.len()],
            deleted_count: 0,
            deleted_octets: 0,
            commands: 0,
            quit: false,
        }
    }

    fn greeting(&self) -> &'static [u8] {
        b"+OK pop3-bench server ready\r\n"
    }

    /// The message a number argument names, if it exists and is not deleted.
    fn message(&self, arg: Option<&str>) -> Result<usize, &'static str> {
        let n: usize = arg
            .ok_or("message number required")?
            .parse()
            .map_err(|_| "invalid message number")?;
        if n == 0 || n > self.deleted.len() {
            return Err("no such message");
        }
        if self.deleted[n - 1] {
            return Err("message is deleted");
        }
        Ok(n)
    }

    /// Answers one command line (without its line end). `Ok(false)` ends the session.
    fn handle(&mut self, line: &[u8], out: &mut Out<'_>) -> io::Result<bool> {
        self.commands += 1;
        let line = String::from_utf8_lossy(line);
        let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let mut args = rest.split_ascii_whitespace();
        let mailbox = &*self.shared.mailbox;
        match (self.state, keyword.as_str()) {
            (_, "CAPA") => out.small(CAPA)?,
            (_, "QUIT") => {
                self.quit = true;
                out.small(b"+OK bye (the canned mailbox is left unchanged)\r\n")?;
                return Ok(false);
            }
            (State::Authorization, "USER") => match args.next() {
                Some(user) => {
                    self.user = Some(user.to_owned());
                    out.small(b"+OK send PASS\r\n")?;
                }
                None => out.small(b"-ERR USER needs a name\r\n")?,
            },
            (State::Authorization, "PASS") => match self.user.take() {
                // RFC 1939: the password is the rest of the line.
                Some(user) if user == USER && rest == PASSWORD => {
                    self.state = State::Transaction;
                    out.small(b"+OK maildrop locked and ready\r\n")?;
                }
                Some(_) => out.small(b"-ERR [AUTH] invalid user name or password\r\n")?,
                None => out.small(b"-ERR send USER first\r\n")?,
            },
            (State::Transaction, "STAT") => {
                if self.deleted_count == 0 {
                    out.small(&self.shared.stat)?;
                } else {
                    let count = mailbox.messages.len() - self.deleted_count;
                    let octets = mailbox.octets - self.deleted_octets;
                    out.small(format!("+OK {count} {octets}\r\n").as_bytes())?;
                }
            }
            (State::Transaction, "LIST" | "UIDL") => {
                let uidl = keyword == "UIDL";
                if let Some(arg) = args.next() {
                    let reply = match self.message(Some(arg)) {
                        Ok(n) if uidl => format!("+OK {n} {}\r\n", mailbox.messages[n - 1].uid),
                        Ok(n) => format!("+OK {n} {}\r\n", mailbox.messages[n - 1].size),
                        Err(e) => format!("-ERR {e}\r\n"),
                    };
                    out.small(reply.as_bytes())?;
                } else if self.deleted_count == 0 {
                    let listing = if uidl {
                        &self.shared.uidl
                    } else {
                        &self.shared.list
                    };
                    out.big(listing)?;
                } else {
                    let mut reply = if uidl {
                        String::from("+OK unique-id listing follows\r\n")
                    } else {
                        format!(
                            "+OK {} messages\r\n",
                            mailbox.messages.len() - self.deleted_count
                        )
                    };
                    for (i, m) in mailbox.messages.iter().enumerate() {
                        if !self.deleted[i] {
                            if uidl {
                                let _ = write!(reply, "{} {}\r\n", i + 1, m.uid);
                            } else {
                                let _ = write!(reply, "{} {}\r\n", i + 1, m.size);
                            }
                        }
                    }
                    reply.push_str(".\r\n");
                    out.big(reply.as_bytes())?;
                }
            }
            (State::Transaction, "RETR") => match self.message(args.next()) {
                Ok(n) => out.retr(&mailbox.messages[n - 1].retr)?,
                Err(e) => out.small(format!("-ERR {e}\r\n").as_bytes())?,
            },
            (State::Transaction, "TOP") => {
                let n = self.message(args.next());
                let lines: Option<usize> = args.next().and_then(|a| a.parse().ok());
                match (n, lines) {
                    (Ok(n), Some(lines)) => {
                        let m = &mailbox.messages[n - 1];
                        let body_end = m.retr.len() - 3;
                        let mut end = m.header_end;
                        for _ in 0..lines {
                            match memchr::memchr(b'\n', &m.retr[end..body_end]) {
                                Some(i) => end += i + 1,
                                None => {
                                    end = body_end;
                                    break;
                                }
                            }
                        }
                        out.small(b"+OK top of message follows\r\n")?;
                        out.big(&m.retr[m.body_start..end])?;
                        out.small(b".\r\n")?;
                    }
                    (Err(e), _) => out.small(format!("-ERR {e}\r\n").as_bytes())?,
                    (Ok(_), None) => out.small(b"-ERR TOP needs a line count\r\n")?,
                }
            }
            (State::Transaction, "DELE") => match self.message(args.next()) {
                Ok(n) => {
                    self.deleted[n - 1] = true;
                    self.deleted_count += 1;
                    self.deleted_octets += mailbox.messages[n - 1].size as u64;
                    out.small(format!("+OK message {n} deleted\r\n").as_bytes())?;
                }
                Err(e) => out.small(format!("-ERR {e}\r\n").as_bytes())?,
            },
            (State::Transaction, "RSET") => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                self.deleted_count = 0;
                self.deleted_octets = 0;
                out.small(b"+OK\r\n")?;
            }
            (State::Transaction, "NOOP") => out.small(b"+OK\r\n")?,
            (State::Authorization, _) => {
                out.small(b"-ERR unknown command or not valid before login\r\n")?;
            }
            (State::Transaction, _) => {
                out.small(b"-ERR unknown command or not valid after login\r\n")?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_to_end(mut socket: TcpStream) -> String {
        let mut all = Vec::new();
        socket.read_to_end(&mut all).expect("read");
        String::from_utf8_lossy(&all).into_owned()
    }

    #[test]
    fn pipelined_session() {
        let mailbox = Arc::new(Mailbox::generate(3, 2000, 9));
        let retr2 = String::from_utf8_lossy(&mailbox.messages[1].retr).into_owned();
        let server = Server::start(mailbox, Duration::ZERO).expect("start");
        let mut c = TcpStream::connect(server.addr()).expect("connect");
        c.write_all(
            b"CAPA\r\nUSER bench\r\nPASS bench\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 2\r\nDELE 2\r\n\
              RETR 2\r\nSTAT\r\nRSET\r\nTOP 1 2\r\nNOOP\r\nQUIT\r\n",
        )
        .expect("write");
        let s = read_to_end(c);
        assert!(s.starts_with("+OK pop3-bench server ready\r\n"), "{s}");
        assert!(s.contains("PIPELINING\r\n"));
        assert!(s.contains("+OK 3 6000\r\n"));
        assert!(s.contains("+OK 3 messages (6000 octets)\r\n1 2000\r\n2 2000\r\n3 2000\r\n.\r\n"));
        assert!(s.contains("+OK 2 pb9-00000002\r\n"));
        assert!(s.contains(&retr2));
        assert!(s.contains("-ERR message is deleted\r\n"));
        assert!(s.contains("+OK 2 4000\r\n"));
        assert!(s.contains("+OK top of message follows\r\nReturn-Path"));
        assert!(s.ends_with("+OK\r\n+OK bye (the canned mailbox is left unchanged)\r\n"));
        let reports = server.reports_since(0, Duration::from_secs(5));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!((r.commands, r.retrs, r.quit), (14, 1, true));
        assert_eq!(r.retr_bytes, retr2.len() as u64);
        assert_eq!(r.error, None);
    }

    #[test]
    fn bad_password_and_delay() {
        let mailbox = Arc::new(Mailbox::generate(1, 1000, 1));
        let server = Server::start(mailbox, Duration::from_millis(20)).expect("start");
        let t = Instant::now();
        let mut c = TcpStream::connect(server.addr()).expect("connect");
        c.write_all(b"USER bench\r\nPASS wrong\r\nQUIT\r\n")
            .expect("write");
        let s = read_to_end(c);
        assert!(s.contains("-ERR [AUTH]"), "{s}");
        // Commands that arrive together are answered together: one delay, not four.
        let elapsed = t.elapsed();
        assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
        let reports = server.reports_since(0, Duration::from_secs(5));
        assert_eq!(reports[0].commands, 3);
    }
}
