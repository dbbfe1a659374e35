"""pop3._core, the sans-IO core, driven without any socket."""

import threading

import pytest

from pop3 import _core

GREETING = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
SESSION = [
    (b"", GREETING),
    (b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", b"+OK mrose's maildrop has 2 messages\r\n"),
    (b"RETR 1\r\n", b"+OK 120 octets\r\nSubject: x\r\n\r\n..hi\r\n.\r\n"),
    (b"QUIT\r\n", b"+OK dewey POP3 server signing off\r\n"),
]


def play(split):
    """The RFC 1939 example session, the server's bytes fed `split` octets at a time."""
    c = _core.Client(auto_capa=False, allow_plaintext_auth=True)
    events, wire = [], b""
    for i, (expected, reply) in enumerate(SESSION):
        if i == 1:
            c.apop("mrose", b"tanstaaf")
        elif i == 2:
            c.retr(1)
        elif i == 3:
            c.quit()
        sent = c.poll_transmit()
        assert sent == expected
        wire += sent
        for k in range(0, len(reply), split):
            c.receive_data(reply[k : k + split])
            while (ev := c.poll_event()) is not None:
                events.append(ev)
    return c, events


@pytest.mark.parametrize("split", [1, 2, 3, 7, 1000])
def test_rfc1939_session_at_any_split(split):
    c, events = play(split)
    body = b"".join(e.chunk for e in events if e.kind == "body")
    assert body == b"Subject: x\r\n\r\n.hi\r\n"
    kinds = [e.kind for e in events if e.kind != "body"]
    assert kinds == ["greeting", "logged_in", "ok", "body_end", "ok", "ok"]
    assert [e.terminal for e in events if e.kind in ("ok", "logged_in")] == [False, True, True, True]
    assert events[0].apop and c.phase == "closed"


def test_usage_errors_send_nothing():
    c = _core.Client()
    c.receive_data(b"+OK hi\r\n")
    while c.poll_event() is not None:
        pass
    with pytest.raises(_core.UsageError):
        c.user("a\r\nDELE 1")
    with pytest.raises(_core.UsageError):  # no TLS, plaintext not allowed
        c.pass_(b"secret")
    with pytest.raises(_core.UsageError):  # wrong phase
        c.retr(1)
    assert c.poll_transmit() == b"CAPA\r\n"


def test_protocol_error_is_sticky():
    c = _core.Client(auto_capa=False)
    c.receive_data(b"HELLO\r\n")
    for _ in range(2):
        with pytest.raises(_core.ProtocolError):
            c.poll_event()
    assert c.error


def test_relaxed_apop_timestamp_is_opt_in():
    for relaxed in (False, True):
        c = _core.Client(auto_capa=False, allow_plaintext_auth=True, relaxed_apop_timestamp=relaxed)
        c.receive_data(b"+OK dummy pop3 server ready. <timestamp>\r\n")
        assert c.poll_event().apop is relaxed
    assert _core.greeting_timestamp(b"+OK <timestamp>") is None
    assert _core.greeting_timestamp(b"+OK <timestamp>", relaxed=True) == b"<timestamp>"
    assert _core.greeting_timestamp(b"+OK <time\x01stamp>", relaxed=True) is None


def test_body_decoder_keeps_what_follows_the_terminator():
    d = _core.BodyDecoder()
    data = b"a\r\n..b\r\n.\r\n+OK next\r\n"
    out = []
    for k in range(len(data)):  # one octet at a time: the carry across calls
        chunk, used, done = d.decode(data[k : k + 1])
        out.append(chunk)
        if done:
            break
    assert b"".join(out) == b"a\r\n.b\r\n" and data[k + 1 :] == b"+OK next\r\n"
    chunk, used, done = _core.BodyDecoder().decode(data)
    assert (chunk, data[used:], done) == (b"a\r\n.b\r\n", b"+OK next\r\n", True)


def test_a_client_may_move_to_another_thread():
    c = _core.Client()
    errors = []

    def use():
        try:
            c.receive_data(b"+OK hi\r\n")
            assert c.poll_event().kind == "greeting"
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert not errors and c.phase == "authorization"


def _stuff(body):
    """What a server sends for `body` (CRLF lines): dots doubled at line starts, then the
    terminator."""
    lines = body.split(b"\r\n")[:-1]
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"


def test_body_decoder_at_random_splits():
    import random

    rng = random.Random(14)
    alphabet = [b".", b"\r", b"\n", b"\r\n", b"a", b"..", b".\r\n"]
    for _ in range(300):
        lines = [b"".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(rng.randrange(5))]
        # A line of the body holds no CRLF (bare CR and LF are fine).
        lines = [l.replace(b"\r\n", b"\r_\n") for l in lines]
        lines = [l[:-1] + b"_" if l.endswith(b"\r") else l for l in lines]
        body = b"".join(l + b"\r\n" for l in lines)
        wire = _stuff(body) + b"+OK after"
        d = _core.BodyDecoder()
        out, pos = [], 0
        while True:
            step = rng.randrange(1, 8)
            chunk, used, done = d.decode(wire[pos : pos + step])
            out.append(chunk)
            pos += used
            if done:
                break
            assert used == len(wire[pos - used : pos])
        assert b"".join(out) == body and wire[pos:] == b"+OK after" and d.octets == len(body)


def test_server_enforces_phases_and_extension_commands():
    # Off by default: STAT before login is the caller's mistake. On: the server judges.
    c = _core.Client(auto_capa=False)
    c.receive_data(b"+OK hi\r\n")
    assert c.poll_event().kind == "greeting"
    with pytest.raises(_core.UsageError, match="not allowed in the AUTHORIZATION phase"):
        c.stat()
    c = _core.Client(auto_capa=False, server_enforces_phases=True, trace=True)
    c.receive_data(b"+OK hi\r\n")
    while c.poll_event() is not None:
        pass
    c.stat()
    assert c.poll_transmit() == b"STAT\r\n"
    c.receive_data(b"-ERR log in first\r\n")
    kinds = []
    while (ev := c.poll_event()) is not None:
        kinds.append((ev.kind, ev.text))
    assert kinds == [("trace", "C: STAT"), ("trace", "S: -ERR log in first"), ("err", "log in first")]
    c.extension("XLIST 1", True)
    assert c.poll_transmit() == b"XLIST 1\r\n"
    c.receive_data(b"+OK\r\na\r\n..b\r\n.\r\n")
    body = b""
    while (ev := c.poll_event()) is not None:
        if ev.kind == "body":
            body += ev.chunk
        last = ev
    assert body == b"a\r\n.b\r\n" and last.kind == "ok" and last.terminal
    for refused in ("PASS x", "stls", "X\r\nDELE 1"):
        with pytest.raises(_core.UsageError):
            c.extension(refused)



def _drain_lines(c):
    seen = []
    while (ev := c.poll_event()) is not None:
        assert ev.kind != "trace"
        seen.append((ev.kind, ev.line))
    return seen


def _feed(c, data, split):
    seen = []
    for k in range(0, len(data), split):
        c.receive_data(data[k : k + split])
        seen += _drain_lines(c)
    return seen


@pytest.mark.parametrize("split", [1, 2, 5, 1000])
def test_event_line_is_its_own_replys_status_line(split):
    # Tracing off. Each status event carries its own reply's line byte for byte (spacing, a
    # lower-case code, bytes that are not UTF-8); pipelined replies in one burst each keep
    # theirs (the Ok after a body its body's +OK line); the other events carry none.
    c = _core.Client(auto_capa=False, allow_plaintext_auth=True, pipelining="always")
    seen = _feed(c, b"+OK  hi \xe9\r\n", split)
    c.user("u")
    assert c.poll_transmit() == b"USER u\r\n"
    seen += _feed(c, b"+OK [in-use]  in \r\n", split)
    c.pass_(b"p")
    assert c.poll_transmit() == b"PASS p\r\n"
    seen += _feed(c, b"+OK  logged\r\n", split)
    c.retr(1)
    c.dele(1)
    c.noop()
    assert c.poll_transmit() == b"RETR 1\r\nDELE 1\r\nNOOP\r\n"
    burst = b"+OK 120  octets\r\na\r\n..b\r\n.\r\n-ERR [in-use]   locked \r\n+OK\r\n"
    seen += _feed(c, burst, split)
    assert [s for s in seen if s[0] != "body"] == [
        ("greeting", b"+OK  hi \xe9"),
        ("ok", b"+OK [in-use]  in "),
        ("logged_in", None),
        ("ok", b"+OK  logged"),
        ("body_end", None),
        ("ok", b"+OK 120  octets"),
        ("err", b"-ERR [in-use]   locked "),
        ("ok", b"+OK"),
    ]
    # The +OK to STLS: its event (no text of its own) has the line too.
    c = _core.Client(auto_capa=False)
    seen = _feed(c, b"+OK hi\r\n", split)
    c.stls()
    assert c.poll_transmit() == b"STLS\r\n"
    seen += _feed(c, b"+OK  Begin   TLS\r\n", split)
    assert seen == [("greeting", b"+OK hi"), ("starttls", b"+OK  Begin   TLS")]
