//! The workload both decode benchmarks share: a pipelined stream of 4 KiB RETR replies, the
//! client that expects it, the ways to drain it, and the memmem baseline.
#![allow(dead_code)]

use std::hint::black_box;

use pop3_proto::{Client, Command, Config, Event};

pub(crate) const MESSAGES: u32 = 2000;
pub(crate) const MESSAGE_SIZE: usize = 4096;
pub(crate) const READ: usize = 64 * 1024;

/// `MESSAGES` replies of about 4 KiB each: 76-column lines, one in eight starting with a dot
/// (stuffed), CRLF.
pub(crate) fn wire() -> Vec<u8> {
    wire_of(MESSAGES)
}

/// The same stream with `messages` replies.
pub(crate) fn wire_of(messages: u32) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..messages {
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

pub(crate) fn client() -> Client {
    client_for(MESSAGES)
}

/// A client logged in (pipelining on) with `messages` RETRs sent.
pub(crate) fn client_for(messages: u32) -> Client {
    let mut config = Config::default();
    config.allow_plaintext_auth = true;
    config.auto_capa = false;
    config.pipeline_window = messages as usize;
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
    for n in 1..=messages {
        c.enqueue(Command::retr(n)).unwrap();
    }
    c.poll_transmit(&mut Vec::new());
    c
}

/// The whole client through `handle_input`: 64 KiB reads (one copy each), every event drained,
/// body bytes counted. The client is borrowed, so that a timer can leave its drop out.
pub(crate) fn decode(c: &mut Client, wire: &[u8]) -> usize {
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
/// in place.
pub(crate) fn drain(c: &mut Client) -> usize {
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
pub(crate) fn drain_unwrap(c: &mut Client) -> usize {
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
pub(crate) fn baseline(wire: &[u8]) -> usize {
    memchr::memmem::find_iter(wire, b"\r\n.").count()
}
