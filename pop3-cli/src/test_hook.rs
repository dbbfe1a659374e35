//! A pause point for the kill tests (`tests/cli_kill.rs`), compiled into debug builds only.
//!
//! `fetch` calls [`pause`] at the moments where a kill must be harmless: `prepared` (the
//! Maildir, lock, state and recovery done, before connecting), `opened` (a message's file just
//! created in `tmp/`), `synced` (a batch's files synced, none renamed), `renamed` (a batch
//! renamed into `new/` and `new/` synced, the state not yet written), `recorded` (the state
//! written), `requested` (a batch's RETRs, and those of the batches ahead, queued while the
//! batch before may be committing), `dele` (before a batch's DELEs are queued) and `quit`
//! (before the final QUIT). The delivery
//! targets add theirs (`tests/deliver.rs`): for the mbox `journaled` (the append's journal
//! written, nothing appended), `appending` (the batch's first message appended and flushed,
//! the rest not) and `appended` (the append synced, not recorded); for an MDA or LMTP server
//! `delivered` (a message accepted, not yet recorded).
//!
//! In a debug build with `POP3_TEST_PAUSE_AT=PHASE:N` in the environment, the N-th call for
//! PHASE writes `pop3-test-hook: paused at PHASE N` to stderr and stops the whole process with
//! SIGSTOP, so that a test sees the Maildir and the state file exactly as they are at that
//! moment before it kills the process (the calling thread never goes on: the process is
//! meant to be killed). Without the variable (or with a malformed one) nothing
//! happens. Release builds contain an empty function and never read the variable.

/// The pause point named `phase` (see the module docs).
#[cfg(debug_assertions)]
pub(crate) fn pause(phase: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let value = std::env::var("POP3_TEST_PAUSE_AT").ok()?;
        let (name, n) = value.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    let Some((name, n)) = target else {
        return;
    };
    if name != phase {
        return;
    }
    let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
    if hit == *n {
        eprintln!("pop3-test-hook: paused at {phase} {hit}");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
        // A signal sent to the process may stop this thread only after it has gone on for
        // a while (the kernel wakes another thread to take it): this thread must not pass the
        // pause point, ever. The test kills the process.
        loop {
            std::thread::park();
        }
    }
}

/// The pause point named `phase`: nothing in a release build.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn pause(_phase: &str) {}
