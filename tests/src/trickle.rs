//! A server that trickles: it plays a list of [`Trickle`] steps on one connection, some of
//! which write a few bytes at a time with pauses between them, for testing read deadlines
//! and low-speed limits.
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

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::KitError;

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
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let thread = std::thread::spawn(move || serve(&listener, steps));
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

fn serve(listener: &TcpListener, steps: Vec<Trickle>) -> Result<TrickleReport, KitError> {
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
    let mut writer = tcp.try_clone()?;
    let mut reader = BufReader::new(tcp);
    let mut report = TrickleReport::default();
    for step in steps {
        match step {
            Trickle::Send(bytes) => {
                if writer.write_all(&bytes).is_err() {
                    report.hung_up = true;
                    return Ok(report);
                }
            }
            Trickle::Expect(expected) => match read_line(&mut reader)? {
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
                for piece in bytes.chunks(chunk) {
                    std::thread::sleep(every);
                    if writer.write_all(piece).is_err() {
                        report.hung_up = true;
                        break;
                    }
                    report.dripped += piece.len();
                }
                if report.hung_up {
                    break;
                }
            }
        }
    }
    // Whatever the client still sends, up to its hang-up.
    while let Some(line) = read_line(&mut reader).unwrap_or(None) {
        report.received.push(line);
    }
    Ok(report)
}

/// One line without its line end, or `None` at the end of input (or a reset).
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Option<String>, KitError> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) => Ok(None),
        Ok(_) => {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            Ok(Some(String::from_utf8_lossy(&line).into_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
        Err(e) => Err(e.into()),
    }
}
