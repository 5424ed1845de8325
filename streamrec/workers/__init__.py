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

#: Each public name and the module that defines it.
_WHERE = {
    "EntitySink": "streamrec.workers.training.sinks",
    "Indexer": "streamrec.workers.serving.indexer",
    "ItemAttributeSource": "streamrec.workers.attributes",
    "MemoryEntitySink": "streamrec.workers.training.sinks",
    "MemoryItemAttributes": "streamrec.workers.attributes",
    "ModelState": "streamrec.workers.state",
    "NullEntitySink": "streamrec.workers.training.sinks",
    "Recommender": "streamrec.workers.serving.recommender",
    "RecommenderCore": "streamrec.workers.serving.recommender",
    "Stack": "streamrec.workers.stack",
    "Trainer": "streamrec.workers.training.trainer",
    "TrainerCore": "streamrec.workers.training.core",
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
