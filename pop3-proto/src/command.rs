//! Commands: what the caller may ask for, validated before anything is queued.

use std::fmt;

use crate::Secret;
use crate::client::Phase;
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
    /// A command line the core has no verb for (a vendor extension, or the raw line of a
    /// legacy API such as Python's `poplib._shortcmd`), sent as given with CRLF appended.
    /// The caller says whether its reply is multi-line: a multi-line reply comes as
    /// [`Event::Body`](crate::Event::Body) chunks (dot-unstuffed, line ends as sent), then
    /// [`Event::BodyEnd`](crate::Event::BodyEnd) and [`Event::Ok`](crate::Event::Ok); a single-line
    /// reply as `Ok` or `Err` with the server's text.
    ///
    /// Checked like every command line (no CR, LF or NUL, at most 255 octets, a keyword
    /// first). Refused when the keyword is one whose reply changes the session (USER, PASS,
    /// APOP, RPOP, AUTH, STLS, QUIT, UTF8): those have their own variants, so that the client
    /// knows what their replies mean. Nothing is pipelined behind an extension command before
    /// its reply (it may change the connection in ways the client cannot know), and nothing
    /// in it is assumed secret: its arguments are left out of traces.
    Extension {
        /// The command line, without CRLF.
        line: String,
        /// Whether the reply is multi-line.
        multi_line: bool,
    },
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
    /// A command line the core has no verb for: see [`Command::Extension`].
    pub fn extension(line: impl Into<String>, multi_line: bool) -> Self {
        Self::Extension {
            line: line.into(),
            multi_line,
        }
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
            Self::Extension { .. } => CommandKind::Extension,
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
            Self::Extension {
                multi_line: true, ..
            } => ReplyShape::Body,
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
            Self::Extension { line, .. } => {
                check(line.as_bytes(), true, false)?;
                // The keyword ends at the first space; a tab or another control byte in it
                // could make a server read a session keyword that the check below misses.
                let keyword = line.split(' ').next().unwrap_or_default();
                if keyword.is_empty() || !keyword.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(EnqueueError::InvalidArgument {
                        command: kind,
                        reason: "the line must start with a command keyword of printable ASCII",
                    });
                }
                if SESSION_KEYWORDS
                    .iter()
                    .any(|k| k.keyword().eq_ignore_ascii_case(keyword))
                {
                    return Err(EnqueueError::InvalidArgument {
                        command: kind,
                        reason: "USER, PASS, APOP, RPOP, AUTH, STLS, QUIT and UTF8 change the \
                                 session: queue them as their own Command",
                    });
                }
            }
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
            Self::Extension { line, .. } => return line.len() + 2,
            _ => 0,
        };
        self.kind().keyword().len() + arg_len + 2
    }
}

/// The keywords whose replies change the session: never sent as [`Command::Extension`].
const SESSION_KEYWORDS: [CommandKind; 8] = [
    CommandKind::User,
    CommandKind::Pass,
    CommandKind::Apop,
    CommandKind::Rpop,
    CommandKind::Auth,
    CommandKind::Stls,
    CommandKind::Quit,
    CommandKind::Utf8,
];

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
    /// [`Command::Extension`]: a line the core has no verb for.
    Extension,
}

impl CommandKind {
    /// The command keyword as sent on the wire (for [`CommandKind::Extension`], whose keyword
    /// is the caller's, `"(extension)"`).
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
            Self::Extension => "(extension)",
        }
    }
}

/// Where a command kind's secret stands (the cleartext-credential rule of
/// [`Client::enqueue`](crate::Client::enqueue)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// Nothing an observer could reuse.
    None,
    /// Always: PASS sends the password; APOP an MD5 digest of a predictable challenge that an
    /// observer can crack offline.
    Always,
    /// AUTH: as its mechanism says ([`Mechanism::exposes_secret`]).
    Mechanism,
}

/// Whether a kind's reply is multi-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Always a single status line.
    Single,
    /// Always multi-line (RETR, TOP, CAPA).
    Multi,
    /// Multi-line without an argument, a single line with one (LIST, UIDL, LANG).
    MultiWithoutArgument,
    /// As the caller declared it ([`Command::Extension`]).
    Declared,
}

