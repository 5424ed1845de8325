"""Workers wired together in one process: any subset of trainer, indexer, recommender.

With the trainer in the process, the indexer and recommender share its model object
(no delta round trip; requests wait on the trainer's own applied offsets).  Without
it, they serve a replica fed by the deltas topic (:class:`DeltaFollower`).  The
trainer publishes deltas either way, so separate recommender processes can follow.
The indexer builds the Annoy index (in a child process) and publishes it as a file in
the data directory; a recommender process without the indexer maps that file
(:class:`IndexFollower`), so every server shares one build.

Given a :class:`~streamrec.store.FeatureStore` (``store=``), the trainer writes onboarding
to it (:class:`~streamrec.store.adapters.StoreEntitySink`), registers its checkpoints
there and rebuilds from it without a checkpoint, and a recommender's filters read item
attributes from it (:class:`~streamrec.store.adapters.StoreItemAttributes`).  Without
one, the in-memory seams serve (library use, tests).

``settings.runtime`` picks what drives the workers (:mod:`streamrec.workers.runtime`):
a faust App started inside the running event loop (the default) or the plain asyncio
loops.  ``embedded`` says whether ``bootstrap`` is the embedded broker (faust needs
shorter group timings there); by default it is when no broker is configured
(``settings.bootstrap`` empty: ``streamrec up`` started one, or ``streamrec worker``
found its address).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from streamrec.index import LiveIndex
from streamrec.settings import Settings
from streamrec.workers.attributes import ItemAttributeSource, MemoryItemAttributes
from streamrec.workers.lifecycle import cancel
from streamrec.workers.loop_lag import LoopLag
from streamrec.workers.metrics import Metrics
from streamrec.workers.runtime import AsyncioRuntime, FaustRuntime, Runtime, WebEndpoint, Workers
from streamrec.workers.serving.follower import DeltaFollower
from streamrec.workers.serving.indexer import Indexer, IndexFollower, IndexWorker
from streamrec.workers.serving.recommender import Recommender
from streamrec.workers.state import ModelState
from streamrec.workers.training.sinks import EntitySink
from streamrec.workers.training.trainer import Trainer

if TYPE_CHECKING:
    from streamrec.store import FeatureStore
    from streamrec.store.adapters import StoreEntitySink, StoreItemAttributes

log = logging.getLogger(__name__)
ROLES = ("trainer", "indexer", "recommender")


class Stack:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        roles: Iterable[str] = ROLES,
        sink: EntitySink | None = None,
        attributes: ItemAttributeSource | None = None,
        fresh: bool = False,
        web: bool = True,
        store: FeatureStore | None = None,
        embedded: bool | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.roles = tuple(roles)
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown worker role(s) {sorted(unknown)}; choose from {ROLES}")
        self.metrics = Metrics()
        self.store = store
        self.sink = sink
        self.attributes = attributes
        # store seams this stack created and started, closed by stop()
        self._owned: list[StoreEntitySink | StoreItemAttributes] = []
        self.fresh = fresh
        self.web_enabled = web and settings.web_port >= 0
        self.embedded = settings.embedded_broker if embedded is None else embedded
        self.runtime: Runtime | None = None
        self.trainer: Trainer | None = None
        self.follower: DeltaFollower | None = None
        self.indexer: IndexWorker | None = None
        self.recommender: Recommender | None = None
        self.index = LiveIndex(settings.index_search_k, settings.index_fresh_keep_s,
                               settings.index_fresh_keep_max)  # fmt: skip
        self.started_at = time.time()
        self._state: ModelState | None = None
        self.loop_lag = LoopLag(self.metrics, "+".join(self.roles))
        self._lag_task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ModelState:
        assert self._state is not None, "start the stack first"
        return self._state

    async def start(self) -> None:
        from streamrec.model import HybridModel, warm_up

        s = self.settings
        # numba compiles (or loads from its cache) every kernel now, in a thread, before
        # this process joins a consumer group or reads an event: not on its first one
        seconds = await asyncio.to_thread(warm_up, s.model)
        log.info("numba kernels ready in %.2f s", seconds)
        if self.store is not None:
            self._store_seams(self.store)
        state = ModelState(HybridModel(s.model), attributes=self.attributes)
        if "trainer" in self.roles:
            catalog = None
            if self.store is not None:
                from streamrec.store.adapters import StoreCatalog

                catalog = StoreCatalog(self.store)
            self.trainer = Trainer(s, self.bootstrap, state, self.sink, self.metrics, self.fresh,
                                   registry=self.store, catalog=catalog)  # fmt: skip
        elif {"indexer", "recommender"} & set(self.roles):
            self.follower = DeltaFollower(s, self.bootstrap, state, self.metrics)
        self._state = state
        if "indexer" in self.roles:  # builds, publishes and swaps in the shared index
            self.indexer = Indexer(s, state, self.index, self.metrics,
                                   serving="recommender" in self.roles)  # fmt: skip
        elif "recommender" in self.roles:  # maps the index files the indexer publishes
            self.indexer = IndexFollower(s, state, self.index, self.metrics)
        if "recommender" in self.roles:
            self.recommender = Recommender(s, self.bootstrap, state, self.index, self.metrics)
        workers = Workers(self.metrics, self.health, self.trainer, self.follower, self.indexer,
                          self.recommender)  # fmt: skip
        if s.runtime == "faust":
            self.runtime = FaustRuntime(s, self.bootstrap, workers, self.web_enabled,
                                        self.embedded)  # fmt: skip
        else:
            self.runtime = AsyncioRuntime(s, workers, self.web_enabled)
        await self.runtime.start()
        self._lag_task = asyncio.create_task(self.loop_lag.run(), name="event loop lag")

    @property
    def web(self) -> WebEndpoint | None:
        """The health/metrics server (its ``port``), None when off."""
        return self.runtime.web if self.runtime is not None else None

    async def ready(self, timeout: float = 30.0) -> bool:
        if self.runtime is None:
            return False
        return await self.runtime.ready(timeout)

    def _store_seams(self, store: FeatureStore) -> None:
        from streamrec.store.adapters import StoreEntitySink, StoreItemAttributes

        # filters read the store's attributes: only where requests are answered (a
        # trainer alone keeps the events' attributes in memory, for its checkpoints and
        # deltas, without a copy of the store's)
        if self.attributes is None and "recommender" in self.roles:
            attributes = StoreItemAttributes(store, MemoryItemAttributes()).start()
            self._owned.append(attributes)
            self.attributes = attributes
        if self.sink is None and "trainer" in self.roles:
            attrs = self.attributes
            confirm = attrs.confirm if isinstance(attrs, StoreItemAttributes) else None
            sink = StoreEntitySink(store, on_written=confirm).start()
            self._owned.insert(0, sink)  # closed first: its last writes confirm attributes
            self.sink = sink

    async def stop(self) -> None:
        await cancel(self._lag_task)
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                await self.runtime.stop()
        for seam in self._owned:  # after the trainer: its last checkpoint flushed the sink
            with contextlib.suppress(Exception):
                await asyncio.to_thread(seam.close)
        self._owned.clear()

    def health(self) -> dict[str, Any]:
        m = self._state.model if self._state else None
        out: dict[str, Any] = {
            "status": "ok",
            "roles": list(self.roles),
            "runtime": self.settings.runtime,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
        if m is not None:
            out["model"] = {"version": m.version, "events": m.n_events, "users": m.n_users,
                            "items": m.n_items}  # fmt: skip
            out["applied"] = {f"{t}[{p}]": o for (t, p), o in sorted(self.state.applied.items())}
            if self.state.events_retired_before:  # (stream/topics.py: event periods)
                out["events_retired_before"] = self.state.events_retired_before
        if self.indexer is not None:
            out["index"] = self.indexer.stats()
        for name, worker in (("trainer", self.trainer), ("replica", self.follower)):
            if worker is not None:
                out[name] = worker.health()
                if out[name]["problems"]:
                    out["status"] = "degraded"
        return out
