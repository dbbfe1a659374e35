//! The round-trip budget of a `retr_many` session (issue 11), counted by the server
//! ([`TurnServer`]: a turn is each time the server, having written its replies, waits and then
//! receives new client bytes), for both adapters.
//!
//! Plain USER/PASS, PIPELINING advertised, no TLS, plaintext allowed, a pipeline window of 512
//! and 1,100 messages, so that the RETRs span three windows. The budget is four turns
//! (waiting for the greeting, the CAPA before login, USER and PASS in one write (the server
//! announces PIPELINING and USER, and plaintext is allowed), and the CAPA after login) plus
//! one per window. The CAPA after login rides with the first commands after login, so it
//! costs a turn of its own only if the caller waits for something there: the STAT of a
//! session that asks for the count first shares it; a session that goes straight to
//! `retr_many` does not pay it at all. Both counts are asserted exactly, turn by turn: a CAPA,
//! a STAT or a window that cost one more round trip would fail them.
//!
//! The same messages read in batches of 100 through a `Pipeline` (`pipeline_replies`), each
//! batch queued before the one before it is read, cost one turn per two batches (issue 13).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use pop3_tests::{TurnServer, Turns};

const MESSAGES: u32 = 1_100;
const WINDOW: usize = 512;
/// Greeting, CAPA, USER and PASS together, and the CAPA after login.
const BASE_TURNS: usize = 4;
/// `ceil(1,100 / 512)`.
const WINDOWS: usize = 3;

fn messages() -> Vec<Vec<u8>> {
    (1..=MESSAGES)
        .map(|i| format!("Subject: {i}\r\n\r\nbody of {i}\r\n.stuffed\r\n").into_bytes())
        .collect()
}

fn octets() -> u64 {
    messages()
        .iter()
        .map(|m| m.len() as u64) // the dot that stuffing adds on the wire is not counted
        .sum()
}

/// Login, STAT, `retr_many` over every message, QUIT (the benchmark's session).
fn with_stat_expected() -> Vec<&'static str> {
    vec![
        "CAPA",       // after the greeting
        "USER, PASS", // after CAPA: PASS pipelined behind USER
        "CAPA, STAT", // after PASS: the CAPA after login, with the caller's STAT
        "RETR x512",  // after STAT (and that CAPA): window 1
        "RETR x512",  // window 2, refilled as window 1's replies come in
        "RETR x76",   // window 3
        "QUIT",       // after the last window
    ]
}

/// Login, `retr_many` over every message, QUIT: the CAPA after login is the first command of
/// window 1 (it takes one of its 512 places).
fn without_stat_expected() -> Vec<&'static str> {
    vec![
        "CAPA",
        "USER, PASS",
        "CAPA, RETR x511",
        "RETR x512",
        "RETR x77",
        "QUIT",
    ]
}

fn options() -> pop3_blocking::Options {
    let mut options = pop3_blocking::Options::default()
        .allow_plaintext(true)
        .timeout(Duration::from_secs(30));
    options.config.pipeline_window = WINDOW;
    options
}

fn check(turns: &Turns, expected: &[&str], budget: usize) {
    assert_eq!(turns.shape(), expected, "turn by turn");
    assert_eq!(turns.count(), budget, "{:?}", turns.shape());
    // The lines themselves: every message once, in order, each window after the last.
    let retrs: Vec<String> = turns
        .lines()
        .iter()
        .flatten()
        .filter(|l| l.starts_with("RETR "))
        .cloned()
        .collect();
    let wanted: Vec<String> = (1..=MESSAGES).map(|i| format!("RETR {i}")).collect();
    assert_eq!(retrs, wanted);
    assert_eq!(
        turns.lines()[1],
        [
            format!("USER {}", TurnServer::USER),
            format!("PASS {}", TurnServer::PASSWORD)
        ]
    );
}

