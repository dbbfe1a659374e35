"""The pop3 package against the scripted server: byte-exact transcripts."""

import asyncio
import io
import socket

import pytest

import pop3
import pop3.poplib
from scripted import ScriptedServer

CAPA = """
C: CAPA
S: +OK
S: USER
S: UIDL
S: TOP
S: PIPELINING
S: RESP-CODES
S: .
"""


def connect(server, **kw):
    return pop3.Client("127.0.0.1", server.port, tls="none", allow_plaintext=True, timeout=5, **kw)


def test_login_stat_list_uidl_retr_top():
    t = (
        "S: +OK ready\n"
        + CAPA
        + r"""
        C: USER alice
        S: +OK
        C: PASS s3cr et
        S: +OK logged in
        C: CAPA
        S: +OK
        S: UIDL
        S: .
        C: STAT
        S: +OK 2 320
        C: LIST
        S: +OK
        S: 1 120
        S: 2 200
        S: .
        C: UIDL 2
        S: +OK 2 uid-two
        C: RETR 1
        S: +OK 120 octets
        S: Subject: x
        S:
        S: ..dot line
        S: .
        C: TOP 2 0
        S: +OK
        S: Subject: y
        S: .
        C: QUIT
        S: +OK bye
        """
    )
    with ScriptedServer(t) as server:
        with connect(server) as c:
            assert c.capabilities.pipelining and c.capabilities.top
            assert c.login("alice", "s3cr et") == "USER"
            assert c.stat() == (2, 320)
            assert c.list() == {1: 120, 2: 200}
            assert c.uidl(2) == "uid-two"
            assert c.retr(1) == b"Subject: x\r\n\r\n.dot line\r\n"
            assert c.top(2, 0) == b"Subject: y\r\n"


def test_retr_many_is_pipelined_and_streams_into_files():
    t = "S: +OK ready\n" + CAPA + r"""
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        PIPELINED
        C: CAPA
        C: RETR 1
        C: RETR 2
        C: RETR 3
        S: +OK
        S: PIPELINING
        S: .
        S: +OK
        S: one
        S: .
        S: -ERR [SYS/TEMP] try later
        S: +OK
        S: three
        S: .
        CLOSE
        """
    with ScriptedServer(t) as server:
        c = connect(server)
        c.login("u", "p")
        files = {}

        def sink(msg):
            files[msg] = io.BytesIO()
            return files[msg]

        got = c.retr_many([1, 2, 3], sink)
        assert got[1] == 5 and got[3] == 7
        assert isinstance(got[2], pop3.ServerError)
        assert got[2].code == "SYS/TEMP" and got[2].is_transient
        assert files[1].getvalue() == b"one\r\n" and files[3].getvalue() == b"three\r\n"
        c.close()


def test_err_carries_the_response_code():
    t = "S: +OK ready\n" + CAPA + r"""
        C: USER u
        S: +OK
        C: PASS p
        S: -ERR [IN-USE] mailbox locked
        """
    with ScriptedServer(t) as server:
        c = connect(server)
        with pytest.raises(pop3.ServerError) as e:
            c.login("u", "p")
        assert (e.value.command, e.value.code, e.value.text) == ("PASS", "IN-USE", "mailbox locked")
        c.close()


def test_no_login_in_the_clear_unless_allowed():
    t = "S: +OK ready\n" + CAPA
    with ScriptedServer(t) as server:
        c = pop3.Client("127.0.0.1", server.port, tls="none", timeout=5)
        with pytest.raises(pop3.UsageError):
            c.login("u", "p")
        c.close()


def test_unterminated_body_then_eof_is_a_protocol_error():
    t = "S: +OK ready\n" + CAPA + r"""
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: CAPA
        S: +OK
        S: .
        C: RETR 1
        S: +OK
        S: half a message
        CLOSE
        """
    with ScriptedServer(t) as server:
        c = connect(server)
        c.login("u", "p")
        with pytest.raises(pop3.ProtocolError):
            c.retr(1)
        assert c.sock is None


def test_async_client():
    t = "S: +OK ready\n" + CAPA + r"""
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        PIPELINED
        C: CAPA
        C: RETR 1
        C: RETR 2
        S: +OK
        S: PIPELINING
        S: .
        S: +OK
        S: a
        S: .
        S: +OK
        S: ..b
        S: .
        C: QUIT
        S: +OK
        """

    async def run(port):
        c = await pop3.AsyncClient.connect(
            "127.0.0.1", port, tls="none", allow_plaintext=True, timeout=5
        )
        async with c:
            assert await c.login("u", "p") == "USER"
            got = await c.retr_many([1, 2])
            assert got == {1: b"a\r\n", 2: b".b\r\n"}

    with ScriptedServer(t) as server:
        asyncio.run(run(server.port))


# ---- pop3.poplib: the differences where the standard module is unsafe ----


