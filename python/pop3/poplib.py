"""A drop-in replacement for the standard library's ``poplib``, on the pop3 core.

``import pop3.poplib as poplib`` and existing code runs unchanged: the same classes
(``POP3``, ``POP3_SSL``), exception (``error_proto``), constants (``POP3_PORT``,
``POP3_SSL_PORT``, ``_MAXLINE``), methods and return values, the same ``sock``/``file``
attributes, timeouts (``timeout=0`` is a ``ValueError``; ``socket.setdefaulttimeout`` is
honoured), ``context`` parameters, and the ``poplib.connect`` / ``poplib.putline`` audit
events. CPython's own ``Lib/test/test_poplib.py`` passes against it
(``python/tests/run_cpython_poplib.py``).

Python's ``socket`` and ``ssl`` modules move the bytes, as in the standard module; the Rust
core's session state machine (``pop3._core.Client``) decides what they mean: it writes every
command line, frames and parses every status line, decodes every multi-line reply, computes
the APOP digest and enforces the rules that protect the connection. This module only moves
bytes between the socket and the core and formats the core's events into the standard
module's return values. The standard module lets its caller send any command in any phase
(``stat()`` before login, ``user()`` after it, vendor commands through
``_shortcmd``/``_longcmd``), so the core runs with ``server_enforces_phases``: the server
judges the phase, and a command out of phase gets its ``-ERR``.

Differences, each where the standard module is unsafe:

* **Certificates are verified.** ``POP3_SSL`` and ``stls()`` without a ``context`` use
  ``ssl.create_default_context()``: the system's trusted CAs, and the host name checked
  (the standard module verifies nothing without a ``context``, so any man in the middle
  reads the password). For the old behaviour, pass a context of your own, such as one with
  ``check_hostname = False`` and ``verify_mode = ssl.CERT_NONE``.
* **CR, LF or NUL in an argument** (a user name, a password, a message "number" such as
  ``'1\\r\\nDELE 2'``): the standard module writes them to the wire, so an attacker who controls
  an argument injects commands. Here nothing is sent and ``error_proto`` is raised (the
  exception is also a ``ValueError``); so is a command line over 255 octets (RFC 2449).
* **APOP timestamps**: the standard module hashes whatever it finds between the first ``<``
  and the last ``>`` of the greeting, so a hostile server can choose a challenge with
  non-printable bytes, which the MD5 collision attacks on APOP need to recover the password.
  Here the timestamp must be printable ASCII between ``<`` and the next ``>`` (at most 512
  octets; ``@`` is not required, for compatibility), or ``apop()`` raises ``error_proto``
  without sending anything.
* **The end of a multi-line reply**: only CRLF ``.`` CRLF ends it and only a dot right after
  CRLF is removed (RFC 1939 section 3). The standard module also ends a reply at ``.`` LF and
  unstuffs after a bare LF, so a message line ``.`` LF ends the message early and the rest of
  the message is read as the next replies. Message lines longer than ``_MAXLINE`` are
  accepted (status lines keep the ``_MAXLINE`` limit): real mail has longer lines, and the
  reply's memory is bounded by the message, which ``retr()`` returns whole anyway.
* **A broken reply ends the session**: a status line that starts with neither ``+`` nor
  ``-`` (the first octet answers, as in the standard module), or longer than ``_MAXLINE``, or a connection closed mid-reply raises ``error_proto`` and
  every later command raises it too (close the connection). The standard module raises and
  goes on reading the stream out of step, taking the rest of a bad reply as the next one.
* **STARTTLS injection**: bytes that arrive after the ``+OK`` to STLS and before the TLS
  handshake (a man in the middle's forged replies) make ``stls()`` close the connection and
  raise ``error_proto``; the standard module silently drops what it had buffered. ``stls()``
  after login raises ``error_proto`` without sending anything (RFC 2595 allows STLS only
  before login).
* **Debug output**: ``set_debuglevel()`` never prints a password or an APOP digest (the
  standard module prints the PASS line).
* **Session commands stay typed**: ``_shortcmd``/``_longcmd`` send USER, PASS, RPOP, QUIT
  and UTF8 lines as those commands (so the core knows the session changed) and refuse
  STLS, APOP and AUTH lines (use ``stls()`` and ``apop()``).

Response lines (``getwelcome()``, the responses returned and raised) are the status lines
exactly as the server sent them, without the line end, as in the standard module: the core
hands each reply's line over with its event (``Event.line``), whether tracing is on or not.
"""

