//! `pop3-bench run`: the orchestrator. For each workload it builds the mailbox, starts the
//! server on a thread of this process, and runs every client as a child process, round-robin,
//! `reps` times; each run is timed (wall clock around the whole process), its peak RSS taken,
//! and checked against the server's byte count and the client's own report.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::mailbox::Mailbox;
use crate::report::{ClientResult, Machine, Results, RunRecord, WorkloadResult};
use crate::server::{ConnectionReport, PASSWORD, Server, USER};

/// The Python opponent, embedded so that the binary runs from anywhere.
const POPLIB_SCRIPT: &str = include_str!("../opponents/poplib_fetch.py");

/// The pop3 wheel's clients (python/), embedded likewise.
const POP3_PY_SCRIPT: &str = include_str!("../opponents/pop3_fetch.py");

/// The environment variable that hands `pop3 fetch` the password.
const PASSWORD_ENV: &str = "POP3_BENCH_PASSWORD";

/// One workload: a mailbox, a delay, a number of runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its short name, as `--workloads` takes it.
    pub key: String,
    /// Its name in the tables and the chart.
    pub label: String,
    /// How many messages.
    pub messages: usize,
    /// Their size in octets.
    pub size: usize,
    /// The server's delay before each reply, in milliseconds.
    pub delay_ms: u64,
    /// Runs per client.
    pub reps: usize,
}

impl Workload {
    fn new(key: &str, messages: usize, size: usize, delay_ms: u64, reps: usize) -> Self {
        let mut label = format!("{messages} x {}", human_size(size));
        if delay_ms > 0 {
            label.push_str(&format!(", {delay_ms} ms delay"));
        }
        Workload {
            key: key.to_owned(),
            label,
            messages,
            size,
            delay_ms,
            reps,
        }
    }

    /// The four workloads of the issue.
    pub fn standard() -> Vec<Workload> {
        vec![
            Workload::new("4k", 5000, 4096, 0, 7),
            Workload::new("1m", 200, 1 << 20, 0, 7),
            Workload::new("4k-5ms", 500, 4096, 5, 7),
            Workload::new("256m", 1, 256 << 20, 0, 3),
        ]
    }

    /// A standard workload by key, or a custom one written `N:SIZE[:DELAY_MS]` (`200:4K`).
    pub fn parse(spec: &str) -> Result<Workload, String> {
        if let Some(w) = Self::standard().into_iter().find(|w| w.key == spec) {
            return Ok(w);
        }
        let parts: Vec<&str> = spec.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(format!(
                "unknown workload {spec:?}: use 4k, 1m, 4k-5ms, 256m or N:SIZE[:DELAY_MS]"
            ));
        }
        let messages = parts[0]
            .parse()
            .map_err(|_| format!("bad message count in {spec:?}"))?;
        let size = parse_size(parts[1])?;
        let delay_ms = match parts.get(2) {
            Some(d) => d.parse().map_err(|_| format!("bad delay in {spec:?}"))?,
            None => 0,
        };
        if size < crate::mailbox::MIN_SIZE {
            return Err(format!(
                "messages must have at least {} octets",
                crate::mailbox::MIN_SIZE
            ));
        }
        Ok(Workload::new(spec, messages, size, delay_ms, 7))
    }
}

/// `4096`, `4K`, `1M`, `256M`, `1G`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let n: usize = digits.parse().map_err(|_| format!("bad size {text:?}"))?;
    let unit = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(format!("bad size unit in {text:?}")),
    };
    Ok(n * unit)
}

fn human_size(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// Which client a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The lower bound (`pop3-bench client raw`).
    Raw,
    /// The floor of durable Maildir delivery (`pop3-bench client floor`): raw's transfer plus
    /// fetch's files and syncs.
    Floor,
    /// `pop3-blocking`, optionally with another pipeline window.
    Blocking(Option<usize>),
    /// `pop3-async`, optionally with another pipeline window.
    Async(Option<usize>),
    /// `pop3 fetch --maildir`.
    Fetch,
    /// Python's poplib.
    Poplib,
    /// The pop3 wheel's modern client (`pop3.Client`, retr_many).
    PyClient,
    /// The pop3 wheel's drop-in `pop3.poplib`, used as the standard one.
    PyPoplib,
    /// mpop, delivering into a Maildir.
    Mpop,
}

