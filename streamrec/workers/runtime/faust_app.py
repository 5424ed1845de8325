"""The faust runtime: one ``faust.App`` per deployment, its id the topic prefix.

What runs as what:

- **recommender**, two ways (``settings.faust_requests``); either way a consumer group,
  so replicas scale out by partitions:

  - ``agent``: a faust agent on the requests topic in the app's consumer group (group
    id = app id), ``settings.request_concurrency`` actors per process,
    ``stream.take_events`` handing :meth:`Recommender.answer_batch` up to
    :data:`REQUEST_BATCH` requests at a time; the group consumer waits ``fetch_wait_ms``
    per fetch (:mod:`.faust_transport`).
  - ``fetch`` (the default): a faust task running :meth:`Recommender.poll_once`, aiokafka
    batch fetches in the ``<prefix>.recommender`` group.  Measured with
    ``bench/runtime.py`` (16 closed-loop callers), the agent path answered about half
    the requests per second of the aiokafka fetch loop: faust's take buffer waits its
    ``within`` window for every batch, and its group consumer runs in a thread of its
    own, handing each fetch over to the event loop.
- **trainer**: a faust *task* that keeps raw aiokafka batch fetches with manual partition
  assignment (:meth:`Trainer.poll_once`), not an agent.  The trainer is the single writer
  and its position in the input topics is part of its checkpoint (model and offsets are
  restored together).  An agent reads through the app's consumer group: a rebalance
  would move its partitions to another process (two models learning halves of the
  stream), and faust commits offsets as events are acked, which are not the offsets the
  checkpointed model reflects (after a crash, events would be lost or learned twice).
  Speed decides it too: on loopback a faust agent processed about 6.6k messages/s one
  by one, aiokafka ``getmany`` batches about 218k/s.  So the task assigns the partitions
  itself, seeks to the checkpoint's offsets and commits nothing.
- **trainer timers**: delta publishing every ``delta_interval_ms`` and checkpoints every
  ``checkpoint_interval_s`` (none when 0; one at stop either way).
- **replica follower** (a recommender without the trainer in its process): a task with
  manual assignment of the deltas topic from the checkpoint's offset, for the same
  reasons (every replica reads every delta: no group).
- **indexer**: a timer every :data:`INDEX_CHECK_S` checks whether a rebuild is due.
- **health and metrics**: faust web views (:mod:`.faust_web`) on ``settings.web_port``.

Only the ``agent`` path starts faust's own consumer and producer; otherwise faust's boot
strategy has Kafka off: the process reads nothing through the app's group, so it joins
none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from streamrec.settings import Settings
from streamrec.stream.broker import free_port
from streamrec.stream.records import Record
from streamrec.stream.topics import Topics
from streamrec.workers.runtime.base import Workers
from streamrec.workers.runtime.faust_conf import app_options
from streamrec.workers.runtime.faust_web import add_views
from streamrec.workers.training import trainer as training

log = logging.getLogger(__name__)
#: Most requests one recommender actor takes from its stream at a time.
REQUEST_BATCH = 200
#: How often the indexer checks whether a rebuild is due (seconds).
INDEX_CHECK_S = 0.2


@dataclass
class FaustWeb:
    """faust's web server as the stack sees it: the port it listens on."""

    port: int


def record_of(message: Any) -> Record:
    """A faust ``Message`` (timestamp in seconds) as a streamrec :class:`Record`."""
    ts = message.timestamp or 0.0
    return Record(message.topic, message.partition, message.offset, message.key,
                  message.value, int(ts * 1000))  # fmt: skip


async def forever(step: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``step`` until cancelled; an error is logged and the loop goes on."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; continuing", what)
            await asyncio.sleep(0.5)


async def guarded(step: Callable[[], Awaitable[None]], what: str) -> None:
    """One timer tick: an error is logged, the next tick tries again."""
    try:
        await step()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed; retrying at the next tick", what)


