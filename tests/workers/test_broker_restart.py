"""A broker that comes back with a new, empty log (the embedded broker keeps topics in
memory; on Kafka the topics are deleted and created again) while a trainer and a replica
recommender run as real processes: every event published after it is learned, and no
answer says ``stale: false`` without its caller's click (bench/faults.py, full size)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench.faults import broker_restart_run, restartable_broker


@pytest.mark.integration
@pytest.mark.asyncio
async def test_events_after_a_broker_restart_are_all_learned(
    bootstrap: str, embedded: bool, tmp_path: Path
) -> None:
    async with restartable_broker("embedded" if embedded else "kafka", bootstrap) as broker:
        got = await broker_restart_run(broker, tmp_path, events=1000, requests=5)
    assert got.learned_after == got.after_restart == 500
    assert (got.requests, got.fresh_wrong) == (5, 0)


def test_the_embedded_broker_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL of the process that started it (``streamrec up``) leaves no broker behind."""
    script = ("import asyncio, os\n"
              "from streamrec.stream.broker import EmbeddedBroker\n"
              "b = EmbeddedBroker()\nasyncio.run(b.start())\n"
              "print(b._proc.pid, flush=True)\nos.kill(os.getpid(), 9)\n")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)  # fmt: skip
    assert done.returncode == -signal.SIGKILL
    pid = int(done.stdout.split()[0])
    for _ in range(100):  # the kernel delivers the parent-death signal asynchronously
        if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if x.startswith("State:"))  # fmt: skip
    except (OSError, StopIteration):
        return "gone"
    return line.split()[1]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_replica_starts_at_its_checkpoint_only_on_the_same_deltas_log(
    bootstrap: str, tmp_path: Path
) -> None:
    from streamrec.model import HybridModel, ModelConfig
    from streamrec.settings import Settings
    from streamrec.stream.broker import ensure_topics
    from streamrec.stream.codec import encode_binary
    from streamrec.stream.kafka_clients import make_producer
    from streamrec.stream.topics import Topics
    from streamrec.workers.checkpoints import Checkpoints
    from streamrec.workers.deltas import DeltaTracker
    from streamrec.workers.serving.follower import DeltaFollower

    settings = Settings.load({"data_dir": tmp_path / "data", "web_port": -1,
                              "topic_prefix": f"rs{uuid.uuid4().hex[:8]}"}, environ={})  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    model = HybridModel(ModelConfig(dim=8))
    tracker = DeltaTracker(model, epoch="A")
    producer = await make_producer(bootstrap)
    await producer.start()
    try:
        for _ in range(3):  # epoch A, seq 0, 1, 2 at offsets 0, 1, 2
            for d in tracker.build([]):
                await producer.send_and_wait(topics.deltas, encode_binary(d))
    finally:
        await producer.stop()
    checkpoints = Checkpoints(settings, topics.deltas)
    positions = []
    for last in (("A", 1), ("B", 1)):  # the delta before offset 2 is A/1: the same log
        checkpoints.prepare(model, {}, 2, None, epoch=last[0], next_seq=2,
                            last_delta=last).write()  # fmt: skip
        follower = DeltaFollower(settings, bootstrap)
        await follower.open()
        try:
            positions.append(await follower._consumer.position(follower._tp))
        finally:
            await follower.stop()
    assert positions == [2, 0]  # another log (recreated): read from the start
