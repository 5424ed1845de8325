"""The trainer as a real process, SIGKILLed at random moments and restarted: every
interaction is learned exactly once (bench/faults.py runs it at full size).

Each of the events is a distinct user-item pair, so the trainer's last checkpoint
tells lost events (pairs missing from the seen sets) from events learned twice
(``n_events`` above the number of pairs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import kill_run


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
