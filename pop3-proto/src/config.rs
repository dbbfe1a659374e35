//! Limits, pipelining policy and quirk switches.

/// The client's configuration: every buffer limit, the pipelining policy and the switches for
/// tolerated server quirks. [`Config::default`] conforms to the RFCs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The longest status line (`+OK`/`-ERR`, greeting, SASL continuation) accepted, counting its
    /// line end. Default 512: RFC 2449 §4 caps the first response line at 512 octets. SASL
    /// continuations may be longer (SCRAM, Kerberos): see [`Config::max_continuation_line`].
    pub max_status_line: usize,
    /// The longest `+ ` continuation line of an `AUTH` exchange. Default 8 KiB: RFC 5034 sets no
    /// limit, and Kerberos challenges need a few KiB.
    pub max_continuation_line: usize,
    /// The longest line of a LIST, UIDL, CAPA or LANG listing, counting its line end. Default 512,
    /// the RFC 2449 response-line limit; real listings are a few dozen octets.
    pub max_listing_line: usize,
    /// The most capability lines one CAPA reply may carry. Default 256 (real servers send < 30).
    /// (CAPA has its own, tighter limit; LIST, UIDL and LANG share
    /// [`Config::max_listing_entries`].)
    pub max_capabilities: usize,
    /// The most entries one LIST, UIDL or LANG reply may carry. Default 1,000,000, more than
    /// real mailboxes hold. It also bounds the memory that checking a listing for repeated
    /// message numbers and unique-ids takes.
    pub max_listing_entries: usize,
    /// The longest unique-id accepted. Default 70, RFC 1939 §7's maximum.
    pub max_uid_len: usize,
    /// The highest message number accepted in a listing. Default `u32::MAX`; lower it to
    /// bound what an application indexes by message number.
    pub max_message_number: u32,
    /// The longest body line (RETR/TOP) accepted, or `None` for no limit (the default).
    ///
    /// Bodies are streamed, so a long line costs no memory here; the default has no limit
    /// because real mail has lines of hundreds of KiB (Python's poplib 2048-byte cap breaks it).
    pub max_body_line: Option<usize>,
    /// How many commands may be on the wire at once when the server advertises PIPELINING
    /// (RFC 2449 §6.6). Default 512: with a 5 ms round trip, 500 messages then cost one wait
    /// instead of eight (see BENCHMARKS.md). `1` disables pipelining. Without PIPELINING the
    /// client always waits for each reply.
    pub pipeline_window: usize,
    /// The most bytes of command lines on the wire without their replies. Default 16 KiB,
    /// well below any socket buffer: a window written whole before reading can then never
    /// block the writer while the server waits for us to read (RFC 2449 §6.6's warning).
    pub max_pipeline_bytes: usize,
    /// When to pipeline. Default [`Pipelining::Auto`]: only when CAPA lists PIPELINING.
    pub pipelining: Pipelining,
    /// Issue `CAPA` by itself after the greeting, after TLS and after login, so that
    /// [`Client::capabilities`](crate::Client::capabilities) is always current. Default `true`.
    pub auto_capa: bool,
    /// Allow credentials that an eavesdropper could reuse (USER/PASS, AUTH PLAIN, LOGIN,
    /// XOAUTH2, OAUTHBEARER) or crack offline (APOP) over a connection without TLS. Default
    /// `false`. ([`choose_login`](crate::login::choose_login) also keeps CRAM-MD5 and SCRAM
    /// for TLS unless its policy allows plaintext; asked for explicitly, they are sent.)
    ///
    /// Set, it also lets a PASS queued behind USER go out in the same write on a connection
    /// without TLS when the server pipelines and its current capabilities announce `USER`;
    /// otherwise (and always without it) a PASS without TLS waits for USER's `+OK`, so a
    /// refused USER never exposes it. Over TLS the PASS follows USER whenever the server
    /// pipelines.
    pub allow_plaintext_auth: bool,
    /// The lowest SCRAM iteration count accepted from a server. Default 4096, the minimum of
    /// RFC 7677 section 4: fewer makes a recorded exchange cheaper to crack offline. A lower
    /// count fails the login with
    /// [`SaslError::IterationCountTooLow`](crate::sasl::SaslError::IterationCountTooLow).
    pub min_scram_iterations: u32,
    /// Accept any printable-ASCII APOP timestamp in angle brackets (`<timestamp>`, without
    /// the `@` RFC 1939 asks for; see
    /// [`relaxed_greeting_timestamp`](crate::apop::relaxed_greeting_timestamp)). Default
    /// `false`: only a well-formed `<...@...>` makes APOP possible. Meant for a caller that
    /// asked for APOP explicitly (the Python `pop3.poplib` drop-in does, for compatibility);
    /// [`choose_login`](crate::login::choose_login) still never picks APOP unasked.
    pub relaxed_apop_timestamp: bool,
    /// Let the server judge the phase: AUTHORIZATION and TRANSACTION commands may be queued
    /// in either phase (STAT before login, USER after it), and the server's `-ERR` is the
    /// answer to one sent out of phase. Default `false`: [`Client::enqueue`](crate::Client::enqueue)
    /// refuses a command of another phase ([`EnqueueError::WrongPhase`](crate::EnqueueError::WrongPhase)).
    ///
    /// Meant only for a driver that reproduces a legacy API which lets its caller send any
    /// command in any phase (the Python `pop3.poplib` drop-in for the standard `poplib`).
    /// Everything that protects the connection still holds: STLS only before login and never
    /// on TLS, nothing pipelined behind STLS, AUTH, PASS, APOP, RPOP or QUIT, the argument
    /// and line checks, the limits, nothing after QUIT. The phase follows the server's
    /// replies: a `+OK` to a login command enters TRANSACTION (a second one after login
    /// changes nothing), a USER after login is just sent.
    pub server_enforces_phases: bool,
    /// Emit [`Event::Trace`](crate::Event::Trace) lines for every command sent and every status
    /// line received, secrets redacted. Default `false`.
    pub trace: bool,
    /// Tolerated server quirks.
    pub quirks: Quirks,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_status_line: 512,
            max_continuation_line: 8 * 1024,
            max_listing_line: 512,
            max_capabilities: 256,
            max_listing_entries: 1_000_000,
            max_uid_len: 70,
            max_message_number: u32::MAX,
            max_body_line: None,
            pipeline_window: 512,
            max_pipeline_bytes: 16 * 1024,
            pipelining: Pipelining::Auto,
            auto_capa: true,
            allow_plaintext_auth: false,
            min_scram_iterations: 4096,
            relaxed_apop_timestamp: false,
            server_enforces_phases: false,
            trace: false,
            quirks: Quirks::default(),
        }
    }
}

