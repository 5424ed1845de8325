"""Topics, message schemas and codecs, the embedded broker, and the client SDK.

The wire messages are in :mod:`streamrec.stream.schemas`; the SDK is :class:`Client`
(async) and :class:`SyncClient`.
"""

from streamrec.stream import schemas
from streamrec.stream.client import Client, Recommendations, SyncClient
from streamrec.stream.topics import Topics

__all__ = ["Client", "Recommendations", "SyncClient", "Topics", "schemas"]
