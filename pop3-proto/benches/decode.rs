//! Criterion benchmark: decoding a large pipelined RETR stream through the whole `Client`,
//! against the least work any correct decoder must do on the same buffer (finding every
//! CRLF `.` with `memchr::memmem`: only a `.` right after CRLF can start a stuffed line or the
//! terminator).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pop3_proto::{Client, Command, Config, Event};

const MESSAGES: u32 = 2000;
const MESSAGE_SIZE: usize = 4096;
const READ: usize = 64 * 1024;

/// `MESSAGES` replies of about 4 KiB each: 76-column lines, one in eight starting with a dot
/// (stuffed), CRLF.
fn wire() -> Vec<u8> {
    let mut wire = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..MESSAGES {
        wire.extend_from_slice(b"+OK message follows\r\n");
        let mut size = 0;
        let mut line_no = 0;
        while size < MESSAGE_SIZE {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut line: Vec<u8> = (0..76)
                .map(|i| b'a' + ((seed >> (i % 60)) as u8 % 26))
                .collect();
            if line_no % 8 == 3 {
                line[0] = b'.';
                wire.push(b'.');
            }
            wire.extend_from_slice(&line);
            wire.extend_from_slice(b"\r\n");
            size += 78;
            line_no += 1;
        }
        wire.extend_from_slice(b".\r\n");
    }
    wire
}

fn client() -> Client {
    let mut config = Config::default();
    config.allow_plaintext_auth = true;
    config.auto_capa = false;
    config.pipeline_window = MESSAGES as usize;
    config.max_pipeline_bytes = usize::MAX;
    let mut c = Client::new(config);
    c.handle_input(b"+OK ready\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.enqueue(Command::Capa).unwrap();
    c.poll_transmit(&mut Vec::new());
    c.handle_input(b"+OK\r\nPIPELINING\r\n.\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.enqueue(Command::pass("x")).unwrap();
    c.poll_transmit(&mut Vec::new());
    c.handle_input(b"+OK\r\n");
    while c.poll_event().unwrap().is_some() {}
    c.enqueue(Command::Capa).unwrap();
    c.poll_transmit(&mut Vec::new());
    c.handle_input(b"+OK\r\nPIPELINING\r\n.\r\n");
    while c.poll_event().unwrap().is_some() {}
    for n in 1..=MESSAGES {
        c.enqueue(Command::retr(n)).unwrap();
    }
    c.poll_transmit(&mut Vec::new());
    c
}

/// The whole client through `handle_input`: 64 KiB reads (one copy each), every event drained, body bytes counted.
fn decode(mut c: Client, wire: &[u8]) -> usize {
    let mut body = 0;
    for read in wire.chunks(READ) {
        c.handle_input(read);
        loop {
            match c.poll_event() {
                Ok(Some(Event::Body { chunk, .. })) => body += black_box(chunk).len(),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(c.is_idle());
    body
}

/// Decodes what is already in the client's buffer through `poll_event`, matching each result
/// in place (the loop `poll_event`'s documentation recommends).
fn drain(mut c: Client) -> usize {
    let mut body = 0;
    loop {
        match c.poll_event() {
            Ok(Some(Event::Body { chunk, .. })) => body += black_box(chunk).len(),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(c.is_idle());
    body
}

/// The same through `poll_event().unwrap()`, which moves each event out of the `Result` first.
fn drain_unwrap(mut c: Client) -> usize {
    let mut body = 0;
    while let Some(event) = c.poll_event().unwrap() {
        if let Event::Body { chunk, .. } = event {
            body += black_box(chunk).len();
        }
    }
    assert!(c.is_idle());
    body
}

/// The baseline: count the line starts with a dot (CRLF `.`), the one scan every decoder must
/// make.
fn baseline(wire: &[u8]) -> usize {
    memchr::memmem::find_iter(wire, b"\r\n.").count()
}

fn bench(c: &mut Criterion) {
    let wire = wire();
    let mut group = c.benchmark_group("retr_stream");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    // Both the baseline and the client scan a buffer freshly filled with the stream (as a read
    // leaves it), so that both meet the same cache state.
    group.bench_function("memmem_baseline", |b| {
        b.iter_batched(
            || wire.clone(),
            |buf| baseline(black_box(&buf)),
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
            drain,
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
            drain_unwrap,
            BatchSize::LargeInput,
        )
    });
    group.bench_function("client_handle_input_64k", |b| {
        b.iter_batched(
            client,
            |c| decode(c, black_box(&wire)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