/// When the client sends several commands before their replies (RFC 2449 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pipelining {
    /// When the latest CAPA lists PIPELINING (the RFC's rule).
    #[default]
    Auto,
    /// Always, for a server known to pipeline without announcing it. A server that does not
    /// may drop commands or the connection.
    Always,
    /// Never: one command at a time.
    Never,
}

/// Switches for server behaviour that breaks the RFCs but is common enough to tolerate.
///
/// Each tolerated quirk is reported once per session as an
/// [`Event::Quirk`](crate::Event::Quirk), so the application can see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// Accept a bare LF as a line end. Default `true`.
    ///
    /// Status lines ending in a bare LF are always harmless to accept. Inside a multi-line reply
    /// the danger is a body line `.` LF that a CRLF server did not stuff ending the message
    /// early, so the terminator `.` LF is accepted only from a server whose greeting ended in a
    /// bare LF (a server that speaks LF throughout); a CRLF server must end with `.` CRLF.
    pub bare_lf: bool,
    /// Accept `.` CR without LF as the end of a multi-line reply (Cyrus 3.4.6). Default `false`:
    /// with it on, a body line `.` CR followed by more text would end the message early.
    pub dot_cr_terminator: bool,
    /// Treat `-ERR` to CAPA as "no extensions" instead of leaving the capabilities unknown.
    /// Default `true` (RFC 1939-only servers have no CAPA).
    pub missing_capa: bool,
    /// Take any status line whose first octet is `+` as `+OK` and `-` as `-ERR` (`+ Hola`,
    /// `-err`), outside an AUTH exchange, as Python's standard `poplib` does. Default `false`:
    /// such a line is [`ProtocolError::Malformed`](crate::ProtocolError::Malformed). Meant
    /// for the `pop3.poplib` drop-in, whose callers' servers were written against the
    /// standard module; reported as [`Quirk::LooseStatusIndicator`](crate::Quirk::LooseStatusIndicator).
    pub loose_status_indicator: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            bare_lf: true,
            dot_cr_terminator: false,
            missing_capa: true,
            loose_status_indicator: false,
        }
    }
}
