//! The clients the benchmark runs in its own binary (`pop3-bench client NAME`): the two
//! library adapters, used as an application would use them, and the raw lower bound.
//!
//! Each downloads every message of the mailbox once (kept on the server), counts the bytes,
//! throws them away and quits.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::server::{PASSWORD, USER};

/// What a client received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    /// Messages received in full.
    pub messages: u64,
    /// Their octets: message octets (dot-unstuffed) for the library clients, wire bytes
    /// (status lines, stuffing and terminators included) for the raw client.
    pub bytes: u64,
}

/// The timeout the library clients use for each read and write.
const TIMEOUT: Duration = Duration::from_secs(300);

/// An I/O error with a message.
fn failed(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

/// `pop3-blocking`: connect (no TLS: the bench server is plain loopback, so plaintext login
/// must be allowed), log in with the best method the server offers, STAT, `retr_many` over
/// every message, QUIT. `window` overrides the core's pipeline window
/// ([`Config::pipeline_window`](pop3_blocking::Config::pipeline_window), default 512).
pub fn blocking(port: u16, window: Option<usize>) -> io::Result<Received> {
    use pop3_blocking::{Connection, Options, RetrEvent, Security};

    let mut options = Options::default().allow_plaintext(true).timeout(TIMEOUT);
    if let Some(window) = window {
        options.config.pipeline_window = window;
    }
    let mut pop = Connection::connect("127.0.0.1", port, Security::None, &options)
        .map_err(|e| failed(format!("connect: {e}")))?;
    pop.login(USER, PASSWORD)
        .map_err(|e| failed(format!("login: {e}")))?;
    let stat = pop.stat().map_err(|e| failed(format!("STAT: {e}")))?;
    let all: Vec<u32> = (1..=stat.count).collect();
    let mut received = Received::default();
    pop.retr_many(&all, |msg, event| {
        match event {
            RetrEvent::Chunk(chunk) => received.bytes += chunk.len() as u64,
            RetrEvent::End { .. } => received.messages += 1,
            RetrEvent::Refused(e) => return Err(failed(format!("RETR {msg} refused: {e}"))),
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| failed(format!("RETR: {e}")))?;
    pop.quit().map_err(|e| failed(format!("QUIT: {e}")))?;
    Ok(received)
}

/// `pop3-async` on a current-thread Tokio runtime (one connection needs no more): the same
/// steps as [`blocking`].
pub fn asynchronous(port: u16, window: Option<usize>) -> io::Result<Received> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(asynchronous_session(port, window))
}

async fn asynchronous_session(port: u16, window: Option<usize>) -> io::Result<Received> {
    use pop3_async::{Connection, Options, RetrEvent, Security};

    let mut options = Options::default();
    options.timeout = TIMEOUT;
    options.login.allow_plaintext = true;
    if let Some(window) = window {
        options.config.pipeline_window = window;
    }
    let mut pop = Connection::connect("127.0.0.1", port, Security::None, &options)
        .await
        .map_err(|e| failed(format!("connect: {e}")))?;
    pop.login(USER, PASSWORD)
        .await
        .map_err(|e| failed(format!("login: {e}")))?;
    let stat = pop.stat().await.map_err(|e| failed(format!("STAT: {e}")))?;
    let all: Vec<u32> = (1..=stat.count).collect();
    let mut received = Received::default();
    pop.retr_many(&all, |msg, event| {
        match event {
            RetrEvent::Chunk(chunk) => received.bytes += chunk.len() as u64,
            RetrEvent::End { .. } => received.messages += 1,
            RetrEvent::Refused(e) => return Err(failed(format!("RETR {msg} refused: {e}"))),
            _ => {}
        }
        Ok(())
    })
    .await
    .map_err(|e| failed(format!("RETR: {e}")))?;
    pop.quit().await.map_err(|e| failed(format!("QUIT: {e}")))?;
    Ok(received)
}

/// The lower bound: it does no more work than any correct client could.
///
/// - USER and PASS one at a time (no CAPA, no STAT: it is told the message count), each reply
///   read with one `read` into the same buffer as everything else.
/// - Every `RETR 1..=messages` and QUIT built once and sent in a single `write`, before any
///   reply is read. Up to [`RAW_INLINE_COMMANDS`] of command bytes that write is made from
///   this thread (far below loopback's socket buffers, so it cannot block on a server that is
///   itself blocked writing replies); beyond that, from a second thread, so that reading never
///   waits for writing.
/// - One read buffer of [`RAW_BUFFER`] bytes; on the read side only bytes are counted and the
///   `CRLF . CRLF` terminators found with `memchr::memmem` (one search per message, no
///   per-line work, no parsing, no unstuffing, no copy), until the last one.
///
/// The bytes counted are the wire bytes of the RETR replies exactly: everything up to and
/// including the last terminator (status lines, stuffing and terminators included; the QUIT
/// reply that may follow in the same read is not counted), so that the benchmark can check
/// them against the server's count to the byte.
pub fn raw(port: u16, messages: u64) -> io::Result<Received> {
    raw_with_buffer(port, messages, RAW_BUFFER)
}

/// The raw client's read buffer (the library adapters read at most 64 KiB at a time).
pub const RAW_BUFFER: usize = 256 * 1024;

/// Up to this many bytes of commands, the raw client writes them from its own thread.
pub const RAW_INLINE_COMMANDS: usize = 64 * 1024;

/// The `CRLF . CRLF` that ends every multi-line reply (its first CRLF ends the last line).
const TERMINATOR: &[u8] = b"\r\n.\r\n";

/// [`raw`] with a read buffer of `buffer` bytes.
pub fn raw_with_buffer(port: u16, messages: u64, buffer: usize) -> io::Result<Received> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = vec![0u8; buffer.max(1024)];
    status(&mut socket, &mut buf, "greeting")?;
    socket.write_all(format!("USER {USER}\r\n").as_bytes())?;
    status(&mut socket, &mut buf, "USER")?;
    socket.write_all(format!("PASS {PASSWORD}\r\n").as_bytes())?;
    status(&mut socket, &mut buf, "PASS")?;

    let mut commands = Vec::with_capacity(messages as usize * 13 + 6);
    for i in 1..=messages {
        // `write!` to a Vec cannot fail.
        let _ = write!(commands, "RETR {i}\r\n");
    }
    commands.extend_from_slice(b"QUIT\r\n");
    let sender = if commands.len() <= RAW_INLINE_COMMANDS {
        socket.write_all(&commands)?;
        None
    } else {
        let mut writer = socket.try_clone()?;
        Some(std::thread::spawn(move || writer.write_all(&commands)))
    };

    let finder = memchr::memmem::Finder::new(TERMINATOR);
    let mut received = Received::default();
    // The last 4 bytes of the previous read stay in front of the new ones, so that a
    // terminator split across reads is found; a search starts at `from`, so that none is
    // found twice (a terminator cannot overlap the next one: a reply has a status line).
    let mut carry = 0;
    'reading: while received.messages < messages {
        let n = socket.read(&mut buf[carry..])?;
        if n == 0 {
            return Err(failed(format!(
                "end of input after {} of {messages} messages",
                received.messages
            )));
        }
        let end = carry + n;
        let mut from = 0;
        while let Some(at) = finder.find(&buf[from..end]) {
            from += at + TERMINATOR.len();
            received.messages += 1;
            if received.messages == messages {
                received.bytes += (from - carry) as u64;
                break 'reading;
            }
        }
        received.bytes += n as u64;
        let keep = end.min(TERMINATOR.len() - 1).min(end - from);
        buf.copy_within(end - keep..end, 0);
        carry = keep;
    }
    if let Some(sender) = sender {
        sender
            .join()
            .map_err(|_| failed("the writer thread panicked"))??;
    }
    Ok(received)
}

/// Reads one single-line reply into `buf` (lock-step: the server sends nothing else until the
/// next command) and checks that it is `+OK`.
fn status(socket: &mut TcpStream, buf: &mut [u8], what: &str) -> io::Result<()> {
    let mut have = 0;
    while !buf[..have].ends_with(b"\r\n") {
        if have == buf.len() {
            return Err(failed(format!("{what}: the reply is too long")));
        }
        match socket.read(&mut buf[have..])? {
            0 => return Err(failed(format!("end of input waiting for the {what} reply"))),
            n => have += n,
        }
    }
    if buf.starts_with(b"+OK") {
        Ok(())
    } else {
        Err(failed(format!(
            "{what}: {}",
            String::from_utf8_lossy(&buf[..have]).trim_end()
        )))
    }
}

/// This process's peak resident set size (`VmHWM`) in KiB, if `/proc` has it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM` field of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