def test_poplib_refuses_crlf_in_arguments():
    t = r"""
        S: +OK ready
        C: USER alice
        S: +OK
        C: QUIT
        S: +OK bye
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        for bad in ("x\r\nDELE 1", "x\nDELE 1", "x\x00"):
            with pytest.raises(pop3.poplib.error_proto):
                p.user(bad)
            with pytest.raises(ValueError):
                p.retr(bad)
        assert p.user("alice") == b"+OK"
        assert p.quit() == b"+OK bye"


def test_poplib_apop_refuses_a_non_printable_timestamp():
    t = "S: +OK ready <\\x01\\x02abc@x>\nC: QUIT\nS: +OK bye\n"
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        with pytest.raises(pop3.poplib.error_proto):
            p.apop("u", "secret")
        p.quit()


def test_poplib_apop_digest():
    # The RFC 1939 example.
    t = r"""
        S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
        C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
        S: +OK maildrop has 1 message
        C: QUIT
        S: +OK
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert p.apop("mrose", "tanstaaf") == b"+OK maildrop has 1 message"
        p.quit()


def test_poplib_dot_lf_does_not_end_a_message():
    # A body line "." LF inside a CRLF message: the standard module ends the message there
    # and reads "+OK forged" as the reply to the next command.
    t = r"""
        S: +OK ready
        C: RETR 1
        S: +OK
        S+ a\n.\n+OK forged\r\n
        S: ..b
        S: .
        C: NOOP
        S: +OK real
        C: QUIT
        S: +OK
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        resp, lines, octets = p.retr(1)
        assert (resp, lines) == (b"+OK", [b"a", b".", b"+OK forged", b".b"])
        assert octets == len(b"a\n.\n+OK forged\r\n.b\r\n")
        assert p.noop() == b"+OK real"
        p.quit()


def test_poplib_returns_what_the_standard_module_returns():
    import poplib as std

    t = r"""
        S: +OK ready
        C: USER u
        S: +OK
        C: PASS p
        S: +OK
        C: STAT
        S: +OK 2 30
        C: LIST
        S: +OK 2 messages
        S: 1 10
        S: 2 20
        S: .
        C: RETR 2
        S: +OK
        S: ..x
        S:
        S: y
        S: .
        C: CAPA
        S: +OK
        S: IMPLEMENTATION a b
        S: TOP
        S: .
        C: QUIT
        S: +OK bye
        """
    results = []
    for module in (std, pop3.poplib):
        with ScriptedServer(t) as server:
            p = module.POP3("127.0.0.1", server.port, timeout=5)
            results.append(
                [p.getwelcome(), p.user("u"), p.pass_("p"), p.stat(), p.list(), p.retr(2), p.capa(), p.quit(), p.sock, p.file]
            )
    assert results[0] == results[1]


def test_poplib_response_lines_are_exact_without_tracing(monkeypatch):
    # Every response is the server's status line byte for byte (odd spacing, a response code
    # in lower case, bytes that are not UTF-8), taken from the core's events with tracing
    # off: poplib does not ask for it, and works with it forced off.
    made = []
    real = pop3.poplib._core.Client

    def untraced(**kw):
        made.append(kw)
        return real(**{**kw, "trace": False})

    monkeypatch.setattr(pop3.poplib._core, "Client", untraced)
    t = r"""
        S+ +OK   dummy  server \xe9 ready <1.2@x>  \r\n
        C: USER alice
        S+ +OK  \r\n
        C: PASS p
        S+ +OK [in-use]?  no,   in\r\n
        C: STAT
        S: +OK 1 5
        C: RETR 1
        S+ +OK 5  octets \xff\r\nabc\r\n.\r\n
        C: DELE 1
        S+ -ERR [in-use]   locked \r\n
        C: QUIT
        S+ +OK  bye  \r\n
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert p.getwelcome() == b"+OK   dummy  server \xe9 ready <1.2@x>  "
        assert p.user("alice") == b"+OK  "
        assert p.pass_("p") == b"+OK [in-use]?  no,   in"
        assert p.stat() == (1, 5)
        assert p.retr(1) == (b"+OK 5  octets \xff", [b"abc"], 5)
        with pytest.raises(pop3.poplib.error_proto) as e:
            p.dele(1)
        assert e.value.args == (b"-ERR [in-use]   locked ",)
        assert p.quit() == b"+OK  bye  "
    assert made and not any(kw.get("trace") for kw in made)


def test_poplib_timeout_zero_and_audit_events():
    t = "S: +OK ready\nC: NOOP\nS: +OK\nC: QUIT\nS: +OK\n"
    with pytest.raises(ValueError):
        pop3.poplib.POP3("127.0.0.1", 9, timeout=0)
    seen = []
    import sys

    def hook(event, args):
        if event.startswith("poplib."):
            seen.append((event, args[1:]))

    sys.addaudithook(hook)
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        p.noop()
        p.quit()
        assert seen[-3:] == [
            ("poplib.connect", ("127.0.0.1", server.port)),
            ("poplib.putline", (b"NOOP",)),
            ("poplib.putline", (b"QUIT",)),
        ]


