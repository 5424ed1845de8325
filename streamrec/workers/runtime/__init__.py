"""The runtimes that drive the workers: faust (the default) or plain asyncio.

Both run the same worker objects (:class:`~streamrec.workers.Trainer`,
:class:`~streamrec.workers.Recommender`, ...) through the same step methods; they differ
only in what schedules those steps (see :mod:`.faust_app` and :mod:`.asyncio_runtime`).
:class:`~streamrec.workers.Stack` picks one from ``settings.runtime``.
"""

from streamrec.workers.runtime.asyncio_runtime import AsyncioRuntime
from streamrec.workers.runtime.base import RUNTIMES, Runtime, WebEndpoint, Workers
from streamrec.workers.runtime.faust_app import FaustRuntime

__all__ = ["RUNTIMES", "AsyncioRuntime", "FaustRuntime", "Runtime", "WebEndpoint", "Workers"]
