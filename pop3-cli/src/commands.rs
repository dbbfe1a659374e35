//! The inspection commands: capa, stat, list, uidl, top, retr, dele.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use pop3_blocking::pop3_proto::capa::ExpirePolicy;
use pop3_blocking::{Capabilities, Connection};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::error::CliError;
use crate::escape;
use crate::maildir::sync_dir;
use crate::session;

/// Writes `text` to stdout; a closed or full stdout is a local failure (exit 3), not a
/// panic as `print!` would make it. [`outln!`](crate::outln) is its `println!`.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::local("stdout", &e))
}

fn print_json(value: &Value) -> Result<(), CliError> {
    print(&format!("{}\n", escape::json_text(value)))
}

/// Runs `work` on a session (logged in if `login`), then QUITs. After a failure the session
/// still ends with QUIT when the connection is usable (a `-ERR`, a local write error).
fn with_session<T>(
    settings: &Settings,
    login: bool,
    work: impl FnOnce(&mut Connection) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let mut connection = if login {
        session::open(settings)?.0
    } else {
        session::connect(settings)?
    };
    match work(&mut connection) {
        Ok(value) => {
            connection.quit()?;
            Ok(value)
        }
        Err(error) => {
            if !connection.is_poisoned() {
                let _ = connection.quit();
            }
            Err(error)
        }
    }
}

/// The capability lines as the server sent them.
pub(crate) fn capa_lines(c: &Capabilities) -> Vec<String> {
    c.lines.clone()
}

fn capa_json(c: &Capabilities, tls: bool) -> Value {
    json!({
        "lines": capa_lines(c),
        "top": c.top,
        "user": c.user,
        "uidl": c.uidl,
        "pipelining": c.pipelining,
        "stls": c.stls,
        "resp_codes": c.resp_codes,
        "auth_resp_code": c.auth_resp_code,
        "lang": c.lang,
        "sasl": c.sasl,
        "utf8": c.utf8.map(|u| json!({ "user": u.user })),
        "login_delay": c.login_delay.map(|d| json!({ "seconds": d.seconds, "per_user": d.per_user })),
        "expire": c.expire.map(|e| json!({
            "days": match e.policy { ExpirePolicy::Days(d) => Some(d), _ => None },
            "never": matches!(e.policy, ExpirePolicy::Never),
            "per_user": e.per_user,
        })),
        "implementation": c.implementation,
        "other": c.other,
        "tls": tls,
    })
}

/// `capa [--login]`.
pub(crate) fn capa(settings: &Settings, after_login: bool) -> Result<(), CliError> {
    let (capabilities, tls) = with_session(settings, after_login, |connection| {
        let capabilities = match connection.capabilities() {
            Some(c) if *c != Capabilities::default() => c.clone(),
            // Unknown or empty: ask again, so that a server without CAPA (RFC 1939 only) is
            // told apart from one with an empty list: its -ERR is exit 1.
            _ => connection.capa().map_err(|e| {
                CliError::from(e).context("the server has no CAPA (an RFC 1939-only server)")
            })?,
        };
        Ok((capabilities, connection.is_tls()))
    })?;
    if settings.json {
        print_json(&capa_json(&capabilities, tls))
    } else {
        let mut text = String::new();
        for line in capa_lines(&capabilities) {
            text.push_str(&escape::escape(&line));
            text.push('\n');
        }
        print(&text)
    }
}

/// `stat`.
pub(crate) fn stat(settings: &Settings) -> Result<(), CliError> {
    let stat = with_session(settings, true, |c| Ok(c.stat()?))?;
    if settings.json {
        print_json(&json!({ "count": stat.count, "size": stat.size }))
    } else {
        print(&format!("{} {}\n", stat.count, stat.size))
    }
}

/// `list [N]`.
pub(crate) fn list(settings: &Settings, msg: Option<u32>) -> Result<(), CliError> {
    let listings = with_session(settings, true, |c| {
        Ok(match msg {
            Some(msg) => vec![c.list_one(msg)?],
            None => c.list()?,
        })
    })?;
    if settings.json {
        let items: Vec<Value> = listings
            .iter()
            .map(|l| json!({ "msg": l.msg, "size": l.size }))
            .collect();
        print_json(&Value::Array(items))
    } else {
        let mut text = String::new();
        for l in listings {
            text.push_str(&format!("{} {}\n", l.msg, l.size));
        }
        print(&text)
    }
}

/// `uidl [N]`.
pub(crate) fn uidl(settings: &Settings, msg: Option<u32>) -> Result<(), CliError> {
    let listings = with_session(settings, true, |c| {
        Ok(match msg {
            Some(msg) => vec![c.uidl_one(msg)?],
            None => c.uidl()?,
        })
    })?;
    if settings.json {
        let items: Vec<Value> = listings
            .iter()
            .map(|l| json!({ "msg": l.msg, "uid": l.uid }))
            .collect();
        print_json(&Value::Array(items))
    } else {
        let mut text = String::new();
        for l in listings {
            text.push_str(&format!("{} {}\n", l.msg, escape::escape(&l.uid)));
        }
        print(&text)
    }
}

