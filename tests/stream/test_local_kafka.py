"""The local Apache Kafka of ``streamrec kafka``: a clear error when it cannot start, and no
broker left behind when the process that started it dies."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamrec.errors import BrokerError
from streamrec.stream.local_kafka import LocalKafka, cluster_id, kafka_libs
from tests.brokers import unavailable

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jars() -> Path:
    if not shutil.which("java"):
        unavailable("Apache Kafka", "no `java` on PATH")
    try:
        return kafka_libs()
    except BrokerError as exc:
        unavailable("Apache Kafka", str(exc))
        raise


def test_cluster_ids_never_look_like_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id starting with ``-`` made the storage tool fail in about 1 start in 64."""
    import uuid

    dash = uuid.UUID(bytes=b"\xfb" + bytes(15))  # base64url "-w..."
    plain = uuid.UUID(bytes=bytes(16))
    draws = iter([dash, dash, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_a_taken_port_gives_an_error_with_the_broker_log(jars: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = LocalKafka(port=taken.getsockname()[1])
        with pytest.raises(BrokerError) as err:
            asyncio.run(broker.start(timeout=60))
    message = str(err.value)
    assert "exited with code" in message and "log ends with" in message
    # the broker's own first error is in the message, not only its shutdown chatter
    assert "ERROR Unable to start acceptor for ListenerName(PLAINTEXT)" in message
    assert not broker.dir.exists()  # stopped and cleaned up


PARENT = """
import asyncio, sys
from streamrec.stream.local_kafka import LocalKafka
async def main():
    broker = LocalKafka()
    await broker.start(timeout=120)
    print(broker._proc.pid, broker.dir, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def test_the_broker_dies_with_the_process_that_started_it(jars: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, env=env,
                              text=True)  # fmt: skip
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().split()
        assert line, "the parent did not start Kafka"
        java, data = int(line[0]), Path(line[1])
        os.kill(java, 0)  # running
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(java, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(java, signal.SIGKILL)
        pytest.fail("the Kafka process outlived its parent")
    shutil.rmtree(data)  # the parent was killed: nobody else removes its temporary data


def test_the_kafka_command_serves_until_interrupted(jars: Path) -> None:
    from streamrec.stream.broker import check_reachable

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "streamrec", "kafka", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        bootstrap = proc.stdout.readline().strip()
        assert bootstrap.startswith("127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        asyncio.run(check_reachable(bootstrap))  # a real broker answers there
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopping Kafka" in err
