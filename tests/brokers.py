"""The brokers of the test session: the embedded Tansu and a real Apache Kafka.

Real Kafka, in this order: ``STREAMREC_BOOTSTRAP`` (an existing cluster), testcontainers'
Kafka module when a Docker daemon answers, else the official jars started locally
(``streamrec.stream.local_kafka``: Java 17+, Maven on the first run).  When none starts,
the Kafka half of the broker tests fails in CI (``CI`` set) and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import pytest

#: Test ids of the two broker kinds (``test_x[embedded]``, ``test_x[kafka]``; select with ``-k kafka``).
BROKERS = ("embedded", "kafka")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def docker_reachable() -> bool:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return False
    try:
        docker.from_env(timeout=2).ping()
    except (DockerException, OSError):
        return False
    return True


def unavailable(what: str, reason: str) -> None:
    """Fail (in CI) or skip (locally) a test whose backend could not start."""
    message = f"{what} unavailable: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI is set: a missing backend is a failure)", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def embedded_kafka() -> Iterator[str]:
    from streamrec.stream.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    asyncio.run(broker.start())
    try:
        yield broker.bootstrap
    finally:
        asyncio.run(broker.stop())


@contextlib.contextmanager
def real_kafka() -> Iterator[str]:
    """A real Apache Kafka bootstrap address, by the order in the module docstring."""
    external = os.environ.get("STREAMREC_BOOTSTRAP")
    if external:
        yield external
        return
    if docker_reachable():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.8.0").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from streamrec.errors import BrokerError
    from streamrec.stream.local_kafka import LocalKafka

    broker = LocalKafka()
    try:
        asyncio.run(broker.start(timeout=120))
    except (BrokerError, OSError) as exc:
        unavailable("Apache Kafka", str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop_sync()


async def broker_kind(bootstrap: str) -> str:
    """ "kafka" when the broker grants producer ids (Apache Kafka), else "embedded"."""
    from streamrec.stream.kafka_clients import supports_idempotence

    return "kafka" if await supports_idempotence(bootstrap) else "embedded"
