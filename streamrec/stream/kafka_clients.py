"""The one place Kafka producers and consumers are built (aiokafka), per broker capability.

On Apache Kafka every producer is idempotent (``enable_idempotence=True``: a retried batch
is written once, in order, per partition).  The embedded Tansu broker has no
InitProducerId (it answers UNKNOWN_SERVER_ERROR), so producers there are plain ones.  The
capability is probed, not configured: ``supports_idempotence`` sends one InitProducerId
request (no transactional id) and caches a definite answer per bootstrap address for
the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streamrec.stream.topics import Topics

log = logging.getLogger(__name__)

#: InitProducerId errors that mean "ask again" (coordinator loading, not yet available,
#: timed out), not "unsupported".
_RETRIABLE = {7, 14, 15}
_probed: dict[str, bool] = {}


async def supports_idempotence(bootstrap: str, timeout: float = 15.0) -> bool:
    """Whether the broker grants producer ids (InitProducerId answers without error)."""
    if bootstrap in _probed:
        return _probed[bootstrap]
    from aiokafka import AIOKafkaClient
    from aiokafka.protocol.transaction import InitProducerIdRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout
    answer: bool | None = None
    try:
        await client.bootstrap()
        while True:
            node = client.get_random_node()
            request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000)
            response = await asyncio.wait_for(client.send(node, request), timeout)
            if response.error_code == 0:
                answer = True
                break
            if response.error_code not in _RETRIABLE:
                answer = False
            if answer is False or time.monotonic() > deadline:
                log.info(
                    "broker %s refuses InitProducerId (error %d): non-idempotent producers",
                    bootstrap,
                    response.error_code,
                )
                break
            await asyncio.sleep(0.1)
    except Exception as exc:  # unreachable or an old broker: decide again next time
        log.info("InitProducerId probe of %s failed (%r): non-idempotent producers", bootstrap, exc)
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    if answer is None:
        return False
    _probed[bootstrap] = answer
    return answer


async def make_producer(bootstrap: str, **options: Any) -> Any:
    """An (unstarted) ``AIOKafkaProducer``, idempotent when the broker supports it."""
    from aiokafka import AIOKafkaProducer

    if "enable_idempotence" not in options:
        options["enable_idempotence"] = await supports_idempotence(bootstrap)
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **options)


def make_consumer(bootstrap: str, *topics: str, **options: Any) -> Any:
    """An (unstarted) ``AIOKafkaConsumer``."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **options)


def is_idempotent(producer: Any) -> bool:
    """Whether ``producer`` was built with ``enable_idempotence=True``."""
    return getattr(producer, "_txn_manager", None) is not None


async def partitions(producer: Any, topic: str, timeout: float = 10.0) -> set[int]:
    """The partitions of ``topic``, asking the broker when they are not known yet.

    Empty when the topic does not exist within ``timeout`` seconds.
    """
    from aiokafka.errors import KafkaError

    try:
        return set(await asyncio.wait_for(producer.partitions_for(topic), timeout))
    except (TimeoutError, KafkaError):
        return set()


class FetchPosition(NamedTuple):
    """Where a consumer stands in one assigned partition, as its last fetch left it."""

    tp: Any
    position: int
    highwater: int  # from the partition's last fetch answer
    paused: bool
    answered: int | None  # when that answer came (ms; aiokafka's stamp of it)


def fetch_positions(consumer: Any) -> list[FetchPosition]:
    """Each assigned partition whose position and high watermark (from its last fetch
    answer) are known.

    aiokafka has no public call for the position without awaiting it, so this reads its
    subscription state, the one place streamrec does.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None:
        return []
    out = []
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position and state.highwater is not None:
            out.append(FetchPosition(tp, state.position, state.highwater, state.paused,
                                     state.timestamp))  # fmt: skip
    return out


async def topic_partitions(producer: Any) -> dict[str, set[int]]:
    """Every topic the broker has, with its partitions (one metadata request for all
    topics: asking for one by name would create it on a broker that creates topics on
    first use)."""
    cluster = await producer.client.fetch_all_metadata()
    return {name: set(cluster.partitions_for_topic(name) or ()) for name in cluster.topics()}


async def topics_with_slots(
    producer: Any, topics: Topics, timeout: float = 5.0
) -> tuple[dict[str, set[int]], int]:
    """:func:`topic_partitions` and the request slots among them, listed again (up to
    ``timeout`` s) while a slot that is being recycled misses one of its topics."""
    deadline = time.monotonic() + timeout
    while True:
        found = await topic_partitions(producer)
        slots = topics.slots_in(set(found))
        if topics.slots_whole(set(found), slots) or time.monotonic() > deadline:
            return found, slots
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Probe:
    """What a fetch at one offset of one partition found.

    ``in_range`` is False when the broker answered OFFSET_OUT_OF_RANGE (the offset is past
    the log end, or before its start); ``highwater`` is the fetch response's high
    watermark (None when out of range); ``record`` the record at that offset, if any;
    ``log_start`` (out of range only) the log's first offset when the log now begins
    after the offset (retention deleted it), None when it ends before (a new log).
    """

    in_range: bool
    highwater: int | None = None
    record: Any = None
    log_start: int | None = None


async def probe(
    bootstrap: str, wanted: Mapping[Any, int], timeout: float = 10.0
) -> dict[Any, Probe]:
    """Fetch at ``wanted[tp]`` in every partition and report what is there (:class:`Probe`).

    This is how end offsets are read reliably: the embedded broker's ListOffsets(latest)
    is wrong when producers batch, the high watermark of a fetch response is right.  A
    partition that does not answer within ``timeout`` seconds raises
    :class:`~streamrec.errors.BrokerError`.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import OffsetOutOfRangeError

    from streamrec.errors import BrokerError

    out: dict[Any, Probe] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="none", fetch_max_wait_ms=20,
                                max_partition_fetch_bytes=64 * 1024)  # fmt: skip
    await consumer.start()
    try:
        for tp, offset in wanted.items():
            consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + timeout
            while tp not in out:
                try:
                    batch = await consumer.getmany(tp, timeout_ms=100, max_records=1)
                except OffsetOutOfRangeError:
                    start = (await consumer.beginning_offsets([tp])).get(tp)
                    out[tp] = Probe(False, log_start=start if start is not None and
                                    start > offset else None)  # fmt: skip
                    break
                records = batch.get(tp, [])
                highwater = consumer.highwater(tp)
                if records:
                    out[tp] = Probe(True, highwater, records[0])
                elif highwater is not None and highwater <= offset:
                    out[tp] = Probe(True, highwater)
                elif time.monotonic() > deadline:
                    raise BrokerError(f"no fetch answer for {tp} at offset {offset} "
                                      f"within {timeout} s")  # fmt: skip
    finally:
        await consumer.stop()
    return out


def fingerprint(key: bytes | None, value: bytes | None, timestamp_ms: int) -> int:
    """A number naming one record by its content: a recreated topic that holds another
    record at the same offset has (almost surely) another fingerprint."""
    crc = zlib.crc32(key or b"", zlib.crc32(value or b""))
    return (int(timestamp_ms) << 32) | crc
