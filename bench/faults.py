"""Process faults: real worker processes SIGKILLed, a broker restarted, and what they cost.

Scenarios (each a row of the table: scenario, measured, target, pass):

- **trainer SIGKILL**: ``streamrec worker trainer`` (a child process, checkpoints every
  2 s) is SIGKILLed ``--kills`` times and restarted at once each time: at random
  moments while ``--events`` interactions, each a distinct user-item pair, are
  published at an even rate, and the last time once the stream is idle and the
  trainer has checkpointed the log's end (where ListOffsets(latest) misleads).  After the last one has caught up it is stopped with SIGTERM and its last
  checkpoint is read: events learned (``n_events``), distinct pairs learned (the model's
  seen sets), so lost = events - pairs and twice = n_events - pairs.  ``--runs`` runs.
- **broker restart**: half the events, then the broker restarts with a new, empty log
  (the embedded broker keeps topics in memory; on Kafka the topics are deleted and
  created again, which is what a restarted Tansu looks like to a client; the running
  workers may auto-create them meanwhile, with one partition, which gets its partitions
  back), then the
  other half; every event published after the restart must be learned, and a request
  sent after each caller's own click (``after`` its write) must either see the click
  (the clicked item is not recommended) or say ``stale: true``.

The scenario rows of ``bench/fault_input.py`` (hostile payloads, database down) and
``bench/fault_overload.py`` (3 x the recommender's capacity for 60 s) are
added when those modules are there.

Run: ``PYTHONPATH=. .venv/bin/python bench/faults.py [--broker embedded|kafka]
[--events 50000] [--runs 5] [--kills 3]``.  The tests run the same scenarios small
(``tests/workers/test_faults_kill.py``, ``tests/workers/test_broker_restart.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.errors import TopicError
from streamrec.settings import Settings
from streamrec.stream.broker import (
    EmbeddedBroker,
    advance_event_periods,
    ensure_topics,
    event_period_partitions,
    free_port,
)
from streamrec.stream.client import Client
from streamrec.stream.kafka_clients import topic_partitions
from streamrec.stream.topics import Topics, event_period_at
from streamrec.workers.checkpoints import Checkpoints
from streamrec.workers.training.trainer import EVENT_TOPICS_CHECK_S

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    scenario: str
    measured: str
    target: str
    passed: bool


@dataclass
class Learned:
    """What the trainer's last checkpoint holds of a run's events."""

    published: int
    events: int  # n_events of the model
    pairs: int  # distinct (user, item) pairs in its seen sets
    kills: int = 0
    tmp_left: int = 0
    periods_deleted: int = 0  # event-period topics written to and deleted by the trainer

    @property
    def lost(self) -> int:
        return self.published - self.pairs

    @property
    def twice(self) -> int:
        return self.events - self.pairs


def pair(k: int) -> tuple[str, str]:
    """The k-th distinct user-item pair (200 items per user)."""
    return f"u{k // 200}", f"i{k % 200}"


class WorkerProcess:
    """``python -m streamrec worker <role>`` as a child process of this one."""

    def __init__(self, role: str, settings: Settings, bootstrap: str, log_path: Path) -> None:
        self.role = role
        self.web_port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "STREAMREC_BOOTSTRAP": bootstrap,
                    "STREAMREC_DATA_DIR": str(settings.data_dir),
                    "STREAMREC_TOPIC_PREFIX": settings.topic_prefix,
                    "STREAMREC_CHECKPOINT_INTERVAL_S": str(settings.checkpoint_interval_s),
                    "STREAMREC_WEB_PORT": str(self.web_port),
                    "STREAMREC_FETCH_WAIT_MS": str(settings.fetch_wait_ms)}  # fmt: skip
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec", "worker", self.role, "--dim", "16"],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        out.close()

    def kill(self) -> None:
        """SIGKILL: no last deltas, no last checkpoint, maybe a checkpoint half written."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as an operator stops it; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2) as r:
                data: dict[str, Any] = json.loads(r.read())
                return data
        except (OSError, ValueError):
            return None

    async def wait_up(self, timeout: float) -> None:
        """Wait until its /health answers (the worker has started)."""
        deadline = time.monotonic() + timeout
        while self.health() is None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.role} not up in {timeout} s; see {self.log_path}")
            await asyncio.sleep(0.2)

    def applied(self) -> dict[tuple[str, int], int]:
        """The trainer's applied offsets as its /health shows them (empty when down)."""
        health = self.health() or {}
        out: dict[tuple[str, int], int] = {}
        for name, offset in (health.get("applied") or {}).items():
            topic, part = name[:-1].rsplit("[", 1)
            out[(topic, int(part))] = int(offset)
        return out


