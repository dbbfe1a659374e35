"""The modern blocking client: Python's ``socket`` and ``ssl`` move the bytes, the core
decides."""

import io
import socket

from . import _core, _ops

_READ = 256 * 1024


class Message(bytes):
    """A retrieved message (bytes, CRLF line ends as sent, dot-unstuffed)."""


class Client:
    """A POP3 session over a blocking socket.

    ``Client(host, port=None, *, tls="implicit", ssl_context=None, timeout=60.0,
    allow_plaintext=False, pipeline_window=None, trace=False)`` connects, reads the greeting
    and the capabilities, and with ``tls="starttls"`` upgrades with STLS before returning.

    - ``tls``: ``"implicit"`` (port 995, the default), ``"starttls"`` (port 110, STLS
      required) or ``"none"`` (port 110; logging in then needs ``allow_plaintext=True``).
    - ``ssl_context``: an ``ssl.SSLContext``; default ``ssl.create_default_context()``, which
      verifies the certificate and the host name.
    - ``timeout``: seconds for the connection and for each read, or ``None``.
    - ``sock``: a connected socket to use instead of connecting to ``host`` (a proxy's
      socket, say); ``host`` still names the server for TLS.

    Every ``-ERR`` raises :class:`pop3.ServerError` (with ``code``); a server that breaks the
    protocol raises :class:`pop3.ProtocolError` and the connection is closed; a call that is
    invalid now raises :class:`pop3.UsageError` and sends nothing. Use it as a context
    manager: ``QUIT`` on a clean exit, just close on an exception.
    """

    def __init__(
        self,
        host,
        port=None,
        *,
        tls="implicit",
        ssl_context=None,
        timeout=60.0,
        allow_plaintext=False,
        pipeline_window=None,
        trace=False,
        sock=None,
    ):
        if tls not in ("implicit", "starttls", "none"):
            raise ValueError('tls must be "implicit", "starttls" or "none"')
        if port is None:
            port = 995 if tls == "implicit" else 110
        self.host = host
        self.port = port
        self._allow_plaintext = allow_plaintext
        self._context = ssl_context
        self._core = _core.Client(
            implicit_tls=tls == "implicit",
            allow_plaintext_auth=allow_plaintext,
            pipeline_window=pipeline_window,
            trace=trace,
        )
        if sock is None:
            sock = socket.create_connection((host, port), timeout)
        else:
            sock.settimeout(timeout)
        self.sock = sock
        try:
            if tls == "implicit":
                self.sock = self._tls_context().wrap_socket(self.sock, server_hostname=host)
            self.greeting = self._run(_ops.open_session(self._core, tls == "starttls"))
        except BaseException:
            self.close()
            raise

    # ---- the driver ----

    def _tls_context(self):
        if self._context is None:
            import ssl  # only for TLS connections (start-up time and memory)

            self._context = ssl.create_default_context()
        return self._context

    def _run(self, op):
        """Drives one operation: I/O when it asks, its result when it returns."""
        core = self._core
        if self.sock is None:
            raise _core.UsageError("the connection is closed")
        try:
            action = next(op)
            while True:
                if action == _ops.IO:
                    out = core.poll_transmit()
                    if out:
                        self.sock.sendall(out)
                    data = self.sock.recv(_READ)
                    if data:
                        core.receive_data(data)
                    else:
                        core.receive_eof()
                else:  # _ops.TLS
                    self.sock = self._tls_context().wrap_socket(
                        self.sock, server_hostname=self.host
                    )
                action = op.send(None)
        except StopIteration as done:
            out = core.poll_transmit()
            if out:
                self.sock.sendall(out)
            return done.value
        except (_core.ProtocolError, OSError):
            # The connection is unusable: close it without QUIT, so nothing is committed.
            self.close()
            raise

    # ---- getters ----

    @property
    def capabilities(self):
        """The latest :class:`pop3.Capabilities` (``None`` if the server has no CAPA)."""
        return self._core.capabilities

    @property
    def is_tls(self):
        """Whether the connection is encrypted."""
        return self._core.is_tls

    @property
    def phase(self):
        """``authorization``, ``transaction``, ``closed``, ..."""
        return self._core.phase

    # ---- commands ----

    def login(self, user, password, *, allow_apop=False):
        """Logs in with the best mechanism the server offers (SCRAM-SHA-256 > CRAM-MD5 >
        APOP if allowed > PLAIN > LOGIN > USER/PASS); returns its name."""
        return self._run(
            _ops.login(self._core, user, password, allow_apop, self._allow_plaintext)
        )

    def auth(self, mechanism, user, password, *, nonce=None):
        """``AUTH`` with a named mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, XOAUTH2)."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        cid = self._core.auth(mechanism, user, password, nonce or _ops.nonce())
        return self._run(_ops.simple(self._core, cid))

    def stat(self):
        """``(message count, total size)``."""
        return self._run(_ops.stat(self._core))

    def list(self, msg=None):
        """``{msg: size}``, or the size of ``msg``."""
        got = self._run(_ops.listing(self._core, self._core.list(msg), "list", "size"))
        return got[msg] if msg is not None else got

    def uidl(self, msg=None):
        """``{msg: unique id}``, or the unique id of ``msg``."""
        got = self._run(_ops.listing(self._core, self._core.uidl(msg), "uidl", "uid"))
        return got[msg] if msg is not None else got

    def retr(self, msg, file=None):
        """Message ``msg``: written to the binary ``file`` chunk by chunk (memory stays
        bounded whatever its size; returns the octets), or returned as :class:`Message`."""
        if file is not None:
            return self._run(_ops.body(self._core, self._core.retr(msg), file))
        buf = io.BytesIO()
        self._run(_ops.body(self._core, self._core.retr(msg), buf))
        return Message(buf.getvalue())

    def top(self, msg, lines):
        """The headers and the first ``lines`` body lines of ``msg``."""
        buf = io.BytesIO()
        self._run(_ops.body(self._core, self._core.top(msg, lines), buf))
        return Message(buf.getvalue())

    def retr_many(self, msgs, sink=None):
        """Retrieves many messages, pipelined when the server offers PIPELINING (one round
        trip for a window of up to 512 commands instead of one per message).

        ``sink(msg)`` returns a binary file object for each message as its body starts;
        the result is then ``{msg: octets or ServerError}``. Without ``sink`` the result is
        ``{msg: Message or ServerError}``."""
        msgs = list(msgs)
        if sink is not None:
            return self._run(_ops.retr_many(self._core, msgs, sink))
        bufs = {}

        def to_buffer(msg):
            bufs[msg] = io.BytesIO()
            return bufs[msg]

        got = self._run(_ops.retr_many(self._core, msgs, to_buffer))
        return {
            m: (Message(bufs[m].getvalue()) if not isinstance(v, Exception) else v)
            for m, v in got.items()
        }

    def dele(self, msg):
        """Marks ``msg`` as deleted (committed by ``quit``)."""
        return self._run(_ops.simple(self._core, self._core.dele(msg)))

    def rset(self):
        """Unmarks the deleted messages."""
        return self._run(_ops.simple(self._core, self._core.rset()))

    def noop(self):
        """``NOOP``."""
        return self._run(_ops.simple(self._core, self._core.noop()))

    def utf8(self):
        """``UTF8`` (RFC 6856)."""
        return self._run(_ops.simple(self._core, self._core.utf8()))

    def capa(self):
        """Asks CAPA again; returns the :class:`pop3.Capabilities`."""
        return self._run(_ops.capa(self._core))

    def quit(self):
        """``QUIT`` (the server commits the deletions), then closes."""
        try:
            return self._run(_ops.quit_(self._core))
        finally:
            self.close()

    def close(self):
        """Closes the connection without QUIT (nothing is committed)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.sock is not None:
            self.quit()
        else:
            self.close()
