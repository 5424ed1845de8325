"""The faust App's configuration: broker, storage, web server.

On the embedded broker (Tansu) faust needs shorter group timings: measured there, a
faust consumer group with faust's defaults takes 30 s to join (and timers wait for it);
with the values of :data:`EMBEDDED_BROKER` it is ready in 3-4 s.  On a real Kafka faust's
own defaults apply (Kafka refuses session timeouts under ``group.min.session.timeout.ms``,
6 s by default).
"""

from __future__ import annotations

from typing import Any

from streamrec.settings import Settings

#: faust settings measured to work on the embedded broker (see the module docstring).
EMBEDDED_BROKER: dict[str, Any] = {
    "broker_session_timeout": 3.0,
    "broker_rebalance_timeout": 3.0,
    "broker_heartbeat_interval": 0.5,
    "stream_recovery_delay": 0.5,
    "topic_replication_factor": 1,
}


def app_options(
    settings: Settings, bootstrap: str, embedded: bool, web_port: int | None
) -> dict[str, Any]:
    """Keyword arguments of ``faust.App`` for one deployment.

    ``store="memory://"``: the model state lives in streamrec's own checkpoints, not in
    faust tables.  ``web_port`` None disables faust's web server; it binds ``web_host``.
    """
    options: dict[str, Any] = {
        "broker": [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()],
        "store": "memory://",
        "autodiscover": False,
        "datadir": str(settings.data_dir / "faust"),
        "web_enabled": web_port is not None,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
    }
    if web_port is not None:
        options["web_port"] = web_port
    if embedded:
        options.update(EMBEDDED_BROKER)
    return options
