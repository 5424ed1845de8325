"""A task beside the code under test that counts the turns the event loop gives it."""

from __future__ import annotations

import asyncio
from types import TracebackType


class LoopTurns:
    """``async with LoopTurns() as turns: ...`` then ``turns.count``: how many times a
    task sleeping ``interval`` s between turns ran while the block ran."""

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
