"""The pop3 package against the test kit's own scripted server (the Rust crate
pop3-scripted-server, run as the program ``pop3-scripted-server SCRIPT``), the oracle the
Rust adapters' transcript tests use: byte-exact ``C:``/``S:`` transcripts.

``.ci/python.sh`` builds the program and passes its path in ``POP3_SCRIPTED_SERVER``. Without
it these tests are skipped with a reason, except under ``POP3_INTEROP=required`` (CI), where
its absence is a failure.
"""

import asyncio
import io
import os
import subprocess
import textwrap

import pytest

import pop3
import pop3.poplib


class KitServer:
    """One connection's script, played by the kit's program."""

    def __init__(self, script, tmp_path):
        program = os.environ.get("POP3_SCRIPTED_SERVER")
        if not program or not os.access(program, os.X_OK):
            why = "POP3_SCRIPTED_SERVER does not name the kit's pop3-scripted-server program"
            if os.environ.get("POP3_INTEROP") == "required":
                pytest.fail(why)
            pytest.skip(why)
        path = tmp_path / "script.txt"
        path.write_text(textwrap.dedent(script))
        self.proc = subprocess.Popen(
            [program, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.port = int(self.proc.stdout.readline())

    def finish(self):
        out, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err.decode(errors="replace")
        assert out.strip() == b"complete"


CAPA = """\
C: CAPA
S: +OK
S: USER
S: UIDL
S: TOP
S: PIPELINING
S: .
"""


def test_poplib_session(tmp_path):
    server = KitServer(
        "S: +OK POP3 ready\n"
        + textwrap.dedent(
            """\
            C: USER alice
            S: +OK
            C: PASS s3cret
            S: +OK  2 messages
            C: STAT
            S: +OK 2 320
            C: LIST
            S: +OK 2 messages
            S: 1 120
            S: 2 200
            S: .
            C: RETR 1
            S: +OK 120 octets
            S: Subject: x
            S:
            S: ..dot line
            S: .
            C: DELE 2
            S: -ERR [IN-USE] locked
            C: QUIT
            S: +OK bye
            """
        ),
        tmp_path,
    )
    p = pop3.poplib.POP3("127.0.0.1", server.port, timeout=5)
    assert p.getwelcome() == b"+OK POP3 ready"
    assert p.user("alice") == b"+OK"
    assert p.pass_("s3cret") == b"+OK  2 messages"
    assert p.stat() == (2, 320)
    assert p.list() == (b"+OK 2 messages", [b"1 120", b"2 200"], 14)
    resp, lines, octets = p.retr(1)
    assert resp == b"+OK 120 octets"
    assert lines == [b"Subject: x", b"", b".dot line"]
    with pytest.raises(pop3.poplib.error_proto) as refused:
        p.dele(2)
    assert refused.value.args[0] == b"-ERR [IN-USE] locked"
    assert p.quit() == b"+OK bye"
    server.finish()


def test_client_login_and_pipelined_retr_many(tmp_path):
    server = KitServer(
        "S: +OK ready\n"
        + CAPA
        + textwrap.dedent(
            """\
            C: USER u
            S: +OK
            C: PASS p
            S: +OK
            C: CAPA
            C: RETR 1
            C: RETR 2
            S: +OK
            S: PIPELINING
            S: .
            S: +OK
            S: one
            S: .
            S: -ERR [SYS/TEMP] try later
            C: QUIT
            S: +OK
            """
        ),
        tmp_path,
    )
    with pop3.Client("127.0.0.1", server.port, tls="none", allow_plaintext=True, timeout=5) as c:
        assert c.login("u", "p") == "USER"
        files = {}

        def sink(msg):
            files[msg] = io.BytesIO()
            return files[msg]

        got = c.retr_many([1, 2], sink)
        assert got[1] == 5 and files[1].getvalue() == b"one\r\n"
        assert isinstance(got[2], pop3.ServerError) and got[2].is_transient
    server.finish()


def test_async_client(tmp_path):
    server = KitServer(
        "S: +OK ready\n"
        + CAPA
        + textwrap.dedent(
            """\
            C: USER u
            S: +OK
            C: PASS p
            S: +OK
            C: CAPA
            C: RETR 1
            S: +OK
            S: .
            S: +OK
            S: ..b
            S: .
            C: QUIT
            S: +OK
            """
        ),
        tmp_path,
    )

    async def run():
        c = await pop3.AsyncClient.connect(
            "127.0.0.1", server.port, tls="none", allow_plaintext=True, timeout=5
        )
        async with c:
            assert await c.login("u", "p") == "USER"
            assert await c.retr_many([1]) == {1: b".b\r\n"}

    asyncio.run(run())
    server.finish()
