//! Commands: what the caller may ask for, validated before anything is queued.

use std::fmt;

use crate::Secret;
use crate::error::EnqueueError;
use crate::sasl::Mechanism;

/// The longest command line RFC 2449 §4 allows, CRLF included.
pub const MAX_COMMAND_LINE: usize = 255;

/// A POP3 command (RFC 1939, 2449, 2595, 5034, 6856).
///
/// Build one with the constructors ([`Command::retr`], [`Command::user`], ...) or the
/// variants, and queue it with [`Client::enqueue`](crate::Client::enqueue), which validates the
/// arguments. `Debug` never shows a password or a SASL response.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// `USER name` (RFC 1939 §7). The name may contain spaces (Exchange allows them).
    User(String),
    /// `PASS secret` (RFC 1939 §7). The password may contain spaces.
    Pass(Secret),
    /// `APOP name digest` (RFC 1939 §7): the digest is computed from the greeting timestamp
    /// and the shared secret when the command is sent; the secret never crosses the wire.
    Apop {
        /// The mailbox name.
        user: String,
        /// The shared secret.
        secret: Secret,
    },
    /// `RPOP user` (RFC 1081, obsolete; after USER, trusted-host authentication).
    Rpop(String),
    /// `STAT`.
    Stat,
    /// `LIST` (all messages, multi-line) or `LIST n` (one message).
    List(Option<u32>),
    /// `RETR n`: the message streams as [`Event::Body`](crate::Event::Body) chunks.
    Retr(u32),
    /// `DELE n`.
    Dele(u32),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`: in the TRANSACTION phase the server commits deletions (UPDATE).
    Quit,
    /// `TOP n lines`: the headers and the first `lines` body lines.
    Top {
        /// The message number.
        msg: u32,
        /// How many body lines.
        lines: u32,
    },
    /// `UIDL` (all messages, multi-line) or `UIDL n`.
    Uidl(Option<u32>),
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STLS` (RFC 2595).
    Stls,
    /// `AUTH mechanism [initial-response]` (RFC 5034).
    Auth(Box<dyn Mechanism>),
    /// `UTF8` (RFC 6856 §2).
    Utf8,
    /// `LANG` (list the languages, multi-line) or `LANG tag` (RFC 6856 §3); `*` asks the
    /// server to pick.
    Lang(Option<String>),
}

impl Command {
    /// `USER name`.
    pub fn user(name: impl Into<String>) -> Self {
        Self::User(name.into())
    }
    /// `PASS password`.
    pub fn pass(password: impl Into<Secret>) -> Self {
        Self::Pass(password.into())
    }
    /// `APOP name digest`.
    pub fn apop(user: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self::Apop {
            user: user.into(),
            secret: secret.into(),
        }
    }
    /// `RETR n`.
    pub fn retr(msg: u32) -> Self {
        Self::Retr(msg)
    }
    /// `TOP n lines`.
    pub fn top(msg: u32, lines: u32) -> Self {
        Self::Top { msg, lines }
    }
    /// `DELE n`.
    pub fn dele(msg: u32) -> Self {
        Self::Dele(msg)
    }
    /// `AUTH` with the given mechanism.
    pub fn auth(mechanism: impl Mechanism + 'static) -> Self {
        Self::Auth(Box::new(mechanism))
    }

