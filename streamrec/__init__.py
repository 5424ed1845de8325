"""streamrec: an event-driven streaming recommender with incremental updates."""

from streamrec.errors import StreamrecError
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.client import Client, Recommendations, SyncClient

__version__ = "0.1.0"

__all__ = [
    "Client",
    "HybridModel",
    "ModelConfig",
    "Recommendations",
    "Settings",
    "StreamrecError",
    "SyncClient",
    "__version__",
]
