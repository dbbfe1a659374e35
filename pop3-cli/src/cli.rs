//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

const AFTER_HELP: &str = "\
Passwords are never taken from the command line: use --password-env, --password-file,
--password-cmd (or password-cmd in a config account); on a terminal pop3 asks for it.

Exit status: 0 success; 1 the server said -ERR (an authentication failure included);
2 usage error (bad arguments, or a login that would send the password unencrypted);
3 protocol violation, TLS or network error, timeout, or a local I/O error.";

/// The `pop3` command: inspect a POP3 mailbox, fetch it into a Maildir safely, or run the
/// embedded demo.
#[derive(Debug, Parser)]
#[command(name = "pop3", version, about, after_help = AFTER_HELP, args_override_self = true)]
pub(crate) struct Cli {
    /// The server (required except for `demo`).
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Option<String>,

    /// The port [default: 995 with --tls implicit, 110 otherwise].
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Option<u16>,

    /// How the connection is secured [default: implicit].
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) tls: Option<TlsMode>,

    /// Extra trust anchors (PEM) for the server certificate, on top of the roots of --trust.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Trust the server's certificate only if its SHA-256 fingerprint is this one
    /// (`SHA256:` and 64 hex digits, colons optional; `pop3 serverinfo` shows it). It replaces
    /// the CA, validity and host-name checks, for a self-signed certificate.
    #[arg(long, value_name = "SHA256:HEX", value_parser = parse_fingerprint)]
    pub(crate) tls_fingerprint: Option<pop3_blocking::Fingerprint>,

    /// The user name.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: Option<String>,

    /// Read the password (or OAuth token) from this environment variable.
    #[arg(long, value_name = "VAR", group = "password")]
    pub(crate) password_env: Option<String>,

    /// Read the password (or OAuth token) from the first line of this file.
    #[arg(long, value_name = "PATH", group = "password")]
    pub(crate) password_file: Option<PathBuf>,

    /// Run this command with `sh -c` and take the first line of its output as the password
    /// (or OAuth token).
    #[arg(long, value_name = "CMD", group = "password")]
    pub(crate) password_cmd: Option<String>,

    /// The login method [default: auto: the best the server offers, never a password in the
    /// clear].
    #[arg(long, value_enum, value_name = "METHOD")]
    pub(crate) auth: Option<AuthMode>,

    /// Allow credentials over an unencrypted connection.
    #[arg(long)]
    pub(crate) allow_plaintext_auth: bool,

    // -- TLS client certificate (issue 12, SASL) --
    /// Present this TLS client certificate (PEM; the chain, the client's own first), for
    /// servers that require one and for --auth external. Needs --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,

    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,

    /// Timeout in seconds (fractions allowed) for connecting, each write, and each status
    /// line, counted from the start of the wait [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<f64>,

    /// Cut a message or listing that arrives slower than BYTES per second averaged over
    /// --speed-time (0: never) [default: 10].
    #[arg(long, value_name = "BYTES")]
    pub(crate) speed_limit: Option<u32>,

    /// The time over which --speed-limit is averaged, in seconds [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_speed_time)]
    pub(crate) speed_time: Option<f64>,

    /// Pipelining [default: auto: used when CAPA lists PIPELINING].
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) pipelining: Option<Pipelining>,

    /// Protocol trace on stderr (-vv: also the tool's own steps); secrets are redacted.
    #[arg(short, long, action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Machine-readable output (JSON) for capa, stat, list, uidl, serverinfo and the fetch
    /// summary.
    #[arg(long)]
    pub(crate) json: bool,

    /// Use the named account of the config file (command-line options override it). Also
    /// accepted after the command; `poll` takes it more than once (the accounts to poll).
    #[arg(long = "account", value_name = "NAME", global = true, action = ArgAction::Append)]
    pub(crate) accounts: Vec<String>,

    /// The config file [default: $XDG_CONFIG_HOME/pop3/config.toml or
    /// ~/.config/pop3/config.toml].
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) config: Option<PathBuf>,

    // The network path: proxy, connect timeout, source address, CRLs, trust store.
    /// Reach the server through this proxy: socks5://, socks5h:// (the proxy resolves the
    /// host name) or http:// (CONNECT), with user:password@ for credentials (percent-encoded).
    /// A password here shows in the process list: prefer the config key `proxy` or the
    /// POP3_PROXY environment variable.
    #[arg(long, value_name = "URL", value_parser = parse_proxy)]
    pub(crate) proxy: Option<pop3_blocking::Proxy>,

    /// Timeout in seconds for establishing the connection (resolution, TCP over every
    /// address raced, the proxy handshake) [default: --timeout].
    #[arg(long, value_name = "SECONDS", value_parser = parse_connect_timeout)]
    pub(crate) connect_timeout: Option<f64>,

    /// Connect from this local address (only the server's addresses of its family are tried).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<std::net::IpAddr>,

    /// Refuse server certificates revoked by the CRLs in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub(crate) crl_file: Option<PathBuf>,

    /// The root certificates to trust: the Mozilla roots built in, the system's store, or
    /// both [default: mozilla].
    #[arg(long, value_name = "STORE", value_parser = parse_trust)]
    pub(crate) trust: Option<pop3_blocking::TrustStore>,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The one `--account` of every command but `poll`; given twice is a usage error.
    pub(crate) fn account(&self) -> Result<Option<&str>, crate::error::CliError> {
        match self.accounts.as_slice() {
            [] => Ok(None),
            [name] => Ok(Some(name)),
            _ => Err(crate::error::CliError::usage(
                "--account is given more than once (only poll takes several)",
            )),
        }
    }
}

