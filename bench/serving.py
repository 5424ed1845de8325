"""Serving at catalogue scale: requests/s and latency by offered rate, and Annoy recall.

``load``: a recommender (asyncio runtime) in a child process serves a model of
``--items`` items (2 features each: ``cat=<i % 500>``, ``brand=<i % 5000>``) and
``--users`` users who clicked Zipf-popular items, built in the child, indexed with Annoy
(20 trees); this process offers open-loop requests (consistent=False, k=10, SDK timeout
``--timeout``) at each rate of ``--rates`` for ``--seconds`` and prints achieved
requests/s, p50/p99 latency of answered requests and the share that timed out or was
refused.  ``--code DIR`` runs the child on another checkout (e.g. ``/work/main``: the
path before this change); a variant stops after the first rate where half the requests
failed.

``recall``: in-process, the same catalogue with the :class:`Indexer` (builds in a child
process, publishes the file, swaps): recall@10 of served retrieval against exact search,
at rest, then while ``--churn`` new items/s arrive (each with 2 features) for
``--churn-seconds``.

``answer``: in process, no broker: the mean time (wall and CPU) of one request on the ANN
path, ``--fresh N``: with the newest N items in the fresh buffer (as after onboarding).
Run it with the other checkout first on ``PYTHONPATH`` to time another version.

Run: ``PYTHONPATH=. .venv/bin/python bench/serving.py load [--code /work/main]``,
``... bench/serving.py recall`` and ``... bench/serving.py answer``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def build_model(n_items: int, n_users: int, clicks: int, seed: int = 0) -> Any:
    from streamrec.model import HybridModel, ModelConfig

    rng = np.random.default_rng(seed)
    m = HybridModel(ModelConfig(dim=32))
    for i in range(n_items):
        m.add_item(f"i{i}", [f"cat={i % 500}", f"brand={i % 5000}"])
    for u in range(n_users):
        m.add_user(f"u{u}", [f"age={u % 7}"])
    users = [f"u{u}" for u in rng.integers(0, n_users, size=clicks)]
    items = [f"i{(rng.zipf(1.2) - 1) % n_items}" for _ in range(clicks)]
    m.learn(users, items, ["click"] * clicks)
    return m


# ------------------------------------------------------------------ child: a recommender
async def serve(bootstrap: str, prefix: str, n_items: int, n_users: int, out: str) -> None:
    """A recommender over a prebuilt model; metrics and RSS written to ``out`` at SIGTERM.

    Uses only APIs that the path before this change has too (so ``--code`` can compare).
    """
    from streamrec.index import LiveIndex, build_snapshot
    from streamrec.settings import Settings
    from streamrec.workers.metrics import Metrics
    from streamrec.workers.serving.recommender import Recommender
    from streamrec.workers.state import ModelState

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = Settings.load({"topic_prefix": prefix, "runtime": "asyncio", "web_port": -1,
                              "exact_below": 0}, environ={})  # fmt: skip
    model = build_model(n_items, n_users, clicks=5 * n_users)
    state = ModelState(model)
    index = LiveIndex()
    index.swap(build_snapshot(model.item_representations(), 20, 42, model.version))
    metrics = Metrics()
    rec = Recommender(settings, bootstrap, state, index, metrics)
    await rec.start()
    await rec.ready(60)
    print("READY", flush=True)
    peak = 0

    def write() -> None:  # the report, every half second (readable mid-run) and at the end
        report = {f"{w}.{n}": v for (w, n), v in {**metrics.counters, **metrics.gauges}.items()}
        report["rss_peak_mb"] = peak / 1024
        Path(out + ".tmp").write_text(json.dumps(report))
        os.replace(out + ".tmp", out)

    while not stop.is_set():
        peak = max(peak, _rss_kb())
        write()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    await rec.stop()
    write()


def _rss_kb(pid: int | None = None) -> int:
    try:
        text = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    except OSError:
        return 0
    line = next((ln for ln in text.splitlines() if ln.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1])


class Server:
    """The child process: ``async with Server(...) as s``; ``s.report`` after exit."""

    def __init__(self, bootstrap: str, args: Any, code: str | None = None) -> None:
        self.bootstrap, self.args, self.code = bootstrap, args, code
        self.prefix = f"srv{uuid.uuid4().hex[:8]}"
        self.out = tempfile.mktemp(prefix="streamrec-serving-", suffix=".json")
        self.report: dict[str, float] = {}
        self.proc: subprocess.Popen[str] | None = None

    async def __aenter__(self) -> Server:
        from streamrec.settings import Settings
        from streamrec.stream.broker import ensure_topics
        from streamrec.stream.topics import Topics

        await ensure_topics(self.bootstrap, Topics(self.prefix).partitions(Settings().partitions))
        env = {**os.environ, "PYTHONPATH": self.code or str(ROOT)}
        cmd = [sys.executable, str(Path(__file__).resolve()), "serve", "--bootstrap",
               self.bootstrap, "--prefix", self.prefix, "--items", str(self.args.items),
               "--users", str(self.args.users), "--out", self.out]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if "READY" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        return self

    def read_report(self) -> dict[str, float]:
        """The server's counters as of its last half-second report."""
        try:
            return dict(json.loads(Path(self.out).read_text()))
        except (OSError, ValueError):
            return {}

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.proc.wait, 120)
        try:
            self.report = json.loads(Path(self.out).read_text())
            Path(self.out).unlink()
        except OSError:
            self.report = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


