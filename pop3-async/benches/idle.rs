//! Memory of idle connected sessions: opens 1,000 sessions (greeting and CAPA read, then idle)
//! against a local server running in a child process, and reports the bytes each costs.
//!
//! Two measures of the client process only (the server is another process so that its memory
//! is not counted):
//!
//! - heap bytes live, through a counting global allocator (`stats_alloc`, no unsafe code
//!   here): exact, and what the program asked for;
//! - the resident set size delta (`/proc/self/statm`): what the OS actually gave, which is less
//!   when allocated pages are never touched.
//!
//! Run: `cargo bench -p pop3-async --bench idle` (set `SESSIONS` to change the count).

use std::alloc::System;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use pop3_async::{Connection, Options};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let sessions: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut port = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut port)
        .expect("server port");
    let port: u16 = port.trim().parse().expect("a port number");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let options = Options::default();
        // Warm up: the runtime's and rustls' one-time allocations are not per session.
        let warm = open(port, &options).await;
        let mut connections = Vec::with_capacity(sessions);
        let rss_before = rss_bytes();
        let region = Region::new(GLOBAL);
        for _ in 0..sessions {
            connections.push(open(port, &options).await);
        }
        let stats = region.change();
        let rss_after = rss_bytes();
        let heap = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
        let inline = std::mem::size_of::<Connection<TcpStream>>();
        let heap_per = heap as f64 / sessions as f64 + inline as f64;
        let rss_per = (rss_after as f64 - rss_before as f64) / sessions as f64;
        println!("idle sessions: {sessions}");
        println!("heap per session: {heap_per:.0} bytes ({:.0} on the heap + {inline} inline Connection)", heap as f64 / sessions as f64);
        println!("allocations per session: {:.1}", stats.allocations as f64 / sessions as f64);
        println!("rss per session: {rss_per:.0} bytes (pages actually touched)");
        drop(connections);
        drop(warm);
    });
    let _ = child.kill();
    let _ = child.wait();
}

async fn open(port: u16, options: &Options) -> Connection<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    Connection::new(tcp, options).await.expect("session")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The server: greets, answers CAPA, then holds the connection open.
fn serve() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener = socket.listen(4096).expect("listen");
        println!("{}", listener.local_addr().expect("addr").port());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (reader, mut writer) = tcp.into_split();
                let mut reader = tokio::io::BufReader::new(reader);
                if writer
                    .write_all(b"+OK idle server ready\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply: &[u8] = if line.starts_with("CAPA") {
                        b"+OK\r\nUSER\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n"
                    } else {
                        b"+OK\r\n"
                    };
                    line.clear();
                    if writer.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
