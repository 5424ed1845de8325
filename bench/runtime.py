"""faust runtime vs asyncio runtime: the same workload side by side, on the embedded broker.

For each variant (in alternating order, ``--rounds`` times) a stack (trainer, indexer,
recommender) runs in a child process on fresh topics of one embedded broker: ``faust``
(the faust runtime as configured by default: requests read by a faust task with aiokafka
batch fetches), ``faust-agent`` (the faust runtime with requests through a faust agent,
``faust_requests=agent``) and ``asyncio``.  This process drives it with the client SDK:

- ready: seconds from ``Stack.start()`` until the recommender holds request partitions;
- ingest: N interaction events published by the SDK before the stack starts (the SDK's
  publish rate is printed too; it does not depend on the runtime), then the trainer's
  rate from the end of its first batch (numba compiles there) until it has learned them
  all, timed inside the trainer's loop: events/s;
- requests: closed-loop recommendation requests from C concurrent callers: requests/s
  and latency percentiles.

Run: ``PYTHONPATH=. .venv/bin/python bench/runtime.py [--events 50000] [--requests 2000]
[--concurrency 16] [--rounds 2]``.  Each figure is the best round per runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from streamrec.eval.synthetic import World, make_world
from streamrec.settings import Settings
from streamrec.stream.broker import EmbeddedBroker, ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics

#: The variants compared: name -> settings (``faust-agent``: requests through a faust agent).
VARIANTS: dict[str, dict[str, str]] = {
    "faust": {"runtime": "faust", "faust_requests": "fetch"},
    "faust-agent": {"runtime": "faust", "faust_requests": "agent"},
    "asyncio": {"runtime": "asyncio"},
}


def _settings(prefix: str, data_dir: str, variant: str) -> Settings:
    """The stack's settings: ``STREAMREC_*`` variables apply (e.g. FETCH_WAIT_MS), except
    the broker (the bench's own embedded one) and what the bench fixes here."""
    environ = {k: v for k, v in os.environ.items() if k != "STREAMREC_BOOTSTRAP"}
    return Settings.load({"topic_prefix": prefix, "data_dir": data_dir, "web_port": 0,
                          "checkpoint_interval_s": 0, **VARIANTS[variant]},
                         environ=environ)  # fmt: skip


# ------------------------------------------------------------------ child: the stack
async def serve(runtime: str, bootstrap: str, prefix: str, data_dir: str, events: str) -> None:
    """Run a stack; report its ready time and how fast its trainer learned the backlog."""
    from streamrec.workers import Stack

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = _settings(prefix, data_dir, runtime)
    t0 = time.perf_counter()
    marks = _time_batches()
    stack = Stack(settings, bootstrap, fresh=True, embedded=True)
    await stack.start()
    try:
        ok = await stack.ready(60)
        ready_s = time.perf_counter() - t0
        n = int(events)
        while not marks or marks[-1][1] < n:
            await asyncio.sleep(0.01)
        (t_first, first), (t_last, _) = marks[0], next(m for m in marks if m[1] >= n)
        ingest = (n - first) / (t_last - t_first) if t_last > t_first else math.nan
        print(json.dumps({"ready": ok, "ready_s": ready_s, "ingest": ingest}), flush=True)
        await stop.wait()
    finally:
        await stack.stop()


def _time_batches() -> list[tuple[float, int]]:
    """(time, events learned) after every trainer batch, from inside the trainer's loop
    (a poller could be starved while the trainer works through a backlog)."""
    from streamrec.workers.training.trainer import Trainer

    marks: list[tuple[float, int]] = []
    process = Trainer._process

    async def timed(self: Trainer, batch: dict[Any, list[Any]]) -> None:
        await process(self, batch)
        marks.append((time.perf_counter(), self.state.model.n_events))

    Trainer._process = timed  # type: ignore[method-assign]
    return marks


# ------------------------------------------------------------ parent: the workload
@dataclass
class Result:
    ready_s: list[float] = field(default_factory=list)
    ingest: list[float] = field(default_factory=list)  # events/s
    publish: list[float] = field(default_factory=list)  # SDK publish rate, events/s
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


async def one_round(runtime: str, bootstrap: str, world: World, args: Any, out: Result) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    data_dir = tempfile.mkdtemp(prefix="streamrec-bench-")
    try:
        await _round(runtime, bootstrap, world, args, out, prefix, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _round(
    runtime: str, bootstrap: str, world: World, args: Any, out: Result, prefix: str, data_dir: str
) -> None:
    settings = _settings(prefix, data_dir, runtime)
    await ensure_topics(bootstrap, Topics(prefix).partitions(settings.partitions))
    async with Client(bootstrap, settings=settings, timeout=60.0) as client:
        # the backlog first: the trainer's rate is then its own, not the SDK's
        for item in world.items:
            await client.add_item(item, world.item_features(item), world.attributes(item),
                                  wait=False)  # fmt: skip
        for user in world.users:
            await client.add_user(user, world.user_features(user), wait=False)
        events = world.events
        t0 = time.perf_counter()
        for n in range(args.events):
            user, item, kind = events[n % len(events)]
            await client.track(user, item, kind, wait=False)
        await client.flush()
        out.publish.append(args.events / (time.perf_counter() - t0))
    child = subprocess.Popen(
        [sys.executable, __file__, "serve", runtime, bootstrap, prefix, data_dir,
         str(args.events)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        info = json.loads(line)
        assert info["ready"], f"{runtime} stack not ready"
        out.ready_s.append(info["ready_s"])
        out.ingest.append(info["ingest"])
        async with Client(bootstrap, settings=settings, timeout=60.0) as client:
            await client.recommend("user-000", 10)  # warm-up: numba compilation, first fetch
            users = list(world.users)
            latencies: list[float] = []
            counter = iter(range(args.requests))

            async def caller() -> None:
                for n in counter:
                    t = time.perf_counter()
                    await client.recommend(users[n % len(users)], 10, consistent=False)
                    latencies.append((time.perf_counter() - t) * 1000.0)

            t0 = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - t0
            latencies.sort()
            out.rps.append(args.requests / elapsed)
            out.p50.append(statistics.median(latencies))
            out.p99.append(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))])
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(child.wait, 30)
        except subprocess.TimeoutExpired:
            child.kill()


def table(results: dict[str, Result], args: Any) -> str:
    def rows(r: Result) -> list[float]:
        return [min(r.ready_s), max(r.ingest), max(r.publish), max(r.rps), min(r.p50),
                min(r.p99)]  # fmt: skip

    names = ["stack ready (s), lower is better", f"trainer ingest, {args.events} backlog (ev/s)",
             "  SDK publish rate (events/s)", f"requests, {args.concurrency} callers (req/s)",
             "  latency p50 (ms)", "  latency p99 (ms)"]  # fmt: skip
    f, g, a = rows(results["faust"]), rows(results["faust-agent"]), rows(results["asyncio"])
    lines = [f"{'':40} {'faust':>10} {'faust-agent':>12} {'asyncio':>10} "
             f"{'faust/asyncio':>14} {'agent/asyncio':>14}"]  # fmt: skip
    for name, fv, gv, av in zip(names, f, g, a, strict=True):
        lines.append(f"{name:40} {fv:10,.1f} {gv:12,.1f} {av:10,.1f} {fv / av:14.3f} "
                     f"{gv / av:14.3f}")  # fmt: skip
    return "\n".join(lines)


async def main(args: Any) -> None:
    world = make_world(n_users=500, items_per_cluster=250, events_per_user=4)
    broker = EmbeddedBroker()
    await broker.start()
    results = {v: Result() for v in VARIANTS}
    try:
        for round_ in range(args.rounds):
            order = list(VARIANTS) if round_ % 2 == 0 else list(VARIANTS)[::-1]
            for runtime in order:
                t0 = time.perf_counter()
                await one_round(runtime, broker.bootstrap, world, args, results[runtime])
                r = results[runtime]
                print(f"round {round_ + 1} {runtime:11} ready {r.ready_s[-1]:.2f} s, ingest "
                      f"{r.ingest[-1]:,.0f} ev/s (SDK {r.publish[-1]:,.0f}/s), "
                      f"{r.rps[-1]:,.0f} req/s p50 {r.p50[-1]:.1f} ms p99 {r.p99[-1]:.1f} ms "
                      f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    finally:
        await broker.stop()
    print()
    print(table(results, args))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(*sys.argv[2:7]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
