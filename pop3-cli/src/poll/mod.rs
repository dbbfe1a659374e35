//! `poll`: every account of the config file (or the named ones), concurrently, each on its
//! own schedule, forever (or once with `--once`).
//!
//! One Tokio task per account runs the same engine as `fetch` ([`crate::fetch`]): wait until
//! the account is due, take one of `--max-sessions` permits, prepare (Maildir, lock, state,
//! recovery) on the blocking pool, log in, fetch, QUIT; then one log line, the metrics, and
//! the next time from its [`Schedule`]. Between polls an account holds no connection, file or
//! buffer: only its settings and schedule. An account's failure or slow server holds only its
//! own task and permit, so it never delays the others (while permits are left).
//!
//! Signals: SIGHUP reloads the config file (accounts added, removed or changed are started,
//! stopped or restarted, the others keep their schedule; a file that no longer parses keeps
//! the old config, with an error line); SIGUSR1 polls every account now (paused ones too: the
//! manual check); SIGTERM and SIGINT start no new poll and no new batch, let every batch in
//! flight commit, QUIT, and exit 0 (after [`GRACE`] the process exits anyway, which loses
//! nothing either: see `fetch`).

mod log;
mod metrics;
mod notify;
mod schedule;

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use self::log::Log;
use self::metrics::{Metrics, epoch_in, epoch_now};
use self::notify::Notifier;
use self::schedule::{Failure, Interval, Jitter, Next, Schedule, show};
use crate::cli::{Cli, PollArgs};
use crate::config::{self, Settings};
use crate::deliver::TargetSpec;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK, EXIT_SERVER};
use crate::fetch::{self, FetchJob, FetchSummary};
use crate::{limits, session, state};

/// How long SIGTERM waits for the polls in flight before the process exits anyway.
const GRACE: Duration = Duration::from_secs(5);
/// Messages per durable batch (as `fetch`'s default).
const BATCH: usize = 64;
/// Bytes per durable batch (as `fetch`'s default).
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Runs `poll`; returns the exit status.
pub(crate) fn poll(cli: &Cli, args: &PollArgs) -> Result<u8, CliError> {
    let path = config::config_path(cli.config.as_deref())?;
    let soft_limit = limits::raise_nofile();
    let context = Context {
        cli,
        args,
        path,
        batch: limits::cap_batch(
            BATCH,
            soft_limit.map(|soft| soft / u64::from(args.max_sessions)),
        ),
    };
    let accounts = context.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::local("starting the Tokio runtime", &e))?;
    let status = runtime.block_on(context.run(accounts));
    // Commits still running on the blocking pool after the grace period are cut off here:
    // as with kill -9, nothing is lost.
    runtime.shutdown_timeout(Duration::from_secs(1));
    status
}

/// What every (re)load needs.
struct Context<'a> {
    cli: &'a Cli,
    args: &'a PollArgs,
    path: PathBuf,
    batch: usize,
}

/// One account as configured.
#[derive(Debug)]
struct Account {
    name: String,
    /// Its table as written, to tell whether a reload changed it.
    table: toml::Value,
    /// What polling it needs, or why the config cannot work for it.
    setup: Result<Arc<Setup>, CliError>,
}

/// An account's settings, fetch job and interval.
#[derive(Debug)]
struct Setup {
    settings: Settings,
    job: FetchJob,
    interval: Interval,
}

/// A running account task and the means to stop or wake it.
struct Task {
    account: Arc<Account>,
    control: Arc<Control>,
    handle: JoinHandle<u8>,
}

/// Sent to one account task.
#[derive(Debug, Default)]
struct Control {
    /// Stop: no new poll, no new batch (the fetch engine reads it between batches).
    stop: Arc<AtomicBool>,
    /// Wakes the task: poll now, or (with `stop`) return.
    wake: Notify,
}

/// What the account tasks share.
struct Shared {
    sessions: Semaphore,
    metrics: Metrics,
    log: Log,
    once: bool,
}

