//! A stateful in-memory POP3 server for end-to-end tests and demos.

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;

use crate::Error;
use crate::conn::{Conn, Line};
use crate::mail::{multiline_body, to_crlf};
use crate::tls::TestCa;
use base64::Engine as _;
use md5::{Digest as _, Md5};

/// Longest command line accepted (RFC 2449 says 255 octets; SASL initial
/// responses can be longer, so be generous).
const MAX_COMMAND: usize = 8 * 1024;

/// Standard base64 that accepts a missing `=` padding, as lenient servers do.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    Stls,
    Implicit,
}

/// Options for a [`MailboxServer`]; start with [`MailboxServer::builder`].
#[derive(Debug, Clone)]
pub struct MailboxServerBuilder {
    messages: Vec<Vec<u8>>,
    user: String,
    password: String,
    apop: bool,
    timestamp: Option<String>,
    tls: TlsMode,
    tls_config: Option<Arc<ServerConfig>>,
    drop_in_retr: Option<usize>,
    reply_delay: Duration,
    capa: bool,
    bare_lf: bool,
    exclusive_lock: bool,
    read_timeout: Duration,
    expire: Option<String>,
}

impl MailboxServerBuilder {
    /// The account (default `alice` / `secret-a`, as on the Dovecot peer).
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.user = user.to_owned();
        self.password = password.to_owned();
        self
    }

    /// Whether the greeting carries an APOP timestamp and APOP is accepted
    /// (default yes).
    pub fn apop(mut self, enabled: bool) -> Self {
        self.apop = enabled;
        self
    }

    /// A fixed APOP timestamp, angle brackets included (default: a fresh one
    /// per connection, `<N.NANOS@pop3-tests.invalid>`). Enables APOP.
    pub fn apop_timestamp(mut self, timestamp: &str) -> Self {
        self.apop = true;
        self.timestamp = Some(timestamp.to_owned());
        self
    }

    /// Offer `STLS` in CAPA and accept it (with the kit's certificate).
    pub fn stls(mut self) -> Self {
        self.tls = TlsMode::Stls;
        self
    }

    /// TLS from the first byte (POP3S).
    pub fn implicit_tls(mut self) -> Self {
        self.tls = TlsMode::Implicit;
        self
    }

    /// Use this TLS config instead of the kit's ([`TestCa::shared`]).
    pub fn tls_config(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Cut the connection in the middle of the body of the `n`-th RETR
    /// reply (1-based, counted per connection): the status line and about
    /// half the body are sent, then a TCP FIN without TLS close_notify.
    /// No UPDATE happens.
    pub fn drop_in_retr(mut self, n: usize) -> Self {
        self.drop_in_retr = Some(n);
        self
    }

    /// Wait this long before every reply, the greeting included.
    pub fn reply_delay(mut self, delay: Duration) -> Self {
        self.reply_delay = delay;
        self
    }

    /// Answer `CAPA` with `-ERR` (an RFC 1939-only server).
    pub fn no_capa(mut self) -> Self {
        self.capa = false;
        self
    }

    /// End every line the server sends with a bare LF instead of CRLF,
    /// multi-line terminator included (`.\n`): a known server quirk.
    pub fn bare_lf(mut self) -> Self {
        self.bare_lf = true;
        self
    }

    /// Allow one session in the TRANSACTION state at a time, like real
    /// maildrop locks; others get `-ERR [IN-USE] ...` (default off, so
    /// concurrency tests can log in many times).
    pub fn exclusive_lock(mut self) -> Self {
        self.exclusive_lock = true;
        self
    }

    /// Idle time after which a session is dropped without UPDATE (RFC 1939
    /// autologout; default 60 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Announce `EXPIRE <policy>` in CAPA (e.g. `"0"`, `"30"`, `"NEVER"`, `"0 USER"`; the
    /// `USER` suffix only before login, as RFC 2449 §6.7 has it). With a policy of `0` the
    /// server acts on it: every message fully sent in answer to RETR in a session is removed
    /// by that session's UPDATE (QUIT), as if it had been deleted; a session that ends
    /// without QUIT removes nothing. Other values are only announced.
    pub fn expire(mut self, policy: &str) -> Self {
        self.expire = Some(policy.to_owned());
        self
    }

    /// Binds 127.0.0.1 on a random port and starts serving, one thread per
    /// connection.
    pub fn start(self) -> Result<MailboxServer, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut store = Store {
            messages: Vec::new(),
            next_uid: 1,
            locked: false,
        };
        for message in &self.messages {
            store.push(message);
        }
        let tls = match self.tls {
            TlsMode::None => None,
            _ => Some(
                self.tls_config
                    .clone()
                    .unwrap_or_else(|| TestCa::shared().server_config()),
            ),
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            options: self,
            tls,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            logins: AtomicUsize::new(0),
            quits: AtomicUsize::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("mailbox-accept-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &for_thread))?;
        Ok(MailboxServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

/// A stateful in-memory POP3 server on 127.0.0.1 (random port).
///
/// It serves a shared list of messages to any number of concurrent
/// connections (a thread each): USER/PASS, APOP, AUTH PLAIN, CAPA, STLS
/// (optional), STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT.
/// Pipelined commands are answered in order. QUIT in the TRANSACTION state
/// removes the deleted messages from the shared store, so later sessions and
/// [`MailboxServer::messages`] see the result. UIDs are `uid-N`, unique for
/// the server's life. Sizes are those of the CRLF form of each message.
///
/// ```
/// use pop3_demo_server::{MailboxServer, generate_mail};
///
/// let server = MailboxServer::builder(generate_mail(3, 1000, 1))
///     .credentials("bob", "secret-b")
///     .start()?;
/// println!("POP3 server on {}", server.addr());
/// assert_eq!(server.messages().len(), 3);
/// # Ok::<(), pop3_demo_server::Error>(())
/// ```
pub struct MailboxServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for MailboxServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxServer")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl MailboxServer {
    /// Serves `messages` with the default options (cleartext, alice /
    /// secret-a, APOP on, CAPA on).
    pub fn start(messages: Vec<Vec<u8>>) -> Result<MailboxServer, Error> {
        MailboxServer::builder(messages).start()
    }

    /// Options for serving `messages` (raw bytes, any line ends).
    pub fn builder(messages: Vec<Vec<u8>>) -> MailboxServerBuilder {
        MailboxServerBuilder {
            messages,
            user: "alice".to_owned(),
            password: "secret-a".to_owned(),
            apop: true,
            timestamp: None,
            tls: TlsMode::None,
            tls_config: None,
            drop_in_retr: None,
            reply_delay: Duration::ZERO,
            capa: true,
            bare_lf: false,
            exclusive_lock: false,
            read_timeout: Duration::from_secs(60),
            expire: None,
        }
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chosen port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages now in the store (as given, not CRLF-normalised), in
    /// order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .messages
            .iter()
            .map(|m| m.original.to_vec())
            .collect()
    }

    /// The UIDs of the messages now in the store, in order.
    pub fn uids(&self) -> Vec<String> {
        self.shared
            .lock()
            .messages
            .iter()
            .map(|m| m.uid.clone())
            .collect()
    }

    /// Adds a message at the end (seen by sessions that log in later).
    pub fn push_message(&self, message: &[u8]) {
        self.shared.lock().push(message);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.shared.logins.load(Ordering::Relaxed)
    }

    /// Sessions that ended with QUIT so far (counted before the `+OK` goes out, so a client
    /// sees its own QUIT counted once it has the reply).
    pub fn quits(&self) -> usize {
        self.shared.quits.load(Ordering::Relaxed)
    }

    /// Stops accepting connections. Running sessions go on until their
    /// client quits or their read timeout expires. Also done on drop.
    pub fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            // wake the blocking accept
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = acceptor.join();
        }
    }
}

impl Drop for MailboxServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug)]
struct Stored {
    uid: String,
    /// CRLF form, which sizes count and RETR sends.
    wire: Arc<Vec<u8>>,
    original: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct Store {
    messages: Vec<Arc<Stored>>,
    next_uid: u64,
    locked: bool,
}

impl Store {
    fn push(&mut self, message: &[u8]) {
        let uid = format!("uid-{}", self.next_uid);
        self.next_uid += 1;
        self.messages.push(Arc::new(Stored {
            uid,
            wire: Arc::new(to_crlf(message)),
            original: Arc::new(message.to_vec()),
        }));
    }
}

#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    options: MailboxServerBuilder,
    tls: Option<Arc<ServerConfig>>,
    stop: AtomicBool,
    connections: AtomicUsize,
    logins: AtomicUsize,
    quits: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // a panicking session must not take the other tests down with it
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let number = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("mailbox-conn-{number}"))
            .spawn(move || {
                if let Ok(conn) = Conn::new(stream, false) {
                    Session::new(conn, &shared, number).run();
                }
            });
        if spawned.is_err() {
            // out of threads: the stream was moved into the failed closure
            // and is closed; the client sees a reset
            continue;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Authorization,
    Transaction,
}

