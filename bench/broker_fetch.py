"""The embedded broker's cost of a fetch against the record batches a partition holds.

Tansu's memory engine (the embedded broker) stores each produced record batch as one
object, and a fetch below the high watermark lists every batch object of the partition
before it reads the ones it returns, so a fetch costs O(batches in the partition), and
nothing ever removes a batch (no retention, no DeleteRecords).  This bench produces
one-record batches into one partition and, at each size, times fetches of the last
record: the fetch's wall time and the broker's CPU per fetch, then whether a fetch with
each ``--waits`` value (``fetch_max_wait_ms``) still returns it (a fetch that takes
longer than its wait comes back empty).  ``--bootstrap`` runs the same against a Kafka
cluster instead, side by side with the embedded broker when both are given::

    PYTHONPATH=. python bench/broker_fetch.py
    PYTHONPATH=. python bench/broker_fetch.py --sizes 1000,10000,40000 --kafka
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console

from streamrec.cli.options import progress_bar
from streamrec.stream.broker import EmbeddedBroker

TOPIC = "broker-fetch"


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _first_record(consumer: AIOKafkaConsumer, tp: TopicPartition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = await consumer.getmany(tp, timeout_ms=200)
        if any(got.values()):
            return True
    return False


async def measure(
    bootstrap: str, pid: int | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One row per size: fetch wall ms, broker CPU ms per fetch, and per wait whether a
    fetch of the last record returned it within ``--give-up`` seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    tp = TopicPartition(TOPIC, 0)
    rows: list[dict[str, Any]] = []
    try:
        await producer.send_and_wait(TOPIC, b"x" * 100, partition=0)
        n = 1
        for size in args.sizes:
            with progress_bar("producing", "batches", Console(stderr=True), False) as bar:
                task = bar.add_task("", total=size, completed=n)
                while n < size:  # send_and_wait: one record per batch
                    await producer.send_and_wait(TOPIC, b"x" * 100, partition=0)
                    n += 1
                    bar.advance(task)
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                        fetch_max_wait_ms=max(args.waits))  # fmt: skip
            await consumer.start()
            consumer.assign([tp])
            try:
                c0, t0 = _cpu_seconds(pid), time.perf_counter()
                for _ in range(args.fetches):
                    consumer.seek(tp, n - 1)
                    if not await _first_record(consumer, tp, args.give_up):
                        break
                wall = (time.perf_counter() - t0) / args.fetches
                cpu = (_cpu_seconds(pid) - c0) / args.fetches
            finally:
                await consumer.stop()
            served = {}
            for wait in args.waits:
                consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                            enable_auto_commit=False, fetch_max_wait_ms=wait)  # fmt: skip
                await consumer.start()
                consumer.assign([tp])
                consumer.seek(tp, n - 1)
                try:
                    served[wait] = await _first_record(consumer, tp, args.give_up)
                finally:
                    await consumer.stop()
            rows.append({"batches": n, "fetch_ms": 1000 * wall, "cpu_ms": 1000 * cpu,
                         "served": served})  # fmt: skip
            print(f"  {n:>8,} batches: fetch {1000 * wall:7.2f} ms, broker CPU {1000 * cpu:7.3f} ms, "
                  + ", ".join(f"wait {w} ms {'ok' if ok else 'EMPTY'}" for w, ok in served.items()),
                  flush=True)  # fmt: skip
    finally:
        await producer.stop()
    return rows


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,5000,10000,20000,40000",
                   help="batches in the partition at each measurement (ascending)")  # fmt: skip
    p.add_argument("--waits", default="10,20,100", help="fetch_max_wait_ms values to try")
    p.add_argument("--fetches", type=int, default=50, help="fetches timed at each size")
    p.add_argument("--give-up", type=float, default=3.0, help="seconds a fetch may take")
    p.add_argument("--bootstrap", default="", help="a Kafka cluster to measure too")
    p.add_argument("--kafka", action="store_true", help="start a local Apache Kafka to measure too")
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.waits = [int(w) for w in args.waits.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    servers: list[tuple[str, str, Any]] = [
        ("embedded", "embedded broker (Tansu, memory engine)", EmbeddedBroker())
    ]
    if args.kafka:
        from streamrec.stream.local_kafka import LocalKafka

        servers.append(("kafka", "Apache Kafka (local, from its jars)", LocalKafka()))
    for name, title, server in servers:
        await server.start()
        try:
            print(title, flush=True)
            results[name] = await measure(server.bootstrap, server.pid, args)
        finally:
            await server.stop()
    if args.bootstrap and not args.kafka:
        print(f"Kafka at {args.bootstrap} (broker CPU not read)", flush=True)
        results["kafka"] = await measure(args.bootstrap, None, args)
    print("\n| batches in the partition | " + " | ".join(
        f"{name}: fetch ms, broker CPU ms" for name in results) + " |")  # fmt: skip
    print("|---:|" + "---|" * len(results))
    for i, size in enumerate(args.sizes):
        cells = []
        for rows in results.values():
            if i < len(rows):
                r = rows[i]
                empty = [str(w) for w, ok in r["served"].items() if not ok]
                cells.append(f"{r['fetch_ms']:.2f}, {r['cpu_ms']:.3f}"
                             + (f" (empty with wait {', '.join(empty)} ms)" if empty else ""))  # fmt: skip
            else:
                cells.append("")
        print(f"| {size:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    asyncio.run(main())