import errno
import re
import socket
import sys

from . import _core

try:
    import ssl

    HAVE_SSL = True
except ImportError:  # pragma: no cover - Python without ssl
    HAVE_SSL = False

__all__ = ["POP3", "error_proto"]


class error_proto(Exception):
    """A ``-ERR`` reply, a malformed or overlong line, or a connection closed mid-reply."""


class _Refused(error_proto, ValueError):
    """The core refused the command (CR, LF or NUL in an argument, a line too long, STLS on
    TLS or after login, ...): nothing was sent."""


POP3_PORT = 110
POP3_SSL_PORT = 995

CR = b"\r"
LF = b"\n"
CRLF = CR + LF

# The longest status line read, line end included (as the standard module; read when a
# connection is made, so it can be patched). Message lines are not limited by it.
_MAXLINE = 2048

# The most bytes read from the socket at once.
_CHUNK = 64 * 1024

# What _shortcmd/_longcmd send as the core's own commands (their replies change the session).
_SESSION_VERBS = {"USER": "user", "PASS": "pass_", "RPOP": "rpop", "QUIT": "quit", "UTF8": "utf8"}
_SECRET_VERBS = ("pass_", "apop")
_REFUSED_VERBS = {"STLS": "stls()", "APOP": "apop()", "AUTH": "a SASL library"}


