//! pop3-proto: a sans-IO POP3 client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod apop;
pub mod capa;
pub mod response;
pub mod sasl;
mod secret;

pub use secret::Secret;
