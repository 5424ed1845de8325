"""Inner-product retrieval: Annoy ('dot') index snapshots, the fresh-item buffer, exact search.

Pure numeric code: nothing here imports Kafka, faust or SQL libraries.
"""

from streamrec.index.ann import AnnSnapshot, build_snapshot, exact_top_k, recall_at_k
from streamrec.index.files import IndexFiles, IndexManifest
from streamrec.index.live import FreshBuffer, LiveIndex

__all__ = [
    "AnnSnapshot",
    "FreshBuffer",
    "IndexFiles",
    "IndexManifest",
    "LiveIndex",
    "build_snapshot",
    "exact_top_k",
    "recall_at_k",
]