fn blocking_session(stat_first: bool) -> Turns {
    use pop3_blocking::{Connection, RetrEvent, Security};
    let server = TurnServer::start(messages()).unwrap();
    let mut pop =
        Connection::connect("127.0.0.1", server.port(), Security::None, &options()).unwrap();
    pop.login(TurnServer::USER, TurnServer::PASSWORD).unwrap();
    let count = if stat_first {
        pop.stat().unwrap().count
    } else {
        MESSAGES
    };
    let all: Vec<u32> = (1..=count).collect();
    let (mut ended, mut bytes) = (0u32, 0u64);
    pop.retr_many(&all, |_, event| {
        match event {
            RetrEvent::Chunk(chunk) => bytes += chunk.len() as u64,
            RetrEvent::End { .. } => ended += 1,
            RetrEvent::Refused(e) => panic!("refused: {e}"),
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    assert_eq!((ended, bytes), (MESSAGES, octets()));
    pop.quit().unwrap();
    server.finish().unwrap()
}

fn async_session(stat_first: bool) -> Turns {
    use pop3_async::{Connection, RetrEvent, Security};
    let server = TurnServer::start(messages()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pop = Connection::connect("127.0.0.1", server.port(), Security::None, &options())
            .await
            .unwrap();
        pop.login(TurnServer::USER, TurnServer::PASSWORD)
            .await
            .unwrap();
        let count = if stat_first {
            pop.stat().await.unwrap().count
        } else {
            MESSAGES
        };
        let all: Vec<u32> = (1..=count).collect();
        let (mut ended, mut bytes) = (0u32, 0u64);
        pop.retr_many(&all, |_, event| {
            match event {
                RetrEvent::Chunk(chunk) => bytes += chunk.len() as u64,
                RetrEvent::End { .. } => ended += 1,
                RetrEvent::Refused(e) => panic!("refused: {e}"),
                _ => {}
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!((ended, bytes), (MESSAGES, octets()));
        pop.quit().await.unwrap();
    });
    server.finish().unwrap()
}

#[test]
fn blocking_with_stat_takes_four_turns_plus_one_per_window() {
    let turns = blocking_session(true);
    check(&turns, &with_stat_expected(), BASE_TURNS + WINDOWS);
}

#[test]
fn blocking_without_stat_does_not_pay_for_the_capa_after_login() {
    let turns = blocking_session(false);
    check(&turns, &without_stat_expected(), BASE_TURNS - 1 + WINDOWS);
}

#[test]
fn async_with_stat_takes_four_turns_plus_one_per_window() {
    let turns = async_session(true);
    check(&turns, &with_stat_expected(), BASE_TURNS + WINDOWS);
}

#[test]
fn async_without_stat_does_not_pay_for_the_capa_after_login() {
    let turns = async_session(false);
    check(&turns, &without_stat_expected(), BASE_TURNS - 1 + WINDOWS);
}

/// The counter itself: commands written in pieces without waiting for a reply are one turn,
/// each command that waits for the previous reply is one more.
#[test]
fn the_server_counts_waits_not_writes() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;

    let server = TurnServer::start(messages()).unwrap();
    let mut socket = TcpStream::connect(server.addr()).unwrap();
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut line = String::new();
    let mut reply = |reader: &mut BufReader<TcpStream>| {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{line:?}");
    };
    reply(&mut reader); // greeting
    socket.write_all(b"USER alice\r\n").unwrap();
    reply(&mut reader);
    socket.write_all(b"PASS secret-a\r\n").unwrap();
    reply(&mut reader);
    // Three writes, 20 ms apart, no wait for a reply: one turn.
    for piece in [&b"NOOP\r\nNO"[..], b"OP\r\n", b"STAT\r\n"] {
        socket.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        reply(&mut reader);
    }
    socket.write_all(b"QUIT\r\n").unwrap();
    reply(&mut reader);
    let turns = server.finish().unwrap();
    assert_eq!(turns.shape(), ["USER", "PASS", "NOOP x2, STAT", "QUIT"]);
    assert_eq!(turns.count(), 4);
}

/// Batches of 100 read with `pipeline_replies`, each batch queued before the one before it
/// is read (`Pipeline`): two batches per turn, where reading each batch before queueing the
/// next would cost a turn per batch.
const BATCH: u32 = 100;

fn pipeline_expected() -> Vec<&'static str> {
    vec![
        "CAPA",
        "USER, PASS",
        "CAPA, RETR x200", // batches 1 and 2
        "RETR x200",       // 3 (queued while 2 was read from the buffer) and 4
        "RETR x200",       // 5 and 6
        "RETR x200",       // 7 and 8
        "RETR x200",       // 9 and 10
        "RETR x100",       // 11
        "QUIT",
    ]
}

fn batches() -> Vec<Vec<u32>> {
    let all: Vec<u32> = (1..=MESSAGES).collect();
    all.chunks(BATCH as usize).map(<[u32]>::to_vec).collect()
}

fn blocking_pipeline_session() -> Turns {
    use pop3_blocking::{Connection, Pipeline, PipelineEvent, RetrEvent, Security};
    let server = TurnServer::start(messages()).unwrap();
    let mut pop =
        Connection::connect("127.0.0.1", server.port(), Security::None, &options()).unwrap();
    pop.login(TurnServer::USER, TurnServer::PASSWORD).unwrap();
    let batches = batches();
    let mut pipeline = Pipeline::new();
    pipeline.retr(&batches[0]).unwrap();
    let (mut ended, mut bytes) = (0u32, 0u64);
    for (k, batch) in batches.iter().enumerate() {
        if let Some(next) = batches.get(k + 1) {
            pipeline.retr(next).unwrap();
        }
        let mut expected = batch.iter();
        pop.pipeline_replies(&mut pipeline, batch.len(), |event| {
            match event {
                PipelineEvent::Retr { msg, event } => match event {
                    RetrEvent::Chunk(chunk) => bytes += chunk.len() as u64,
                    RetrEvent::End { .. } => {
                        assert_eq!(Some(&msg), expected.next());
                        ended += 1;
                    }
                    RetrEvent::Refused(e) => panic!("refused: {e}"),
                    _ => {}
                },
                other => panic!("{other:?}"),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(expected.next(), None);
    }
    assert!(pipeline.is_empty());
    assert_eq!((ended, bytes), (MESSAGES, octets()));
    pop.quit().unwrap();
    server.finish().unwrap()
}

fn async_pipeline_session() -> Turns {
    use pop3_async::{Connection, Pipeline, PipelineEvent, RetrEvent, Security};
    let server = TurnServer::start(messages()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pop = Connection::connect("127.0.0.1", server.port(), Security::None, &options())
            .await
            .unwrap();
        pop.login(TurnServer::USER, TurnServer::PASSWORD)
            .await
            .unwrap();
        let batches = batches();
        let mut pipeline = Pipeline::new();
        pipeline.retr(&batches[0]).unwrap();
        let (mut ended, mut bytes) = (0u32, 0u64);
        for (k, batch) in batches.iter().enumerate() {
            if let Some(next) = batches.get(k + 1) {
                pipeline.retr(next).unwrap();
            }
            let mut expected = batch.iter();
            pop.pipeline_replies(&mut pipeline, batch.len(), |event| {
                match event {
                    PipelineEvent::Retr { msg, event } => match event {
                        RetrEvent::Chunk(chunk) => bytes += chunk.len() as u64,
                        RetrEvent::End { .. } => {
                            assert_eq!(Some(&msg), expected.next());
                            ended += 1;
                        }
                        RetrEvent::Refused(e) => panic!("refused: {e}"),
                        _ => {}
                    },
                    other => panic!("{other:?}"),
                }
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(expected.next(), None);
        }
        assert!(pipeline.is_empty());
        assert_eq!((ended, bytes), (MESSAGES, octets()));
        pop.quit().await.unwrap();
    });
    server.finish().unwrap()
}

#[test]
fn blocking_pipeline_takes_a_turn_per_two_batches() {
    let turns = blocking_pipeline_session();
    check(&turns, &pipeline_expected(), pipeline_expected().len());
}

#[test]
fn async_pipeline_takes_a_turn_per_two_batches() {
    let turns = async_pipeline_session();
    check(&turns, &pipeline_expected(), pipeline_expected().len());
}
