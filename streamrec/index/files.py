"""Index files shared by every server: one build, saved once, memory-mapped by each reader.

The indexer saves each snapshot as ``index-<n>.ann`` in a folder beside the checkpoints
(written under a temporary name, then renamed: a reader never opens a half-written
file), then points the manifest ``current.json`` at it (also written and renamed).
Readers load the file the manifest names with Annoy's ``load``, which memory-maps it: N
recommender processes share one copy of the index in the page cache.  The newest
:data:`KEEP` files stay; older ones are removed (a reader still mapping one keeps its
pages until it swaps: an unlinked file lives on while it is mapped).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from annoy import AnnoyIndex

from streamrec.index.ann import AnnSnapshot

MANIFEST = "current.json"
#: Index files kept on disk (the current one and its predecessors).
KEEP = 3


@dataclass(frozen=True)
class IndexManifest:
    """What ``current.json`` says: the file and how its snapshot was built."""

    file: str
    size: int
    dim: int
    version: int
    started_at: float
    built_at: float
    build_seconds: float
    trees: int
    search_k: int
    seq: int
    #: Rows to keep as candidates beside the index's answers (e.g. the highest biases).
    pinned: list[int] = field(default_factory=list)


class IndexFiles:
    """The index folder of one deployment (``<data dir>/index/<prefix>``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def staging_path(self) -> Path:
        """Where a builder writes the next index file (then :meth:`publish_file`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        seq = (previous.seq + 1) if previous is not None else 1
        return self.folder / f"index-{seq:08d}.ann"

    def publish_file(self, path: Path, manifest: IndexManifest) -> IndexManifest:
        """Make the built file ``path`` (from :meth:`staging_path`) the current index,
        described by ``manifest`` (its ``file`` and ``seq`` are taken from ``path``)."""
        seq = int(path.stem.split("-")[1])
        manifest = dataclasses.replace(manifest, file=path.name, seq=seq)
        self._write_manifest(manifest)
        self._prune(seq)
        return manifest

    def _write_manifest(self, manifest: IndexManifest) -> None:
        mtmp = self.folder / f".{MANIFEST}.tmp"
        mtmp.write_bytes(json.dumps(manifest.__dict__).encode())
        os.replace(mtmp, self.folder / MANIFEST)

    def current(self) -> IndexManifest | None:
        """The manifest of the current index, None when there is none (or it is unreadable)."""
        try:
            data = json.loads((self.folder / MANIFEST).read_bytes())
            return IndexManifest(**data)
        except (OSError, ValueError, TypeError):
            return None

    def load(self, manifest: IndexManifest) -> AnnSnapshot | None:
        """Map the manifest's file (None when it is gone: a newer one replaced it)."""
        path = self.folder / manifest.file
        index = AnnoyIndex(manifest.dim, "dot")
        try:
            index.load(str(path), prefault=False)
        except OSError:
            return None
        return AnnSnapshot(index, manifest.size, manifest.dim, manifest.built_at,
                           manifest.build_seconds, manifest.version,
                           started_at=manifest.started_at, search_k=manifest.search_k,
                           path=str(path))  # fmt: skip

    def _prune(self, seq: int) -> None:
        now = time.time()
        for path in self.folder.glob("index-*.ann"):
            try:
                n = int(path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            if n <= seq - KEEP:
                path.unlink(missing_ok=True)
        for tmp in [*self.folder.glob(".*.tmp"), *self.folder.glob("*.tmp")]:  # killed builders
            try:
                if now - tmp.stat().st_mtime > 600:
                    tmp.unlink(missing_ok=True)
            except OSError:
                continue