/// A client to run: its name in the table and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// `raw`, `blocking`, `blocking@256`...
    pub name: String,
    /// What it is.
    pub kind: Kind,
}

impl ClientSpec {
    /// The default set, in table order.
    pub fn standard() -> Vec<ClientSpec> {
        [
            "raw",
            "floor",
            "blocking",
            "async",
            "fetch",
            "poplib",
            "py-pop3",
            "py-poplib",
            "mpop",
        ]
        .iter()
        .filter_map(|n| Self::parse(n).ok())
        .collect()
    }

    /// `raw`, `blocking`, `async`, `fetch`, `poplib`, `py-pop3`, `py-poplib`, `mpop`, or `blocking@W` / `async@W` for
    /// a pipeline window of `W`.
    pub fn parse(name: &str) -> Result<ClientSpec, String> {
        let (base, window) = match name.split_once('@') {
            Some((base, w)) => (
                base,
                Some(
                    w.parse::<usize>()
                        .ok()
                        .filter(|&w| w > 0)
                        .ok_or(format!("bad pipeline window in {name:?}"))?,
                ),
            ),
            None => (name, None),
        };
        let kind = match (base, window) {
            ("raw", None) => Kind::Raw,
            ("floor", None) => Kind::Floor,
            ("blocking", w) => Kind::Blocking(w),
            ("async", w) => Kind::Async(w),
            ("fetch", None) => Kind::Fetch,
            ("poplib", None) => Kind::Poplib,
            ("py-pop3", None) => Kind::PyClient,
            ("py-poplib", None) => Kind::PyPoplib,
            ("mpop", None) => Kind::Mpop,
            _ => {
                return Err(format!(
                    "unknown client {name:?}: use raw, floor, blocking[@W], async[@W], fetch, poplib, py-pop3, py-poplib, mpop"
                ));
            }
        };
        Ok(ClientSpec {
            name: name.to_owned(),
            kind,
        })
    }

    fn description(&self) -> String {
        let window = |w: Option<usize>| match w {
            Some(w) => format!(", pipeline window {w}"),
            None => String::new(),
        };
        match self.kind {
            Kind::Raw => "lower bound: every RETR in one write, bytes counted".into(),
            Kind::Floor => {
                "floor of Maildir delivery: raw + fetch's files and syncs, in-process".into()
            }
            Kind::Blocking(w) => format!("pop3-blocking retr_many{}", window(w)),
            Kind::Async(w) => format!("pop3-async retr_many, current-thread Tokio{}", window(w)),
            Kind::Fetch => "pop3 fetch --maildir (durable Maildir delivery)".into(),
            Kind::Poplib => "Python poplib, RETR loop".into(),
            Kind::PyClient => "Python pop3.Client retr_many (the pop3 wheel)".into(),
            Kind::PyPoplib => "Python pop3.poplib (the pop3 wheel), RETR loop".into(),
            Kind::Mpop => "mpop, Maildir delivery".into(),
        }
    }

    /// Whether this is one of our library clients (the targets apply to them).
    pub fn is_library(&self) -> bool {
        matches!(self.kind, Kind::Blocking(_) | Kind::Async(_))
    }
}

/// `pop3-bench run`'s options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// The clients, in table order.
    pub clients: Vec<ClientSpec>,
    /// Runs per client, overriding each workload's own count.
    pub reps: Option<usize>,
    /// Where results.json, results.md and chart.svg go.
    pub out: PathBuf,
    /// Where Maildirs and scratch files go (removed at the end).
    pub work_dir: PathBuf,
    /// The `pop3` binary, if not next to this one.
    pub pop3: Option<PathBuf>,
    /// The longest a single run may take.
    pub timeout: Duration,
    /// A client whose first run of a workload takes longer is run only once there.
    pub once_after: Duration,
    /// Measure with `/usr/bin/time` when it is there.
    pub use_time: bool,
    /// The command line, for the report.
    pub command_line: String,
    /// A failure of a client that is not installed is a note; with this, any client that
    /// cannot run fails the run.
    pub require_all: bool,
}

/// Everything a run needs to know that does not change between runs.
struct Context {
    opts: RunOptions,
    self_exe: PathBuf,
    pop3: Option<PathBuf>,
    python: Option<PathBuf>,
    mpop: bool,
    gnu_time: bool,
    poplib_script: PathBuf,
    /// A Python that imports the pop3 wheel.
    python_pop3: Option<PathBuf>,
    pop3_py_script: PathBuf,
}

