"""A scripted POP3 server for the pytest suite: plays a ``C:``/``S:`` transcript (the test
kit's format, tests/src/script.rs) and checks byte for byte what the client sends.

A second oracle next to the kit's own scripted server (test_kit_server.py runs the kit's
``pop3-scripted-server`` program): this one shares no code with the package under test, not
even the Rust toolchain, and speaks a few directives of its own (``PIPELINED``, ``S+``).

Transcript lines: ``S: text`` (sent with CRLF), ``C: text`` (expected from the client, CRLF
added), ``S+ text`` (sent without a line end), ``CLOSE`` (the server hangs up). Consecutive
``C:`` lines are one block: the server reads until it has them all before answering, so a
pipelining client passes and so does a one-at-a-time one; ``PIPELINED`` before a ``C:`` block
asserts that the whole block arrived before the server answered anything of it (in one read
or more, without waiting).
"""

import socket
import threading


def parse(transcript):
    blocks = []  # ("S", bytes) | ("C", bytes, pipelined) | ("CLOSE",)
    pipelined = False
    for raw in transcript.strip("\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "PIPELINED":
            pipelined = True
            continue
        if line == "CLOSE":
            blocks.append(("CLOSE",))
            continue
        tag, _, text = line.partition(" ")
        data = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
        if tag == "S:":
            data += b"\r\n"
            kind = "S"
        elif tag == "S+":
            kind = "S"
        elif tag == "C:":
            data += b"\r\n"
            kind = "C"
        else:
            raise ValueError(f"bad transcript line {raw!r}")
        if blocks and blocks[-1][0] == kind and kind in ("S", "C"):
            prev = blocks.pop()
            blocks.append((kind, prev[1] + data, prev[2] if kind == "C" else None))
        else:
            blocks.append((kind, data, pipelined if kind == "C" else None))
            if kind == "C":
                pipelined = False
    return blocks


class ScriptedServer:
    """``with ScriptedServer(transcript) as server:`` connect to ``server.port``; on exit
    the transcript must have been played to its end with no difference."""

    def __init__(self, transcript, tls_context=None):
        self.blocks = parse(transcript)
        self.tls_context = tls_context
        self.error = None
        self.received = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.thread.join(10)
        self.listener.close()
        if exc_type is None:
            assert not self.thread.is_alive(), "the scripted server is still waiting"
            if self.error:
                raise AssertionError(self.error)

    def _serve(self):
        try:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            with conn:
                self._play(conn)
        except Exception as e:  # reported on exit
            self.error = f"{type(e).__name__}: {e}"

    def _play(self, conn):
        pending = b""
        for block in self.blocks:
            if block[0] == "S":
                conn.sendall(block[1])
            elif block[0] == "CLOSE":
                return
            else:
                expected, pipelined = block[1], block[2]
                got = pending
                reads = 0
                while len(got) < len(expected):
                    if pipelined and reads and b"\r\n" in got:
                        # The rest must already be on its way: no reply was sent.
                        conn.settimeout(0.5)
                    data = conn.recv(65536)
                    conn.settimeout(10)
                    reads += 1
                    if not data:
                        break
                    got += data
                self.received += got[: len(expected)]
                pending = got[len(expected):]
                if got[: len(expected)] != expected:
                    self.error = f"the client sent {got!r}, the transcript says {expected!r}"
                    return
        # After the transcript: the client must send nothing more before it closes.
        conn.settimeout(2)
        try:
            rest = pending or conn.recv(65536)
        except OSError:
            rest = b""
        if rest:
            self.error = f"the client sent more than the transcript: {rest!r}"
