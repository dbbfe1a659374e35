#!/usr/bin/env python3
"""Opponent: Python's standard poplib, the way its users write it.

USER/PASS, STAT, then RETR 1..N one at a time (poplib has no pipelining); each
message is joined with CRLF (as an application storing it would) and thrown
away. Messages stay on the server. At the end it prints one line for the
benchmark:

    RESULT messages=N bytes=B vmhwm_kib=K

bytes counts message octets (dot-unstuffed, CRLF line ends) and vmhwm_kib is
the process's peak resident set size. pop3-bench embeds this file and runs it
as `python3 poplib_fetch.py --port P`.
"""
import argparse
import poplib
import resource
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password", default="bench")
    a = ap.parse_args()

    # poplib's default line limit (_MAXLINE = 2048) is kept: the synthetic mail
    # has lines of at most 2000 octets plus stuffing.
    pop = poplib.POP3("127.0.0.1", a.port)
    pop.user(a.user)
    pop.pass_(a.password)
    count, _ = pop.stat()
    total = 0
    for i in range(1, count + 1):
        _, lines, _ = pop.retr(i)
        message = b"\r\n".join(lines) + b"\r\n"
        total += len(message)
        del message, lines
    pop.quit()
    # Linux reports ru_maxrss in KiB.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT messages={count} bytes={total} vmhwm_kib={peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
