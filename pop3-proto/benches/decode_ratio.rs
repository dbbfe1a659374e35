//! `poll_event` against the memmem baseline as one ratio, robust to a noisy machine: the loops
//! are timed alternately in the same process, many times, and the best time of each is kept
//! (noise only ever adds time). Run with
//!
//! ```text
//! cargo bench -p pop3-proto --bench decode_ratio [-- ROUNDS [MESSAGES]]
//! ```
//!
//! ROUNDS defaults to 300, MESSAGES to 2,000 (the `decode` Criterion benchmark's stream: 4 KiB
//! RETR replies, one line in eight stuffed, 8.3 MB). With 200 messages (833 kB) the stream
//! stays in a core's L2 cache, so the ratio shows the decoder's own work rather than the
//! memory bandwidth the machine's other tenants leave. It prints the best times, the
//! throughputs and, for each loop, baseline time / loop time.
//!
//! Every loop reads a buffer written just before the clock starts (as a read from the socket
//! leaves it): the baseline a fresh copy of the stream, the client its input buffer. Freeing
//! them is not timed.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
use common::{baseline, client_for, decode, drain, drain_unwrap, wire_of};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let messages: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(common::MESSAGES);
    let wire = wire_of(messages);
    let filled = || {
        let mut c = client_for(messages);
        c.input_buffer(wire.len()).copy_from_slice(&wire);
        c.commit_input(wire.len());
        c
    };
    let mut best = [Duration::MAX; 4];
    for _ in 0..rounds {
        let fresh = wire.clone();
        let t = Instant::now();
        black_box(baseline(black_box(&fresh)));
        best[0] = best[0].min(t.elapsed());
        drop(fresh);

        let mut c = filled();
        let t = Instant::now();
        black_box(drain(&mut c));
        best[1] = best[1].min(t.elapsed());
        drop(c);

        let mut c = filled();
        let t = Instant::now();
        black_box(drain_unwrap(&mut c));
        best[2] = best[2].min(t.elapsed());
        drop(c);

        let mut c = client_for(messages);
        let t = Instant::now();
        black_box(decode(&mut c, black_box(&wire)));
        best[3] = best[3].min(t.elapsed());
        drop(c);
    }
    let gib = |d: Duration| wire.len() as f64 / d.as_secs_f64() / (1u64 << 30) as f64;
    println!(
        "{messages} messages, {} bytes, best of {rounds} rounds",
        wire.len()
    );
    let names = [
        "memmem_baseline",
        "poll_event, matched in place",
        "poll_event().unwrap()",
        "handle_input 64 KiB + poll_event",
    ];
    for (name, time) in names.iter().zip(best) {
        println!(
            "{name:34} {:>9.1} us {:>6.1} GiB/s {:>5.1} % of baseline",
            time.as_secs_f64() * 1e6,
            gib(time),
            100.0 * best[0].as_secs_f64() / time.as_secs_f64(),
        );
    }
}