impl Context<'_> {
    /// The selected accounts of the config file; a missing one is a usage error.
    fn load(&self) -> Result<Vec<Account>, CliError> {
        let mut all = config::load_accounts(&self.path)?;
        let mut wanted: Vec<String> = self.cli.accounts.clone();
        wanted.dedup();
        if wanted.is_empty() {
            wanted = all.keys().cloned().collect();
        }
        if wanted.is_empty() {
            return Err(CliError::usage(format!(
                "config file {}: no [accounts.NAME] to poll",
                self.path.display()
            )));
        }
        wanted.sort();
        wanted.dedup();
        let mut accounts = Vec::new();
        for name in wanted {
            let Some((account, table)) = all.remove(&name) else {
                return Err(CliError::usage(format!(
                    "config file {}: no [accounts.{name}]",
                    self.path.display()
                )));
            };
            let setup = self.setup(&name, account).map(Arc::new);
            accounts.push(Account { name, table, setup });
        }
        Ok(accounts)
    }

    /// Settings, job and interval of one account.
    fn setup(&self, name: &str, account: config::Account) -> Result<Setup, CliError> {
        let in_account = |e: String| CliError::usage(format!("[accounts.{name}]: {e}"));
        let interval = Interval::from_keys(
            account.interval.as_deref(),
            account.interval_min.as_deref(),
            account.interval_max.as_deref(),
        )
        .map_err(in_account)?;
        let delete = account.delete.unwrap_or(false);
        let settings = Settings::merge(self.cli, account)?;
        // The account's one delivery target (maildir, mbox, mda or lmtp).
        let target = TargetSpec::from_account(settings.maildir.as_deref(), &settings.targets)
            .map_err(|e| in_account(e.to_string()))?;
        let deliver_timeout = TargetSpec::timeout(settings.targets.deliver_timeout)
            .map_err(|e| in_account(e.to_string()))?;
        let host = settings.host()?;
        let user = settings.user()?;
        let (state, legacy_state) = match (settings.state.clone(), &target) {
            (Some(path), _) => (path, None),
            (None, TargetSpec::Maildir(maildir)) => (
                state::default_path(maildir, user, host, settings.port()),
                Some(state::legacy_path(maildir, user, host)),
            ),
            (None, target) => (target.default_state(user, host, settings.port()), None),
        };
        let job = FetchJob {
            target,
            deliver_timeout,
            delete,
            state,
            legacy_state,
            batch: self.batch,
            batch_bytes: BATCH_BYTES,
            progress: false,
            stop: Some(Arc::new(AtomicBool::new(false))),
            // The account's retention and size rules and filter (its keys; no flags here).
            retention: settings.retention(&crate::cli::RuleArgs::default())?,
        };
        crate::rules::Rules {
            delete,
            ..job.retention.rules.clone()
        }
        .check()
        .map_err(in_account)?;
        Ok(Setup {
            settings,
            job,
            interval,
        })
    }

    /// The daemon (or `--once`): starts the tasks, then handles signals until SIGTERM (or
    /// until every task returned, with `--once`).
    async fn run(&self, accounts: Vec<Account>) -> Result<u8, CliError> {
        let log = Log::new(self.args.log_format);
        let shared = Arc::new(Shared {
            sessions: Semaphore::new(self.args.max_sessions as usize),
            metrics: Metrics::default(),
            log,
            once: self.args.once,
        });
        let signal_error = |e: std::io::Error| CliError::local("installing a signal handler", &e);
        let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
        let mut user1 = signal(SignalKind::user_defined1()).map_err(signal_error)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
        let metrics_server = match self.args.metrics {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| CliError::local(format!("--metrics {addr}"), &e))?;
                let bound = listener.local_addr().map_or(addr, |a| a);
                Some((
                    bound,
                    tokio::spawn(metrics::serve(listener, shared.metrics.clone())),
                ))
            }
            None => None,
        };
        let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
        let count = accounts.len();
        for account in accounts {
            let task = spawn(Arc::new(account), &shared, None);
            tasks.insert(task.account.name.clone(), task);
        }
        log.line(
            "start",
            &[
                ("accounts", json!(count)),
                ("max_sessions", json!(self.args.max_sessions)),
                ("once", json!(self.args.once)),
                ("config", json!(self.path.display().to_string())),
                (
                    "metrics",
                    metrics_server
                        .as_ref()
                        .map_or(Value::Null, |(a, _)| json!(a.to_string())),
                ),
                ("pid", json!(std::process::id())),
            ],
        );
        let notifier = Notifier::from_env();
        notifier.send(&format!(
            "READY=1\nSTATUS=polling {count} accounts\nMAINPID={}",
            std::process::id()
        ));
        let watchdog = notify::watchdog_interval().filter(|_| notifier.is_active());
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));

        if self.args.once {
            // Every task returns after one poll; SIGTERM still stops them gracefully.
            let mut worst = EXIT_OK;
            let mut handles: Vec<JoinHandle<u8>> = Vec::new();
            let mut controls = Vec::new();
            for (_, task) in tasks {
                handles.push(task.handle);
                controls.push(task.control);
            }
            let all = async {
                let mut worst = EXIT_OK;
                for handle in handles {
                    worst = worst.max(handle.await.unwrap_or(crate::error::EXIT_FAILURE));
                }
                worst
            };
            tokio::pin!(all);
            tokio::select! {
                status = &mut all => worst = worst.max(status),
                _ = async { tokio::select! { _ = terminate.recv() => {}, _ = interrupt.recv() => {} } } => {
                    stop_all(controls.iter());
                    if let Ok(status) = tokio::time::timeout(GRACE, all).await {
                        worst = worst.max(status);
                    }
                }
            }
            return Ok(worst);
        }

        // The tasks of removed accounts, finishing their poll in flight.
        let mut retired: Vec<JoinHandle<u8>> = Vec::new();
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    notifier.send("RELOADING=1");
                    retired.retain(|handle| !handle.is_finished());
                    retired.extend(self.reload(&mut tasks, &shared));
                    notifier.send("READY=1");
                }
                _ = user1.recv() => {
                    for task in tasks.values() {
                        task.control.wake.notify_one();
                    }
                    log.line("poll-now", &[("accounts", json!(tasks.len()))]);
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = watchdog_tick.tick(), if watchdog.is_some() => notifier.send("WATCHDOG=1"),
            }
        }
        notifier.send("STOPPING=1");
        log.line("stopping", &[("accounts", json!(tasks.len()))]);
        let started = Instant::now();
        stop_all(tasks.values().map(|t| &t.control));
        let mut unfinished = 0;
        for handle in tasks.into_values().map(|t| t.handle).chain(retired) {
            let left = GRACE.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, handle).await.is_err() {
                unfinished += 1;
            }
        }
        log.line(
            "stopped",
            &[
                ("seconds", json!(started.elapsed().as_secs_f64())),
                ("cut_off", json!(unfinished)),
            ],
        );
        if let Some((_, server)) = metrics_server {
            server.abort();
        }
        Ok(EXIT_OK)
    }

    /// SIGHUP: reads the config again. Accounts whose table changed are restarted (after
    /// their poll in flight, if any, stops at a batch boundary), removed ones stopped, new ones
    /// started; unchanged ones keep their schedule. A config that cannot be read keeps the old
    /// one running.
    /// Returns the tasks of the removed accounts (still finishing a poll, perhaps).
    fn reload(
        &self,
        tasks: &mut BTreeMap<String, Task>,
        shared: &Arc<Shared>,
    ) -> Vec<JoinHandle<u8>> {
        let log = shared.log;
        let accounts = match self.load() {
            Ok(accounts) => accounts,
            Err(error) => {
                log.line(
                    "reload",
                    &[
                        ("result", json!("error")),
                        ("error", json!(error.to_string())),
                        ("kept", json!(tasks.len())),
                    ],
                );
                return Vec::new();
            }
        };
        let mut old = std::mem::take(tasks);
        let (mut added, mut changed, mut unchanged) = (0, 0, 0);
        for account in accounts {
            let previous = match old.remove(&account.name) {
                Some(task) if task.account.table == account.table => {
                    unchanged += 1;
                    tasks.insert(account.name.clone(), task);
                    continue;
                }
                Some(task) => {
                    changed += 1;
                    stop_all([&task.control]);
                    Some(task.handle)
                }
                None => {
                    added += 1;
                    None
                }
            };
            let task = spawn(Arc::new(account), shared, previous);
            tasks.insert(task.account.name.clone(), task);
        }
        let removed = old.len();
        stop_all(old.values().map(|t| &t.control));
        shared.metrics.retain(|name| tasks.contains_key(name));
        log.line(
            "reload",
            &[
                ("result", json!("ok")),
                ("added", json!(added)),
                ("changed", json!(changed)),
                ("removed", json!(removed)),
                ("unchanged", json!(unchanged)),
            ],
        );
        old.into_values().map(|t| t.handle).collect()
    }
}

