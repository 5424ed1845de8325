"""What numba's compiling costs the first event and the first request of a process.

Numba compiles each kernel on its first call and keeps it in its cache
(``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources); a process that finds a
kernel there loads it instead.  This runs, in child processes with ``--cache DIR`` as
``NUMBA_CACHE_DIR`` (emptied first), the first ``learn`` of a small model and the first
recommendation answered from it, three times: on the empty cache, on the cache the first
run filled, and on an empty cache again after :func:`streamrec.model.warm.warm_up` (what
a worker runs at start).  It prints the seconds of each step::

    python bench/first_use.py --cache /tmp/numba-first
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

STEPS = r"""
import sys
import time
from streamrec.eval.synthetic import make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.schemas import RecRequest
from streamrec.workers.serving.recommender import RecommenderCore
from streamrec.workers.state import ModelState

warm = 0.0
if sys.argv[1] == "warm":
    from streamrec.model.warm import warm_up

    warm = warm_up(ModelConfig())
world = make_world(n_users=40, items_per_cluster=15, events_per_user=20)
model = HybridModel(ModelConfig())
for item in world.items:
    model.add_item(item, world.item_features(item))
for user in world.users:
    model.add_user(user, world.user_features(user))
users, items, types = zip(*world.events, strict=True)
t = time.perf_counter()
model.learn(users[:5], items[:5], types[:5])
first_learn = time.perf_counter() - t
t = time.perf_counter()
model.learn(users, items, types)
next_learn = time.perf_counter() - t
core = RecommenderCore(Settings(), ModelState(model))
t = time.perf_counter()
core.answer(RecRequest(request_id="a", user="user-000", k=10))
first_answer = time.perf_counter() - t
t = time.perf_counter()
core.answer(RecRequest(request_id="b", user="user-001", k=10))
next_answer = time.perf_counter() - t
print(f"warm-up {warm:.2f} s, first learn {first_learn:.2f} s, next learn {next_learn:.3f} s, "
      f"first answer {first_answer:.2f} s, next answer {next_answer:.4f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="NUMBA_CACHE_DIR for the runs (emptied)")
    args = parser.parse_args()
    env = {**os.environ, "NUMBA_CACHE_DIR": args.cache}
    runs = [("empty cache", "cold", True), ("cache filled by the run before", "cold", False),
            ("empty cache, warm_up first", "warm", True)]  # fmt: skip
    for label, mode, empty in runs:
        if empty:
            shutil.rmtree(args.cache, ignore_errors=True)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STEPS, mode], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        print(f"{label}: {out} (process {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
