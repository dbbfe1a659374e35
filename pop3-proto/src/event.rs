//! What the client reports: replies, data and notices.

use crate::capa::Capabilities;
use crate::command::{CommandId, CommandKind};
use crate::response::ResponseCode;

/// One thing the server said, in order. An event borrows from the client (body chunks and
/// unique-ids from its input buffer; texts, response codes, capabilities and trace lines from
/// buffers it reuses) and lives until the next call on the client: copy out what you keep
/// (`text.to_owned()`, `code.cloned()`). Borrowing is what lets a reply cost no allocation;
/// an `Event` is `Copy`, and variants added later will borrow too, so that it stays `Copy`.
///
/// A status line's `code` and `text` are parsed (the code's spelling, the spacing and bytes
/// that are not UTF-8 are not kept): the line itself, byte for byte, is
/// [`Client::last_status_line`](crate::Client::last_status_line), right after the event.
///
/// Every command ends with exactly one terminal event: [`Event::Ok`], [`Event::Err`], (for
/// STLS) [`Event::StartTls`], or (for a PASS behind a refused USER, or anything queued behind
/// a refused STLS) [`Event::Cancelled`]. Data events of a command (entries, body chunks) come
/// before its terminal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The server's greeting. With `ok == false` (`-ERR` greeting) the session is closed.
    Greeting {
        /// `+OK` or `-ERR`.
        ok: bool,
        /// The response code, if any.
        code: Option<&'a ResponseCode>,
        /// The greeting text (lossy UTF-8).
        text: &'a str,
        /// Whether the greeting carries a well-formed APOP timestamp.
        apop: bool,
    },
    /// `+OK` to a command: its terminal event. For multi-line replies it comes after the
    /// data, with the text of the first line.
    Ok {
        /// The command.
        id: CommandId,
        /// Its kind.
        command: CommandKind,
        /// The response code, if any.
        code: Option<&'a ResponseCode>,
        /// The text after `+OK` (lossy UTF-8).
        text: &'a str,
    },
    /// `-ERR` to a command: its terminal event. Not an error of the client: the session goes
    /// on (except after QUIT or a refused greeting).
    Err {
        /// The command.
        id: CommandId,
        /// Its kind.
        command: CommandKind,
        /// The response code (`[IN-USE]`, `[AUTH]`, `[SYS/TEMP]`, ...), if any.
        code: Option<&'a ResponseCode>,
        /// The text after `-ERR` (lossy UTF-8).
        text: &'a str,
    },
    /// The STAT drop listing.
    Stat {
        /// The command.
        id: CommandId,
        /// The number of messages.
        count: u32,
        /// Their total size in octets.
        size: u64,
    },
    /// One scan listing of `LIST` or `LIST n`.
    ListEntry {
        /// The command.
        id: CommandId,
        /// The message number.
        msg: u32,
        /// Its size in octets, as the server counts them.
        size: u64,
    },
    /// One unique-id listing of `UIDL` or `UIDL n` (1-70 printable ASCII characters).
    UidlEntry {
        /// The command.
        id: CommandId,
        /// The message number.
        msg: u32,
        /// The unique id.
        uid: &'a str,
    },
    /// One language of `LANG` (RFC 6856).
    LangEntry {
        /// The command.
        id: CommandId,
        /// The language tag.
        tag: &'a str,
        /// Its description.
        description: &'a str,
    },
    /// The complete capability list of a CAPA reply, also kept in
    /// [`Client::capabilities`](crate::Client::capabilities).
    Capabilities {
        /// The command (also an automatic CAPA).
        id: CommandId,
        /// The capabilities.
        capabilities: &'a Capabilities,
    },
    /// A chunk of a RETR or TOP body, dot-unstuffed, line ends as sent.
    Body {
        /// The command.
        id: CommandId,
        /// The bytes.
        chunk: &'a [u8],
    },
    /// The end of a RETR or TOP body, just before its [`Event::Ok`].
    BodyEnd {
        /// The command.
        id: CommandId,
        /// The number of message octets delivered (after unstuffing).
        octets: u64,
    },
    /// The server accepted STLS: start the TLS handshake on the same connection now, then call
    /// [`Client::handle_tls_established`](crate::Client::handle_tls_established). Until then,
    /// any received byte is a fatal error, and nothing is sent.
    StartTls {
        /// The command.
        id: CommandId,
    },
    /// Authentication (PASS, APOP, AUTH, RPOP) succeeded: the session is in TRANSACTION and
    /// the capabilities are forgotten (and asked again when `auto_capa` is on). Comes just
    /// before the command's [`Event::Ok`].
    LoggedIn {
        /// The command.
        id: CommandId,
    },
    /// A server quirk was tolerated (reported once per session and kind).
    Quirk(Quirk),
    /// The command was dropped from the queue without being sent: a PASS queued behind a USER
    /// that the server refused (sending it would expose the password for nothing), or any
    /// command queued behind an STLS that the server refused (it was meant for an encrypted
    /// connection, and is never sent in plaintext). Terminal.
    Cancelled {
        /// The command.
        id: CommandId,
        /// Its kind.
        command: CommandKind,
    },
    /// A protocol trace line (only with [`Config::trace`](crate::Config::trace)), secrets
    /// redacted.
    Trace(&'a Trace),
}

