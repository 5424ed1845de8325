"""What the trainer's fetches of the events topics cost the embedded broker, over time.

Tansu, the embedded broker, lists every record batch of a partition for each fetch that
returns records from it, and keeps every batch (no retention), so under a steady flow of
clicks into one topic each fetch costs more than the last, and the broker's memory
grows.  Event periods (``STREAMREC_EVENT_PERIOD_S``, docs/streaming.md) bound both: the
trainer deletes each period's topic once learned and checkpointed.  The trainer, once
caught up, fetches at most every ``learn_interval_ms``.

For each pair of ``--intervals`` and ``--periods`` values, this starts a fresh
``streamrec up`` (embedded broker, SQLite) with ``STREAMREC_LEARN_INTERVAL_MS`` and
``STREAMREC_EVENT_PERIOD_S`` set to them, onboards ``--items`` items and ``--users``
users with ``bench/scale.py``'s catalogue, then keeps ``--click-rate`` clicks/s arriving
for ``--seconds`` s (``bench/scale.py``'s click publisher: the SDK's ``track_many`` every
10 ms).  It prints, for each ``--every``-s window, the cores the broker and the trainer's
process (index builds included) used, the broker's RSS at its end, the clicks learned
per second and the index builds; at the end, the records and record batches of each
interactions topic still on the broker::

    python bench/event_fetches.py --seconds 300 --every 30
    python bench/event_fetches.py --intervals 0,50,100,200 --periods 0 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))

import scale  # noqa: E402  (bench/scale.py: the deployment, the catalogue, the publishers)


async def count_batches(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Records and record batches of each partition of ``topic`` (read from the start).

    Needs aiokafka's pure-Python records (``AIOKAFKA_NO_EXTENSIONS=1``), whose batch
    reader is counted."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.record import memory_records

    batches = [0]
    read = memory_records.MemoryRecords.next_batch

    def counted(self: object, *args: object) -> object:
        batch = read(self, *args)  # type: ignore[arg-type]
        batches[0] += batch is not None
        return batch

    memory_records.MemoryRecords.next_batch = counted  # type: ignore[method-assign]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=3000)  # fmt: skip
    await consumer.start()
    out: dict[int, tuple[int, int]] = {}
    try:
        await consumer.topics()
        for p in sorted(consumer.partitions_for_topic(topic) or []):
            tp = TopicPartition(topic, p)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            batches[0], records = 0, 0
            while got := sum(len(v) for v in (await consumer.getmany(
                    tp, timeout_ms=4000, max_records=100_000)).values()):  # fmt: skip
                records += got
            out[p] = (records, batches[0])
    finally:
        await consumer.stop()
    return out


async def count_all(bootstrap: str, topic: str) -> str:
    """:func:`count_batches` of ``topic`` and of each of its event periods still there."""
    from streamrec.stream.kafka_clients import make_producer, topic_partitions
    from streamrec.stream.topics import Topics

    producer = await make_producer(bootstrap)
    await producer.start()
    try:
        names = list(await topic_partitions(producer))
    finally:
        await producer.stop()
    prefix = topic.removesuffix(".interactions")
    lines = []
    for name in [topic, *Topics(prefix).event_periods_in(names)]:
        counts = await count_batches(bootstrap, name)
        lines.append(f"{name}: " + ", ".join(f"partition {p}: {r:,} records in {b:,} batches"
                                             for p, (r, b) in counts.items()))  # fmt: skip
    return "\n".join(lines)


Window = tuple[float, float, float, int, float]


def broker_rss_mb(dep: scale.Deployment) -> float:
    """The embedded broker's resident memory, MB."""
    import psutil

    assert dep.proc is not None
    for p in psutil.Process(dep.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "tansu" in " ".join(p.cmdline()):
                return float(p.memory_info().rss) / 2**20
    return 0.0


def run(interval: int, period: int, args: argparse.Namespace) -> tuple[list[Window], str]:
    """One deployment: (broker cores, trainer cores, learned/s, index builds, broker RSS)
    per window, and what the interactions topics hold at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="streamrec-event-fetches-"))
    os.environ["STREAMREC_LEARN_INTERVAL_MS"] = str(interval)
    os.environ["STREAMREC_EVENT_PERIOD_S"] = str(period)
    ns = argparse.Namespace(items=args.items, users=args.users, publishers=2,
                            prefix=f"ef{os.getpid()}i{interval}p{period}")  # fmt: skip
    dep = scale.Deployment(data_dir, ns.prefix, [])
    rows: list[Window] = []
    try:
        dep.start()
        ns.bootstrap = dep.bootstrap
        asyncio.run(scale.onboard(dep, ns, scale.Results()))
        clicks = scale._spawn("_clicks", ns, count=0, rate=args.click_rate,
                              duration=args.seconds, seed=1)  # fmt: skip
        t0, cpu0, learned0, builds0 = time.time(), dep.cpu_seconds(), dep.learned(), builds(dep)
        while clicks.poll() is None:
            time.sleep(args.every)
            t1, cpu1, learned1, builds1 = time.time(), dep.cpu_seconds(), dep.learned(), builds(dep)
            cores = [
                (cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / (t1 - t0) for k in ("broker", "trainer")
            ]
            rows.append((cores[0], cores[1], (learned1 - learned0) / (t1 - t0), builds1 - builds0,
                         broker_rss_mb(dep)))  # fmt: skip
            print(f"  interval {interval} ms, period {period} s, {len(rows) * args.every:.0f} s: "
                  f"broker {cores[0]:.2f} cores, {rows[-1][4]:.0f} MB, trainer {cores[1]:.2f}, "
                  f"learned {rows[-1][2]:,.0f}/s, {rows[-1][3]} index builds", flush=True)  # fmt: skip
            t0, cpu0, learned0, builds0 = t1, cpu1, learned1, builds1
        counted = subprocess.run(
            [sys.executable, str(HERE), "_count", "--bootstrap", dep.bootstrap,
             "--topic", f"{ns.prefix}.interactions"],  # (and its event periods)
            env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}, capture_output=True, text=True,
        )  # fmt: skip
        return rows, counted.stdout.strip() or counted.stderr.strip()[-300:]
    finally:
        dep.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def builds(dep: scale.Deployment) -> int:
    """Index builds so far (the trainer's process builds; its ``/health``)."""
    return int(dep.role("trainer").get("index", {}).get("builds", 0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("role", nargs="?", default="bench", choices=["bench", "_count"])
    p.add_argument("--intervals", type=lambda s: [int(x) for x in s.split(",")],
                   default=[0])  # fmt: skip
    p.add_argument("--periods", type=lambda s: [int(x) for x in s.split(",")],
                   default=[0, 60], help="values of STREAMREC_EVENT_PERIOD_S (0: off)")  # fmt: skip
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--click-rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--every", type=float, default=5.0)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--topic", default="")
    args = p.parse_args()
    if args.role == "_count":
        print(asyncio.run(count_all(args.bootstrap, args.topic)))
        return
    results = {}
    for interval in args.intervals:
        for period in args.periods:
            results[(interval, period)] = run(interval, period, args)
    head = " | ".join(f"`learn_interval_ms` {i}, `event_period_s` {p}: broker cores / MB, "
                      "trainer cores, index builds" for i, p in results)  # fmt: skip
    print(f"\n| window | {head} |\n|---|" + "---|" * len(results))
    for w in range(max(len(rows) for rows, _ in results.values())):
        cells = [f"{rows[w][0]:.2f} / {rows[w][4]:.0f}, {rows[w][1]:.2f}, {rows[w][3]}"
                 if w < len(rows) else "" for rows, _ in results.values()]  # fmt: skip
        print(f"| {w * args.every:.0f}-{(w + 1) * args.every:.0f} s | " + " | ".join(cells) + " |")
    for (interval, period), (_, counted) in results.items():
        print(f"\ninteractions topics at the end, `learn_interval_ms` {interval}, "
              f"`event_period_s` {period}: {counted}")  # fmt: skip


if __name__ == "__main__":
    main()
