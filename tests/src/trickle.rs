//! A server that trickles: it plays a list of [`Trickle`] steps on one connection, some of
//! which write a few bytes at a time with pauses between them, for testing read deadlines
//! and low-speed limits.
//!
//! With [`TrickleServer::start_tls`] it speaks implicit TLS (the kit's [`TestCa`]
//! certificate): a drip's bytes then go into TLS records whose *ciphertext* is dripped, so the
//! client gets no plaintext at all until a record is complete.
//!
//! It stops dripping as soon as a write fails (the client hung up), and reports how long the
//! client kept it going, and every line the client sent (so that a test can check, say, that
//! no QUIT followed a timeout).
//!
//! ```no_run
//! use std::time::Duration;
//! use pop3_tests::{Trickle, TrickleServer};
//!
//! // `+OK ` then one byte every 200 ms, never a line end.
//! let server = TrickleServer::start(vec![
//!     Trickle::send("+OK "),
//!     Trickle::drip(vec![b'x'; 150], 1, Duration::from_millis(200)),
//! ])?;
//! // ... connect a client to server.port(), see it time out, drop it ...
//! let report = server.finish()?;
//! assert!(report.hung_up);
//! # Ok::<(), pop3_tests::KitError>(())
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

use crate::{KitError, TestCa};

/// How long the server waits for a client to connect, and for each line it expects.
const WAIT: Duration = Duration::from_secs(20);

/// One step of a [`TrickleServer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Trickle {
    /// Write these bytes at once.
    Send(Vec<u8>),
    /// Read one line from the client and check it (without its CRLF).
    Expect(String),
    /// Write `bytes` in pieces of `chunk` bytes, pausing `every` before each piece.
    Drip {
        /// What to write.
        bytes: Vec<u8>,
        /// How many bytes per write.
        chunk: usize,
        /// The pause before each write.
        every: Duration,
    },
}

impl Trickle {
    /// [`Trickle::Send`].
    pub fn send(bytes: impl AsRef<[u8]>) -> Self {
        Self::Send(bytes.as_ref().to_vec())
    }

    /// [`Trickle::Expect`].
    pub fn expect(line: impl Into<String>) -> Self {
        Self::Expect(line.into())
    }

    /// [`Trickle::Drip`].
    pub fn drip(bytes: impl Into<Vec<u8>>, chunk: usize, every: Duration) -> Self {
        Self::Drip {
            bytes: bytes.into(),
            chunk: chunk.max(1),
            every,
        }
    }
}

/// What a [`TrickleServer`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrickleReport {
    /// Every line the client sent, without line ends, in order (expected ones and those
    /// after the steps, up to the client's hang-up).
    pub received: Vec<String>,
    /// Whether the client hung up while the server was still dripping.
    pub hung_up: bool,
    /// How many bytes the drips wrote before the hang-up (or in all).
    pub dripped: usize,
    /// The first line that did not match an [`Trickle::Expect`] step, with what was expected.
    pub mismatch: Option<(String, String)>,
}

/// A one-connection server on 127.0.0.1 that plays [`Trickle`] steps.
#[derive(Debug)]
pub struct TrickleServer {
    port: u16,
    thread: JoinHandle<Result<TrickleReport, KitError>>,
}

impl TrickleServer {
    /// Binds a port and plays `steps` to the first client, on a thread.
    pub fn start(steps: Vec<Trickle>) -> Result<Self, KitError> {
        Self::spawn(steps, false)
    }

    /// Like [`start`](Self::start), over implicit TLS with the [`TestCa`] certificate.
    pub fn start_tls(steps: Vec<Trickle>) -> Result<Self, KitError> {
        Self::spawn(steps, true)
    }

    fn spawn(steps: Vec<Trickle>, tls: bool) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let thread = std::thread::spawn(move || serve(&listener, steps, tls));
        Ok(Self { port, thread })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the server to finish (after the client hung up) and returns its report.
    pub fn finish(self) -> Result<TrickleReport, KitError> {
        self.thread
            .join()
            .map_err(|_| KitError::ThreadPanicked)
            .and_then(|result| result)
    }
}