class POP3:
    """A POP3 session, compatible with the standard ``poplib.POP3``.

    Minimal command set: ``user``, ``pass_``, ``stat``, ``list``, ``retr``, ``dele``,
    ``noop``, ``rset``, ``quit``. Optional: ``rpop``, ``apop``, ``top``, ``uidl``, ``capa``,
    ``stls``, ``utf8``. Arguments may be strings or integers. Every failure raises
    ``error_proto``.

    ``POP3(host, port=110, timeout=<socket default>)`` connects and reads the greeting
    (``getwelcome()``).
    """

    encoding = "UTF-8"
    _implicit_tls = False

    # Kept for code that reads it; apop() uses the core's timestamp check instead.
    timestamp = re.compile(rb"\+OK.[^<]*(<.*>)")

    def __init__(self, host, port=POP3_PORT, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        sys.audit("poplib.connect", self, host, port)
        self.sock = self._create_socket(timeout)
        self.file = self.sock.makefile("rb")
        self._debugging = 0
        self._core = _core.Client(
            implicit_tls=self._implicit_tls,
            # The caller of this API sends USER/PASS itself, TLS or not (as the standard
            # module); the core still refuses what would break the connection.
            allow_plaintext_auth=True,
            relaxed_apop_timestamp=True,
            server_enforces_phases=True,
            # A status line's first octet answers, as in the standard module.
            loose_status_indicator=True,
            auto_capa=False,
            pipeline_window=1,
            max_status_line=_MAXLINE,
        )
        self.welcome = self._reply(None)

    def _create_socket(self, timeout):
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return socket.create_connection((self.host, self.port), timeout)

    # ---- moving bytes between the socket and the core ----

    def _send(self, verb, *args):
        """Queues a command with the core and writes what the core says to send."""
        core = self._core
        try:
            cid = getattr(core, verb)(*args)
        except _core.UsageError as e:
            raise _Refused("-ERR refused: %s" % e) from None
        out = core.poll_transmit()
        if out:
            line = out[:-2]
            if self._debugging:
                shown = line.split(b" ", 1)[0] + b" <redacted>" if verb in _SECRET_VERBS else line
                print("*cmd*" if self._debugging == 1 else "*put*", repr(shown))
            sys.audit("poplib.putline", self, line)
            self.sock.sendall(out)
        return cid

    def _receive(self):
        """One read from the socket into the core (EOF included)."""
        data = self.file.read1(_CHUNK)
        if self._debugging > 1:
            print("*get*", repr(data))
        if data:
            self._core.receive_data(data)
        else:
            self._core.receive_eof()

    def _reply(self, cid, sink=None):
        """Runs the core until the terminal event of command ``cid`` (``None``: the
        greeting). Body chunks go to ``sink.write``. Returns the response line; with a
        ``sink``, ``(response, octets)``. Raises ``error_proto`` for ``-ERR`` and for a
        broken protocol."""
        core = self._core
        octets = 0
        while True:
            try:
                ev = core.poll_event() if sink is None else core.poll_body_into(cid, sink)
            except _core.ProtocolError as e:
                raise error_proto("-ERR %s" % e) from None
            if ev is None:
                self._receive()
                continue
            kind = ev.kind
            resp = ev.line  # the reply's status line, for greeting, ok, err and starttls
            if kind == "greeting":
                if self._debugging > 1:
                    print("*resp*", repr(resp))
                if not ev.ok:
                    raise error_proto(resp)
                return resp
            if ev.id != cid:
                continue  # a quirk notice
            if kind == "stat":
                self._stat = (ev.msg, ev.size)
            elif kind == "capabilities":
                self._caps = ev.capabilities
            elif kind == "body_end":
                octets = ev.octets
            elif kind == "ok" or kind == "starttls":
                if self._debugging > 1:
                    print("*resp*", repr(resp))
                if sink is not None:
                    sink.close()
                    return resp, octets
                return resp
            elif kind == "err":
                raise error_proto(resp)
            elif kind == "cancelled":
                raise error_proto("-ERR %s not sent" % ev.command)

    def _cmd(self, verb, *args):
        return self._reply(self._send(verb, *args))

    def _longcmd_lines(self, verb, *args):
        lines = []
        resp, octets = self._reply(self._send(verb, *args), _LineSplitter(lines))
        return resp, lines, octets

    def _shortcmd(self, line):
        """Sends a command line and returns its single-line response."""
        verb = self._session_verb(line)
        if verb is not None:
            return self._cmd(*verb)
        return self._cmd("extension", line, False)

    def _longcmd(self, line):
        """Sends a command line and returns its multi-line reply: ``(response, lines,
        octets)``."""
        if self._session_verb(line) is not None:
            raise error_proto("-ERR %r does not have a multi-line reply" % line)
        return self._longcmd_lines("extension", line, True)

    def _session_verb(self, line):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword in _REFUSED_VERBS:
            raise _Refused("-ERR refused: send %s with %s" % (keyword, _REFUSED_VERBS[keyword]))
        verb = _SESSION_VERBS.get(keyword)
        if verb is None:
            return None
        if verb == "pass_":
            return (verb, bytes(rest, self.encoding))
        return (verb, rest) if rest else (verb,)

    # ---- the standard module's API ----

    def getwelcome(self):
        """The server's greeting line (bytes)."""
        return self.welcome

    def set_debuglevel(self, level):
        """1 prints commands, 2 also every line exchanged (passwords and APOP digests are
        never printed; the standard module prints them)."""
        self._debugging = level

    def user(self, user):
        """``USER user``: the response, or ``error_proto``."""
        return self._cmd("user", "%s" % user)

    def pass_(self, pswd):
        """``PASS pswd``: the response (often the message count and size)."""
        return self._cmd("pass_", bytes("%s" % pswd, self.encoding))

    def stat(self):
        """``STAT``: ``(message count, mailbox size)``."""
        self._stat = None
        self._cmd("stat")
        if self._debugging:
            print("*stat*", repr(self._stat))
        return self._stat

    def list(self, which=None):
        """``LIST``: ``(response, ['mesg_num octets', ...], octets)``, or with ``which``
        the response line ``+OK mesg_num octets``."""
        if which is not None:
            return self._with_number("list", "LIST", which)
        return self._longcmd_lines("extension", "LIST", True)

    def retr(self, which):
        """``RETR which``: ``(response, [line, ...], octets)``."""
        n = _number(which)
        if n is None:
            return self._longcmd_lines("extension", "RETR %s" % which, True)
        return self._longcmd_lines("retr", n)

    def dele(self, which):
        """``DELE which``: the response."""
        return self._with_number("dele", "DELE", which)

    def noop(self):
        """``NOOP``: the response."""
        return self._cmd("noop")

    def rset(self):
        """``RSET``: unmark the messages marked as deleted."""
        return self._cmd("rset")

    def quit(self):
        """``QUIT``: commit the deletions, close the connection; the response."""
        resp = self._cmd("quit")
        self.close()
        return resp

    def close(self):
        """Close the connection without assuming anything about it."""
        try:
            file = self.file
            self.file = None
            if file is not None:
                file.close()
        finally:
            sock = self.sock
            self.sock = None
            # fileno() is -1 once the socket is closed, or detached by a TLS handshake that
            # failed (wrap_socket took its descriptor and closed it).
            if sock is not None and sock.fileno() != -1:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError as exc:
                    # The server may have closed the connection already (Windows: 10022).
                    if exc.errno != errno.ENOTCONN and getattr(exc, "winerror", 0) != 10022:
                        raise
                finally:
                    sock.close()

    def rpop(self, user):
        """``RPOP user`` (RFC 1081, obsolete)."""
        return self._cmd("rpop", "%s" % user)

    def apop(self, user, password):
        """``APOP user digest``: the digest of the greeting's timestamp and ``password``,
        computed by the core. Raises ``error_proto`` without sending anything when the
        greeting (``self.welcome``) has no printable-ASCII ``<...>`` timestamp."""
        if _core.greeting_timestamp(self.welcome, relaxed=True) is None:
            raise error_proto("-ERR APOP not supported by server")
        return self._cmd("apop", "%s" % user, bytes(password, self.encoding))

    def top(self, which, howmuch):
        """``TOP which howmuch``: ``(response, [line, ...], octets)``."""
        n, lines = _number(which), _number(howmuch, 0)
        if n is None or lines is None:
            return self._longcmd_lines("extension", "TOP %s %s" % (which, howmuch), True)
        return self._longcmd_lines("top", n, lines)

    def uidl(self, which=None):
        """``UIDL``: ``(response, ['mesg_num uid', ...], octets)``, or with ``which`` the
        response line ``+OK mesg_num uid``."""
        if which is not None:
            return self._with_number("uidl", "UIDL", which)
        return self._longcmd_lines("extension", "UIDL", True)

    def utf8(self):
        """``UTF8`` (RFC 6856): the response."""
        return self._cmd("utf8")

    def capa(self):
        """``CAPA`` (RFC 2449): ``{'TAG': ['param', ...], ...}``."""
        self._caps = None
        try:
            self._cmd("capa")
        except _Refused:
            raise
        except error_proto:
            raise error_proto("-ERR CAPA not supported by server")
        caps = {}
        for capline in self._caps.lines:
            lst = capline.split()
            caps[lst[0]] = lst[1:]
        return caps

    def _with_number(self, verb, keyword, which):
        """A command on one message: the core's own when ``which`` is written as the core
        would write it, else the standard module's line as an extension command."""
        n = _number(which)
        if n is None:
            return self._cmd("extension", "%s %s" % (keyword, which), False)
        return self._cmd(verb, n)

    def _received_early(self):
        """Whatever already waits in ``self.file``'s buffer or the socket after the +OK to
        STLS (the server speaks only after the client's hello), without blocking."""
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0)
        try:
            return self.file.peek(1)
        except (BlockingIOError, InterruptedError):
            return b""
        finally:
            self.sock.settimeout(timeout)

    def stls(self, context=None):
        """``STLS`` (RFC 2595) and the TLS handshake on this connection; the response.

        Without ``context``, ``ssl.create_default_context()``: the certificate and the host
        name are verified."""
        if not HAVE_SSL:
            raise error_proto("-ERR TLS support missing")
        if self._core.is_tls:
            raise error_proto("-ERR TLS session already established")
        caps = self.capa()
        if "STLS" not in caps:
            raise error_proto("-ERR STLS not supported by server")
        if context is None:
            context = ssl.create_default_context()
        resp = self._cmd("stls")
        # Bytes after the +OK, before our hello: an injection (RFC 2595 section 4,
        # CVE-2011-0411 class). The core judges them.
        early = self._received_early()
        if early:
            self._core.receive_data(early)
        try:
            self._core.poll_event()
        except _core.ProtocolError as e:
            self.close()
            raise error_proto("-ERR %s" % e) from None
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("rb")
        self._core.tls_established()
        return resp


