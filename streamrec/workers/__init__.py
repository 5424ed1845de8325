"""Workers: trainer, indexer and recommender around the model and the index.

Kafka clients are imported when a worker starts, so the broker-free parts (re-ranking,
deltas, the trainer and recommender cores) can be used and tested on their own.  The
names below are imported on first use (PEP 562): ``streamrec up``'s supervisor, which
needs only the metrics and the web server, loads no model (and no numba).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.lazy import lazy_names

if TYPE_CHECKING:
    from streamrec.workers.attributes import ItemAttributeSource, MemoryItemAttributes
    from streamrec.workers.serving.indexer import Indexer
    from streamrec.workers.serving.recommender import Recommender, RecommenderCore
    from streamrec.workers.stack import Stack
    from streamrec.workers.state import ModelState
    from streamrec.workers.training.core import TrainerCore
    from streamrec.workers.training.sinks import EntitySink, MemoryEntitySink, NullEntitySink
    from streamrec.workers.training.trainer import Trainer

#: The modules that define the public names.
_WHERE = {
    "streamrec.workers.training.sinks": ("EntitySink", "MemoryEntitySink", "NullEntitySink"),
    "streamrec.workers.serving.indexer": ("Indexer",),
    "streamrec.workers.attributes": ("ItemAttributeSource", "MemoryItemAttributes"),
    "streamrec.workers.state": ("ModelState",),
    "streamrec.workers.serving.recommender": ("Recommender", "RecommenderCore"),
    "streamrec.workers.stack": ("Stack",),
    "streamrec.workers.training.trainer": ("Trainer",),
    "streamrec.workers.training.core": ("TrainerCore",),
}

__getattr__ = lazy_names(__name__, _WHERE)


__all__ = [
    "EntitySink",
    "Indexer",
    "ItemAttributeSource",
    "MemoryEntitySink",
    "MemoryItemAttributes",
    "ModelState",
    "NullEntitySink",
    "Recommender",
    "RecommenderCore",
    "Stack",
    "Trainer",
    "TrainerCore",
]
