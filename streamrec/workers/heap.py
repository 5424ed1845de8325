"""A worker's start-up heap, kept out of the cyclic garbage collector's full collections.

A worker process holds a few hundred thousand objects the collector tracks before it has
learned anything: the functions, types and constants of numba, llvmlite, aiokafka and
the rest, and the model restored from its checkpoint.  Each full collection scans all of
them, and holds the GIL while it does: a median of 150 ms and up to 420 ms in the
trainer, 110 ms and up to 300 ms in the recommender, while 100,000 items and users were
onboarded and served, and meanwhile that process neither learns nor answers
(docs/benchmarks.md, "Pauses of the garbage collector").  :func:`freeze_startup_heap`
moves what is alive once the worker is ready to the permanent generation, so full
collections scan only what was created since.

Frozen objects are still freed by reference counting; only a reference cycle among them
that becomes garbage later is never collected.  They are created once, at start-up.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then freeze every object alive; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


__all__ = ["freeze_startup_heap"]
