"""The learning kernel at catalogue scale: CPU per event on ``bench/scale.py``'s catalogue.

A model with ``--items`` items and ``--users`` users of the synthetic catalogue of
``bench/scale.py`` (``cat=``, ``brand=`` and ``likes=`` features, Zipf popularity inside
a category, users loyal to theirs) learns ``--warm`` clicks, then ``--events`` more
in chunks of ``--chunk`` through ``HybridModel.learn_rows`` (the trainer's call), timed
in this process's CPU time.  It prints the CPU microseconds per event of each chunk and
what WARP did per event: updates applied, and events where none of the ``max_sampled``
negatives violated the margin (each such event scored every one of them).  ``--set
NAME=VALUE`` changes a model setting (repeatable), e.g. ``--set max_sampled=10``::

    python bench/kernel_scale.py
    python bench/kernel_scale.py --set max_sampled=10
    python bench/kernel_scale.py --set continuity_weight=0
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scale import Catalogue

from streamrec.cli.options import parse_set
from streamrec.model import HybridModel, ModelConfig
from streamrec.model.kernels import STAT_NO_VIOLATOR, STAT_PAIRS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--warm", type=int, default=200_000, help="clicks learned first, untimed")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--chunk", type=int, default=50_000)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()
    overrides = parse_set(tuple(args.set))  # as the CLI's --set (TOML values: true, 0.5)
    cat = Catalogue(args.items, args.users)
    model = HybridModel(ModelConfig(**overrides))
    for u in range(args.users):
        model.add_user(*cat.user(u))
    for i in range(args.items):
        model.add_item(*cat.item(i))
    users, items = cat.clicks(args.warm + args.events, seed=1)
    users, items = users.astype(np.int32), items.astype(np.int32)
    weights = np.ones(len(users), dtype=np.float32)
    model.learn_rows(users[: args.warm], items[: args.warm], weights[: args.warm])
    print(f"{args.items:,} items, {args.users:,} users, {overrides or 'default config'}; "
          f"{args.warm:,} clicks learned first")  # fmt: skip
    total_cpu, before = 0.0, model.stats.copy()
    for a in range(args.warm, args.warm + args.events, args.chunk):
        b = min(a + args.chunk, args.warm + args.events)
        cpu = time.process_time()
        model.learn_rows(users[a:b], items[a:b], weights[a:b])
        cpu = time.process_time() - cpu
        total_cpu += cpu
        print(f"  clicks {a:,} to {b:,}: {1e6 * cpu / (b - a):.1f} us CPU per event")
    done = model.stats - before
    print(f"{1e6 * total_cpu / args.events:.1f} us CPU per event ({args.events / total_cpu:,.0f} "
          f"events per CPU second); per event: {done[STAT_PAIRS] / args.events:.2f} updates, "
          f"{done[STAT_NO_VIOLATOR] / args.events:.2f} without a violating negative")  # fmt: skip


if __name__ == "__main__":
    main()
