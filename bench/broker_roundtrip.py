"""The embedded broker's CPU per request round trip, by client knobs (no streamrec worker).

An embedded broker, two plain topics (``req`` and ``resp``), an echo responder (a group
consumer of ``req`` that sends each record on to ``resp``) and an open-loop client
that sends ``--rate`` 300-byte records a second for ``--seconds`` and reads them back:
what the request path asks of the broker, without the model.  It prints, per variant,
the broker's cores (user and system, from ``/proc``), its CPU milliseconds per round
trip, the clients' cores and the round trip's p50 and p99.  A variant is a JSON object
of ``linger`` (both producers' ``linger_ms``, 0), ``wait`` (both consumers'
``fetch_max_wait_ms``, 10), ``min_bytes`` (``fetch_min_bytes``, 1), ``compression``
(``zstd``; null for none) and ``parts`` (partitions of each topic, 3)::

    python bench/broker_roundtrip.py
    python bench/broker_roundtrip.py --rate 500 --seconds 10 '{}' '{"linger": 2}' '{"wait": 50}'

The topics here are never recycled, unlike ``streamrec up``'s request slots, so the
partitions grow through a run as the plain topics did before the slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import numpy as np

from streamrec.stream.broker import EmbeddedBroker


def _cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def run(rate: int, seconds: float, variant: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    linger, wait = variant.get("linger", 0), variant.get("wait", 10)
    compression, parts = variant.get("compression", "zstd"), variant.get("parts", 3)
    broker = EmbeddedBroker()
    boot = await broker.start()
    assert broker.pid is not None
    admin = AIOKafkaAdminClient(bootstrap_servers=boot)
    await admin.start()
    await admin.create_topics([NewTopic("req", parts, 1), NewTopic("resp", parts, 1)])
    await admin.close()
    await asyncio.sleep(1)
    consumer_opts = {"bootstrap_servers": boot, "fetch_max_wait_ms": wait,
                     "fetch_min_bytes": variant.get("min_bytes", 1),
                     "auto_offset_reset": "earliest"}  # fmt: skip
    producers = [AIOKafkaProducer(bootstrap_servers=boot, linger_ms=linger,
                                  compression_type=compression) for _ in range(2)]  # fmt: skip
    answer, ask = producers
    requests = AIOKafkaConsumer("req", group_id="echo", **consumer_opts)
    responses = AIOKafkaConsumer("resp", **consumer_opts)
    for client in (*producers, requests, responses):
        await client.start()
    while not requests.assignment():
        await asyncio.sleep(0.05)
    sent: dict[bytes, float] = {}
    latency: list[float] = []

    async def echo() -> None:
        while True:
            batch = await requests.getmany(timeout_ms=max(wait, 20), max_records=200)
            for records in batch.values():
                for r in records:
                    await answer.send("resp", r.value, key=r.key)

    async def read() -> None:
        while True:
            batch = await responses.getmany(timeout_ms=max(wait, 20))
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    t = sent.pop(r.key, None)
                    if t is not None:
                        latency.append(now - t)

    tasks = [asyncio.create_task(echo()), asyncio.create_task(read())]
    payload = b"x" * 300
    for k in range(50):  # warm-up
        await ask.send("req", payload, key=f"w{k}".encode())
        await asyncio.sleep(0.01)
    await asyncio.sleep(1)
    latency.clear()
    cpu0, mine0, t0 = _cpu(broker.pid), time.process_time(), time.perf_counter()
    for k in range(int(rate * seconds)):
        due = t0 + k / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        key = f"r{k}".encode()
        sent[key] = due
        await ask.send("req", payload, key=key)
    await asyncio.sleep(0.5)
    elapsed, cpu1 = time.perf_counter() - t0, _cpu(broker.pid)
    mine = time.process_time() - mine0
    for task in tasks:
        task.cancel()
    for client in (*producers, requests, responses):
        await client.stop()
    await broker.stop()
    ms = np.array(latency or [np.nan]) * 1000
    broker_s = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    return {"variant": variant, "round_trips": len(latency),
            "broker_cores": round(broker_s / elapsed, 3),
            "broker_user_cores": round((cpu1[0] - cpu0[0]) / elapsed, 3),
            "broker_ms_per_round_trip": round(1000 * broker_s / max(len(latency), 1), 3),
            "clients_cores": round(mine / elapsed, 3),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="*", default=["{}"], help="JSON objects (see above)")
    p.add_argument("--rate", type=int, default=500, help="round trips offered per second")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    for v in args.variants:
        print(json.dumps(asyncio.run(run(args.rate, args.seconds, json.loads(v)))), flush=True)


if __name__ == "__main__":
    main()
