//! `fetch`: every message whose UID is not yet recorded goes into the delivery target (a
//! Maildir, an mbox, an MDA or an LMTP server: see [`crate::deliver`] for how each is driven
//! and what each guarantees), durably, in pipelined batches.
//!
//! For the Maildir, per batch: RETR the batch (pipelined when the server allows) into `tmp/`, fsync each file,
//! rename each into `new/`, fsync `new/` once, write the state once (the batch's UIDs as
//! stored, the names reserved for the next batch), then DELE the batch if `--delete`. QUIT
//! comes only at the end (when nothing is deleted after the RETRs and the server pipelines,
//! right behind the last of them, so that its answer comes with the last message). Killing the process at any point loses nothing (a message is
//! recorded only once it is durable in `new/`, and deleted only once recorded) and stores
//! nothing twice (a message renamed into `new/` but not yet recorded is found again by its
//! reserved name; see [`crate::state`]).
//!
//! Deleted UIDs leave the state once the QUIT that commits their DELEs is answered `+OK`: a
//! server may give such a UID to a new message, which is then fetched as new. Until then the
//! UID is marked "deleting" in the state (written before the DELE is sent); a message listed
//! under a marked UID by a later run is downloaded again and stored unless the Maildir holds
//! a message with exactly its content. So no message is ever skipped or deleted on the
//! strength of a UID that may have been reused.
//!
//! The server's `EXPIRE` (RFC 2449 §6.7) is honoured. Under `EXPIRE 0` the server deletes
//! every message retrieved in a session when that session's QUIT commits, as if it had been
//! sent DELE: so a UID is recorded stored and marked deleting in the same state write (the
//! first write that relies on its RETR), and once QUIT is answered `+OK` it leaves the
//! state, exactly as after our own DELE. A message retrieved but not taken by the target (an
//! MDA's failure, an LMTP refusal, a local error half-way) would be lost by that QUIT: the
//! session is then dropped without QUIT (RFC 1939 §6: no UPDATE state, nothing deleted), and
//! the deletions of the run stay uncommitted (their UIDs keep the mark; the next run compares
//! those messages by content). A message recovered from an interrupted run (delivered but
//! not recorded) was retrieved in a session that may have expired it: it is marked deleting
//! too. `keep` and leaving mail on the server cannot be honoured there: one notice per run.
//! Under `EXPIRE n` (n ≥ 1) a stored UID is trusted only for a while (see [`crate::rules`]).
//!
//! LIST and UIDL go out together (with the CAPA after login, when the server pipelines).
//! The listings are checked before anything is fetched: a message number repeated in LIST or
//! UIDL, a UID repeated in UIDL, or a message in one listing but not the other is a protocol
//! violation (exit 3), and nothing is fetched or deleted.
//!
//! The engine runs on `pop3-async`: `fetch` drives it on a current-thread runtime, `poll`
//! runs one per account on a shared runtime. The blocking durability work (fsync, rename,
//! state write) of a batch runs on Tokio's blocking pool while the next batch downloads.
//! When the server pipelines, the batches never wait for each other on the wire: the RETRs
//! of the batches ahead (two batches' `--batch-bytes`, at least one batch) go out before a
//! batch's replies are read, and a stored batch's DELEs go out behind them (see `Wire`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pop3_async::pop3_proto::capa::ExpirePolicy;
use pop3_async::{
    Connection, Pipeline, PipelineEvent, Reply, RetrEvent, ScanListing, ServerError,
    UniqueIdListing,
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::deliver::{self, Digests, Ledger, Staged, Target, TargetSpec};
use crate::error::CliError;
use crate::filter::{About, Filter, HeaderSink};
use crate::maildir::{LfWriter, Maildir};
use crate::rules::{Action, Decider, Delete, Known, Leave, Listed, Rules, Step, Verdict};
use crate::state::{Kind, State};

/// The runtime `fetch` runs on: one thread (the session), plus the blocking pool for the
/// commits.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::local("starting the Tokio runtime", &e))
}

/// What `fetch` was asked to do.
#[derive(Debug)]
pub(crate) struct FetchJob {
    /// Where the messages go (exactly one target).
    pub(crate) target: TargetSpec,
    /// How long one delivery step may take (an MDA's run, an mbox lock, an LMTP reply).
    pub(crate) deliver_timeout: Duration,
    pub(crate) delete: bool,
    /// The state file (always opened: a server without UIDL only becomes known later).
    pub(crate) state: PathBuf,
    /// The default state file of an earlier version, renamed to `state` if that is missing.
    pub(crate) legacy_state: Option<PathBuf>,
    pub(crate) batch: usize,
    pub(crate) batch_bytes: u64,
    pub(crate) progress: bool,
    /// The retention and size rules and the header filter.
    pub(crate) retention: Retention,
    /// Set (by `poll` on SIGTERM): start no further batch; the batch in flight is committed,
    /// then QUIT as usual.
    pub(crate) stop: Option<Arc<AtomicBool>>,
}

/// The retention and size rules of a fetch (see [`crate::rules`]) and its header filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retention {
    /// The rules (`delete` is taken from [`FetchJob::delete`]).
    pub(crate) rules: Rules,
    /// The header filter command.
    pub(crate) filter: Option<Filter>,
    /// The server's host name and the user, for the filter's environment.
    pub(crate) host: String,
    pub(crate) user: String,
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
    /// Messages listed under a UID whose deletion was not known to be committed, downloaded
    /// again and found identical to a stored message (so not stored twice).
    pub(crate) verified: usize,
    /// Messages marked deleted (committed by the final QUIT).
    pub(crate) deleted: usize,
    /// Messages of an interrupted run found delivered and recorded now.
    pub(crate) recovered: usize,
    /// Durable batches written.
    pub(crate) batches: usize,
    /// The server's refusals (RETR or DELE `-ERR`), one line each.
    pub(crate) refused: Vec<String>,
    /// Messages the target did not take (an MDA's failure, an LMTP 4xx or 5xx), one line
    /// each: they stay on the server, unrecorded.
    pub(crate) undelivered: Vec<String>,
    /// From login to QUIT.
    pub(crate) elapsed: Duration,
    /// Whether the server has UIDL.
    pub(crate) uidl: bool,
    /// Messages left on the server by a rule (size, session cap, filter).
    pub(crate) left: usize,
    /// Messages marked seen without being downloaded (`only-new` on first use).
    pub(crate) marked_seen: usize,
    /// Stored messages deleted because `keep` expired (counted in `deleted` too).
    pub(crate) expired: usize,
    /// Messages deleted without being fetched by an explicit rule (`delete-larger-than`,
    /// the filter's exit 1; counted in `deleted` too).
    pub(crate) deleted_unread: usize,
    /// What the rules did that must be seen (deletions without fetching, filter failures),
    /// one line each.
    pub(crate) notices: Vec<String>,
    /// The server's LOGIN-DELAY (seconds) and EXPIRE, as announced after login.
    pub(crate) login_delay: Option<u32>,
    /// See `login_delay`.
    pub(crate) expire: Option<ExpirePolicy>,
    /// Stopped by [`FetchJob::stop`] before every batch was fetched.
    pub(crate) interrupted: bool,
    /// Messages retrieved under `EXPIRE 0` without our DELE, which the server deletes when
    /// the session's QUIT commits (their UIDs leave the state then, as after a DELE).
    pub(crate) server_expired: usize,
    /// The notices about the server's `EXPIRE` (also in `notices`): `poll` logs them once per
    /// account, not at every poll.
    pub(crate) expire_notices: Vec<String>,
    /// Under `EXPIRE 0`, the session was ended without QUIT (see the module's docs).
    pub(crate) quit_withheld: bool,
    /// The UIDs of the messages marked deleted (`+OK` to DELE) in this session.
    deleted_uids: Vec<String>,
    /// The UIDs whose DELE the server refused (the messages stay).
    refused_uids: Vec<String>,
}

