//! A blocking POP3 client: a thin adapter that moves bytes between a `std::io` stream and the
//! sans-IO [`pop3_proto::Client`], with rustls for TLS.
//!
//! The adapter makes no protocol decisions: framing, pipelining, the login choice, the
//! STARTTLS-injection check and the plaintext-password guard all live in `pop3-proto`. This
//! crate adds sockets, timeouts, TLS and typed methods.
//!
//! ```no_run
//! use pop3_blocking::{Connection, Options, Security};
//!
//! # fn main() -> Result<(), pop3_blocking::Error> {
//! let options = Options::default();
//! let mut pop = Connection::connect("pop.example.com", 995, Security::Implicit, &options)?;
//! println!("greeting: {}", pop.greeting().text);
//! let method = pop.login("alice", "correct horse battery staple")?;
//! println!("logged in with {method:?}");
//!
//! let stat = pop.stat()?;
//! println!("{} messages, {} octets", stat.count, stat.size);
//! for entry in pop.uidl()? {
//!     // Bodies stream into any `impl Write` with bounded memory. Name files by something you
//!     // chose: never by the server's UID, which may hold `/` or `..` (a UID such as
//!     // `../../.bashrc` is valid POP3) and may repeat across sessions.
//!     let mut file = std::fs::File::create(format!("message-{}.eml", entry.msg))?;
//!     pop.retr(entry.msg, &mut file)?;
//! }
//!
//! // Many messages at once, pipelined when the server allows it.
//! let numbers: Vec<u32> = (1..=stat.count).collect();
//! for result in pop.dele_many(&numbers)? {
//!     if let Err(refused) = result {
//!         eprintln!("{refused}");
//!     }
//! }
//! // Deletions are committed only when QUIT succeeds; dropping `pop` instead commits nothing.
//! pop.quit()?;
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
//! # Security
//!
//! - TLS verifies the certificate against the host name, with SNI, trusting the webpki roots
//!   by default ([`TlsOptions`]). Turning verification off takes
//!   [`TlsOptions::dangerous_accept_any_certificate`].
//! - A password or reusable token, or an APOP digest, is never sent without TLS unless
//!   [`Options::allow_plaintext`] is set; [`Connection::login`] prefers methods that never send
//!   the password (the SCRAM -PLUS variants bound to the TLS connection first, then
//!   SCRAM-SHA-512/256/1, CRAM-MD5), chooses nothing without TLS unless plaintext is
//!   allowed (an observer could crack SCRAM or CRAM-MD5 offline), and uses APOP only with
//!   [`Options::allow_apop`].
//! - After the `+OK` to STLS nothing is read before the handshake, and any byte the server sent
//!   after the `+OK` is a fatal [`Error::Protocol`] (STARTTLS injection).
//! - Secrets never appear in `Debug` output, errors or traces.
//!
//! # Tracing (poplib's `set_debuglevel`)
//!
//! Where Python's `poplib` prints the dialogue after `set_debuglevel(1)`, this crate logs it
//! with the [`tracing`] crate: one DEBUG event per command sent (`C: STAT`) and per status line
//! received (`S: +OK 2 320`), with passwords, APOP digests and SASL data replaced by
//! `<redacted>`. Message bodies and listing lines are not logged. Every line is logged under
//! the one target of the pop3 family, [`TRACE_TARGET`] (`"pop3"`, the same in `pop3-async`),
//! and the lines are produced only when DEBUG is enabled for that target when the connection
//! is made, for example with `tracing_subscriber` and `RUST_LOG=pop3=debug`, or
//! `Targets::new().with_target(pop3_blocking::TRACE_TARGET, LevelFilter::DEBUG)`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connection;
mod dial;
mod stream;

pub use connection::Connection;
pub use dial::connect_addrs;
pub use pop3_tls::api::*;
pub use stream::Stream;

/// The MIME parser behind `retr_parsed` (the `mime` feature).
#[cfg(feature = "mime")]
pub use mail_parser;
