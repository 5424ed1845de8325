"""Health and Prometheus metrics as faust web views: the same answers as ``workers/web.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamrec.workers.metrics import Metrics
from streamrec.workers.web import status_code

#: The pages every streamrec faust app serves.
PAGES = ("/health", "/metrics")


def add_views(app: Any, metrics: Metrics, health: Callable[[], dict[str, Any]]) -> None:
    """Register ``/health`` (JSON) and ``/metrics`` (Prometheus text) on ``app``'s web server."""

    @app.page("/health", name="health")
    async def health_view(web: Any, request: Any) -> Any:
        body = health()
        return web.json(body, status=status_code(body))

    @app.page("/metrics", name="metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.text(metrics.render(), content_type="text/plain")
