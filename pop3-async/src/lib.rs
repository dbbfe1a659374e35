//! pop3-async: a Tokio POP3 client on the sans-IO core [`pop3_proto`].
//!
//! The adapter only moves bytes, timers and events: every protocol decision (pipelining,
//! login choice, STLS safety, limits) is the core's. Its API mirrors `pop3-blocking`, with
//! `async` methods, plus [`Connection::retr_stream`] for bodies as a [`futures_core::Stream`] of
//! [`Bytes`](bytes::Bytes).
//!
//! ```no_run
//! use pop3_async::{Connection, Options, Security};
//! use tokio::io::AsyncWriteExt as _;
//!
//! # async fn run() -> Result<(), pop3_async::Error> {
//! let options = Options::default();
//! let mut pop = Connection::connect("pop.example.com", 995, Security::Implicit, &options).await?;
//! let method = pop.login("alice", "hunter2").await?;
//! println!("logged in with {method:?}");
//! let stat = pop.stat().await?;
//! for listing in pop.list().await? {
//!     let mut file = tokio::fs::File::create(format!("{}.eml", listing.msg)).await?;
//!     pop.retr(listing.msg, &mut file).await?;
//!     file.flush().await?;
//! }
//! // Pipelined: every message of the drop, in one batch.
//! let all: Vec<u32> = (1..=stat.count).collect();
//! pop.retr_many(&all, |msg, event| {
//!     if let pop3_async::RetrEvent::End { octets } = event {
//!         println!("message {msg}: {octets} octets");
//!     }
//!     Ok(())
//! })
//! .await?;
//! pop.quit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # One request layer, one drive loop
//!
//! Every method is one request of [`pop3_proto::request`] (what "a STAT" or "a login by
//! SCRAM" means is written there once), run by this crate's drive loop; the method set, the
//! [`Error`] type and the [`Session`] (whose getters `Connection` reaches through `Deref`) are
//! the same in `pop3-blocking` and `pop3-async`, and so is each behaviour: `login` has a plan
//! for every method `choose_login` picks (a server with only unknown SASL mechanisms gets
//! USER/PASS), `capa()` on a closed connection is [`Error::Closed`], the `Config` in
//! [`Options`] is ORed with the login policy and `tracing` (never overwritten), and a writer or
//! callback that fails is not called again while the rest of the body is read and discarded.
//!
//! STLS works on any stream you bring (a proxy, your own TLS stack): `stls_start`, then
//! `into_parts`, your handshake, and `Connection::from_parts` with the encrypted stream.
//!
//! # Events, helpers and views
//!
//! - A [`BodyStream`] is read with its inherent [`BodyStream::next`] (no `futures-util`
//!   needed), or as a [`futures_core::Stream`].
//! - [`Connection::retr_many`] hands each message over as [`RetrEvent::Start`] (also for an
//!   empty message: create its file there), chunks and [`RetrEvent::End`], or as
//!   [`RetrEvent::Refused`].
//! - [`Connection::fetch_new`] fetches only the messages a [`SeenStore`] has not recorded (the
//!   `pop3` command's logic, with your store) and never deletes; [`Connection::dele_uid`]
//!   deletes a message only if `UIDL n` still gives it the UID you stored it under. The
//!   decisions are in [`pop3_proto::uid`].
//! - With the `mime` feature, `Connection::retr_parsed` returns the message parsed by
//!   `mail_parser` (re-exported): headers, MIME parts, decoded bodies.
//! - [`Connection::login`] on a session that is already logged in is
//!   [`Error::AlreadyLoggedIn`] (nothing is sent).
//!
//! # Run loop
//!
//! Each method queues its command in the core, then loops: hand the core's events to the
//! method until its reply is complete; when the core needs input, wait (until the deadline
//! the core's [`ReadClock`](pop3_proto::ReadClock) sets from [`Options::timeout`] and
//! [`Options::speed_limit`]) until the stream can take the pending command bytes or has bytes
//! to read. Reading while writing is what keeps a large pipelined batch from deadlocking.
//!
//! # Cancellation
//!
//! Dropping a method's future before it completes poisons the connection: see
//! [`Connection`]'s docs and [`Error::Poisoned`]. Nothing is ever committed by accident, as
//! QUIT is only sent by [`Connection::quit`].
//!
//! # Tracing
//!
//! With the `tracing` DEBUG level enabled for the target [`TRACE_TARGET`] (`"pop3"`, the one
//! target of the pop3 family, the same in `pop3-blocking`) when the connection starts, every
//! command sent and status line received is logged at DEBUG under that same target, secrets
//! redacted by the core: `C: USER alice`, `C: PASS <redacted>`, `S: +OK`. Filter on it with
//! `RUST_LOG=pop3=debug` or `Targets::new().with_target(pop3_async::TRACE_TARGET,
//! LevelFilter::DEBUG)`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batch;
mod connection;
mod dial;
mod stream;

pub use batch::BodyStream;
pub use connection::Connection;
pub use dial::connect_addrs;
/// The MIME parser behind `retr_parsed` (the `mime` feature).
#[cfg(feature = "mime")]
pub use mail_parser;
pub use pop3_tls::api::*;
pub use stream::Stream;
pub use {bytes, futures_core};
