"""The trainer as a real process, SIGKILLed and restarted 3 times (twice at random
moments mid-stream, once on an idle stream after a checkpoint at the log's end, where
the code that trusted ListOffsets(latest) learned every event again): every interaction
is learned exactly once (bench/faults.py runs it at full size).

Each of the events is a distinct user-item pair, so the trainer's last checkpoint
tells lost events (pairs missing from the seen sets) from events learned twice
(``n_events`` above the number of pairs).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bench.faults import kill_run
from streamrec.model import ModelConfig
from streamrec.settings import Settings
from streamrec.workers.checkpoints import Checkpoints
from streamrec.workers.training.trainer import Trainer


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trainer_sigkilled_three_times_learns_every_event_once(
    bootstrap: str, tmp_path: Path
) -> None:
    got = await kill_run(bootstrap, tmp_path, events=4000, kills=3, seconds=12.0, seed=7)
    assert got.kills == 3
    assert (got.lost, got.twice) == (0, 0)
    assert got.events == 4000
    assert got.tmp_left == 0  # a save cut short by a kill leaves nothing behind


def _settings(tmp_path: Path, prefix: str = "ck") -> Settings:
    return Settings.load({"data_dir": tmp_path / "data", "topic_prefix": prefix,
                          "web_port": -1, "model": ModelConfig(dim=8)}, environ={})  # fmt: skip


def test_temporary_files_of_a_killed_save_are_removed_at_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    checkpoints = Checkpoints(settings, "ck.deltas")
    folder = checkpoints.folder
    folder.mkdir(parents=True)
    left = [
        folder / ".ck.npz.abc123.tmp",
        folder / ".ck-v000007.npz.x_9.tmp",
        folder / "ck.npz.tmp-link",
    ]
    others = [folder / ".ck2.npz.abc.tmp", folder / "ck-v000006.npz"]  # another prefix, a file
    for path in left + others:
        path.write_bytes(b"partial")
    assert checkpoints.clean() == 3
    assert [p.exists() for p in left + others] == [False] * 3 + [True, True]


@pytest.mark.asyncio
async def test_stop_waits_for_a_checkpoint_in_flight(tmp_path: Path) -> None:
    """A timer's checkpoint cancelled by the stop keeps writing in its thread; the last
    checkpoint waits for it instead of writing the same version at the same time."""
    trainer = Trainer(_settings(tmp_path), "unused:9092")
    write = trainer.checkpoints._write
    active: list[int] = []
    overlaps: list[int] = []
    saves: list[int] = []

    def slow_write(*args: Any, **kwargs: Any) -> Path:
        if active:
            overlaps.append(1)
        active.append(1)
        time.sleep(0.3)
        try:
            return write(*args, **kwargs)
        finally:
            active.pop()
            saves.append(1)

    trainer.checkpoints._write = slow_write  # type: ignore[method-assign]
    timer = asyncio.create_task(trainer.checkpoint_now())
    while not active:  # its write is running in a thread
        await asyncio.sleep(0.01)
    timer.cancel()
    await trainer.stop()
    assert (len(saves), overlaps) == (2, [])
    assert Checkpoints(trainer.settings, "ck.deltas").latest() is not None


@pytest.mark.asyncio
async def test_a_checkpoint_is_written_outside_the_lock_as_of_when_it_was_taken(
    tmp_path: Path,
) -> None:
    """The file is written while the trainer may learn again (the lock is free), and it
    holds the model and the item attributes as they were when the checkpoint was taken,
    not as they are by then."""
    trainer = Trainer(_settings(tmp_path), "unused:9092")
    model, attributes = trainer.state.model, trainer.state.attributes
    model.add_user("u0", ["age=1"])
    model.add_item("i0", ["genre=1"])
    attributes.update("i0", {"tags": ["a"], "price": 3}, 100.0)
    write = trainer.checkpoints._write
    lock_free_while_writing: list[bool] = []

    def write_later(*args: Any, **kwargs: Any) -> Path:
        lock_free_while_writing.append(not trainer._lock.locked())
        model.add_item("i1", ["genre=2"])  # the model moves on during the write
        attributes.update("i0", {"price": 4}, 200.0)  # and so do the attributes
        attributes.update("i1", {"price": 5}, 300.0)
        return write(*args, **kwargs)

    trainer.checkpoints._write = write_later  # type: ignore[method-assign]
    await trainer.checkpoint_now()
    assert lock_free_while_writing == [True]
    restored = Checkpoints(trainer.settings, "ck.deltas").restore()
    assert restored is not None
    assert (restored.model.n_users, restored.model.n_items) == (1, 1)
    assert model.n_items == 2
    assert restored.attributes == {"i0": {"attributes": {"tags": ["a"], "price": 3},
                                          "created": 100.0}}  # fmt: skip
    assert attributes.get("i0") == {"tags": ["a"], "price": 4}


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trainer_sigkilled_while_it_deletes_event_periods_learns_every_event_once(
    embedded_bootstrap: str, tmp_path: Path
) -> None:
    """The same over 1-s event-period topics (embedded broker), which the trainer
    deletes as it learns and checkpoints them: nothing is lost or learned twice, and
    the periods published to are gone from the broker."""
    got = await kill_run(embedded_bootstrap, tmp_path, events=3000, kills=3, seconds=8.0,
                         seed=11, event_period_s=1)  # fmt: skip
    assert got.kills == 3
    assert (got.lost, got.twice) == (0, 0)
    assert got.events == 3000
    assert got.periods_deleted >= 5