/// The commands.
// (`fetch`'s flags, targets and rules together make its variant large; the enum is parsed
// once per process, so boxing it would buy nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the server's capabilities, one per line (before login unless --login).
    Capa {
        /// Log in first and print the capabilities of the logged-in session.
        #[arg(long)]
        login: bool,
    },
    /// Print "COUNT SIZE".
    Stat,
    /// Print "N SIZE" lines (one message with N).
    List {
        /// A message number.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        msg: Option<u32>,
    },
    /// Print "N UID" lines (one message with N).
    Uidl {
        /// A message number.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        msg: Option<u32>,
    },
    /// Write the headers and the first LINES body lines of message N to stdout (raw,
    /// dot-unstuffed).
    Top {
        /// The message number.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        msg: u32,
        /// How many body lines.
        lines: u32,
    },
    /// Write message N (raw, dot-unstuffed) to stdout or FILE.
    Retr {
        /// The message number.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        msg: u32,
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Mark messages deleted, then QUIT to commit (all or none: if the server refuses one,
    /// nothing is deleted).
    Dele {
        /// The message numbers.
        #[arg(required = true, value_parser = clap::value_parser!(u32).range(1..))]
        msgs: Vec<u32>,
    },
    /// Store every message whose UID is not yet recorded, durably, into exactly one target:
    /// a Maildir, an mbox, an MDA or an LMTP server.
    Fetch(FetchArgs),
    /// Print what the server shows before login: TLS version and cipher suite, each
    /// certificate (subject, issuer, validity, SHA-256 fingerprint), the greeting, CAPA before
    /// and after STLS, the SASL mechanisms. Needs no credentials; exit 3 if the certificate is
    /// not trusted (after printing it).
    Serverinfo,
    /// Start an embedded POP3 server with generated mail, fetch it, print a summary.
    Demo(DemoArgs),
    /// Fetch every account of the config file (or the named ones) concurrently, each at its
    /// `interval`, until stopped (SIGHUP reloads the config, SIGUSR1 polls every account now,
    /// SIGTERM finishes the batches in flight and exits 0).
    Poll(PollArgs),
    /// OAuth 2.0 for XOAUTH2 and OAUTHBEARER: sign in to the --account's provider and keep its
    /// tokens (see the README's OAuth section).
    Oauth {
        /// What to do.
        #[command(subcommand)]
        command: OauthCommand,
    },
}

/// `oauth` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum OauthCommand {
    /// Sign in with the device authorization flow (RFC 8628): shows a URL and a code to enter
    /// there, waits for the sign-in, and stores the tokens (in the OS keyring, or a file of
    /// mode 0600: the account's oauth-store).
    Login,
    /// Delete the account's stored tokens (revoke the grant at the provider separately).
    Logout,
}

