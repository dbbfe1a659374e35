//! The floor of durable Maildir delivery: the raw client's transfer plus writing the same
//! Maildir files `pop3 fetch` writes, with the same syncs, timed in-process
//! (`pop3-bench client floor --maildir DIR`).
//!
//! What it does, and no more:
//! - USER/PASS, then every `RETR` and `QUIT` in one write (as [`raw`](crate::clients::raw));
//! - each reply's status line skipped, its lines dot-unstuffed and their CRLF made LF (the
//!   bytes `fetch` stores), the message written with one `write` into `tmp/NAME`;
//! - per batch of 64 messages (or 8 MiB, `fetch`'s defaults), on a second thread while the
//!   next batch downloads: every file `fdatasync`ed (on up to 16 threads, as `fetch` does),
//!   renamed into `new/`, `new/` synced once, and a small state file written (temporary
//!   file, fsync, rename, directory fsync).
//!
//! It checks nothing a real client must (no UIDL, no listing checks, no state to read, no
//! limits): a lower bound for `pop3 fetch`, not a client.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::clients::Received;
use crate::server::{PASSWORD, USER};

/// Messages per durable batch (`fetch --batch` default).
const BATCH: usize = 64;
/// Bytes per durable batch (`fetch --batch-bytes` default).
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Threads syncing a batch's files (`fetch`'s).
const SYNC_THREADS: usize = 16;
/// The read buffer (the raw client's).
const BUFFER: usize = 256 * 1024;

fn failed(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

/// Reads one single-line reply and checks that it is `+OK`.
fn status(socket: &mut TcpStream, buf: &mut [u8], what: &str) -> io::Result<()> {
    let mut have = 0;
    while !buf[..have].ends_with(b"\r\n") {
        match socket.read(&mut buf[have..])? {
            0 => return Err(failed(format!("end of input waiting for the {what} reply"))),
            n => have += n,
        }
    }
    if buf.starts_with(b"+OK") {
        Ok(())
    } else {
        Err(failed(format!("{what}: not +OK")))
    }
}

/// A batch handed to the committer: (file, name) pairs.
type Batch = Vec<(File, String)>;

/// Makes a batch durable: fdatasync (concurrently), rename, sync `new/`, write the state.
fn commit(root: &Path, batch: Batch, state_text: &str) -> io::Result<()> {
    let per_thread = batch.len().div_ceil(SYNC_THREADS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|(f, _)| f.sync_data())))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(failed("sync thread"))))
    })?;
    for (_, name) in &batch {
        fs::rename(root.join("tmp").join(name), root.join("new").join(name))?;
    }
    File::open(root.join("new"))?.sync_all()?;
    let tmp = root.join(".state.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(state_text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, root.join(".state"))?;
    File::open(root)?.sync_all()
}

/// The floor run into the Maildir `root` (created).
pub fn floor(port: u16, messages: u64, root: &Path) -> io::Result<Received> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(root.join(sub))?;
    }
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut buf = vec![0u8; BUFFER];
    status(&mut socket, &mut buf, "greeting")?;
    socket.write_all(format!("USER {USER}\r\n").as_bytes())?;
    status(&mut socket, &mut buf, "USER")?;
    socket.write_all(format!("PASS {PASSWORD}\r\n").as_bytes())?;
    status(&mut socket, &mut buf, "PASS")?;
    let mut commands = Vec::with_capacity(messages as usize * 13 + 6);
    for i in 1..=messages {
        let _ = write!(commands, "RETR {i}\r\n");
    }
    commands.extend_from_slice(b"QUIT\r\n");
    let mut writer = socket.try_clone()?;
    let sender = std::thread::spawn(move || writer.write_all(&commands));

    let (to_committer, jobs) = mpsc::sync_channel::<(Batch, String)>(1);
    let committer_root: PathBuf = root.to_owned();
    let committer = std::thread::spawn(move || -> io::Result<()> {
        for (batch, state) in jobs {
            commit(&committer_root, batch, &state)?;
        }
        Ok(())
    });

    let mut received = Received::default();
    let mut message: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut batch: Batch = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
    let mut state = String::from("floor state\n");
    // Parser state: inside a status line, or in a body (at a line start or not).
    let mut in_status = true;
    let mut line_start = true;
    let mut carry = 0usize;
    let pid = std::process::id();
    while received.messages < messages {
        let n = socket.read(&mut buf[carry..])?;
        if n == 0 {
            return Err(failed("end of input"));
        }
        let end = carry + n;
        let mut at = 0;
        while at < end && received.messages < messages {
            let Some(lf) = memchr::memchr(b'\n', &buf[at..end]) else {
                break;
            };
            let line = &buf[at..at + lf + 1];
            at += lf + 1;
            if in_status {
                in_status = false;
                line_start = true;
                continue;
            }
            if line_start && line == b".\r\n" {
                // The end of a message: one write into tmp/.
                received.messages += 1;
                received.bytes += message.len() as u64;
                let name = format!("{}.M{}P{pid}.floor", received.messages, batch.len());
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(root.join("tmp").join(&name))?;
                file.write_all(&message)?;
                batch_bytes += message.len();
                message.clear();
                state.push_str(&format!("S {name}\n"));
                batch.push((file, name));
                if batch.len() >= BATCH || batch_bytes >= BATCH_BYTES {
                    to_committer
                        .send((std::mem::take(&mut batch), state.clone()))
                        .map_err(|_| failed("the committer stopped"))?;
                    batch_bytes = 0;
                }
                in_status = true;
                continue;
            }
            let body = if line_start && line.first() == Some(&b'.') {
                &line[1..]
            } else {
                line
            };
            match body.strip_suffix(b"\r\n") {
                Some(text) => {
                    message.extend_from_slice(text);
                    message.push(b'\n');
                }
                None => message.extend_from_slice(body),
            }
            line_start = true;
        }
        // An incomplete line stays for the next read (a line longer than the buffer goes out
        // as it is, not at a line start).
        if at == 0 && end == buf.len() {
            if !in_status {
                let keep = 1; // a CR may be followed by the LF in the next read
                message.extend_from_slice(&buf[..end - keep]);
                line_start = false;
                buf.copy_within(end - keep..end, 0);
                carry = keep;
            } else {
                carry = 0;
            }
        } else {
            buf.copy_within(at..end, 0);
            carry = end - at;
        }
    }
    if !batch.is_empty() {
        to_committer
            .send((batch, state))
            .map_err(|_| failed("the committer stopped"))?;
    }
    drop(to_committer);
    committer
        .join()
        .map_err(|_| failed("the committer panicked"))??;
    sender
        .join()
        .map_err(|_| failed("the writer thread panicked"))??;
    Ok(received)
}
