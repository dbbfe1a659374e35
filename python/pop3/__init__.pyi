from ._core import Capabilities as Capabilities
from ._core import Error as Error
from ._core import Event as Event
from ._core import ProtocolError as ProtocolError
from ._core import UsageError as UsageError
from ._errors import ServerError as ServerError
from .aio import AsyncClient as AsyncClient
from .client import Client as Client
from .client import Message as Message

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
