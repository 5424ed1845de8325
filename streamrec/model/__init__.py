"""The numeric core: hybrid embeddings, numba SGD kernels, scoring, checkpoints.

Pure numpy/numba: nothing here imports Kafka or SQL code.

The names below are imported on first use (PEP 562): a process that needs only the
configuration (``streamrec up``'s supervisor, the index build child) loads no numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamrec.lazy import lazy_names

if TYPE_CHECKING:
    from streamrec.model.baseline_kernels import (
        add_similarity_row,
        add_similarity_row_listed,
        cooccurrence_add,
        cooccurrence_fit,
        cooccurrence_similarities,
        feature_list_move,
        feature_lists_insert,
        feature_lists_raise,
        feature_lists_rebuild,
        feature_lists_remove,
        leaders_raise,
        leaders_top,
        leaders_track,
        listed_top_k,
        recent_features_ordered,
        recent_features_top_k,
        rehash_pairs,
        shared_feature_counts,
        top_rows,
    )
    from streamrec.model.checkpoint import load, read_header, save
    from streamrec.model.config import DEFAULT_EVENT_WEIGHTS, LOSSES, ModelConfig
    from streamrec.model.hybrid import HybridModel, LearnStats
    from streamrec.model.popularity import DecayedPopularity
    from streamrec.model.replica import ChangeSet
    from streamrec.model.topk import ModelTopK, TopK

#: Each public name and the module that defines it.
_WHERE = {
    "add_similarity_row": "streamrec.model.baseline_kernels",
    "add_similarity_row_listed": "streamrec.model.baseline_kernels",
    "cooccurrence_add": "streamrec.model.baseline_kernels",
    "cooccurrence_fit": "streamrec.model.baseline_kernels",
    "cooccurrence_similarities": "streamrec.model.baseline_kernels",
    "feature_list_move": "streamrec.model.baseline_kernels",
    "feature_lists_insert": "streamrec.model.baseline_kernels",
    "feature_lists_raise": "streamrec.model.baseline_kernels",
    "feature_lists_rebuild": "streamrec.model.baseline_kernels",
    "feature_lists_remove": "streamrec.model.baseline_kernels",
    "leaders_raise": "streamrec.model.baseline_kernels",
    "leaders_top": "streamrec.model.baseline_kernels",
    "leaders_track": "streamrec.model.baseline_kernels",
    "listed_top_k": "streamrec.model.baseline_kernels",
    "recent_features_ordered": "streamrec.model.baseline_kernels",
    "recent_features_top_k": "streamrec.model.baseline_kernels",
    "rehash_pairs": "streamrec.model.baseline_kernels",
    "shared_feature_counts": "streamrec.model.baseline_kernels",
    "top_rows": "streamrec.model.baseline_kernels",
    "load": "streamrec.model.checkpoint",
    "read_header": "streamrec.model.checkpoint",
    "save": "streamrec.model.checkpoint",
    "DEFAULT_EVENT_WEIGHTS": "streamrec.model.config",
    "LOSSES": "streamrec.model.config",
    "ModelConfig": "streamrec.model.config",
    "HybridModel": "streamrec.model.hybrid",
    "LearnStats": "streamrec.model.hybrid",
    "DecayedPopularity": "streamrec.model.popularity",
    "ChangeSet": "streamrec.model.replica",
    "ModelTopK": "streamrec.model.topk",
    "TopK": "streamrec.model.topk",
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
    "add_similarity_row",
    "add_similarity_row_listed",
    "cooccurrence_add",
    "cooccurrence_fit",
    "cooccurrence_similarities",
    "feature_list_move",
    "feature_lists_insert",
    "feature_lists_raise",
    "feature_lists_rebuild",
    "feature_lists_remove",
    "leaders_raise",
    "leaders_top",
    "leaders_track",
    "listed_top_k",
    "load",
    "read_header",
    "recent_features_ordered",
    "recent_features_top_k",
    "rehash_pairs",
    "save",
    "shared_feature_counts",
    "top_rows",
]
