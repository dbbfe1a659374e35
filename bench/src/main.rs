//! The `pop3-bench` command: see [`USAGE`].
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_bench::mailbox::Mailbox;
use pop3_bench::report;
use pop3_bench::run::{self, ClientSpec, RunOptions, Workload, parse_size};
use pop3_bench::server::Server;
use pop3_bench::{clients, mailbox};

const USAGE: &str = "\
pop3-bench: end-to-end benchmark of the pop3 clients against a fast in-memory POP3 server

USAGE:
  pop3-bench run [OPTIONS]
      Runs every client on every workload and writes results.json, results.md and chart.svg.
      --workloads LIST   comma-separated: 4k (5000 x 4 KiB), 1m (200 x 1 MiB),
                         4k-5ms (500 x 4 KiB, 5 ms per reply), 256m (1 x 256 MiB),
                         or N:SIZE[:DELAY_MS] such as 200:4K   [default: 4k,1m,4k-5ms,256m]
      --clients LIST     comma-separated: raw, floor, blocking, async, fetch, poplib, py-pop3
                         (the pop3 wheel's pop3.Client), py-poplib (its pop3.poplib),
                         mpop, and blocking@W / async@W for a pipeline window of W
                         [default: raw,floor,blocking,async,fetch,poplib,py-pop3,py-poplib,mpop]
                         (py-*: a python3 that imports pop3, or $POP3_BENCH_PYTHON)
      --reps R           runs per client [default: 7, 3 for 256m]
      --out DIR          where the results go [default: target/pop3-bench]
      --work-dir DIR     where Maildirs and scratch files go (removed at the end)
                         [default: /dev/shm/pop3-bench.PID (tmpfs, so that the Maildir
                         rows measure the clients, not the disk), else $TMPDIR/...]
      --require-all      fail when a client cannot run (not installed, not built)
      --pop3 PATH        the pop3 binary [default: next to this one]
      --timeout SECS     the longest one run may take [default: 300]
      --once-after SECS  a client whose first run takes longer runs only once [default: 30]
      --no-time          do not use /usr/bin/time (sample /proc instead)
  pop3-bench client raw|floor|blocking|async --port P [--messages N] [--window W] [--buffer B]
                    [--maildir DIR (floor)]
      One client run against a server on 127.0.0.1:P; prints
      `RESULT messages=N bytes=B seconds=S vmhwm_kib=K`.
  pop3-bench serve [--messages N] [--size S] [--delay-ms D] [--port P]
      The server alone, until killed [defaults: 1000, 4K, 0, 11110].
  pop3-bench chart RESULTS.json CHART.svg
      Draws the chart again from a results file.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("client") => cmd_client(&args[1..]),
        Some("serve") => cmd_serve(&args[1..]),
        Some("chart") => cmd_chart(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("a command is needed\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pop3-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs and flags.
struct Args<'a> {
    rest: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    fn new(args: &'a [String]) -> Self {
        Args { rest: args.iter() }
    }

    fn next(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }

    fn value(&mut self, name: &str) -> Result<&'a str, String> {
        self.next().ok_or(format!("{name} needs a value"))
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, String> {
        let v = self.value(name)?;
        v.parse().map_err(|_| format!("bad value {v:?} for {name}"))
    }
}

fn cmd_run(args: &[String]) -> Result<ExitCode, String> {
    let mut opts = RunOptions {
        workloads: Workload::standard(),
        clients: ClientSpec::standard(),
        reps: None,
        out: PathBuf::from("target/pop3-bench"),
        work_dir: default_work_dir(),
        pop3: None,
        timeout: Duration::from_secs(300),
        once_after: Duration::from_secs(30),
        use_time: true,
        command_line: std::iter::once("pop3-bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        require_all: false,
    };
    let mut a = Args::new(args);
    while let Some(arg) = a.next() {
        match arg {
            "--workloads" => {
                opts.workloads = a
                    .value(arg)?
                    .split(',')
                    .map(Workload::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--clients" => {
                opts.clients = a
                    .value(arg)?
                    .split(',')
                    .map(ClientSpec::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--reps" => opts.reps = Some(a.parsed(arg)?),
            "--out" => opts.out = PathBuf::from(a.value(arg)?),
            "--work-dir" => opts.work_dir = PathBuf::from(a.value(arg)?),
            "--pop3" => opts.pop3 = Some(PathBuf::from(a.value(arg)?)),
            "--timeout" => opts.timeout = Duration::from_secs_f64(a.parsed(arg)?),
            "--once-after" => opts.once_after = Duration::from_secs_f64(a.parsed(arg)?),
            "--no-time" => opts.use_time = false,
            "--require-all" => opts.require_all = true,
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    let out = opts.out.clone();
    let (results, complete) = run::run(opts).map_err(|e| e.to_string())?;
    println!("{}", report::markdown(&results));
    println!("{}", report::machine_markdown(&results.machine));
    eprintln!(
        "pop3-bench: {:.0} s in all; wrote {}/results.json, results.md, chart.svg",
        results.total_seconds,
        out.display()
    );
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        eprintln!("pop3-bench: some runs did not receive the whole mailbox");
        ExitCode::FAILURE
    })
}

/// `/dev/shm/pop3-bench.PID` when there is a `/dev/shm`, else under the temporary directory.
fn default_work_dir() -> PathBuf {
    let name = format!("pop3-bench.{}", std::process::id());
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        std::env::temp_dir().join(name)
    }
}

fn cmd_client(args: &[String]) -> Result<ExitCode, String> {
    let mut a = Args::new(args);
    let name = a.value("client")?;
    let mut port = None;
    let mut messages = None;
    let mut window = None;
    let mut buffer = clients::RAW_BUFFER;
    let mut maildir: Option<std::path::PathBuf> = None;
    while let Some(arg) = a.next() {
        match arg {
            "--maildir" => maildir = Some(a.value(arg)?.into()),
            "--port" => port = Some(a.parsed::<u16>(arg)?),
            "--messages" => messages = Some(a.parsed::<u64>(arg)?),
            "--window" => window = Some(a.parsed::<usize>(arg)?),
            "--buffer" => buffer = a.parsed::<usize>(arg)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    let start = Instant::now();
    let received = match name {
        "blocking" => clients::blocking(port, window),
        "async" => clients::asynchronous(port, window),
        "raw" => clients::raw_with_buffer(port, messages.ok_or("raw needs --messages")?, buffer),
        "floor" => pop3_bench::floor::floor(
            port,
            messages.ok_or("floor needs --messages")?,
            maildir.as_deref().ok_or("floor needs --maildir DIR")?,
        ),
        other => return Err(format!("unknown client {other:?}")),
    };
    let seconds = start.elapsed().as_secs_f64();
    match received {
        Ok(r) => {
            println!(
                "RESULT messages={} bytes={} seconds={seconds:.6} vmhwm_kib={}",
                r.messages,
                r.bytes,
                clients::peak_rss_kib().unwrap_or(0)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("pop3-bench client {name}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn cmd_serve(args: &[String]) -> Result<ExitCode, String> {
    let (mut messages, mut size, mut delay_ms, mut port) = (1000usize, 4096usize, 0u64, 11110u16);
    let mut a = Args::new(args);
    while let Some(arg) = a.next() {
        match arg {
            "--messages" => messages = a.parsed(arg)?,
            "--size" => size = parse_size(a.value(arg)?)?,
            "--delay-ms" => delay_ms = a.parsed(arg)?,
            "--port" => port = a.parsed(arg)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if size < mailbox::MIN_SIZE {
        return Err(format!("--size must be at least {}", mailbox::MIN_SIZE));
    }
    let mailbox = Arc::new(Mailbox::generate(messages, size, 1));
    let server = Server::bind(
        mailbox.clone(),
        Duration::from_millis(delay_ms),
        &format!("127.0.0.1:{port}"),
    )
    .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    println!(
        "listening on {} ({messages} messages of {size} octets, {} wire bytes, {delay_ms} ms delay; user {} password {})",
        server.addr(),
        mailbox.wire_bytes,
        pop3_bench::server::USER,
        pop3_bench::server::PASSWORD
    );
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if server.accepted() > seen {
            for r in server.reports_since(seen, Duration::from_millis(1)) {
                println!(
                    "connection {}: {} commands, {} RETR replies ({} bytes), {} bytes out, quit: {}{}",
                    r.id,
                    r.commands,
                    r.retrs,
                    r.retr_bytes,
                    r.bytes_out,
                    r.quit,
                    r.error.map(|e| format!(", error: {e}")).unwrap_or_default()
                );
                seen = seen.max(r.id);
            }
        }
    }
}

fn cmd_chart(args: &[String]) -> Result<ExitCode, String> {
    let [json, svg] = args else {
        return Err("usage: pop3-bench chart RESULTS.json CHART.svg".into());
    };
    let text = std::fs::read_to_string(json).map_err(|e| format!("{json}: {e}"))?;
    let results: report::Results =
        serde_json::from_str(&text).map_err(|e| format!("{json}: {e}"))?;
    std::fs::write(svg, report::svg(&results)).map_err(|e| format!("{svg}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
