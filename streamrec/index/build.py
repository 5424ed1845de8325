"""Building an index file in a process of its own: ``python -m streamrec.index.build``.

The indexer writes the representations to ``<out>.npy`` and runs this module as a child
process: the Annoy build (and the Python loop that feeds it) then takes no time from any
serving process's interpreter, and a second core does the work.
"""

from __future__ import annotations

import os
import sys

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


def main(argv: list[str]) -> None:
    """``build <reps.npy> <out.ann> <trees> [<nice>]``: prints the build seconds.

    ``nice`` (default 0) lowers this process's scheduling priority by that much first, so
    the build takes the CPU time the serving and learning processes leave idle.
    """
    reps_path, out, trees = argv[0], argv[1], int(argv[2])
    if len(argv) > 3 and int(argv[3]):
        os.nice(int(argv[3]))
    reps = np.load(reps_path)
    print(build_file(reps, out, trees), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