impl FetchSummary {
    /// The summary as JSON.
    pub(crate) fn to_json(
        &self,
        target: &TargetSpec,
        state: &Path,
        method: &str,
    ) -> serde_json::Value {
        let mut value = json!({
            "listed": self.listed,
            "stored": self.stored,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "verified": self.verified,
            "deleted": self.deleted,
            "recovered": self.recovered,
            "batches": self.batches,
            "refused": self.refused,
            "undelivered": self.undelivered,
            "seconds": self.elapsed.as_secs_f64(),
            "uidl": self.uidl,
            "left": self.left,
            "marked_seen": self.marked_seen,
            "expired": self.expired,
            "server_expired": self.server_expired,
            "deleted_unread": self.deleted_unread,
            "notices": self.notices,
            "login": method,
            "target": target.describe(),
            "state": state.display().to_string(),
        });
        let key = match target {
            TargetSpec::Maildir(path) => Some(("maildir", path)),
            TargetSpec::Mbox(path) => Some(("mbox", path)),
            TargetSpec::Mda(_) | TargetSpec::Lmtp(..) => None,
        };
        if let (Some((key, path)), Some(object)) = (key, value.as_object_mut()) {
            object.insert(key.to_owned(), json!(path.display().to_string()));
        }
        value
    }

    /// The summary as one line of text.
    pub(crate) fn line(&self, target: &TargetSpec) -> String {
        let mut text = format!(
            "stored {} of {} messages ({} bytes) in {}",
            self.stored,
            self.listed,
            self.bytes,
            target.describe()
        );
        if self.skipped > 0 {
            text.push_str(&format!(", {} already stored", self.skipped));
        }
        if self.verified > 0 {
            text.push_str(&format!(
                ", {} found already stored by content",
                self.verified
            ));
        }
        if self.recovered > 0 {
            text.push_str(&format!(
                ", {} recovered from an interrupted run",
                self.recovered
            ));
        }
        if self.marked_seen > 0 {
            text.push_str(&format!(
                ", {} marked seen without fetching (only-new)",
                self.marked_seen
            ));
        }
        if self.left > 0 {
            text.push_str(&format!(", {} left on the server by a rule", self.left));
        }
        if self.deleted > 0 {
            text.push_str(&format!(", {} deleted on the server", self.deleted));
            if self.expired > 0 || self.deleted_unread > 0 {
                text.push_str(&format!(
                    " ({} kept long enough, {} unread by a delete rule)",
                    self.expired, self.deleted_unread
                ));
            }
        }
        if self.server_expired > 0 {
            text.push_str(&format!(
                ", {} deleted by the server's EXPIRE 0",
                self.server_expired
            ));
        }
        if !self.undelivered.is_empty() {
            text.push_str(&format!(
                ", {} not delivered (left on the server)",
                self.undelivered.len()
            ));
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
    /// Listed under a UID marked deleting: store it only if the Maildir has no identical
    /// message.
    verify: bool,
}

/// The target and the state (locked), with what an interrupted run left resolved.
pub(crate) struct Prepared {
    target: Box<dyn Target>,
    state: State,
    /// For the targets that cannot be searched for a message (all but the Maildir).
    digests: Option<Digests>,
    recovered: usize,
    /// The UIDs the recovery recorded as stored.
    recovered_uids: Vec<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("target", &self.target)
            .field("state", &self.state.path())
            .finish_non_exhaustive()
    }
}

/// The local half of `fetch`, done before connecting: the target, the state's lock, the
/// recovery of an interrupted run.
pub(crate) fn prepare(job: &FetchJob) -> Result<Prepared, CliError> {
    let mut target = job.target.open(&job.state, job.deliver_timeout)?;
    let mut state = State::open_migrating(&job.state, job.legacy_state.as_deref())?;
    if !target.reserves_names() {
        // Names reserved for a Maildir by an earlier run with another target mean nothing
        // here: those messages are fetched again.
        let dropped = state.take_pending();
        if !dropped.is_empty() {
            tracing::warn!(target: "pop3_cli", "dropped {} Maildir reservations of an earlier run (the target changed)", dropped.len());
        }
    }
    let stored_before = state.stored_uids();
    let recovered = target.recover(&mut state)?;
    let recovered_uids = state
        .stored_uids()
        .into_iter()
        .filter(|uid| !stored_before.contains(uid))
        .collect();
    let digests = if target.reserves_names() {
        None
    } else {
        Some(
            Digests::open(&job.state, |uid| state.is_stored(uid))
                .map_err(|e| CliError::local(format!("{}.digests", job.state.display()), &e))?,
        )
    };
    Ok(Prepared {
        target,
        state,
        digests,
        recovered,
        recovered_uids,
    })
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
/// leaves the connection usable, to commit the deletions of what was stored); once QUIT is
/// answered `+OK`, the deleted UIDs leave the state.
pub(crate) async fn fetch(
    mut connection: Connection,
    prepared: Prepared,
    job: &FetchJob,
) -> Result<FetchSummary, CliError> {
    let start = Instant::now();
    let Prepared {
        target,
        state,
        digests,
        recovered,
        recovered_uids,
    } = prepared;
    let mut summary = FetchSummary {
        recovered,
        ..FetchSummary::default()
    };
    let local = Arc::new(Mutex::new(Local { state, digests }));
    // The answer to a QUIT that went out behind the last RETRs (see `Wire`), if one did.
    let mut quit_answer = None;
    let result = run(
        &mut connection,
        target,
        &local,
        job,
        &recovered_uids,
        &mut summary,
        &mut quit_answer,
    )
    .await;
    let expire_zero = summary.expire == Some(ExpirePolicy::Days(0));
    let result = match result {
        // Under EXPIRE 0, QUIT would delete what was retrieved and not delivered: drop the
        // session instead (nothing is deleted; our DELEs stay uncommitted, their UIDs marked).
        Ok(()) if expire_zero && !summary.undelivered.is_empty() => {
            summary.quit_withheld = true;
            let notice = format!(
                "the session ended without QUIT: under EXPIRE 0 it would make the server \
                 delete the {} retrieved messages the target did not take",
                summary.undelivered.len()
            );
            tracing::warn!(target: "pop3_cli", "{notice}");
            summary.notices.push(notice);
            drop(connection);
            Ok(())
        }
        Err(error) if expire_zero => {
            // (What was retrieved in this session may not all be stored: no QUIT.)
            summary.quit_withheld = true;
            drop(connection);
            Err(error)
        }
        Ok(()) => {
            crate::test_hook::pause("quit");
            let answer = match quit_answer {
                Some(answer) => answer.map_err(pop3_async::Error::Server),
                None => connection.quit().await,
            };
            match answer {
                Ok(_) => settle(&mut lock(&local)?.state, &mut summary),
                Err(e) => {
                    let e = CliError::from(e);
                    Err(if summary.deleted + summary.server_expired > 0 {
                        e.context(
                            "QUIT (the deletions were not committed; the next run compares \
                             those messages with the Maildir and deletes them)",
                        )
                    } else {
                        e.context("QUIT")
                    })
                }
            }
        }
        Err(error) => {
            // Commit the deletions of what was stored, if the session can still say QUIT (or
            // said it already, behind the last RETRs).
            let committed = match quit_answer {
                Some(answer) => answer.is_ok(),
                None => !connection.is_poisoned() && connection.quit().await.is_ok(),
            };
            if committed {
                if let Ok(mut local) = lock(&local) {
                    let _ = settle(&mut local.state, &mut summary);
                }
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

/// The state, shared by the session and the committer (the blocking pool): the session
/// touches it only while no batch is being committed.
#[derive(Debug)]
struct Local {
    state: State,
    digests: Option<Digests>,
}

/// The state, or a failure if a commit panicked while holding them.
fn lock(local: &Mutex<Local>) -> Result<MutexGuard<'_, Local>, CliError> {
    local
        .lock()
        .map_err(|_| CliError::failure("a commit of this fetch panicked"))
}

/// After QUIT was answered `+OK`: the deleted UIDs leave the state (a message listed under one
/// of them later is new), and the refused ones lose their deletion mark (those messages stay).
fn settle(state: &mut State, summary: &mut FetchSummary) -> Result<(), CliError> {
    if summary.deleted_uids.is_empty() && summary.refused_uids.is_empty() {
        return Ok(());
    }
    state.forget(&summary.deleted_uids);
    for uid in &summary.refused_uids {
        state.clear_deleting(uid);
    }
    state.save().map_err(|e| {
        CliError::local(state.path().display(), &e).context(
            "the deletions were committed, but the state could not be updated (the next run \
             compares any message listed under their UIDs with the Maildir)",
        )
    })
}

/// At most this many offending messages or UIDs are named in one error.
const NAMED: usize = 10;

/// `items` joined with ", ", at most [`NAMED`] of them.
fn name_some<T: std::fmt::Display>(items: &[T]) -> String {
    let mut text: Vec<String> = items.iter().take(NAMED).map(ToString::to_string).collect();
    if items.len() > NAMED {
        text.push(format!("and {} more", items.len() - NAMED));
    }
    text.join(", ")
}

/// Checks LIST and UIDL against each other before anything is fetched or deleted: no
/// message number twice in either, no UID twice, the same messages in both. The library
/// refuses repeats itself; this is the CLI's own guard, and the cross-check needs both.
fn check_listings(list: &[ScanListing], uidl: Option<&[UniqueIdListing]>) -> Result<(), CliError> {
    let mut problems = Vec::new();
    let mut listed: BTreeMap<u32, usize> = BTreeMap::new();
    for l in list {
        *listed.entry(l.msg).or_default() += 1;
    }
    let repeated: Vec<u32> = listed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(m, _)| *m)
        .collect();
    if !repeated.is_empty() {
        problems.push(format!("LIST repeats message {}", name_some(&repeated)));
    }
    if let Some(uidl) = uidl {
        let mut numbers: BTreeMap<u32, usize> = BTreeMap::new();
        let mut uids: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for u in uidl {
            *numbers.entry(u.msg).or_default() += 1;
            uids.entry(u.uid.as_str()).or_default().push(u.msg);
        }
        let repeated: Vec<u32> = numbers
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(m, _)| *m)
            .collect();
        if !repeated.is_empty() {
            problems.push(format!("UIDL repeats message {}", name_some(&repeated)));
        }
        let repeated: Vec<String> = uids
            .iter()
            .filter(|(_, msgs)| msgs.len() > 1)
            .map(|(uid, msgs)| format!("{uid:?} (messages {})", name_some(msgs)))
            .collect();
        if !repeated.is_empty() {
            problems.push(format!("UIDL repeats UID {}", name_some(&repeated)));
        }
        let no_uid: Vec<u32> = listed
            .keys()
            .filter(|m| !numbers.contains_key(m))
            .copied()
            .collect();
        if !no_uid.is_empty() {
            problems.push(format!(
                "UIDL leaves out message {} of LIST",
                name_some(&no_uid)
            ));
        }
        let unlisted: Vec<u32> = numbers
            .keys()
            .filter(|m| !listed.contains_key(m))
            .copied()
            .collect();
        if !unlisted.is_empty() {
            problems.push(format!(
                "UIDL lists message {} that LIST does not",
                name_some(&unlisted)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "protocol violation: {}; nothing was fetched or deleted",
            problems.join("; ")
        )))
    }
}

/// Notes the server's LOGIN-DELAY and EXPIRE (as announced after login: with `EXPIRE n
/// USER` the value before login may differ), with the notices where EXPIRE overrides the
/// rules.
fn note_policies(connection: &Connection, rules: &Rules, summary: &mut FetchSummary) {
    if let Some(capabilities) = connection.capabilities() {
        summary.login_delay = capabilities.login_delay.map(|d| d.seconds);
        summary.expire = capabilities.expire.map(|e| e.policy);
    }
    let notice = match summary.expire {
        Some(ExpirePolicy::Days(0)) if !rules.delete => Some(
            "the server deletes every message it hands out when the session ends (EXPIRE 0): \
             messages cannot be left on the server"
                .to_owned()
                + if rules.keep.is_some() {
                    ", so keep is not honoured"
                } else {
                    ""
                },
        ),
        Some(ExpirePolicy::Days(days)) if days > 0 => rules
            .keep
            .filter(|keep| *keep > u64::from(days) * 86_400)
            .map(|keep| {
                format!(
                    "the server deletes messages about {days} days after they were retrieved \
                     (EXPIRE {days}), sooner than keep ({} days)",
                    keep.div_ceil(86_400)
                )
            }),
        _ => None,
    };
    if let Some(notice) = notice {
        tracing::warn!(target: "pop3_cli", "{notice}");
        summary.expire_notices.push(notice.clone());
        summary.notices.push(notice);
    }
}

async fn run(
    connection: &mut Connection,
    mut target: Box<dyn Target>,
    local: &Arc<Mutex<Local>>,
    job: &FetchJob,
    recovered_uids: &[String],
    summary: &mut FetchSummary,
    quit_answer: &mut Option<Result<Reply, ServerError>>,
) -> Result<(), CliError> {
    let (list, uidl) = listings(connection, local).await?;
    // (The CAPA after login went out with LIST and UIDL: what it says applies to this user.)
    note_policies(
        connection,
        &Rules {
            delete: job.delete,
            ..job.retention.rules.clone()
        },
        summary,
    );
    let expire_zero = summary.expire == Some(ExpirePolicy::Days(0));
    if expire_zero && !recovered_uids.is_empty() {
        // Retrieved by an interrupted session that the server may have expired: a message
        // listed under one of these UIDs is compared by content, not trusted.
        let state = &mut lock(local)?.state;
        for uid in recovered_uids {
            state.mark_deleting(uid);
        }
    }
    check_listings(&list, uidl.as_deref())?;
    summary.uidl = uidl.is_some();
    let Sorted {
        items,
        delete_now,
        reasons,
        forgotten,
        ..
    } = sort_listed(connection, local, &list, uidl.as_deref(), job, summary).await?;
    let delete_any = !delete_now.is_empty();
    if items.iter().any(|i| i.verify) {
        target.prepare_verify()?;
    }

    // (Sizes come from the server: saturate rather than overflow.)
    let total_bytes: u64 = items.iter().fold(0, |sum, i| sum.saturating_add(i.size));
    let total_messages = items.len();
    let bar = progress_bar(job.progress, total_messages, total_bytes);
    let batches = plan(items, job.batch, job.batch_bytes);
    // Every name is reserved now; the state carries those of the next two batches (the one
    // being committed and the one being downloaded), so that any file in new/ is either
    // recorded as stored or reserved.
    let names: Vec<Vec<String>> = batches
        .iter()
        .map(|b| b.iter().map(|_| target.reserve_name()).collect())
        .collect();
    let reserves = target.reserves_names();
    let pending_from = |first: usize| -> Vec<(String, String)> {
        let last = if reserves { first + 2 } else { first };
        (first..last)
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
    if use_state
        && (!batches.is_empty() || forgotten > 0 || delete_any || {
            let local = lock(local)?;
            local.state.is_dirty() || !local.state.existed()
        })
    {
        let state = &mut lock(local)?.state;
        state.set_pending(pending_from(0));
        state
            .save()
            .map_err(|e| CliError::local(state.path().display(), &e))?;
    }
    // The deletion marks are durable: now the DELEs (of the stored messages, and the unread
    // ones an explicit rule deletes, whose UIDs the state has forgotten).
    if delete_any {
        let done = dele(connection, &delete_now, summary).await?;
        for (reason, done) in reasons.iter().zip(done) {
            match reason {
                Delete::Expired(_) if done => summary.expired += 1,
                reason if done && reason.unread() => summary.deleted_unread += 1,
                _ => {}
            }
        }
    }
    let target: Arc<dyn Target> = Arc::from(target);
    // Under EXPIRE 0 each stored UID is marked deleting in the write that records it.
    let delete = job.delete || expire_zero;

    // The durability work of batch k (fsync, rename, directory sync, state write) runs on the
    // blocking pool while batch k+1 downloads; batch k's DELEs (if asked) are queued once its
    // commit is done. When the server pipelines, the RETRs of the batches after k are on the
    // wire before batch k's replies are read (see `Wire`), so that neither a commit nor the
    // DELEs cost a round trip.
    // No batch is requested ahead under EXPIRE 0: a RETR the run then did not read (a stop,
    // a failure) would be a retrieval the server deletes at QUIT, unstored.
    // With nothing to delete after the RETRs (no `--delete`, not EXPIRE 0), QUIT goes out
    // behind the last of them: it commits nothing a failure could make wrong (the DELEs of
    // rules went out and were answered before the first RETR), and its answer arrives with
    // the last message instead of a round trip after the last commit.
    let ahead = connection.client().pipelines() && !expire_zero;
    let mut wire = Wire::new(ahead, lookahead(job.batch_bytes), ahead && !delete);
    let mut in_flight: Option<JoinHandle<Result<Committed, CliError>>> = None;
    let mut failed: Option<CliError> = None;
    for (index, batch) in batches.iter().enumerate() {
        if job
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
        {
            // (What was requested ahead is read and discarded below.)
            summary.interrupted = true;
            break;
        }
        if let Err(error) = wire.request(&batches, index) {
            failed = Some(error);
            break;
        }
        let outcome = download(
            connection,
            &mut wire,
            &*target,
            batch,
            &names[index],
            &bar,
            summary,
        )
        .await;
        if let Some(commit) = in_flight.take() {
            let committed = wait_commit(commit, &mut wire, job, summary).await;
            bar.set_message(format!("{}/{total_messages} messages", summary.stored));
            if let Err(error) = committed {
                discard_all(&*target, &outcome.complete);
                failed = Some(outcome.error.unwrap_or(error));
                break;
            }
        }
        let next_pending = if outcome.error.is_none() {
            pending_from(index + 1)
        } else {
            Vec::new()
        };
        // The listed sizes of the messages to compare: one found new starts its record again.
        let compared: HashMap<String, u64> = batch
            .iter()
            .filter(|i| i.verify)
            .filter_map(|i| i.uid.clone().map(|uid| (uid, i.size)))
            .collect();
        let commit = {
            let (target, local) = (Arc::clone(&target), Arc::clone(local));
            let complete = outcome.complete;
            tokio::task::spawn_blocking(move || {
                let mut local = lock(&local)?;
                let Local { state, digests } = &mut *local;
                commit(
                    &*target,
                    state,
                    digests.as_mut(),
                    Recording { use_state, delete },
                    complete,
                    next_pending,
                    &compared,
                )
            })
        };
        if let Some(error) = outcome.error {
            // Commit (and delete, if asked) what arrived complete, then give up.
            let committed = wait_commit(commit, &mut wire, job, summary).await;
            bar.abandon();
            failed = Some(match committed {
                Err(CliError::Failure(local)) if !matches!(error, CliError::Failure(_)) => {
                    CliError::Failure(local)
                }
                _ => error,
            });
            break;
        }
        in_flight = Some(commit);
    }
    if let Some(commit) = in_flight {
        if let Err(error) = wait_commit(commit, &mut wire, job, summary).await {
            failed.get_or_insert(error);
        }
    }
    // The replies still due: the last DELEs (counted), and after a failure or a stop the
    // RETRs requested ahead (discarded).
    if !connection.is_poisoned() {
        if let Err(error) = wire.finish(connection, summary).await {
            failed.get_or_insert(error);
        }
    }
    *quit_answer = wire.quit_answer.take();
    if let Some(error) = failed {
        bar.abandon();
        return Err(error);
    }
    bar.finish_and_clear();
    Ok(())
}

/// How many bytes (as listed) of the batches after the one being read may be requested
/// ahead: two batches' worth. (At least the next batch is, whatever its size.)
fn lookahead(batch_bytes: u64) -> u64 {
    batch_bytes.saturating_mul(2)
}

/// The RETRs and DELEs of the batches on the wire ([`Pipeline`]), read batch by batch.
///
/// When the server pipelines, the batches after the one being read are requested before
/// its replies are read, up to [`lookahead`] bytes and at least the next batch; the core
/// keeps its window on the wire. A batch's DELEs are queued once its commit is durable, behind
/// what is requested already, and their replies are read with the batch they come before.
/// Without pipelining only the batch being read is requested: the wire carries what it did
/// before (RETRs of batch k, DELEs of batch k-1, RETRs of batch k+1, ...).
struct Wire {
    pipeline: Pipeline,
    /// Whether to request ahead (the server pipelines).
    ahead: bool,
    lookahead: u64,
    /// Batches whose RETRs are queued.
    requested: usize,
    /// The batch whose replies are read next.
    reading: usize,
    /// Commands queued since the start.
    queued: usize,
    /// Replies handed over (or discarded) since the start.
    answered: usize,
    /// For each requested batch, `queued` after its RETRs.
    ends: Vec<usize>,
    /// The messages of the queued DELEs whose replies are not in yet, in order.
    deletes: std::collections::VecDeque<(u32, Option<String>)>,
    /// Whether to queue QUIT behind the last batch's RETRs (nothing is deleted after them).
    quit_ahead: bool,
    /// Whether QUIT is queued.
    quit_queued: bool,
    /// Its answer, once read.
    quit_answer: Option<Result<Reply, ServerError>>,
}

impl Wire {
    fn new(ahead: bool, lookahead: u64, quit_ahead: bool) -> Self {
        Self {
            quit_ahead,
            quit_queued: false,
            quit_answer: None,
            pipeline: Pipeline::new(),
            ahead,
            lookahead,
            requested: 0,
            reading: 0,
            queued: 0,
            answered: 0,
            ends: Vec::new(),
            deletes: std::collections::VecDeque::new(),
        }
    }

    /// Queues the RETRs of batch `index` if they are not yet, and (when the server
    /// pipelines) of the batches after it, within the lookahead.
    fn request(&mut self, batches: &[Vec<Item>], index: usize) -> Result<(), CliError> {
        self.reading = index;
        let bytes = |batch: &[Item]| batch.iter().fold(0u64, |sum, i| sum.saturating_add(i.size));
        let mut ahead = batches
            .get(index + 1..self.requested)
            .unwrap_or_default()
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(bytes(b)));
        while let Some(batch) = batches.get(self.requested) {
            if self.requested > index {
                if !self.ahead {
                    break;
                }
                let size = bytes(batch);
                if self.requested > index + 1 && ahead.saturating_add(size) > self.lookahead {
                    break;
                }
                ahead = ahead.saturating_add(size);
            }
            let msgs: Vec<u32> = batch.iter().map(|i| i.msg).collect();
            self.pipeline
                .retr(&msgs)
                .map_err(|e| CliError::failure(format!("RETR: {e}")))?;
            self.queued += msgs.len();
            self.ends.push(self.queued);
            self.requested += 1;
        }
        if self.quit_ahead && !self.quit_queued && self.requested == batches.len() {
            self.pipeline
                .quit()
                .map_err(|e| CliError::failure(format!("QUIT: {e}")))?;
            self.queued += 1;
            self.quit_queued = true;
        }
        crate::test_hook::pause("requested");
        Ok(())
    }

    /// Queues the DELEs of `msgs` (their UIDs marked deleting in the state on disk already).
    fn dele(&mut self, msgs: &[(u32, Option<String>)]) -> Result<(), CliError> {
        let numbers: Vec<u32> = msgs.iter().map(|(msg, _)| *msg).collect();
        crate::test_hook::pause("dele");
        self.pipeline
            .dele(&numbers)
            .map_err(|e| CliError::failure(format!("DELE: {e}")))?;
        self.queued += numbers.len();
        self.deletes.extend(msgs.iter().cloned());
        Ok(())
    }

    /// Reads the replies up to the end of the RETRs of the batch last requested, handing
    /// those of the RETRs to `on_retr` and counting those of the DELEs before them.
    async fn batch(
        &mut self,
        connection: &mut Connection,
        on_retr: impl FnMut(u32, RetrEvent<'_>) -> io::Result<()>,
        summary: &mut FetchSummary,
    ) -> Result<(), pop3_async::Error> {
        let count = self
            .ends
            .get(self.reading)
            .map_or(0, |end| end.saturating_sub(self.answered));
        self.replies(connection, count, on_retr, summary).await
    }

    /// Reads every reply still due: the DELEs counted, the RETRs discarded.
    async fn finish(
        &mut self,
        connection: &mut Connection,
        summary: &mut FetchSummary,
    ) -> Result<(), CliError> {
        let count = self.pipeline.len();
        self.replies(connection, count, |_, _| Ok(()), summary)
            .await
            .map_err(CliError::from)
    }

    async fn replies(
        &mut self,
        connection: &mut Connection,
        count: usize,
        mut on_retr: impl FnMut(u32, RetrEvent<'_>) -> io::Result<()>,
        summary: &mut FetchSummary,
    ) -> Result<(), pop3_async::Error> {
        let deletes = &mut self.deletes;
        let quit_answer = &mut self.quit_answer;
        let result = connection
            .pipeline_replies(&mut self.pipeline, count, |event| match event {
                PipelineEvent::Retr { msg, event } => on_retr(msg, event),
                PipelineEvent::Dele { msg, result } => {
                    let uid = deletes.pop_front().and_then(|(_, uid)| uid);
                    match result {
                        Ok(()) => {
                            summary.deleted += 1;
                            summary.deleted_uids.extend(uid);
                        }
                        Err(e) => {
                            summary.refused.push(format!("message {msg}: {e}"));
                            summary.refused_uids.extend(uid);
                        }
                    }
                    Ok(())
                }
                PipelineEvent::Quit { result } => {
                    *quit_answer = Some(result);
                    Ok(())
                }
                _ => Ok(()),
            })
            .await;
        // (Done or not, the `count` replies were read: an error of `on_retr` discards the
        // rest of them, any other error ends the session.)
        self.answered += count;
        result
    }
}

/// LIST and UIDL (sent together: one round trip when the server pipelines, behind the CAPA
/// that follows the login), and UIDL's listing, or `None` for a server that never had it.
/// Only such a server may do without: when CAPA announces UIDL or the state holds UIDs of
/// this account, a `-ERR` to UIDL is a failure, since fetching without UIDs would store
/// everything a second time.
async fn listings(
    connection: &mut Connection,
    local: &Mutex<Local>,
) -> Result<(Vec<ScanListing>, Option<Vec<UniqueIdListing>>), CliError> {
    let listings = connection.listings().await?;
    match listings.unique_ids {
        Ok(listing) => Ok((listings.scan, Some(listing))),
        Err(e) => {
            let announced = connection.capabilities().is_some_and(|c| c.uidl);
            if announced || lock(local)?.state.has_uids() {
                let why = if announced {
                    "the server announces UIDL"
                } else {
                    "the state file holds UIDs of this account"
                };
                return Err(CliError::Server(format!(
                    "UIDL refused ({why}): {e}; nothing was fetched or deleted"
                )));
            }
            tracing::info!(target: "pop3_cli", "no UIDL: {e}");
            Ok((listings.scan, None))
        }
    }
}

/// The listing, sorted by the state and the rules.
#[derive(Debug, Default)]
struct Sorted {
    /// To fetch, in server order.
    items: Vec<Item>,
    /// To delete now: stored ones (`--delete`, `keep` expired), marked deleting in the
    /// state; and unread ones an explicit rule deletes, forgotten by the state.
    delete_now: Vec<(u32, Option<String>)>,
    /// Why each of `delete_now` is deleted.
    reasons: Vec<Delete>,
    /// How many stored UIDs the state forgot because the server no longer lists them.
    forgotten: usize,
    /// Every message with its action, in server order (what `--dry-run` prints).
    plan: Vec<Planned>,
}

/// One message and what the rules decided for it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) msg: u32,
    pub(crate) uid: Option<String>,
    pub(crate) size: u64,
    pub(crate) action: Action,
}

impl Planned {
    /// `message N (UID u, S octets): action`.
    pub(crate) fn line(&self) -> String {
        match &self.uid {
            Some(uid) => format!(
                "message {} (UID {uid}, {} octets): {}",
                self.msg, self.size, self.action
            ),
            None => format!(
                "message {} ({} octets): {}",
                self.msg, self.size, self.action
            ),
        }
    }

    /// The line as JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let kind = match &self.action {
            Action::Fetch { .. } => "fetch",
            Action::Leave(Leave::Stored | Leave::KeptUntil(_) | Leave::SizeChanged { .. }) => {
                "stored"
            }
            Action::Leave(Leave::MarkedSeen) => "marked-seen",
            Action::Leave(_) => "skip",
            Action::Delete(d) if d.unread() => "delete-unread",
            Action::Delete(_) => "delete",
            Action::MarkSeen => "mark-seen",
        };
        json!({
            "msg": self.msg,
            "uid": self.uid,
            "size": self.size,
            "action": kind,
            "why": self.action.to_string(),
        })
    }
}

/// Sorts the listing against the state and the rules: notes every listed UID as seen
/// (first-seen times; a UID marked deleting starts again, as it may be a new message), forgets
/// the UIDs the server no longer lists, runs the header filter (`TOP n 0`) on the candidates,
/// and applies the decisions to the state (marked seen, marked deleting, forgotten before an
/// unread deletion). Nothing is written here.
async fn sort_listed(
    connection: &mut Connection,
    local: &Arc<Mutex<Local>>,
    list: &[ScanListing],
    uidl: Option<&[UniqueIdListing]>,
    job: &FetchJob,
    summary: &mut FetchSummary,
) -> Result<Sorted, CliError> {
    let rules = Rules {
        delete: job.delete,
        ..job.retention.rules.clone()
    };
    rules.check().map_err(CliError::usage)?;
    let sizes: HashMap<u32, u64> = list.iter().map(|l| (l.msg, l.size)).collect();
    // (The state is locked only between awaits: a lock held across one would make the
    // future not `Send`.)
    let (listed, first_use, now, forgotten) = {
        let state = &mut lock(local)?.state;
        let mut listed: Vec<(u32, Option<String>, u64, Option<Known>)> = Vec::new();
        let mut forgotten = 0;
        match uidl {
            Some(listing) => {
                let mut seen: HashSet<&str> = HashSet::new();
                for entry in listing {
                    if !seen.insert(entry.uid.as_str()) {
                        // (check_listings refused repeats; never skip or delete on one.)
                        return Err(CliError::failure(format!(
                            "protocol violation: UIDL repeats UID {:?}; nothing was fetched or deleted",
                            entry.uid
                        )));
                    }
                    let size = sizes.get(&entry.msg).copied().unwrap_or(0);
                    let new = state.entry(&entry.uid).is_none();
                    if state.is_deleting(&entry.uid) {
                        state.restart_first_seen(&entry.uid, size);
                    }
                    state.note_seen(&entry.uid, size);
                    // (A UID first listed now is new to the rules, though noted as seen.)
                    let known = state
                        .entry(&entry.uid)
                        .filter(|_| !new)
                        .map(|e| match e.kind {
                            _ if e.deleting => Known::Deleting,
                            Kind::Stored => Known::Stored {
                                first_seen: e.first_seen,
                                size: e.size,
                            },
                            Kind::MarkedSeen => Known::MarkedSeen,
                            Kind::Seen => Known::Seen,
                        });
                    listed.push((entry.msg, Some(entry.uid.clone()), size, known));
                }
                forgotten = state.retain_stored(&seen);
                tracing::debug!(target: "pop3_cli", "forgot {forgotten} UIDs the server no longer lists");
            }
            None if job.delete => {
                if let Some(rule) = rules.need_uids() {
                    return Err(CliError::usage(format!(
                        "the server does not support UIDL, which {rule} needs"
                    )));
                }
                let mut by_number: Vec<(u32, u64)> = sizes.iter().map(|(&m, &s)| (m, s)).collect();
                by_number.sort_unstable();
                listed = by_number
                    .into_iter()
                    .map(|(msg, size)| (msg, None, size, None))
                    .collect();
            }
            None => {
                return Err(CliError::usage(
                    "the server does not support UIDL, so fetch cannot tell new messages from those already stored; \
                     use --delete to fetch every message and delete it from the server",
                ));
            }
        }
        (listed, !state.existed(), state.now(), forgotten)
    };
    summary.listed = listed.len();

    let mut decider = Decider::new(&rules, first_use, now);
    if let Some(ExpirePolicy::Days(days)) = summary.expire {
        decider = decider.with_expire_days(days);
    }
    let mut plan = Vec::with_capacity(listed.len());
    for (msg, uid, size, known) in listed {
        let item = Listed {
            msg,
            uid: uid.as_deref(),
            size,
        };
        let action = match decider.step(&item, known) {
            Step::Decided(action) => action,
            Step::AskFilter { verify } => {
                let verdict = match &job.retention.filter {
                    Some(filter) => run_filter(connection, filter, &item, job).await?,
                    None => Verdict::Fetch,
                };
                decider.filtered(&item, verify, verdict)
            }
        };
        plan.push(Planned {
            msg,
            uid,
            size,
            action,
        });
    }

    let mut sorted = Sorted {
        forgotten,
        ..Sorted::default()
    };
    let state = &mut lock(local)?.state;
    for planned in &plan {
        let uid = planned.uid.as_deref();
        match &planned.action {
            Action::Fetch { verify } => sorted.items.push(Item {
                msg: planned.msg,
                uid: planned.uid.clone(),
                size: planned.size,
                verify: *verify,
            }),
            Action::MarkSeen => {
                summary.marked_seen += 1;
                if let Some(uid) = uid {
                    state.mark_seen(uid);
                }
            }
            Action::Leave(Leave::Stored | Leave::KeptUntil(_)) => summary.skipped += 1,
            Action::Leave(Leave::MarkedSeen) => {}
            Action::Leave(Leave::SizeChanged { .. }) => {
                summary.skipped += 1;
                summary.notices.push(planned.line());
            }
            Action::Leave(Leave::FilterFailed(_)) => {
                summary.left += 1;
                summary.notices.push(planned.line());
            }
            Action::Leave(_) => summary.left += 1,
            Action::Delete(delete) => {
                if delete.unread() {
                    summary.notices.push(planned.line());
                    // Forgotten before the DELE: whether or not it is committed, a message
                    // listed under this UID later is judged afresh, never on this record.
                    if let Some(uid) = uid {
                        state.forget(&[uid.to_owned()]);
                    }
                } else {
                    summary.skipped += 1;
                    if let Some(uid) = uid {
                        state.mark_deleting(uid);
                    }
                }
                if let Delete::Expired(_) = delete {
                    tracing::info!(target: "pop3_cli", "{}", planned.line());
                }
                sorted.delete_now.push((planned.msg, planned.uid.clone()));
                sorted.reasons.push(delete.clone());
            }
        }
    }
    for notice in &summary.notices {
        tracing::warn!(target: "pop3_cli", "{notice}");
    }
    sorted.plan = plan;
    Ok(sorted)
}

/// Runs the header filter on one message: its headers from `TOP n 0` (at most
/// [`crate::filter::MAX_FILTER_HEADER_BYTES`]), the command on the blocking pool. A `-ERR`
/// to TOP is a failed filter (the message is left); a broken connection is an error.
async fn run_filter(
    connection: &mut Connection,
    filter: &Filter,
    item: &Listed<'_>,
    job: &FetchJob,
) -> Result<Verdict, CliError> {
    let mut sink = HeaderSink::default();
    match connection.top(item.msg, 0, &mut sink).await {
        Ok(_) => {}
        Err(pop3_async::Error::Server(e)) => {
            return Ok(Verdict::Failed(format!("TOP refused: {e}")));
        }
        Err(e) => return Err(e.into()),
    }
    if sink.cut {
        tracing::warn!(target: "pop3_cli", "message {}: headers longer than {} octets; the filter gets the first {0}", item.msg, crate::filter::MAX_FILTER_HEADER_BYTES);
    }
    let headers = sink.into_bytes();
    let filter = filter.clone();
    let (host, user, size) = (
        job.retention.host.clone(),
        job.retention.user.clone(),
        item.size,
    );
    let uid = item.uid.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        filter.run(
            &headers,
            About {
                host: &host,
                user: &user,
                size,
                uid: uid.as_deref(),
            },
        )
    })
    .await
    .map_err(|_| CliError::failure("the filter's task stopped"))
}

