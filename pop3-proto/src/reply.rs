//! The typed results of POP3 commands, as the request layer ([`crate::request`]) and the
//! adapters hand them to their callers: the `+OK` [`Reply`], [`Stat`], the listings, a `-ERR`
//! as [`ServerError`], and the server's [`Greeting`].

use crate::response::ResponseCode;

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Greeting {
    /// The text after `+OK`.
    pub text: String,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// Whether the greeting carries a well-formed APOP timestamp (so APOP is possible).
    pub apop: bool,
}

/// The `+OK` line of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// The text after `+OK`.
    pub text: String,
}

/// The STAT drop listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The number of messages.
    pub count: u32,
    /// Their total size in octets.
    pub size: u64,
}

/// A scan listing (LIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanListing {
    /// The message number.
    pub msg: u32,
    /// Its size in octets as the server counts them.
    pub size: u64,
}

/// A unique-id listing (UIDL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueIdListing {
    /// The message number.
    pub msg: u32,
    /// The unique id: 1-70 printable ASCII characters, never a path component.
    pub uid: String,
}

/// LIST and UIDL asked together ([`request::listings`](crate::request::listings)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listings {
    /// Every message's number and size (LIST).
    pub scan: Vec<ScanListing>,
    /// Every message's unique id (UIDL), or the server's refusal: a server without UIDL is
    /// legal (RFC 1939 lists UIDL as optional).
    pub unique_ids: Result<Vec<UniqueIdListing>, ServerError>,
}

/// A `-ERR` reply, as adapters report it in their error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server refused {command}: -ERR {}{text}", code.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default())]
pub struct ServerError {
    /// The refused command.
    pub command: crate::CommandKind,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// The text after `-ERR`.
    pub text: String,
}
