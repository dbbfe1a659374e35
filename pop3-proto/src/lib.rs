//! pop3-proto: a sans-IO POP3 client.
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
pub mod response;
pub mod sasl;
mod secret;

pub use capa::Capabilities;
pub use client::{Client, Phase};
pub use command::{Command, CommandId, CommandKind, MAX_COMMAND_LINE};
pub use config::{Config, Quirks};
pub use error::{EnqueueError, ProtocolError};
pub use event::{Event, Quirk, Trace};
pub use response::ResponseCode;
pub use secret::Secret;
