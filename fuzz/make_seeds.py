#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from the transcript tests.

The server (S:) bytes of every transcript in pop3-proto/tests/rfc_examples.rs become seeds for
the status_line, body and client targets (behind each target's header), the client (C:) lines
become seeds for the command target, and the AUTH exchanges (plus the RFC 7677 SCRAM example
and the RFC 2195 CRAM-MD5 example) seeds for the sasl target. A few complete sessions matching
the client target's scripts are added so that it starts deep.

Run from anywhere: python3 fuzz/make_seeds.py. Existing seed-* files are replaced; other files
in the corpus directories (found by fuzzing, minimized with cargo fuzz cmin) are left alone.
"""

import base64
import hashlib
import pathlib
import re

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
TRANSCRIPTS = ROOT / "pop3-proto" / "tests" / "rfc_examples.rs"


def unescape(text):
    """The transcript escapes: \\r \\n \\xNN \\\\; CRLF appended unless the line ends in \\."""
    out = bytearray()
    i = 0
    crlf = True
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 == len(text):
                crlf = False
                i += 1
                continue
            n = text[i + 1]
            if n == "r":
                out += b"\r"
            elif n == "n":
                out += b"\n"
            elif n == "\\":
                out += b"\\"
            elif n == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 2
            i += 2
        else:
            out += c.encode()
            i += 1
    if crlf:
        out += b"\r\n"
    return bytes(out)


def transcripts():
    """(name, server bytes, client lines) for every raw-string transcript."""
    src = TRANSCRIPTS.read_text()
    out = []
    for m in re.finditer(r'fn (\w+)\(\)|r"(.*?)"', src, re.S):
        if m.group(1):
            name = m.group(1)
            continue
        body = m.group(2)
        if "S:" not in body:
            continue
        server = bytearray()
        client = []
        for raw in body.splitlines():
            line = raw.lstrip(" ")
            if line.startswith("S:"):
                server += unescape(line[3:] if line.startswith("S: ") else line[2:])
            elif line.startswith("C:"):
                client.append(unescape(line[3:] if line.startswith("C: ") else line[2:]))
        out.append((name, bytes(server), client))
    return out


def write(target, name, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def b64(b):
    return base64.b64encode(b).decode()


# The client target's complete sessions, one per scenario (see fuzz_targets/client.rs).
LISTING = (
    "+OK 2 320\r\n"
    "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
    "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"
    "+OK 120 octets\r\nSubject: hi\r\n\r\n..stuffed\r\nbody\r\n.\r\n"
    "+OK\r\nSubject: hi\r\n\r\n.\r\n"
    "+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN SCRAM-SHA-256\r\nRESP-CODES\r\nPIPELINING\r\n"
    "LOGIN-DELAY 900 USER\r\nEXPIRE NEVER\r\nIMPLEMENTATION x y\r\nUTF8 USER\r\nLANG\r\n.\r\n"
    "+OK 1 120\r\n"
    "+OK 2 QhdPYR:00WBw1Ph7x7\r\n"
    "+OK\r\nen English\r\nde Deutsch\r\n.\r\n"
    "+OK\r\n"
    "+OK message 1 deleted\r\n"
    "-ERR [SYS/TEMP] try later\r\n"
    "+OK bye\r\n"
)
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
SESSIONS = {
    0: "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n+OK\r\n+OK maildrop locked\r\n" + LISTING,
    1: "+OK ready\r\n+OK Begin TLS negotiation\r\n+OK\r\n+OK\r\n+OK 1 5\r\n+OK\r\nhi\r\n.\r\n+OK bye\r\n",
    2: "+OK ready\r\n+OK Maildrop locked and ready\r\n+OK 2 320\r\n+OK\r\n1 120\r\n.\r\n+OK\r\nx\r\n.\r\n+OK\r\n",
    3: f"+OK ready\r\n+ {b64(SERVER_FIRST)}\r\n+ {b64(SERVER_FINAL)}\r\n+OK\r\n"
    "+OK\r\n1 abc\r\n.\r\n+OK\r\nSubject: x\r\n\r\n.\r\n+OK bye\r\n",
    4: "+OK ready <1.2@x>\r\n+OK UTF8 enabled\r\n+OK [UTF8] language changed\r\n+OK\r\n+OK 1 3\r\n"
    "+OK\r\n..\r\n.\r\n+OK\r\n+OK\r\n",
}


def client_header(scenario, flags=0, chunk=0, window=0, limits=bytes(7)):
    return bytes([flags, scenario, chunk, window]) + limits + bytes(5)


def command_seed(line):
    """A command-target input for a client line: fields separated by 0xFF."""
    text = line.rstrip(b"\r\n")
    kw, _, rest = text.partition(b" ")
    if kw in (b"USER", b"PASS", b"RPOP"):
        fields = [kw, rest]
    elif kw == b"AUTH":
        mech, _, ir = rest.partition(b" ")
        fields = [kw, mech]
        if mech == b"PLAIN" and ir:
            fields += base64.b64decode(ir).split(b"\0")
    elif rest:
        fields = [kw] + rest.split(b" ")
    else:
        fields = [kw]
    return b"\xff".join(fields)


def main():
    for f in (FUZZ / "corpus").glob("*/seed-*"):
        f.unlink()
    for name, server, client in transcripts():
        write("status_line", name, bytes(4) + server)
        write("status_line", name + "-codes", b"\x01\x00\x00\x00" + server)
        write("body", name, bytes(8) + server)
        write("body", name + "-lf-cr-limit", bytes([7, 3, 40, 0]) + bytes(4) + server)
        for scenario in range(5):
            write("client", f"{name}-{scenario}", client_header(scenario) + server)
        for line in client:
            if not line.strip():
                continue
            # Transaction commands need a login first (flag 8); plaintext allowed (2), timestamp (4).
            kw = line.split(b" ")[0].rstrip(b"\r\n")
            logged_in = 8 if kw not in (b"USER", b"PASS", b"APOP", b"AUTH", b"STLS", b"CAPA", b"QUIT", b"UTF8", b"LANG") else 0
            data = bytes([2 | 4 | logged_in]) + command_seed(line)
            write("command", hashlib.sha1(data).hexdigest()[:12], data)
    for scenario, session in SESSIONS.items():
        s = session.encode()
        # Whole, except STLS: the reply after +OK in the same read is an injection (refused).
        write("client", f"session-{scenario}", client_header(scenario, chunk=1 if scenario == 1 else 0) + s)
        write("client", f"session-{scenario}-bytewise-capa", client_header(scenario, flags=4, chunk=1) + s)
        write("client", f"session-{scenario}-small", client_header(scenario, flags=16 | 128, chunk=9, window=3,
                                                                      limits=bytes([60, 40, 30, 5, 30, 3, 20])) + s)
        write("body", f"session-{scenario}", bytes(8) + s)
        write("status_line", f"session-{scenario}", bytes(4) + s)
    # Commands not in the transcripts.
    for i, fields in enumerate([
        [b"LANG", b"*"], [b"UTF8"], [b"RPOP", b"mrose"], [b"TOP", b"1", b"0"],
        [b"AUTH", b"SCRAM-SHA-256", b"user", b"pencil", b"rOprNGfwEbeRWgbNEkqO"],
        [b"AUTH", b"OAUTHBEARER", b"user@example.com", b"server.example.com", b"143", b"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="],
        [b"AUTH", b"XOAUTH2", b"someuser@example.com", b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"],
        [b"AUTH", b"CRAM-MD5", b"tim", b"tanstaaftanstaaf"], [b"AUTH", b"X-CUSTOM", b""],
        [b"USER", b"a\r\nDELE 1"], [b"APOP", b"mrose", b"tanstaaf"], [b"RETR", b"0"], [b"LIST", b"4294967295"],
    ]):
        for flags in (2 | 4, 8 | 2 | 4, 1):
            write("command", f"extra-{i}-{flags}", bytes([flags]) + b"\xff".join(fields))
    # SASL: selector low bits = mechanism/mode, 8 = send the initial response, high bits = mode.
    sasl = {
        "plain": (0 | 8, [b"tim", b"tanstaaftanstaaf", b"", b""]),
        "login": (1, [b"tim", b"secret", b"", b"Username:", b"Password:", b"again"]),
        "cram-md5": (2, [b"tim", b"tanstaaftanstaaf", b"", b"<1896.697170952@postoffice.reston.mci.net>", b"x"]),
        "xoauth2": (3 | 8, [b"someuser@example.com", b"ya29.token", b"",
                           b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}', b"again"]),
        "oauthbearer": (4 | 8, [b"user@example.com", b"token", b"server.example.com", b'{"status":"invalid_token"}']),
        "scram-rfc7677": (5 | 8, [b"user", b"pencil", b"rOprNGfwEbeRWgbNEkqO", SERVER_FIRST, SERVER_FINAL, b"x"]),
        "scram-wait": (5, [b"user", b"pencil", b"rOprNGfwEbeRWgbNEkqO", b"", SERVER_FIRST, b"e=invalid-proof"]),
        "foobar-transcript": (2, [b"user", b"pw", b"", b"hello", b""]),
    }
    for mode in range(8):
        for via in (6, 7):
            sasl[f"scram-structured-{via}-{mode}"] = (
                via | (mode << 4),
                [b"user", b"pencil", b"rOprNGfwEbeRWgbNEkqO", b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", b"salt!", b"\x03", b"", b"\x05"],
            )
    for name, (sel, fields) in sasl.items():
        write("sasl", name, bytes([sel]) + b"\xff".join(fields))


if __name__ == "__main__":
    main()
