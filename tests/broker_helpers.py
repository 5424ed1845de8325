"""Helpers for the tests that talk to a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Mapping
from typing import Any, TypeVar

from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.codec import decode
from streamrec.stream.schemas import DeadLetter
from streamrec.workers import Stack

T = TypeVar("T")


async def read_topic(
    bootstrap: str,
    topic: str,
    n: int,
    keep: Callable[[bytes], T | None],
    same: Callable[[T], Hashable] | None = None,
) -> list[T]:
    """The first ``n`` records of ``topic`` that ``keep`` turns into something other than
    None (fewer if 20 s pass first); with ``same``, a record whose ``same`` an earlier
    one had is left out."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[T] = []
    seen: set[Hashable] = set()
    try:
        deadline = time.monotonic() + 20
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for value in (r.value for recs in batch.values() for r in recs):
                kept = keep(value)
                if kept is None or (same is not None and same(kept) in seen):
                    continue
                if same is not None:
                    seen.add(same(kept))
                out.append(kept)
    finally:
        await consumer.stop()
    return out


async def read_dead_letters(
    bootstrap: str, topic: str, n: int, match: Callable[[DeadLetter], bool] | None = None
) -> list[DeadLetter]:
    """The first ``n`` dead letters on ``topic`` (that ``match``; fewer if 20 s pass first),
    one per source record: letters are sent at least once, and a record a worker reads
    again (a consumer-group rebalance before its offset was committed, a restart from a
    checkpoint) is dead-lettered again (docs/streaming.md#dead-letters)."""

    def keep(value: bytes) -> DeadLetter | None:
        letter = decode(value, DeadLetter)
        return letter if match is None or match(letter) else None

    def source(letter: DeadLetter) -> Hashable:
        return letter.source_topic, letter.source_partition, letter.source_offset

    return await read_topic(bootstrap, topic, n, keep, source)


async def read_topic_values(bootstrap: str, topic: str, n: int) -> list[bytes]:
    """The first ``n`` values on ``topic`` (fewer if 20 s pass first)."""
    return await read_topic(bootstrap, topic, n, lambda value: value)


@contextlib.asynccontextmanager
async def running_deployment(
    bootstrap: str, settings: Settings, names: Mapping[str, int], keeper: Coroutine[Any, Any, None]
) -> AsyncIterator[tuple[Stack, Client]]:
    """The topics ``names`` made, ``keeper`` running (what ``streamrec up`` runs beside
    the workers on the embedded broker: the request slots' recycler, the event periods'
    creator), a started stack and a started client; all stopped at the end."""
    await ensure_topics(bootstrap, names)
    task = asyncio.create_task(keeper)
    stack = Stack(settings, bootstrap, fresh=True, embedded=True)
    await stack.start()
    client = Client(bootstrap, settings=settings)
    try:
        assert await stack.ready(30)
        await client.start()
        yield stack, client
    finally:
        task.cancel()
        await client.stop()
        await stack.stop()


async def onboard_two_topics(client: Client, stack: Stack) -> None:
    """20 items alternating ``topic=0`` / ``topic=1`` and a user ``u`` who likes topic 0,
    published by ``client`` and waited for in ``stack``'s model."""
    for i in range(20):
        await client.add_item(f"it-{i}", [f"topic={i % 2}"], wait=False)
    await client.add_user("u", ["likes=0"], wait=False)
    await client.flush()
    assert await stack.state.wait_for(client.watermarks(), 30)