/// Prepares a dry run: the state read without locking or writing, and what an interrupted
/// run delivered but did not record counted as stored (in memory only): the names it reserved
/// in a Maildir that are there, the append its mbox journal names if the mbox holds it. (An
/// MDA or LMTP server cannot be asked.) Creates nothing, not even the target.
pub(crate) fn prepare_dry_run(job: &FetchJob) -> Result<State, CliError> {
    let mut state = State::open_read_only(&job.state, job.legacy_state.as_deref())?;
    let pending = state.take_pending();
    let root = match &job.target {
        TargetSpec::Maildir(root) => root,
        TargetSpec::Mbox(file) => {
            let mbox = crate::deliver::mbox::Mbox::new(file, &job.state, job.deliver_timeout);
            for uid in mbox.journaled_intact()? {
                state.add_stored(&uid);
            }
            return Ok(state);
        }
        TargetSpec::Mda(_) | TargetSpec::Lmtp(..) => return Ok(state),
    };
    let complete = ["tmp", "new", "cur"].iter().all(|d| root.join(d).is_dir());
    if !pending.is_empty() && complete {
        let maildir = Maildir::open(root).map_err(|e| CliError::local(root.display(), &e))?;
        let names: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
        let delivered = maildir
            .delivered(&names)
            .map_err(|e| CliError::local(root.display(), &e))?;
        for (name, uid) in &pending {
            if delivered.contains(name) {
                state.add_stored(uid);
            }
        }
    }
    Ok(state)
}

