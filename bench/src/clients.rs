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

/// The lower bound: USER and PASS one at a time, then every `RETR 1..=messages` and QUIT in a
/// single write (from a second thread, so that reading never waits for writing), and on the
/// read side only count bytes and `CRLF . CRLF` terminators until the last one. No parsing,
/// no unstuffing, no copy. The bytes counted are wire bytes.
pub fn raw(port: u16, messages: u64) -> io::Result<Received> {
    raw_with_buffer(port, messages, RAW_BUFFER)
}

/// The raw client's read buffer. Larger is not faster: 64 KiB stays in the L2 cache.
pub const RAW_BUFFER: usize = 64 * 1024;

/// [`raw`] with a read buffer of `buffer` bytes.
pub fn raw_with_buffer(port: u16, messages: u64, buffer: usize) -> io::Result<Received> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut line = Vec::new();
    expect_ok(&mut socket, &mut line, "greeting")?;
    socket.write_all(format!("USER {USER}\r\n").as_bytes())?;
    expect_ok(&mut socket, &mut line, "USER")?;
    socket.write_all(format!("PASS {PASSWORD}\r\n").as_bytes())?;
    expect_ok(&mut socket, &mut line, "PASS")?;

    let mut writer = socket.try_clone()?;
    let sender = std::thread::spawn(move || {
        let mut commands = String::with_capacity(messages as usize * 12 + 6);
        for i in 1..=messages {
            commands.push_str("RETR ");
            commands.push_str(&i.to_string());
            commands.push_str("\r\n");
        }
        commands.push_str("QUIT\r\n");
        writer.write_all(commands.as_bytes())
    });

    let finder = memchr::memmem::Finder::new(b"\r\n.\r\n");
    let mut buf = vec![0u8; buffer.max(64)];
    let mut received = Received::default();
    // The last 4 bytes of the previous read stay in front of the new ones, so that a
    // terminator split across reads is found, and found once.
    let mut carry = 0;
    while received.messages < messages {
        let n = socket.read(&mut buf[carry..])?;
        if n == 0 {
            return Err(failed(format!(
                "end of input after {} of {messages} messages",
                received.messages
            )));
        }
        received.bytes += n as u64;
        let end = carry + n;
        received.messages += finder
            .find_iter(&buf[..end])
            .filter(|&pos| pos + 5 > carry)
            .count() as u64;
        let keep = end.min(4);
        buf.copy_within(end - keep..end, 0);
        carry = keep;
    }
    sender
        .join()
        .map_err(|_| failed("the writer thread panicked"))??;
    Ok(received)
}

/// Reads one status line byte by byte (only for the few lines before the RETRs) and checks
/// that it is `+OK`.
fn expect_ok(socket: &mut TcpStream, line: &mut Vec<u8>, what: &str) -> io::Result<()> {
    line.clear();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        if socket.read(&mut byte)? == 0 {
            return Err(failed(format!("end of input waiting for the {what} reply")));
        }
        line.push(byte[0]);
    }
    if line.starts_with(b"+OK") {
        Ok(())
    } else {
        Err(failed(format!(
            "{what}: {}",
            String::from_utf8_lossy(line).trim_end()
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
