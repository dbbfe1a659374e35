//! Nothing a server sends reaches the terminal raw: greetings, `-ERR` texts, capability lines,
//! UIDs and the `-v` trace show control characters escaped; `retr`/`top` to stdout stay
//! byte-exact.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use pop3_scripted_server::{Script, ScriptedServer, Transcript};

const LOGIN: &str = r"
S: +OK ready
C: CAPA
S-RAW: +OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n
C: USER alice
S: +OK
C: PASS secret-a
S: +OK logged in
C: CAPA
S-RAW: +OK\r\nUIDL\r\nTOP\r\n.\r\n
";

/// An evil capability list: CSI, OSC (window title), C1 CSI (U+009B) and a bidi override.
const EVIL_CAPA: &str = r"S-RAW: +OK\r\nTOP\r\nX-EVIL \x1b[31mred\x1b[0m\r\nX-TITLE \x1b]0;pwned\x07\r\nX-C1 \xc2\x9b2J\r\nX-BIDI a\xe2\x80\xaeb\r\n.\r\n";

/// `pop3 GLOBAL... ARGS` against a scripted server (no login unless the script has one).
fn scripted(script: &str, extra: &[&str], rest: &[&str]) -> (Run, Transcript) {
    let server = ScriptedServer::start(Script::parse(script).unwrap()).unwrap();
    let mut args = plain_args(server.port());
    args.extend(["--auth".to_owned(), "user".to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let r = run_with(&args, rest);
    (r, server.finish().unwrap())
}

/// No ESC, BEL or C1 control in `bytes`.
#[track_caller]
fn assert_no_raw_controls(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && (c.is_control() || c == '\u{202e}'))
        .collect();
    assert!(raw.is_empty(), "raw {raw:?} in {text:?}");
}

#[test]
fn a_refused_greeting_is_escaped() {
    let (r, _) = scripted(
        r"S-RAW: -ERR \x1b[2J\x1b]0;pwned\x07go away\r\n",
        &[],
        &["capa"],
    );
    r.expect_code(1);
    assert_no_raw_controls(r.stderr.as_bytes());
    assert!(
        r.stderr.contains(r"\x1b[2J\x1b]0;pwned\x07go away"),
        "{}",
        r.stderr
    );
}

#[test]
fn capability_lines_are_escaped_in_text_and_exact_in_json() {
    let script = format!("S: +OK ready\nC: CAPA\n{EVIL_CAPA}\nC: QUIT\nS: +OK bye\n");
    let (r, t) = scripted(&script, &[], &["capa"]);
    r.expect_code(0);
    t.assert_complete();
    assert_no_raw_controls(&r.stdout);
    assert_eq!(
        r.stdout_str(),
        "TOP\nX-EVIL \\x1b[31mred\\x1b[0m\nX-TITLE \\x1b]0;pwned\\x07\nX-C1 \\u{9b}2J\nX-BIDI a\\u{202e}b\n"
    );

    let (r, t) = scripted(&script, &["--json"], &["capa"]);
    r.expect_code(0);
    t.assert_complete();
    assert_no_raw_controls(&r.stdout);
    let json = r.json();
    let lines: Vec<&str> = json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "TOP",
            "X-EVIL \u{1b}[31mred\u{1b}[0m",
            "X-TITLE \u{1b}]0;pwned\u{7}",
            "X-C1 \u{9b}2J",
            "X-BIDI a\u{202e}b"
        ]
    );
}

#[test]
fn the_verbose_trace_is_escaped() {
    let script = format!(
        "S-RAW: +OK \\x1b]0;pwned\\x07ready \\x1b[31mnow \\xc2\\x9b2J a\\xe2\\x80\\xaeb\\r\\n\nC: CAPA\n{EVIL_CAPA}\nC: QUIT\nS-RAW: +OK \\x1b[8mbye\\r\\n\n"
    );
    let (r, t) = scripted(&script, &["-v"], &["capa"]);
    r.expect_code(0);
    t.assert_complete();
    assert_no_raw_controls(r.stderr.as_bytes());
    assert!(
        r.stderr
            .contains(r"S: +OK \x1b]0;pwned\x07ready \x1b[31mnow \u{9b}2J a\u{202e}b"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(r"S: +OK \x1b[8mbye"), "{}", r.stderr);
}

#[test]
fn err_texts_are_escaped() {
    let script = format!(
        "{LOGIN}C: UIDL 9\nS-RAW: -ERR \\x1b[31mno such message\\x1b[0m\\r\\n\nC: QUIT\nS: +OK bye\n"
    );
    let (r, t) = scripted(&script, &[], &["uidl", "9"]);
    r.expect_code(1);
    t.assert_complete();
    assert_no_raw_controls(r.stderr.as_bytes());
    assert!(
        r.stderr.contains(r"\x1b[31mno such message\x1b[0m"),
        "{}",
        r.stderr
    );
}

#[test]
fn uids_with_control_characters_never_reach_the_terminal_raw() {
    // Whether the library accepts such a UID or refuses the listing (it does: "invalid octet
    // 0x1b"), the terminal sees no raw control.
    let script =
        format!("{LOGIN}C: UIDL\nS-RAW: +OK\\r\\n1 a\\x1b[2Jb\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n");
    let (r, _) = scripted(&script, &[], &["uidl"]);
    assert_no_raw_controls(&r.stdout);
    assert_no_raw_controls(r.stderr.as_bytes());
    let shown = format!("{}{}", r.stdout_str(), r.stderr);
    assert!(
        shown.contains(r"\x1b[2J") || shown.contains("0x1b"),
        "{shown}"
    );
}

#[test]
fn retr_and_top_to_stdout_stay_byte_exact() {
    let script = format!(
        "{LOGIN}C: RETR 1\nS-RAW: +OK\\r\\nSubject: \\x1b[31mx\\r\\n\\r\\n\\x07body\\r\\n.\\r\\n\nC: QUIT\nS: +OK bye\n"
    );
    let (r, t) = scripted(&script, &[], &["retr", "1"]);
    r.expect_code(0);
    t.assert_complete();
    assert_eq!(r.stdout, b"Subject: \x1b[31mx\r\n\r\n\x07body\r\n");
}
