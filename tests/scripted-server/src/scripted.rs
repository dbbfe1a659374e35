//! A POP3 server that plays a [`Script`] and records what the client sent.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::Error;
use crate::script::{Expect, HAND_OFF_SETTLE, Script, Step};
use crate::util::escape_bytes;
use pop3_demo_server::TestCa;
use pop3_demo_server::conn::{Conn, Line};

/// Longest client line the scripted server reads before reporting a
/// mismatch (generous: RFC 2449 allows 255 octets, SASL lines are longer).
const MAX_LINE: usize = 64 * 1024;

/// Where the connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    ImplicitTls,
}

/// Options for a [`ScriptedServer`]; start with [`ScriptedServer::builder`].
#[derive(Debug, Clone)]
pub struct ScriptedServerBuilder {
    script: Script,
    mode: Mode,
    connections: usize,
    accept_timeout: Duration,
    read_timeout: Duration,
    linger: Duration,
    tls: Option<Arc<ServerConfig>>,
}

impl ScriptedServerBuilder {
    /// TLS from the first byte (POP3S, port 995 style).
    pub fn implicit_tls(mut self) -> Self {
        self.mode = Mode::ImplicitTls;
        self
    }

    /// Serve `n` connections, each running the whole script (default 1).
    /// Each connection gets its own thread.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// How long to wait for each next connection (default 30 s); after that
    /// [`ScriptedServer::finish`] fails with [`Error::Timeout`].
    pub fn accept_timeout(mut self, timeout: Duration) -> Self {
        self.accept_timeout = timeout;
        self
    }

    /// How long to wait for each expected client line (default 10 s); on
    /// expiry the transcript reports a mismatch with what arrived so far.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// After the script's last step (or a `CLOSE`), the server closes its
    /// sending side and keeps recording client bytes until the client closes
    /// or this much time passes (default 1 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Use this TLS config instead of the shared test certificate's ([`TestCa::shared`]), for
    /// example one with a certificate the client does not trust.
    pub fn tls_config(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds 127.0.0.1 on a random port and starts serving.
    pub fn start(self) -> Result<ScriptedServer, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let options = Arc::new(RunOptions {
            script: self.script,
            mode: self.mode,
            read_timeout: self.read_timeout,
            linger: self.linger,
            tls: self.tls.unwrap_or_else(|| TestCa::shared().server_config()),
        });
        let connections = self.connections;
        let accept_timeout = self.accept_timeout;
        let stop_flag = Arc::clone(&stop);
        let acceptor = thread::Builder::new()
            .name(format!("scripted-accept-{}", addr.port()))
            .spawn(move || {
                accept_loop(listener, options, connections, accept_timeout, stop_flag)
            })?;
        Ok(ScriptedServer {
            addr,
            connections,
            acceptor: Some(acceptor),
            stop,
        })
    }
}

#[derive(Debug)]
struct RunOptions {
    script: Script,
    mode: Mode,
    read_timeout: Duration,
    linger: Duration,
    tls: Arc<ServerConfig>,
}

