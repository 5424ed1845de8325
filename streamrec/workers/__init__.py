"""Workers: trainer, indexer and recommender around the model and the index.

Kafka clients are imported when a worker starts, so the broker-free parts (re-ranking,
deltas, the trainer and recommender cores) can be used and tested on their own.
"""

from streamrec.workers.attributes import ItemAttributeSource, MemoryItemAttributes
from streamrec.workers.serving.indexer import Indexer
from streamrec.workers.serving.recommender import Recommender, RecommenderCore
from streamrec.workers.stack import Stack
from streamrec.workers.state import ModelState
from streamrec.workers.training.core import TrainerCore
from streamrec.workers.training.sinks import EntitySink, MemoryEntitySink, NullEntitySink
from streamrec.workers.training.trainer import Trainer

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
