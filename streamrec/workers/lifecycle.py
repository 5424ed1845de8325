"""Stopping workers: cancel their task, close their Kafka clients."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a worker's task and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def close(*clients: Any) -> None:
    """Stop aiokafka consumers/producers; errors of already broken connections are ignored."""
    for client in clients:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()