/// Tells tasks to stop.
fn stop_all<'a>(controls: impl IntoIterator<Item = &'a Arc<Control>>) {
    for control in controls {
        control.stop.store(true, Ordering::SeqCst);
        control.wake.notify_one();
    }
}

/// Starts an account's task (after `previous`, the task it replaces, has returned).
fn spawn(account: Arc<Account>, shared: &Arc<Shared>, previous: Option<JoinHandle<u8>>) -> Task {
    let stop = match &account.setup {
        Ok(setup) => setup.job.stop.clone().unwrap_or_default(),
        Err(_) => Arc::default(),
    };
    let control = Arc::new(Control {
        stop,
        wake: Notify::new(),
    });
    let handle = tokio::spawn(account_task(
        Arc::clone(&account),
        Arc::clone(&control),
        Arc::clone(shared),
        previous,
    ));
    Task {
        account,
        control,
        handle,
    }
}

/// Shows `next` in the metrics: the next poll's time, or paused.
fn show_next(next: Next, metrics: &Metrics, name: &str) {
    metrics.update(name, |m| match next {
        Next::After(delay) => {
            m.next_poll = Some(epoch_in(delay));
            m.paused = false;
        }
        Next::Paused => {
            m.next_poll = None;
            m.paused = true;
        }
    });
}

