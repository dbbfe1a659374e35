//! A POP3 server that plays a script: the byte-exact oracle of the client tests.
//!
//! [`ScriptedServer`] plays a [`Script`] (`S:` lines it sends, `C:` lines it
//! expects, bytes that must come in one read, silences, stalls, trickled
//! replies, a switch to TLS, a close) on 127.0.0.1 and returns a
//! [`Transcript`] of every byte the client sent, with the first
//! [`Mismatch`]. It serves blocking and async clients alike (one std thread
//! per connection; [`ScriptedServer::finish_async`] waits without blocking
//! a runtime).
//!
//! ```
//! use pop3_scripted_server::{Script, ScriptedServer};
//! # use std::io::{BufRead, BufReader, Write};
//!
//! let script = Script::parse("S: +OK ready\nC: QUIT\nS: +OK bye\n")?;
//! let server = ScriptedServer::start(script)?;
//! // The client under test; a bare socket here.
//! let mut socket = std::net::TcpStream::connect(server.addr())?;
//! let mut reader = BufReader::new(socket.try_clone()?);
//! let mut line = String::new();
//! reader.read_line(&mut line)?;
//! socket.write_all(b"QUIT\r\n")?;
//! reader.read_line(&mut line)?;
//! let transcript = server.finish()?;
//! transcript.assert_complete();
//! assert_eq!(transcript.received(), b"QUIT\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Why a crate of its own: the test kit (`pop3-tests`) re-exports it for the
//! adapters' tests and the shared suites, and the `pop3` command's tests use
//! it directly, so that `pop3-cli` depends on no test kit, even as a
//! dev-dependency. It does not depend on `pop3-proto`, so the oracle cannot
//! share the client's bugs; TLS and line reads come from `pop3-demo-server`
//! (its connection plumbing and [`TestCa`](pop3_demo_server::TestCa), not its
//! POP3 logic). Its tests are the kit's (`tests/src/tests.rs`), which drive
//! it with plain `TcpStream` and rustls clients.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod network;
mod script;
mod scripted;
mod util;

pub use script::{Expect, HAND_OFF_SETTLE, Script, Step};
pub use scripted::{Mismatch, ScriptedServer, ScriptedServerBuilder, Transcript};

/// Errors of the server itself (not of the client under test: those are in
/// the [`Transcript`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the `pop3-demo-server` part (the test CA, certificates,
    /// PEM files, and the mailbox server where the kit uses this type).
    #[error(transparent)]
    Server(#[from] pop3_demo_server::Error),
    /// Socket trouble on the server side.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The text form of a script is malformed.
    #[error("script line {line}: {message}")]
    ScriptParse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing happened in time (for example no client connected).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A server thread panicked.
    #[error("a server thread panicked")]
    ThreadPanicked,
    /// The server was used the wrong way.
    #[error("misuse: {0}")]
    Usage(String),
}
