//! The results: the JSON file, the Markdown tables and the SVG bar chart.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The library clients' targets: at most this many times the raw lower bound's time...
pub const RATIO_TARGET: f64 = 1.5;
/// ...and at most this peak RSS on the one-big-message workload.
pub const RSS_TARGET_KIB: u64 = 16 * 1024;

/// One run of one client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    /// Wall-clock seconds of the whole client process.
    pub wall_s: f64,
    /// User + system CPU seconds (with GNU time).
    pub cpu_s: Option<f64>,
    /// Peak resident set size in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Whether it received the whole mailbox.
    pub ok: bool,
    /// What the check found.
    pub detail: String,
}

/// One client on one workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientResult {
    /// Its name (`raw`, `blocking`...).
    pub name: String,
    /// What it is.
    pub description: String,
    /// Whether the library targets apply to it.
    pub library: bool,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// The median wall time of the successful runs.
    pub median_s: Option<f64>,
    /// Message octets / median, in MB/s (10^6 bytes).
    pub mb_s: Option<f64>,
    /// The median CPU seconds.
    pub cpu_s: Option<f64>,
    /// The highest peak RSS of all runs, KiB.
    pub peak_rss_kib: Option<u64>,
    /// median / raw's median.
    pub ratio_to_raw: Option<f64>,
    /// median / the floor's median (for the Maildir clients).
    #[serde(default)]
    pub ratio_to_floor: Option<f64>,
    /// The first failure, if a run failed.
    pub error: Option<String>,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

impl ClientResult {
    pub(crate) fn new(name: &str, description: &str, library: bool) -> Self {
        ClientResult {
            name: name.to_owned(),
            description: description.to_owned(),
            library,
            ..Self::default()
        }
    }

