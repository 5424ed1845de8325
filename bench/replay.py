"""Replay throughput at catalogue scale: a synthetic 55,000-item log through ``streamrec evaluate``.

Writes a log in the generic CSV format (see docs/evaluation.md) under ``/tmp``, then
times ``streamrec evaluate --no-progress --json`` on it and prints the replay rate.

The log (``--items 55000 --users 8000 --events 120000 --seed 0`` by default): items
have a category (``cat=``, 100) and a brand (``brand=``, 1,000, each brand in one
category); they join the catalogue in order over the first 90% of the stream, each at
its own first event, which carries its features.  Users (features ``region=``, 20) have
a favourite category and a second one; user activity is Zipf-like (exponent 0.8).  An
event picks, with probability 0.6, an item of the user's favourite category, 0.15 of
the second, else any item; inside the pool, 70% of draws favour older items
(``pool[len * u ** 3]``) and 30% take one of the pool's 50 newest.  Types: click 80%,
view 12% (seen only), add_to_cart 5%, purchase 3%.

    python bench/replay.py                     # generate (if missing) and time
    python bench/replay.py --generate-only     # write the log and print its path
    python bench/replay.py --repo /other/checkout   # time another checkout's streamrec
    python bench/replay.py --limit 30000          # only the first 30,000 events
    python bench/replay.py --in-process           # replay() here, in CPU seconds
    python bench/replay.py --jobs 1               # evaluate in one process

It prints the replay's own time and rate (from the JSON report), the wall time of the
command and its CPU time (user + sys of the child: load and numba compilation included),
which moves less than wall time when other processes share the cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def generate(path: Path, n_items: int, n_users: int, n_events: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_cats, n_brands, n_regions = 100, 1000, 20
    brand_cat = rng.integers(n_cats, size=n_brands)
    item_brand = rng.integers(n_brands, size=n_items)
    item_cat = brand_cat[item_brand]
    user_fav = rng.integers(n_cats, size=(n_users, 2))
    user_region = rng.integers(n_regions, size=n_users)
    activity = 1.0 / np.arange(1, n_users + 1) ** 0.8
    activity /= activity.sum()
    users = rng.permutation(n_users)[rng.choice(n_users, size=n_events, p=activity)]
    # item j joins at event intro[j] (distinct, increasing, over the first 90%)
    intro = np.sort(rng.choice(int(0.9 * n_events), size=n_items, replace=False))
    pools: list[list[int]] = [[] for _ in range(n_cats)]
    everyone: list[int] = []
    kinds = rng.choice(
        ["click", "view", "add_to_cart", "purchase"], size=n_events, p=[0.8, 0.12, 0.05, 0.03]
    )
    draws = rng.random((n_events, 4))
    seen_user = np.zeros(n_users, dtype=bool)
    nxt = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["user", "item", "event", "timestamp", "user_features", "item_features"])
        for t in range(n_events):
            u = int(users[t])
            item_feats = ""
            if nxt < n_items and intro[nxt] == t:
                item = nxt
                pools[int(item_cat[item])].append(item)
                everyone.append(item)
                item_feats = f"cat={item_cat[item]}|brand={item_brand[item]}"
                nxt += 1
            else:
                a, b, c, d = draws[t]
                if a < 0.6:
                    pool = pools[int(user_fav[u, 0])]
                elif a < 0.75:
                    pool = pools[int(user_fav[u, 1])]
                else:
                    pool = everyone
                if not pool:
                    pool = everyone
                if b < 0.7:
                    item = pool[int(len(pool) * c**3)]
                else:
                    item = pool[max(0, len(pool) - 1 - int(50 * d))]
            user_feats = "" if seen_user[u] else f"region={user_region[u]}"
            seen_user[u] = True
            out.writerow([f"u{u}", f"i{item}", kinds[t], t, user_feats, item_feats])


def in_process(path: Path, repo: Path, limit: int | None) -> None:
    """replay() with the defaults of ``streamrec evaluate``, timed in CPU seconds."""
    sys.path.insert(0, str(repo))
    from streamrec.eval.datasets import load_log  # (from --repo)
    from streamrec.eval.prequential import replay

    log = load_log(path)
    if limit is not None:
        log = log.head(limit)
    cpu, wall = time.process_time(), time.perf_counter()
    result = replay(log)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"replay() from {repo}: {len(log):,} events, {result.n_items:,} items; "
        f"CPU {cpu:.2f} s ({len(log) / cpu:,.0f} events per CPU second), wall {wall:.2f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=55_000)
    p.add_argument("--users", type=int, default=8_000)
    p.add_argument("--events", type=int, default=120_000)
    p.add_argument("--seed", type=int, default=0, help="seed of the generator")
    p.add_argument("--out", type=Path, default=None, help="log path (default under /tmp)")
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs streamrec")
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent,
                   help="checkout whose streamrec is timed (put first on PYTHONPATH)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="where evaluate writes its report")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    p.add_argument("--jobs", type=int, default=None,
                   help="pass --jobs N to evaluate (default: evaluate's own; checkouts "
                        "before the option have none)")  # fmt: skip
    p.add_argument("--in-process", action="store_true",
                   help="call replay() here (--repo first on sys.path) and time it with "
                        "time.process_time: CPU seconds of the replay alone")  # fmt: skip
    args = p.parse_args()
    if args.items > 0.9 * args.events:
        p.error("--items must be at most 90% of --events")
    path = args.out or Path(
        f"/tmp/streamrec-replay-{args.items}i-{args.users}u-{args.events}e-s{args.seed}.csv"
    )
    if not path.exists():
        tmp = path.with_suffix(".partial")
        generate(tmp, args.items, args.users, args.events, args.seed)
        tmp.replace(path)
    print(f"log: {path}")
    if args.generate_only:
        return
    if args.in_process:
        in_process(path, args.repo, args.limit)
        return
    report = args.json or path.with_suffix(".eval.json")
    env = {**os.environ, "PYTHONPATH": str(args.repo)}
    cmd = [args.python, "-m", "streamrec", "evaluate", "--dataset", str(path), "--no-progress",
           "--json", str(report)]  # fmt: skip
    if args.limit is not None:
        cmd += ["--limit", str(args.limit)]
    if args.jobs is not None:
        cmd += ["--jobs", str(args.jobs)]
    print("$ PYTHONPATH=" + str(args.repo) + " " + " ".join(cmd))
    start = time.perf_counter()
    # cwd: ``python -m`` puts the working directory first on sys.path, before PYTHONPATH
    subprocess.run(cmd, env=env, check=True, cwd=args.repo)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the machine is shared: CPU too
    cpu = usage.ru_utime + usage.ru_stime
    doc = json.loads(report.read_text())
    print(
        f"replay {doc['replay_seconds']:.2f} s, {doc['events_per_second']:,.0f} events/s "
        f"({doc['events']:,} events, {doc['items']:,} items); wall {wall:.1f} s; "
        f"CPU of the command {cpu:.1f} s ({doc['events'] / cpu:,.0f} events per CPU second)"
    )


if __name__ == "__main__":
    main()
