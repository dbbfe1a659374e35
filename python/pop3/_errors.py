"""The exceptions of the modern clients."""

from ._core import Error


class ServerError(Error):
    """The server answered ``-ERR``. The session goes on (unless it was the greeting or
    QUIT).

    Attributes: ``command`` (the keyword, e.g. ``"RETR"``), ``code`` (the RFC 2449/3206
    response code without brackets, e.g. ``"IN-USE"``, ``"AUTH"``, ``"SYS/TEMP"``, or
    ``None``), ``text`` (the rest of the line)."""

    def __init__(self, command, code, text):
        self.command = command
        self.code = code
        self.text = text
        shown = f"[{code}] " if code else ""
        super().__init__(f"the server refused {command}: -ERR {shown}{text}")

    @property
    def is_transient(self):
        """Whether the same command may succeed later unchanged (IN-USE, LOGIN-DELAY,
        SYS/TEMP)."""
        return self.code in ("IN-USE", "LOGIN-DELAY", "SYS/TEMP")


def server_error(event):
    """The ``ServerError`` of an ``err`` event."""
    return ServerError(event.command, event.code, event.text or "")