def fault_settings(data_dir: Path, event_period_s: int = 0) -> Settings:
    return Settings.load({"data_dir": data_dir, "topic_prefix": f"f{uuid.uuid4().hex[:10]}",
                          "checkpoint_interval_s": 2.0, "web_port": -1, "fetch_wait_ms": 5,
                          "event_period_s": event_period_s}, environ={})  # fmt: skip


async def _caught_up(worker: WorkerProcess, client: Client, timeout: float) -> bool:
    marks = {(m.topic, m.partition): m.offset for m in client.watermarks()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = worker.health() or {}
        applied = worker.applied()
        retired = health.get("events_retired_before", 0)
        if (applied or retired) and all(applied.get(tp, 0) > o or _began_before(client, tp[0], retired)
                           for tp, o in marks.items()):  # fmt: skip
            return True
        await asyncio.sleep(0.2)
    return False


def _began_before(client: Client, topic: str, when: int) -> bool:
    """Whether ``topic`` is an event period that began before ``when`` (Unix s)."""
    span = client.topics.event_period_span(topic)
    return span is not None and span[0] < when


def read_learned(settings: Settings, published: int) -> Learned:
    restored = Checkpoints(settings, Topics(settings.topic_prefix).deltas).latest()
    if restored is None:
        return Learned(published, 0, 0)
    model = restored.model
    pairs = sum(model.seen_count(u) for u in range(model.n_users))
    folder = settings.data_dir / "checkpoints"
    return Learned(published, model.n_events, pairs, tmp_left=len(list(folder.glob(".*.tmp"))))


async def publish_paced(
    client: Client, ks: range, seconds: float, on_tick: Callable[[float], None] | None = None
) -> None:
    """Publish the pairs of ``ks`` evenly over ``seconds`` (ticks of 50 ms)."""
    t0 = time.monotonic()
    n = len(ks)
    done = 0
    while done < n:
        elapsed = time.monotonic() - t0
        due = min(n, int(n * min(1.0, (elapsed + 0.05) / seconds)) + 1)
        for k in ks[done:due]:
            user, item = pair(k)
            await client.track(user, item, "click", wait=False)
        done = due
        if on_tick is not None:
            on_tick(elapsed)
        await asyncio.sleep(0.05)
    await client.flush()


async def kill_run(
    bootstrap: str, workdir: Path, events: int, kills: int, seconds: float, seed: int,
    event_period_s: int = 0,
) -> Learned:  # fmt: skip
    """One run of the trainer-SIGKILL scenario (see the module docstring); with
    ``event_period_s`` (embedded broker), the interactions go to event-period topics of
    that length, created ahead as ``streamrec up`` does, which the trainer deletes."""
    settings = fault_settings(workdir / "data", event_period_s)
    topics = Topics(settings.topic_prefix)
    names = topics.partitions(settings.partitions)
    if event_period_s:
        names |= event_period_partitions(topics, event_period_s, settings.partitions)
    await ensure_topics(bootstrap, names)
    creator = None
    if event_period_s:
        creator = asyncio.create_task(advance_event_periods(bootstrap, topics, event_period_s,
                                                            settings.partitions))  # fmt: skip
    rng = random.Random(seed)
    # one kill at a random moment in each of ``kills - 1`` equal slices of the publishing
    # time (not in its first 1.5 s, so the restarted trainer has had time to start
    # learning), and the last once the stream is idle and the trainer has caught up and
    # written a checkpoint at the log's end: the moment a restart that trusts the
    # embedded broker's ListOffsets(latest) takes the topics for recreated ones
    span = seconds / max(1, kills - 1)
    moments = [i * span + rng.uniform(min(1.5, span / 2), span) for i in range(kills - 1)]
    trainer = WorkerProcess("trainer", settings, bootstrap, workdir / "trainer.log")
    trainer.start()
    killed = 0

    def tick(elapsed: float) -> None:
        nonlocal killed
        if killed < len(moments) and elapsed >= moments[killed]:
            trainer.kill()
            killed += 1
            trainer.start()

    client = Client(bootstrap, settings=settings)
    await client.start()
    try:
        published = [time.time()]
        await publish_paced(client, range(events), seconds, tick)
        published.append(time.time())
        while killed < len(moments):  # a moment beyond the publishing time
            tick(moments[-1])
        if kills > 0:
            if not await _caught_up(trainer, client, timeout=180):
                raise RuntimeError(f"the trainer did not catch up; see {trainer.log_path}")
            await asyncio.sleep(settings.checkpoint_interval_s + 1.0)
            trainer.kill()
            killed += 1
            trainer.start()
        if not await _caught_up(trainer, client, timeout=180):
            raise RuntimeError(f"the trainer did not catch up; see {trainer.log_path}")
        deleted = 0
        if event_period_s:  # the periods published to, behind the last checkpoint, go
            first = event_period_at(event_period_s, published[0])[1]  # whole periods only
            written = {topics.event_period(t, t + event_period_s)
                       for t in range(first, int(published[1]) - event_period_s, event_period_s)}  # fmt: skip
            await asyncio.sleep(3 * event_period_s + 2 * EVENT_TOPICS_CHECK_S)
            deleted = len(written - set(await topic_partitions(client._producer)))
    finally:
        if creator is not None:
            creator.cancel()
        await client.stop()
        code = trainer.stop()
    if code != 0:
        raise RuntimeError(f"the trainer exited with {code} on SIGTERM; see {trainer.log_path}")
    learned = read_learned(settings, events)
    learned.kills = killed
    learned.periods_deleted = deleted
    return learned


# ------------------------------------------------------------------ broker restart
@dataclass
class RestartResult:
    after_restart: int  # events published after the restart
    learned_after: int  # of them learned (distinct pairs in the model beyond the first half)
    requests: int  # requests sent after a caller's own click, after the restart
    fresh_wrong: int  # answers with stale: false that do not reflect the caller's click
    stale: int = 0  # answers with stale: true (the model had not reached the click in time)
    slowest_s: float = 0.0  # the slowest of those requests


@contextlib.asynccontextmanager
async def restartable_broker(kind: str, shared: str | None = None) -> AsyncIterator[Any]:
    """A broker this scenario may restart: an embedded one of its own (a real restart on
    the same port, new empty log), or ``shared`` Kafka (the topics recreated instead)."""
    if kind == "embedded":
        broker = EmbeddedBroker()
        await broker.start()
        try:
            yield broker
        finally:
            await broker.stop()
    else:
        assert shared is not None
        yield shared


async def _new_log(broker: Any, settings: Settings) -> None:
    """Restart the embedded broker (same port), or delete and recreate the topics."""
    topics = Topics(settings.topic_prefix).partitions(settings.partitions)
    if isinstance(broker, EmbeddedBroker):
        await broker.stop()
        await broker.start()
        await ensure_topics(broker.bootstrap, topics)
        return
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
        for _ in range(100):
            if not set(topics) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    # the running workers' metadata requests may have auto-created a topic in between
    # (auto.create.topics.enable, one partition): give it its partitions back
    await ensure_topics_or_grow(broker, topics)


async def ensure_topics_or_grow(bootstrap: str, topics: dict[str, int]) -> None:
    """Create the missing topics; add partitions to one that has too few."""
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

    for attempt in range(10):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = {n: p for n, p in topics.items() if n not in existing}
            if missing:
                with contextlib.suppress(Exception):
                    await admin.create_topics([NewTopic(n, p, 1) for n, p in missing.items()])
            cluster = await admin._client.fetch_all_metadata()
            short = {n: p for n, p in topics.items()
                     if 0 < len(cluster.partitions_for_topic(n) or ()) < p}  # fmt: skip
            if short:
                with contextlib.suppress(Exception):
                    await admin.create_partitions(
                        {n: NewPartitions(total_count=p) for n, p in short.items()}
                    )
        finally:
            await admin.close()
        try:
            await ensure_topics(bootstrap, topics)
            return
        except TopicError:
            if attempt == 9:
                raise
            await asyncio.sleep(1.0)


async def broker_restart_run(
    broker: Any, workdir: Path, events: int, requests: int
) -> RestartResult:
    """One run of the broker-restart scenario (see the module docstring)."""
    bootstrap = broker.bootstrap if isinstance(broker, EmbeddedBroker) else str(broker)
    settings = fault_settings(workdir / "data")
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    trainer = WorkerProcess("trainer", settings, bootstrap, workdir / "trainer.log")
    trainer.start()
    replica = WorkerProcess("recommender", settings, bootstrap, workdir / "recommender.log")
    replica.start()
    for worker in (trainer, replica):  # both up before the broker goes away
        await worker.wait_up(timeout=120)
    half = events // 2
    client = Client(bootstrap, settings=settings)
    await client.start()
    try:
        await publish_paced(client, range(half), 2.0)
        if not await _caught_up(trainer, client, timeout=120):
            raise RuntimeError(f"the trainer did not catch up; see {trainer.log_path}")
        await client.stop()
        await _new_log(broker, settings)
        client = Client(bootstrap, settings=settings)
        await client.start()
        await publish_paced(client, range(half, events), 2.0)
        # callers who click then ask for every item (after their own write), each a new
        # user: an answer that reflects the click leaves the clicked item out
        wrong = stale = 0
        slowest = 0.0
        for r in range(requests):
            user = f"caller{r}"
            item = f"i{r % 200}"
            await client.track(user, item, "click")
            t0 = time.monotonic()
            recs = await client.recommend(user, k=400, timeout=60)
            slowest = max(slowest, time.monotonic() - t0)
            stale += recs.stale
            if not recs.stale and item in recs.ids:
                wrong += 1
        if not await _caught_up(trainer, client, timeout=120):
            raise RuntimeError(f"the trainer did not catch up; see {trainer.log_path}")
    finally:
        await client.stop()
        replica.stop()
        trainer.stop()
    restored = Checkpoints(settings, topics.deltas).latest()
    assert restored is not None
    model = restored.model
    learned = 0
    for k in range(half, events):
        user, item = pair(k)
        row = model.user_row(user) if model.has_user(user) else None
        if row is not None and model.item_row(item) in set(model.seen_items(row).tolist()):
            learned += 1
    return RestartResult(events - half, learned, requests, wrong, stale, round(slowest, 2))


# --------------------------------------------------------------------- replicas
def max_diff(a: Any, b: Any) -> float:
    """The largest |difference| between two models' arrays (inf when shapes differ)."""
    import numpy as np

    left, right = a.arrays(), b.arrays()
    worst = 0.0
    for name, x in left.items():
        y = right.get(name)
        if y is None or x.shape != y.shape:
            return float("inf")
        if x.size:
            diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)))
    if (a.n_events, a.version) != (b.n_events, b.version):
        return float("inf")
    return worst


