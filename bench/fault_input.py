"""Fault scenarios of hostile input and of the feature store (issue 9), one table row each.

    python bench/fault_input.py                    # full size
    python bench/fault_input.py --quick            # 200 clean events, 10 s outage
    python bench/fault_input.py --database postgresql   # the outage on PostgreSQL (pgserver)

``hostile_payloads``: 1,000 clean events (items and users onboarded, then interactions)
with hypothesis-drawn bad payloads (plus one of each kind the issue names) mixed in on
the interactions, entities and request topics, through the embedded broker and a whole
stack (trainer, indexer, recommender).  Target: no exception escapes a worker, every bad
payload is dead-lettered with its original bytes, all clean events are learned, and the
checkpoint and the Annoy index stay within 2 times the clean run's.

``database_down``: a producer streams onboarding and interactions at a steady rate to a
trainer writing to the feature store; after ``--normal`` seconds the store's database
goes down (its engine pointed at a file that cannot be opened, or a port nobody listens
on) for ``--outage`` seconds, then comes back.  Target: the trainer learns at least half
as fast during the outage as before it, the backlog drains and a checkpoint holding
every event is registered after recovery.

Both functions take the parsed arguments and return one row (``scenario``,
``measured``, ``target``, ``passed``); ``bench/faults.py`` can call them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the hostile payloads live with the tests
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine  # noqa: E402

from streamrec.index.ann import build_snapshot  # noqa: E402
from streamrec.model import checkpoint  # noqa: E402
from streamrec.settings import Settings  # noqa: E402
from streamrec.store import FeatureStore  # noqa: E402
from streamrec.stream.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from streamrec.stream.client import Client  # noqa: E402
from streamrec.stream.codec import decode  # noqa: E402
from streamrec.stream.kafka_clients import make_consumer, make_producer  # noqa: E402
from streamrec.stream.schemas import DeadLetter, Watermark  # noqa: E402
from streamrec.stream.topics import Topics  # noqa: E402
from streamrec.workers import Stack  # noqa: E402
from tests.hostile import Payload, clean_world, draw_payloads, every_kind  # noqa: E402

Row = dict[str, Any]


class _Escapes(logging.Handler):
    """Counts the errors a worker loop caught (an exception that escaped a step)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "loop error" in record.getMessage() or record.exc_info:
            self.count += 1


@contextlib.contextmanager
def _escapes() -> Iterator[_Escapes]:
    handler = _Escapes()
    root = logging.getLogger("streamrec")
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"topic_prefix": f"b{uuid.uuid4().hex[:10]}", "data_dir": data_dir,
                              "web_port": -1, "runtime": "asyncio"}  # fmt: skip
    values.update(overrides)
    return Settings.load(values, environ={})