class FaustRuntime:
    """Builds the faust App around the workers, starts it inside the running event loop."""

    def __init__(
        self, settings: Settings, bootstrap: str, workers: Workers, web: bool, embedded: bool
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.workers = workers
        self.embedded = embedded
        self.web_port = self._web_port() if web else None
        self.topics = Topics(settings.topic_prefix)
        self.app: Any = None
        #: What was registered on the app: agent and task names, timer intervals (s).
        self.agents: list[str] = []
        self.tasks: list[str] = []
        self.timers: dict[str, float] = {}
        self._web: FaustWeb | None = None

    @property
    def web(self) -> FaustWeb | None:
        return self._web

    def _web_port(self) -> int | None:
        """The port to serve on (0: a free one), or None when it cannot be bound."""
        port = self.settings.web_port or free_port()
        with socket.socket() as probe:
            # as the server itself binds (asyncio sets SO_REUSEADDR): connections of a
            # killed predecessor waiting in TIME_WAIT must not keep a restart off its port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.settings.web_host, port))
            except OSError as exc:
                log.warning("health/metrics server not started on port %s: %s", port, exc)
                return None
        return port

    def build(self) -> Any:
        """The faust App with this process's agents, tasks, timers and pages."""
        import faust

        from streamrec.workers.runtime.faust_transport import transport

        w, s = self.workers, self.settings
        options = app_options(s, self.bootstrap, self.embedded, self.web_port)
        app = faust.App(s.topic_prefix, **options)
        app.transport = transport(app, s.fetch_wait_ms)
        app.boot_strategy = app.BootStrategy(
            app, enable_kafka=self._agent, enable_web=self.web_port is not None
        )
        recommender = w.recommender
        if recommender is not None and self._agent:
            self._recommender_agent(app)
        elif recommender is not None:
            self._task(app, "recommender",
                       lambda: forever(recommender.poll_once, "recommender fetch"))  # fmt: skip
        trainer = w.trainer
        if trainer is not None:
            self._task(app, "trainer", lambda: forever(trainer.poll_once, "trainer fetch"))
            self._timer(app, "deltas", s.delta_interval_ms / 1000.0, trainer.publish_deltas)
            if s.checkpoint_interval_s > 0:
                self._timer(app, "checkpoint", s.checkpoint_interval_s, trainer.checkpoint_now)
            self._timer(app, "event topics", training.EVENT_TOPICS_CHECK_S,
                        trainer.maintain_event_topics)  # fmt: skip
        follower = w.follower
        if follower is not None:
            self._task(app, "follower", lambda: forever(follower.poll_once, "delta follower"))
        if w.indexer is not None:
            self._timer(app, "indexer", INDEX_CHECK_S, w.indexer.check_once)
        if self.web_port is not None:
            add_views(app, w.metrics, w.health)
        return app

    @property
    def _agent(self) -> bool:
        """Whether requests go through a faust agent (else a fetch task)."""
        return self.workers.recommender is not None and self.settings.faust_requests == "agent"

    def _recommender_agent(self, app: Any) -> None:
        recommender = self.workers.recommender
        assert recommender is not None
        requests = app.topic(self.topics.requests, key_serializer="raw", value_serializer="raw")
        within = self.settings.fetch_wait_ms / 1000.0

        async def recommend(stream: Any) -> None:
            async for events in stream.take_events(REQUEST_BATCH, within=within):
                records = [record_of(event.message) for event in events]
                await guarded(partial(recommender.answer_batch, records), "answering requests")

        app.agent(requests, name="recommender",
                  concurrency=self.settings.request_concurrency)(recommend)  # fmt: skip
        self.agents.append("recommender")

    def _task(self, app: Any, name: str, body: Callable[[], Awaitable[None]]) -> None:
        async def task() -> None:
            await body()

        task.__name__ = task.__qualname__ = name
        app.task(task)
        self.tasks.append(name)

    def _timer(
        self, app: Any, name: str, interval: float, step: Callable[[], Awaitable[None]]
    ) -> None:
        async def tick() -> None:
            await guarded(step, name)

        tick.__name__ = tick.__qualname__ = name
        app.timer(interval, name=name)(tick)
        self.timers[name] = interval

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the workers' own Kafka clients, then start the App in this event loop."""
        w = self.workers
        try:
            if w.trainer is not None:
                await w.trainer.open()
            if w.follower is not None:
                await w.follower.open()
            if w.recommender is not None:
                await w.recommender.open(consume=not self._agent)
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust's datadir parent
            self.app = self.build()
            await self.app.start()
        except BaseException:
            await self.stop()
            raise
        if self.web_port is not None:
            self._web = FaustWeb(self.web_port)

    async def ready(self, timeout: float) -> bool:
        """With a recommender: wait until its group gave it request partitions."""
        if self.workers.recommender is None:
            return True
        if not self._agent:
            return await self.workers.recommender.ready(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._serving():
                return True
            await asyncio.sleep(0.05)
        return False

    def _serving(self) -> bool:
        app = self.app
        if app is None or app.rebalancing:
            return False
        return any(tp.topic == self.topics.requests for tp in app.consumer.assignment())

    async def stop(self) -> None:
        if self.app is not None:
            with contextlib.suppress(Exception):
                await self.app.stop()
        w = self.workers
        for worker in (w.recommender, w.indexer, w.follower, w.trainer):
            if worker is not None:
                with contextlib.suppress(Exception):
                    await worker.stop()
        self._web = None
