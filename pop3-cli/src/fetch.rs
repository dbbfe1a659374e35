//! `fetch`: every message whose UID is not yet recorded goes into the Maildir, durably, in
//! pipelined batches.
//!
//! Per batch: RETR the batch (pipelined when the server allows) into `tmp/`, fsync each file,
//! rename each into `new/`, fsync `new/` once, write the state once (the batch's UIDs as
//! stored, the names reserved for the next batch), then DELE the batch if `--delete`. QUIT
//! comes only at the end. Killing the process at any point loses nothing (a message is
//! recorded only once it is durable in `new/`, and deleted only once recorded) and stores
//! nothing twice (a message renamed into `new/` but not yet recorded is found again by its
//! reserved name; see [`crate::state`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pop3_blocking::{Connection, RetrEvent};
use serde_json::json;

use crate::error::CliError;
use crate::maildir::{LfWriter, Maildir};
use crate::state::State;

/// What `fetch` was asked to do.
#[derive(Debug)]
pub(crate) struct FetchJob {
    pub(crate) maildir: PathBuf,
    pub(crate) delete: bool,
    /// The state file (always opened: a server without UIDL only becomes known later).
    pub(crate) state: PathBuf,
    pub(crate) batch: usize,
    pub(crate) batch_bytes: u64,
    pub(crate) progress: bool,
}

/// What `fetch` did.
#[derive(Debug, Default)]
pub(crate) struct FetchSummary {
    /// Messages the server listed.
    pub(crate) listed: usize,
    /// Messages stored by this run.
    pub(crate) stored: usize,
    /// Their size as received (CRLF line ends, dot-unstuffed).
    pub(crate) bytes: u64,
    /// Messages skipped because their UID was already recorded.
    pub(crate) skipped: usize,
    /// Messages skipped because an earlier message of the same listing has the same UID.
    pub(crate) duplicates: usize,
    /// Messages marked deleted (committed by the final QUIT).
    pub(crate) deleted: usize,
    /// Messages of an interrupted run found delivered and recorded now.
    pub(crate) recovered: usize,
    /// Durable batches written.
    pub(crate) batches: usize,
    /// The server's refusals (RETR or DELE `-ERR`), one line each.
    pub(crate) refused: Vec<String>,
    /// From login to QUIT.
    pub(crate) elapsed: Duration,
    /// Whether the server has UIDL.
    pub(crate) uidl: bool,
}

impl FetchSummary {
    /// The summary as JSON.
    pub(crate) fn to_json(&self, maildir: &Path, state: &Path, method: &str) -> serde_json::Value {
        json!({
            "listed": self.listed,
            "stored": self.stored,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "deleted": self.deleted,
            "recovered": self.recovered,
            "batches": self.batches,
            "refused": self.refused,
            "seconds": self.elapsed.as_secs_f64(),
            "uidl": self.uidl,
            "login": method,
            "maildir": maildir.display().to_string(),
            "state": state.display().to_string(),
        })
    }

    /// The summary as one line of text.
    pub(crate) fn line(&self, maildir: &Path) -> String {
        let mut text = format!(
            "stored {} of {} messages ({} bytes) in {}",
            self.stored,
            self.listed,
            self.bytes,
            maildir.display()
        );
        if self.skipped > 0 {
            text.push_str(&format!(", {} already stored", self.skipped));
        }
        if self.duplicates > 0 {
            text.push_str(&format!(", {} duplicate UIDs skipped", self.duplicates));
        }
        if self.recovered > 0 {
            text.push_str(&format!(
                ", {} recovered from an interrupted run",
                self.recovered
            ));
        }
        if self.deleted > 0 {
            text.push_str(&format!(", {} deleted on the server", self.deleted));
        }
        text
    }
}

/// One message to fetch.
#[derive(Debug, Clone)]
struct Item {
    msg: u32,
    uid: Option<String>,
    size: u64,
}

/// A message of the current batch that arrived completely.
#[derive(Debug)]
struct Complete {
    msg: u32,
    uid: Option<String>,
    name: String,
    file: File,
    octets: u64,
}

/// Opens the Maildir and the state (locked), resolving what an interrupted run left.
pub(crate) struct Prepared {
    maildir: Maildir,
    state: State,
    recovered: usize,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("maildir", &self.maildir)
            .field("state", &self.state.path())
            .finish_non_exhaustive()
    }
}

