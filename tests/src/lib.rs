//! Test kit for the pop3 crates: POP3 *servers* to test clients against.
//!
//! - [`ScriptedServer`] plays a [`Script`] (`S:` lines it sends, `C:` lines it
//!   expects, bytes that must come in one read, silences, stalls, trickled
//!   replies, a switch to TLS, a close) on 127.0.0.1 and returns a
//!   [`Transcript`] of every byte the client sent, with the first
//!   [`Mismatch`]: exact wire transcripts for blocking and async clients
//!   (the adapters' own tests, the CLI's and the shared suites all use it;
//!   [`ScriptedServer::finish_async`] for async tests). It lives in the
//!   `pop3-scripted-server` crate (which the CLI's tests use without the
//!   kit) and is re-exported here.
//! - [`MailboxServer`] is a stateful in-memory POP3 server (USER/PASS, APOP,
//!   AUTH PLAIN, STLS, pipelining, UPDATE on QUIT) with switches for server
//!   faults: cut connections, slow replies, no CAPA, bare LF. It lives in the
//!   `pop3-demo-server` crate (which `pop3 demo` runs) and is re-exported
//!   here, with the rest of that crate:
//! - [`TestCa`] is the self-signed certificate (for `localhost` and
//!   `127.0.0.1`) both servers use for TLS; clients trust it by its PEM or
//!   DER form or use [`TestCa::client_config`].
//! - [`generate_mail`] makes deterministic sample messages, and
//!   [`multiline_body`] puts a message on the wire as a RETR body.
//! - [`TurnServer`] counts a session's round trips (turns) and records the
//!   commands of each, for round-trip budgets.
//! - [`ScramServer`] serves one connection over TLS 1.2 or 1.3 (implicit, or after STLS) with
//!   a reference SCRAM server side (SHA-1/256/512 and -PLUS, its own channel binding, or a
//!   wrong one on purpose: [`ServerBinding`]), for the SASL tests.
//! - [`DovecotPeer`] finds the real Dovecot that `scripts/dovecot/start.sh`
//!   runs, honouring `POP3_INTEROP` (see the module table in [`interop`]),
//!   from the `pop3-dovecot-peer` crate, re-exported as [`interop`].
//!
//! Everything runs on std threads (one per connection), so it serves
//! blocking and async clients alike. The kit does not depend on
//! `pop3-proto`: the oracle must not share the client's bugs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use pop3_dovecot_peer as interop;
pub mod interop_suite;
pub use pop3_scripted_server::network;
pub mod suite;
mod turns;

/// The workspace README's examples, compiled as doctests (`cargo test -p pop3-tests --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use interop::{DovecotPeer, InteropMode, SKIP_NOTE};
pub use pop3_demo_server::{
    CertSpec, MailboxServer, MailboxServerBuilder, TestCa, Ymd, certificate_der, certificate_pem,
    client_config_trusting, crypto_provider, generate_mail, load_certificates_pem, multiline_body,
    to_crlf,
};
pub use pop3_scram_server::{ClientCa, ScramOutcome, ScramServer, ServerBinding, TlsVersion};
pub use pop3_scripted_server::{
    Expect, HAND_OFF_SETTLE, Mismatch, Script, ScriptedServer, ScriptedServerBuilder, Step,
    Transcript,
};
pub use turns::{TurnServer, Turns};

/// Re-exported so tests can name the kit's TLS types without their own
/// rustls dependency.
pub use rustls;

/// Errors of the kit itself (not of the client under test: those are in the
/// [`Transcript`]): the scripted server's error type, which the other servers
/// share.
pub use pop3_scripted_server::Error as KitError;

#[cfg(test)]
mod tests;
