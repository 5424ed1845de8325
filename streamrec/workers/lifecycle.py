"""Stopping workers: cancel their task, close their Kafka clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a worker's task and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def close(*clients: Any) -> None:
    """Stop aiokafka consumers/producers; errors of already broken connections are ignored.

    With the broker gone, aiokafka's consumer ``stop()`` can raise the CancelledError of
    its own fetch task: ignored too, unless this task itself is being cancelled.
    """
    for client in clients:
        if client is None:
            continue
        try:
            await client.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception:  # a broken connection has nothing left to stop
            pass


@contextlib.contextmanager
def logged(log: logging.Logger, what: str) -> Iterator[None]:
    """Run a shutdown step; if it fails, log why (with the traceback) and go on."""
    try:
        yield
    except Exception:
        log.exception("%s failed during shutdown", what)
