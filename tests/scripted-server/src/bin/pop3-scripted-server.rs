//! `pop3-scripted-server SCRIPT`: the kit's scripted server as a program, for test suites that
//! are not in Rust (the Python package's pytest suite). It plays the `C:`/`S:` script in the
//! file SCRIPT (the format of [`Script::parse`]) to one connection on 127.0.0.1, printing the
//! port on the first line of stdout as soon as it listens. When the connection ends it prints
//! `complete` and exits 0, or prints the mismatch (what the script expected, what the client
//! sent) on stderr and exits 1; 2 for a usage or setup error.

use std::io::Write;
use std::process::ExitCode;

use pop3_scripted_server::{Script, ScriptedServer};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: pop3-scripted-server SCRIPT");
        return ExitCode::from(2);
    };
    let script = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| Script::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(script) => script,
        Err(e) => {
            eprintln!("pop3-scripted-server: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match ScriptedServer::start(script) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("pop3-scripted-server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", server.port())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    match server.finish() {
        Ok(transcript) if transcript.is_complete() => {
            let _ = writeln!(out, "complete");
            ExitCode::SUCCESS
        }
        Ok(transcript) => {
            let why = transcript
                .mismatch()
                .map(|m| format!("{m:?}"))
                .or_else(|| transcript.failure().map(str::to_owned))
                .unwrap_or_else(|| "the script did not complete".to_owned());
            eprintln!("pop3-scripted-server: {why}");
            eprintln!(
                "pop3-scripted-server: the client sent: {:?}",
                transcript.received_str()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("pop3-scripted-server: {e}");
            ExitCode::from(2)
        }
    }
}
