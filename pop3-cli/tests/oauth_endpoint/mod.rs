//! The pieces the OAuth end-to-end tests share: a local OAuth token endpoint (HTTPS with the
//! demo server's test CA, or HTTP; std threads) that answers as each test's handler says and
//! records every request with its time, the POP3 side (a ScriptedServer expecting an AUTH
//! line) and the check that no secret leaked.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pop3_blocking::rustls::{ServerConnection, StreamOwned};
use pop3_demo_server::TestCa;
use pop3_scripted_server::{Script, ScriptedServer};
use serde_json::{Value, json};

use crate::common::Run;

/// One request the endpoint received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub form: BTreeMap<String, String>,
    pub at: Instant,
}

/// What the endpoint answers: after `delay`, `status` with a JSON body.
pub struct Answer {
    pub delay: Duration,
    pub status: u16,
    pub body: Value,
}

pub fn ok(body: Value) -> Answer {
    Answer {
        delay: Duration::ZERO,
        status: 200,
        body,
    }
}

pub fn refused(error: &str) -> Answer {
    Answer {
        delay: Duration::ZERO,
        status: 400,
        body: json!({"error": error, "error_description": format!("test says {error}")}),
    }
}

pub type Handler = dyn Fn(&Request, usize) -> Answer + Send + Sync;

pub struct TokenServer {
    pub port: u16,
    pub tls: bool,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl TokenServer {
    /// Starts the endpoint; `handler` gets each request and how many came before it.
    pub fn start(
        tls: bool,
        handler: impl Fn(&Request, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let server_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let log = Arc::clone(&server_log);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    let _ = serve(tcp, tls, &log, &*handler);
                });
            }
        });
        Self { port, tls, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://localhost:{}{path}",
            if self.tls { "https" } else { "http" },
            self.port
        )
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(
    tcp: TcpStream,
    tls: bool,
    log: &Mutex<Vec<Request>>,
    handler: &Handler,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    if tls {
        let connection = ServerConnection::new(TestCa::shared().server_config()).unwrap();
        let mut stream = StreamOwned::new(connection, tcp);
        exchange(&mut stream, log, handler)?;
        stream.conn.send_close_notify();
        stream.flush()
    } else {
        let mut stream = tcp;
        exchange(&mut stream, log, handler)
    }
}

fn exchange(
    stream: &mut (impl Read + Write),
    log: &Mutex<Vec<Request>>,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (end + 4, length);
        }
    };
    while data.len() < head_end + length {
        let n = stream.read(&mut buf)?;
        assert!(n > 0, "the client closed in the middle of its request");
        data.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap().to_owned();
    let mut parts = request_line.split(' ');
    assert_eq!(parts.next(), Some("POST"), "{head}");
    let path = parts.next().unwrap().to_owned();
    assert!(
        head.contains("\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nHost: localhost:"), "{head}");
    let body = String::from_utf8(data[head_end..head_end + length].to_vec()).unwrap();
    let form = body
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect();
    let request = Request {
        path,
        form,
        at: Instant::now(),
    };
    let count = {
        let mut log = log.lock().unwrap();
        log.push(request.clone());
        log.len() - 1
    };
    let answer = handler(&request, count);
    std::thread::sleep(answer.delay);
    let body = answer.body.to_string();
    // Chunked for the errors, Content-Length for the rest: both framings get exercised.
    let response = if answer.status == 200 {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        format!(
            "HTTP/1.1 {} Error\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            answer.status,
            body.len()
        )
    };
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn xoauth2_line(token: &str) -> String {
    let ir = base64::engine::general_purpose::STANDARD
        .encode(format!("user=alice\x01auth=Bearer {token}\x01\x01"));
    format!("AUTH XOAUTH2 {ir}")
}

pub fn oauthbearer_line(token: &str, port: u16) -> String {
    let ir = base64::engine::general_purpose::STANDARD.encode(format!(
        "n,a=alice,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01"
    ));
    format!("AUTH OAUTHBEARER {ir}")
}

pub const GREETING: &str =
    "S: +OK ready\nC: CAPA\nS-RAW: +OK\\r\\nSASL XOAUTH2 OAUTHBEARER\\r\\n.\\r\\n\n";
pub const AFTER_LOGIN: &str =
    "S: +OK welcome\nC: CAPA\nS-RAW: +OK\\r\\n.\\r\\n\nC: STAT\nS: +OK 0 0\nC: QUIT\nS: +OK bye\n";

/// A ScriptedServer that expects one successful AUTH line, then STAT.
pub fn pop_server_expecting(auth_line: &str) -> ScriptedServer {
    let script = Script::parse(&format!("{GREETING}C: {auth_line}\n{AFTER_LOGIN}")).unwrap();
    ScriptedServer::start(script).unwrap()
}

/// A port where nothing listens (nothing may connect in the test).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
pub fn assert_no_secret(run: &Run, secrets: &[&str]) {
    let out = format!("{}{}", run.stdout_str(), run.stderr);
    for secret in secrets {
        assert!(!out.contains(secret), "{secret:?} leaked:\n{out}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(!out.contains(&b64), "{secret:?} leaked in base64:\n{out}");
    }
}

pub fn device_reply(interval: u64) -> Answer {
    ok(json!({
        "device_code": "dev-code-1",
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://example.test/device",
        "verification_uri_complete": "https://example.test/device?code=WDJB-MJHT",
        "expires_in": 60,
        "interval": interval,
    }))
}
