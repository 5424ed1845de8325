"""Annoy settings at catalogue scale: recall@10 against CPU, at rest and as the index goes stale.

The world is ``bench/scale.py``'s synthetic catalogue (:class:`scale.Catalogue`:
``--items`` items with ``cat=`` and ``brand=`` features, Zipf popularity inside a
category, ``--users`` users loyal to theirs).  A :class:`~streamrec.model.HybridModel`
with the default :class:`~streamrec.model.ModelConfig` (WARP) learns ``--clicks`` of its
clicks in this process, in batches of ``batch_max`` records through ``learn_rows`` (the
trainer's call).  Then:

1. **at rest**: for each number of trees of ``--trees`` an :class:`Indexer` builds,
   publishes and maps the index (``index_build=thread``: in this process, so its CPU time
   is counted here); for each ``--search-k`` and ``--candidates`` the same ``--users-
   sampled`` users (the ones :class:`RecallSampler` draws) get their served retrieval
   (``LiveIndex.candidates``: the Annoy candidates plus the rows the indexer pins, re-scored
   exactly with ``item_representations``) and recall@10 against the exact top 10 of
   ``scores_for_query`` on the same model, as :class:`RecallSampler` defines it.  Also the
   recall of the Annoy candidates alone (nothing pinned), the CPU microseconds of one Annoy
   query (``AnnSnapshot.query``) and of the whole served retrieval, the CPU seconds of a
   rebuild (``Indexer.rebuild``) and the size of the index file;
2. **drift**: the indexes of ``--drift-trees`` stay as built while the model learns
   more clicks of the same world; at each count of ``--drift-clicks`` the indexer's pinned
   rows are refreshed (as its checks do every 0.2 s) and the recall of the stale index's
   candidates, re-scored with the current model, is measured against exact search on the
   current model.  At the last count the indexes are rebuilt once more, to tell the
   staleness from the model's own change.  At the deployment's 10,000 clicks/s, 10,000
   clicks is one second of staleness.

CPU time, not wall time: ``time.process_time`` (every thread of this process: the
indexer builds in a worker thread, and BLAS may hand part of a product to a thread of
its own).  The script is one process; it prints markdown tables on stdout, progress on
stderr.  About 3 minutes at the defaults::

    PYTHONPATH=. .venv/bin/python bench/ann_tradeoff.py
    PYTHONPATH=. .venv/bin/python bench/ann_tradeoff.py --items 10000 --users 10000 --clicks 100000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from scale import Catalogue

from streamrec.index.ann import top_k_of
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.workers.serving.indexer import Indexer, RecallSampler
from streamrec.workers.state import ModelState

K = 10


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


# ----------------------------------------------------------------- the world
def learn(model: HybridModel, users: np.ndarray, items: np.ndarray, batch: int,
          progress: Progress, label: str) -> float:  # fmt: skip
    """Learn the clicks in batches of ``batch`` (the trainer's ``batch_max``); CPU seconds."""
    weights = np.ones(len(users), dtype=np.float32)
    task = progress.add_task(label, total=len(users))
    cpu = time.process_time()
    for a in range(0, len(users), batch):
        model.learn_rows(users[a : a + batch], items[a : a + batch], weights[a : a + batch])
        progress.advance(task, min(batch, len(users) - a))
    progress.remove_task(task)
    return time.process_time() - cpu


def world(args: argparse.Namespace, progress: Progress) -> tuple[ModelState, Catalogue]:
    cat = Catalogue(args.items, args.users)
    model = HybridModel(ModelConfig())
    for u in range(args.users):
        model.add_user(*cat.user(u))
    for i in range(args.items):
        model.add_item(*cat.item(i))
    users, items = cat.clicks(args.clicks, seed=1)
    cpu = learn(model, users.astype(np.int32), items.astype(np.int32), args.batch, progress,
                f"learning {args.clicks:,} clicks")  # fmt: skip
    print(f"{args.items:,} items, {args.users:,} users, default ModelConfig "
          f"(dim {model.dim}, {model.config.loss}); learned {args.clicks:,} clicks in "
          f"{cpu:.1f} CPU s\n", flush=True)  # fmt: skip
    return ModelState(model), cat


# ------------------------------------------------------------------ the index
@dataclass
class Built:
    """One index as the indexer builds it, and what that cost."""

    trees: int
    indexer: Indexer
    cpu_s: float  # process CPU of Indexer.rebuild
    wall_s: float  # the manifest's build_seconds (the Annoy build, wall clock)
    file_mb: float


def build(state: ModelState, trees: int, folder: Path, prefix: str) -> Built:
    """``Indexer.rebuild`` (build in a thread of this process, save, publish, map), then the
    pinned rows as a serving indexer sets them."""
    # index_search_k -1: the snapshot names no budget, so the LiveIndex's (set per row by
    # ``served``) applies; a budget in the settings would be written into the manifest
    settings = Settings.load({"data_dir": folder, "topic_prefix": prefix, "index_trees": trees,
                              "index_search_k": -1, "index_build": "thread",
                              "index_recall_interval_s": 3600.0}, environ={})  # fmt: skip
    # serving=False: rebuild neither pins nor samples recall (untimed here, done below)
    indexer = Indexer(settings, state, serving=False)
    cpu = time.process_time()
    asyncio.run(indexer.rebuild())
    cpu = time.process_time() - cpu
    indexer.pin()
    snap = indexer.index.snapshot
    assert snap is not None
    return Built(trees, indexer, cpu, snap.build_seconds, os.path.getsize(snap.path) / 2**20)


@contextmanager
def unpinned(indexer: Indexer) -> Iterator[None]:
    """The index's own candidates only, for the span of the block."""
    pinned = indexer.index.pinned
    indexer.index.pin(np.zeros(0, dtype=np.int64))
    try:
        yield
    finally:
        indexer.index.pin(pinned)


# -------------------------------------------------------------- measurement
@dataclass
class Truth:
    """The sampled users' queries and exact top 10 on the model as it is now."""

    queries: list[np.ndarray]
    top: list[set[int]]
    cpu_us: float  # one exact scan (scores_for_query + top_k_of)


def truth(model: HybridModel, rows: np.ndarray) -> Truth:
    queries = [model.user_query_row(int(r)) for r in rows]
    top, cpu = [], time.process_time()
    for q in queries:
        top.append(set(top_k_of(model.scores_for_query(q), K).tolist()))
    return Truth(queries, top, 1e6 * (time.process_time() - cpu) / len(queries))


@dataclass
class Result:
    recall: float
    cpu_us: float  # the served retrieval: candidates + exact re-scoring + top 10
    candidates: float  # mean rows re-scored
    ann_us: float = float("nan")  # AnnSnapshot.query alone
    ann_rows: float = float("nan")  # mean rows Annoy returned
    extra: dict[str, float] = field(default_factory=dict)


def served(indexer: Indexer, model: HybridModel, t: Truth, n: int, search_k: int) -> Result:
    """Recall@10 of the served retrieval, as :meth:`RecallSampler.sample` measures it."""
    indexer.index.search_k = search_k
    found, sizes, cpu = [], 0, time.process_time()
    for q in t.queries:
        cand = indexer.index.candidates(q, n, model.n_items)
        assert cand is not None
        found.append(cand[top_k_of(model.item_representations(cand) @ q, K)])
        sizes += len(cand)
    cpu = time.process_time() - cpu
    hits = [len(truth.intersection(f.tolist())) / len(truth) for truth, f in zip(t.top, found, strict=True)]  # fmt: skip
    return Result(float(np.mean(hits)), 1e6 * cpu / len(t.queries), sizes / len(t.queries))


def ann_query(indexer: Indexer, t: Truth, n: int, search_k: int) -> tuple[float, float]:
    """CPU microseconds of one ``AnnSnapshot.query`` and the mean rows it returns."""
    snap = indexer.index.snapshot
    assert snap is not None
    rows, cpu = 0, time.process_time()
    for q in t.queries:
        rows += len(snap.query(q, n, search_k))
    return 1e6 * (time.process_time() - cpu) / len(t.queries), rows / len(t.queries)


def measure(b: Built, model: HybridModel, t: Truth, n: int, search_k: int,
            timing: bool = True) -> tuple[Result, Result]:  # fmt: skip
    """(served, Annoy candidates alone) for one setting."""
    full = served(b.indexer, model, t, n, search_k)
    with unpinned(b.indexer):
        alone = served(b.indexer, model, t, n, search_k)
    if timing:
        full.ann_us, full.ann_rows = ann_query(b.indexer, t, n, search_k)
    return full, alone


def budget(search_k: int, n: int, trees: int) -> str:
    return f"-1 (={n * trees})" if search_k == -1 else str(search_k)


# ------------------------------------------------------------------- stages
def at_rest(args: argparse.Namespace, state: ModelState, rows: np.ndarray, folder: Path,
            progress: Progress) -> dict[int, Built]:  # fmt: skip
    model = state.model
    built: dict[int, Built] = {}
    task = progress.add_task("building", total=len(args.trees))
    for trees in args.trees:
        built[trees] = build(state, trees, folder, f"rest{trees}")
        progress.advance(task)
    progress.remove_task(task)
    t = truth(model, rows)
    print(f"## At rest: {model.n_items:,} items, {len(rows)} sampled users\n")
    print(f"Exact scan (scores_for_query + top 10): {t.cpu_us:,.0f} us CPU per user.\n")
    print("| trees | rebuild CPU s | Annoy build wall s | index file MB | "
          f"rebuild CPU per s of time at index_rebuild_s={args.rebuild_s:g} |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for b in built.values():
        print(f"| {b.trees} | {b.cpu_s:.2f} | {b.wall_s:.2f} | {b.file_mb:.1f} | "
              f"{b.cpu_s / args.rebuild_s:.3f} |")  # fmt: skip
    print()
    settings = [(tr, sk, n) for tr in args.trees for sk in args.search_k for n in args.candidates]
    task = progress.add_task("at rest", total=len(settings))
    for b in built.values():  # map every index's pages before anything is timed
        ann_query(b.indexer, t, max(args.candidates), -1)
    results = []
    for tr, sk, n in settings:
        results.append((tr, sk, n, *measure(built[tr], model, t, n, sk)))
        progress.advance(task)
    progress.remove_task(task)
    print("| trees | search_k | candidates | recall@10 served | recall@10 Annoy alone | "
          "Annoy query CPU us | rows Annoy returned | served retrieval CPU us | rows re-scored |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tr, sk, n, full, alone in results:
        print(f"| {tr} | {budget(sk, n, tr)} | {n} | {full.recall:.3f} | {alone.recall:.3f} | "
              f"{full.ann_us:,.0f} | {full.ann_rows:.0f} | {full.cpu_us:,.0f} | "
              f"{full.candidates:.0f} |")  # fmt: skip
    print()
    # the same recall from the indexer's own sampler (the same users: its generator, seed 0),
    # at today's defaults if the table has them, else at its last row
    d = Settings()
    today = (d.index_trees, d.index_search_k, d.index_candidates)
    tr, sk, n, full, _ = next((r for r in results if r[:3] == today), results[-1])
    b = built[tr]
    b.indexer.index.search_k = sk
    sampler = RecallSampler(state, b.indexer.index,
                            dataclasses.replace(b.indexer.settings, index_candidates=n),
                            window=len(rows))  # fmt: skip
    sampler.sample(len(rows))
    print(f"Cross-check: RecallSampler.sample({len(rows)}) at trees {tr}, search_k {sk}, "
          f"candidates {n}: {sampler.value:.3f} (table: {full.recall:.3f}).\n", flush=True)  # fmt: skip
    return built


def drift(args: argparse.Namespace, state: ModelState, cat: Catalogue, rows: np.ndarray,
          built: dict[int, Built], folder: Path, progress: Progress) -> None:  # fmt: skip
    model = state.model
    stale = {tr: built[tr] for tr in args.drift_trees}
    settings = [(tr, sk, n) for tr in args.drift_trees for sk in args.drift_search_k
                for n in args.candidates]  # fmt: skip
    marks = [0, *args.drift_clicks]
    users, items = cat.clicks(marks[-1], seed=2)  # new clicks of the same world
    users, items = users.astype(np.int32), items.astype(np.int32)
    served_at: dict[tuple[int, int, int], list[float]] = {s: [] for s in settings}
    alone_at: dict[tuple[int, int, int], list[float]] = {s: [] for s in settings}
    exact_us = []
    learned = 0
    for mark in marks:
        if mark > learned:
            learn(model, users[learned:mark], items[learned:mark], args.batch, progress,
                  f"learning clicks {learned:,} to {mark:,}")  # fmt: skip
            learned = mark
        for b in stale.values():
            b.indexer.pin()  # popular and newest rows, as the indexer's checks refresh them
        t = truth(model, rows)
        exact_us.append(t.cpu_us)
        task = progress.add_task(f"drift {mark:,} clicks", total=len(settings))
        for s in settings:
            full, alone = measure(stale[s[0]], model, t, s[2], s[1], timing=False)
            served_at[s].append(full.recall)
            alone_at[s].append(alone.recall)
            progress.advance(task)
        progress.remove_task(task)
    rebuilt: dict[tuple[int, int, int], tuple[float, float]] = {}
    if args.rebuild_at_end:
        fresh = {tr: build(state, tr, folder, f"end{tr}") for tr in args.drift_trees}
        for s in settings:
            full, alone = measure(fresh[s[0]], model, t, s[2], s[1], timing=False)
            rebuilt[s] = full.recall, alone.recall
        print("Rebuilt at the end: " + ", ".join(
            f"{b.trees} trees {b.cpu_s:.2f} CPU s ({b.wall_s:.2f} s Annoy build wall)"
            for b in fresh.values()) + ".\n")  # fmt: skip
    heads = " | ".join(f"{m:,} ({m / args.click_rate:g} s)" for m in marks)
    for title, values, col in (("served (index + pinned rows)", served_at, 0),
                               ("Annoy candidates alone", alone_at, 1)):  # fmt: skip
        print(f"## Drift: recall@10 of the stale index, {title}\n")
        print("Clicks learned since the build (seconds at "
              f"{args.click_rate:,} clicks/s); re-scoring and truth on the current model.\n")  # fmt: skip
        extra = " | rebuilt at the end" if rebuilt else ""
        print(f"| trees | search_k | candidates | {heads}{extra} |")
        print("|---:|---:|---:|" + "---:|" * (len(marks) + bool(rebuilt)))
        for s in settings:
            tr, sk, n = s
            cells = " | ".join(f"{v:.3f}" for v in values[s])
            end = f" | {rebuilt[s][col]:.3f}" if rebuilt else ""
            print(f"| {tr} | {budget(sk, n, tr)} | {n} | {cells}{end} |")
        print()
    print(f"Exact scan CPU per user at each mark, us: {', '.join(f'{v:,.0f}' for v in exact_us)}\n",
          flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--clicks", type=int, default=1_000_000, help="learned before the builds")
    p.add_argument("--users-sampled", type=int, default=500, help="users per recall figure")
    p.add_argument("--trees", type=ints, default=[5, 10, 15, 20], help="comma-separated")
    p.add_argument("--search-k", type=ints, default=[-1, 1000, 2000, 3000, 4000, 6000],
                   help="Annoy budgets, comma-separated (-1: Annoy's default, candidates x trees)")  # fmt: skip
    p.add_argument(
        "--candidates",
        type=ints,
        default=[100, 200],
        help="index_candidates values, comma-separated",
    )
    p.add_argument("--drift-trees", type=ints, default=[10, 15, 20], help="comma-separated")
    p.add_argument("--drift-search-k", type=ints, default=[-1, 3000, 4000], help="comma-separated")
    p.add_argument("--drift-clicks", type=ints, default=[10_000, 20_000, 50_000, 100_000, 200_000, 400_000, 600_000],
                   help="comma-separated counts of clicks learned after the build at which recall is measured")  # fmt: skip
    p.add_argument("--no-rebuild-at-end", dest="rebuild_at_end", action="store_false")
    p.add_argument("--click-rate", type=int, default=10_000, help="the deployment's clicks/s")
    p.add_argument("--rebuild-s", type=float, default=Settings().index_rebuild_s)
    p.add_argument("--batch", type=int, default=Settings().batch_max, help="clicks per learn call")
    args = p.parse_args()
    # the users RecallSampler(...).sample(users_sampled) draws: its generator, seed 0
    rows = np.random.default_rng(0).integers(0, args.users, size=args.users_sampled)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="streamrec-ann-") as tmp, Progress(console=console) as progress:  # fmt: skip
        state, cat = world(args, progress)
        built = at_rest(args, state, rows, Path(tmp), progress)
        if args.drift_clicks and args.drift_trees:
            drift(args, state, cat, rows, built, Path(tmp), progress)


if __name__ == "__main__":
    main()
