"""The operations of the modern clients, written once for the blocking and the asyncio
driver.

Each operation is a generator over the core (``pop3._core.Client``): it queues commands,
consumes the events of their replies, and yields only to ask its driver for I/O: ``IO``
(write what ``poll_transmit`` gives, then read once into ``receive_data``) or ``TLS`` (do
the TLS handshake on the connection now, then call ``tls_established``). Its return value is
the typed result. The drivers (``client.py``, ``aio.py``) decide nothing about POP3.
"""

import os

from ._core import ProtocolError, UsageError
from ._errors import ServerError, server_error

IO = "io"
TLS = "tls"


def _trace(ev):
    """A trace line to the ``pop3`` logger (imported on the first one: tracing is opt-in)."""
    import logging

    logging.getLogger("pop3").debug("%s", ev.text)


def nonce():
    """A fresh SCRAM client nonce: 24 random octets as hexadecimal (printable, no comma)."""
    return os.urandom(24).hex()


def _next(core):
    """The next event worth an operation's attention (traces go to the ``pop3`` logger)."""
    while True:
        ev = core.poll_event()
        if ev is None or ev.kind != "trace":
            return ev
        _trace(ev)


def wait(core, ids, on_event=None):
    """Runs until every command of ``ids`` has its terminal event; ``on_event`` sees the
    events of those commands. Returns the terminal events, in order. Raises the first
    ``-ERR`` as ``ServerError`` (after all the commands are answered, so the session stays in
    step)."""
    pending = set(ids)
    terminals = {}
    while pending:
        ev = _next(core)
        if ev is None:
            yield IO
            continue
        if ev.id in pending:
            if on_event is not None:
                on_event(ev)
            if ev.terminal:
                pending.discard(ev.id)
                terminals[ev.id] = ev
    out = [terminals[i] for i in ids]
    for ev in out:
        if ev.kind == "err":
            raise server_error(ev)
    return out


def settle(core):
    """Runs until the core has nothing queued, in flight or unreported (the greeting and the
    automatic CAPA). Returns the greeting event, if one arrived."""
    greeting = None
    while not core.is_idle or core.phase == "greeting":
        if core.phase == "closed":
            break
        ev = _next(core)
        if ev is None:
            yield IO
        elif ev.kind == "greeting":
            greeting = ev
    return greeting


def open_session(core, starttls):
    """The greeting, the automatic CAPA, and STLS when ``starttls``. Returns the greeting."""
    greeting = yield from settle(core)
    if greeting is None or not greeting.ok:
        if greeting is None:
            raise ProtocolError("the server closed the connection before its greeting")
        raise ServerError("greeting", greeting.code, greeting.text or "")
    if starttls:
        caps = core.capabilities
        if caps is not None and not caps.stls:
            raise UsageError("the server does not offer STLS")
        sid = core.stls()
        (ev,) = yield from wait(core, [sid])
        if ev.kind != "starttls":
            raise ProtocolError(f"STLS was not accepted: {ev!r}")
        yield TLS
        core.tls_established()
        yield from settle(core)
    return greeting


def login(core, user, password, allow_apop, allow_plaintext):
    """The core's ``choose_login`` and the login; returns the method used."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    method, ids = core.login(
        user,
        password,
        nonce(),
        allow_apop=allow_apop,
        allow_plaintext=allow_plaintext,
    )
    yield from wait(core, ids)
    return method


def simple(core, cid):
    """A single-line command: its ``+OK`` text."""
    (ev,) = yield from wait(core, [cid])
    return ev.text


def stat(core):
    got = []
    yield from wait(core, [core.stat()], lambda ev: ev.kind == "stat" and got.append(ev))
    return got[0].msg, got[0].size


def listing(core, cid, kind, value):
    """``{msg: value}`` of a LIST or UIDL reply."""
    out = {}

    def on(ev):
        if ev.kind == kind:
            out[ev.msg] = getattr(ev, value)

    yield from wait(core, [cid], on)
    return out


def capa(core):
    yield from wait(core, [core.capa()])
    return core.capabilities


def body(core, cid, sink):
    """A RETR/TOP body written to ``sink`` chunk by chunk; returns the octets."""
    octets = 0
    while True:
        ev = core.poll_body_into(cid, sink)
        if ev is None:
            yield IO
            continue
        if ev.kind == "trace":
            _trace(ev)
        elif ev.id == cid:
            if ev.kind == "body_end":
                octets = ev.octets
            elif ev.kind == "body":  # pragma: no cover - poll_body_into writes these
                sink.write(ev.chunk)
            elif ev.terminal:
                if ev.kind == "err":
                    raise server_error(ev)
                return octets


def retr_many(core, msgs, sink_for):
    """RETR of every message of ``msgs``, pipelined as the server allows. ``sink_for(msg)``
    gives each message's binary file object when its body starts. Returns ``{msg: octets or
    ServerError}``."""
    ids = core.retr_many(list(msgs))
    result = {}
    for msg, cid in zip(msgs, ids):
        sink = None
        while True:
            if sink is not None:
                ev = core.poll_body_into(cid, sink)
            else:
                ev = _next(core)
            if ev is None:
                yield IO
                continue
            if ev.kind == "trace":
                _trace(ev)
                continue
            if ev.id != cid:
                continue
            if ev.kind == "body":
                sink = sink_for(msg)
                sink.write(ev.chunk)
            elif ev.kind == "body_end":
                if sink is None:  # an empty message
                    sink_for(msg)
                result[msg] = ev.octets
            elif ev.terminal:
                if ev.kind == "err":
                    result[msg] = server_error(ev)
                break
    return result


def quit_(core):
    if core.phase == "closed":
        return None
    cid = core.quit()
    (ev,) = yield from wait(core, [cid])
    return ev.text
