//! Small tokio POP3 servers for the adapter's tests: a scripted peer and an in-memory mailbox.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pop3_async::Options;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Options for tests: short timeout, passwords allowed in the clear.
pub fn options() -> Options {
    let mut options = Options::default();
    options.timeout = Duration::from_secs(10);
    options.config.allow_plaintext_auth = true;
    options.login.allow_plaintext = true;
    options
}

/// The server side of one connection, with a log of every line received.
pub struct Peer<S> {
    io: BufReader<S>,
    pub received: Vec<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub fn new(io: S) -> Self {
        Self {
            io: BufReader::new(io),
            received: Vec::new(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.send_raw(text.as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// The next line without its CRLF, or `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.io.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                self.received.push(line.clone());
                Some(line)
            }
        }
    }

    pub async fn expect(&mut self, expected: &str) {
        let got = self.line().await;
        assert_eq!(
            got.as_deref(),
            Some(expected),
            "server expected {expected:?}"
        );
    }

    /// Reads until EOF, logging; returns everything received on this connection.
    pub async fn drain(mut self) -> Vec<String> {
        while self.line().await.is_some() {}
        self.received
    }

    pub fn into_inner(self) -> S {
        self.io.into_inner()
    }
}

/// Serves one connection with `script` on a local port.
pub async fn serve_one<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(Peer<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        script(Peer::new(tcp)).await
    });
    (addr, handle)
}

/// Dot-stuffs a CRLF message and appends the terminator.
pub fn multiline(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A deterministic CRLF message of about `size` octets, with lines starting with dots.
pub fn message(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out =
        format!("From: user{seed}@example.com\r\nSubject: message {seed}\r\n\r\n").into_bytes();
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        if x % 7 == 0 {
            out.push(b'.');
        }
        for i in 0..len {
            out.push(b'!' + ((x >> (i % 56)) as u8 % 90));
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An in-memory multi-user POP3 server: `user{n}` / `pass{n}` owns `mailboxes[n]`. It
/// announces PIPELINING and answers commands in order, so pipelined batches work. Every line
/// received is logged per connection.
#[derive(Clone)]
pub struct MailServer {
    pub mailboxes: Arc<Vec<Vec<Vec<u8>>>>,
    pub log: Arc<Mutex<Vec<Vec<String>>>>,
    pub committed: Arc<Mutex<HashMap<usize, Vec<u32>>>>,
}

impl MailServer {
    pub async fn start(mailboxes: Vec<Vec<Vec<u8>>>) -> (SocketAddr, MailServer) {
        // TcpListener::bind's backlog of 128 would drop connections of a burst of hundreds.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(4096).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = MailServer {
            mailboxes: Arc::new(mailboxes),
            log: Arc::default(),
            committed: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let tcp = match listener.accept().await {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        eprintln!("accept: {e}");
                        continue;
                    }
                };
                let s = s.clone();
                tokio::spawn(async move { s.session(tcp).await });
            }
        });
        (addr, server)
    }

    pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(&self, io: S) {
        let (reader, mut writer) = tokio::io::split(io);
        let mut reader = BufReader::new(reader);
        let mut out = Vec::new();
        let mut received = Vec::new();
        let mut user: Option<usize> = None;
        let mut mailbox: Option<usize> = None;
        let mut deleted: Vec<u32> = Vec::new();
        out.extend_from_slice(b"+OK mail server ready\r\n");
        loop {
            if !out.is_empty() {
                if writer.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = line.trim_end().to_owned();
            received.push(line.clone());
            let mut words = line.split(' ');
            let verb = words.next().unwrap_or_default().to_ascii_uppercase();
            let arg: Option<u32> = words.next().and_then(|w| w.parse().ok());
            let arg2: Option<u32> = words.next().and_then(|w| w.parse().ok());
            let messages = mailbox.map(|m| &self.mailboxes[m]);
            let get = |n: Option<u32>| {
                let n = n?;
                let m = messages?.get(n.checked_sub(1)? as usize)?;
                (!deleted.contains(&n)).then_some((n, m))
            };
            match verb.as_str() {
                "CAPA" => {
                    out.extend_from_slice(b"+OK\r\nUSER\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n")
                }
                "USER" => {
                    user = line
                        .get(5..)
                        .unwrap_or("")
                        .strip_prefix("user")
                        .and_then(|n| n.parse().ok());
                    out.extend_from_slice(b"+OK\r\n");
                }
                "PASS" => match user {
                    Some(u)
                        if line.get(5..).unwrap_or("") == format!("pass{u}")
                            && u < self.mailboxes.len() =>
                    {
                        mailbox = Some(u);
                        out.extend_from_slice(b"+OK logged in\r\n");
                    }
                    _ => out.extend_from_slice(b"-ERR [AUTH] no\r\n"),
                },
                "STAT" => {
                    let live: Vec<_> = (1..=messages.map_or(0, |m| m.len() as u32))
                        .filter_map(|n| get(Some(n)))
                        .collect();
                    let size: usize = live.iter().map(|(_, m)| m.len()).sum();
                    out.extend_from_slice(format!("+OK {} {size}\r\n", live.len()).as_bytes());
                }
                "LIST" | "UIDL" if arg.is_none() => {
                    out.extend_from_slice(b"+OK\r\n");
                    for n in 1..=messages.map_or(0, |m| m.len() as u32) {
                        if let Some((n, m)) = get(Some(n)) {
                            let value = if verb == "LIST" {
                                m.len().to_string()
                            } else {
                                format!("uid-{}-{n}", mailbox.unwrap_or(0))
                            };
                            out.extend_from_slice(format!("{n} {value}\r\n").as_bytes());
                        }
                    }
                    out.extend_from_slice(b".\r\n");
                }
                "RETR" | "TOP" => match get(arg) {
                    Some((_, m)) => {
                        out.extend_from_slice(format!("+OK {} octets\r\n", m.len()).as_bytes());
                        let body = if verb == "TOP" {
                            let lines = arg2.unwrap_or(0) as usize;
                            let header_end = m
                                .windows(4)
                                .position(|w| w == b"\r\n\r\n")
                                .map_or(m.len(), |p| p + 4);
                            let mut end = header_end;
                            for _ in 0..lines {
                                match m[end..].windows(2).position(|w| w == b"\r\n") {
                                    Some(p) => end += p + 2,
                                    None => end = m.len(),
                                }
                            }
                            &m[..end]
                        } else {
                            &m[..]
                        };
                        out.extend_from_slice(&multiline(body));
                    }
                    None => out.extend_from_slice(b"-ERR no such message\r\n"),
                },
                "DELE" => match get(arg) {
                    Some((n, _)) => {
                        deleted.push(n);
                        out.extend_from_slice(b"+OK deleted\r\n");
                    }
                    None => out.extend_from_slice(b"-ERR no such message\r\n"),
                },
                "RSET" => {
                    deleted.clear();
                    out.extend_from_slice(b"+OK\r\n");
                }
                "NOOP" => out.extend_from_slice(b"+OK\r\n"),
                "QUIT" => {
                    if let Some(m) = mailbox {
                        self.committed.lock().unwrap().insert(m, deleted.clone());
                    }
                    let _ = writer.write_all(b"+OK bye\r\n").await;
                    break;
                }
                _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
            }
        }
        let _ = writer.shutdown().await;
        self.log.lock().unwrap().push(received);
    }
}

/// A self-signed certificate for `localhost`: (server config, CA PEM).
pub fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    (Arc::new(config), certified.cert.pem())
}