/// `--dry-run`: lists, applies the rules (the filter included: `TOP n 0` per candidate) and
/// returns what would happen to each message; sends no RETR and no DELE, writes nothing, and
/// ends with QUIT (which commits nothing, as nothing was marked deleted).
pub(crate) async fn dry_run(
    mut connection: Connection,
    state: State,
    job: &FetchJob,
) -> Result<(Vec<Planned>, FetchSummary), CliError> {
    let mut summary = FetchSummary::default();
    let local = Arc::new(Mutex::new(Local {
        state,
        digests: None,
    }));
    let result = async {
        let (list, uidl) = listings(&mut connection, &local).await?;
        note_policies(
            &connection,
            &Rules {
                delete: job.delete,
                ..job.retention.rules.clone()
            },
            &mut summary,
        );
        check_listings(&list, uidl.as_deref())?;
        summary.uidl = uidl.is_some();
        sort_listed(
            &mut connection,
            &local,
            &list,
            uidl.as_deref(),
            job,
            &mut summary,
        )
        .await
    }
    .await;
    match result {
        Ok(sorted) => {
            connection
                .quit()
                .await
                .map_err(|e| CliError::from(e).context("QUIT"))?;
            Ok((sorted.plan, summary))
        }
        Err(error) => {
            if !connection.is_poisoned() {
                let _ = connection.quit().await;
            }
            Err(error)
        }
    }
}