/// The local half of `fetch`, done before connecting: Maildir, lock, state, recovery.
pub(crate) fn prepare(job: &FetchJob) -> Result<Prepared, CliError> {
    let maildir =
        Maildir::open(&job.maildir).map_err(|e| CliError::local(job.maildir.display(), &e))?;
    let mut state = State::open(&job.state)?;
    let recovered = recover(&maildir, &mut state)?;
    Ok(Prepared {
        maildir,
        state,
        recovered,
    })
}

/// Resolves the names reserved by an interrupted run: delivered ones are recorded, the
/// others' partial files in `tmp/` are removed. Writes the state if anything changed.
fn recover(maildir: &Maildir, state: &mut State) -> Result<usize, CliError> {
    let pending = state.take_pending();
    if pending.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
    let delivered = maildir
        .delivered(&names)
        .map_err(|e| CliError::local(maildir.root().display(), &e))?;
    let mut recovered = 0;
    for (name, uid) in &pending {
        if delivered.contains(name) {
            state.add_stored(uid);
            recovered += 1;
        } else {
            maildir
                .remove_tmp(name)
                .map_err(|e| CliError::local(format!("tmp/{name}"), &e))?;
        }
    }
    state
        .save()
        .map_err(|e| CliError::local(state.path().display(), &e))?;
    tracing::info!(target: "pop3", "recovered {recovered} of {} messages of an interrupted run", pending.len());
    Ok(recovered)
}