async def _converged(trainer: Any, replica: Any, timeout: float) -> tuple[float, float]:
    """Seconds until the replica's model equals the trainer's (max |diff| = 0), and the
    max |diff| then (or at ``timeout``)."""
    t0 = time.monotonic()
    diff = float("inf")
    while time.monotonic() - t0 < timeout:
        diff = max_diff(trainer.state.model, replica.state.model)
        if diff == 0.0:
            break
        await asyncio.sleep(0.02)
    return time.monotonic() - t0, diff


@dataclass
class ReplicaResult:
    lost_delta_s: float  # seconds from the failed send until the replica equals the trainer
    lost_delta_diff: float
    restart_s: float  # seconds from the restarted trainer's catch-up until equal
    restart_diff: float


async def replica_run(bootstrap: str, workdir: Path, events: int) -> ReplicaResult:
    """A replica recommender (another Stack, shared data directory) after a delta publish
    that fails (forced) and after its trainer dies (no last deltas, no last checkpoint)
    and restarts: how long until its model equals the trainer's."""
    from aiokafka.errors import KafkaTimeoutError

    from streamrec.model import ModelConfig
    from streamrec.workers import Stack

    settings = Settings.load({"data_dir": workdir / "data", "topic_prefix": f"r{uuid.uuid4().hex[:10]}",
                              "web_port": -1, "fetch_wait_ms": 5, "delta_interval_ms": 50,
                              "checkpoint_interval_s": 0, "runtime": "asyncio",
                              "model": ModelConfig(dim=16)}, environ={})  # fmt: skip
    deltas = Topics(settings.topic_prefix).deltas
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    trainer = Stack(settings, bootstrap, roles=("trainer",), web=False)
    await trainer.start()
    replica = Stack(settings, bootstrap, roles=("recommender",), web=False)
    await replica.start()
    client = Client(bootstrap, settings=settings)
    await client.start()
    restarted: Any = None
    try:
        third = events // 3
        await publish_paced(client, range(third), 1.0)
        assert await replica.state.wait_for(client.watermarks(), 60)
        assert trainer.trainer is not None
        producer = trainer.trainer._producer
        send = producer.send
        failed: list[float] = []

        async def flaky(topic: str, *a: Any, **kw: Any) -> Any:
            if topic == deltas and not failed:
                failed.append(time.monotonic())
                raise KafkaTimeoutError("forced by bench/faults.py")
            return await send(topic, *a, **kw)

        producer.send = flaky
        await publish_paced(client, range(third, 2 * third), 1.0)
        assert await trainer.state.wait_for(client.watermarks(), 60)
        while not failed:
            await asyncio.sleep(0.01)
        waited = time.monotonic() - failed[0]  # the failed publish happened that long ago
        lost_s, lost_diff = await _converged(trainer, replica, 30)
        lost_s += waited
        # the trainer dies: no last deltas, no last checkpoint; a new one restores
        tr = trainer.trainer

        async def nothing() -> None:
            return None

        tr.publish_deltas = nothing  # type: ignore[method-assign]
        tr.checkpoint = lambda wait=0.0: None  # type: ignore[method-assign]
        await trainer.stop()
        await publish_paced(client, range(2 * third, events), 1.0)
        restarted = Stack(settings, bootstrap, roles=("trainer",), web=False)
        await restarted.start()
        assert await restarted.state.wait_for(client.watermarks(), 60)
        restart_s, restart_diff = await _converged(restarted, replica, 30)
        return ReplicaResult(lost_s, lost_diff, restart_s, restart_diff)
    finally:
        await client.stop()
        await replica.stop()
        if restarted is not None:
            await restarted.stop()