/// A POP3 server on 127.0.0.1 (random port) that plays a [`Script`] on each
/// connection and records every byte the client sent.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use pop3_scripted_server::{Script, ScriptedServer};
///
/// let server = ScriptedServer::start(Script::parse("
///     S: +OK ready
///     C: QUIT
///     S: +OK bye
/// ")?)?;
/// let mut stream = std::net::TcpStream::connect(server.addr())?;
/// let mut reader = BufReader::new(stream.try_clone()?);
/// let mut line = String::new();
/// reader.read_line(&mut line)?;
/// stream.write_all(b"QUIT\r\n")?;
/// reader.read_line(&mut line)?;
/// drop((stream, reader));
///
/// let transcript = server.finish()?;
/// transcript.assert_complete();
/// assert_eq!(transcript.received(), b"QUIT\r\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping the server without [`finish`](ScriptedServer::finish) stops
/// accepting; running connections end at their next timeout at the latest.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    connections: usize,
    acceptor: Option<JoinHandle<Result<Vec<Transcript>, Error>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedServer {
    /// Serves one cleartext connection with `script`.
    pub fn start(script: Script) -> Result<ScriptedServer, Error> {
        ScriptedServer::builder(script).start()
    }

    /// Serves one implicit-TLS connection with `script`, using the shared test
    /// certificate ([`TestCa::shared`]).
    pub fn start_tls(script: Script) -> Result<ScriptedServer, Error> {
        ScriptedServer::builder(script).implicit_tls().start()
    }

    /// Options: TLS mode, number of connections, timeouts.
    pub fn builder(script: Script) -> ScriptedServerBuilder {
        ScriptedServerBuilder {
            script,
            mode: Mode::Plain,
            connections: 1,
            accept_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(1),
            tls: None,
        }
    }

    /// The address to connect to (127.0.0.1 and the chosen port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chosen port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits for the single connection to finish and returns its transcript.
    ///
    /// `Ok` means the server ran; whether the *client* did what the script
    /// expected is in the [`Transcript`]. Errors: no connection within the
    /// accept timeout, a server thread panicked, or the server was built for
    /// more than one connection (use [`finish_all`](Self::finish_all)).
    pub fn finish(self) -> Result<Transcript, Error> {
        if self.connections != 1 {
            return Err(Error::Usage(format!(
                "finish() on a server for {} connections: use finish_all()",
                self.connections
            )));
        }
        let mut all = self.finish_all()?;
        all.pop()
            .ok_or_else(|| Error::Usage("no transcript".to_owned()))
    }

    /// [`finish`](Self::finish) for async tests: the wait runs on a thread of
    /// its own, so the future does not block the runtime (whose tasks may be
    /// the very client the server waits for). Works with any executor.
    ///
    /// ```
    /// # async fn demo(server: pop3_scripted_server::ScriptedServer) -> Result<(), pop3_scripted_server::Error> {
    /// // ... the client under test runs on the same runtime, then:
    /// server.finish_async().await?.assert_complete();
    /// # Ok(())
    /// # }
    /// ```
    pub fn finish_async(
        self,
    ) -> impl std::future::Future<Output = Result<Transcript, Error>> + Send + 'static {
        let slot = Arc::new(Mutex::new(Waiting::default()));
        let for_thread = Arc::clone(&slot);
        let spawned = thread::Builder::new()
            .name(format!("scripted-finish-{}", self.addr.port()))
            .spawn(move || {
                let result = self.finish();
                let mut waiting = for_thread.lock().unwrap_or_else(PoisonError::into_inner);
                waiting.result = Some(result);
                if let Some(waker) = waiting.waker.take() {
                    waker.wake();
                }
            });
        if let Err(e) = spawned {
            slot.lock().unwrap_or_else(PoisonError::into_inner).result = Some(Err(e.into()));
        }
        std::future::poll_fn(move |cx| {
            let mut waiting = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match waiting.result.take() {
                Some(result) => Poll::Ready(result),
                None => {
                    waiting.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }

    /// Waits for all connections to finish; transcripts in accept order.
    pub fn finish_all(mut self) -> Result<Vec<Transcript>, Error> {
        let acceptor = self
            .acceptor
            .take()
            .ok_or_else(|| Error::Usage("server already finished".to_owned()))?;
        acceptor.join().map_err(|_| Error::ThreadPanicked)?
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The hand-over between [`ScriptedServer::finish_async`]'s thread and its
/// future.
#[derive(Default)]
struct Waiting {
    result: Option<Result<Transcript, Error>>,
    waker: Option<Waker>,
}

fn accept_loop(
    listener: TcpListener,
    options: Arc<RunOptions>,
    connections: usize,
    accept_timeout: Duration,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Transcript>, Error> {
    let mut workers = Vec::with_capacity(connections);
    let mut deadline = Instant::now() + accept_timeout;
    while workers.len() < connections {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                deadline = Instant::now() + accept_timeout;
                let options = Arc::clone(&options);
                let worker = thread::Builder::new()
                    .name(format!("scripted-conn-{}", workers.len()))
                    .spawn(move || run_connection(stream, &options))?;
                workers.push(worker);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let message = format!(
                        "waiting for connection {} of {connections}",
                        workers.len() + 1
                    );
                    // let the started connections end before failing
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(Error::Timeout(message));
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    workers
        .into_iter()
        .map(|w| w.join().map_err(|_| Error::ThreadPanicked))
        .collect()
}

fn run_connection(stream: TcpStream, options: &RunOptions) -> Transcript {
    let mut transcript = Transcript::default();
    let mut conn = match Conn::new(stream, true) {
        Ok(conn) => conn,
        Err(e) => {
            transcript.failure = Some(format!("setting up the socket: {e}"));
            return transcript;
        }
    };
    let _ = conn.set_read_timeout(Some(options.read_timeout));
    if options.mode == Mode::ImplicitTls {
        if let Err(e) = conn.start_tls(Arc::clone(&options.tls)) {
            transcript.failure = Some(format!("TLS handshake failed: {e}"));
            finish_transcript(&mut transcript, &mut conn);
            return transcript;
        }
    }
    let script = &options.script;
    let mut closed = false;
    let mut completed = true;
    for (index, step) in script.steps().iter().enumerate() {
        let fail = |transcript: &mut Transcript, expected: String, got: Vec<u8>, note: String| {
            transcript.mismatch = Some(Mismatch {
                step: index,
                line: script.source_line(index),
                expected,
                got,
                note,
            });
        };
        match step {
            Step::Send(bytes) => {
                if let Err(e) = conn.write_all(bytes) {
                    transcript.failure = Some(format!("step {index}: sending failed: {e}"));
                    completed = false;
                    break;
                }
            }
            Step::Expect(expect) => match read_expected(&mut conn, expect) {
                Ok(()) => {}
                Err((got, note)) => {
                    fail(&mut transcript, expect.describe(), got, note);
                    completed = false;
                    break;
                }
            },
            Step::ExpectEof | Step::ExpectEofOrReset => match conn.read_line(MAX_LINE) {
                Ok(Line::Eof(rest)) if rest.is_empty() => {}
                Err(e)
                    if *step == Step::ExpectEofOrReset
                        && e.kind() == io::ErrorKind::ConnectionReset
                        && conn.buffered().is_empty() => {}
                Ok(Line::Eof(rest) | Line::Complete(rest) | Line::TooLong(rest)) => {
                    fail(&mut transcript, "<EOF>".to_owned(), rest, String::new());
                    completed = false;
                    break;
                }
                Err(e) => {
                    let got = conn.discard_buffered();
                    fail(
                        &mut transcript,
                        "<EOF>".to_owned(),
                        got,
                        format!("read error: {e}"),
                    );
                    completed = false;
                    break;
                }
            },
            Step::ExpectOneRead(expected) => {
                let expected_text = format!("{} in one read", escape_bytes(expected));
                if !conn.buffered().is_empty() {
                    let got = conn.discard_buffered();
                    fail(
                        &mut transcript,
                        expected_text,
                        got,
                        "these bytes arrived before, unread".to_owned(),
                    );
                    completed = false;
                    break;
                }
                let note = match conn.fill() {
                    Ok(_) if conn.buffered() == expected.as_slice() => None,
                    Ok(0) => Some("the client closed the connection".to_owned()),
                    Ok(_) => Some(String::new()),
                    Err(e) => Some(format!("read error: {e}")),
                };
                let got = conn.discard_buffered();
                if let Some(note) = note {
                    fail(&mut transcript, expected_text, got, note);
                    completed = false;
                    break;
                }
            }
            Step::Quiet(duration) => {
                let _ = conn.set_read_timeout(Some(*duration));
                let note = if conn.buffered().is_empty() {
                    match conn.fill() {
                        Ok(0) => Some("the client closed the connection".to_owned()),
                        Ok(_) => Some("sent before the reply".to_owned()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            None
                        }
                        Err(e) => Some(format!("read error: {e}")),
                    }
                } else {
                    Some("sent before the reply".to_owned())
                };
                let _ = conn.set_read_timeout(Some(options.read_timeout));
                if let Some(note) = note {
                    let got = conn.discard_buffered();
                    fail(
                        &mut transcript,
                        format!("<nothing for {duration:?}>"),
                        got,
                        note,
                    );
                    completed = false;
                    break;
                }
            }
            Step::Drip {
                bytes,
                chunk,
                every,
            } => {
                let (sent, hung_up) = conn.drip(bytes, *chunk, *every);
                transcript.dripped += sent;
                if hung_up {
                    // Record what the client sent up to its hang-up.
                    transcript.hung_up = true;
                    conn.drain(options.linger);
                    completed = false;
                    break;
                }
            }
            Step::Sleep(duration) => thread::sleep(*duration),
            Step::StartTls => {
                if !conn.buffered().is_empty() {
                    let got = conn.discard_buffered();
                    fail(
                        &mut transcript,
                        "<nothing before the TLS handshake>".to_owned(),
                        got,
                        "the client sent data after STLS before TLS was established".to_owned(),
                    );
                    completed = false;
                    break;
                }
                if let Err(e) = conn.start_tls(Arc::clone(&options.tls)) {
                    transcript.failure = Some(format!("step {index}: TLS handshake failed: {e}"));
                    completed = false;
                    break;
                }
            }
            Step::HandOff => {
                // Whatever is buffered or arrives within the settle time never reaches the
                // "new process".
                let mut dropped = conn.drain(HAND_OFF_SETTLE);
                transcript.dropped.append(&mut dropped);
                let _ = conn.set_read_timeout(Some(options.read_timeout));
            }
            Step::Close => {
                conn.shutdown_write();
                closed = true;
                break;
            }
            Step::CloseAbruptly => {
                conn.shutdown_write_abruptly();
                closed = true;
                break;
            }
        }
    }
    transcript.completed = completed && transcript.mismatch.is_none();
    if transcript.completed {
        // let the client see our EOF, and record what it still sends
        if !closed {
            conn.shutdown_write();
        }
        let offset = conn.received().len() - conn.buffered().len();
        conn.drain(options.linger);
        transcript.after_script_offset = Some(offset);
    }
    finish_transcript(&mut transcript, &mut conn);
    transcript
}

fn finish_transcript(transcript: &mut Transcript, conn: &mut Conn) {
    conn.close();
    let (received, sent, tls_offset) = conn.take_logs();
    transcript.received = received;
    transcript.sent = sent;
    transcript.tls_offset = tls_offset;
}

/// Reads one line and compares it; on failure returns what was read and a
/// note.
fn read_expected(conn: &mut Conn, expect: &Expect) -> Result<(), (Vec<u8>, String)> {
    match conn.read_line(MAX_LINE) {
        Ok(Line::Complete(line)) if expect.matches(&line) => Ok(()),
        Ok(Line::Complete(line)) => {
            let note = if line.ends_with(b"\r\n") {
                String::new()
            } else {
                "line ends with a bare LF".to_owned()
            };
            Err((line, note))
        }
        Ok(Line::Eof(partial)) => Err((partial, "the client closed the connection".to_owned())),
        Ok(Line::TooLong(partial)) => Err((partial, format!("no LF within {MAX_LINE} bytes"))),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err((
                conn.discard_buffered(),
                "timed out waiting for the line".to_owned(),
            ))
        }
        Err(e) => Err((conn.discard_buffered(), format!("read error: {e}"))),
    }
}

/// The first difference between a script and what the client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the failing step in [`Script::steps`].
    pub step: usize,
    /// Line of the script text (1-based) if the script was parsed.
    pub line: Option<usize>,
    /// What the script expected, escaped for display (`USER alice\r\n`).
    pub expected: String,
    /// What arrived instead (raw bytes; may be a partial line).
    pub got: Vec<u8>,
    /// Why, when it is not plain inequality: timeout, EOF, bare LF, data
    /// before a TLS handshake.
    pub note: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}", self.step)?;
        if let Some(line) = self.line {
            write!(f, " (script line {line})")?;
        }
        write!(
            f,
            ": expected {:?}, got {:?}",
            self.expected,
            escape_bytes(&self.got)
        )?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

/// What happened on one scripted connection.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    received: Vec<u8>,
    sent: Vec<u8>,
    completed: bool,
    mismatch: Option<Mismatch>,
    failure: Option<String>,
    tls_offset: Option<usize>,
    after_script_offset: Option<usize>,
    dropped: Vec<u8>,
    dripped: usize,
    hung_up: bool,
}

impl Transcript {
    /// Whether the client hung up during a [`Step::Drip`] (a write failed),
    /// which ended the script there.
    pub fn hung_up(&self) -> bool {
        self.hung_up
    }

    /// How many bytes the [`Step::Drip`] steps put on the wire (of the
    /// ciphertext over TLS).
    pub fn dripped(&self) -> usize {
        self.dripped
    }

    /// Every byte the client sent, in order (decrypted after a TLS switch).
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// [`received`](Self::received) as text (lossy UTF-8), for assertions.
    pub fn received_str(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// The client's bytes split into lines, each with its line end.
    pub fn received_lines(&self) -> Vec<&[u8]> {
        self.received.split_inclusive(|&b| b == b'\n').collect()
    }

    /// Every byte the server sent (before TLS encryption).
    pub fn sent(&self) -> &[u8] {
        &self.sent
    }

    /// The bytes a [`Step::HandOff`] dropped (they are also in
    /// [`received`](Self::received)).
    pub fn dropped_at_hand_off(&self) -> &[u8] {
        &self.dropped
    }

    /// Whether every step of the script ran and matched.
    pub fn is_complete(&self) -> bool {
        self.completed
    }

    /// The first mismatch, if the client deviated from the script.
    pub fn mismatch(&self) -> Option<&Mismatch> {
        self.mismatch.as_ref()
    }

    /// An I/O or TLS failure that stopped the script (for example the client
    /// rejecting the certificate), if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Offset in [`received`](Self::received) where TLS started (0 for
    /// implicit TLS), if it did.
    pub fn tls_offset(&self) -> Option<usize> {
        self.tls_offset
    }

    /// The bytes the client sent before TLS started (all of them without
    /// TLS).
    pub fn received_before_tls(&self) -> &[u8] {
        &self.received[..self.tls_offset.unwrap_or(self.received.len())]
    }

    /// What the client sent after the script's last step, while the server
    /// lingered (empty if the script did not complete).
    pub fn received_after_script(&self) -> &[u8] {
        self.after_script_offset
            .and_then(|offset| self.received.get(offset..))
            .unwrap_or_default()
    }

    /// Panics with a readable report unless the script completed and the
    /// client sent nothing after it.
    #[track_caller]
    pub fn assert_complete(&self) {
        assert!(self.is_complete(), "scripted session failed: {self}");
        assert!(
            self.received_after_script().is_empty(),
            "client sent bytes after the script ended: {:?}\n{self}",
            escape_bytes(self.received_after_script())
        );
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.completed {
            write!(f, "completed")?;
        } else {
            write!(f, "incomplete")?;
        }
        if let Some(m) = &self.mismatch {
            write!(f, "; mismatch at {m}")?;
        }
        if let Some(e) = &self.failure {
            write!(f, "; failure: {e}")?;
        }
        if self.hung_up {
            write!(
                f,
                "; the client hung up after {} dripped bytes",
                self.dripped
            )?;
        }
        write!(
            f,
            "\n--- client sent ---\n{}\n--- server sent ---\n{}",
            escape_bytes(&self.received).replace("\\n", "\\n\n"),
            escape_bytes(&self.sent).replace("\\n", "\\n\n")
        )
    }
}