/// The phases before login: AUTHORIZATION, the wait for the greeting (commands may be queued
/// early) and the wait for the TLS handshake after STLS.
const BEFORE_LOGIN: &[Phase] = &[Phase::Greeting, Phase::Authorization, Phase::TlsHandshake];
/// TRANSACTION only.
const TRANSACTION: &[Phase] = &[Phase::Transaction];
/// Every phase in which anything may be queued.
const ANY: &[Phase] = &[
    Phase::Greeting,
    Phase::Authorization,
    Phase::TlsHandshake,
    Phase::Transaction,
];

/// What a command kind is allowed and does: the one table the client consults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Props {
    /// The phases in which it may be queued (with
    /// [`Config::server_enforces_phases`](crate::Config::server_enforces_phases), see
    /// [`Props::allowed_in_relaxed`]).
    pub(crate) phases: &'static [Phase],
    /// It waits for an empty pipe before it is sent (nothing may be in flight ahead of it).
    pub(crate) barrier: bool,
    /// Nothing follows it on the wire until its reply (QUIT: the session ends there), though
    /// it may itself follow commands in flight.
    pub(crate) holds: bool,
    /// Its `+OK` logs in (the session enters TRANSACTION).
    pub(crate) login: bool,
    /// A secret usually follows it (USER, then PASS): nothing follows it on the wire until its
    /// reply unless the PASS may ride behind it (see [`Props::holds_pipe`]), and a `-ERR`
    /// cancels a PASS still queued behind it.
    pub(crate) precedes_secret: bool,
    /// Whether its line exposes a reusable secret.
    pub(crate) exposure: Exposure,
    /// Single- or multi-line reply.
    pub(crate) lines: Lines,
}

impl Props {
    const fn new(phases: &'static [Phase], lines: Lines) -> Self {
        Self {
            phases,
            barrier: false,
            holds: false,
            login: false,
            precedes_secret: false,
            exposure: Exposure::None,
            lines,
        }
    }
    const fn barrier(mut self) -> Self {
        self.barrier = true;
        self
    }
    const fn holds(mut self) -> Self {
        self.holds = true;
        self
    }
    const fn login(mut self, exposure: Exposure) -> Self {
        self.login = true;
        self.exposure = exposure;
        self
    }

    const fn precedes_secret(mut self) -> Self {
        self.precedes_secret = true;
        self
    }

    /// Whether nothing may follow a command of this kind on the wire until its reply is in:
    /// a barrier (STLS, AUTH, UTF8 change the connection), QUIT (the session ends at its
    /// reply), a login (some servers drop every byte that arrived before the login's reply),
    /// and USER unless `pass_may_follow`: the client passes whether a PASS behind USER
    /// exposes nothing the caller did not allow (TLS, or plaintext allowed and `USER`
    /// announced), so that otherwise a refused USER never exposes the PASS behind it.
    pub(crate) fn holds_pipe(self, pass_may_follow: bool) -> bool {
        self.barrier || self.holds || self.login || (self.precedes_secret && !pass_may_follow)
    }

    /// Whether it may be queued in `phase`.
    pub(crate) fn allowed_in(self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// Whether it may be queued in `phase` when the server judges the phase
    /// ([`Config::server_enforces_phases`](crate::Config::server_enforces_phases)): any
    /// AUTHORIZATION or TRANSACTION command in any phase before UPDATE, except STLS, which
    /// stays before login (its `+OK` starts AUTHORIZATION again, RFC 2595 §4).
    pub(crate) fn allowed_in_relaxed(self, phase: Phase, kind: CommandKind) -> bool {
        self.allowed_in(phase) || (kind != CommandKind::Stls && ANY.contains(&phase))
    }
}

impl CommandKind {
    /// Every kind, in declaration order.
    #[cfg(test)]
    pub(crate) const ALL: [CommandKind; 19] = [
        Self::User,
        Self::Pass,
        Self::Apop,
        Self::Rpop,
        Self::Stat,
        Self::List,
        Self::Retr,
        Self::Dele,
        Self::Noop,
        Self::Rset,
        Self::Quit,
        Self::Top,
        Self::Uidl,
        Self::Capa,
        Self::Stls,
        Self::Auth,
        Self::Utf8,
        Self::Lang,
        Self::Extension,
    ];

