"""Compiling the numba kernels before a worker takes its first event or request.

Numba compiles a kernel on its first call, or loads it from its cache.  On an empty
cache the first learning step waits about 35 s and the first answer about 3.5 s
(``bench/first_use.py``); a worker that took traffic first would hold its first events
or requests that long.  :func:`warm_up` calls the kernels on a throwaway model first.
"""

from __future__ import annotations

import time

import numpy as np

from streamrec.model.config import ModelConfig
from streamrec.model.hybrid import HybridModel


def warm_up(config: ModelConfig) -> float:
    """Call the kernels the workers use once, on a throwaway model of ``config``:
    learning, change sets and their replay on a replica, representations, scoring, top
    k and the continuity signal.  Returns the seconds it took."""
    t0 = time.perf_counter()
    model = HybridModel(config)
    for i in range(8):
        model.add_item(f"i{i}", [f"f={i % 2}"])
    for u in range(2):
        model.add_user(f"u{u}", ["g=0"])
    kinds = list(config.event_weights)
    model.learn([f"u{n % 2}" for n in range(8)], [f"i{n}" for n in range(8)],
                [kinds[n % len(kinds)] for n in range(8)])  # fmt: skip
    HybridModel(config).apply_changes(model.export_changes())
    row = model.user_row("u0")
    rows = np.arange(model.n_items, dtype=np.int64)
    model.top_k_rows(row, 3)
    model.scores_for_query(model.user_query_row(row), row)
    model.continuity_scores(row, rows)
    model.item_representations(rows)
    return time.perf_counter() - t0
