//! The server side of one connection, cleartext or TLS, with a line reader
//! whose buffer is visible, so that a switch to TLS happens at an exact byte
//! boundary and bytes sent before it can be detected. [`crate::MailboxServer`]
//! and the test kit's scripted server both use it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

/// What [`Conn::read_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line including its `\n`.
    Complete(Vec<u8>),
    /// The peer closed the connection; the bytes of an unfinished line (maybe
    /// none).
    Eof(Vec<u8>),
    /// No `\n` within the limit; the bytes read so far.
    TooLong(Vec<u8>),
}

/// One accepted connection, server side: see the [module](self) docs.
pub struct Conn {
    tcp: TcpStream,
    stream: Option<Stream>,
    buf: Vec<u8>,
    /// Every byte received (after TLS decryption), if recording.
    received: Option<Vec<u8>>,
    /// Every byte sent (before TLS encryption), if recording.
    sent: Option<Vec<u8>>,
    tls_offset: Option<usize>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.tcp.peer_addr().ok())
            .field("tls", &self.is_tls())
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Wraps an accepted socket (cleartext); `record` keeps a copy of every
    /// byte received and sent, for [`Conn::take_logs`].
    pub fn new(tcp: TcpStream, record: bool) -> io::Result<Conn> {
        tcp.set_nonblocking(false)?;
        tcp.set_nodelay(true)?;
        let stream = Stream::Plain(tcp.try_clone()?);
        Ok(Conn {
            tcp,
            stream: Some(stream),
            buf: Vec::new(),
            received: record.then(Vec::new),
            sent: record.then(Vec::new),
            tls_offset: None,
        })
    }

    /// The socket's read timeout (`None`: block).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the bytes received but not consumed yet.
    pub fn discard_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Every byte received so far (empty when not recording).
    pub fn received(&self) -> &[u8] {
        self.received.as_deref().unwrap_or_default()
    }

    /// Takes the records: bytes received, bytes sent, and the offset in the
    /// received bytes where TLS started.
    pub fn take_logs(&mut self) -> (Vec<u8>, Vec<u8>, Option<usize>) {
        (
            self.received.take().unwrap_or_default(),
            self.sent.take().unwrap_or_default(),
            self.tls_offset,
        )
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection closed"))
    }

    /// One read from the socket (at most 16 KiB) appended to the buffer
    /// ([`Conn::buffered`]); returns 0 at EOF. Errors as the socket's read
    /// (`WouldBlock` or `TimedOut` after the read timeout).
    pub fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            let result = match self.stream()? {
                Stream::Plain(s) => s.read(&mut chunk),
                Stream::Tls(s) => s.read(&mut chunk),
            };
            match result {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that closes without close_notify: treat as EOF, the
                // kit reports what it got.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break 0,
                Err(e) => return Err(e),
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        if let Some(log) = self.received.as_mut() {
            log.extend_from_slice(&chunk[..n]);
        }
        Ok(n)
    }

    /// Reads one line (up to and including `\n`), at most `limit` bytes.
    pub fn read_line(&mut self, limit: usize) -> io::Result<Line> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i + 1;
                if end > limit {
                    return Ok(Line::TooLong(self.buf.drain(..).collect()));
                }
                return Ok(Line::Complete(self.buf.drain(..end).collect()));
            }
            if self.buf.len() > limit {
                return Ok(Line::TooLong(self.buf.drain(..).collect()));
            }
            searched = self.buf.len();
            if self.fill()? == 0 {
                return Ok(Line::Eof(self.buf.drain(..).collect()));
            }
        }
    }

    /// Reads and records until EOF, an error or `deadline`; returns the bytes
    /// read (including what was buffered).
    pub fn drain(&mut self, linger: Duration) -> Vec<u8> {
        let deadline = Instant::now() + linger;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.tcp.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Writes and flushes `bytes` (recorded when recording).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.stream()? {
            Stream::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()?;
            }
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()?;
            }
        }
        if let Some(log) = self.sent.as_mut() {
            log.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Writes `bytes` `chunk` bytes at a time (at least 1), pausing `every` before each
    /// piece: a server that trickles. Over TLS the pieces are of the records' *ciphertext*, so
    /// the client gets no plaintext at all until a record is complete. Stops at the first
    /// failed write (the client hung up). Returns how many bytes went out (of the ciphertext
    /// over TLS) and whether a write failed. The plaintext is recorded whole.
    pub fn drip(&mut self, bytes: &[u8], chunk: usize, every: Duration) -> (usize, bool) {
        let raw = match self.stream.as_mut() {
            None => return (0, true),
            Some(Stream::Plain(_)) => bytes.to_vec(),
            Some(Stream::Tls(s)) => {
                let mut raw = Vec::new();
                if s.conn.writer().write_all(bytes).is_err() {
                    return (0, true);
                }
                while s.conn.wants_write() {
                    if s.conn.write_tls(&mut raw).is_err() {
                        return (0, true);
                    }
                }
                raw
            }
        };
        if let Some(log) = self.sent.as_mut() {
            log.extend_from_slice(bytes);
        }
        let mut sent = 0;
        for piece in raw.chunks(chunk.max(1)) {
            std::thread::sleep(every);
            if self
                .tcp
                .write_all(piece)
                .and_then(|()| self.tcp.flush())
                .is_err()
            {
                return (sent, true);
            }
            sent += piece.len();
        }
        (sent, false)
    }

    /// Switches to TLS and completes the handshake. The caller must have
    /// dealt with [`Conn::buffered`] bytes: they are cleartext.
    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let Some(Stream::Plain(mut sock)) = self.stream.take() else {
            return Err(io::Error::other("TLS is already active"));
        };
        self.buf.clear();
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            // complete_io drives the whole handshake; it returns early only
            // on errors (UnexpectedEof when the peer goes away)
            if tls.complete_io(&mut sock)? == (0, 0) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no progress in the TLS handshake",
                ));
            }
        }
        self.tls_offset = self.received.as_ref().map(Vec::len);
        self.stream = Some(Stream::Tls(Box::new(StreamOwned::new(tls, sock))));
        Ok(())
    }

    /// Graceful end of our sending side: close_notify (TLS) and a TCP FIN.
    pub fn shutdown_write(&mut self) {
        if let Some(Stream::Tls(s)) = self.stream.as_mut() {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    /// A TCP FIN without TLS close_notify (a truncation, from TLS's view).
    pub fn shutdown_write_abruptly(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    /// Closes both directions at once.
    pub fn close(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
        self.stream = None;
    }
}