    /// The kind's properties (the single table; pinned by a test).
    pub(crate) const fn props(self) -> Props {
        use Lines::{Declared, Multi, MultiWithoutArgument, Single};
        match self {
            Self::User => Props::new(BEFORE_LOGIN, Single).precedes_secret(),
            Self::Pass | Self::Apop => Props::new(BEFORE_LOGIN, Single).login(Exposure::Always),
            Self::Rpop => Props::new(BEFORE_LOGIN, Single).login(Exposure::None),
            Self::Auth => Props::new(BEFORE_LOGIN, Single)
                .barrier()
                .login(Exposure::Mechanism),
            Self::Stls | Self::Utf8 => Props::new(BEFORE_LOGIN, Single).barrier(),
            // Not a barrier: QUIT may follow commands in flight (their replies come first),
            // but nothing follows it.
            Self::Quit => Props::new(ANY, Single).holds(),
            Self::Capa => Props::new(ANY, Multi),
            Self::Lang => Props::new(ANY, MultiWithoutArgument),
            Self::Stat | Self::Dele | Self::Noop | Self::Rset => Props::new(TRANSACTION, Single),
            Self::List | Self::Uidl => Props::new(TRANSACTION, MultiWithoutArgument),
            Self::Retr | Self::Top => Props::new(TRANSACTION, Multi),
            Self::Extension => Props::new(ANY, Declared).barrier(),
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
        if let Self::Extension { line, .. } = self {
            // The whole line is the caller's.
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
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
            // AUTH is written by the client itself (see above), an extension line whole
            // (above); the rest take no argument.
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
            Self::Extension { line, .. } => match line.split_once(' ') {
                Some((keyword, _)) => format!("{keyword} <arguments redacted>"),
                None => line.clone(),
            },
            _ => {
                let mut line = Vec::new();
                self.encode(&mut line, None);
                line.truncate(line.len() - 2);
                String::from_utf8_lossy(&line).into_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_display_with_a_hash() {
        assert_eq!(CommandId(0).to_string(), "#0");
        assert_eq!(CommandId(42).to_string(), "#42");
    }

    /// The table, pinned: a change to what a kind is allowed or does must show up here.
    #[test]
    fn props_table_is_pinned() {
        // kind, allowed in (G)reeting (A)uthorization (H)andshake (T)ransaction, barrier,
        // login, precedes a secret, exposure, lines.
        use Exposure as E;
        use Lines as L;
        let expected = [
            (
                CommandKind::User,
                "GAH-",
                false,
                false,
                true,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Pass,
                "GAH-",
                false,
                true,
                false,
                E::Always,
                L::Single,
            ),
            (
                CommandKind::Apop,
                "GAH-",
                false,
                true,
                false,
                E::Always,
                L::Single,
            ),
            (
                CommandKind::Rpop,
                "GAH-",
                false,
                true,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Stat,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::List,
                "---T",
                false,
                false,
                false,
                E::None,
                L::MultiWithoutArgument,
            ),
            (
                CommandKind::Retr,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Multi,
            ),
            (
                CommandKind::Dele,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Noop,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Rset,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Quit,
                "GAHT",
                false,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Top,
                "---T",
                false,
                false,
                false,
                E::None,
                L::Multi,
            ),
            (
                CommandKind::Uidl,
                "---T",
                false,
                false,
                false,
                E::None,
                L::MultiWithoutArgument,
            ),
            (
                CommandKind::Capa,
                "GAHT",
                false,
                false,
                false,
                E::None,
                L::Multi,
            ),
            (
                CommandKind::Stls,
                "GAH-",
                true,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Auth,
                "GAH-",
                true,
                true,
                false,
                E::Mechanism,
                L::Single,
            ),
            (
                CommandKind::Utf8,
                "GAH-",
                true,
                false,
                false,
                E::None,
                L::Single,
            ),
            (
                CommandKind::Lang,
                "GAHT",
                false,
                false,
                false,
                E::None,
                L::MultiWithoutArgument,
            ),
            (
                CommandKind::Extension,
                "GAHT",
                true,
                false,
                false,
                E::None,
                L::Declared,
            ),
        ];
        assert_eq!(expected.len(), CommandKind::ALL.len());
        let phases = [
            ('G', Phase::Greeting),
            ('A', Phase::Authorization),
            ('H', Phase::TlsHandshake),
            ('T', Phase::Transaction),
        ];
        for (row, kind) in expected.iter().zip(CommandKind::ALL) {
            let (k, allowed, barrier, login, precedes_secret, exposure, lines) = *row;
            assert_eq!(k, kind, "the rows follow CommandKind::ALL");
            let props = kind.props();
            let got: String = phases
                .iter()
                .map(|&(c, phase)| if props.allowed_in(phase) { c } else { '-' })
                .collect();
            assert_eq!(got, allowed, "{kind}: phases");
            // Nothing is ever queued once QUIT is sent after login or the session is over.
            assert!(!props.allowed_in(Phase::Update), "{kind}: UPDATE");
            assert!(!props.allowed_in(Phase::Closed), "{kind}: CLOSED");
            assert_eq!(props.barrier, barrier, "{kind}: barrier");
            // Only QUIT holds the pipe without being a barrier.
            assert_eq!(props.holds, kind == CommandKind::Quit, "{kind}: holds");
            assert_eq!(props.login, login, "{kind}: login");
            assert_eq!(
                props.precedes_secret, precedes_secret,
                "{kind}: precedes a secret"
            );
            assert_eq!(props.exposure, exposure, "{kind}: exposure");
            assert_eq!(props.lines, lines, "{kind}: lines");
        }
    }

    /// What holds the pipe: barriers, QUIT, logins, and USER unless a PASS may follow it.
    #[test]
    fn holds_pipe_follows_the_table() {
        let held = |pass_may_follow| -> Vec<CommandKind> {
            CommandKind::ALL
                .into_iter()
                .filter(|k| k.props().holds_pipe(pass_may_follow))
                .collect()
        };
        use CommandKind::*;
        assert_eq!(
            held(true),
            [Pass, Apop, Rpop, Quit, Stls, Auth, Utf8, Extension]
        );
        assert_eq!(
            held(false),
            [User, Pass, Apop, Rpop, Quit, Stls, Auth, Utf8, Extension]
        );
    }

    /// The reply shape of each command agrees with the table's single- or multi-line.
    #[test]
    fn reply_shapes_agree_with_the_table() {
        let commands = [
            Command::user("u"),
            Command::pass("p"),
            Command::apop("u", "s"),
            Command::Rpop("u".into()),
            Command::Stat,
            Command::List(None),
            Command::List(Some(1)),
            Command::retr(1),
            Command::dele(1),
            Command::Noop,
            Command::Rset,
            Command::Quit,
            Command::top(1, 0),
            Command::Uidl(None),
            Command::Uidl(Some(1)),
            Command::Capa,
            Command::Stls,
            Command::auth(crate::sasl::Plain::new(None, "u".into(), "p".into())),
            Command::Utf8,
            Command::Lang(None),
            Command::Lang(Some("en".into())),
            Command::extension("XTND XMIT", false),
            Command::extension("XLIST", true),
        ];
        for command in commands {
            let multi = matches!(
                command.reply_shape(),
                ReplyShape::Listing(_) | ReplyShape::Body
            );
            let has_argument = !matches!(
                command,
                Command::List(None) | Command::Uidl(None) | Command::Lang(None)
            );
            let expected = match command.kind().props().lines {
                Lines::Single => false,
                Lines::Multi => true,
                Lines::MultiWithoutArgument => !has_argument,
                Lines::Declared => matches!(
                    command,
                    Command::Extension {
                        multi_line: true,
                        ..
                    }
                ),
            };
            assert_eq!(multi, expected, "{:?}", command.kind());
        }
    }
}