def test_poplib_stls_injection_is_refused():
    t = r"""
        S: +OK ready
        C: CAPA
        S: +OK
        S: STLS
        S: .
        C: STLS
        S+ +OK begin TLS\r\n+OK forged\r\n
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        with pytest.raises(pop3.poplib.error_proto, match="injection"):
            p.stls()
        assert p.sock is None and p.file is None


def test_a_socket_of_your_own():
    # A proxy would hand over its connected socket; here a plain one.
    t = "S: +OK ready\n" + CAPA + "C: QUIT\nS: +OK\n"
    with ScriptedServer(t) as server:
        s = socket.create_connection(("127.0.0.1", server.port))
        with pop3.Client("mail.example", sock=s, tls="none", timeout=5) as c:
            assert c.capabilities.uidl and c.sock is s

    async def run(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        c = await pop3.AsyncClient.connect("mail.example", sock=s, tls="none", timeout=5)
        async with c:
            assert c.capabilities.top

    with ScriptedServer(t) as server:
        asyncio.run(run(server.port))


# ---- pop3.poplib on the core's state machine (server_enforces_phases) ----


def test_poplib_lets_the_server_judge_the_phase():
    # The standard module sends what its caller asks in any phase; so does pop3.poplib, and
    # the server's -ERR is the answer. Byte-exact, through the core.
    t = r"""
        S: +OK ready
        C: STAT
        S: -ERR log in first
        C: USER u
        S: +OK
        C: PASS p
        S: +OK in
        C: USER again
        S: -ERR already in
        C: STAT
        S: +OK 1 5
        C: QUIT
        S: +OK bye
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        with pytest.raises(pop3.poplib.error_proto) as e:
            p.stat()
        assert e.value.args == (b"-ERR log in first",)
        p.user("u")
        assert p.pass_("p") == b"+OK in"
        assert p._core.phase == "transaction"
        with pytest.raises(pop3.poplib.error_proto):
            p.user("again")
        assert p.stat() == (1, 5)
        assert p.quit() == b"+OK bye"


def test_poplib_vendor_commands_and_odd_arguments():
    # _shortcmd/_longcmd send a vendor line as the core's extension command (its reply
    # framed and decoded by the core); arguments that are not message numbers go as the
    # standard module writes them; session verbs stay the core's own commands.
    t = r"""
        S: +OK ready
        C: XTND XMIT
        S: +OK  two  spaces [SYS/TEMP] kept
        C: XLIST
        S: +OK list follows
        S: a
        S: ..b
        S: .
        C: DELE foo
        S: -ERR no such message
        C: UIDL 01
        S: +OK 1 x
        C: TOP 1 -1
        S: +OK
        S: h
        S: .
        C: PASS p w
        S: +OK in
        C: QUIT
        S: +OK bye
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert p._shortcmd("XTND XMIT") == b"+OK  two  spaces [SYS/TEMP] kept"
        assert p._longcmd("XLIST") == (b"+OK list follows", [b"a", b".b"], 7)
        with pytest.raises(pop3.poplib.error_proto, match="no such message"):
            p.dele("foo")
        assert p.uidl("01") == b"+OK 1 x"
        assert p.top(1, -1) == (b"+OK", [b"h"], 3)
        for refused in ("STLS", "apop u d", "AUTH PLAIN"):
            with pytest.raises(ValueError):
                p._shortcmd(refused)
        with pytest.raises(ValueError):
            p._shortcmd("X " + "a" * 260)  # over the 255 octets of RFC 2449
        assert p._shortcmd("PASS p w") == b"+OK in"
        assert p._core.phase == "transaction"
        assert p._shortcmd("QUIT") == b"+OK bye"


def test_poplib_first_octet_status_and_broken_replies():
    # The standard module reads a status line by its first octet ("+ Hola", "-err"); so does
    # pop3.poplib (the core's loose_status_indicator quirk). A line starting with anything
    # else ends the session: error_proto now and for every later command, nothing sent.
    t = r"""
        S: + Hola mundo
        C: NOOP
        S: -err no
        C: NOOP
        S: garbage
        """
    with ScriptedServer(t) as server:
        p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert p.getwelcome() == b"+ Hola mundo"
        with pytest.raises(pop3.poplib.error_proto) as e:
            p.noop()
        assert e.value.args == (b"-err no",)
        with pytest.raises(pop3.poplib.error_proto, match="malformed status line"):
            p.noop()
        with pytest.raises(pop3.poplib.error_proto, match="closed"):
            p.noop()
        p.close()
