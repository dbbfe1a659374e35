//! The open-file limit: raised at start, and respected by `fetch` whatever `--batch` says.
//!
//! `fetch` keeps the files of two batches open at once (one being synced, one downloading).
//! With `--batch 512` that is over 1024 descriptors, more than the usual soft limit of 1024.
//! As servers commonly do, the soft limit is raised toward the hard limit at start; the batch
//! is then capped so that two batches fit in what is left.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept free beyond the batch files and those open at start: the connection, the
/// state file and its lock, its temporary file, directory syncs, and some slack.
const RESERVE: u64 = 16;

/// At most this many descriptors are asked for when the hard limit is unlimited.
const WANTED: u64 = 1 << 16;

/// Raises the soft RLIMIT_NOFILE toward the hard limit (never above what could be needed);
/// returns the soft limit in effect.
pub(crate) fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    let target = limit.maximum.map_or(WANTED, |hard| hard.min(WANTED));
    if target > soft {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(target: "pop3_cli", "raised the open-file limit from {soft} to {target}");
                return Some(target);
            }
            Err(e) => {
                tracing::debug!(target: "pop3_cli", "could not raise the open-file limit from {soft}: {e}");
            }
        }
    }
    Some(soft)
}

/// How many descriptors are open now (`/proc/self/fd`; an estimate elsewhere).
fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(8, |d| d.count() as u64)
}

/// The largest batch (messages) whose files, two batches at a time, fit under `soft` with
/// what is open now; at least 1, at most `wanted`.
pub(crate) fn cap_batch(wanted: usize, soft: Option<u64>) -> usize {
    let Some(soft) = soft else {
        return wanted;
    };
    let free = soft.saturating_sub(open_now() + RESERVE);
    let fit = usize::try_from(free / 2).unwrap_or(usize::MAX).max(1);
    wanted.min(fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_fits_the_limit() {
        let open = open_now();
        assert_eq!(cap_batch(512, None), 512);
        assert_eq!(cap_batch(512, Some(1_000_000)), 512);
        // (Other tests of this binary open files meanwhile: a range.)
        let capped = cap_batch(512, Some(open + RESERVE + 100));
        assert!((40..=50).contains(&capped), "{capped}");
        assert_eq!(cap_batch(512, Some(3)), 1);
        assert_eq!(cap_batch(4, Some(open + RESERVE + 100)), 4);
    }
}
