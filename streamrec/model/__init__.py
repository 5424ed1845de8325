"""The numeric core: hybrid embeddings, numba SGD kernels, scoring, checkpoints.

Pure numpy/numba: nothing here imports Kafka or SQL code.

The names below are imported on first use (PEP 562): a process that needs only the
configuration (``streamrec up``'s supervisor, the index build child) loads no numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.lazy import lazy_names

if TYPE_CHECKING:
    from streamrec.model.checkpoint import load, read_header, save
    from streamrec.model.config import DEFAULT_EVENT_WEIGHTS, LOSSES, ModelConfig
    from streamrec.model.hybrid import HybridModel, LearnStats
    from streamrec.model.popularity import DecayedPopularity
    from streamrec.model.replica import ChangeSet
    from streamrec.model.topk import ModelTopK, TopK
    from streamrec.model.warm import warm_up

#: The modules that define the public names.
_WHERE = {
    "streamrec.model.checkpoint": ("load", "read_header", "save"),
    "streamrec.model.config": ("DEFAULT_EVENT_WEIGHTS", "LOSSES", "ModelConfig"),
    "streamrec.model.hybrid": ("HybridModel", "LearnStats"),
    "streamrec.model.popularity": ("DecayedPopularity",),
    "streamrec.model.replica": ("ChangeSet",),
    "streamrec.model.topk": ("ModelTopK", "TopK"),
    "streamrec.model.warm": ("warm_up",),
}

__getattr__ = lazy_names(__name__, _WHERE)


__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "LOSSES",
    "ChangeSet",
    "DecayedPopularity",
    "HybridModel",
    "LearnStats",
    "ModelConfig",
    "ModelTopK",
    "TopK",
    "load",
    "read_header",
    "save",
    "warm_up",
]