/// A tolerated deviation from the RFCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Quirk {
    /// The server ends lines with a bare LF.
    BareLineFeed,
    /// The server ended a multi-line reply with `.` CR.
    DotCrTerminator,
    /// The server answered CAPA with `-ERR`: treated as "no extensions".
    MissingCapa,
    /// The server announced capabilities (PIPELINING, TOP, UIDL) only after login (Gmail);
    /// the new list is used.
    CapabilitiesAfterLogin,
    /// The server's greeting has text in brackets that is not a response code (Office 365).
    BracketedGreetingText,
    /// The server answered `UIDL n` with `+OK <uid>`, leaving the message number out (a
    /// Python-based server). Accepted when unambiguous: see
    /// [`parse_unique_id_one`](crate::response::parse_unique_id_one).
    UidlWithoutMessageNumber,
    /// A status line was neither `+OK` nor `-ERR` and its first octet was taken as the
    /// answer ([`Quirks::loose_status_indicator`](crate::Quirks::loose_status_indicator)).
    LooseStatusIndicator,
}

/// One line of the protocol trace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trace {
    /// A command line the client sent (secrets replaced by `<redacted>`).
    Sent(String),
    /// A status or continuation line the server sent (SASL data replaced by its length).
    Received(String),
}

impl Event<'_> {
    /// The command this event belongs to, if any.
    pub fn id(&self) -> Option<CommandId> {
        match self {
            Self::Ok { id, .. }
            | Self::Err { id, .. }
            | Self::Stat { id, .. }
            | Self::ListEntry { id, .. }
            | Self::UidlEntry { id, .. }
            | Self::LangEntry { id, .. }
            | Self::Capabilities { id, .. }
            | Self::Body { id, .. }
            | Self::BodyEnd { id, .. }
            | Self::StartTls { id }
            | Self::Cancelled { id, .. }
            | Self::LoggedIn { id } => Some(*id),
            Self::Greeting { .. } | Self::Quirk(_) | Self::Trace(_) => None,
        }
    }

    /// Whether this is the last event of its command.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Ok { .. } | Self::Err { .. } | Self::StartTls { .. } | Self::Cancelled { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_terminal` agrees with the documented terminal events: `Ok`, `Err`, `StartTls` and
    /// `Cancelled` (issue 11), and no other.
    #[test]
    fn terminal_events_are_the_documented_ones() {
        let id = CommandId(7);
        let capabilities = Capabilities::default();
        let trace = Trace::Sent(String::new());
        let command = CommandKind::Pass;
        let events = [
            (
                Event::Greeting {
                    ok: true,
                    code: None,
                    text: "",
                    apop: false,
                },
                false,
            ),
            (
                Event::Ok {
                    id,
                    command,
                    code: None,
                    text: "",
                },
                true,
            ),
            (
                Event::Err {
                    id,
                    command,
                    code: None,
                    text: "",
                },
                true,
            ),
            (
                Event::Stat {
                    id,
                    count: 0,
                    size: 0,
                },
                false,
            ),
            (
                Event::ListEntry {
                    id,
                    msg: 1,
                    size: 0,
                },
                false,
            ),
            (
                Event::UidlEntry {
                    id,
                    msg: 1,
                    uid: "a",
                },
                false,
            ),
            (
                Event::LangEntry {
                    id,
                    tag: "",
                    description: "",
                },
                false,
            ),
            (
                Event::Capabilities {
                    id,
                    capabilities: &capabilities,
                },
                false,
            ),
            (Event::Body { id, chunk: b"x" }, false),
            (Event::BodyEnd { id, octets: 1 }, false),
            (Event::StartTls { id }, true),
            (Event::LoggedIn { id }, false),
            (Event::Quirk(Quirk::BareLineFeed), false),
            (Event::Cancelled { id, command }, true),
            (Event::Trace(&trace), false),
        ];
        for (event, terminal) in &events {
            assert_eq!(event.is_terminal(), *terminal, "{event:?}");
            // Every terminal event names its command.
            if *terminal {
                assert_eq!(event.id(), Some(id), "{event:?}");
            }
        }
    }
}
