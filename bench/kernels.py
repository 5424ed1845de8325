"""Update throughput of streamrec's numba kernels against LightFM's fit, side by side.

Same synthetic data for both: users with 4 features (identity + 3 shared), items with 5
(identity + 4 shared), d = 64, one thread, one pass over the interactions.  streamrec
learns them in batches through ``HybridModel.learn_rows`` (the trainer's path, random
draws included); LightFM runs ``fit(epochs=1, num_threads=1)`` on the same pairs.

    make bench                      # creates .venv-bench with LightFM, runs this
    python bench/kernels.py --quick # fewer interactions
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from streamrec.model import HybridModel, ModelConfig

PLAIN = {"trend_weight": 0.0, "activity_buckets": 0, "recent_items": 0}


def synthetic(n_users: int, n_items: int, n_events: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n_clusters = 20
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_cluster = rng.integers(n_clusters, size=n_items)
    # 3 shared user features, 4 shared item features, drawn from small vocabularies
    user_feats = np.stack([user_cluster, 20 + rng.integers(10, size=n_users),
                           30 + rng.integers(10, size=n_users)], axis=1)  # fmt: skip
    item_feats = np.stack([item_cluster, 20 + rng.integers(10, size=n_items),
                           30 + rng.integers(10, size=n_items), 40 + rng.integers(10, size=n_items)],
                          axis=1)  # fmt: skip
    by_cluster = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)]
    users = rng.integers(n_users, size=n_events)
    items = np.empty(n_events, dtype=np.int64)
    for n, u in enumerate(users):
        pool = by_cluster[user_cluster[u]]
        items[n] = pool[rng.integers(len(pool))] if rng.random() < 0.8 else rng.integers(n_items)
    return {"users": users, "items": items, "user_feats": user_feats, "item_feats": item_feats,
            "n_users": n_users, "n_items": n_items}  # fmt: skip


def streamrec_rates(
    data: dict[str, Any], loss: str, extra: dict[str, Any], batch: int
) -> tuple[float, float]:
    """(kernel-only updates/s, learn_rows updates/s with the seen-set bookkeeping)."""
    rates = []
    for kernel_only in (True, False):
        model = HybridModel(ModelConfig(dim=64, loss=loss, seed=1, max_sampled=10, **extra))
        for u in range(data["n_users"]):
            model.add_user(f"u{u}", [f"uf{f}" for f in data["user_feats"][u]])
        for i in range(data["n_items"]):
            model.add_item(f"i{i}", [f"if{f}" for f in data["item_feats"][i]])
        users = data["users"].astype(np.int32)  # rows equal ids: onboarded in order
        items = data["items"].astype(np.int32)
        weights = np.ones(len(users), dtype=np.float32)
        model.learn_rows(users[:10], items[:10], weights[:10])  # compile outside the clock
        learn = model._kernel_call if kernel_only else model.learn_rows
        start = time.perf_counter()
        for s in range(0, len(users), batch):
            learn(users[s : s + batch], items[s : s + batch], weights[s : s + batch])
        rates.append(len(users) / (time.perf_counter() - start))
    return rates[0], rates[1]


def lightfm_rate(data: dict[str, Any], loss: str) -> float | None:
    try:
        from lightfm import LightFM
    except ImportError:
        return None
    import scipy.sparse as sp

    nu, ni = data["n_users"], data["n_items"]

    def features(n: int, shared: np.ndarray) -> sp.csr_matrix:
        rows = np.repeat(np.arange(n), 1 + shared.shape[1])
        cols = np.concatenate([np.arange(n)[:, None], n + shared], axis=1).ravel()
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                             shape=(n, n + int(shared.max()) + 1))  # fmt: skip

    uf, itf = features(nu, data["user_feats"]), features(ni, data["item_feats"])
    inter = sp.coo_matrix((np.ones(len(data["users"]), np.float32),
                           (data["users"], data["items"])), shape=(nu, ni))  # fmt: skip
    inter.sum_duplicates()
    model = LightFM(no_components=64, loss=loss, learning_schedule="adagrad", random_state=1)
    start = time.perf_counter()
    model.fit(inter, user_features=uf, item_features=itf, epochs=1, num_threads=1)
    return inter.nnz / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per learn_rows call")
    parser.add_argument("--quick", action="store_true", help="50k events")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    n_events = 50_000 if args.quick else args.events
    data = synthetic(args.users, args.items, n_events)
    console = Console()
    table = Table(title=f"Update throughput, d=64, 1 thread, {n_events:,} interactions")
    for col in ("loss", "kernel, plain", "kernel, default", "learn_rows, default",
                "LightFM fit", "kernel plain / LightFM"):  # fmt: skip
        table.add_column(col, justify="right")
    figures: dict[str, Any] = {"events": n_events, "users": args.users, "items": args.items}
    for loss in ("warp", "bpr"):
        plain, _ = streamrec_rates(data, loss, PLAIN, args.batch)
        kernel, full = streamrec_rates(data, loss, {}, args.batch)
        lfm = lightfm_rate(data, loss)
        ratio = plain / lfm if lfm else None
        figures[loss] = {"kernel_plain": plain, "kernel_default": kernel,
                         "learn_rows_default": full, "lightfm": lfm, "ratio": ratio}  # fmt: skip
        table.add_row(loss, f"{plain:,.0f}/s", f"{kernel:,.0f}/s", f"{full:,.0f}/s",
                      f"{lfm:,.0f}/s" if lfm else "not installed",
                      f"{ratio:.2f}x" if ratio else "-")  # fmt: skip
    console.print(table)
    console.print("plain: trend, activity and recent items off (LightFM's model); default: the "
                  "configuration streamrec ships with; kernel: learn_batch alone; learn_rows: "
                  "with validation and seen-set bookkeeping. max_sampled=10 for both WARPs.")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
