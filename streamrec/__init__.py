"""streamrec: an event-driven streaming recommender with incremental updates."""

from streamrec.errors import StreamrecError
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings

__version__ = "0.1.0"

__all__ = ["HybridModel", "ModelConfig", "Settings", "StreamrecError", "__version__"]
