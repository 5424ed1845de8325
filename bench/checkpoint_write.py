"""What a trainer's checkpoint costs at catalogue scale, with and without item changes.

A model of ``bench/scale.py``'s catalogue (``--items`` items, ``--users`` users) learns
``--clicks`` clicks; every item has attributes of the workers' shape (a category, an
availability flag, a tag list, a creation time).  Then ``--rounds`` checkpoints are taken
and written as the trainer does (:func:`snapshot` and ``MemoryItemAttributes.frozen``
under its lock, ``Snapshot.write`` in a thread), first with no item changed between two
of them (what a checkpoint during a stream of clicks meets), then with one item updated
before each.  It prints the medians of the time under the lock and of the CPU time of
the writing thread (which holds the GIL while it encodes JSON)::

    python bench/checkpoint_write.py
    python bench/checkpoint_write.py --items 1000000 --users 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scale import Catalogue

from streamrec.model import HybridModel, ModelConfig
from streamrec.model.checkpoint import snapshot
from streamrec.workers.attributes import MemoryItemAttributes


def checkpoints(model: HybridModel, attrs: MemoryItemAttributes, path: Path, rounds: int,
                change: bool) -> tuple[float, float]:  # fmt: skip
    """Median ms under the lock, median CPU ms of the write."""
    taken, written = [], []
    for k in range(rounds + 1):  # the first round encodes whatever came before: not counted
        if change:
            attrs.update(model.items.ids.name(k), {"available": k % 2 == 0}, 0.0)
        start = time.perf_counter()
        snap, attributes = snapshot(model, {"epoch": "e"}), attrs.frozen()
        took = time.perf_counter() - start
        cpu = time.thread_time()
        snap.write(path, {"attributes": attributes()})
        if k:
            taken.append(took * 1e3)
            written.append((time.thread_time() - cpu) * 1e3)
    return statistics.median(taken), statistics.median(written)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--clicks", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    cat = Catalogue(args.items, args.users)
    model = HybridModel(ModelConfig())
    attrs = MemoryItemAttributes()
    for u in range(args.users):
        model.add_user(*cat.user(u))
    for i in range(args.items):
        item_id, features = cat.item(i)
        model.add_item(item_id, features)
        attrs.update(item_id, {"category": features[0], "available": True, "tags": [features[1]]},
                     1.7636e9 + i)  # fmt: skip
    users, items = cat.clicks(args.clicks, seed=1)
    model.learn_rows(users.astype(np.int32), items.astype(np.int32),
                     np.ones(len(users), dtype=np.float32))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        for change in (False, True):
            lock_ms, write_ms = checkpoints(model, attrs, path, args.rounds, change)
            what = "one item changed before each" if change else "no item changed between them"
            print(f"{args.items:,} items, {args.users:,} users, {what}: under the lock "
                  f"{lock_ms:.0f} ms, writing thread {write_ms:.0f} ms of CPU "
                  f"({path.stat().st_size / 1e6:.0f} MB; medians of {args.rounds})")  # fmt: skip


if __name__ == "__main__":
    main()
