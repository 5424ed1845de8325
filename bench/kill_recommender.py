"""Requests lost when the recommender of ``streamrec up`` is SIGKILLed under load.

Starts ``streamrec up`` (embedded broker) with ``STREAMREC_REQUEST_SLOTS`` set to
``--slots``, onboards ``--items`` items and ``--users`` users, then sends 100 requests/s
for 40 s (``--timeout`` each, default the SDK's 10 s) and SIGKILLs the recommender process 10 s in; ``up``
restarts it.  Prints one JSON line: requests sent, answered, errors by type, p50 and
slowest answer::

    PYTHONPATH=. python bench/kill_recommender.py --slots 4 --items 100000 --users 20000
    PYTHONPATH=. python bench/kill_recommender.py --slots 0 --items 100000 --users 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from streamrec.settings import Settings
from streamrec.stream.client import Client

RATE, SECONDS, KILL_AT_S = 100, 40, 10


def _recommender_pid(data_dir: str) -> int | None:
    found = subprocess.run(["pgrep", "-f", f"worker recommender --prefix kr --data-dir {data_dir}"],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    return int(found[0]) if found else None


async def load(args: argparse.Namespace, data_dir: str) -> dict[str, object]:
    for _ in range(480):
        if os.path.exists(f"{data_dir}/bootstrap") and _recommender_pid(data_dir):
            break
        await asyncio.sleep(0.5)
    with open(f"{data_dir}/bootstrap") as f:
        bootstrap = f.read().strip()
    settings = Settings.load({"topic_prefix": "kr", "data_dir": data_dir}, environ={})
    async with Client(bootstrap, settings=settings) as client:
        for i in range(args.items):
            await client.add_item(f"i{i}", [f"cat={i % 200}"], wait=False)
        for u in range(args.users):
            await client.add_user(f"u{u}", [f"likes={u % 200}"], wait=False)
        await client.flush()
        await client.recommend("u1", 10, timeout=180)  # the model holds the world
        lat: list[float] = []
        errors: dict[str, int] = {}

        async def one(user: str, scheduled: float) -> None:
            try:
                await client.recommend(user, 10, timeout=args.timeout, consistent=False)
                lat.append(time.perf_counter() - scheduled)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        tasks, t0, killed = [], time.perf_counter(), False
        for k in range(RATE * SECONDS):
            scheduled = t0 + k / RATE
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            if not killed and time.perf_counter() - t0 > KILL_AT_S:
                pid = _recommender_pid(data_dir)
                assert pid is not None, "no recommender process to kill"
                os.kill(pid, signal.SIGKILL)
                killed = True
            tasks.append(asyncio.ensure_future(one(f"u{k % args.users}", scheduled)))
        await asyncio.gather(*tasks)
    ms = np.array(lat) * 1000
    return {"slots": args.slots, "items": args.items, "timeout_s": args.timeout, "sent": len(tasks), "answered": len(lat),
            "errors": errors, "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "slowest_ms": round(float(ms.max()))}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots", type=int, default=4, help="STREAMREC_REQUEST_SLOTS for up")
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--timeout", type=float, default=10.0, help="each request's (the SDK's default)")
    args = p.parse_args()
    data_dir = tempfile.mkdtemp(prefix="streamrec-killrec-")
    env = dict(os.environ, STREAMREC_REQUEST_SLOTS=str(args.slots))
    with open(f"{data_dir}/up.log", "w") as log:
        up = subprocess.Popen([sys.executable, "-m", "streamrec", "up", "--fresh", "--data-dir",
                               data_dir, "--prefix", "kr", "--web-port", "0"], stdout=log,
                              stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    try:
        print(json.dumps(asyncio.run(load(args, data_dir))))
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