/// Runs the benchmark and writes the results. Returns the results and whether every run
/// that was attempted received the whole mailbox.
pub fn run(opts: RunOptions) -> io::Result<(Results, bool)> {
    fs::create_dir_all(&opts.work_dir)?;
    fs::create_dir_all(&opts.out)?;
    let self_exe = std::env::current_exe()?;
    let pop3 = match &opts.pop3 {
        Some(path) => Some(path.clone()),
        None => self_exe.parent().map(|dir| dir.join("pop3")),
    }
    .filter(|p| p.is_file());
    let python = find_python();
    let mpop = command_works("mpop", &["--version"]);
    let gnu_time =
        opts.use_time && command_works("/usr/bin/time", &["-f", "%M", "-o", "/dev/null", "true"]);
    let poplib_script = opts.work_dir.join("poplib_fetch.py");
    fs::write(&poplib_script, POPLIB_SCRIPT)?;
    let python_pop3 = find_python_with_pop3();
    let pop3_py_script = opts.work_dir.join("pop3_fetch.py");
    fs::write(&pop3_py_script, POP3_PY_SCRIPT)?;
    if !gnu_time {
        eprintln!(
            "note: GNU time not found (apt-get install time): peak RSS of external clients is sampled from /proc"
        );
    }
    let ctx = Context {
        opts,
        self_exe,
        pop3,
        python,
        mpop,
        gnu_time,
        poplib_script,
        python_pop3,
        pop3_py_script,
    };
    let mut machine = Machine::probe();
    machine.python = ctx
        .python
        .as_ref()
        .and_then(|p| first_line_of(p.as_os_str().to_str()?, &["--version"]));
    machine.mpop = if ctx.mpop {
        first_line_of("mpop", &["--version"])
    } else {
        None
    };
    machine.work_dir = ctx.opts.work_dir.display().to_string();
    machine.measured_with = if ctx.gnu_time {
        "GNU time (%M, %U, %S) around each client process".into()
    } else {
        "/proc/PID/status VmHWM sampled every 2 ms (no GNU time)".into()
    };
    let started = Instant::now();
    let mut results = Results {
        machine,
        command: ctx.opts.command_line.clone(),
        total_seconds: 0.0,
        workloads: Vec::new(),
    };
    let mut all_complete = true;
    for workload in &ctx.opts.workloads {
        let (result, complete) = run_workload(&ctx, workload)?;
        all_complete &= complete;
        results.workloads.push(result);
    }
    results.machine.load_after = crate::report::load_average();
    results.total_seconds = started.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&ctx.opts.work_dir);
    crate::report::write_all(&results, &ctx.opts.out)?;
    Ok((results, all_complete))
}

