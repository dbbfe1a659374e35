//! The sans-IO run loop over a real `TcpStream`: log in with USER/PASS, download every
//! message (pipelined when the server offers PIPELINING), QUIT.
//!
//! ```sh
//! POP3_PASSWORD=secret cargo run -p pop3-proto --example tcp_run_loop -- 127.0.0.1:1110 alice
//! ```
//!
//! Cleartext TCP, so the password crosses the network unencrypted: this example is for a
//! server on loopback. Over a real network, put TLS between the socket and the client (the
//! `pop3-blocking` adapter does; the loop stays the same, with `handle_tls_established`).
//!
//! The loop is the one every driver of [`Client`] needs, in this order:
//!
//! 1. drain [`Client::poll_event`], queueing the next commands as the replies come (a reply
//!    is what releases the next command, so this comes before sending);
//! 2. send everything [`Client::poll_transmit`] gives (the buffer is cleared each turn, and the
//!    pipeline window is bounded in bytes, so writing it all before reading cannot deadlock);
//! 3. read once, straight into [`Client::input_buffer`], and hand over EOF with
//!    [`Client::handle_eof`] (then `poll_event` reports a [`ProtocolError`] unless the session
//!    was over).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use pop3_proto::{Client, Command, Config, Event, Phase, ProtocolError};

/// What can go wrong: the server's `-ERR` (with its text), a protocol violation, or I/O.
#[derive(Debug)]
pub enum Failure {
    /// The server refused a command.
    Refused(String),
    /// The server broke the protocol or hung up.
    Protocol(ProtocolError),
    /// The socket failed.
    Io(std::io::Error),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Logs in to `addr` as `user` and returns every message, in order, as the server sent it
/// (dot-unstuffed).
pub fn fetch_all(addr: &str, user: &str, password: &str) -> Result<Vec<Vec<u8>>, Failure> {
    let mut stream = TcpStream::connect(addr)?;
    let mut config = Config::default();
    // Loopback only: see the module docs.
    config.allow_plaintext_auth = true;
    let mut client = Client::new(config);

    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    let mut out = Vec::new();
    loop {
        // 1. Handle every event the buffered input holds, queueing what comes next.
        while let Some(event) = client.poll_event()? {
            match event {
                Event::Greeting { ok: true, .. } => {
                    client.enqueue(Command::user(user)).unwrap();
                    client.enqueue(Command::pass(password)).unwrap();
                }
                Event::LoggedIn { .. } => {
                    client.enqueue(Command::Stat).unwrap();
                }
                Event::Stat { count, .. } => {
                    // Every RETR at once; the client releases them as the pipelining rules
                    // allow (one at a time without PIPELINING, a bounded window with it).
                    for msg in 1..=count {
                        client.enqueue(Command::retr(msg)).unwrap();
                    }
                    client.enqueue(Command::Quit).unwrap();
                }
                Event::Body { chunk, .. } => current.extend_from_slice(chunk),
                Event::BodyEnd { .. } => messages.push(std::mem::take(&mut current)),
                Event::Greeting {
                    ok: false, text, ..
                }
                | Event::Err { text, .. } => {
                    return Err(Failure::Refused(text.to_owned()));
                }
                _ => {}
            }
        }
        if client.phase() == Phase::Closed && client.is_idle() {
            // QUIT answered.
            return Ok(messages);
        }
        // 2. Send what the replies released (the buffer is cleared each turn).
        out.clear();
        if client.poll_transmit(&mut out) > 0 {
            stream.write_all(&out)?;
        }
        // 3. Read once, into the client's own buffer (no copy but the kernel's).
        let buf = client.input_buffer(64 * 1024);
        let n = stream.read(buf)?;
        if n == 0 {
            client.handle_eof();
        } else {
            client.commit_input(n);
        }
    }
}

#[allow(dead_code)] // when included by the test that runs this example
fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(user)) = (args.next(), args.next()) else {
        eprintln!("usage: POP3_PASSWORD=... tcp_run_loop HOST:PORT USER");
        std::process::exit(2);
    };
    let password = std::env::var("POP3_PASSWORD").unwrap_or_default();
    match fetch_all(&addr, &user, &password) {
        Ok(messages) => {
            for (i, m) in messages.iter().enumerate() {
                println!("message {}: {} octets", i + 1, m.len());
            }
        }
        Err(e) => {
            eprintln!("{e:?}");
            std::process::exit(1);
        }
    }
}
