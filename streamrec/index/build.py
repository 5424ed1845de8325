"""Building an index file in a process of its own (the indexer's builder).

A top-level function over plain arguments, so a spawned child process can run it: the
Annoy build (and the Python loop that feeds it) then takes no time from any serving
process's interpreter.
"""

from __future__ import annotations

import os

import numpy as np

from streamrec.index.ann import build_snapshot


def build_file(reps: np.ndarray, path: str, n_trees: int, seed: int = 42) -> float:
    """Build an Annoy 'dot' index over ``reps`` and save it at ``path`` (written under a
    temporary name, then renamed); returns the build seconds."""
    snap = build_snapshot(reps, n_trees, seed)
    tmp = f"{path}.{os.getpid()}.tmp"
    snap.index.save(tmp)
    os.replace(tmp, path)
    snap.index.unload()
    return snap.build_seconds
