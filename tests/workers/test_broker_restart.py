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
