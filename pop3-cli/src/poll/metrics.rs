//! `--metrics ADDR`: per-account counters in the Prometheus text format (version 0.0.4),
//! served over plain HTTP/1.1 to whoever connects (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One account's numbers.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccountMetrics {
    /// When the last successful poll ended (seconds since the epoch).
    pub(crate) last_success: Option<f64>,
    /// Messages stored, in total.
    pub(crate) messages: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Failed polls.
    pub(crate) errors: u64,
    /// Polls, failed or not.
    pub(crate) polls: u64,
    /// When the next poll is due (seconds since the epoch); `None` while polling or paused.
    pub(crate) next_poll: Option<f64>,
    /// Paused after `[AUTH]`, `[SYS/PERM]` or a usage error.
    pub(crate) paused: bool,
}

/// Every account's numbers, shared by the account tasks and the server.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics(Arc<Mutex<BTreeMap<String, AccountMetrics>>>);

/// Now, in seconds since the epoch.
pub(crate) fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `in_` from now, in seconds since the epoch.
pub(crate) fn epoch_in(in_: Duration) -> f64 {
    epoch_now() + in_.as_secs_f64()
}

impl Metrics {
    /// Changes one account's numbers.
    pub(crate) fn update(&self, account: &str, change: impl FnOnce(&mut AccountMetrics)) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        change(map.entry(account.to_owned()).or_default());
    }

    /// Forgets the accounts not in `keep` (after a reload removed them).
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|name, _| keep(name));
    }

    /// The text format.
    pub(crate) fn render(&self) -> String {
        let map = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        type Field = fn(&AccountMetrics) -> Option<f64>;
        let families: [(&str, &str, &str, Field); 7] = [
            (
                "pop3_poll_last_success_timestamp_seconds",
                "gauge",
                "When the last successful poll of the account ended.",
                |m| m.last_success,
            ),
            (
                "pop3_poll_messages_total",
                "counter",
                "Messages stored.",
                |m| Some(m.messages as f64),
            ),
            (
                "pop3_poll_bytes_total",
                "counter",
                "Bytes of the messages stored.",
                |m| Some(m.bytes as f64),
            ),
            ("pop3_poll_errors_total", "counter", "Failed polls.", |m| {
                Some(m.errors as f64)
            }),
            (
                "pop3_poll_polls_total",
                "counter",
                "Polls, failed or not.",
                |m| Some(m.polls as f64),
            ),
            (
                "pop3_poll_next_poll_timestamp_seconds",
                "gauge",
                "When the next poll of the account is due (absent while polling or paused).",
                |m| m.next_poll,
            ),
            (
                "pop3_poll_paused",
                "gauge",
                "1 while the account is paused ([AUTH], [SYS/PERM] or a config error).",
                |m| Some(if m.paused { 1.0 } else { 0.0 }),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (account, m) in &map {
                if let Some(value) = field(m) {
                    let _ = writeln!(out, "{name}{{account=\"{}\"}} {value}", label(account));
                }
            }
        }
        out
    }
}

/// A label value escaped as the text format says: `\`, `"` and line feeds.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The most a request may send before its blank line.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `metrics` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // (Out of file descriptors, say: wait rather than spin.)
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics)).await;
        });
    }
}

/// Reads one request's head and answers it: `GET /metrics` (or `/`) with the metrics, anything
/// else 404 or 405.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|b| *b == b'?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics" | b"/") => ("200 OK", metrics.render()),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "GET only\n".to_owned()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != b"HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let metrics = Metrics::default();
        metrics.update("a\"b", |m| {
            m.messages = 3;
            m.bytes = 1200;
            m.last_success = Some(1.5);
        });
        let text = metrics.render();
        assert!(
            text.contains("pop3_poll_messages_total{account=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pop3_poll_last_success_timestamp_seconds{account=\"a\\\"b\"} 1.5\n")
        );
        assert!(text.contains("# TYPE pop3_poll_bytes_total counter\n"));
        assert!(!text.contains("pop3_poll_next_poll_timestamp_seconds{"));
    }
}
