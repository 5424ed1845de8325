"""Memory of a deployment: RSS, PSS and private memory of every process in a tree.

RSS counts every resident page a process maps, so pages several processes share (the
Annoy index file, the Python and numba shared libraries) are counted once per process;
PSS divides each shared page among the processes that map it, so the PSS of a whole tree
sums to the memory it really takes.  Both come from ``/proc/<pid>/smaps_rollup`` (Linux).

``python bench/memory.py show <pid>`` prints the table for the tree rooted at ``<pid>``
(a ``streamrec up`` process, say); ``bench/scale.py`` prints it after each stage.  With
``--bootstrap`` and ``--prefix`` it also reads every topic of the deployment from the
start and prints its records and bytes (keys, values and headers): what the embedded
broker, which keeps every topic in memory, holds.

``python bench/memory.py deploy --items 100000 --users 100000 --events 1000000`` starts
``streamrec up`` on ``bench/scale.py``'s synthetic catalogue, onboards it, publishes the
clicks, and prints the table after each stage, at the peak and the topics' bytes.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MB = 2**20


@dataclass(frozen=True)
class ProcMemory:
    pid: int
    role: str
    rss: int
    pss: int
    private: int  # Private_Clean + Private_Dirty: what the process alone holds
    anon: int  # anonymous resident pages (heap, numpy arrays, JIT code)


def role_of(cmdline: list[str]) -> str:
    """A short name for a process of a deployment, from its command line."""
    text = " ".join(cmdline)
    if "tansu" in text:
        return "broker (tansu)"
    if "streamrec.index.build" in text:
        return "index build"
    if " worker " in f" {text} ":
        i = cmdline.index("worker")
        roles = [a for a in cmdline[i + 1 :] if not a.startswith("-")][:3]
        roles = [r for r in roles if r in ("trainer", "indexer", "recommender")]
        return "+".join(roles) or "worker"
    if " up" in text and "streamrec" in text:
        return "supervisor (up)"
    return Path(cmdline[0]).name if cmdline else "?"


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as bytes per field."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key.strip()] = int(parts[0]) * 1024
    return out


def tree(root_pid: int) -> list[ProcMemory]:
    """Memory of ``root_pid`` and every descendant (processes gone meanwhile are skipped)."""
    rows = []
    root = psutil.Process(root_pid)
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error, OSError):
            s = smaps_rollup(p.pid)
            rows.append(
                ProcMemory(
                    pid=p.pid,
                    role=role_of(p.cmdline()),
                    rss=s.get("Rss", 0),
                    pss=s.get("Pss", 0),
                    private=s.get("Private_Clean", 0) + s.get("Private_Dirty", 0),
                    anon=s.get("Anonymous", 0),
                )
            )
    return rows


def totals(rows: list[ProcMemory]) -> tuple[float, float]:
    """Summed RSS and PSS, MB."""
    return sum(r.rss for r in rows) / MB, sum(r.pss for r in rows) / MB


def table(rows: list[ProcMemory], title: str = "") -> str:
    lines = [f"  {title}"] if title else []
    lines.append(
        f"  {'pid':>7} {'process':<22} {'RSS MB':>8} {'PSS MB':>8} {'private':>8} {'anon':>8}"
    )
    for r in rows:
        lines.append(f"  {r.pid:>7} {r.role:<22} {r.rss / MB:>8.0f} {r.pss / MB:>8.0f} "
                     f"{r.private / MB:>8.0f} {r.anon / MB:>8.0f}")  # fmt: skip
    rss, pss = totals(rows)
    lines.append(f"  {'':>7} {'all':<22} {rss:>8.0f} {pss:>8.0f}")
    return "\n".join(lines)


async def topic_sizes(bootstrap: str, prefix: str) -> dict[str, tuple[int, int]]:
    """Records and bytes (keys, values, headers) of every topic named ``<prefix>.*``."""
    from aiokafka import AIOKafkaConsumer

    admin = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = sorted(t for t in await admin.topics() if t.startswith(f"{prefix}."))
    finally:
        await admin.stop()
    return {topic: await _topic_size(bootstrap, topic) for topic in topics}


async def _topic_size(bootstrap: str, topic: str) -> tuple[int, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None)  # fmt: skip
    await consumer.start()
    n = size = 0
    # up to each partition's high watermark at its first fetch (the deltas topic grows
    # while it is read); a second of silence ends it too
    ends: dict[Any, int] = {}
    next_offset: dict[Any, int] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for tp, records in batch.items():
                ends.setdefault(tp, consumer.highwater(tp) or 0)
                records = [r for r in records if r.offset < ends[tp]]
                if records:
                    next_offset[tp] = records[-1].offset + 1
                n += len(records)
                size += sum(
                    len(r.value or b"") + len(r.key or b"")
                    + sum(len(k) + len(v or b"") for k, v in r.headers)
                    for r in records
                )  # fmt: skip
            caught_up = all(next_offset.get(tp, 0) >= end for tp, end in ends.items())
            if not batch or (caught_up and len(ends) == len(consumer.assignment())):
                break
    finally:
        await consumer.stop()
    return n, size


def topics_table(sizes: dict[str, tuple[int, int]]) -> str:
    lines = [f"  {'topic':<40} {'records':>10} {'MB':>8}"]
    for topic, (n, size) in sizes.items():
        lines.append(f"  {topic:<40} {n:>10,} {size / MB:>8.1f}")
    return "\n".join(lines)


class PeakSampler:
    """Samples the tree's summed RSS every ``interval`` s in a thread; keeps the peak."""

    def __init__(self, root_pid: int, interval: float = 0.5) -> None:
        import threading

        self.root_pid, self.interval = root_pid, interval
        self.rows: list[ProcMemory] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error, OSError):
                rows = tree(self.root_pid)
                if totals(rows)[0] > totals(self.rows)[0]:
                    self.rows = rows
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def deploy(args: argparse.Namespace) -> None:
    """``streamrec up`` with ``bench/scale.py``'s catalogue: onboarding, then ``--events``
    clicks; the memory table after each stage and after ``--idle`` s, the peak, and the
    topics' bytes."""
    import asyncio
    import os
    import sys
    import tempfile
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import scale

    data_dir = Path(tempfile.mkdtemp(prefix="streamrec-memory-"))
    args.prefix = f"memory{os.getpid()}"
    dep = scale.Deployment(data_dir, args.prefix, args.up_args.split())
    res = scale.Results()
    print(f"streamrec up in {data_dir}: {args.items:,} items, {args.users:,} users, "
          f"{args.events:,} clicks", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    dep.start()
    assert dep.proc is not None
    args.bootstrap = dep.bootstrap
    try:
        with PeakSampler(dep.proc.pid) as peak:
            print(table(tree(dep.proc.pid), "started"), flush=True)
            asyncio.run(scale.onboard(dep, args, res))
            print(table(tree(dep.proc.pid), "after onboarding"), flush=True)
            if args.events:
                scale.ingest(dep, args, res)
                print(table(tree(dep.proc.pid), "after the clicks"), flush=True)
            time.sleep(args.idle)
            print(table(tree(dep.proc.pid), f"{args.idle:.0f} s later"), flush=True)
        print(table(peak.rows, "at the peak of the summed RSS (sampled every 0.5 s)"))
        print(topics_table(asyncio.run(topic_sizes(dep.bootstrap, args.prefix))))
    finally:
        dep.stop()
    print(f"wall {time.perf_counter() - t0:,.0f} s")


def parts(args: argparse.Namespace) -> None:
    """What the per-item structures of a worker process take at ``--items`` items
    (``tracemalloc``, in this process): the trainer's in-memory attributes, the feature
    store cache's snapshot, and with ``--model`` a model onboarded with ``bench/scale.py``'s
    catalogue (slow: one ``add_item`` / ``add_user`` call per entity)."""
    import time
    import tracemalloc
    from datetime import UTC, datetime
    from types import MappingProxyType

    from streamrec.store.records import ItemAttributes
    from streamrec.workers.attributes import MemoryItemAttributes

    def measured(what: str, build: Any) -> Any:
        tracemalloc.start()
        kept = build()
        print(f"  {what}: {tracemalloc.get_traced_memory()[0] / MB:,.1f} MB", flush=True)
        tracemalloc.stop()
        return kept

    def attributes() -> Any:
        m = MemoryItemAttributes()
        for i in range(args.items):
            m.update(f"i{i}", {"category": str(i % 200)}, time.time())
        return m

    def cache() -> Any:  # the shape of ItemAttributeCache's snapshot (store/cache.py)
        merged, views = {}, {}
        for i in range(args.items):
            a = ItemAttributes(f"i{i}", str(i % 200), True, datetime.now(UTC), frozenset())
            merged[a.item_id] = a
            views[a.item_id] = MappingProxyType(a.view())
        return MappingProxyType(merged), MappingProxyType(views)

    print(f"{args.items:,} items, {args.users:,} users")
    measured("trainer's item attributes (MemoryItemAttributes)", attributes)
    measured("feature store cache snapshot (ItemAttributes + views)", cache)
    if args.model:
        from streamrec.model import HybridModel, ModelConfig

        def model() -> Any:
            m = HybridModel(ModelConfig())
            for i in range(args.items):
                m.add_item(f"i{i}", [f"cat={i % 200}", f"brand={(i * 7919) % 2000}"])
            for u in range(args.users):
                m.add_user(f"u{u}", [f"likes={u % 200}"])
            return m

        m = measured("model (HybridModel, every table and vocabulary)", model)
        tables = dict(m.arrays())
        print(f"  of which the tables' used rows: "
              f"{sum(a.nbytes for a in tables.values()) / MB:,.1f} MB")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="the memory of a running deployment")
    show.add_argument("pid", type=int, help="the root of the process tree (streamrec up)")
    show.add_argument("--bootstrap", default="", help="also size the topics on this broker")
    show.add_argument("--prefix", default="streamrec", help="the deployment's topic prefix")
    run = sub.add_parser("deploy", help="start streamrec up, onboard, click; measure")
    run.add_argument("--items", type=int, default=100_000)
    run.add_argument("--users", type=int, default=100_000)
    run.add_argument("--events", type=int, default=1_000_000)
    run.add_argument("--publishers", type=int, default=2)
    run.add_argument("--idle", type=float, default=15.0)
    run.add_argument("--up-args", default="", help="extra options for streamrec up")
    part = sub.add_parser("parts", help="per-item structures of a worker, in this process")
    part.add_argument("--items", type=int, default=100_000)
    part.add_argument("--users", type=int, default=100_000)
    part.add_argument("--model", action="store_true", help="also onboard a model (slow)")
    args = p.parse_args()
    if args.command == "deploy":
        deploy(args)
        return
    if args.command == "parts":
        parts(args)
        return
    print(table(tree(args.pid)))
    if args.bootstrap:
        import asyncio

        print(topics_table(asyncio.run(topic_sizes(args.bootstrap, args.prefix))))


if __name__ == "__main__":
    main()
