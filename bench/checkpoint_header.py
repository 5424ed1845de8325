"""What reading a checkpoint's header costs, with the item attributes beside it.

Writes a checkpoint of a small model whose ``more_extra`` holds attributes for
``--items`` items (about 75 bytes of JSON each: a creation time, a tag list, a number,
the shape of the workers' attribute map), then times ``read_header`` (the header alone:
what the replica's follower reads to decide whether to resync) and ``read_header(...,
with_members=True)`` (what a restore reads), medians of ``--rounds``.

    python bench/checkpoint_header.py                 # 100,000 items
    python bench/checkpoint_header.py --items 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streamrec.model import HybridModel, ModelConfig
from streamrec.model.checkpoint import read_header, snapshot


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    model = HybridModel(ModelConfig())
    for n in range(2_000):
        model.add_item(f"i{n}", [f"cat={n % 200}"])
    attributes = {
        f"item{n:07d}": {"created": 1763900000.125 + n, "tags": [f"cat={n % 200}"], "x": n}
        for n in range(args.items)
    }
    size = len(json.dumps(attributes))
    with tempfile.TemporaryDirectory() as folder:
        path = snapshot(model, {"epoch": "e", "next_seq": 5}).write(
            Path(folder) / "model.npz", {"attributes": attributes}
        )
        alone = timed(lambda: read_header(path), args.rounds)
        full = timed(lambda: read_header(path, with_members=True), args.rounds)
    print(f"{args.items:,} items, attributes {size / 1e6:.1f} MB of JSON: read_header "
          f"{alone * 1e3:.2f} ms, with the attributes {full * 1e3:.1f} ms "
          f"(medians of {args.rounds})")  # fmt: skip


if __name__ == "__main__":
    main()
