"""Overload scenario for bench/faults.py: 3x the recommender's capacity for 60 s.

A recommender (bench/serving.py's server: ``--items`` items, 2 features each) on an
embedded broker; its capacity is measured first (answered requests/s while offered far
more than it can take, ``--overload-probe-s`` seconds); then requests are offered at
``--overload-factor`` (3) times that for ``--overload-seconds`` (60) with an SDK timeout
of ``--overload-timeout`` (2 s: the requests' deadline).  Measured: the server's RSS
(start and peak), whether it survived, how many requests were answered (each within its
deadline: the SDK gives up at it), answered ``overloaded``, dropped as expired (the
server's counter), or never answered (client timeouts).

``overload(args) -> dict``: one row for bench/faults.py's table (``scenario``,
``measured``, ``target``, ``passed``).  Alone: ``PYTHONPATH=. .venv/bin/python
bench/fault_overload.py [--overload-seconds 60] [--items 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving


def _opt(args: Any, name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value


async def _run(args: Any) -> dict[str, Any]:
    from streamrec.settings import Settings
    from streamrec.stream.broker import EmbeddedBroker
    from streamrec.stream.client import Client

    items = _opt(args, "items", 100_000)
    users = _opt(args, "users", 20_000)
    seconds = _opt(args, "overload_seconds", 60.0)
    factor = _opt(args, "overload_factor", 3.0)
    timeout = _opt(args, "overload_timeout", 2.0)
    probe_s = _opt(args, "overload_probe_s", 5.0)
    server_args = argparse.Namespace(items=items, users=users)
    broker = EmbeddedBroker()
    bootstrap = await broker.start()
    rss: list[int] = []
    try:
        async with serving.Server(bootstrap, server_args) as server:

            async def sample_rss() -> None:
                while True:
                    rss.append(serving._rss_kb(server.pid))
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample_rss())
            settings = Settings.load({"topic_prefix": server.prefix}, environ={})
            async with Client(bootstrap, settings=settings, timeout=timeout) as client:
                await serving.offer(client, 5, 2, users, timeout)  # warm up
                capacity = await closed_loop(client, probe_s, users, timeout)
                print(f"capacity: {capacity:.0f} requests/s (closed loop)", flush=True)
                await asyncio.sleep(1.0)
                before = server.read_report()
                t0 = time.perf_counter()
                row = await serving.offer(client, factor * capacity, seconds, users, timeout)
                sent_rate = row["sent"] / (time.perf_counter() - t0)
                # the server's reports until its counts settle: requests still queued in
                # the topic when the load stops are read (and dropped as expired) after it
                counted = ("recommender.expired_requests_total",
                           "recommender.overloaded_requests_total")  # fmt: skip
                after = before
                for _ in range(60):
                    await asyncio.sleep(1.0)
                    report = server.read_report()
                    settled = all(report.get(k) == after.get(k) for k in counted)
                    after = report
                    if settled:
                        break
            sampler.cancel()
            alive = server.proc is not None and server.proc.poll() is None
    finally:
        await broker.stop()

    def delta(name: str) -> int:
        key = f"recommender.{name}"
        return int(after.get(key, 0) - before.get(key, 0))

    expired, refused = delta("expired_requests_total"), delta("overloaded_requests_total")
    rss_mb = [k / 1024 for k in rss if k]
    start_mb, peak_mb = (rss_mb[0], max(rss_mb)) if rss_mb else (float("nan"),) * 2
    accounted = (row["answered"] + row["overloaded"] + row["timeout"] + row["late"]
                 + row["send_failed"])  # fmt: skip
    passed = (alive and accounted == row["sent"] and row["error"] == 0
              and peak_mb <= 1.5 * start_mb + 100)  # fmt: skip
    measured = (
        f"capacity {capacity:.0f}/s; offered {factor:.0f}x for {seconds:.0f} s "
        f"({row['sent']:,} sent, {sent_rate:.0f}/s achieved): {row['answered']:,} answered "
        f"within their {timeout:.0f} s deadline (p99 {row['p99_ms']:.0f} ms), "
        f"{row['late']:,} answered after it, "
        f"{row['overloaded']:,} answered overloaded (server count {refused:,}), "
        f"{row['timeout']:,} unanswered, {row['send_failed']:,} not sent (the load "
        f"generator's producer backed up), server dropped {expired:,} expired; "
        f"RSS {start_mb:.0f} -> peak {peak_mb:.0f} MB; server {'alive' if alive else 'DIED'}"
    )
    return {"scenario": f"overload {factor:.0f}x capacity, {seconds:.0f} s",
            "measured": measured,
            "target": "no crash, RSS bounded, accepted answered within deadline, rest counted",
            "passed": bool(passed)}  # fmt: skip


async def closed_loop(client: Any, seconds: float, n_users: int, timeout: float,
                      callers: int = 32) -> float:  # fmt: skip
    """The recommender's capacity: answered requests/s with ``callers`` always waiting."""
    answered = 0
    end = time.perf_counter() + seconds

    async def caller(n: int) -> None:
        nonlocal answered
        while time.perf_counter() < end:
            r = await client.recommend(f"u{n % n_users}", 10, consistent=False, timeout=timeout)
            answered += r.error is None
            n += callers

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return answered / (time.perf_counter() - t0)


def overload(args: Any) -> dict[str, Any]:
    """Run the scenario (in a thread with its own event loop if one is running here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_run(args))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _run(args)).result()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This scenario's options (``bench/faults.py`` takes them too)."""
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--overload-seconds", type=float, default=60.0)
    p.add_argument("--overload-factor", type=float, default=3.0)
    p.add_argument("--overload-timeout", type=float, default=2.0)
    p.add_argument("--overload-probe-s", type=float, default=5.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    row = overload(p.parse_args())
    for key, value in row.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
