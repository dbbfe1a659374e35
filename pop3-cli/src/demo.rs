//! `demo`: an embedded POP3 server (`pop3-demo-server`'s in-memory `MailboxServer`, implicit
//! TLS with its self-signed test CA) serving generated mail; `fetch` it into a fresh Maildir,
//! twice.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pop3_async::{Connection, Options, Security, TlsOptions};
use pop3_demo_server::{MailboxServer, TestCa};
use serde_json::json;

use crate::cli::DemoArgs;
use crate::deliver::TargetSpec;
use crate::error::CliError;
use crate::fetch::{self, FetchJob, FetchSummary};
use crate::session::method_name;
use crate::state;

const USER: &str = "demo";
const PASSWORD: &str = "demo-password";
const HOST: &str = "127.0.0.1";

/// Connects with the safe defaults (implicit TLS, the certificate verified against the test
/// CA only, `login` choosing the method) and fetches.
async fn fetch_once(
    port: u16,
    job: &FetchJob,
) -> Result<(FetchSummary, &'static str, String, bool), CliError> {
    let prepared = fetch::prepare(job)?;
    let tls = TlsOptions::default()
        .without_webpki_roots()
        .add_ca_pem(TestCa::shared().certificate_pem().as_bytes())
        .map_err(pop3_async::Error::from)?;
    let options = Options::default().timeout(Duration::from_secs(30)).tls(tls);
    let mut connection = Connection::connect(HOST, port, Security::Implicit, &options).await?;
    let version = match connection.get_ref() {
        pop3_async::Stream::Tls(tls) => tls.get_ref().1.protocol_version(),
        _ => None,
    };
    let version = version.map_or_else(
        || "TLS".to_owned(),
        |v| format!("{v:?}").replace("TLSv1_", "TLS 1."),
    );
    // Asked before login: the CAPA after login goes out with the first command after it.
    let pipelined = connection.capabilities().is_some_and(|c| c.pipelining);
    let method = method_name(connection.login(USER, PASSWORD).await?);
    let summary = fetch::fetch(connection, prepared, job).await?;
    Ok((summary, method, version, pipelined))
}

/// Runs the demo.
pub(crate) fn demo(args: &DemoArgs, json: bool) -> Result<(), CliError> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let maildir = args.maildir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "pop3-demo-{}-{}",
            std::process::id(),
            started.as_secs()
        ))
    });
    let server = MailboxServer::builder(sample_mail(args.messages, args.size, 1939))
        .credentials(USER, PASSWORD)
        .implicit_tls()
        .start()
        .map_err(|e| CliError::failure(format!("cannot start the embedded server: {e}")))?;
    let job = FetchJob {
        // Port 0: the embedded server listens on a new port every run, its mail stays the same.
        state: state::default_path(&maildir, USER, HOST, 0),
        legacy_state: None,
        target: TargetSpec::Maildir(maildir.clone()),
        deliver_timeout: crate::deliver::DEFAULT_TIMEOUT,
        delete: false,
        batch: 64,
        batch_bytes: 8 * 1024 * 1024,
        progress: !json,
        retention: fetch::Retention::default(),
        stop: None,
    };
    let runtime = fetch::runtime()?;
    let (first, method, version, pipelined) = runtime.block_on(fetch_once(server.port(), &job))?;
    let (second, _, _, _) = runtime.block_on(fetch_once(server.port(), &job))?;
    let seconds = first.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        first.bytes as f64 / seconds / 1e6
    } else {
        0.0
    };
    if json {
        crate::outln!(
            "{}",
            json!({
                "server": format!("{HOST}:{}", server.port()),
                "tls": version,
                "first": first.to_json(&job.target, &job.state, method),
                "second": second.to_json(&job.target, &job.state, method),
                "mb_per_second": rate,
            })
        )?;
        return Ok(());
    }
    let new_dir: PathBuf = maildir.join("new");
    let files = std::fs::read_dir(&new_dir).map_or(0, Iterator::count);
    crate::outln!(
        "pop3 demo: an embedded POP3 server on {HOST}:{} (implicit TLS, a test CA) with {} generated messages",
        server.port(),
        args.messages
    )?;
    crate::outln!(
        "  login       {method} over {version} (--auth auto: the best the server offers)"
    )?;
    crate::outln!(
        "  fetched     {} messages, {} bytes in {:.3} s ({rate:.1} MB/s), {} durable batches, {}",
        first.stored,
        first.bytes,
        seconds,
        first.batches,
        if pipelined {
            "pipelined"
        } else {
            "one command at a time"
        }
    )?;
    crate::outln!(
        "  Maildir     {} (new/ holds {files} files)",
        maildir.display()
    )?;
    crate::outln!("  state       {}", job.state.display())?;
    crate::outln!(
        "  second run  stored {} messages: all {} UIDs were already recorded",
        second.stored,
        second.skipped
    )?;
    crate::outln!(
        "Try: pop3 --host pop.example.com --user you --password-cmd 'pass mail' fetch --maildir ~/Maildir"
    )?;
    Ok(())
}

const WORDS: &[&str] = &[
    "mail", "server", "client", "message", "retrieve", "delete", "mailbox", "quota", "folder",
    "inbox", "protocol", "pipeline", "secure", "durable", "maildir", "unique", "batch", "sync",
];

/// `count` deterministic sample messages of about `size` bytes (CRLF line ends): headers, a
/// UTF-8 line, lines that need dot-stuffing (`.x`, `..x` and a lone `.`), then filler text.
pub(crate) fn sample_mail(count: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|n| {
            let mut x = seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let sender = next() % 9;
            let mut text = format!(
                "From: Sender {sender} <sender{sender}@example.test>\r\n\
                 To: Demo User <demo@example.test>\r\n\
                 Subject: Sample message {n}\r\n\
                 Message-ID: <sample-{seed}-{n}@example.test>\r\n\
                 Date: Mon, {:02} Jan 2024 {:02}:{:02}:00 +0000\r\n\
                 MIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\
                 \r\n\
                 This is sample message number {n}.\r\n\
                 .a line that starts with a dot\r\n\
                 ..and one with two\r\n\
                 .\r\n\
                 Grüße aus Köln: naïve café, καλημέρα, привет.\r\n",
                n % 28 + 1,
                n % 24,
                n % 60
            );
            let mut line = String::new();
            while text.len() + line.len() < size {
                let word = WORDS[(next() % WORDS.len() as u64) as usize];
                if line.len() + word.len() + 1 > 72 {
                    text.push_str(&line);
                    text.push_str("\r\n");
                    line.clear();
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
            text.push_str(&line);
            text.push_str("\r\n");
            text.into_bytes()
        })
        .collect()
}
