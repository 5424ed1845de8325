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
from typing import Any

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
