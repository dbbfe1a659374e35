//! A sans-IO POP3 client: bytes from the server go in, command bytes and typed events come out.
//!
//! No sockets, no clock, no async runtime, no TLS and no randomness: [`Client`] is a
//! deterministic state machine that any event loop can drive, and that the `pop3-blocking`
//! (std) and `pop3-async` (Tokio) adapters drive for you. It implements RFC 1939 (POP3),
//! RFC 2449 (CAPA, pipelining, response codes), RFC 2595 (STLS), RFC 5034 (SASL AUTH with PLAIN,
//! LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, EXTERNAL and SCRAM-SHA-1/256/512 built in, the SCRAM
//! -PLUS variants with channel binding the adapter passes in: RFC 5802, 7677, 9266, 5929), RFC
//! 3206 (SYS and AUTH codes), RFC 6856 (UTF8, LANG) and APOP.
//!
//! # The run loop
//!
//! Drain [`Client::poll_event`] (queueing commands as replies come), then send what
//! [`Client::poll_transmit`] gives, then read once and hand the bytes to the client (or
//! [`Client::handle_eof`]); repeat. Below, a simulated server answers each write; a complete
//! loop over a real `TcpStream` is the `tcp_run_loop` example
//! (`pop3-proto/examples/tcp_run_loop.rs`, run by the test kit against its server).
//!
//! ```
//! use pop3_proto::{Client, Command, Config, Event, Phase};
//!
//! // A server, simulated: what it will say to each of our writes.
//! let mut server = vec![
//!     &b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"[..],
//!     b"+OK\r\nTOP\r\nUIDL\r\n.\r\n",           // the automatic CAPA
//!     b"+OK maildrop has 1 message\r\n",        // APOP
//!     b"+OK\r\nUIDL\r\n.\r\n",                  // CAPA again after login
//!     b"+OK 12 octets\r\nSubject: x\r\n\r\n..hi\r\n.\r\n", // RETR 1
//!     b"+OK bye\r\n",                           // QUIT
//! ]
//! .into_iter();
//!
//! let mut client = Client::new(Config::default());
//! // Connected with implicit TLS (port 995): report it before any input.
//! client.handle_tls_established().expect("right after connecting");
//! let mut wire = Vec::new();
//! let mut message = Vec::new();
//! let mut todo = vec![Command::Quit, Command::retr(1)];
//! let mut input = server.next();
//! while let Some(bytes) = input.take() {
//!     client.handle_input(bytes); // 3. what the server sent
//!     // 2. drain the events
//!     while let Some(event) = client.poll_event().expect("the server follows the protocol") {
//!         match event {
//!             Event::Greeting { apop: true, .. } => {
//!                 // APOP keeps the secret off the wire, but an observer could crack its
//!                 // digest offline: without TLS it needs `Config::allow_plaintext_auth`.
//!                 client.enqueue(Command::apop("mrose", "tanstaaf")).expect("valid");
//!             }
//!             Event::Body { chunk, .. } => message.extend_from_slice(chunk),
//!             _ => {}
//!         }
//!     }
//!     // Logged in, CAPA answered, nothing pending: the next command (one at a time here).
//!     if client.phase() == Phase::Transaction && client.capabilities().is_some() && client.is_idle() {
//!         if let Some(command) = todo.pop() {
//!             client.enqueue(command).expect("valid");
//!         }
//!     }
//!     // 1. what to send
//!     if client.poll_transmit(&mut wire) > 0 {
//!         input = server.next(); // the server answers what we wrote
//!     }
//! }
//! assert_eq!(message, b"Subject: x\r\n\r\n.hi\r\n");
//! assert_eq!(
//!     String::from_utf8(wire).unwrap(),
//!     "CAPA\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nCAPA\r\nRETR 1\r\nQUIT\r\n"
//! );
//! assert_eq!(client.phase(), Phase::Closed);
//! ```
//!
//! # Phases
//!
//! ```text
//!            greeting +OK             PASS/APOP/AUTH/RPOP +OK          QUIT
//! Greeting ───────────────> Authorization ─────────────────> Transaction ─────> Update
//!    │ -ERR greeting          │  │   ^                               │             │ +OK/-ERR
//!    │              STLS +OK  │  │   │ handle_tls_established        │             v
//!    │                        │  v   │                               └─ EOF ──> Closed
//!    │                        │ TlsHandshake
//!    └──────────────> Closed <┘ QUIT
//! ```
//!
//! [`Client::enqueue`] refuses a command of another phase with [`EnqueueError::WrongPhase`],
//! and sends nothing. The phase is that of the replies processed so far: queue TRANSACTION
//! commands after [`Event::LoggedIn`].
//!
//! # Errors, and what is still callable after each
//!
//! | what happened | what you get | what still works |
//! |---|---|---|
//! | the caller asked for something invalid | [`EnqueueError`] from `enqueue` | everything: nothing changed |
//! | the server said `-ERR` | [`Event::Err`] with its [`ResponseCode`] | everything (after `-ERR` to QUIT or a `-ERR` greeting the session is [`Phase::Closed`]) |
//! | the server broke the protocol, or hung up mid-session | [`ProtocolError`] from `poll_event`, sticky | getters only: every `poll_event` returns the same error, `poll_transmit` sends nothing, `enqueue` answers [`EnqueueError::Closed`]; close the connection without QUIT, so nothing is committed |
//!
//! # Security
//!
//! - After the `+OK` to STLS the client pauses; any byte received before
//!   [`Client::handle_tls_established`] is [`ProtocolError::StartTlsInjection`]. Capabilities
//!   are forgotten after TLS and after login, and asked again ([`Config::auto_capa`]).
//! - No argument may carry CR, LF or NUL; command lines are at most 255 octets (RFC 2449 §4).
//! - PASS and mechanisms that expose a reusable secret are refused without TLS unless
//!   [`Config::allow_plaintext_auth`] is set.
//! - APOP is possible only with a well-formed `<...@...>` greeting timestamp.
//! - Secrets are [`Secret`]s: `Debug`, errors and [`Event::Trace`] lines never show them.
//!
//! # Memory
//!
//! Every buffer has a limit in [`Config`]. Bodies are never buffered: [`Event::Body`] chunks
//! borrow from the input, so memory is one `handle_input` call plus a partial line. Every
//! [`Event`] borrows from the client (texts from buffers it reuses), so a reply costs no
//! allocation.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod apop;
pub mod body;
pub mod capa;
mod client;
mod command;
mod config;
mod error;
mod event;
pub mod login;
pub mod reply;
pub mod request;
pub mod response;
pub mod sasl;
mod secret;
pub mod timing;
pub mod uid;

pub use capa::Capabilities;
pub use client::{Client, Phase};
pub use command::{Command, CommandId, CommandKind, MAX_COMMAND_LINE};
pub use config::{Config, Pipelining, Quirks};
pub use error::{EnqueueError, MAX_NAMED_DUPLICATES, ProtocolError};
pub use event::{Event, Quirk, Trace};
pub use response::ResponseCode;
pub use secret::Secret;
pub use timing::{Awaited, Awaiting, Expired, ReadClock};