/// `poll` options.
#[derive(Debug, clap::Args)]
pub(crate) struct PollArgs {
    /// Poll each account once, then exit: 0 if every poll succeeded, else the worst status.
    #[arg(long)]
    pub(crate) once: bool,
    /// At most this many sessions at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) max_sessions: u32,
    /// The format of the log lines on stdout (one per poll per account).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Serve Prometheus metrics (text format) over HTTP on this address (e.g. 127.0.0.1:9110).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
}

/// `poll --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// `key=value` words, one line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// `fetch` options.
#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    // --- Delivery targets: exactly one (default: the account's `maildir`, `mbox`, `mda` or
    // `lmtp`). See the README's delivery section for each one's guarantee.
    /// Deliver into this Maildir (created if missing).
    #[arg(long, value_name = "DIR", group = "target")]
    pub(crate) maildir: Option<PathBuf>,
    /// Deliver by appending to this mbox file (mboxrd; fcntl and dot-lock locking; created if
    /// missing).
    #[arg(long, value_name = "FILE", group = "target")]
    pub(crate) mbox: Option<PathBuf>,
    /// Deliver by running this command (`sh -c`) once per message, the message on its stdin
    /// with LF line ends; delivered only on exit status 0. `%F` becomes the envelope sender
    /// (from Return-Path, shell-quoted).
    #[arg(long, value_name = "CMD", group = "target")]
    pub(crate) mda: Option<String>,
    /// Deliver to this LMTP server: HOST:PORT, or a unix socket path; needs --lmtp-rcpt.
    #[arg(long, value_name = "ADDR", group = "target")]
    pub(crate) lmtp: Option<String>,
    /// The LMTP recipient (RCPT TO); a message is delivered only on a 250 for it.
    #[arg(long, value_name = "ADDR")]
    pub(crate) lmtp_rcpt: Option<String>,
    /// How long a delivery step may take: an MDA's run, the wait for an mbox lock, one LMTP
    /// reply [default: 120].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) deliver_timeout: Option<f64>,
    // --- end of the delivery targets.
    /// Delete the stored messages on the server (committed by the final QUIT).
    #[arg(long)]
    pub(crate) delete: bool,
    /// The state file of stored UIDs (default: DIR/.pop3-state.USER@HOST-PORT.HASH).
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// No summary line.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Messages per durable batch, at most 512 (the files of a batch are synced together,
    /// then one directory sync and one state write; two batches' files are open at once, so
    /// it is lowered to fit the open-file limit).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub(crate) batch: u32,
    /// Maximum bytes per durable batch (a larger message is a batch of its own).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) batch_bytes: u64,
    /// The retention and size rules, the header filter, --dry-run.
    #[command(flatten)]
    pub(crate) rules: RuleArgs,
}

/// `fetch`'s retention and size rules (each also an `[accounts.NAME]` key; the flag wins).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct RuleArgs {
    /// Leave messages on the server, and delete each once it was first seen more than
    /// DURATION ago (`7d`, `12h`, `2w`; a bare number is days). Only messages delivered to the
    /// target are deleted. Needs UIDL; not with --delete.
    #[arg(long, value_name = "DURATION", value_parser = crate::rules::parse_duration)]
    pub(crate) keep: Option<u64>,
    /// Leave messages larger than SIZE (bytes; `k`, `M`, `G` suffixes) on the server, unread.
    #[arg(long, value_name = "SIZE", value_parser = crate::rules::parse_size)]
    pub(crate) skip_larger_than: Option<u64>,
    /// Delete messages larger than SIZE on the server without fetching them (each deletion
    /// is reported on stderr). Wins over --skip-larger-than.
    #[arg(long, value_name = "SIZE", value_parser = crate::rules::parse_size)]
    pub(crate) delete_larger_than: Option<u64>,
    /// Fetch at most N messages per session (the others wait for the next run, in server
    /// order).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_messages: Option<u64>,
    /// Fetch at most SIZE bytes (as listed) per session; a message larger than SIZE is never
    /// fetched while the cap stands.
    #[arg(long, value_name = "SIZE", value_parser = crate::rules::parse_size)]
    pub(crate) max_bytes: Option<u64>,
    /// On first use (no state file yet), mark every message already on the server as seen
    /// without downloading it: only mail that arrives later is fetched.
    #[arg(long)]
    pub(crate) only_new: bool,
    /// A header filter (run with `sh -c`): each new message's headers (`TOP n 0`) on its
    /// stdin; exit 0 fetch, 1 delete without fetching, 2 leave for now; anything else, a
    /// crash or a timeout leaves the message and is reported.
    #[arg(long, value_name = "CMD")]
    pub(crate) filter: Option<String>,
    /// The filter's timeout in seconds [default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) filter_timeout: Option<f64>,
    /// Print what would be fetched, skipped and deleted, and change nothing: no RETR, no
    /// DELE, no state or Maildir write (LIST, UIDL, and TOP n 0 for the filter are sent).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `demo` options.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Fetch into this directory instead of a fresh one under the temporary directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) maildir: Option<PathBuf>,
    /// How many messages the embedded server holds.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub(crate) messages: usize,
    /// Their approximate size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4000)]
    pub(crate) size: usize,
}

