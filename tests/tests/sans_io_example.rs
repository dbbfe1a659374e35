//! Runs pop3-proto's `tcp_run_loop` example (the sans-IO loop over a real `TcpStream`) against
//! the kit's in-memory server, so the loop the docs point to is known to work on a socket.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../pop3-proto/examples/tcp_run_loop.rs"]
mod example;

use pop3_tests::{MailboxServer, generate_mail};

#[test]
fn the_example_fetches_every_message_over_tcp() {
    // An empty message and a dot-stuffed line among ordinary ones.
    let mut messages = generate_mail(40, 3000, 7);
    messages.insert(3, Vec::new());
    messages.push(b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n".to_vec());
    let server = MailboxServer::builder(messages.clone())
        .credentials("ann", "pw")
        .start()
        .unwrap();
    let got = example::fetch_all(&server.addr().to_string(), "ann", "pw").unwrap();
    assert_eq!(got.len(), messages.len());
    for (i, (got, want)) in got.iter().zip(&server.messages()).enumerate() {
        assert!(got == want, "message {} differs", i + 1);
    }
}

#[test]
fn the_example_reports_a_refused_login() {
    let server = MailboxServer::builder(generate_mail(2, 100, 1))
        .credentials("ann", "pw")
        .start()
        .unwrap();
    match example::fetch_all(&server.addr().to_string(), "ann", "wrong") {
        Err(example::Failure::Refused(_)) => {}
        other => panic!("{other:?}"),
    }
}
