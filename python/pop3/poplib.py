"""A drop-in replacement for the standard library's ``poplib``, on the pop3 core.

``import pop3.poplib as poplib`` and existing code runs unchanged: the same classes
(``POP3``, ``POP3_SSL``), exception (``error_proto``), constants (``POP3_PORT``,
``POP3_SSL_PORT``, ``_MAXLINE``), methods and return values, the same ``sock``/``file``
attributes, timeouts (``timeout=0`` is a ``ValueError``; ``socket.setdefaulttimeout`` is
honoured), ``context`` parameters, and the ``poplib.connect`` / ``poplib.putline`` audit
events. CPython's own ``Lib/test/test_poplib.py`` passes against it
(``python/tests/run_cpython_poplib.py``).

The bytes are moved by Python's ``socket`` and ``ssl`` modules, as in the standard module;
what they mean is decided by the Rust core (``pop3._core``): the argument check, the APOP
timestamp and digest, and the multi-line decoder. The standard module lets a caller send any
command in any phase (``_shortcmd``/``_longcmd``, ``stat()`` before login), so this module
reads reply by reply, as it does, rather than through the core's session state machine; the
modern clients (``pop3.Client``, ``pop3.AsyncClient``) use that.

Differences, each where the standard module is unsafe:

* **CR, LF or NUL in an argument** (a user name, a password, a message "number" such as
  ``'1\\r\\nDELE 2'``): the standard module writes them to the wire, so an attacker who controls
  an argument injects commands. Here nothing is sent and ``error_proto`` is raised (the
  exception is also a ``ValueError``).
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

* **STARTTLS injection**: bytes that arrive after the ``+OK`` to STLS and before the TLS
  handshake (a man in the middle's forged replies) make ``stls()`` close the connection and
  raise ``error_proto``; the standard module silently drops what it had buffered.

Not changed, because the standard suite and existing code depend on it: ``POP3_SSL`` and
``stls()`` without a ``context`` do not verify the server's certificate (as the standard
module's ``ssl._create_stdlib_context()``); pass ``context=ssl.create_default_context()``,
or use ``pop3.Client``, which verifies by default.
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


class _UnsafeArgument(error_proto, ValueError):
    """An argument with CR, LF or NUL: refused, nothing sent."""


POP3_PORT = 110
POP3_SSL_PORT = 995

CR = b"\r"
LF = b"\n"
CRLF = CR + LF

# The longest status line read (as the standard module; read at call time, so it can be
# patched). Message lines are not limited by it: see the module docstring.
_MAXLINE = 2048

# How much of a multi-line reply is decoded per step.
_CHUNK = 64 * 1024


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

    # Kept for code that reads it; apop() uses the core's timestamp check instead.
    timestamp = re.compile(rb"\+OK.[^<]*(<.*>)")

    def __init__(self, host, port=POP3_PORT, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self._tls_established = False
        sys.audit("poplib.connect", self, host, port)
        self.sock = self._create_socket(timeout)
        self.file = self.sock.makefile("rb")
        self._debugging = 0
        self.welcome = self._getresp()

    def _create_socket(self, timeout):
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return socket.create_connection((self.host, self.port), timeout)

    def _putline(self, line):
        if self._debugging > 1:
            print("*put*", repr(line))
        if not _core.is_safe_argument(line):
            raise _UnsafeArgument(
                "-ERR refused to send a command line with CR, LF or NUL in an argument"
            )
        sys.audit("poplib.putline", self, line)
        self.sock.sendall(line + CRLF)

    def _putcmd(self, line):
        if self._debugging:
            print("*cmd*", repr(line))
        self._putline(bytes(line, self.encoding))

    def _getline(self):
        """One line from the server without its line end, and its length with it."""
        line = self.file.readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            raise error_proto("line too long")
        if self._debugging > 1:
            print("*get*", repr(line))
        if not line:
            raise error_proto("-ERR EOF")
        octets = len(line)
        # readline() ends at LF: CRLF, a bare LF, or (a CR-first server) CR ... LF.
        if line[-2:] == CRLF:
            return line[:-2], octets
        if line[:1] == CR:
            return line[1:-1], octets
        return line[:-1], octets

    def _getresp(self):
        resp, _ = self._getline()
        if self._debugging > 1:
            print("*resp*", repr(resp))
        if not resp.startswith(b"+"):
            raise error_proto(resp)
        return resp

    def _getlongresp(self):
        resp = self._getresp()
        lines = []
        octets = self._getbody(_LineSplitter(lines))
        return resp, lines, octets

    def _getbody(self, sink):
        """The rest of a multi-line reply, dot-unstuffed by the core and handed to
        ``sink.write`` chunk by chunk; returns its octet count."""
        decoder = _core.BodyDecoder()
        file = self.file
        peek = getattr(file, "peek", None)
        while True:
            if peek is not None:
                data = peek(_CHUNK)
            else:  # a file object without peek(): a line at a time keeps the framing
                data = file.readline()
            if not data:
                raise error_proto("-ERR EOF")
            chunk, used, done = decoder.decode(data)
            if peek is not None:
                file.read(used)
            if chunk:
                sink.write(chunk)
            if done:
                sink.close()
                return decoder.octets

    def _shortcmd(self, line):
        self._putcmd(line)
        return self._getresp()

    def _longcmd(self, line):
        self._putcmd(line)
        return self._getlongresp()

    def getwelcome(self):
        """The server's greeting line (bytes)."""
        return self.welcome

    def set_debuglevel(self, level):
        """1 prints commands, 2 also every line exchanged."""
        self._debugging = level

    def user(self, user):
        """``USER user``: the response, or ``error_proto``."""
        return self._shortcmd("USER %s" % user)

    def pass_(self, pswd):
        """``PASS pswd``: the response (often the message count and size)."""
        return self._shortcmd("PASS %s" % pswd)

    def stat(self):
        """``STAT``: ``(message count, mailbox size)``."""
        retval = self._shortcmd("STAT")
        rets = retval.split()
        if self._debugging:
            print("*stat*", repr(rets))
        return (int(rets[1]), int(rets[2]))

    def list(self, which=None):
        """``LIST``: ``(response, ['mesg_num octets', ...], octets)``, or with ``which``
        the response line ``+OK mesg_num octets``."""
        if which is not None:
            return self._shortcmd("LIST %s" % which)
        return self._longcmd("LIST")

    def retr(self, which):
        """``RETR which``: ``(response, [line, ...], octets)``."""
        return self._longcmd("RETR %s" % which)

    def dele(self, which):
        """``DELE which``: the response."""
        return self._shortcmd("DELE %s" % which)

    def noop(self):
        """``NOOP``: the response."""
        return self._shortcmd("NOOP")

    def rset(self):
        """``RSET``: unmark the messages marked as deleted."""
        return self._shortcmd("RSET")

    def quit(self):
        """``QUIT``: commit the deletions, close the connection; the response."""
        resp = self._shortcmd("QUIT")
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
            if sock is not None:
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
        return self._shortcmd("RPOP %s" % user)

    def apop(self, user, password):
        """``APOP user digest``: the digest of the greeting's timestamp (read from
        ``self.welcome`` now) and ``password``. Raises ``error_proto`` without sending
        anything when the greeting has no printable-ASCII ``<...>`` timestamp."""
        secret = bytes(password, self.encoding)
        stamp = _core.greeting_timestamp(self.welcome, relaxed=True)
        if stamp is None:
            raise error_proto("-ERR APOP not supported by server")
        digest = _core.apop_digest(stamp, secret).decode("ascii")
        return self._shortcmd("APOP %s %s" % (user, digest))

    def top(self, which, howmuch):
        """``TOP which howmuch``: ``(response, [line, ...], octets)``."""
        return self._longcmd("TOP %s %s" % (which, howmuch))

    def uidl(self, which=None):
        """``UIDL``: ``(response, ['mesg_num uid', ...], octets)``, or with ``which`` the
        response line ``+OK mesg_num uid``."""
        if which is not None:
            return self._shortcmd("UIDL %s" % which)
        return self._longcmd("UIDL")

    def utf8(self):
        """``UTF8`` (RFC 6856): the response."""
        return self._shortcmd("UTF8")

    def capa(self):
        """``CAPA`` (RFC 2449): ``{'TAG': ['param', ...], ...}``."""

        def _parsecap(line):
            lst = line.decode("ascii").split()
            return lst[0], lst[1:]

        caps = {}
        try:
            resp = self._longcmd("CAPA")
            for capline in resp[1]:
                capnm, capargs = _parsecap(capline)
                caps[capnm] = capargs
        except error_proto:
            raise error_proto("-ERR CAPA not supported by server")
        return caps

    def _received_early(self):
        """Whether anything arrived after the +OK to STLS, before our TLS handshake (the
        server speaks only after the client's hello): buffered by ``self.file`` or waiting
        in the socket. Such bytes are an injection (RFC 2595 section 4, CVE-2011-0411
        class), never to be read as if they had come over TLS."""
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0)
        try:
            return bool(self.file.peek(1))
        except (BlockingIOError, InterruptedError):
            return False
        finally:
            self.sock.settimeout(timeout)

    def stls(self, context=None):
        """``STLS`` (RFC 2595) and the TLS handshake on this connection; the response.

        Without ``context`` the certificate is not verified (as the standard module)."""
        if not HAVE_SSL:
            raise error_proto("-ERR TLS support missing")
        if self._tls_established:
            raise error_proto("-ERR TLS session already established")
        caps = self.capa()
        if "STLS" not in caps:
            raise error_proto("-ERR STLS not supported by server")
        if context is None:
            context = ssl._create_stdlib_context()
        resp = self._shortcmd("STLS")
        if self._received_early():
            self.close()
            raise error_proto("-ERR plaintext bytes arrived after the +OK to STLS (STARTTLS injection)")
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("rb")
        self._tls_established = True
        return resp


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
        ``keyfile``/``certfile`` are deprecated (use ``context``). Without ``context`` the
        certificate is not verified (as the standard module).
        """

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
                context = ssl._create_stdlib_context(certfile=certfile, keyfile=keyfile)
            self.context = context
            POP3.__init__(self, host, port, timeout)

        def _create_socket(self, timeout):
            sock = POP3._create_socket(self, timeout)
            return self.context.wrap_socket(sock, server_hostname=self.host)

        def stls(self, keyfile=None, certfile=None, context=None):
            """Always raises: STLS makes no sense on a TLS connection."""
            raise error_proto("-ERR TLS session already established")

    __all__.append("POP3_SSL")
