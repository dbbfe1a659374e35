//! The byte stream under a [`Connection`](crate::Connection) made by `connect`.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

use rustls::{ClientConnection, StreamOwned};

/// A TCP connection, plain or wrapped in TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext TCP (before STLS, or with [`Security::None`](crate::Security::None)).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref(),
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// The rustls session, when encrypted (to inspect the negotiated version or the peer's
    /// certificates).
    pub fn tls_session(&self) -> Option<&ClientConnection> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => Some(&tls.conn),
        }
    }
}

/// Over TLS, one call reads the socket at most once. rustls's own `read` loops until a whole
/// record is in, which a server trickling a record's bytes could stretch without end; here a
/// call that received bytes but no complete record yet fails with
/// [`io::ErrorKind::Interrupted`], so that the caller checks its deadline before reading again
/// (`std::io` helpers such as `read_exact` retry on it).
impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(tls) => {
                if tls.conn.wants_read() {
                    let (read, written) = tls.conn.complete_io(&mut tls.sock)?;
                    if (read > 0 || written > 0) && tls.conn.wants_read() {
                        return Err(io::ErrorKind::Interrupted.into());
                    }
                }
                tls.read(buf)
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write_vectored(bufs),
            Self::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}
