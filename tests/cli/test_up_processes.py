"""``streamrec up`` as real processes: a trainer and a recommender, supervised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from streamrec.settings import Settings
from streamrec.stream.broker import free_port
from streamrec.stream.client import Client

pytestmark = pytest.mark.integration


class Up:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, settings: Settings) -> None:
        self.proc, self.port, self.settings = proc, port, settings

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as exc:  # 503: degraded, with its report
            return dict(json.loads(exc.read()))

    def wait(self, check: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "streamrec up exited"
            try:
                last = self.health()
                if check(last):
                    return last
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not reached in {timeout} s; last health: {last}")

    def pids(self) -> dict[str, int]:
        return {role: p["pid"] for role, p in self.health()["processes"].items()}


def _ready(h: dict[str, Any]) -> bool:
    return h.get("status") == "ok"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    port = free_port()
    prefix = f"up{os.getpid()}"
    cmd = [sys.executable, "-m", "streamrec", "up", "--data-dir", str(tmp_path), "--prefix",
           prefix, "--web-port", str(port), "--dim", "16"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    settings = Settings.load({"data_dir": tmp_path, "topic_prefix": prefix}, environ={})
    up = Up(proc, port, settings)
    try:
        up.wait(_ready, 180)
        yield up
    finally:
        with contextlib.suppress(ProcessLookupError):  # up, and its embedded broker
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _learn(up: Up, user: str) -> None:
    async with Client(settings=up.settings, timeout=60) as client:
        for i in range(40):
            await client.add_item(f"i{i}", [f"cat={i % 4}"], wait=False)
        for k in range(8):
            await client.track(user, f"i{(4 * k) % 40}", wait=False)
        await client.flush()


async def _ask(up: Up, user: str) -> Any:
    async with Client(settings=up.settings, timeout=60) as client:
        return await client.recommend(user, 5, consistent=False)


def _replica_events(h: dict[str, Any]) -> int:
    return int(h["processes"]["recommender"].get("model", {}).get("events", 0))


def test_up_runs_trainer_and_recommender_in_processes_of_their_own(up: Up) -> None:
    h = up.health()
    assert set(h["processes"]) == {"trainer", "recommender"}
    assert h["processes"]["trainer"]["roles"] == ["trainer", "indexer"]
    assert h["processes"]["recommender"]["roles"] == ["recommender"]
    pids = up.pids()
    assert len(set(pids.values()) | {up.proc.pid}) == 3
    # the workers run with the supervisor's malloc settings; the supervisor loads no numba
    for pid in pids.values():
        assert psutil.Process(pid).environ().get("MALLOC_ARENA_MAX") == "2"
    assert not [m.path for m in psutil.Process(up.proc.pid).memory_maps() if "llvmlite" in m.path]
    asyncio.run(_learn(up, "alice"))
    # the recommender's replica learns what the trainer learned, through the deltas
    # (the first time, with numba's cache cold, both processes compile their kernels, and
    # a process busy compiling may not answer the supervisor's /health in time)
    h = up.wait(lambda h: _replica_events(h) >= 8 and "model" in h["processes"]["trainer"], 180)
    assert h["processes"]["trainer"]["model"]["events"] == 8
    r = asyncio.run(_ask(up, "alice"))
    assert r.strategy == "personalised" and len(r.ids) == 5
    assert not {f"i{(4 * k) % 40}" for k in range(8)} & set(r.ids)  # seen, excluded
    # the index the trainer's process built, loaded by the recommender's
    up.wait(lambda h: h["processes"]["recommender"].get("index", {}).get("size", 0) >= 40, 180)


def test_a_killed_worker_process_is_restarted(up: Up) -> None:
    old = up.pids()["recommender"]
    os.kill(old, signal.SIGKILL)
    h = up.wait(lambda h: h["processes"]["recommender"]["restarts"] == 1 and _ready(h), 180)
    assert h["processes"]["recommender"]["pid"] != old
    asyncio.run(_learn(up, "bob"))
    up.wait(lambda h: _replica_events(h) >= 8, 180)
    assert asyncio.run(_ask(up, "bob")).strategy == "personalised"


def test_ctrl_c_stops_every_process(up: Up) -> None:
    pids = up.pids()
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(90) == 0
    assert not [p for p in pids.values() if psutil.pid_exists(p) and _alive(p)]


def test_the_workers_die_with_a_killed_supervisor(up: Up) -> None:
    pids = up.pids()
    up.proc.kill()
    up.proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert not [p for p in pids.values() if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