/// Waits for `next`, a wake-up or stop; returns whether to go on.
async fn wait(next: Next, control: &Control, metrics: &Metrics, name: &str) -> bool {
    show_next(next, metrics, name);
    match next {
        Next::After(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = control.wake.notified() => {}
            }
        }
        Next::Paused => control.wake.notified().await,
    }
    metrics.update(name, |m| m.next_poll = None);
    !control.stop.load(Ordering::SeqCst)
}

/// One account, poll after poll; returns the worst exit status of its polls.
async fn account_task(
    account: Arc<Account>,
    control: Arc<Control>,
    shared: Arc<Shared>,
    previous: Option<JoinHandle<u8>>,
) -> u8 {
    if let Some(previous) = previous {
        let _ = previous.await;
    }
    let name = account.name.as_str();
    let log = shared.log;
    shared.metrics.update(name, |_| {});
    let setup = match &account.setup {
        Ok(setup) => setup,
        Err(error) => {
            // The config cannot work for this account as written: say so once, and wait for
            // a reload (which replaces this task) or a stop.
            log.line(
                "pause",
                &[
                    ("account", json!(name)),
                    ("reason", json!("config")),
                    ("error", json!(error.to_string())),
                    (
                        "until",
                        json!("the config changes (SIGHUP) or a manual check (SIGUSR1)"),
                    ),
                ],
            );
            shared.metrics.update(name, |m| {
                m.errors += 1;
                m.polls += 1;
            });
            if shared.once {
                return error.exit_code();
            }
            while wait(Next::Paused, &control, &shared.metrics, name).await {}
            return error.exit_code();
        }
    };
    let mut schedule = Schedule::new(setup.interval);
    let mut jitter = Jitter::new(seed(name));
    let mut worst = EXIT_OK;
    let mut next = Next::After(Duration::ZERO);
    // The EXPIRE policy last logged: it (and its notices) is logged again only when it
    // changes (a server may change it, per user, after login).
    let mut logged_expire = None;
    loop {
        if !wait(next, &control, &shared.metrics, name).await {
            return worst;
        }
        let Ok(permit) = shared.sessions.acquire().await else {
            return worst;
        };
        if control.stop.load(Ordering::SeqCst) {
            return worst;
        }
        let started = Instant::now();
        // (Boxed: the session's state lives on the heap only while it runs, so an idle
        // account's task stays small.)
        let result = Box::pin(poll_once(Arc::clone(setup))).await;
        drop(permit);
        let seconds = started.elapsed().as_secs_f64();
        let (status, fields) = match result {
            Ok((summary, method)) => {
                schedule
                    .set_login_delay(summary.login_delay.map(|s| Duration::from_secs(s.into())));
                next = schedule.succeeded(summary.stored);
                shared.metrics.update(name, |m| {
                    m.polls += 1;
                    m.messages += summary.stored as u64;
                    m.bytes += summary.bytes;
                    m.last_success = Some(epoch_now());
                });
                let announce = logged_expire != Some(summary.expire);
                logged_expire = Some(summary.expire);
                (
                    poll_status(&summary),
                    success_fields(&summary, method, announce),
                )
            }
            Err(error) => {
                let failure = Failure::of(&error);
                next = schedule.failed(&failure, jitter.unit());
                shared.metrics.update(name, |m| {
                    m.polls += 1;
                    m.errors += 1;
                });
                let result = if failure == Failure::Pause {
                    "paused"
                } else {
                    "error"
                };
                let mut fields = vec![
                    ("result", json!(result)),
                    ("status", json!(error.exit_code())),
                    ("error", json!(error.to_string())),
                ];
                if failure == Failure::Pause {
                    fields.push((
                        "until",
                        json!("the config changes (SIGHUP) or a manual check (SIGUSR1)"),
                    ));
                }
                (error.exit_code(), fields)
            }
        };
        worst = worst.max(status);
        let mut line = vec![("account", json!(name))];
        line.extend(fields);
        line.push(("seconds", json!((seconds * 1000.0).round() / 1000.0)));
        line.push(("interval", json!(show(schedule.current()))));
        line.push(match next {
            Next::After(d) if !shared.once => ("next", json!(show(d))),
            _ => ("next", Value::Null),
        });
        if let Some(delay) = schedule.login_delay() {
            line.push(("login_delay", json!(show(delay))));
        }
        if !shared.once {
            // (Before the line: whoever reads the line and then the metrics sees the same
            // next poll.)
            show_next(next, &shared.metrics, name);
        }
        log.line("poll", &line);
        if shared.once {
            return worst;
        }
    }
}