/// Waits for a batch's commit, counts it, and queues its messages' DELEs if asked.
async fn wait_commit(
    commit: JoinHandle<Result<Committed, CliError>>,
    wire: &mut Wire,
    job: &FetchJob,
    summary: &mut FetchSummary,
) -> Result<(), CliError> {
    let committed = commit
        .await
        .map_err(|_| CliError::failure("a commit of this fetch stopped"))??;
    summary.stored += committed.stored;
    summary.verified += committed.msgs.len() - committed.stored;
    summary.bytes = summary.bytes.saturating_add(committed.octets);
    summary.batches += 1;
    summary.undelivered.extend(committed.undelivered);
    if job.delete && !committed.msgs.is_empty() {
        wire.dele(&committed.msgs)?;
    } else if summary.expire == Some(ExpirePolicy::Days(0)) {
        // Retrieved, so deleted by the server when QUIT commits, as if DELE'd (and already
        // marked deleting by the commit).
        summary.server_expired += committed.msgs.len();
        summary
            .deleted_uids
            .extend(committed.msgs.into_iter().filter_map(|(_, uid)| uid));
    }
    Ok(())
}

/// Drops the staged messages that will not be committed (the Maildir's `tmp/` files).
fn discard_all(target: &dyn Target, complete: &[Staged]) {
    for c in complete {
        target.discard(&c.name);
    }
}