fn run_workload(ctx: &Context, workload: &Workload) -> io::Result<(WorkloadResult, bool)> {
    let t = Instant::now();
    let mailbox = Arc::new(Mailbox::generate(workload.messages, workload.size, 1));
    let (octets, wire_bytes) = (mailbox.octets, mailbox.wire_bytes);
    let mut server = Server::start(mailbox.clone(), Duration::from_millis(workload.delay_ms))?;
    drop(mailbox);
    let reps = ctx.opts.reps.unwrap_or(workload.reps).max(1);
    eprintln!(
        "== {}: {octets} message octets, {wire_bytes} wire bytes, built in {:.2} s; server on {}; {reps} runs per client",
        workload.label,
        t.elapsed().as_secs_f64(),
        server.addr()
    );
    let mut rows: Vec<ClientResult> = ctx
        .opts
        .clients
        .iter()
        .map(|c| ClientResult::new(&c.name, &c.description(), c.is_library()))
        .collect();
    let mut complete = true;
    for (spec, row) in ctx.opts.clients.iter().zip(&mut rows) {
        if let Some(why) = unavailable(ctx, spec) {
            eprintln!("   {:<12} skipped: {why}", spec.name);
            row.skipped = Some(why);
            complete &= !ctx.opts.require_all;
        }
    }
    for rep in 0..reps {
        for (spec, row) in ctx.opts.clients.iter().zip(&mut rows) {
            if row.skipped.is_some() || row.error.is_some() {
                continue;
            }
            if rep > 0
                && row
                    .runs
                    .first()
                    .is_some_and(|r| r.wall_s > ctx.opts.once_after.as_secs_f64())
            {
                continue;
            }
            let record = run_once(ctx, spec, &server, workload, octets, wire_bytes);
            eprintln!(
                "   {:<12} run {}/{reps}: {:>8.3} s {:>9.1} MB/s  peak RSS {:>8.1} MiB{}",
                spec.name,
                rep + 1,
                record.wall_s,
                octets as f64 / record.wall_s / 1e6,
                record.peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
                if record.ok {
                    String::new()
                } else {
                    format!("  FAILED: {}", record.detail)
                }
            );
            if !record.ok {
                complete = false;
                row.error = Some(record.detail.clone());
            }
            row.runs.push(record);
        }
    }
    server.stop();
    for row in &mut rows {
        row.summarize(octets);
    }
    let raw = rows
        .iter()
        .find(|r| r.name == "raw")
        .and_then(|r| r.median_s);
    let floor = rows
        .iter()
        .find(|r| r.name == "floor")
        .and_then(|r| r.median_s);
    for row in &mut rows {
        if let (Some(raw), Some(median)) = (raw, row.median_s) {
            row.ratio_to_raw = Some(median / raw);
        }
        if let (Some(floor), Some(median)) = (floor, row.median_s) {
            row.ratio_to_floor = Some(median / floor);
        }
    }
    Ok((
        WorkloadResult {
            key: workload.key.clone(),
            label: workload.label.clone(),
            messages: workload.messages as u64,
            size: workload.size as u64,
            delay_ms: workload.delay_ms,
            octets,
            wire_bytes,
            reps: reps as u64,
            clients: rows,
        },
        complete,
    ))
}

/// Why a client cannot run here, if it cannot.
fn unavailable(ctx: &Context, spec: &ClientSpec) -> Option<String> {
    match spec.kind {
        Kind::Fetch if ctx.pop3.is_none() => Some(
            "the pop3 binary is not built (cargo build --release -p pop3-cli, or --pop3 PATH)"
                .into(),
        ),
        Kind::Poplib if ctx.python.is_none() => Some("python3 with poplib is not installed".into()),
        Kind::PyClient | Kind::PyPoplib if ctx.python_pop3.is_none() => Some(
            "the pop3 wheel is not installed (cd python && maturin develop --release), or set \
             POP3_BENCH_PYTHON to a Python that has it"
                .into(),
        ),
        Kind::Mpop if !ctx.mpop => Some("mpop is not installed (apt-get install mpop)".into()),
        _ => None,
    }
}

/// What a run has to prepare and check besides the process.
struct Prepared {
    command: Command,
    maildir: Option<PathBuf>,
    scratch: Vec<PathBuf>,
}

