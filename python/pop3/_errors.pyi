from typing import Optional

from ._core import Error, Event

class ServerError(Error):
    command: str
    code: Optional[str]
    text: str
    def __init__(self, command: str, code: Optional[str], text: str) -> None: ...
    @property
    def is_transient(self) -> bool: ...

def server_error(event: Event) -> ServerError: ...
