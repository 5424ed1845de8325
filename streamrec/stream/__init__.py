"""Topics, message schemas and codecs, the embedded broker, and the client SDK."""

from streamrec.stream.client import Client, Recommendations, SyncClient
from streamrec.stream.schemas import (
    SCHEMA_VERSION,
    DeadLetter,
    Delta,
    Interaction,
    ItemUpdate,
    NewItem,
    NewUser,
    RecRequest,
    RecResponse,
    UserUpdate,
    Watermark,
)
from streamrec.stream.topics import Topics

__all__ = [
    "SCHEMA_VERSION",
    "Client",
    "DeadLetter",
    "Delta",
    "Interaction",
    "ItemUpdate",
    "NewItem",
    "NewUser",
    "RecRequest",
    "RecResponse",
    "Recommendations",
    "SyncClient",
    "Topics",
    "UserUpdate",
    "Watermark",
]