# -------------------------------------------------------------------------- main
#: Scenario rows other modules of bench/ contribute: module, functions.
_OTHER_ROWS = (
    ("fault_input", ("hostile_payloads", "database_down")),  # hostile input, database down
    ("fault_overload", ("overload",)),  # 3 x the recommender's capacity for 60 s
)


def _other_modules() -> list[tuple[Any, tuple[str, ...]]]:
    """The modules of :data:`_OTHER_ROWS` that are there, with their row functions."""
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    found = []
    for module_name, functions in _OTHER_ROWS:
        try:
            found.append((importlib.import_module(module_name), functions))
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return found


async def _optional_rows(args: argparse.Namespace) -> list[Row]:
    """The rows of ``bench/fault_input.py`` and ``bench/fault_overload.py``, if present."""
    rows: list[Row] = []
    for module, functions in _other_modules():
        for name in functions:
            fn = getattr(module, name, None)
            if fn is None:
                continue
            if inspect.iscoroutinefunction(fn):
                got = await fn(args)
            else:  # it may run its own event loop: not on this one
                got = await asyncio.to_thread(fn, args)
            one = isinstance(got, dict) or hasattr(got, "scenario")
            rows += [_as_row(r) for r in ([got] if one else got)]
    return rows


def _as_row(r: Any) -> Row:
    """A row from another module: a Row (of any copy of this module), a mapping or a
    (scenario, measured, target, passed) tuple."""
    if isinstance(r, dict):
        return Row(str(r["scenario"]), str(r["measured"]), str(r["target"]), bool(r["passed"]))
    if hasattr(r, "scenario"):
        return Row(str(r.scenario), str(r.measured), str(r.target), bool(r.passed))
    scenario, measured, target, passed = r
    return Row(str(scenario), str(measured), str(target), bool(passed))