async def offer(client: Any, rate: float, seconds: float, n_users: int,
                timeout: float) -> dict[str, Any]:  # fmt: skip
    """Open-loop requests at ``rate``/s for ``seconds`` (each with a deadline ``timeout``
    after it is sent), responses read from the response topic: achieved rate, latency
    of the answers that arrived by their deadline, and what happened to the others."""
    from streamrec.stream.schemas import RecRequest

    rng = np.random.default_rng(int(rate))
    tag = uuid.uuid4().hex[:6]
    sent_at: dict[str, float] = {}
    lat: list[float] = []
    failed = {"timeout": 0, "overloaded": 0, "error": 0, "late": 0, "send_failed": 0}

    async def collect() -> None:
        async for resp in client.responses():
            t0 = sent_at.pop(resp.request_id, None)
            if t0 is None:
                continue
            ms = (time.perf_counter() - t0) * 1000
            if resp.error:
                failed["overloaded" if resp.error == "overloaded" else "error"] += 1
            elif ms > timeout * 1000:
                failed["late"] += 1
            else:
                lat.append(ms)

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0)
    t_start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = t_start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        user = f"u{rng.integers(0, n_users)}"
        request_id = f"{tag}-{i}"
        req = RecRequest(request_id=request_id, user=user, k=10, deadline=time.time() + timeout)
        sent_at[request_id] = time.perf_counter()
        try:
            await client.send(client.topics.requests, req, user)
        except Exception:  # the generator's own producer backed up
            sent_at.pop(request_id, None)
            failed["send_failed"] += 1
    elapsed = time.perf_counter() - t_start
    await asyncio.sleep(timeout + 0.5)  # the last deadlines pass
    collector.cancel()
    failed["timeout"] = len(sent_at)  # never answered
    answered = len(lat)
    return {"offered": rate, "sent": n, "sent_per_s": n / elapsed, "answered": answered,
            "rps": answered / elapsed, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
            **failed}  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