/// The connection, plain or TLS, with a line reader over it.
enum Peer {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<StreamOwned<ServerConnection, TcpStream>>>),
}

impl Peer {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(reader) => reader.get_mut().write_all(bytes),
            Self::Tls(reader) => {
                let tls = reader.get_mut();
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    }

    /// Writes `bytes` `chunk` bytes at a time, pausing `every` before each; over TLS the
    /// pieces are of the records' ciphertext. Returns how many bytes went out before a write
    /// failed, and whether one did.
    fn drip(&mut self, bytes: &[u8], chunk: usize, every: Duration) -> (usize, bool) {
        let (raw, tcp) = match self {
            Self::Plain(reader) => (bytes.to_vec(), reader.get_mut()),
            Self::Tls(reader) => {
                let StreamOwned { conn, sock } = reader.get_mut();
                let mut raw = Vec::new();
                if conn.writer().write_all(bytes).is_err() {
                    return (0, true);
                }
                while conn.wants_write() {
                    if conn.write_tls(&mut raw).is_err() {
                        return (0, true);
                    }
                }
                (raw, sock)
            }
        };
        let mut sent = 0;
        for piece in raw.chunks(chunk) {
            std::thread::sleep(every);
            if tcp.write_all(piece).is_err() {
                return (sent, true);
            }
            sent += piece.len();
        }
        (sent, false)
    }

    /// One line without its line end, or `None` at the end of input (or a reset).
    fn read_line(&mut self) -> Result<Option<String>, KitError> {
        match self {
            Self::Plain(reader) => read_line(reader),
            Self::Tls(reader) => read_line(&mut **reader),
        }
    }
}

fn serve(
    listener: &TcpListener,
    steps: Vec<Trickle>,
    tls: bool,
) -> Result<TrickleReport, KitError> {
    listener.set_nonblocking(true)?;
    let started = Instant::now();
    let tcp = loop {
        match listener.accept() {
            Ok((tcp, _)) => break tcp,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > WAIT {
                    return Err(KitError::Timeout("no client connected".to_owned()));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(WAIT))?;
    let mut peer = if tls {
        let mut conn = ServerConnection::new(TestCa::shared().server_config())?;
        let mut tcp = tcp;
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                return Ok(TrickleReport {
                    hung_up: true,
                    ..TrickleReport::default()
                });
            }
        }
        Peer::Tls(Box::new(BufReader::new(StreamOwned::new(conn, tcp))))
    } else {
        Peer::Plain(BufReader::new(tcp))
    };
    let mut report = TrickleReport::default();
    for step in steps {
        match step {
            Trickle::Send(bytes) => {
                if peer.send(&bytes).is_err() {
                    report.hung_up = true;
                    return Ok(report);
                }
            }
            Trickle::Expect(expected) => match peer.read_line()? {
                Some(line) if line == expected => report.received.push(line),
                Some(line) => {
                    report.received.push(line.clone());
                    report.mismatch = Some((expected, line));
                    return Ok(report);
                }
                None => {
                    report.mismatch = Some((expected, String::from("<hang-up>")));
                    return Ok(report);
                }
            },
            Trickle::Drip {
                bytes,
                chunk,
                every,
            } => {
                let (sent, hung_up) = peer.drip(&bytes, chunk, every);
                report.dripped += sent;
                if hung_up {
                    report.hung_up = true;
                    break;
                }
            }
        }
    }
    // Whatever the client still sends, up to its hang-up.
    while let Some(line) = peer.read_line().unwrap_or(None) {
        report.received.push(line);
    }
    Ok(report)
}

/// One line without its line end, or `None` at the end of input (or a reset, or a TLS
/// connection closed without close_notify).
fn read_line(reader: &mut BufReader<impl Read>) -> Result<Option<String>, KitError> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) => Ok(None),
        Ok(_) => {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            Ok(Some(String::from_utf8_lossy(&line).into_owned()))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
