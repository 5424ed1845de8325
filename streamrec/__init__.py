"""streamrec: an event-driven streaming recommender with incremental updates.

The names below are imported on first use (PEP 562): ``import streamrec`` alone (the
supervisor of ``streamrec up``, the index build child) loads neither numba nor aiokafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.errors import StreamrecError
from streamrec.lazy import lazy_names

if TYPE_CHECKING:
    from streamrec.model import HybridModel, ModelConfig
    from streamrec.settings import Settings
    from streamrec.stream.client import Client, Recommendations, SyncClient

__version__ = "0.1.0"

#: The modules that define the public names.
_WHERE = {
    "streamrec.stream.client": ("Client", "Recommendations", "SyncClient"),
    "streamrec.model.hybrid": ("HybridModel",),
    "streamrec.model.config": ("ModelConfig",),
    "streamrec.settings": ("Settings",),
}

__getattr__ = lazy_names(__name__, _WHERE)


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
