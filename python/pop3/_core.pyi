"""Type stubs of pop3._core, the Rust extension (the sans-IO core)."""

import builtins
from typing import Literal, Optional, Protocol, final

_Phase = Literal["greeting", "authorization", "tls_handshake", "transaction", "update", "closed"]
_EventKind = Literal[
    "greeting", "ok", "err", "stat", "list", "uidl", "lang", "capabilities", "body",
    "body_end", "starttls", "logged_in", "quirk", "cancelled", "trace",
]

__all__ = [
    "BodyDecoder",
    "Capabilities",
    "Client",
    "Error",
    "Event",
    "ProtocolError",
    "UsageError",
    "apop_digest",
    "greeting_timestamp",
    "is_safe_argument",
]

class Error(Exception):
    """The base of every error of the pop3 package."""

class ProtocolError(Error):
    """The server broke the protocol or the connection: the session is over (sticky)."""

class UsageError(Error):
    """The caller asked for something invalid now: nothing was sent."""

class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...

@final
class Capabilities:
    """The capabilities a server announced in answer to CAPA."""
    top: bool
    user: bool
    sasl: list[str]
    resp_codes: bool
    auth_resp_code: bool
    pipelining: bool
    uidl: bool
    stls: bool
    login_delay: Optional[int]
    expire: Optional[str]
    implementation: Optional[str]
    utf8: bool
    lang: bool
    other: list[str]
    lines: list[str]
    def supports_sasl(self, name: str) -> bool: ...

@final
class Event:
    """One thing the server said (an owned copy of the core's Event)."""
    kind: _EventKind
    id: Optional[int]
    command: Optional[str]
    ok: Optional[bool]
    code: Optional[str]
    text: Optional[str]
    line: Optional[bytes]
    """The reply's status line exactly as received, without its line end (greeting, ok,
    err, starttls); None for the other kinds."""
    apop: Optional[bool]
    msg: Optional[int]
    size: Optional[int]
    uid: Optional[str]
    chunk: Optional[bytes]
    octets: Optional[int]
    capabilities: Optional[Capabilities]
    @property
    def terminal(self) -> bool: ...

@final
class Client:
    """The sans-IO POP3 client: receive_data in, poll_transmit and poll_event out."""
    def __new__(
        cls,
        *,
        implicit_tls: bool = False,
        allow_plaintext_auth: bool = False,
        relaxed_apop_timestamp: bool = False,
        server_enforces_phases: bool = False,
        loose_status_indicator: bool = False,
        auto_capa: bool = True,
        pipeline_window: Optional[int] = None,
        pipelining: Literal["auto", "always", "never"] = "auto",
        max_status_line: Optional[int] = None,
        max_body_line: Optional[int] = None,
        min_scram_iterations: Optional[int] = None,
        trace: bool = False,
    ) -> "Client": ...
    @property
    def phase(self) -> _Phase: ...
    @property
    def capabilities(self) -> Optional[Capabilities]: ...
    @property
    def is_tls(self) -> bool: ...
    @property
    def apop_available(self) -> bool: ...
    @property
    def is_utf8(self) -> bool: ...
    @property
    def is_idle(self) -> bool: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def buffered(self) -> int: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def awaiting(self) -> str: ...
    def receive_data(self, data: bytes) -> None: ...
    def receive_eof(self) -> None: ...
    def tls_established(self) -> None: ...
    def user(self, name: str) -> int: ...
    def pass_(self, password: bytes) -> int: ...
    def apop(self, user: str, secret: bytes) -> int: ...
    def rpop(self, user: str) -> int: ...
    def stat(self) -> int: ...
    def list(self, msg: Optional[int] = None) -> int: ...
    def uidl(self, msg: Optional[int] = None) -> int: ...
    def retr(self, msg: int) -> int: ...
    def retr_many(self, msgs: builtins.list[int]) -> builtins.list[int]: ...
    def top(self, msg: int, lines: int) -> int: ...
    def dele(self, msg: int) -> int: ...
    def noop(self) -> int: ...
    def rset(self) -> int: ...
    def quit(self) -> int: ...
    def capa(self) -> int: ...
    def stls(self) -> int: ...
    def utf8(self) -> int: ...
    def lang(self, tag: Optional[str] = None) -> int: ...
    def extension(self, line: str, multi_line: bool = False) -> int: ...
    def auth(self, mechanism: str, user: str, password: bytes, nonce: Optional[str] = None) -> int: ...
    def login(
        self, user: str, password: bytes, nonce: str, *, allow_apop: bool = False,
        allow_plaintext: bool = False,
    ) -> tuple[str, builtins.list[int]]: ...
    def poll_transmit(self) -> bytes: ...
    def poll_event(self) -> Optional[Event]: ...
    def poll_body_into(self, id: int, sink: _Writable) -> Optional[Event]: ...

@final
class BodyDecoder:
    """The core's streaming dot-unstuffer for one multi-line reply."""
    def __new__(cls) -> "BodyDecoder": ...
    def decode(self, data: bytes) -> tuple[bytes, int, bool]: ...
    @property
    def octets(self) -> int: ...

def greeting_timestamp(greeting: bytes, relaxed: bool = False) -> Optional[bytes]: ...
def apop_digest(timestamp: bytes, secret: bytes) -> bytes: ...
def is_safe_argument(arg: bytes) -> bool: ...