/// One reply's disposition.
enum Flow {
    Continue,
    End,
}

struct Session<'a> {
    conn: Conn,
    shared: &'a Shared,
    opts: &'a MailboxServerBuilder,
    timestamp: Option<String>,
    phase: Phase,
    user: Option<String>,
    mailbox: Vec<Arc<Stored>>,
    deleted: Vec<bool>,
    /// Retrieved under `EXPIRE 0`: removed by UPDATE like the deleted ones.
    retrieved: Vec<bool>,
    retr_count: usize,
    holds_lock: bool,
}

impl<'a> Session<'a> {
    fn new(conn: Conn, shared: &'a Shared, number: usize) -> Session<'a> {
        let opts = &shared.options;
        let timestamp = opts.apop.then(|| {
            opts.timestamp.clone().unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                format!("<{number}.{nanos}@pop3-tests.invalid>")
            })
        });
        Session {
            conn,
            shared,
            opts,
            timestamp,
            phase: Phase::Authorization,
            user: None,
            mailbox: Vec::new(),
            deleted: Vec::new(),
            retrieved: Vec::new(),
            retr_count: 0,
            holds_lock: false,
        }
    }

    fn run(mut self) {
        let _ = self.conn.set_read_timeout(Some(self.opts.read_timeout));
        if self.opts.tls == TlsMode::Implicit {
            let Some(config) = self.shared.tls.clone() else {
                return;
            };
            if self.conn.start_tls(config).is_err() {
                self.end();
                return;
            }
        }
        let greeting = match &self.timestamp {
            Some(ts) => format!("+OK pop3-tests server ready {ts}"),
            None => "+OK pop3-tests server ready".to_owned(),
        };
        if self.reply(&greeting).is_err() {
            self.end();
            return;
        }
        loop {
            let line = match self.conn.read_line(MAX_COMMAND) {
                Ok(Line::Complete(line)) => line,
                Ok(Line::TooLong(_)) => {
                    let _ = self.reply("-ERR line too long");
                    break;
                }
                // EOF or timeout: autologout without UPDATE
                Ok(Line::Eof(_)) | Err(_) => break,
            };
            let flow = match self.command(&line) {
                Ok(flow) => flow,
                Err(_) => break,
            };
            if let Flow::End = flow {
                break;
            }
        }
        self.end();
    }

    fn end(&mut self) {
        if self.holds_lock {
            self.shared.lock().locked = false;
            self.holds_lock = false;
        }
        self.conn.close();
    }

    fn eol(&self) -> &'static [u8] {
        if self.opts.bare_lf { b"\n" } else { b"\r\n" }
    }

    fn delay(&self) {
        if !self.opts.reply_delay.is_zero() {
            thread::sleep(self.opts.reply_delay);
        }
    }

    fn reply(&mut self, status: &str) -> std::io::Result<()> {
        self.delay();
        let mut bytes = status.as_bytes().to_vec();
        bytes.extend_from_slice(self.eol());
        self.conn.write_all(&bytes)
    }

    /// A status line and a multi-line body already in wire form (CRLF,
    /// stuffed, terminated).
    fn reply_multi(&mut self, status: &str, body: &[u8]) -> std::io::Result<()> {
        self.delay();
        let mut bytes = status.as_bytes().to_vec();
        bytes.extend_from_slice(self.eol());
        if self.opts.bare_lf {
            let mut last = 0;
            for (i, pair) in body.windows(2).enumerate() {
                if pair == b"\r\n" {
                    bytes.extend_from_slice(&body[last..i]);
                    last = i + 1;
                }
            }
            bytes.extend_from_slice(&body[last..]);
        } else {
            bytes.extend_from_slice(body);
        }
        self.conn.write_all(&bytes)
    }

    fn lines_reply(&mut self, status: &str, lines: &[String]) -> std::io::Result<()> {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.reply_multi(status, &body)
    }

    fn command(&mut self, line: &[u8]) -> std::io::Result<Flow> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line).into_owned();
        let (keyword, rest) = match text.split_once(' ') {
            Some((k, rest)) => (k.to_ascii_uppercase(), rest),
            None => (text.to_ascii_uppercase(), ""),
        };
        let args: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(' ').collect()
        };
        match (self.phase, keyword.as_str()) {
            (_, "CAPA") => self.capa()?,
            (_, "NOOP") if self.phase == Phase::Transaction => self.reply("+OK")?,
            (Phase::Authorization, "QUIT") => {
                self.shared.quits.fetch_add(1, Ordering::Relaxed);
                self.reply("+OK pop3-tests signing off")?;
                return Ok(self.close_gracefully());
            }
            (Phase::Transaction, "QUIT") => {
                let removed = self.update();
                self.shared.quits.fetch_add(1, Ordering::Relaxed);
                let left = {
                    let mut store = self.shared.lock();
                    if self.holds_lock {
                        store.locked = false;
                        self.holds_lock = false;
                    }
                    store.messages.len()
                };
                self.reply(&format!(
                    "+OK pop3-tests signing off ({removed} deleted, {left} left)"
                ))?;
                return Ok(self.close_gracefully());
            }
            (Phase::Authorization, "USER") if args.len() == 1 => {
                self.user = Some(args[0].to_owned());
                self.reply("+OK send PASS")?;
            }
            (Phase::Authorization, "PASS") => {
                // the password is the rest of the line, spaces included
                let ok = self.user.as_deref() == Some(self.opts.user.as_str())
                    && rest == self.opts.password;
                self.user = None;
                if ok {
                    self.login()?;
                } else {
                    self.reply("-ERR [AUTH] invalid user name or password")?;
                }
            }
            (Phase::Authorization, "APOP") if args.len() == 2 => {
                let ok = self.timestamp.as_ref().is_some_and(|ts| {
                    let digest = format!(
                        "{:x}",
                        Md5::digest(format!("{ts}{}", self.opts.password).as_bytes())
                    );
                    args[0] == self.opts.user && args[1] == digest
                });
                if ok {
                    self.login()?;
                } else {
                    self.reply("-ERR [AUTH] authentication failed")?;
                }
            }
            (Phase::Authorization, "AUTH") => return self.auth(&args),
            (Phase::Authorization, "STLS") => return self.stls(),
            (Phase::Transaction, "STAT") => {
                let (count, size) = self.totals();
                self.reply(&format!("+OK {count} {size}"))?;
            }
            (Phase::Transaction, "LIST") => self.listing(&args, false)?,
            (Phase::Transaction, "UIDL") => self.listing(&args, true)?,
            (Phase::Transaction, "RETR") if args.len() == 1 => return self.retr(args[0]),
            (Phase::Transaction, "TOP") if args.len() == 2 => self.top(args[0], args[1])?,
            (Phase::Transaction, "DELE") if args.len() == 1 => match self.message(args[0]) {
                Some(index) => {
                    self.deleted[index] = true;
                    self.reply(&format!("+OK message {} deleted", index + 1))?;
                }
                None => self.reply("-ERR no such message")?,
            },
            (Phase::Transaction, "RSET") => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (count, size) = self.totals();
                self.reply(&format!(
                    "+OK maildrop has {count} messages ({size} octets)"
                ))?;
            }
            (
                _,
                "USER" | "PASS" | "APOP" | "AUTH" | "STLS" | "STAT" | "LIST" | "UIDL" | "RETR"
                | "TOP" | "DELE" | "RSET" | "NOOP",
            ) => self.reply("-ERR command not valid here or bad arguments")?,
            _ => self.reply("-ERR unknown command")?,
        }
        Ok(Flow::Continue)
    }

    fn capa(&mut self) -> std::io::Result<()> {
        if !self.opts.capa {
            return self.reply("-ERR unknown command");
        }
        let mut caps: Vec<String> = ["TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if self.phase == Phase::Authorization {
            caps.push("USER".to_owned());
            caps.push("SASL PLAIN".to_owned());
            if self.opts.tls == TlsMode::Stls && !self.conn.is_tls() {
                caps.push("STLS".to_owned());
            }
        }
        if let Some(expire) = &self.opts.expire {
            let expire = match expire.split_once(' ') {
                Some((value, _)) if self.phase == Phase::Transaction => value,
                _ => expire.as_str(),
            };
            caps.push(format!("EXPIRE {expire}"));
        }
        caps.push("IMPLEMENTATION pop3-tests".to_owned());
        self.lines_reply("+OK capability list follows", &caps)
    }

    fn close_gracefully(&mut self) -> Flow {
        self.conn.shutdown_write();
        // read until the client closes, so unread input cannot turn our
        // close into a reset that destroys the reply
        self.conn.drain(Duration::from_millis(500));
        Flow::End
    }

    fn login(&mut self) -> std::io::Result<()> {
        {
            let mut store = self.shared.lock();
            if self.opts.exclusive_lock {
                if store.locked {
                    drop(store);
                    return self.reply("-ERR [IN-USE] maildrop already locked");
                }
                store.locked = true;
                self.holds_lock = true;
            }
            self.mailbox = store.messages.clone();
        }
        self.deleted = vec![false; self.mailbox.len()];
        self.retrieved = vec![false; self.mailbox.len()];
        self.phase = Phase::Transaction;
        self.shared.logins.fetch_add(1, Ordering::Relaxed);
        let (count, size) = self.totals();
        self.reply(&format!(
            "+OK maildrop has {count} messages ({size} octets)"
        ))
    }

    fn auth(&mut self, args: &[&str]) -> std::io::Result<Flow> {
        let Some(mechanism) = args.first() else {
            // legacy RFC 1734 listing
            self.lines_reply("+OK", &["PLAIN".to_owned()])?;
            return Ok(Flow::Continue);
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") || args.len() > 2 {
            self.reply("-ERR unsupported mechanism")?;
            return Ok(Flow::Continue);
        }
        let response = match args.get(1) {
            Some(&"=") => Vec::new(),
            Some(ir) => ir.as_bytes().to_vec(),
            None => {
                self.reply("+ ")?;
                match self.conn.read_line(MAX_COMMAND) {
                    Ok(Line::Complete(line)) => {
                        let line = line.strip_suffix(b"\n").unwrap_or(&line);
                        line.strip_suffix(b"\r").unwrap_or(line).to_vec()
                    }
                    _ => return Ok(Flow::End),
                }
            }
        };
        if response == b"*" {
            self.reply("-ERR authentication cancelled")?;
            return Ok(Flow::Continue);
        }
        let ok = BASE64.decode(&response).is_ok_and(|decoded| {
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            matches!(parts.as_slice(), [authz, user, pass]
                if (authz.is_empty() || *authz == self.opts.user.as_bytes())
                    && *user == self.opts.user.as_bytes()
                    && *pass == self.opts.password.as_bytes())
        });
        if ok {
            self.login()?;
        } else {
            self.reply("-ERR [AUTH] authentication failed")?;
        }
        Ok(Flow::Continue)
    }

    fn stls(&mut self) -> std::io::Result<Flow> {
        let config = match (&self.shared.tls, self.opts.tls) {
            (Some(config), TlsMode::Stls) if !self.conn.is_tls() => Arc::clone(config),
            _ => {
                self.reply("-ERR STLS not available")?;
                return Ok(Flow::Continue);
            }
        };
        self.reply("+OK begin TLS negotiation")?;
        // RFC 2595 / CVE-2011-0411: cleartext pipelined after STLS is dropped
        self.conn.discard_buffered();
        if self.conn.start_tls(config).is_err() {
            return Ok(Flow::End);
        }
        self.user = None;
        Ok(Flow::Continue)
    }

    fn totals(&self) -> (usize, usize) {
        self.live()
            .fold((0, 0), |(n, size), (_, m)| (n + 1, size + m.wire.len()))
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Arc<Stored>)> {
        self.mailbox
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    /// The index of a live message by its 1-based number.
    fn message(&self, arg: &str) -> Option<usize> {
        let n: usize = arg.parse().ok()?;
        let index = n.checked_sub(1)?;
        (index < self.mailbox.len() && !self.deleted[index]).then_some(index)
    }

    fn listing(&mut self, args: &[&str], uidl: bool) -> std::io::Result<()> {
        let entry = |i: usize, m: &Stored| {
            if uidl {
                format!("{} {}", i + 1, m.uid)
            } else {
                format!("{} {}", i + 1, m.wire.len())
            }
        };
        match args {
            [] => {
                let lines: Vec<String> = self.live().map(|(i, m)| entry(i, m)).collect();
                let (count, size) = self.totals();
                let status = if uidl {
                    "+OK unique-id listing follows".to_owned()
                } else {
                    format!("+OK {count} messages ({size} octets)")
                };
                self.lines_reply(&status, &lines)
            }
            [n] => match self.message(n) {
                Some(i) => {
                    let line = entry(i, &self.mailbox[i]);
                    self.reply(&format!("+OK {line}"))
                }
                None => self.reply("-ERR no such message"),
            },
            _ => self.reply("-ERR bad arguments"),
        }
    }

    fn retr(&mut self, arg: &str) -> std::io::Result<Flow> {
        let Some(index) = self.message(arg) else {
            self.reply("-ERR no such message")?;
            return Ok(Flow::Continue);
        };
        self.retr_count += 1;
        let message = Arc::clone(&self.mailbox[index]);
        let body = multiline_body(&message.wire);
        let status = format!("+OK {} octets", message.wire.len());
        if self.opts.drop_in_retr == Some(self.retr_count) {
            let cut = body.len() / 2;
            self.reply_multi(&status, &body[..cut])?;
            self.conn.shutdown_write_abruptly();
            return Ok(Flow::End);
        }
        self.reply_multi(&status, &body)?;
        if self.expires_at_once() {
            self.retrieved[index] = true;
        }
        Ok(Flow::Continue)
    }

    /// `EXPIRE 0`: retrieved messages go at UPDATE.
    fn expires_at_once(&self) -> bool {
        self.opts
            .expire
            .as_deref()
            .is_some_and(|e| e.split(' ').next() == Some("0"))
    }

    fn top(&mut self, n: &str, lines: &str) -> std::io::Result<()> {
        let (Some(index), Ok(lines)) = (self.message(n), lines.parse::<usize>()) else {
            return self.reply("-ERR no such message or bad line count");
        };
        let wire = Arc::clone(&self.mailbox[index].wire);
        let mut out = Vec::new();
        let mut in_body = false;
        let mut body_lines = 0;
        for line in wire.split_inclusive(|&b| b == b'\n') {
            if in_body {
                if body_lines == lines {
                    break;
                }
                body_lines += 1;
            } else if line == b"\r\n" {
                in_body = true;
            }
            out.extend_from_slice(line);
        }
        self.reply_multi("+OK top of message follows", &multiline_body(&out))
    }

    /// UPDATE: removes this session's deleted messages from the store.
    fn update(&mut self) -> usize {
        let doomed: Vec<&str> = self
            .mailbox
            .iter()
            .zip(self.deleted.iter().zip(&self.retrieved))
            .filter(|(_, (d, r))| **d || **r)
            .map(|(m, _)| m.uid.as_str())
            .collect();
        let mut store = self.shared.lock();
        let before = store.messages.len();
        store.messages.retain(|m| !doomed.contains(&m.uid.as_str()));
        before - store.messages.len()
    }
}