/// Splits the work into batches of at most `count` messages and `bytes` bytes (a larger
/// message is a batch of its own).
fn plan(items: Vec<Item>, count: usize, bytes: u64) -> Vec<Vec<Item>> {
    let mut batches = Vec::new();
    let mut batch: Vec<Item> = Vec::new();
    let mut batch_size = 0u64;
    for item in items {
        if !batch.is_empty()
            && (batch.len() >= count || batch_size.saturating_add(item.size) > bytes)
        {
            batches.push(std::mem::take(&mut batch));
            batch_size = 0;
        }
        batch_size = batch_size.saturating_add(item.size);
        batch.push(item);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

fn progress_bar(enabled: bool, messages: usize, bytes: u64) -> ProgressBar {
    if !enabled || !io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(format!("0/{messages} messages"));
    bar
}

/// The network half of `fetch`, on a logged-in connection. QUITs at the end (or when an error
/// leaves the connection usable, to commit the deletions of what was stored).
pub(crate) fn fetch(
    mut connection: Connection,
    prepared: Prepared,
    job: &FetchJob,
) -> Result<FetchSummary, CliError> {
    let start = Instant::now();
    let Prepared {
        mut maildir,
        mut state,
        recovered,
    } = prepared;
    let mut summary = FetchSummary {
        recovered,
        ..FetchSummary::default()
    };
    let result = run(&mut connection, &mut maildir, &mut state, job, &mut summary);
    let result = match result {
        Ok(()) => connection.quit().map(|_| ()).map_err(|e| {
            let e = CliError::from(e);
            if summary.deleted > 0 {
                e.context("QUIT (the deletions were not committed; the next run deletes them)")
            } else {
                e.context("QUIT")
            }
        }),
        Err(error) => {
            // Commit the deletions of what was stored, if the session can still say QUIT.
            if !connection.is_poisoned() {
                let _ = connection.quit();
            }
            Err(if summary.stored > 0 {
                error.context(format!(
                    "stored {} messages ({} deleted), then",
                    summary.stored, summary.deleted
                ))
            } else {
                error
            })
        }
    };
    summary.elapsed = start.elapsed();
    result.map(|()| summary)
}

fn run(
    connection: &mut Connection,
    maildir: &mut Maildir,
    state: &mut State,
    job: &FetchJob,
    summary: &mut FetchSummary,
) -> Result<(), CliError> {
    let sizes: HashMap<u32, u64> = connection
        .list()?
        .into_iter()
        .map(|l| (l.msg, l.size))
        .collect();
    let uidl = match connection.uidl() {
        Ok(listing) => Some(listing),
        Err(pop3_blocking::Error::Server(e)) => {
            tracing::info!(target: "pop3", "no UIDL: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    summary.uidl = uidl.is_some();
    let mut items = Vec::new();
    let mut already = Vec::new();
    let mut forgotten = 0;
    match &uidl {
        Some(listing) => {
            summary.listed = listing.len();
            let mut seen: HashSet<&str> = HashSet::new();
            for entry in listing {
                if !seen.insert(entry.uid.as_str()) {
                    summary.duplicates += 1;
                } else if state.is_stored(&entry.uid) {
                    already.push(entry.msg);
                } else {
                    items.push(Item {
                        msg: entry.msg,
                        uid: Some(entry.uid.clone()),
                        size: sizes.get(&entry.msg).copied().unwrap_or(0),
                    });
                }
            }
            forgotten = state.retain_stored(&seen);
            tracing::debug!(target: "pop3", "forgot {forgotten} UIDs the server no longer lists");
        }
        None if job.delete => {
            summary.listed = sizes.len();
            let mut listed: Vec<(u32, u64)> = sizes.iter().map(|(&m, &s)| (m, s)).collect();
            listed.sort_unstable();
            items = listed
                .into_iter()
                .map(|(msg, size)| Item {
                    msg,
                    uid: None,
                    size,
                })
                .collect();
        }
        None => {
            return Err(CliError::usage(
                "the server does not support UIDL, so fetch cannot tell new messages from those already stored; \
                 use --delete to fetch every message and delete it from the server",
            ));
        }
    }
    summary.skipped = already.len();

    if job.delete && !already.is_empty() {
        dele(connection, &already, summary)?;
    }

    let total_bytes: u64 = items.iter().map(|i| i.size).sum();
    let total_messages = items.len();
    let bar = progress_bar(job.progress, total_messages, total_bytes);
    let batches = plan(items, job.batch, job.batch_bytes);
    // Every name is reserved now; the state carries those of the next two batches (the one
    // being committed and the one being downloaded), so that any file in new/ is either
    // recorded as stored or reserved.
    let names: Vec<Vec<String>> = batches
        .iter()
        .map(|b| b.iter().map(|_| maildir.unique_name()).collect())
        .collect();
    let pending_from = |first: usize| -> Vec<(String, String)> {
        (first..first + 2)
            .filter_map(|k| batches.get(k).zip(names.get(k)))
            .flat_map(|(batch, names)| {
                batch
                    .iter()
                    .zip(names)
                    .filter_map(|(item, name)| item.uid.clone().map(|uid| (name.clone(), uid)))
            })
            .collect()
    };
    let use_state = uidl.is_some();
    // (Nothing to fetch and nothing forgotten: the state on disk is already right.)
    if use_state && (!batches.is_empty() || forgotten > 0) {
        state.set_pending(pending_from(0));
        state
            .save()
            .map_err(|e| CliError::local(state.path().display(), &e))?;
    }
    let maildir: &Maildir = maildir;

    // The durability work of batch k (fsync, rename, directory sync, state write) runs on a
    // committer thread while batch k+1 downloads; batch k is deleted (if asked) once its
    // commit is acknowledged, before batch k+2 starts.
    std::thread::scope(|scope| {
        let (to_committer, jobs) = mpsc::channel::<(Vec<Complete>, Vec<(String, String)>)>();
        let (acks, acked) = mpsc::channel::<Result<Committed, CliError>>();
        scope.spawn(move || {
            for (complete, next_pending) in jobs {
                let result = commit(maildir, state, use_state, complete, next_pending);
                let failed = result.is_err();
                if acks.send(result).is_err() || failed {
                    break;
                }
            }
        });
        let mut in_flight = false;
        let wait_commit =
            |connection: &mut Connection, summary: &mut FetchSummary| -> Result<(), CliError> {
                let committed = acked
                    .recv()
                    .map_err(|_| CliError::failure("the committer thread stopped"))??;
                summary.stored += committed.msgs.len();
                summary.bytes += committed.octets;
                summary.batches += 1;
                bar.set_message(format!("{}/{total_messages} messages", summary.stored));
                if job.delete && !committed.msgs.is_empty() {
                    dele(connection, &committed.msgs, summary)?;
                }
                Ok(())
            };
        for (index, batch) in batches.iter().enumerate() {
            let outcome = download(connection, maildir, batch, &names[index], &bar, summary);
            if in_flight {
                if let Err(error) = wait_commit(connection, summary) {
                    remove_tmp_files(maildir, &outcome.complete);
                    return Err(outcome.error.unwrap_or(error));
                }
            }
            let next_pending = if outcome.error.is_none() {
                pending_from(index + 1)
            } else {
                Vec::new()
            };
            if to_committer.send((outcome.complete, next_pending)).is_err() {
                return Err(CliError::failure("the committer thread stopped"));
            }
            in_flight = true;
            if let Some(error) = outcome.error {
                // Commit (and delete, if asked) what arrived complete, then give up.
                let committed = wait_commit(connection, summary);
                bar.abandon();
                return Err(match committed {
                    Err(CliError::Failure(local)) if !matches!(error, CliError::Failure(_)) => {
                        CliError::Failure(local)
                    }
                    _ => error,
                });
            }
        }
        if in_flight {
            wait_commit(connection, summary)?;
        }
        drop(to_committer);
        bar.finish_and_clear();
        Ok(())
    })
}

/// Removes the `tmp/` files of messages that will not be committed.
fn remove_tmp_files(maildir: &Maildir, complete: &[Complete]) {
    for c in complete {
        let _ = maildir.remove_tmp(&c.name);
    }
}

/// Marks `msgs` deleted (pipelined); refusals are noted, not fatal.
fn dele(
    connection: &mut Connection,
    msgs: &[u32],
    summary: &mut FetchSummary,
) -> Result<(), CliError> {
    let results = connection.dele_many(msgs)?;
    for (msg, result) in msgs.iter().zip(results) {
        match result {
            Ok(()) => summary.deleted += 1,
            Err(e) => summary.refused.push(format!("message {msg}: {e}")),
        }
    }
    Ok(())
}

/// What one batch's download produced.
struct Outcome {
    complete: Vec<Complete>,
    error: Option<CliError>,
}

/// RETRs a batch into `tmp/`. Complete messages are returned even when the batch fails
/// half-way, so that they can be committed; the partial file is removed.
fn download(
    connection: &mut Connection,
    maildir: &Maildir,
    batch: &[Item],
    names: &[String],
    bar: &ProgressBar,
    summary: &mut FetchSummary,
) -> Outcome {
    let by_msg: HashMap<u32, (&Item, &String)> = batch
        .iter()
        .zip(names)
        .map(|(i, n)| (i.msg, (i, n)))
        .collect();
    let msgs: Vec<u32> = batch.iter().map(|i| i.msg).collect();
    let mut current: Option<(u32, LfWriter<BufWriter<File>>)> = None;
    let mut complete = Vec::new();
    let mut local: Option<CliError> = None;
    let mut refused = Vec::new();
    let result = connection.retr_many(&msgs, |msg, event| {
        let step = (|| -> Result<(), CliError> {
            let Some(&(item, name)) = by_msg.get(&msg) else {
                return Ok(());
            };
            let open = |current: &mut Option<(u32, LfWriter<BufWriter<File>>)>| {
                if current.as_ref().is_none_or(|(m, _)| *m != msg) {
                    let file = maildir
                        .create_tmp(name)
                        .map_err(|e| CliError::local(format!("tmp/{name}"), &e))?;
                    *current = Some((
                        msg,
                        LfWriter::new(BufWriter::with_capacity(64 * 1024, file)),
                    ));
                }
                Ok::<_, CliError>(())
            };
            match event {
                RetrEvent::Chunk(chunk) => {
                    open(&mut current)?;
                    if let Some((_, writer)) = current.as_mut() {
                        writer
                            .write_chunk(chunk)
                            .map_err(|e| CliError::local(format!("tmp/{name}"), &e))?;
                    }
                    bar.inc(chunk.len() as u64);
                }
                RetrEvent::End { octets } => {
                    open(&mut current)?;
                    if let Some((_, writer)) = current.take() {
                        let (buffered, _) = writer
                            .finish()
                            .map_err(|e| CliError::local(format!("tmp/{name}"), &e))?;
                        let file = buffered
                            .into_inner()
                            .map_err(|e| CliError::local(format!("tmp/{name}"), e.error()))?;
                        complete.push(Complete {
                            msg,
                            uid: item.uid.clone(),
                            name: name.clone(),
                            file,
                            octets,
                        });
                    }
                }
                RetrEvent::Refused(e) => {
                    current = None;
                    let _ = maildir.remove_tmp(name);
                    refused.push(format!("message {msg}: {e}"));
                }
                _ => {}
            }
            Ok(())
        })();
        step.map_err(|error| {
            let message = error.to_string();
            local.get_or_insert(error);
            io::Error::other(message)
        })
    });
    // A message cut off half-way leaves a partial file: remove it.
    if let Some((msg, _)) = current.take() {
        if let Some((_, name)) = by_msg.get(&msg) {
            let _ = maildir.remove_tmp(name);
        }
    }
    summary.refused.extend(refused);
    let error = match result {
        Ok(()) => None,
        Err(e) => Some(local.take().unwrap_or_else(|| CliError::from(e))),
    };
    Outcome { complete, error }
}

/// What the committer made durable.
#[derive(Debug)]
struct Committed {
    msgs: Vec<u32>,
    octets: u64,
}

/// How many threads sync the files of a batch at once: concurrent fsyncs share journal
/// commits (ext4, XFS), so a batch costs a few disk flushes instead of one per file.
const SYNC_THREADS: usize = 16;

/// Makes a batch durable: fsync each file (concurrently), rename each into `new/`, fsync
/// `new/` once, then one state write (the batch's UIDs stored, the names of the next two
/// batches reserved). On failure the batch's unrenamed files are removed from `tmp/` (none of
/// them is recorded, so the next run fetches them again).
fn commit(
    maildir: &Maildir,
    state: &mut State,
    use_state: bool,
    complete: Vec<Complete>,
    next_pending: Vec<(String, String)>,
) -> Result<Committed, CliError> {
    let root = maildir.root().display().to_string();
    if let Err((name, e)) = sync_all_files(&complete) {
        remove_tmp_files(maildir, &complete);
        return Err(CliError::local(format!("{root}/tmp/{name}"), &e));
    }
    let mut msgs = Vec::with_capacity(complete.len());
    let mut octets = 0;
    for (index, c) in complete.iter().enumerate() {
        if let Err(e) = maildir.deliver(&c.name) {
            remove_tmp_files(maildir, &complete[index..]);
            // What is in new/ already is reserved in the state: the next run records it.
            return Err(CliError::local(format!("{root}/new/{}", c.name), &e));
        }
        if let Some(uid) = &c.uid {
            state.add_stored(uid);
        }
        tracing::debug!(target: "pop3", "stored message {} ({} octets) as new/{}", c.msg, c.octets, c.name);
        msgs.push(c.msg);
        octets += c.octets;
    }
    drop(complete);
    maildir
        .sync_new()
        .map_err(|e| CliError::local(format!("{root}/new"), &e))?;
    if use_state {
        state.set_pending(next_pending);
        state
            .save()
            .map_err(|e| CliError::local(state.path().display(), &e))?;
    }
    Ok(Committed { msgs, octets })
}

/// fdatasync every file, on up to [`SYNC_THREADS`] threads.
fn sync_all_files(complete: &[Complete]) -> Result<(), (String, io::Error)> {
    if complete.len() <= 1 {
        return complete
            .iter()
            .try_for_each(|c| c.file.sync_data().map_err(|e| (c.name.clone(), e)));
    }
    let per_thread = complete.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = complete
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .try_for_each(|c| c.file.sync_data().map_err(|e| (c.name.clone(), e)))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err((String::new(), io::Error::other("a sync thread panicked")))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(msg: u32, size: u64) -> Item {
        Item {
            msg,
            uid: None,
            size,
        }
    }

    #[test]
    fn batches_by_count_and_bytes() {
        let items: Vec<Item> = (1..=10).map(|m| item(m, 100)).collect();
        let sizes: Vec<usize> = plan(items, 4, 10_000).iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let items: Vec<Item> = (1..=5).map(|m| item(m, 100)).collect();
        let sizes: Vec<usize> = plan(items, 64, 250).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let items = vec![item(1, 10), item(2, 1000), item(3, 10)];
        let sizes: Vec<usize> = plan(items, 64, 100).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(plan(Vec::new(), 4, 100).is_empty());
    }
}
