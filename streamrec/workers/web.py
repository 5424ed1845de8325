"""Health and Prometheus metrics over HTTP (aiohttp): ``/health`` and ``/metrics``.

``/health`` answers 200 when the health's ``status`` is ``ok`` and 503 when it is
``degraded`` (see :func:`status_code`); the faust runtime's views do the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from streamrec.workers.metrics import Metrics


class WebServer:
    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], dict[str, Any]],
        port: int,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.metrics = metrics
        self.health = health
        self.port = port
        self._runner: Any = None

    async def start(self) -> int:
        from aiohttp import web

        async def health(_: web.Request) -> web.Response:
            body = self.health()
            return web.json_response(body, status=status_code(body))

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.metrics.render(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()


def status_code(health: dict[str, Any]) -> int:
    """The HTTP status of a health answer: 200 when ok, 503 when degraded."""
    return 200 if health.get("status", "ok") == "ok" else 503