/// The status of a poll that ran to its end: messages the target did not take (left on the
/// server) are a local failure, the server's refusals a server error.
fn poll_status(summary: &FetchSummary) -> u8 {
    if !summary.undelivered.is_empty() {
        EXIT_FAILURE
    } else if !summary.refused.is_empty() {
        EXIT_SERVER
    } else {
        EXIT_OK
    }
}

/// The log fields of a successful poll; the EXPIRE policy and its notices only if
/// `announce_expire` (the first poll of the account, or the policy changed).
fn success_fields(
    summary: &FetchSummary,
    method: &str,
    announce_expire: bool,
) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        (
            "result",
            json!(if !summary.undelivered.is_empty() {
                "undelivered"
            } else if summary.refused.is_empty() {
                "ok"
            } else {
                "refused"
            }),
        ),
        ("status", json!(poll_status(summary))),
        ("listed", json!(summary.listed)),
        ("stored", json!(summary.stored)),
        ("bytes", json!(summary.bytes)),
        ("skipped", json!(summary.skipped)),
        ("deleted", json!(summary.deleted)),
        ("login", json!(method)),
    ];
    for (key, value) in [
        ("verified", summary.verified),
        ("recovered", summary.recovered),
        // The retention and size rules (crate::rules).
        ("left", summary.left),
        ("marked_seen", summary.marked_seen),
        ("expired", summary.expired),
        ("deleted_unread", summary.deleted_unread),
    ] {
        if value > 0 {
            fields.push((key, json!(value)));
        }
    }
    // Deletions without fetching and filter failures: always logged.
    let notices: Vec<&String> = summary
        .notices
        .iter()
        .filter(|n| announce_expire || !summary.expire_notices.contains(n))
        .collect();
    if !notices.is_empty() {
        fields.push(("notices", json!(notices)));
    }
    if !summary.refused.is_empty() {
        fields.push(("refused", json!(summary.refused)));
    }
    if !summary.undelivered.is_empty() {
        fields.push(("undelivered", json!(summary.undelivered)));
    }
    if summary.interrupted {
        fields.push(("interrupted", json!(true)));
    }
    if summary.server_expired > 0 {
        fields.push(("server_expired", json!(summary.server_expired)));
    }
    if summary.quit_withheld {
        fields.push(("quit_withheld", json!(true)));
    }
    if let Some(expire) = summary.expire.filter(|_| announce_expire) {
        use pop3_async::pop3_proto::capa::ExpirePolicy;
        let text = match expire {
            ExpirePolicy::Never => "never".to_owned(),
            ExpirePolicy::Days(days) => format!("{days}d"),
            _ => "other".to_owned(),
        };
        fields.push(("expire", json!(text)));
    }
    fields
}