fn prepare(
    ctx: &Context,
    spec: &ClientSpec,
    port: u16,
    workload: &Workload,
) -> io::Result<Prepared> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let port = port.to_string();
    let ours = |name: &str, window: Option<usize>| {
        let mut c = Command::new(&ctx.self_exe);
        c.args([
            "client",
            name,
            "--port",
            &port,
            "--messages",
            &workload.messages.to_string(),
        ]);
        if let Some(w) = window {
            c.args(["--window", &w.to_string()]);
        }
        c
    };
    let fresh_maildir = |with_subdirs: bool| -> io::Result<PathBuf> {
        let dir = ctx
            .opts
            .work_dir
            .join(format!("maildir-{}-{run}", spec.name));
        let _ = fs::remove_dir_all(&dir);
        if with_subdirs {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.join(sub))?;
            }
        }
        Ok(dir)
    };
    Ok(match spec.kind {
        Kind::Raw => Prepared {
            command: ours("raw", None),
            maildir: None,
            scratch: Vec::new(),
        },
        Kind::Floor => {
            let dir = fresh_maildir(false)?;
            let mut c = ours("floor", None);
            c.arg("--maildir").arg(&dir);
            Prepared {
                command: c,
                maildir: Some(dir.clone()),
                scratch: vec![dir],
            }
        }
        Kind::Blocking(w) => Prepared {
            command: ours("blocking", w),
            maildir: None,
            scratch: Vec::new(),
        },
        Kind::Async(w) => Prepared {
            command: ours("async", w),
            maildir: None,
            scratch: Vec::new(),
        },
        Kind::Fetch => {
            let dir = fresh_maildir(false)?;
            let mut c = Command::new(
                ctx.pop3
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no pop3"))?,
            );
            c.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--tls",
                "none",
                "--user",
                USER,
                "--password-env",
                PASSWORD_ENV,
                "--allow-plaintext-auth",
                "--json",
                "fetch",
                "--maildir",
            ])
            .arg(&dir)
            .env(PASSWORD_ENV, PASSWORD);
            Prepared {
                command: c,
                maildir: Some(dir.clone()),
                scratch: vec![dir],
            }
        }
        Kind::Poplib => {
            let mut c = Command::new(
                ctx.python
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no python"))?,
            );
            c.arg(&ctx.poplib_script).args(["--port", &port]);
            Prepared {
                command: c,
                maildir: None,
                scratch: Vec::new(),
            }
        }
        Kind::PyClient | Kind::PyPoplib => {
            let mut c = Command::new(
                ctx.python_pop3
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no python with pop3"))?,
            );
            let api = if spec.kind == Kind::PyClient {
                "client"
            } else {
                "poplib"
            };
            c.arg(&ctx.pop3_py_script)
                .args(["--port", &port, "--api", api]);
            Prepared {
                command: c,
                maildir: None,
                scratch: Vec::new(),
            }
        }
        Kind::Mpop => {
            let dir = fresh_maildir(true)?;
            let rc = ctx.opts.work_dir.join(format!("mpoprc-{run}"));
            let uidls = ctx.opts.work_dir.join(format!("mpop-uidls-{run}"));
            // mpop's defaults otherwise, as its users run it: pipelining auto (on, since the
            // server announces PIPELINING).
            let config = format!(
                "defaults\naccount bench\nhost 127.0.0.1\nport {port}\ntls off\nauth user\n\
                 user {USER}\npassword {PASSWORD}\nkeep on\nonly_new off\nuidls_file {}\n\
                 delivery maildir {}\n",
                uidls.display(),
                dir.display()
            );
            fs::write(&rc, config)?;
            fs::set_permissions(&rc, fs::Permissions::from_mode(0o600))?;
            let mut c = Command::new("mpop");
            c.arg("-C").arg(&rc).args(["-q", "bench"]);
            Prepared {
                command: c,
                maildir: Some(dir.clone()),
                scratch: vec![dir, rc, uidls],
            }
        }
    })
}

fn run_once(
    ctx: &Context,
    spec: &ClientSpec,
    server: &Server,
    workload: &Workload,
    octets: u64,
    wire_bytes: u64,
) -> RunRecord {
    let n = workload.messages as u64;
    let mut record = RunRecord::default();
    let prepared = match prepare(ctx, spec, server.addr().port(), workload) {
        Ok(p) => p,
        Err(e) => {
            record.detail = format!("cannot prepare the run: {e}");
            return record;
        }
    };
    let since = server.accepted();
    let outcome = execute(ctx, prepared.command, &spec.name);
    let reports = server.reports_since(since, Duration::from_secs(5));
    let maildir_files = prepared.maildir.as_deref().map(count_files);
    for path in &prepared.scratch {
        let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            record.detail = format!("cannot run it: {e}");
            return record;
        }
    };
    record.wall_s = outcome.wall.as_secs_f64();
    record.cpu_s = outcome.cpu_s;
    let fields = result_fields(&outcome.stdout);
    record.peak_rss_kib = outcome
        .time_rss_kib
        .or_else(|| fields.get("vmhwm_kib").and_then(|v| v.parse().ok()))
        .or(outcome.sampled_rss_kib);
    let check = verify(
        spec,
        &outcome,
        &fields,
        &reports,
        maildir_files,
        n,
        octets,
        wire_bytes,
    );
    match check {
        Ok(detail) => {
            record.ok = true;
            record.detail = detail;
        }
        Err(why) => record.detail = why,
    }
    record
}

