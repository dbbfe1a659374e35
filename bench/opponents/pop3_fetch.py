#!/usr/bin/env python3
"""Opponent: the pop3 wheel (python/), the modern client or the poplib drop-in.

    python3 pop3_fetch.py --port P [--api client|poplib]

client: pop3.Client, login() (the core chooses), STAT, then retr_many over every message
(pipelined, up to 512 RETRs per round trip), each body streamed chunk by chunk into a sink
that counts and drops it (bounded memory, the 256 MiB message included).

poplib: pop3.poplib used exactly as the standard-poplib opponent (poplib_fetch.py) uses the
standard module: USER/PASS, STAT, RETR 1..N one at a time, each message joined with CRLF.

Both print `RESULT messages=N bytes=B vmhwm_kib=K` (bytes: message octets, dot-unstuffed).
pop3-bench embeds this file.
"""
import argparse
import resource
import sys


class Counter:
    """A binary sink that counts what it is given and keeps nothing."""

    def __init__(self):
        self.octets = 0

    def write(self, data):
        self.octets += len(data)
        return len(data)


def modern(port, user, password):
    import pop3

    with pop3.Client("127.0.0.1", port, tls="none", allow_plaintext=True, timeout=300) as pop:
        pop.login(user, password)
        count, _ = pop.stat()
        sink = Counter()
        got = pop.retr_many(range(1, count + 1), lambda msg: sink)
        bad = [m for m, v in got.items() if not isinstance(v, int)]
        if bad:
            raise SystemExit(f"refused: {bad[:5]}")
    return count, sink.octets


def compatible(port, user, password):
    import pop3.poplib as poplib

    pop = poplib.POP3("127.0.0.1", port)
    pop.user(user)
    pop.pass_(password)
    count, _ = pop.stat()
    total = 0
    for i in range(1, count + 1):
        _, lines, _ = pop.retr(i)
        message = b"\r\n".join(lines) + b"\r\n"
        total += len(message)
        del message, lines
    pop.quit()
    return count, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api", choices=["client", "poplib"], default="client")
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password", default="bench")
    a = ap.parse_args()
    run = modern if a.api == "client" else compatible
    count, total = run(a.port, a.user, a.password)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"RESULT messages={count} bytes={total} vmhwm_kib={peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
