"""The asyncio client: asyncio streams move the bytes, the core decides (the operations are
the blocking client's, from ``_ops``)."""

import asyncio
import io
import ssl as _ssl

from . import _core, _ops
from .client import Message

_READ = 256 * 1024


class AsyncClient:
    """A POP3 session over asyncio streams; the same methods as :class:`pop3.Client`, as
    coroutines. Create it with ``await AsyncClient.connect(host, ...)`` (same arguments), and
    use ``async with``. STARTTLS needs Python 3.11 (``StreamWriter.start_tls``)."""

    def __init__(self, host, port, core, reader, writer, context, allow_plaintext, timeout):
        self.host = host
        self.port = port
        self._core = core
        self._reader = reader
        self._writer = writer
        self._context = context
        self._allow_plaintext = allow_plaintext
        self._timeout = timeout
        self.greeting = None

    @classmethod
    async def connect(
        cls,
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
        """Connects, reads the greeting and the capabilities, STLS with ``tls="starttls"``.
        ``sock``: a connected socket to use instead of connecting (a proxy's)."""
        if tls not in ("implicit", "starttls", "none"):
            raise ValueError('tls must be "implicit", "starttls" or "none"')
        if port is None:
            port = 995 if tls == "implicit" else 110
        if ssl_context is None and tls != "none":
            ssl_context = _ssl.create_default_context()
        core = _core.Client(
            implicit_tls=tls == "implicit",
            allow_plaintext_auth=allow_plaintext,
            pipeline_window=pipeline_window,
            trace=trace,
        )
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                None if sock is not None else host,
                None if sock is not None else port,
                ssl=ssl_context if tls == "implicit" else None,
                server_hostname=host if tls == "implicit" else None,
                limit=_READ,
                sock=sock,
            ),
            timeout,
        )
        self = cls(host, port, core, reader, writer, ssl_context, allow_plaintext, timeout)
        try:
            self.greeting = await self._run(_ops.open_session(core, tls == "starttls"))
        except BaseException:
            self.close()
            raise
        return self

    async def _run(self, op):
        core = self._core
        if self._writer is None:
            raise _core.UsageError("the connection is closed")
        try:
            action = next(op)
            while True:
                if action == _ops.IO:
                    out = core.poll_transmit()
                    if out:
                        self._writer.write(out)
                        await self._writer.drain()
                    data = await asyncio.wait_for(self._reader.read(_READ), self._timeout)
                    if data:
                        core.receive_data(data)
                    else:
                        core.receive_eof()
                else:  # _ops.TLS
                    if not hasattr(self._writer, "start_tls"):
                        raise _core.UsageError("STARTTLS with asyncio streams needs Python 3.11")
                    await self._writer.start_tls(self._context, server_hostname=self.host)
                action = op.send(None)
        except StopIteration as done:
            out = core.poll_transmit()
            if out:
                self._writer.write(out)
                await self._writer.drain()
            return done.value
        except (_core.ProtocolError, OSError, asyncio.TimeoutError):
            self.close()
            raise

    @property
    def capabilities(self):
        """The latest :class:`pop3.Capabilities`."""
        return self._core.capabilities

    @property
    def is_tls(self):
        return self._core.is_tls

    @property
    def phase(self):
        return self._core.phase

    async def login(self, user, password, *, allow_apop=False):
        """The best mechanism the server offers; returns its name."""
        return await self._run(
            _ops.login(self._core, user, password, allow_apop, self._allow_plaintext)
        )

    async def auth(self, mechanism, user, password, *, nonce=None):
        if isinstance(password, str):
            password = password.encode("utf-8")
        cid = self._core.auth(mechanism, user, password, nonce or _ops.nonce())
        return await self._run(_ops.simple(self._core, cid))

    async def stat(self):
        return await self._run(_ops.stat(self._core))

    async def list(self, msg=None):
        got = await self._run(_ops.listing(self._core, self._core.list(msg), "list", "size"))
        return got[msg] if msg is not None else got

    async def uidl(self, msg=None):
        got = await self._run(_ops.listing(self._core, self._core.uidl(msg), "uidl", "uid"))
        return got[msg] if msg is not None else got

    async def retr(self, msg, file=None):
        """Written to the binary ``file`` in bounded memory (returns the octets), or returned."""
        if file is not None:
            return await self._run(_ops.body(self._core, self._core.retr(msg), file))
        buf = io.BytesIO()
        await self._run(_ops.body(self._core, self._core.retr(msg), buf))
        return Message(buf.getvalue())

    async def top(self, msg, lines):
        buf = io.BytesIO()
        await self._run(_ops.body(self._core, self._core.top(msg, lines), buf))
        return Message(buf.getvalue())

    async def retr_many(self, msgs, sink=None):
        """Pipelined; see :meth:`pop3.Client.retr_many`."""
        msgs = list(msgs)
        if sink is not None:
            return await self._run(_ops.retr_many(self._core, msgs, sink))
        bufs = {}

        def to_buffer(msg):
            bufs[msg] = io.BytesIO()
            return bufs[msg]

        got = await self._run(_ops.retr_many(self._core, msgs, to_buffer))
        return {
            m: (Message(bufs[m].getvalue()) if not isinstance(v, Exception) else v)
            for m, v in got.items()
        }

    async def dele(self, msg):
        return await self._run(_ops.simple(self._core, self._core.dele(msg)))

    async def rset(self):
        return await self._run(_ops.simple(self._core, self._core.rset()))

    async def noop(self):
        return await self._run(_ops.simple(self._core, self._core.noop()))

    async def capa(self):
        return await self._run(_ops.capa(self._core))

    async def quit(self):
        try:
            return await self._run(_ops.quit_(self._core))
        finally:
            self.close()

    def close(self):
        """Closes without QUIT."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None and self._writer is not None:
            await self.quit()
        else:
            self.close()
