"""The plain asyncio runtime: each worker runs its own loop task; aiohttp serves health.

This is the original runtime, kept for comparison (``STREAMREC_RUNTIME=asyncio``); the
recommenders form an aiokafka consumer group of their own (``<prefix>.recommender``).
"""

from __future__ import annotations

import contextlib
import logging

from streamrec.settings import Settings
from streamrec.workers.runtime.base import Workers
from streamrec.workers.web import WebServer

log = logging.getLogger(__name__)


class AsyncioRuntime:
    def __init__(self, settings: Settings, workers: Workers, web: bool) -> None:
        self.settings = settings
        self.workers = workers
        self.web_enabled = web
        self._web: WebServer | None = None

    @property
    def web(self) -> WebServer | None:
        return self._web

    async def start(self) -> None:
        w = self.workers
        for worker in (w.trainer, w.follower, w.indexer, w.recommender):
            if worker is not None:
                await worker.start()
        if self.web_enabled:
            web = WebServer(w.metrics, w.health, self.settings.web_port, self.settings.web_host)
            try:
                await web.start()
            except OSError as exc:
                log.warning("health/metrics server not started on port %s: %s",
                            self.settings.web_port, exc)  # fmt: skip
                return
            self._web = web

    async def ready(self, timeout: float) -> bool:
        if self.workers.recommender is not None:
            return await self.workers.recommender.ready(timeout)
        return True

    async def stop(self) -> None:
        w = self.workers
        for worker in (self._web, w.recommender, w.indexer, w.follower, w.trainer):
            if worker is not None:
                with contextlib.suppress(Exception):
                    await worker.stop()
