"""What a runtime drives (:class:`Workers`) and what it offers the stack (:class:`Runtime`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streamrec.settings import RUNTIMES
from streamrec.workers.metrics import Metrics
from streamrec.workers.serving.follower import DeltaFollower
from streamrec.workers.serving.indexer import IndexWorker
from streamrec.workers.serving.recommender import Recommender
from streamrec.workers.training.trainer import Trainer

__all__ = ["RUNTIMES", "Runtime", "WebEndpoint", "Workers"]


@dataclass
class Workers:
    """The workers of one process (any may be absent) and what the web views serve."""

    metrics: Metrics
    health: Callable[[], dict[str, Any]]
    trainer: Trainer | None = None
    follower: DeltaFollower | None = None
    indexer: IndexWorker | None = None
    recommender: Recommender | None = None


class WebEndpoint(Protocol):
    """The health/metrics server of a running stack: the port it listens on."""

    port: int


class Runtime(Protocol):
    """Starts, waits for and stops the workers of one process."""

    @property
    def web(self) -> WebEndpoint | None: ...

    async def start(self) -> None: ...

    async def ready(self, timeout: float) -> bool: ...

    async def stop(self) -> None: ...