/// `--tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TlsMode {
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
    /// Plaintext connect, then STLS (port 110); no fallback to plaintext.
    Starttls,
    /// No TLS.
    None,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AuthMode {
    /// The best the server offers; never a password in the clear.
    Auto,
    /// USER and PASS.
    User,
    /// APOP.
    Apop,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH CRAM-MD5.
    CramMd5,
    /// AUTH XOAUTH2 (the token comes from the password source).
    Xoauth2,
    /// AUTH OAUTHBEARER (the token comes from the password source).
    Oauthbearer,
    /// AUTH SCRAM-SHA-256.
    #[value(name = "scram-sha-256")]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    // -- SASL (issue 12): SCRAM-SHA-1/512, the -PLUS variants, EXTERNAL --
    /// AUTH SCRAM-SHA-1.
    #[value(name = "scram-sha-1")]
    #[serde(rename = "scram-sha-1")]
    ScramSha1,
    /// AUTH SCRAM-SHA-512.
    #[value(name = "scram-sha-512")]
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// AUTH SCRAM-SHA-1-PLUS (bound to the TLS channel).
    #[value(name = "scram-sha-1-plus")]
    #[serde(rename = "scram-sha-1-plus")]
    ScramSha1Plus,
    /// AUTH SCRAM-SHA-256-PLUS (bound to the TLS channel).
    #[value(name = "scram-sha-256-plus")]
    #[serde(rename = "scram-sha-256-plus")]
    ScramSha256Plus,
    /// AUTH SCRAM-SHA-512-PLUS (bound to the TLS channel).
    #[value(name = "scram-sha-512-plus")]
    #[serde(rename = "scram-sha-512-plus")]
    ScramSha512Plus,
    /// AUTH EXTERNAL: the TLS client certificate (--client-cert) is the credential; no
    /// password is read.
    External,
}

/// `--pipelining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Pipelining {
    /// Pipeline when CAPA lists PIPELINING.
    Auto,
    /// Pipeline even when the server does not announce PIPELINING (with a warning): for
    /// servers that pipeline without saying so.
    On,
    /// One command at a time.
    Off,
}

fn parse_fingerprint(text: &str) -> Result<pop3_blocking::Fingerprint, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err("the timeout must be more than 0 and at most 86400 seconds".to_owned())
    }
}

fn parse_proxy(text: &str) -> Result<pop3_blocking::Proxy, String> {
    text.parse()
        .map_err(|e: pop3_blocking::ProxyUrlError| e.to_string())
}

fn parse_trust(text: &str) -> Result<pop3_blocking::TrustStore, String> {
    text.parse()
        .map_err(|e: pop3_blocking::TrustStoreError| e.to_string())
}

fn parse_connect_timeout(text: &str) -> Result<f64, String> {
    parse_timeout(text).map_err(|e| e.replace("the timeout", "the connect timeout"))
}

fn parse_speed_time(text: &str) -> Result<f64, String> {
    parse_timeout(text).map_err(|e| e.replace("the timeout", "the speed time"))
}
