//! Helpers for the adapter's tests; the servers are the test kit's (`ScriptedServer` for
//! byte-exact transcripts, `MailboxServer` where a test needs state).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use pop3_async::Options;
use pop3_tests::{CertSpec, Script, ScriptedServer, TestCa, Transcript};

/// Options for tests: short timeout, passwords allowed in the clear.
pub fn options() -> Options {
    let mut options = Options::default();
    options.timeout = Duration::from_secs(10);
    options.config.allow_plaintext_auth = true;
    options.login.allow_plaintext = true;
    options
}

/// The kit's scripted server for one cleartext connection of `script` (its text form).
pub fn serve(script: &str) -> ScriptedServer {
    serve_script(Script::parse(script).unwrap())
}

/// The kit's scripted server for one cleartext connection of `script`.
pub fn serve_script(script: Script) -> ScriptedServer {
    ScriptedServer::start(script).unwrap()
}

/// Waits (without blocking the runtime) for the server's connection to end; the client must
/// have followed the whole script.
pub async fn complete(server: ScriptedServer) -> Transcript {
    let transcript = server.finish_async().await.unwrap();
    transcript.assert_complete();
    transcript
}

/// Dot-stuffs a CRLF message and appends the terminator (the kit's `multiline_body`).
pub fn multiline(message: &[u8]) -> Vec<u8> {
    pop3_tests::multiline_body(message)
}

/// A deterministic CRLF message of about `size` octets, with lines starting with dots.
pub fn message(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out =
        format!("From: user{seed}@example.com\r\nSubject: message {seed}\r\n\r\n").into_bytes();
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        if x % 7 == 0 {
            out.push(b'.');
        }
        for i in 0..len {
            out.push(b'!' + ((x >> (i % 56)) as u8 % 90));
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A self-signed certificate for `localhost` only (not 127.0.0.1).
pub fn localhost_ca() -> TestCa {
    TestCa::generate_with(&CertSpec::new().names(&["localhost"])).unwrap()
}