/// A sink that remembers whether *it* failed, so that a local write error is not mistaken
/// for a network one (the adapter reports both as `Error::Io`).
struct TrackedSink<W> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W: Write> Write for TrackedSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.failed
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.failed
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Streams a body into `out`, telling local write errors from connection errors.
fn body_into<W: Write>(
    connection: &mut Connection,
    out: W,
    what: &str,
    fetch: impl FnOnce(&mut Connection, &mut TrackedSink<W>) -> Result<u64, pop3_blocking::Error>,
) -> Result<W, CliError> {
    let mut sink = TrackedSink {
        inner: out,
        failed: None,
    };
    match fetch(connection, &mut sink) {
        Ok(_) => Ok(sink.inner),
        Err(e) => match sink.failed.take() {
            Some(local) => Err(CliError::local(what, &local)),
            None => Err(e.into()),
        },
    }
}

/// `top N LINES`.
pub(crate) fn top(settings: &Settings, msg: u32, lines: u32) -> Result<(), CliError> {
    with_session(settings, true, |connection| {
        let stdout = BufWriter::new(io::stdout().lock());
        body_into(connection, stdout, "stdout", |c, sink| {
            c.top(msg, lines, sink)
        })?;
        Ok(())
    })
}

/// `retr N [-o FILE]`. A regular FILE (or a new one) is written beside its final name, synced,
/// and renamed over it only when complete: a failed download leaves the file that was there,
/// or none. FILE that is not a regular file (a device, a FIFO) is written in place and never
/// removed.
pub(crate) fn retr(settings: &Settings, msg: u32, output: Option<&Path>) -> Result<(), CliError> {
    with_session(settings, true, |connection| match output {
        None => {
            let stdout = BufWriter::new(io::stdout().lock());
            body_into(connection, stdout, "stdout", |c, sink| c.retr(msg, sink))?;
            Ok(())
        }
        Some(path) => retr_to_file(connection, msg, path),
    })
}

fn retr_to_file(connection: &mut Connection, msg: u32, path: &Path) -> Result<(), CliError> {
    let what = path.display().to_string();
    let local = |e: &io::Error| CliError::local(&what, e);
    let (target, permissions) = match fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| local(&e))?;
            let out = body_into(connection, BufWriter::new(file), &what, |c, sink| {
                c.retr(msg, sink)
            })?;
            out.into_inner().map_err(|e| local(e.error()))?;
            return Ok(());
        }
        // (A symbolic link: its target is replaced, not the link.)
        Ok(metadata) => (
            fs::canonicalize(path).map_err(|e| local(&e))?,
            Some(metadata.permissions()),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (path.to_owned(), None),
        Err(e) => return Err(local(&e)),
    };
    let Some(name) = target.file_name() else {
        return Err(CliError::usage(format!("{what} is not a file name")));
    };
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut partial = OsString::from(".");
    partial.push(name);
    partial.push(format!(".pop3-{}.partial", std::process::id()));
    let partial = dir.join(partial);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| CliError::local(partial.display(), &e))?;
    let result = body_into(connection, BufWriter::new(file), &what, |c, sink| {
        c.retr(msg, sink)
    })
    .and_then(|out| {
        let file = out.into_inner().map_err(|e| local(e.error()))?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions).map_err(|e| local(&e))?;
        }
        file.sync_all()
            .and_then(|()| fs::rename(&partial, &target))
            .and_then(|()| sync_dir(dir))
            .map_err(|e| local(&e))
    });
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// `dele N...`: all or nothing.
pub(crate) fn dele(settings: &Settings, msgs: &[u32]) -> Result<(), CliError> {
    let (mut connection, _) = session::open(settings)?;
    let results = match connection.dele_many(msgs) {
        Ok(results) => results,
        Err(error) => {
            // Nothing is committed without QUIT: leave without it.
            return Err(error.into());
        }
    };
    let refused: Vec<String> = msgs
        .iter()
        .zip(&results)
        .filter_map(|(msg, r)| r.as_ref().err().map(|e| format!("message {msg}: {e}")))
        .collect();
    if !refused.is_empty() {
        // Undo the marks that succeeded, so that nothing is deleted, and end politely.
        connection.rset()?;
        connection.quit()?;
        return Err(CliError::Server(format!(
            "{}; nothing was deleted",
            refused.join("; ")
        )));
    }
    connection
        .quit()
        .map_err(|e| CliError::from(e).context("QUIT (the deletions were not committed)"))?;
    Ok(())
}
