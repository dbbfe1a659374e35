#!/usr/bin/env python3
"""Write N synthetic RFC 5322 messages of about SIZE bytes each into a Maildir.

Every message contains material that exercises a POP3 client:
  * lines starting with '.' ('.hidden', '..double', a line that is only '.',
    '. ' with a trailing space), so the server must dot-stuff them;
  * 8-bit UTF-8 text in the body (Content-Transfer-Encoding: 8bit) and an
    RFC 2047 encoded-word in the Subject;
  * a line starting with "From ".
Message 1 additionally holds one very long line (--long-line bytes, default
10000, no line break; RFC 5322 caps lines at 998 octets, servers don't).

Output is deterministic: the text depends only on the message number and the
arguments (random.Random seeded with the number), so two fills with the same
arguments produce the same messages.  Files use LF line ends, as Maildir
expects; servers send CRLF, so the sizes a server reports are a little larger
than SIZE.

Without --start, numbering continues after the messages already in the
Maildir (new/ and cur/), so repeated fills append distinct messages.
"""
import argparse
import os
import random
import socket
import sys
import time

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua pop3 retr uidl top "
         "stat list dele noop quit capa stls sasl apop").split()
UTF8_LINES = [
    "Grüße aus Köln – naïve café, señor, smörgåsbord.",
    "Ελληνικά: καλημέρα κόσμε; русский: привет, мир.",
    "日本語のテキスト、中文文本、한국어 텍스트.",
    "Emoji: \U0001F4EC \U0001F680 \u2709\ufe0f and a euro sign: € 12,50.",
]
LONG_CHUNK = "0123456789abcdefghijklmnopqrstuvwxyz-LONG-"


def fixed_body(n, long_line):
    lines = [
        f"This is synthetic test message number {n}.",
        "",
        ".hidden line starting with a single dot",
        "..line starting with two dots",
        ".",
        ". dot-space line",
        "From the mbox-escaping department: this line starts with 'From '.",
        UTF8_LINES[n % len(UTF8_LINES)],
        UTF8_LINES[(n + 1) % len(UTF8_LINES)],
    ]
    if n == 1 and long_line > 0:
        lines.append((LONG_CHUNK * (long_line // len(LONG_CHUNK) + 1))[:long_line])
    return lines


def make_message(n, size, long_line, domain="example.test"):
    rng = random.Random(n)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1700000000 + n * 60))
    headers = [
        f"Return-Path: <sender{n % 7}@{domain}>",
        f"From: Sender {n % 7} <sender{n % 7}@{domain}>",
        f"To: Test User <user@{domain}>",
        f"Subject: =?UTF-8?Q?Test_message_{n}_=E2=80=93_Gr=C3=BC=C3=9Fe?=",
        f"Date: {date}",
        f"Message-ID: <synthetic-{n}@{domain}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    text = "\n".join(headers) + "\n\n" + "\n".join(fixed_body(n, long_line)) + "\n"
    trailer = f"-- \nEnd of synthetic message {n}.\n"
    cur = len(text.encode("utf-8")) + len(trailer.encode("utf-8"))
    filler = []
    i = 0
    while cur < size:
        i += 1
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        if i % 10 == 0:
            line = "." + line  # more dot-stuffing material
        if i % 15 == 0:
            line = UTF8_LINES[i % len(UTF8_LINES)]
        room = size - cur
        if len(line.encode("utf-8")) + 1 > room:
            line = line.encode("utf-8")[:max(room - 1, 1)].decode("utf-8", "ignore").rstrip() or "x"
        filler.append(line)
        cur += len(line.encode("utf-8")) + 1
    text += "".join(line + "\n" for line in filler)
    text += trailer
    return text.encode("utf-8")


def existing_count(dest):
    total = 0
    for sub in ("new", "cur"):
        try:
            total += sum(1 for name in os.listdir(os.path.join(dest, sub)) if not name.startswith("."))
        except FileNotFoundError:
            pass
    return total


def write_maildir(dest, msgs, start):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    host = socket.gethostname().replace("/", "_").replace(":", "_")
    # A fixed past epoch plus the message number: names and mtimes ascend with
    # the number, also across appending fills, so servers that sort by mtime
    # or by name agree on the order.
    base = 1600000000
    for i, data in enumerate(msgs):
        n = start + i
        name = f"{base + n}.M{n:06d}P{os.getpid()}Q{n}.{host},S={len(data)}"
        tmp = os.path.join(dest, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.utime(tmp, (base + n, base + n))
        os.rename(tmp, os.path.join(dest, "new", name))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("count", type=int)
    ap.add_argument("size", type=int, help="approximate bytes per message")
    ap.add_argument("dest", help="Maildir directory")
    ap.add_argument("--start", type=int, default=None,
                    help="number of the first message (default: after the existing ones)")
    ap.add_argument("--long-line", type=int, default=10000,
                    help="length of the very long line in message 1 (0: none)")
    ap.add_argument("--stdout", action="store_true",
                    help="print message START (default 1) to stdout and exit")
    a = ap.parse_args()
    if a.stdout:
        sys.stdout.buffer.write(make_message(a.start or 1, a.size, a.long_line))
        return
    start = a.start if a.start is not None else existing_count(a.dest) + 1
    msgs = [make_message(start + i, a.size, a.long_line) for i in range(a.count)]
    write_maildir(a.dest, msgs, start)
    total = sum(len(m) for m in msgs)
    print(f"wrote {len(msgs)} messages ({start}..{start + len(msgs) - 1}), {total} bytes (LF) to {a.dest}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
