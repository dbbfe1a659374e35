//! An in-memory POP3 server for demos and tests. **Not for production**: it keeps its mail in
//! memory, knows one account, and its TLS certificate is a throw-away self-signed one whose
//! private key anyone can read.
//!
//! It is what `pop3 demo` runs, and what the test kit (`pop3-tests`, which re-exports all of
//! this) uses where a test needs a server with state:
//!
//! - [`MailboxServer`] is a stateful POP3 server on 127.0.0.1 (USER/PASS, APOP, AUTH PLAIN,
//!   CAPA, STLS or implicit TLS, STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, pipelined
//!   commands, and the UPDATE state on QUIT) with switches for server faults: cut connections,
//!   slow replies, no CAPA, bare LF.
//! - [`TestCa`] is the self-signed certificate (for `localhost` and `127.0.0.1`) it presents;
//!   clients trust it by its PEM or DER form or use [`TestCa::client_config`].
//! - [`generate_mail`] makes deterministic sample messages, [`to_crlf`] and
//!   [`multiline_body`] their stored and wire forms.
//! - [`conn`] is the server side of one connection (cleartext or TLS, a line reader whose
//!   buffer is visible, a record of every byte), which the test kit's scripted server shares.
//!
//! Everything runs on std threads (one per connection), so it serves blocking and async
//! clients alike. The crate does not depend on `pop3-proto`: a test oracle must not share the
//! client's bugs.
//!
//! ```
//! use pop3_demo_server::{MailboxServer, generate_mail};
//!
//! let server = MailboxServer::builder(generate_mail(3, 1000, 1))
//!     .credentials("bob", "secret-b")
//!     .start()?;
//! println!("POP3 server on {}", server.addr());
//! assert_eq!(server.messages().len(), 3);
//! # Ok::<(), pop3_demo_server::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conn;
mod mail;
mod mailbox;
mod tls;

pub use mail::{generate_mail, multiline_body, to_crlf};
pub use mailbox::{MailboxServer, MailboxServerBuilder};
pub use tls::{
    CertSpec, TestCa, Ymd, certificate_der, certificate_pem, client_config_trusting,
    crypto_provider, load_certificates_pem,
};

/// Re-exported so users can name the TLS types without their own rustls dependency.
pub use rustls;

/// Errors of the server (not of a client talking to it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Socket trouble on the server side.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// rustls rejected a config or certificate.
    #[error("tls error: {0}")]
    Tls(#[from] rustls::Error),
    /// rcgen could not make the certificate.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PEM file could not be read.
    #[error("pem error: {0}")]
    Pem(String),
}