async def run(args: argparse.Namespace) -> list[Row]:
    import tempfile

    rows: list[Row] = []
    async with contextlib.AsyncExitStack() as stack:
        if args.broker == "embedded":
            embedded = EmbeddedBroker()
            await embedded.start()
            stack.push_async_callback(embedded.stop)
            bootstrap = embedded.bootstrap
        else:
            from streamrec.stream.local_kafka import LocalKafka

            kafka = LocalKafka()
            await kafka.start(timeout=180)
            stack.callback(kafka.stop_sync)
            bootstrap = kafka.bootstrap
        exact = 0
        details = []
        for run_no in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="streamrec-faults-") as tmp:
                t0 = time.monotonic()
                got = await kill_run(bootstrap, Path(tmp), args.events, args.kills,
                                     args.seconds, seed=args.seed + run_no)  # fmt: skip
                ok = got.lost == 0 and got.twice == 0 and got.tmp_left == 0
                exact += ok
                details.append(f"{got.events}/{got.published} (lost {got.lost}, twice "
                               f"{got.twice}, {got.kills} kills)")  # fmt: skip
                print(f"kill run {run_no + 1}: {details[-1]} in {time.monotonic() - t0:.0f} s",
                      flush=True)  # fmt: skip
        summary = details[0] if len(set(details)) == 1 else "; ".join(details)
        rows.append(Row(f"trainer SIGKILL {args.kills}x during {args.events:,} interactions",
                        f"{exact}/{args.runs} runs exact; " + ("each " if len(set(details)) == 1
                                                                 else "") + summary,
                        f"{args.runs}/{args.runs} runs: exactly {args.events:,} learned",
                        exact == args.runs))  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="streamrec-faults-") as tmp:
            async with restartable_broker(args.broker, bootstrap) as broker:
                res = await broker_restart_run(broker, Path(tmp), args.restart_events,
                                               args.requests)  # fmt: skip
        print(f"broker restart: {res}", flush=True)
        rows.append(Row("broker restart mid-stream (new log)",
                        f"{res.learned_after}/{res.after_restart} learned after the restart; "
                        f"{res.fresh_wrong}/{res.requests} answers stale: false without "
                        f"the caller's click ({res.stale} stale: true; slowest "
                        f"{res.slowest_s} s)",
                        "all learned; 0 such answers",
                        res.learned_after == res.after_restart and res.fresh_wrong == 0))  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="streamrec-faults-") as tmp:
            rep = await replica_run(bootstrap, Path(tmp), args.replica_events)
        print(f"replica: {rep}", flush=True)
        rows.append(
            Row(
                "replica after a lost delta (forced send failure)",
                f"max |diff| {rep.lost_delta_diff:g} after {rep.lost_delta_s:.2f} s",
                "max |diff| = 0 within 5 s",
                rep.lost_delta_diff == 0.0 and rep.lost_delta_s <= 5.0,
            )
        )
        rows.append(Row("replica after a trainer restart (killed after its last checkpoint)",
                        f"max |diff| {rep.restart_diff:g} after {rep.restart_s:.2f} s",
                        "max |diff| = 0 within 5 s",
                        rep.restart_diff == 0.0 and rep.restart_s <= 5.0))  # fmt: skip
    rows += await _optional_rows(args)
    return rows


def table(rows: list[Row]) -> str:
    head = ("scenario", "measured", "target", "pass")
    cells = [head, *[(r.scenario, r.measured, r.target, "yes" if r.passed else "NO") for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(4)) for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=24.0,
                        help="publishing time of the kill scenario")  # fmt: skip
    parser.add_argument(
        "--restart-events",
        type=int,
        default=10_000,
        help="events of the broker-restart scenario (half before, half after)",
    )
    parser.add_argument("--requests", type=int, default=30,
                        help="read-your-writes requests after the broker restart")  # fmt: skip
    parser.add_argument("--replica-events", type=int, default=6000,
                        help="events of the replica scenario (a third per phase)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    for module, _ in _other_modules():  # their rows read their own options
        module.add_arguments(parser)
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(table(rows))
    sys.exit(0 if all(r.passed for r in rows) else 1)


if __name__ == "__main__":
    main()