/// One poll: prepare on the blocking pool, log in, fetch, QUIT.
async fn poll_once(setup: Arc<Setup>) -> Result<(FetchSummary, &'static str), CliError> {
    let for_pool = Arc::clone(&setup);
    let prepared = tokio::task::spawn_blocking(move || fetch::prepare(&for_pool.job))
        .await
        .map_err(|_| CliError::failure("preparing the Maildir and state stopped"))??;
    let (connection, method) = session::nonblocking::open(&setup.settings).await?;
    let summary = fetch::fetch(connection, prepared, &setup.job).await?;
    Ok((summary, method))
}

/// A jitter seed that differs per account and per run.
fn seed(name: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    epoch_now().to_bits().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expire_policy_and_its_notices_are_logged_when_announced_only() {
        use pop3_async::pop3_proto::capa::ExpirePolicy;
        let notice = "the server deletes every message ... (EXPIRE 0)".to_owned();
        let mut summary = FetchSummary::default();
        summary.expire = Some(ExpirePolicy::Days(0));
        summary.notices = vec![notice.clone(), "message 3: delete unread".to_owned()];
        summary.expire_notices = vec![notice.clone()];
        let field = |fields: &[(&str, Value)], key: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        let first = success_fields(&summary, "user", true);
        assert_eq!(field(&first, "expire"), Some(json!("0d")));
        assert_eq!(
            field(&first, "notices"),
            Some(json!([notice, "message 3: delete unread"]))
        );
        let later = success_fields(&summary, "user", false);
        assert_eq!(field(&later, "expire"), None);
        assert_eq!(
            field(&later, "notices"),
            Some(json!(["message 3: delete unread"]))
        );
    }

    #[test]
    fn an_idle_account_task_is_small() {
        let shared = Arc::new(Shared {
            sessions: Semaphore::new(1),
            metrics: Metrics::default(),
            log: Log::new(crate::cli::LogFormat::Json),
            once: true,
        });
        let account = Arc::new(Account {
            name: "a".into(),
            table: toml::Value::Boolean(true),
            setup: Err(CliError::usage("none")),
        });
        let task = account_task(account, Arc::default(), shared, None);
        // The whole fetch engine's state would be several KiB; boxed, the task keeps only
        // its schedule and a few handles.
        assert!(
            std::mem::size_of_val(&task) < 1024,
            "{}",
            std::mem::size_of_val(&task)
        );
    }
}
