"""POP3 for Python on a sans-IO Rust core (``pop3-proto``).

- :mod:`pop3.poplib`: a drop-in for the standard library's ``poplib`` (same API, safer).
- :class:`pop3.Client`: a modern blocking client (best login mechanism, pipelined
  ``retr_many``, ``retr`` streaming into a file in bounded memory, typed capabilities,
  errors carrying the server's response code).
- :class:`pop3.AsyncClient`: the same on asyncio streams.
- :mod:`pop3._core`: the core itself (``Client``: ``receive_data``, ``poll_event``,
  ``poll_transmit``) for your own event loop.

Python's ``socket``, ``ssl`` and ``asyncio`` move the bytes; the Rust core never touches a
socket.
"""

from ._core import Capabilities, Error, Event, ProtocolError, UsageError
from ._errors import ServerError
from .client import Client, Message


def __getattr__(name):
    # asyncio is imported only by those who use it (it costs a blocking client's start-up
    # time and memory).
    if name == "AsyncClient":
        from .aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'pop3' has no attribute {name!r}")

__all__ = [
    "AsyncClient",
    "Capabilities",
    "Client",
    "Error",
    "Event",
    "Message",
    "ProtocolError",
    "ServerError",
    "UsageError",
]