    /// The command's kind, without its arguments.
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::User(_) => CommandKind::User,
            Self::Pass(_) => CommandKind::Pass,
            Self::Apop { .. } => CommandKind::Apop,
            Self::Rpop(_) => CommandKind::Rpop,
            Self::Stat => CommandKind::Stat,
            Self::List(_) => CommandKind::List,
            Self::Retr(_) => CommandKind::Retr,
            Self::Dele(_) => CommandKind::Dele,
            Self::Noop => CommandKind::Noop,
            Self::Rset => CommandKind::Rset,
            Self::Quit => CommandKind::Quit,
            Self::Top { .. } => CommandKind::Top,
            Self::Uidl(_) => CommandKind::Uidl,
            Self::Capa => CommandKind::Capa,
            Self::Stls => CommandKind::Stls,
            Self::Auth(_) => CommandKind::Auth,
            Self::Utf8 => CommandKind::Utf8,
            Self::Lang(_) => CommandKind::Lang,
        }
    }

    /// The shape of the reply this command gets.
    pub(crate) fn reply_shape(&self) -> ReplyShape {
        match self {
            Self::Stat => ReplyShape::Stat,
            Self::List(None) => ReplyShape::Listing(Listing::Scan),
            Self::List(Some(n)) => ReplyShape::ScanOne(*n),
            Self::Uidl(None) => ReplyShape::Listing(Listing::UniqueId),
            Self::Uidl(Some(n)) => ReplyShape::UniqueIdOne(*n),
            Self::Capa => ReplyShape::Listing(Listing::Capability),
            Self::Lang(None) => ReplyShape::Listing(Listing::Language),
            Self::Retr(_) | Self::Top { .. } => ReplyShape::Body,
            _ => ReplyShape::Single,
        }
    }

    /// Checks every rule a command line must follow: no CR, LF or NUL in any argument, no
    /// message number 0, no empty or space-containing argument where the grammar forbids it,
    /// and at most [`MAX_COMMAND_LINE`] octets. APOP and AUTH lines are checked here with
    /// their longest possible form.
    pub fn validate(&self) -> Result<(), EnqueueError> {
        let kind = self.kind();
        let forbidden = |b: &[u8]| b.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0));
        let check = |arg: &[u8], allow_space: bool, allow_empty: bool| {
            if forbidden(arg) {
                return Err(EnqueueError::ForbiddenByte { command: kind });
            }
            if !allow_empty && arg.is_empty() {
                return Err(EnqueueError::InvalidArgument {
                    command: kind,
                    reason: "empty",
                });
            }
            if !allow_space && arg.contains(&b' ') {
                return Err(EnqueueError::InvalidArgument {
                    command: kind,
                    reason: "contains a space",
                });
            }
            Ok(())
        };
        let number = |n: u32| {
            if n == 0 {
                Err(EnqueueError::MessageNumberZero)
            } else {
                Ok(())
            }
        };
        match self {
            // Exchange accepts spaces in user names (QUIRKS.md 17); PASS may contain spaces
            // and may be empty (RFC 1939 §7, Exchange's empty-password knob).
            Self::User(name) | Self::Rpop(name) => check(name.as_bytes(), true, false)?,
            Self::Pass(secret) => check(secret.expose(), true, true)?,
            Self::Apop { user, secret } => {
                check(user.as_bytes(), false, false)?;
                if forbidden(secret.expose()) {
                    return Err(EnqueueError::ForbiddenByte { command: kind });
                }
            }
            Self::List(Some(n)) | Self::Uidl(Some(n)) | Self::Retr(n) | Self::Dele(n) => {
                number(*n)?
            }
            Self::Top { msg, .. } => number(*msg)?,
            Self::Lang(Some(tag)) => check(tag.as_bytes(), false, false)?,
            Self::Auth(mech) => {
                let name = mech.name();
                check(name.as_bytes(), false, false)?;
                if !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(EnqueueError::InvalidArgument {
                        command: kind,
                        reason: "a SASL mechanism name is upper-case letters, digits, '-' and '_'",
                    });
                }
            }
            _ => {}
        }
        let len = self.line_len_bound();
        if len > MAX_COMMAND_LINE {
            return Err(EnqueueError::LineTooLong { command: kind, len });
        }
        Ok(())
    }

    /// The length of the command line, CRLF included (for APOP with its 32-digit digest; for
    /// AUTH without the initial response, which is sent only where it fits).
    pub(crate) fn line_len_bound(&self) -> usize {
        let arg_len = match self {
            Self::User(s) | Self::Rpop(s) => 1 + s.len(),
            Self::Pass(s) => 1 + s.len(),
            Self::Apop { user, .. } => 1 + user.len() + 1 + 32,
            Self::List(Some(n)) | Self::Uidl(Some(n)) | Self::Retr(n) | Self::Dele(n) => {
                1 + digits(*n)
            }
            Self::Top { msg, lines } => 2 + digits(*msg) + digits(*lines),
            Self::Auth(mech) => 1 + mech.name().len(),
            Self::Lang(Some(tag)) => 1 + tag.len(),
            _ => 0,
        };
        self.kind().keyword().len() + arg_len + 2
    }
}

fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The shape of a reply, known when the command is queued (POP3 replies carry no tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyShape {
    Single,
    Stat,
    ScanOne(u32),
    UniqueIdOne(u32),
    Listing(Listing),
    Body,
}

/// The kinds of multi-line listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Scan,
    UniqueId,
    Capability,
    Language,
}

/// A command without its arguments: what events and errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum CommandKind {
    User,
    Pass,
    Apop,
    Rpop,
    Stat,
    List,
    Retr,
    Dele,
    Noop,
    Rset,
    Quit,
    Top,
    Uidl,
    Capa,
    Stls,
    Auth,
    Utf8,
    Lang,
}

impl CommandKind {
    /// The command keyword as sent on the wire.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Pass => "PASS",
            Self::Apop => "APOP",
            Self::Rpop => "RPOP",
            Self::Stat => "STAT",
            Self::List => "LIST",
            Self::Retr => "RETR",
            Self::Dele => "DELE",
            Self::Noop => "NOOP",
            Self::Rset => "RSET",
            Self::Quit => "QUIT",
            Self::Top => "TOP",
            Self::Uidl => "UIDL",
            Self::Capa => "CAPA",
            Self::Stls => "STLS",
            Self::Auth => "AUTH",
            Self::Utf8 => "UTF8",
            Self::Lang => "LANG",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// An identifier for a queued command; every event about its reply carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub(crate) u64);

impl CommandId {
    /// The identifier as a number (increasing in queue order).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl Command {
    /// Appends the command line. APOP needs the greeting timestamp; AUTH is written by the
    /// client itself (the initial response depends on the line length).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, timestamp: Option<&[u8]>) {
        out.extend_from_slice(self.kind().keyword().as_bytes());
        let mut arg = |bytes: &[u8]| {
            out.push(b' ');
            out.extend_from_slice(bytes);
        };
        match self {
            Self::User(s) | Self::Rpop(s) => arg(s.as_bytes()),
            Self::Pass(s) => arg(s.expose()),
            Self::Apop { user, secret } => {
                arg(user.as_bytes());
                let digest =
                    crate::apop::apop_digest(timestamp.unwrap_or_default(), secret.expose());
                arg(&digest);
            }
            Self::List(Some(n)) | Self::Uidl(Some(n)) | Self::Retr(n) | Self::Dele(n) => {
                arg(n.to_string().as_bytes())
            }
            Self::Top { msg, lines } => {
                arg(msg.to_string().as_bytes());
                arg(lines.to_string().as_bytes());
            }
            Self::Lang(Some(tag)) => arg(tag.as_bytes()),
            Self::Auth(mech) => arg(mech.name().as_bytes()),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The command line for a trace, with every secret replaced by `<redacted>`.
    pub(crate) fn redacted(&self) -> String {
        match self {
            Self::Pass(_) => "PASS <redacted>".into(),
            Self::Apop { user, .. } => format!("APOP {user} <redacted>"),
            Self::Auth(mech) => format!("AUTH {} <initial response redacted>", mech.name()),
            _ => {
                let mut line = Vec::new();
                self.encode(&mut line, None);
                line.truncate(line.len() - 2);
                String::from_utf8_lossy(&line).into_owned()
            }
        }
    }
}