async def load(args: Any) -> None:
    from streamrec.stream.broker import EmbeddedBroker
    from streamrec.stream.client import Client

    broker = EmbeddedBroker()
    bootstrap = await broker.start()
    try:
        variants = [("after", None)] + ([("before", args.code)] if args.code else [])
        rows = []
        for name, code in variants:
            async with Server(bootstrap, args, code) as server:
                from streamrec.settings import Settings

                settings = Settings.load({"topic_prefix": server.prefix}, environ={})
                async with Client(bootstrap, settings=settings, timeout=args.timeout) as client:
                    await offer(client, 5, 2, args.users, args.timeout)  # warm up
                    for rate in args.rates:
                        row = {"variant": name,
                               **await offer(client, rate, args.seconds, args.users,
                                             args.timeout)}  # fmt: skip
                        rows.append(row)
                        print(_fmt(row), flush=True)
                        if row["answered"] < row["sent"] / 2:
                            break
            print(f"{name}: server peak RSS {server.report.get('rss_peak_mb', math.nan):.0f} MB",
                  flush=True)  # fmt: skip
    finally:
        await broker.stop()


def _fmt(row: dict[str, Any]) -> str:
    return (f"{row['variant']:>6}  offered {row['offered']:>6.0f}/s  answered {row['rps']:>7.1f}/s"
            f"  p50 {row['p50_ms']:>8.1f} ms  p99 {row['p99_ms']:>8.1f} ms  timeouts "
            f"{row['timeout']:>5}  overloaded {row['overloaded']:>5}  of {row['sent']}"
            f" ({row['sent_per_s']:.0f}/s sent)")  # fmt: skip


# ------------------------------------------------------------------------ answer
def answer(args: Any) -> None:
    """In process, no broker: mean time of ``RecommenderCore.answer`` (ANN path)."""
    from streamrec.index import LiveIndex, build_snapshot
    from streamrec.settings import Settings
    from streamrec.stream.schemas import RecRequest
    from streamrec.workers.serving.recommender import RecommenderCore
    from streamrec.workers.state import ModelState

    model = build_model(args.items, args.users, clicks=5 * args.users)
    index = LiveIndex()
    index.swap(build_snapshot(model.item_representations(), 20, 42, model.version))
    if args.fresh:  # the newest items fresh (as after onboarding), with their vectors
        rows = np.arange(max(args.items - args.fresh, 0), args.items)
        index.fresh.add(rows.tolist(), model.item_representations(rows))
    core = RecommenderCore(Settings(exact_below=0), ModelState(model), index)
    reqs = [RecRequest(request_id=str(i), user=f"u{i % args.users}", k=10) for i in range(1000)]
    for r in reqs[:5]:
        core.answer(r)
    t0, c0 = time.perf_counter(), time.process_time()
    for r in reqs:
        assert core.answer(r).retrieval == "ann"
    ms = (time.perf_counter() - t0) / len(reqs) * 1000
    cpu = (time.process_time() - c0) / len(reqs) * 1000
    print(f"{args.items} items, {args.fresh} fresh: {ms:.2f} ms per request, {cpu:.2f} ms CPU "
          f"(mean of {len(reqs)}, ANN path)")  # fmt: skip