/// Marks `msgs` deleted (pipelined); refusals are noted, not fatal. Their UIDs must be
/// marked deleting in the state on disk already. Says which were deleted.
async fn dele(
    connection: &mut Connection,
    msgs: &[(u32, Option<String>)],
    summary: &mut FetchSummary,
) -> Result<Vec<bool>, CliError> {
    let numbers: Vec<u32> = msgs.iter().map(|(msg, _)| *msg).collect();
    crate::test_hook::pause("dele");
    let results = connection.dele_many(&numbers).await?;
    let mut done = Vec::with_capacity(msgs.len());
    for ((msg, uid), result) in msgs.iter().zip(results) {
        done.push(result.is_ok());
        match result {
            Ok(()) => {
                summary.deleted += 1;
                summary.deleted_uids.extend(uid.clone());
            }
            Err(e) => {
                summary.refused.push(format!("message {msg}: {e}"));
                summary.refused_uids.extend(uid.clone());
            }
        }
    }
    Ok(done)
}

/// What one batch's download produced.
struct Outcome {
    complete: Vec<Staged>,
    error: Option<CliError>,
}

/// Reads the replies of `batch` (the last one [`Wire::request`]ed) into the target's staging files.
/// Complete messages are returned even when the batch fails half-way, so that they can be
/// committed; the partial one is discarded.
async fn download(
    connection: &mut Connection,
    wire: &mut Wire,
    target: &dyn Target,
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
    let mut current: Option<(u32, LfWriter<BufWriter<File>>)> = None;
    let mut complete = Vec::new();
    let mut local: Option<CliError> = None;
    let mut refused = Vec::new();
    let result = wire
        .batch(
            connection,
            |msg, event| {
                let step = (|| -> Result<(), CliError> {
                    let Some(&(item, name)) = by_msg.get(&msg) else {
                        return Ok(());
                    };
                    let open = |current: &mut Option<(u32, LfWriter<BufWriter<File>>)>| {
                        if current.as_ref().is_none_or(|(m, _)| *m != msg) {
                            let file = target
                                .stage(name)
                                .map_err(|e| CliError::local(staging(target, name), &e))?;
                            crate::test_hook::pause("opened");
                            *current = Some((
                                msg,
                                LfWriter::new(BufWriter::with_capacity(
                                    write_buffer(item.size),
                                    file,
                                )),
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
                                    .map_err(|e| CliError::local(staging(target, name), &e))?;
                            }
                            bar.inc(chunk.len() as u64);
                        }
                        RetrEvent::End { octets } => {
                            open(&mut current)?;
                            if let Some((_, writer)) = current.take() {
                                // The final flush can fail (a full disk, a file size limit): the
                                // partial file goes.
                                let flushed = writer
                                    .finish()
                                    .map_err(|e| CliError::local(staging(target, name), &e))
                                    .and_then(|(buffered, _)| {
                                        buffered.into_inner().map_err(|e| {
                                            CliError::local(staging(target, name), e.error())
                                        })
                                    });
                                let file = match flushed {
                                    Ok(file) => file,
                                    Err(error) => {
                                        target.discard(name);
                                        return Err(error);
                                    }
                                };
                                complete.push(Staged {
                                    msg,
                                    uid: item.uid.clone(),
                                    name: name.clone(),
                                    file: Arc::new(file),
                                    octets,
                                    verify: item.verify,
                                });
                            }
                        }
                        RetrEvent::Refused(e) => {
                            current = None;
                            target.discard(name);
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
            },
            summary,
        )
        .await;
    // A message cut off half-way leaves a partial file: remove it.
    if let Some((msg, _)) = current.take() {
        if let Some((_, name)) = by_msg.get(&msg) {
            target.discard(name);
        }
    }
    summary.refused.extend(refused);
    let error = match result {
        Ok(()) => None,
        Err(e) => Some(local.take().unwrap_or_else(|| CliError::from(e))),
    };
    Outcome { complete, error }
}

/// The write buffer for a message of `size` octets (as listed): the whole message in one
/// write when it is up to 1 MiB (a listed size can lie: it only sizes a buffer).
fn write_buffer(size: u64) -> usize {
    usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1024)
        .clamp(8 * 1024, 1024 * 1024)
}

/// Where a message is staged, for errors.
fn staging(target: &dyn Target, name: &str) -> String {
    if target.reserves_names() {
        format!("tmp/{name}")
    } else {
        format!("a staging file for {}", target.describe())
    }
}

/// What the committer made durable.
#[derive(Debug)]
struct Committed {
    /// The batch's messages now in the target, to be deleted if asked: those stored and
    /// those found there already.
    msgs: Vec<(u32, Option<String>)>,
    /// How many of them were stored (the others were found identical in the target).
    stored: usize,
    octets: u64,
    /// The messages the target did not take, one line each.
    undelivered: Vec<String>,
}

/// Records what a target delivered: the UIDs stored (and marked deleting if they are to be
/// deleted), the names of the next batches reserved, one atomic state write.
struct FetchLedger<'a> {
    state: &'a mut State,
    /// Appended to (durably) before the state records a UID.
    digests: Option<&'a mut Digests>,
    use_state: bool,
    delete: bool,
    /// Set with the first record of the batch.
    next_pending: Option<Vec<(String, String)>>,
    /// Whether the batch's digests were written by [`Ledger::intend`] already.
    intended: bool,
}

impl Ledger for FetchLedger<'_> {
    fn intend(&mut self, batch: &[&Staged]) -> Result<(), CliError> {
        if let Some(digests) = self.digests.as_mut() {
            digests
                .append(batch)
                .map_err(|e| CliError::local(digests.path().display(), &e))?;
            self.intended = true;
        }
        Ok(())
    }

    fn record(&mut self, delivered: &[&Staged]) -> Result<(), CliError> {
        if let Some(digests) = self.digests.as_mut().filter(|_| !self.intended) {
            digests
                .append(delivered)
                .map_err(|e| CliError::local(digests.path().display(), &e))?;
        }
        for staged in delivered {
            if let Some(uid) = &staged.uid {
                self.state.add_stored(uid);
                if self.delete {
                    self.state.mark_deleting(uid);
                } else {
                    self.state.clear_deleting(uid);
                }
            }
        }
        if self.use_state {
            if let Some(pending) = self.next_pending.take() {
                self.state.set_pending(pending);
            }
            self.state
                .save()
                .map_err(|e| CliError::local(self.state.path().display(), &e))?;
            crate::test_hook::pause("recorded");
        }
        Ok(())
    }
}

/// How a batch's messages are recorded.
#[derive(Debug, Clone, Copy)]
struct Recording {
    /// Whether the state records UIDs at all (the server has UIDL).
    use_state: bool,
    /// Whether each stored UID is marked deleting in the write that records it (`--delete`,
    /// or the server's `EXPIRE 0`).
    delete: bool,
}

/// Commits a batch through the target (see [`deliver`]): what it delivered is recorded by the
/// ledger as the target's guarantee needs; what it refused stays unrecorded (and on the
/// server). The reservations move on to the next batches even if nothing was delivered.
fn commit(
    target: &dyn Target,
    state: &mut State,
    digests: Option<&mut Digests>,
    Recording { use_state, delete }: Recording,
    complete: Vec<Staged>,
    next_pending: Vec<(String, String)>,
    compared: &HashMap<String, u64>,
) -> Result<Committed, CliError> {
    // A message listed under a UID marked deleting, identical to the one delivered under it
    // (its digest): the deletion did not happen, it is not delivered again.
    let mut already = Vec::new();
    let mut fresh = Vec::new();
    for staged in complete {
        let seen = match digests.as_deref() {
            Some(digests) if staged.verify => digests
                .delivered_already(&staged)
                .map_err(|e| CliError::local(staged.label(), &e))?,
            _ => false,
        };
        if seen {
            tracing::debug!(target: "pop3_cli", "{} was delivered already (same digest)", staged.label());
            already.push(staged);
        } else {
            if staged.verify && digests.is_some() {
                tracing::info!(target: "pop3_cli", "{} is listed under a UID whose deletion was not committed, with other content (or none recorded): delivered", staged.label());
            }
            fresh.push(staged);
        }
    }
    let mut ledger = FetchLedger {
        state,
        digests,
        use_state,
        delete,
        next_pending: Some(next_pending),
        intended: false,
    };
    if !already.is_empty() {
        let refs: Vec<&Staged> = already.iter().collect();
        ledger.record(&refs)?;
    }
    let complete = fresh;
    let mut outcomes = target.commit(&complete, &mut ledger)?;
    let complete: Vec<Staged> = already.into_iter().chain(complete).collect();
    outcomes.splice(
        0..0,
        std::iter::repeat_n(
            deliver::Outcome::AlreadyThere,
            complete.len() - outcomes.len(),
        ),
    );
    if let Some(pending) = ledger.next_pending.take() {
        if use_state && target.reserves_names() {
            ledger.state.set_pending(pending);
            ledger
                .state
                .save()
                .map_err(|e| CliError::local(ledger.state.path().display(), &e))?;
        }
    }
    let mut committed = Committed {
        msgs: Vec::with_capacity(complete.len()),
        stored: 0,
        octets: 0,
        undelivered: Vec::new(),
    };
    let mut restarted = false;
    for (staged, outcome) in complete.iter().zip(outcomes) {
        match outcome {
            deliver::Outcome::Delivered => {
                // Compared and found new: another message under a reused UID, first seen
                // now (an identical one keeps the old message's time, and the UID stays
                // untrusted under EXPIRE n).
                if let Some((uid, size)) = staged
                    .uid
                    .as_ref()
                    .and_then(|uid| compared.get(uid).map(|size| (uid, *size)))
                    .filter(|_| staged.verify)
                {
                    ledger.state.restart_first_seen(uid, size);
                    restarted = true;
                }
                committed.stored += 1;
                committed.octets += staged.octets;
                committed.msgs.push((staged.msg, staged.uid.clone()));
            }
            deliver::Outcome::AlreadyThere => {
                committed.msgs.push((staged.msg, staged.uid.clone()));
            }
            deliver::Outcome::Temporary(why) => committed.undelivered.push(format!(
                "{}: not delivered, left on the server for the next run: {why}",
                staged.label()
            )),
            deliver::Outcome::Permanent(why) => committed.undelivered.push(format!(
                "{}: permanent delivery failure, left on the server: {why}",
                staged.label()
            )),
        }
    }
    if restarted && use_state {
        ledger
            .state
            .save()
            .map_err(|e| CliError::local(ledger.state.path().display(), &e))?;
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(msg: u32, size: u64) -> Item {
        Item {
            msg,
            uid: None,
            size,
            verify: false,
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