# ----------------------------------------------------------------- hostile payloads
async def _one_run(bootstrap: str, tmp: Path, n_clean: int, bad: list[Payload]) -> dict[str, Any]:
    settings = _settings(tmp / uuid.uuid4().hex[:6], checkpoint_interval_s=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    world = clean_world(n_clean, n_users=max(40, n_clean // 10), n_items=max(30, n_clean // 20))
    names = {"interactions": topics.interactions, "entities": topics.entities,
             "requests": topics.requests}  # fmt: skip
    stack = Stack(settings, bootstrap, fresh=True, web=False, embedded=True)
    producer = await make_producer(bootstrap, max_request_size=4 * 1024 * 1024)
    with _escapes() as escaped:
        await stack.start()
        await producer.start()
        try:
            assert await stack.ready(30)
            ends: dict[tuple[str, int], int] = {}
            clean = [(topics.entities, v) for v in world.entities]
            clean += [(topics.interactions, v) for v in world.interactions]
            step = max(1, len(clean) // max(1, len(bad)))
            queue = list(bad)
            for n, (topic, value) in enumerate(clean):
                sends = [(topic, value, b"k%d" % (n % 7))]
                if queue and n % step == 0:
                    p = queue.pop(0)
                    sends.append((names[p.topic], p.value, b"hostile"))
                if n == len(clean) - 1:
                    sends += [(names[p.topic], p.value, b"hostile") for p in queue]
                for t, v, k in sends:
                    md = await (await producer.send(t, v, key=k))
                    if t != topics.requests:
                        key = (t, md.partition)
                        ends[key] = max(ends.get(key, -1), md.offset)
            marks = [Watermark(t, p, o) for (t, p), o in ends.items()]
            t0 = time.perf_counter()
            learned = await stack.state.wait_for(marks, 120)
            seconds = time.perf_counter() - t0
            letters = await _dead_letters(bootstrap, topics.dead_letters, len(bad))
            async with Client(bootstrap, settings=settings) as client:
                answered = len((await client.recommend("u1", 5)).ids) == 5
            model = stack.state.model
            ckpt = checkpoint.save(model, tmp / f"{settings.topic_prefix}.npz").stat().st_size
            index_file = tmp / f"{settings.topic_prefix}.ann"
            build_snapshot(model.item_representations(), settings.index_trees).index.save(
                str(index_file)
            )
            return {
                "learned": learned, "events": model.n_events, "expected": world.n_events,
                "letters": letters, "checkpoint": ckpt, "index": index_file.stat().st_size,
                "escaped": escaped.count, "answered": answered, "wait_s": seconds,
            }  # fmt: skip
        finally:
            await producer.stop()
            await stack.stop()


async def _dead_letters(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    consumer = make_consumer(bootstrap, topic, auto_offset_reset="earliest")
    await consumer.start()
    out: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [decode(r.value, DeadLetter) for recs in batch.values() for r in recs]
            out += got
            if len(out) >= n:  # then one more second, to catch any extra letter
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        await consumer.stop()
    return out


def hostile_payloads(args: argparse.Namespace) -> Row:
    """Bad payloads among clean events on every consumed topic (see the module doc)."""
    bad = every_kind() + draw_payloads(args.payloads)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        broker = EmbeddedBroker()
        bootstrap = await broker.start()
        try:
            with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp:
                clean = await _one_run(bootstrap, Path(tmp), args.clean, [])
                hostile = await _one_run(bootstrap, Path(tmp), args.clean, bad)
                return clean, hostile
        finally:
            await broker.stop()

    clean, hostile = asyncio.run(run())
    letters = hostile["letters"]
    originals_match = Counter(d.original for d in letters) == Counter(p.value for p in bad)
    ckpt_ratio = hostile["checkpoint"] / clean["checkpoint"]
    index_ratio = hostile["index"] / clean["index"]
    ok = (originals_match and hostile["learned"] and hostile["events"] == hostile["expected"]
          and hostile["escaped"] == 0 and hostile["answered"] and ckpt_ratio <= 2.0
          and index_ratio <= 2.0)  # fmt: skip
    by_topic = Counter(p.topic for p in bad)
    measured = (
        f"{len(bad)} bad payloads ({', '.join(f'{n} {t}' for t, n in sorted(by_topic.items()))}, "
        f"{sum(len(p.value) for p in bad) / 1e6:.1f} MB) among {hostile['expected']} clean "
        f"events: {len(letters)} dead letters, originals {'all' if originals_match else 'NOT'} "
        f"byte-equal; {hostile['events']}/{hostile['expected']} clean events learned "
        f"(clean run {clean['events']}); {hostile['escaped']} escaped exceptions; a clean "
        f"request {'answered' if hostile['answered'] else 'NOT answered'}; checkpoint "
        f"{hostile['checkpoint'] / 1e3:.0f} kB vs {clean['checkpoint'] / 1e3:.0f} kB clean "
        f"({ckpt_ratio:.2f}x), index {hostile['index'] / 1e3:.0f} kB vs "
        f"{clean['index'] / 1e3:.0f} kB ({index_ratio:.2f}x)"
    )
    return {
        "scenario": "hostile payloads on every consumed topic",
        "measured": measured,
        "target": "all dead-lettered with original bytes, all clean learned, no escape, "
        "sizes <= 2x clean",
        "passed": ok,
    }


# ------------------------------------------------------------------- database down
@contextlib.contextmanager
def _database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'store.db'}"
        return
    import pgserver
    from sqlalchemy.engine import make_url

    root = Path(tempfile.mkdtemp(prefix="streamrec-pg-"))
    server = pgserver.get_server(root, cleanup_mode="stop")
    try:
        uri = make_url(server.get_uri()).set(drivername="postgresql+psycopg")
        yield uri.render_as_string(hide_password=False)
    finally:
        server.cleanup()


def _dead_engine(url: str) -> Any:
    if url.startswith("sqlite"):
        return create_engine("sqlite:////nonexistent-streamrec-dir/none/store.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
                         connect_args={"connect_timeout": 2})  # fmt: skip


async def _stream(client: Client, rate: int, stop: asyncio.Event, sent: list[int]) -> None:
    """``rate`` events a second in 0.1 s ticks: a tenth new users and items, the rest clicks."""
    k = 0
    while not stop.is_set():
        tick = time.monotonic()
        for _ in range(max(1, rate // 10)):
            if k % 10 == 0:
                await client.add_item(f"i{k}", [f"genre={k % 17}"], {"available": True},
                                      wait=False)  # fmt: skip
            elif k % 10 == 1:
                await client.add_user(f"u{k}", [f"age={k % 9}"], wait=False)
            else:
                await client.track(f"u{(k // 10) * 10 + 1}", f"i{(k * 7) % max(10, k) // 10 * 10}",
                                   wait=False)  # fmt: skip
            k += 1
        sent[0] = k
        await client.flush()
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))


def database_down(args: argparse.Namespace) -> Row:
    """The feature store's database down for ``--outage`` seconds (see the module doc)."""

    async def run(url: str, tmp: Path) -> dict[str, Any]:
        broker = EmbeddedBroker()
        bootstrap = await broker.start()
        settings = _settings(tmp, database_url=url, checkpoint_interval_s=2.0)
        await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(3))
        out: dict[str, Any] = {}
        with FeatureStore.open(url) as store, FeatureStore.open(url) as observer:
            stack = Stack(settings, bootstrap, roles=("trainer",), store=store, web=False,
                          embedded=True)  # fmt: skip
            try:
                await stack.start()
                assert await stack.ready(30)
                sink = stack.sink
                assert sink is not None
                model = lambda: stack.state.model  # noqa: E731
                async with Client(bootstrap, settings=settings) as client:
                    stop, sent = asyncio.Event(), [0]
                    producer = asyncio.create_task(_stream(client, args.rate, stop, sent))
                    await asyncio.sleep(2.0)  # warm up (numba, consumer)
                    e0, s0, t0 = model().n_events, sent[0], time.monotonic()
                    await asyncio.sleep(args.normal)
                    out["normal_rate"] = (model().n_events - e0) / (time.monotonic() - t0)
                    out["normal_sent"] = (sent[0] - s0) / (time.monotonic() - t0)
                    before = observer.latest_checkpoint()
                    live = store.engine
                    store.engine = _dead_engine(url)
                    e0, s0, t0 = model().n_events, sent[0], time.monotonic()
                    peak = 0
                    while time.monotonic() - t0 < args.outage:
                        await asyncio.sleep(0.5)
                        peak = max(peak, sink.pending())
                    out["outage_rate"] = (model().n_events - e0) / (time.monotonic() - t0)
                    out["outage_sent"] = (sent[0] - s0) / (time.monotonic() - t0)
                    during = observer.latest_checkpoint()
                    out["checkpoint_during"] = (during.version if during else 0) != (
                        before.version if before else 0
                    )
                    out["peak_backlog"] = peak
                    store.engine.dispose()
                    store.engine = live
                    t_back = time.monotonic()
                    stop.set()
                    await producer
                    marks = client.watermarks()
                while sink.pending() and time.monotonic() - t_back < args.recovery:
                    await asyncio.sleep(0.1)
                out["drain_s"] = time.monotonic() - t_back
                out["drained"] = sink.pending() == 0
                out["caught_up"] = await stack.state.wait_for(marks, args.recovery)
                n = model().n_events
                resumed = None
                while time.monotonic() - t_back < args.recovery:
                    latest = observer.latest_checkpoint()
                    if latest is not None and latest.metrics.get("events") == n:
                        resumed = time.monotonic() - t_back
                        break
                    await asyncio.sleep(0.2)
                out["checkpoint_s"] = resumed
                out["sent"] = sent[0]
                out["events"] = n
            finally:
                await stack.stop()
                await broker.stop()
        return out

    with (
        tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp,
        _database(args.database, Path(tmp)) as url,
    ):
        r = asyncio.run(run(url, Path(tmp)))
    ratio = r["outage_rate"] / r["normal_rate"] if r["normal_rate"] else 0.0
    ok = (ratio >= 0.5 and r["drained"] and r["caught_up"] and r["checkpoint_s"] is not None
          and not r["checkpoint_during"])  # fmt: skip
    resumed = f"{r['checkpoint_s']:.1f} s" if r["checkpoint_s"] is not None else "NEVER"
    drained = f"in {r['drain_s']:.1f} s" if r["drained"] else "NOT"
    measured = (
        f"{args.database}, producer {args.rate} events/s (10% onboarding; it sent "
        f"{r['normal_sent']:.0f}/s before, {r['outage_sent']:.0f}/s during): learned "
        f"{r['normal_rate']:.0f}/s before, {r['outage_rate']:.0f}/s during the {args.outage:.0f} s "
        f"outage ({ratio:.2f}x); store backlog peak {r['peak_backlog']} upserts, drained "
        f"{drained}; checkpoint during the outage: "
        f"{'YES (wrong)' if r['checkpoint_during'] else 'none'}; a checkpoint with all "
        f"{r['events']} events registered {resumed} after recovery"
    )
    return {
        "scenario": f"database down {args.outage:.0f} s",
        "measured": measured,
        "target": "learning rate during >= 0.5x normal, backlog drains, checkpoints resume",
        "passed": ok,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenarios' options (``bench/faults.py`` takes them too)."""
    parser.add_argument("--clean", type=int, default=1000, help="clean interactions")
    parser.add_argument("--payloads", type=int, default=200, help="hypothesis-drawn payloads")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=int, default=2000, help="events/s of the outage run")
    parser.add_argument("--normal", type=float, default=20.0, help="seconds before the outage")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the database is down")
    parser.add_argument("--recovery", type=float, default=60.0, help="longest wait after it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 clean events, 10 s outage")
    add_arguments(parser)
    parser.add_argument("--only", choices=("hostile", "database"), default=None)
    args = parser.parse_args()
    if args.quick:
        args.clean, args.payloads, args.normal, args.outage = 200, 40, 5.0, 10.0
    logging.basicConfig(level=logging.CRITICAL)
    rows = []
    if args.only in (None, "hostile"):
        rows.append(hostile_payloads(args))
    if args.only in (None, "database"):
        rows.append(database_down(args))
    for row in rows:
        print(f"{row['scenario']} | {row['measured']} | target: {row['target']} | "
              f"{'PASS' if row['passed'] else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