/// Checks that the run received the whole mailbox: from the server's count of what it wrote
/// and from what the client says (or delivered).
#[allow(clippy::too_many_arguments)]
fn verify(
    spec: &ClientSpec,
    outcome: &Outcome,
    fields: &BTreeMap<String, String>,
    reports: &[ConnectionReport],
    maildir_files: Option<u64>,
    n: u64,
    octets: u64,
    wire_bytes: u64,
) -> Result<String, String> {
    if outcome.timed_out {
        return Err(format!(
            "timed out after {:.1} s",
            outcome.wall.as_secs_f64()
        ));
    }
    if !outcome.status.is_some_and(|s| s.success()) {
        let tail: Vec<&str> = outcome.stderr.lines().rev().take(3).collect();
        return Err(format!(
            "exit status {:?}: {}",
            outcome.status.and_then(|s| s.code()),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let retrs: u64 = reports.iter().map(|r| r.retrs).sum();
    let retr_bytes: u64 = reports.iter().map(|r| r.retr_bytes).sum();
    if reports.is_empty() {
        return Err("the server saw no connection".into());
    }
    if retrs < n || retr_bytes < wire_bytes {
        return Err(format!(
            "the server wrote {retrs} of {n} RETR replies, {retr_bytes} of {wire_bytes} bytes"
        ));
    }
    if !reports.iter().any(|r| r.quit) {
        return Err("the client did not QUIT".into());
    }
    let number = |key: &str| fields.get(key).and_then(|v| v.parse::<u64>().ok());
    match spec.kind {
        Kind::Raw => {
            if number("messages") != Some(n) || number("bytes") != Some(wire_bytes) {
                return Err(format!(
                    "the client reports {fields:?}, expected {n} messages, {wire_bytes} wire bytes"
                ));
            }
        }
        Kind::Blocking(_) | Kind::Async(_) | Kind::Poplib | Kind::PyClient | Kind::PyPoplib => {
            if number("messages") != Some(n) || number("bytes") != Some(octets) {
                return Err(format!(
                    "the client reports {fields:?}, expected {n} messages of {octets} octets in all"
                ));
            }
        }
        Kind::Fetch => {
            let stored = serde_json::from_str::<serde_json::Value>(outcome.stdout.trim())
                .ok()
                .and_then(|v| v.get("stored")?.as_u64());
            if stored != Some(n) || maildir_files != Some(n) {
                return Err(format!(
                    "pop3 fetch stored {stored:?} messages, {maildir_files:?} files in new/, expected {n}"
                ));
            }
        }
        Kind::Floor => {
            if number("messages") != Some(n) || maildir_files != Some(n) {
                return Err(format!(
                    "the floor reports {fields:?} and {maildir_files:?} files in new/, expected {n}"
                ));
            }
        }
        Kind::Mpop => {
            if maildir_files != Some(n) {
                return Err(format!(
                    "mpop delivered {maildir_files:?} files into new/, expected {n}"
                ));
            }
        }
    }
    Ok(format!(
        "{retrs} RETR replies, {retr_bytes} bytes written by the server"
    ))
}

/// The `key=value` fields of the client's `RESULT` line.
fn result_fields(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn count_files(maildir: &Path) -> u64 {
    fs::read_dir(maildir.join("new"))
        .map(|entries| entries.filter(|e| e.is_ok()).count() as u64)
        .unwrap_or(0)
}

/// How a client process went.
#[derive(Debug)]
struct Outcome {
    status: Option<ExitStatus>,
    timed_out: bool,
    wall: Duration,
    stdout: String,
    stderr: String,
    cpu_s: Option<f64>,
    time_rss_kib: Option<u64>,
    sampled_rss_kib: Option<u64>,
}

/// Runs one client process: in its own process group (so that a timeout can end all of it),
/// under GNU time when available, output to files; the wall clock runs from just before the
/// spawn to just after the wait.
fn execute(ctx: &Context, client: Command, name: &str) -> io::Result<Outcome> {
    let base = ctx.opts.work_dir.join(format!("run-{name}"));
    let (out_path, err_path, time_path) = (
        base.with_extension("out"),
        base.with_extension("err"),
        base.with_extension("time"),
    );
    let mut command = if ctx.gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M %U %S", "-o"]).arg(&time_path);
        c.arg(client.get_program()).args(client.get_args());
        c
    } else {
        let mut c = Command::new(client.get_program());
        c.args(client.get_args());
        c
    };
    for (key, value) in client.get_envs() {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .process_group(0);
    let _ = fs::remove_file(&time_path);

    let start = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = (!ctx.gnu_time).then(|| {
        let done = done.clone();
        std::thread::spawn(move || sample_peak_rss(pid, &done))
    });
    let (status, end, timed_out) = match rx.recv_timeout(ctx.opts.timeout) {
        Ok((status, end)) => (status, end, false),
        Err(_) => {
            kill_group(pid);
            match rx.recv() {
                Ok((status, end)) => (status, end, true),
                Err(_) => (
                    Err(io::Error::other("the waiter thread vanished")),
                    Instant::now(),
                    true,
                ),
            }
        }
    };
    done.store(true, Ordering::SeqCst);
    let sampled_rss_kib = sampler.and_then(|s| s.join().ok()).flatten();
    let wall = end - start;
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let (time_rss_kib, cpu_s) = if ctx.gnu_time {
        parse_time_file(&fs::read_to_string(&time_path).unwrap_or_default())
    } else {
        (None, None)
    };
    Ok(Outcome {
        status: status.ok(),
        timed_out,
        wall,
        stdout,
        stderr,
        cpu_s,
        time_rss_kib,
        sampled_rss_kib,
    })
}

/// GNU time's `%M %U %S` line (the last line: it may be preceded by "Command exited with
/// non-zero status").
fn parse_time_file(text: &str) -> (Option<u64>, Option<f64>) {
    for line in text.lines().rev() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [rss, user, sys] = fields[..] {
            if let (Ok(rss), Ok(user), Ok(sys)) =
                (rss.parse(), user.parse::<f64>(), sys.parse::<f64>())
            {
                return (Some(rss), Some(user + sys));
            }
        }
    }
    (None, None)
}

/// The highest VmHWM seen in `/proc/PID/status` until `done` (the fallback without GNU time).
fn sample_peak_rss(pid: u32, done: &AtomicBool) -> Option<u64> {
    let path = format!("/proc/{pid}/status");
    let mut peak = None;
    while !done.load(Ordering::SeqCst) {
        if let Some(kib) = fs::read_to_string(&path)
            .ok()
            .and_then(|s| crate::clients::parse_vm_hwm(&s))
        {
            peak = peak.max(Some(kib));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    peak
}

/// Ends the process group the client runs in (ours: it was started with `process_group(0)`).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first line a command prints (stdout, or stderr if stdout is empty).
pub(crate) fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// The real Python interpreter (not a pyenv shim, which costs a shell per start) with poplib.
fn find_python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys, poplib; print(sys.executable)"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

/// A Python with the pop3 wheel: `$POP3_BENCH_PYTHON` if set, else `python3` if it imports
/// `pop3`; the real interpreter, as [`find_python`].
fn find_python_with_pop3() -> Option<PathBuf> {
    let python = std::env::var_os("POP3_BENCH_PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(python)
        .args(["-c", "import sys, pop3._core; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_and_clients_parse() {
        assert_eq!(Workload::parse("4k").map(|w| w.messages), Ok(5000));
        let w = Workload::parse("200:4K").expect("custom");
        assert_eq!((w.messages, w.size, w.delay_ms), (200, 4096, 0));
        assert_eq!(w.label, "200 x 4 KiB");
        let w = Workload::parse("10:1M:5").expect("custom");
        assert_eq!(w.label, "10 x 1 MiB, 5 ms delay");
        assert!(Workload::parse("10:100").is_err());
        assert!(Workload::parse("nope").is_err());
        assert_eq!(
            ClientSpec::parse("blocking@512").map(|c| c.kind),
            Ok(Kind::Blocking(Some(512)))
        );
        assert!(ClientSpec::parse("raw@5").is_err());
        assert!(ClientSpec::parse("async@0").is_err());
        assert_eq!(ClientSpec::parse("floor").map(|c| c.kind), Ok(Kind::Floor));
        assert!(ClientSpec::parse("floor@5").is_err());
        assert_eq!(ClientSpec::standard().len(), 9);
        assert_eq!(
            ClientSpec::parse("py-pop3").map(|c| c.kind),
            Ok(Kind::PyClient)
        );
        assert_eq!(
            ClientSpec::parse("py-poplib").map(|c| c.kind),
            Ok(Kind::PyPoplib)
        );
        assert!(ClientSpec::parse("py-pop3@2").is_err());
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(
            parse_time_file("Command exited with non-zero status 1\n1234 0.50 0.25\n"),
            (Some(1234), Some(0.75))
        );
        let f = result_fields("noise\nRESULT messages=3 bytes=12 vmhwm_kib=900\n");
        assert_eq!(f.get("bytes").map(String::as_str), Some("12"));
    }
}