# ------------------------------------------------------------------------ recall
async def recall(args: Any) -> None:
    """recall@10 of served retrieval vs exact: at rest and under item churn."""
    from streamrec.settings import Settings
    from streamrec.workers.serving.indexer import Indexer
    from streamrec.workers.state import ModelState

    with tempfile.TemporaryDirectory(prefix="streamrec-recall-") as data:
        settings = Settings.load({"data_dir": data, "index_trees": args.trees,
                                  "index_search_k": args.search_k,
                                  "index_candidates": args.candidates,
                                  "index_recall_interval_s": 3600.0}, environ={})  # fmt: skip
        model = build_model(args.items, args.users, clicks=5 * args.users)
        state = ModelState(model)
        indexer = Indexer(settings, state)
        t0 = time.perf_counter()
        await indexer.rebuild()
        print(f"build: {args.items} items, {args.trees} trees, "
              f"{time.perf_counter() - t0:.2f} s (search_k {args.search_k}, candidates "
              f"{args.candidates})", flush=True)  # fmt: skip
        for pinned in (False, True):  # the index alone, then as served (with pinned rows)
            if pinned:
                indexer.pin()
            else:
                indexer.index.pin(np.zeros(0, dtype=np.int64))
            indexer.recall.window.clear()
            for _ in range(50):
                indexer.recall.sample()
            what = "served (index + pinned rows)" if pinned else "Annoy candidates alone"
            print(f"recall@10 at rest, {what}: {indexer.recall.value:.3f} "
                  f"({len(indexer.recall.window)} users)", flush=True)  # fmt: skip
        indexer.recall.window.clear()
        await indexer.start()
        rng = np.random.default_rng(1)
        n0 = model.n_items
        t_start = time.perf_counter()
        added = 0
        worst = 1.0
        next_print, next_sample = 5.0, 0.0
        while time.perf_counter() - t_start < args.churn_seconds:
            due = int((time.perf_counter() - t_start) * args.churn) - added
            for _ in range(max(due, 0)):
                i = n0 + added
                row = model.add_item(f"new{i}", [f"cat={rng.integers(500)}",
                                                 f"brand={rng.integers(5000)}"])  # fmt: skip
                state.items_changed([row])
                added += 1
            # the new items get clicks too, so their vectors move after they are indexed
            users = [f"u{u}" for u in rng.integers(0, args.users, size=200)]
            items = [
                f"new{n0 + int(j)}"
                for j in rng.integers(max(added - 5000, 0), max(added, 1), size=200)
            ]
            if added:
                model.learn(users, items, ["click"] * len(users))
            elapsed = time.perf_counter() - t_start
            if elapsed >= next_sample:
                next_sample += 0.25
                indexer.recall.sample()
                if len(indexer.recall.window) >= 40:
                    worst = min(worst, indexer.recall.value)
            if elapsed >= next_print:
                next_print += 5.0
                print(f"  {elapsed:5.1f} s: {added} items added, recall@10 "
                      f"{indexer.recall.value:.3f}, {indexer.index.builds} builds, fresh "
                      f"{len(indexer.index.fresh)}", flush=True)  # fmt: skip
            await asyncio.sleep(0.05)
        await indexer.stop()
        print(f"recall@10 under churn: {indexer.recall.value:.3f} over the last "
              f"{len(indexer.recall.window)} sampled users; lowest rolling value {worst:.3f}; "
              f"{added} items added in {args.churn_seconds:.0f} s, "
              f"{indexer.index.builds} index builds, fresh buffer {len(indexer.index.fresh)}",
              flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("load", "recall", "serve", "answer"):
        s = sub.add_parser(name)
        s.add_argument("--items", type=int, default=100_000)
        s.add_argument("--users", type=int, default=20_000)
    sl = sub.choices["load"]
    sl.add_argument("--rates", type=float, nargs="+", default=[10, 20, 50, 100, 200, 400])
    sl.add_argument("--seconds", type=float, default=10.0)
    sl.add_argument("--timeout", type=float, default=5.0)
    sl.add_argument("--code", default=None, help="another checkout to measure side by side")
    sub.choices["answer"].add_argument("--fresh", type=int, default=0, help="fresh items")
    sr = sub.choices["recall"]
    sr.add_argument("--trees", type=int, default=10)
    sr.add_argument("--search-k", type=int, default=-1)
    sr.add_argument("--candidates", type=int, default=200, help="index_candidates")
    sr.add_argument("--churn", type=float, default=1000.0, help="new items per second")
    sr.add_argument("--churn-seconds", type=float, default=30.0)
    ss = sub.choices["serve"]
    ss.add_argument("--bootstrap", required=True)
    ss.add_argument("--prefix", required=True)
    ss.add_argument("--out", required=True)
    args = p.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.bootstrap, args.prefix, args.items, args.users, args.out))
    elif args.command == "answer":
        answer(args)
    elif args.command == "load":
        asyncio.run(load(args))
    else:
        asyncio.run(recall(args))


if __name__ == "__main__":
    main()
