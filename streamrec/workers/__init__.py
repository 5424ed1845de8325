"""Workers: trainer, indexer and recommender around the model and the index.

Kafka clients are imported when a worker starts, so the broker-free parts (re-ranking,
deltas, the trainer and recommender cores) can be used and tested on their own.
"""

from streamrec.workers.indexer import Indexer
from streamrec.workers.recommender import Recommender, RecommenderCore
from streamrec.workers.seams import (
    EntitySink,
    ItemAttributes,
    MemoryEntitySink,
    MemoryItemAttributes,
    NullEntitySink,
)
from streamrec.workers.stack import Stack
from streamrec.workers.state import ModelState
from streamrec.workers.trainer import Trainer
from streamrec.workers.training import TrainerCore

__all__ = [
    "EntitySink",
    "Indexer",
    "ItemAttributes",
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
