//! `pop3-bench`: the end-to-end benchmark of the pop3 clients.
//!
//! It starts a fast in-memory POP3 server on loopback ([`server`], on a pre-rendered
//! synthetic [`mailbox`]) and times, side by side, on the same mailbox: `pop3-blocking`,
//! `pop3-async`, `pop3 fetch --maildir`, Python's poplib, mpop (when installed), a raw
//! lower bound ([`clients`]) and the floor of durable Maildir delivery ([`floor`]). [`run`] orchestrates the runs as child processes and
//! [`report`] writes the JSON, the Markdown tables and the SVG chart. See `BENCHMARKS.md` at
//! the root of the repository for the figures and how to reproduce them, and
//! `pop3-bench --help` for the command line.
#![forbid(unsafe_code)]

pub mod clients;
pub mod floor;
pub mod mailbox;
pub mod report;
pub mod run;
pub mod server;
