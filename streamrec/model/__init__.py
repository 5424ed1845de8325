"""The numeric core: hybrid embeddings, numba SGD kernels, scoring, checkpoints.

Pure numpy/numba: nothing here imports Kafka or SQL code.
"""

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
    posting_add,
    recent_features_candidates,
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
    "posting_add",
    "read_header",
    "recent_features_candidates",
    "recent_features_ordered",
    "recent_features_top_k",
    "rehash_pairs",
    "save",
    "shared_feature_counts",
    "top_rows",
]