    /// Fills in the medians from the runs.
    pub(crate) fn summarize(&mut self, octets: u64) {
        let ok: Vec<&RunRecord> = self.runs.iter().filter(|r| r.ok).collect();
        self.median_s = median(ok.iter().map(|r| r.wall_s).collect());
        self.mb_s = self
            .median_s
            .filter(|&m| m > 0.0)
            .map(|m| octets as f64 / m / 1e6);
        self.cpu_s = median(ok.iter().filter_map(|r| r.cpu_s).collect());
        self.peak_rss_kib = self.runs.iter().filter_map(|r| r.peak_rss_kib).max();
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// One workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Its short name.
    pub key: String,
    /// Its name in tables.
    pub label: String,
    /// Messages.
    pub messages: u64,
    /// Octets per message.
    pub size: u64,
    /// The server's delay per reply, ms.
    pub delay_ms: u64,
    /// Message octets in all.
    pub octets: u64,
    /// Bytes of all RETR replies.
    pub wire_bytes: u64,
    /// Runs per client.
    pub reps: u64,
    /// The clients, in table order.
    pub clients: Vec<ClientResult>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub cpus: u64,
    /// The CPU model.
    pub cpu_model: String,
    /// Total memory.
    pub memory: String,
    /// The kernel release.
    pub kernel: String,
    /// The distribution.
    pub os: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The Python that ran poplib.
    pub python: Option<String>,
    /// `mpop --version`'s first line.
    pub mpop: Option<String>,
    /// The load average (1, 5, 15 min) when the run started.
    pub load_before: String,
    /// ... and when it ended.
    pub load_after: String,
    /// When (UTC).
    pub date: String,
    /// Where the Maildirs were written.
    pub work_dir: String,
    /// How peak RSS and CPU time were measured.
    pub measured_with: String,
}

impl Machine {
    /// Reads what `/proc` and a few commands say.
    pub fn probe() -> Machine {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_default();
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_default();
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            cpu_model,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os,
            rustc: crate::run::first_line_of("rustc", &["--version"]).unwrap_or_default(),
            python: None,
            mpop: None,
            load_before: load_average(),
            load_after: String::new(),
            date: crate::run::first_line_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_default(),
            work_dir: String::new(),
            measured_with: String::new(),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything one `pop3-bench run` measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command that produced it.
    pub command: String,
    /// How long the whole run took.
    pub total_seconds: f64,
    /// The workloads, in order.
    pub workloads: Vec<WorkloadResult>,
}

/// Writes `results.json`, `results.md` and `chart.svg` into `dir`.
pub fn write_all(results: &Results, dir: &Path) -> io::Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    fs::write(dir.join("results.json"), json + "\n")?;
    fs::write(dir.join("results.md"), markdown(results))?;
    fs::write(dir.join("chart.svg"), svg(results))?;
    Ok(())
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// Seconds with three significant figures or so.
fn fmt_seconds(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 1.0 => format!("{v:.3}"),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The results as Markdown: the main table, the targets, the machine.
pub fn markdown(results: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| workload | client | median s | MB/s | x raw | CPU s | peak RSS MiB | runs |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for w in &results.workloads {
        for c in &w.clients {
            let runs = format!(
                "{}/{}",
                c.runs.iter().filter(|r| r.ok).count(),
                c.runs.len()
            );
            if let Some(why) = &c.skipped {
                let _ = writeln!(s, "| {} | {} | skipped: {why} | | | | | |", w.label, c.name);
                continue;
            }
            let note = match &c.error {
                Some(e) => format!(" (FAILED: {})", e.replace('|', "/")),
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {}{note} | {} | {} | {} | {} | {} | {runs} |",
                w.label,
                c.name,
                fmt_seconds(c.median_s),
                fmt_opt(
                    c.mb_s,
                    if c.mb_s.is_some_and(|m| m < 100.0) {
                        1
                    } else {
                        0
                    }
                ),
                fmt_opt(c.ratio_to_raw, 2),
                fmt_opt(c.cpu_s, 2),
                fmt_mib(c.peak_rss_kib),
            );
        }
    }
    s.push('\n');
    s.push_str(&targets_markdown(results));
    s
}

/// Whether the workload is the one-big-message one, where peak RSS is the point.
fn is_big_message(w: &WorkloadResult) -> bool {
    w.messages == 1 && w.size >= 64 << 20
}

/// The targets of the library clients, one line each.
pub fn targets_markdown(results: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| workload | target | client | measured | met |");
    let _ = writeln!(s, "|---|---|---|---:|---|");
    for w in &results.workloads {
        for c in w
            .clients
            .iter()
            .filter(|c| c.library && !c.name.contains('@'))
        {
            let (target, measured, met) = if is_big_message(w) {
                (
                    format!("peak RSS < {} MiB", RSS_TARGET_KIB / 1024),
                    format!("{} MiB", fmt_mib(c.peak_rss_kib)),
                    c.peak_rss_kib.map(|k| k < RSS_TARGET_KIB),
                )
            } else {
                (
                    format!("<= {RATIO_TARGET}x raw"),
                    format!("{}x", fmt_opt(c.ratio_to_raw, 2)),
                    c.ratio_to_raw.map(|r| r <= RATIO_TARGET),
                )
            };
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(
                s,
                "| {} | {target} | {} | {measured} | {met} |",
                w.label, c.name
            );
        }
        // `pop3 fetch` against the floor of durable Maildir delivery.
        for c in w.clients.iter().filter(|c| c.name == "fetch") {
            let met = match c.ratio_to_floor.map(|r| r <= FLOOR_TARGET) {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(
                s,
                "| {} | <= {FLOOR_TARGET}x floor | fetch | {}x | {met} |",
                w.label,
                fmt_opt(c.ratio_to_floor, 2)
            );
        }
    }
    s
}

/// `pop3 fetch`'s target: at most this many times the floor's median.
pub const FLOOR_TARGET: f64 = 1.3;

/// The machine, as a Markdown list.
pub fn machine_markdown(m: &Machine) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "- date: {}", m.date);
    let _ = writeln!(s, "- CPUs (nproc): {}, {}", m.cpus, m.cpu_model);
    let _ = writeln!(s, "- memory: {}", m.memory);
    let _ = writeln!(s, "- kernel: {}; {}", m.kernel, m.os);
    let _ = writeln!(s, "- {}", m.rustc);
    if let Some(p) = &m.python {
        let _ = writeln!(s, "- {p}");
    }
    if let Some(mpop) = &m.mpop {
        let _ = writeln!(s, "- {mpop}");
    }
    let _ = writeln!(
        s,
        "- load average (1/5/15 min): {} at the start, {} at the end",
        m.load_before, m.load_after
    );
    let _ = writeln!(s, "- Maildirs in: {}", m.work_dir);
    let _ = writeln!(s, "- peak RSS and CPU: {}", m.measured_with);
    s
}

const COLORS: &[(&str, &str)] = &[
    ("raw", "#7f7f7f"),
    ("blocking", "#1f77b4"),
    ("async", "#17becf"),
    ("fetch", "#2ca02c"),
    ("poplib", "#ff7f0e"),
    ("py-pop3", "#d62728"),
    ("py-poplib", "#e377c2"),
    ("mpop", "#9467bd"),
];

fn color(name: &str) -> &'static str {
    let base = name.split('@').next().unwrap_or(name);
    COLORS
        .iter()
        .find(|(n, _)| *n == base)
        .map_or("#8c564b", |(_, c)| c)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart of MB/s: one panel per workload, one bar per client, on a log scale shared by
/// all panels (so that the ratios read the same everywhere), each bar labelled with its
/// MB/s and its time relative to the raw lower bound.
pub fn svg(results: &Results) -> String {
    const WIDTH: f64 = 1000.0;
    const LEFT: f64 = 120.0;
    const BAR_AREA: f64 = 560.0;
    const ROW: f64 = 20.0;
    const TITLE: f64 = 26.0;
    const GAP: f64 = 14.0;
    const TOP: f64 = 52.0;

    let values: Vec<f64> = results
        .workloads
        .iter()
        .flat_map(|w| w.clients.iter().filter_map(|c| c.mb_s))
        .filter(|v| *v > 0.0)
        .collect();
    let max = values.iter().copied().fold(1.0, f64::max);
    let min = values.iter().copied().fold(max, f64::min);
    let lo = 10f64.powf(min.log10().floor().min(max.log10().floor() - 1.0));
    let hi = 10f64.powf(max.log10().ceil());
    let x =
        |v: f64| LEFT + BAR_AREA * ((v.max(lo)).log10() - lo.log10()) / (hi.log10() - lo.log10());

    let height: f64 = TOP
        + results
            .workloads
            .iter()
            .map(|w| TITLE + ROW * w.clients.len() as f64 + GAP)
            .sum::<f64>()
        + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="16" font-weight="bold" text-anchor="middle">POP3 clients: download every message, MB/s (log scale, higher is better)</text>"#,
        WIDTH / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" font-size="11" fill="#555" text-anchor="middle">{} CPUs ({}), load {}; medians; shared, noisy machine: compare the ratios to raw</text>"##,
        WIDTH / 2.0,
        results.machine.cpus,
        xml_escape(&results.machine.cpu_model),
        xml_escape(&results.machine.load_before)
    );
    let mut y = TOP;
    for w in &results.workloads {
        let panel_h = ROW * w.clients.len() as f64;
        let show_rss = is_big_message(w);
        let _ = writeln!(
            s,
            r#"<text x="8" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            y + 16.0,
            xml_escape(&w.label)
        );
        y += TITLE;
        // Grid lines at the powers of ten.
        let mut tick = lo;
        while tick <= hi * 1.0001 {
            let tx = x(tick);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                y - 2.0,
                y + panel_h
            );
            tick *= 10.0;
        }
        for (i, c) in w.clients.iter().enumerate() {
            let row_y = y + ROW * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                row_y + 14.0,
                xml_escape(&c.name)
            );
            match c.mb_s {
                Some(v) => {
                    let width = (x(v) - LEFT).max(1.0);
                    let ratio = match c.ratio_to_raw {
                        Some(r) if c.name != "raw" => format!(" ({r:.2}x raw time)"),
                        _ => String::new(),
                    };
                    let mut label = if v >= 100.0 {
                        format!("{v:.0} MB/s{ratio}")
                    } else {
                        format!("{v:.1} MB/s{ratio}")
                    };
                    if show_rss {
                        label.push_str(&format!(", peak RSS {} MiB", fmt_mib(c.peak_rss_kib)));
                    }
                    let _ = writeln!(
                        s,
                        r#"<rect x="{LEFT}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                        row_y + 3.0,
                        ROW - 6.0,
                        color(&c.name),
                        xml_escape(&c.name),
                        xml_escape(&label)
                    );
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                        LEFT + width + 5.0,
                        row_y + 14.0,
                        xml_escape(&label)
                    );
                }
                None => {
                    let why = if c.skipped.is_some() {
                        "not installed"
                    } else {
                        "failed"
                    };
                    let _ = writeln!(
                        s,
                        r##"<text x="{}" y="{:.1}" fill="#999" font-style="italic">{why}</text>"##,
                        LEFT + 4.0,
                        row_y + 14.0
                    );
                }
            }
        }
        y += panel_h + GAP;
    }
    // The axis labels, once, at the bottom.
    let mut tick = lo;
    while tick <= hi * 1.0001 {
        let label = if tick >= 1.0 {
            format!("{tick:.0}")
        } else {
            format!("{tick}")
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            x(tick),
            y + 4.0
        );
        tick *= 10.0;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">MB/s (message octets / median wall time of the whole client process)</text>"##,
        LEFT + BAR_AREA / 2.0,
        y + 20.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut raw = ClientResult::new("raw", "lower bound", false);
        raw.runs = vec![
            RunRecord {
                wall_s: 0.02,
                ok: true,
                peak_rss_kib: Some(3000),
                ..RunRecord::default()
            },
            RunRecord {
                wall_s: 0.04,
                ok: true,
                ..RunRecord::default()
            },
        ];
        raw.summarize(20_000_000);
        raw.ratio_to_raw = Some(1.0);
        let mut ours = ClientResult::new("blocking", "ours", true);
        ours.runs = vec![RunRecord {
            wall_s: 0.06,
            ok: true,
            peak_rss_kib: Some(5000),
            ..RunRecord::default()
        }];
        ours.summarize(20_000_000);
        ours.ratio_to_raw = Some(2.0);
        let mut skipped = ClientResult::new("mpop", "mpop", false);
        skipped.skipped = Some("not installed".into());
        Results {
            workloads: vec![WorkloadResult {
                label: "5000 x 4 KiB".into(),
                messages: 5000,
                size: 4096,
                octets: 20_000_000,
                clients: vec![raw, ours, skipped],
                ..WorkloadResult::default()
            }],
            ..Results::default()
        }
    }

    #[test]
    fn medians_and_tables() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        let r = sample();
        let raw = &r.workloads[0].clients[0];
        assert!((raw.median_s.unwrap_or(0.0) - 0.03).abs() < 1e-9);
        assert_eq!(raw.peak_rss_kib, Some(3000));
        let md = markdown(&r);
        assert!(
            md.contains("| 5000 x 4 KiB | blocking | 0.060 | 333 | 2.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| 5000 x 4 KiB | <= 1.5x raw | blocking | 2.00x | **no** |"),
            "{md}"
        );
        assert!(md.contains("skipped: not installed"));
    }

    #[test]
    fn chart_is_svg() {
        let svg = svg(&sample());
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("333 MB/s (2.00x raw time)"));
        assert!(svg.contains("not installed"));
    }
}
