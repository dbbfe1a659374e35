//! `pop3`: a POP3 command-line client on `pop3-blocking` (`fetch` and `poll`: `pop3-async`).
//!
//! Inspect a mailbox (`capa`, `stat`, `list`, `uidl`, `top`, `retr`, `dele`), fetch it into a
//! Maildir without ever losing or duplicating a message (`fetch`), or try it all against an
//! embedded server (`demo`). See `pop3 --help` and the crate's README.
//!
//! Exit status: 0 success; 1 the server said `-ERR`; 2 usage error; 3 protocol violation, TLS
//! or network error, timeout, or a local I/O error.
#![forbid(unsafe_code)]

/// `println!` for the command's output: a closed or full stdout is a local failure (exit 3,
/// `CliError`), not a panic. Use it with `?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod cli;
mod commands;
mod config;
mod deliver;
mod demo;
mod error;
mod escape;
mod fetch;
mod filter;
mod limits;
mod maildir;
mod net;
mod oauth;
mod poll;
mod rules;
mod serverinfo;
mod session;
mod state;
mod test_hook;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{Cli, Command, FetchArgs};
use crate::config::Settings;
use crate::deliver::TargetSpec;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK, EXIT_SERVER};
use crate::fetch::FetchJob;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("pop3: {}", escape::escape(&error.to_string()));
            ExitCode::from(error.exit_code())
        }
    }
}

/// `-v`: the protocol trace of `pop3-blocking` (secrets redacted by the library); `-vv`: also
/// the tool's own steps. Server text in it is escaped (no colours: their escape sequences
/// would be escaped too).
fn init_tracing(verbose: u8) {
    if verbose == 0 {
        return;
    }
    // The library's trace is under `pop3_blocking::TRACE_TARGET` (`pop3`); the tool's own steps
    // under `pop3_cli`, the more specific target, which wins for them.
    let targets = Targets::new()
        .with_target(pop3_blocking::TRACE_TARGET, LevelFilter::DEBUG)
        .with_target(
            "pop3_cli",
            if verbose >= 2 {
                LevelFilter::DEBUG
            } else {
                LevelFilter::WARN
            },
        );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| escape::EscapingWriter(std::io::stderr()))
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(targets)
        .try_init();
}

fn run(cli: &Cli) -> Result<u8, CliError> {
    if let Command::Poll(args) = &cli.command {
        // Every account of the config file, not one: resolved per account.
        return poll::poll(cli, args);
    }
    let settings = Settings::resolve(cli)?;
    match &cli.command {
        Command::Capa { login } => commands::capa(&settings, *login)?,
        Command::Stat => commands::stat(&settings)?,
        Command::List { msg } => commands::list(&settings, *msg)?,
        Command::Uidl { msg } => commands::uidl(&settings, *msg)?,
        Command::Top { msg, lines } => commands::top(&settings, *msg, *lines)?,
        Command::Retr { msg, output } => commands::retr(&settings, *msg, output.as_deref())?,
        Command::Dele { msgs } => commands::dele(&settings, msgs)?,
        Command::Fetch(args) => return run_fetch(&settings, args),
        Command::Serverinfo => return serverinfo::serverinfo(&settings),
        Command::Demo(args) => demo::demo(args, settings.json)?,
        Command::Poll(args) => return poll::poll(cli, args),
        Command::Oauth { command } => return oauth::command(&settings, command),
    }
    Ok(EXIT_OK)
}

fn run_fetch(settings: &Settings, args: &FetchArgs) -> Result<u8, CliError> {
    let target = TargetSpec::resolve(args, settings.maildir.as_deref(), &settings.targets)?;
    let host = settings.host()?;
    let user = settings.user()?;
    let explicit_state = args.state.clone().or_else(|| settings.state.clone());
    let legacy_state = match (&explicit_state, &target) {
        (None, TargetSpec::Maildir(maildir)) => Some(state::legacy_path(maildir, user, host)),
        _ => None,
    };
    let state = explicit_state.unwrap_or_else(|| target.default_state(user, host, settings.port()));
    let deliver_timeout =
        TargetSpec::timeout(args.deliver_timeout.or(settings.targets.deliver_timeout))?;
    let soft_limit = limits::raise_nofile();
    let wanted = usize::try_from(args.batch).unwrap_or(64);
    let batch = limits::cap_batch(wanted, soft_limit);
    if batch < wanted {
        tracing::info!(target: "pop3_cli", "--batch {wanted} capped to {batch} by the open-file limit ({soft_limit:?})");
    }
    let job = FetchJob {
        target,
        deliver_timeout,
        delete: args.delete,
        state,
        legacy_state,
        batch,
        batch_bytes: args.batch_bytes,
        progress: !args.quiet && !settings.json,
        retention: settings.retention(&args.rules)?,
        stop: None,
    };
    if args.rules.dry_run {
        return run_dry_run(settings, &job);
    }
    // Local first: the Maildir, the lock and the recovery of an interrupted run.
    let prepared = fetch::prepare(&job)?;
    test_hook::pause("prepared");
    let (summary, method) = fetch::runtime()?.block_on(async {
        let (connection, method) = session::nonblocking::open(settings).await?;
        let summary = fetch::fetch(connection, prepared, &job).await?;
        Ok::<_, CliError>((summary, method))
    })?;
    if settings.json {
        outln!(
            "{}",
            escape::json_text(&summary.to_json(&job.target, &job.state, method))
        )?;
    } else if !args.quiet {
        outln!("{}", summary.line(&job.target))?;
    }
    for line in summary
        .notices
        .iter()
        .chain(&summary.refused)
        .chain(&summary.undelivered)
    {
        eprintln!("pop3: {}", escape::escape(line));
    }
    Ok(if !summary.undelivered.is_empty() {
        // The target failed for some messages (they stay on the server): a local failure.
        EXIT_FAILURE
    } else if !summary.refused.is_empty() {
        EXIT_SERVER
    } else {
        EXIT_OK
    })
}

/// `fetch --dry-run`: what would be fetched, skipped and deleted, one line per message (or a
/// JSON object); nothing is changed.
fn run_dry_run(settings: &Settings, job: &FetchJob) -> Result<u8, CliError> {
    let state = fetch::prepare_dry_run(job)?;
    let (plan, summary) = fetch::runtime()?.block_on(async {
        let (connection, _) = session::nonblocking::open(settings).await?;
        fetch::dry_run(connection, state, job).await
    })?;
    let count = |kind: &str| {
        plan.iter()
            .filter(|p| p.to_json()["action"] == kind)
            .count()
    };
    if settings.json {
        let messages: Vec<serde_json::Value> = plan.iter().map(fetch::Planned::to_json).collect();
        outln!(
            "{}",
            escape::json_text(&serde_json::json!({
                "dry_run": true,
                "listed": summary.listed,
                "uidl": summary.uidl,
                "messages": messages,
            }))
        )?;
    } else {
        let mut text = String::new();
        for planned in &plan {
            text.push_str(&escape::escape(&planned.line()));
            text.push('\n');
        }
        text.push_str(&format!(
            "dry run: {} to fetch, {} to delete ({} unread), {} to mark seen, {} already stored, {} to leave; nothing was changed\n",
            count("fetch"),
            count("delete") + count("delete-unread"),
            count("delete-unread"),
            count("mark-seen"),
            count("stored"),
            count("skip"),
        ));
        commands::print(&text)?;
    }
    Ok(EXIT_OK)
}
