//! Criterion benchmark: decoding a large pipelined RETR stream through the whole `Client`,
//! against the least work any correct decoder must do on the same buffer (finding every
//! CRLF `.` with `memchr::memmem`: only a `.` right after CRLF can start a stuffed line or the
//! terminator).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod common;
use common::{baseline, client, decode, drain, drain_unwrap, wire};

fn bench(c: &mut Criterion) {
    let wire = wire();
    let mut group = c.benchmark_group("retr_stream");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    // Both the baseline and the client scan a buffer freshly filled with the stream (as a read
    // leaves it), so that both meet the same cache state. Each routine hands its input back,
    // so that freeing it is not timed.
    group.bench_function("memmem_baseline", |b| {
        b.iter_batched(
            || wire.clone(),
            |buf| (baseline(black_box(&buf)), buf),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("client_body_events", |b| {
        b.iter_batched(
            || {
                // The stream as a read from the connection leaves it: in the client's buffer.
                let mut c = client();
                c.input_buffer(wire.len()).copy_from_slice(&wire);
                c.commit_input(wire.len());
                c
            },
            |mut c| (drain(&mut c), c),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("client_body_events_unwrap", |b| {
        b.iter_batched(
            || {
                let mut c = client();
                c.input_buffer(wire.len()).copy_from_slice(&wire);
                c.commit_input(wire.len());
                c
            },
            |mut c| (drain_unwrap(&mut c), c),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("client_handle_input_64k", |b| {
        b.iter_batched(
            client,
            |mut c| (decode(&mut c, black_box(&wire)), c),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