def _number(which, low=1):
    """``which`` as the core's message number (or TOP line count with ``low=0``) when
    ``"%s" % which`` writes it the same way (decimal, no sign, no leading zero); else
    ``None``."""
    text = "%s" % which
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        return None
    n = int(text)
    return n if low <= n < 2**32 else None


class _LineSplitter:
    """Collects a dot-unstuffed body into the lines the standard module returns: split at
    LF, without CRLF (or LF, or a leading CR before a bare LF). Line by line as the chunks
    come, so the body is never held whole next to its lines."""

    def __init__(self, lines):
        self.lines = lines
        self.tail = b""

    def write(self, chunk):
        if self.tail:
            chunk = self.tail + chunk
        pieces = chunk.split(LF)
        self.tail = pieces.pop()
        self.lines.extend(
            [
                line[:-1] if line[-1:] == CR else (line[1:] if line[:1] == CR else line)
                for line in pieces
            ]
        )

    def close(self):
        if self.tail:  # a body that does not end with a line end (not from a CRLF server)
            self.lines.append(self.tail)
            self.tail = b""


if HAVE_SSL:

    class POP3_SSL(POP3):
        """POP3 over implicit TLS (port 995), compatible with the standard ``POP3_SSL``.

        ``POP3_SSL(host, port=995, keyfile=None, certfile=None, timeout=..., context=None)``;
        ``keyfile``/``certfile`` are deprecated (use ``context``). Without ``context``,
        ``ssl.create_default_context()``: the certificate and the host name are verified
        (the standard module verifies nothing; pass a context to choose).
        """

        _implicit_tls = True

        def __init__(
            self,
            host,
            port=POP3_SSL_PORT,
            keyfile=None,
            certfile=None,
            timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
            context=None,
        ):
            if context is not None and keyfile is not None:
                raise ValueError("context and keyfile arguments are mutually exclusive")
            if context is not None and certfile is not None:
                raise ValueError("context and certfile arguments are mutually exclusive")
            if keyfile is not None or certfile is not None:
                import warnings

                warnings.warn(
                    "keyfile and certfile are deprecated, use a custom context instead",
                    DeprecationWarning,
                    2,
                )
            self.keyfile = keyfile
            self.certfile = certfile
            if context is None:
                context = ssl.create_default_context()
                if certfile is not None:
                    context.load_cert_chain(certfile, keyfile)
            self.context = context
            POP3.__init__(self, host, port, timeout)

        def _create_socket(self, timeout):
            sock = POP3._create_socket(self, timeout)
            return self.context.wrap_socket(sock, server_hostname=self.host)

        def stls(self, keyfile=None, certfile=None, context=None):
            """Always raises: STLS makes no sense on a TLS connection."""
            raise error_proto("-ERR TLS session already established")

    __all__.append("POP3_SSL")
