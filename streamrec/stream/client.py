"""The client SDK: publish events, ask for recommendations, subscribe to responses.

``Client`` is async; ``SyncClient`` runs one on a background event loop for plain code.
Recommendations are read-your-writes by default: a request carries the offsets of the
client's own published events, and the recommender answers once its model has them.

On the embedded broker of ``streamrec up``, interactions go to the topic of the current
event period when the deployment has one (``stream/topics.py``).  A client forgets each
period's topic a period after it ended: aiokafka asks for the metadata of every topic it
has sent to, by name, and the embedded broker creates a topic asked for by name, so a
client that remembered a deleted period would create it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from streamrec.errors import BrokerError, ConfigError, RequestTimeoutError
from streamrec.settings import Settings
from streamrec.stream.codec import Rejected, decode, encode
from streamrec.stream.fetch_wait import FetchWaitGuard
from streamrec.stream.filters import parse_filters
from streamrec.stream.recreated import SlotTurns
from streamrec.stream.schemas import (
    Interaction,
    ItemUpdate,
    NewItem,
    NewUser,
    RecRequest,
    RecResponse,
    UserUpdate,
    Watermark,
)
from streamrec.stream.topics import Topics, current_slot, event_period_at

T = TypeVar("T")
FeatureArg = Iterable[str] | Mapping[str, float] | None
Attrs = Mapping[str, Any] | None


@dataclass(frozen=True)
class Recommendations:
    """A recommendation response: ``items`` as ``(item_id, score)``, best first."""

    request_id: str
    user: str | None
    items: list[tuple[str, float]]
    strategy: str
    model_version: int
    n_events: int
    retrieval: str
    stale: bool
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    #: when the recommender had computed it (Unix seconds, its clock)
    answered_at: float = 0.0

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.items]

    @classmethod
    def from_response(cls, r: RecResponse) -> Recommendations:
        return cls(
            r.request_id, r.user, [(s.item, s.score) for s in r.items], r.strategy,
            r.model_version, r.n_events, r.retrieval, r.stale,
            msgspec.structs.asdict(r.timing), r.error, r.ts,
        )  # fmt: skip


def discovery_file(settings: Settings) -> Path:
    """Where ``streamrec up`` writes the embedded broker's address for other commands."""
    return settings.data_dir / "bootstrap"


def resolve_bootstrap(settings: Settings, bootstrap: str | None = None) -> str:
    """Explicit address, else STREAMREC_BOOTSTRAP, else the running ``streamrec up``."""
    if bootstrap or settings.bootstrap:
        return str(bootstrap or settings.bootstrap)
    path = discovery_file(settings)
    if path.exists():
        return path.read_text().strip()
    raise BrokerError(
        "no broker to talk to: pass --bootstrap / set STREAMREC_BOOTSTRAP, or start "
        f"`streamrec up` (it writes its address to {path})"
    )


def _features(features: FeatureArg) -> list[str] | dict[str, float] | None:
    if features is None:
        return None
    if isinstance(features, Mapping):
        return {str(k): float(v) for k, v in features.items()}
    return [str(f) for f in features]


class Client:
    """Async client of a streamrec deployment (use ``async with Client(...) as c``)."""

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        settings: Settings | None = None,
        topic_prefix: str | None = None,
        timeout: float = 10.0,
        responses: bool = True,
    ) -> None:
        """``responses=False``: a client that only publishes; it reads no responses, so it
        costs the broker no fetches, and :meth:`recommend` and :meth:`responses` raise."""
        self.settings = settings or Settings.load()
        self.reads_responses = responses
        self.bootstrap = resolve_bootstrap(self.settings, bootstrap)
        self.topics = Topics(topic_prefix or self.settings.topic_prefix)
        self.timeout = timeout
        self.client_id = f"streamrec-client-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._producer: Any = None
        self._consumer: Any = None
        self._fetch_wait: FetchWaitGuard | None = None
        self._slots = 0  # the deployment's request slots (stream/topics.py), 0: none
        self._turns = SlotTurns([])
        self._reader: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        #: records of the sends that failed with no caller awaiting them since the last
        #: :meth:`flush`, and the first error: what it raises for (a count, so a publisher
        #: that never flushes against a broker that is down holds no failed futures)
        self._unsent = 0
        self._unsent_error: BaseException | None = None
        self._waited: set[asyncio.Future[Any]] = set()  # sends a caller awaits (_publish)
        self._marks: dict[tuple[str, int], int] = {}
        self._waiting: dict[str, asyncio.Future[RecResponse]] = {}
        self._awaited: collections.Counter[str] = collections.Counter()  # response topics
        self._subscribers: list[asyncio.Queue[RecResponse]] = []
        self._last_ts = 0.0
        self._ids = itertools.count()
        #: event periods (stream/topics.py): their length on the deployment (0: it has
        #: none), the topic interactions go to until the monotonic time given, and the
        #: timers that forget each period's topic once it is past
        self._period_s = 0
        self._event_topic = ("", 0.0)
        self._forgetting: dict[str, asyncio.TimerHandle] = {}
        self._learned: dict[str, bool] = {}  # topic -> the trainer learns it (_sent)
        #: watermarks of event-period topics are dropped this many periods after theirs
        self.marks_kept_periods = 10

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streamrec.stream.kafka_clients import make_producer, partitions, topics_with_slots

        try:
            self._producer = await make_producer(
                self.bootstrap, linger_ms=1, client_id=self.client_id,
                compression_type=self.settings.compression_type,
            )  # fmt: skip
            await self._producer.start()
            if self.reads_responses:
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                    fetch_max_wait_ms=self.settings.fetch_wait_ms, client_id=self.client_id,
                )  # fmt: skip
                await self._consumer.start()
                self._fetch_wait = FetchWaitGuard(self._consumer, "client (responses)")
        except Exception as exc:
            await self.stop()
            raise BrokerError(f"cannot connect to Kafka at {self.bootstrap}: {exc!r}") from exc
        parts = await partitions(self._producer, self.topics.responses)
        if not parts:
            await self.stop()
            raise BrokerError(
                f"topic {self.topics.responses} does not exist on {self.bootstrap}: is "
                "streamrec running with this topic prefix?"
            )
        found, self._slots = await topics_with_slots(self._producer, self.topics)
        self._period_s = self._period_length(found)
        if self._consumer is None:  # publishing only
            return
        # the response slots of the current and the previous periods are read, and those
        # of the waiting requests (stream/recreated.py)
        self._turns = SlotTurns([self.topics.response_slot(i) for i in range(self._slots)],
                                live_periods=2)  # fmt: skip
        tps = [TopicPartition(self.topics.responses, p) for p in sorted(parts)]
        for i in range(self._slots):  # request slots (stream/topics.py): their responses
            slot = self.topics.response_slot(i)
            tps += [TopicPartition(slot, p) for p in sorted(found.get(slot, ()))]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now: responses to our requests come after
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read(), name="streamrec-client-responses")

    async def stop(self) -> None:
        for handle in self._forgetting.values():
            handle.cancel()
        self._forgetting.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.flush()
        for c in (self._consumer, self._producer):
            if c is not None:
                with contextlib.suppress(Exception):
                    await c.stop()
        self._consumer = self._producer = None

    # -------------------------------------------------------------- publishing
    def _now(self) -> float:
        # strictly increasing, so the trainer can order this client's events across topics
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return self._last_ts

    async def send(
        self, topic: str, message: msgspec.Struct, key: str | None
    ) -> asyncio.Future[Any]:
        """Enqueue one message; the returned future resolves to its RecordMetadata."""
        if self._producer is None:
            raise BrokerError("the client is not started (use `async with Client(...)`)")
        if hasattr(message, "ts") and not message.ts:
            message.ts = self._now()
        fut = await self._producer.send(topic, encode(message), key=key.encode() if key else None)
        self._pending.add(fut)
        fut.add_done_callback(self._sent)
        return fut

    def _sent(self, fut: asyncio.Future[Any], records: int = 1) -> None:
        """A send (of ``records`` records: a batch's metadata has its first offset) done."""
        self._pending.discard(fut)
        if fut.cancelled():
            return
        error = fut.exception()
        if error is not None:
            if fut not in self._waited:  # (else the caller awaiting it gets the error)
                self._unsent += records
                self._unsent_error = self._unsent_error or error
            return
        md = fut.result()
        learned = self._learned.get(md.topic)
        if learned is None:  # (parsing a period topic's name per record cost 1.5 us)
            learned = self._learned[md.topic] = self.topics.learned(md.topic)
        if not learned:
            return  # only what the trainer applies can be waited for
        tp = (md.topic, md.partition)
        last = md.offset + records - 1
        if last > self._marks.get(tp, -1):
            self._marks[tp] = last

    async def flush(self) -> None:
        """Wait until every message sent so far is acknowledged.

        Raises :class:`BrokerError` when any sent without waiting (``wait=False``,
        :meth:`track_many`) since the last flush was refused by the broker or timed out:
        those were not delivered, and the caller decides whether to send them again.
        """
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._unsent:
            n, first = self._unsent, self._unsent_error
            self._unsent, self._unsent_error = 0, None
            raise BrokerError(
                f"{n} message(s) sent without waiting were not acknowledged by the broker "
                f"at {self.bootstrap}, so not delivered (first error: {first!r})"
            )

    def watermarks(self) -> list[Watermark]:
        """The last acknowledged offset per partition this client wrote to."""
        return [Watermark(t, p, o) for (t, p), o in sorted(self._marks.items())]

    async def interactions_topic(self) -> str:
        """Where interactions go now: the current event period's topic when the
        deployment has event periods and that topic exists, else the plain topic."""
        topic, until = self._event_topic
        now = time.monotonic()
        if now < until:
            return topic
        if not self._period_s or self._producer is None:
            return self.topics.interactions
        from streamrec.stream.kafka_clients import topic_partitions

        found = await topic_partitions(self._producer)  # (listed: never created by name)
        self._period_s = self._period_length(found) or self._period_s
        period_s = self._period_s
        start, end = event_period_at(period_s)
        name = self.topics.event_period(start, end)
        if name in found:
            # until the period ends; the topic is forgotten a period after that
            self._event_topic = (name, now + max(0.0, end - time.time()))
            if name not in self._forgetting:
                self._forgetting[name] = asyncio.get_running_loop().call_later(
                    max(0.0, end + period_s - time.time()), self._forget, name
                )
            self._drop_marks(start - self.marks_kept_periods * period_s)
            return name
        self._event_topic = (self.topics.interactions, now + 1.0)  # looked for again in 1 s
        return self.topics.interactions

    def _period_length(self, names: Iterable[str]) -> int:
        """The length of the deployment's event periods: the newest period topic's among
        ``names`` (0: none), whatever ``event_period_s`` this client's settings say."""
        periods = self.topics.event_periods_in(names)
        span = self.topics.event_period_span(periods[-1]) if periods else None
        return 0 if span is None else span[1] - span[0]

    def _forget(self, topic: str) -> None:
        """Stop asking for ``topic``'s metadata (an event period that is past)."""
        self._forgetting.pop(topic, None)
        self._learned.pop(topic, None)
        if self._producer is None:
            return
        client = self._producer.client
        if topic in client._topics:
            client.set_topics(client._topics - {topic})

    def _drop_marks(self, before: int) -> None:
        """Drop the watermarks of event periods that began before ``before`` (Unix s)."""
        for t, p in list(self._marks):
            span = self.topics.event_period_span(t)
            if span is not None and span[0] < before:
                del self._marks[(t, p)]

    async def _publish(self, topic: str, message: msgspec.Struct, key: str, wait: bool) -> Any:
        fut = await self.send(topic, message, key)
        if not wait:
            return fut
        self._waited.add(fut)  # (before its done callback can run: no await since send)
        try:
            return await fut
        finally:
            self._waited.discard(fut)

    async def track(self, user: str, item: str, type: str = "click", *, wait: bool = True) -> Any:
        """Publish an interaction (keyed by user); ``wait`` for the broker's acknowledgement."""
        message = Interaction(user=user, item=item, type=type)
        return await self._publish(await self.interactions_topic(), message, user, wait)

    async def track_many(
        self, events: Iterable[tuple[str, str] | tuple[str, str, str]], *, wait: bool = False
    ) -> int:
        """Publish many interactions, ``(user, item)`` or ``(user, item, type)`` (default
        ``click``), in producer batches: several times the rate of one :meth:`track` per
        event.  Keyed by user as :meth:`track` (same partitions, same order per user);
        :meth:`watermarks` and ``consistent`` requests cover them.  Returns how many;
        ``wait`` waits for the broker's acknowledgements."""
        if self._producer is None:
            raise BrokerError("the client is not started (use `async with Client(...)`)")
        from aiokafka.partitioner import DefaultPartitioner

        from streamrec.stream.kafka_clients import partitions

        topic = await self.interactions_topic()
        parts = sorted(await partitions(self._producer, topic))
        if not parts:
            raise BrokerError(f"topic {topic} does not exist on {self.bootstrap}")
        choose = DefaultPartitioner()
        batches: dict[int, Any] = {}
        sent = 0

        async def ship(partition: int) -> None:
            batch = batches.pop(partition)
            n = batch.record_count()
            fut = await self._producer.send_batch(batch, topic, partition=partition)
            self._pending.add(fut)
            fut.add_done_callback(lambda f, n=n: self._sent(f, n))

        for event in events:
            user, item = event[0], event[1]
            kind = event[2] if len(event) > 2 else "click"
            key = user.encode()
            value = encode(Interaction(user=user, item=item, type=kind, ts=self._now()))
            p = choose(key, parts, parts)
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                await ship(p)
                batch = batches[p] = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise BrokerError(f"an interaction of {len(value)} bytes fits no batch")
            sent += 1
        for p in list(batches):
            await ship(p)
        if wait:
            await self.flush()
        return sent

    async def add_user(self, user: str, features: FeatureArg = None, *, wait: bool = True) -> Any:
        return await self._publish(
            self.topics.entities, NewUser(user=user, features=_features(features)), user, wait
        )

    async def update_user(self, user: str, features: FeatureArg, *, wait: bool = True) -> Any:
        return await self._publish(
            self.topics.entities, UserUpdate(user=user, features=_features(features)), user, wait
        )

    async def add_item(
        self, item: str, features: FeatureArg = None, attributes: Attrs = None, *, wait: bool = True
    ) -> Any:
        msg = NewItem(item=item, features=_features(features), attributes=dict(attributes or {}))
        return await self._publish(self.topics.entities, msg, item, wait)

    async def update_item(
        self, item: str, features: FeatureArg = None, attributes: Attrs = None, *, wait: bool = True
    ) -> Any:
        msg = ItemUpdate(item=item, features=_features(features), attributes=dict(attributes or {}))
        return await self._publish(self.topics.entities, msg, item, wait)

    # ---------------------------------------------------------- recommending
    def _request_topic(self) -> str:
        """Where a request goes now: the current request slot, or the plain topic."""
        if self._slots:
            return self.topics.request_slot(current_slot(self._slots))
        return self.topics.requests

    def _needs_responses(self, method: str) -> None:
        if not self.reads_responses:
            raise ConfigError(f"{method}() needs a client that reads responses: this one was "
                              "made with responses=False (publishing only)")  # fmt: skip

    async def recommend(
        self,
        user: str | None = None,
        k: int = 10,
        *,
        filters: Mapping[str, Any] | None = None,
        features: FeatureArg = None,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
        consistent: bool = True,
        exact: bool = False,
        diversity: float | None = None,
        freshness: float | None = None,
    ) -> Recommendations:
        """Ask for ``k`` items; raises RequestTimeoutError when no answer arrives in time.

        ``filters`` are checked here first (see :mod:`streamrec.stream.filters`): a bad
        one raises InvalidFilterError before anything is sent.  ``consistent`` makes the
        answer reflect every event this client published before.
        """
        self._needs_responses("recommend")
        parse_filters(filters)
        if consistent:
            await self.flush()
        request_id = f"{self.client_id}-{next(self._ids)}"
        limit = self.timeout if timeout is None else timeout
        req = RecRequest(
            request_id=request_id, user=user, k=k, filters=dict(filters or {}),
            features=_features(features), exclude=list(exclude),
            after=self.watermarks() if consistent else [], exact=exact,
            diversity=diversity, freshness=freshness, deadline=time.time() + limit,
        )  # fmt: skip
        fut: asyncio.Future[RecResponse] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        topic = self._request_topic()
        answer_on = self.topics.response_for(topic)
        self._awaited[answer_on] += 1
        self._read_now(answer_on)
        try:
            await self._publish(topic, req, user or request_id, wait=False)
            try:
                resp = await asyncio.wait_for(fut, limit)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"no response to request {request_id} within {limit} s: are the streamrec "
                    f"workers running on {self.bootstrap} with prefix {self.topics.prefix!r}?"
                ) from None
        finally:
            self._waiting.pop(request_id, None)
            self._awaited[answer_on] -= 1
            if not self._awaited[answer_on]:
                del self._awaited[answer_on]
        return Recommendations.from_response(resp)

    def _read_now(self, topic: str) -> None:
        """Resume ``topic``'s partitions if paused (a request slot's turn began since the
        reader's last poll: it would resume them after its next fetch)."""
        paused = [tp for tp in self._consumer.paused() if tp.topic == topic]
        if paused:
            self._consumer.resume(*paused)

    async def responses(self) -> AsyncIterator[RecResponse]:
        """Every response published from now on (all clients' requests)."""
        self._needs_responses("responses")
        queue: asyncio.Queue[RecResponse] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=max(self.settings.fetch_wait_ms, 20))
            if self._fetch_wait is not None:
                self._fetch_wait.after_poll(batch)
            # a recycled response slot starts at 0; past slots are paused but those awaited
            # (all of them for subscribers to every response)
            keep = self._turns.names if self._subscribers else self._awaited.keys()
            self._turns.after_poll(self._consumer, keep)
            for records in batch.values():
                for rec in records:
                    try:
                        resp = decode(rec.value, RecResponse)
                    except Rejected:
                        continue
                    fut = self._waiting.get(resp.request_id)
                    if fut is not None and not fut.done():
                        fut.set_result(resp)
                    for q in self._subscribers:
                        q.put_nowait(resp)


class SyncClient:
    """A blocking :class:`Client`: runs it on a private event loop thread."""

    def __init__(self, bootstrap: str | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="streamrec-sync-client")  # fmt: skip
        self._thread.start()
        self.client = self._call(self._make(bootstrap, kwargs))

    async def _make(self, bootstrap: str | None, kwargs: dict[str, Any]) -> Client:
        client = Client(bootstrap, **kwargs)
        await client.start()
        return client

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(self, user: str, item: str, type: str = "click") -> Any:
        return self._call(self.client.track(user, item, type))

    def track_many(self, events: Iterable[tuple[str, str] | tuple[str, str, str]]) -> int:
        return self._call(self.client.track_many(events, wait=True))

    def add_user(self, user: str, features: FeatureArg = None) -> Any:
        return self._call(self.client.add_user(user, features))

    def add_item(self, item: str, features: FeatureArg = None,
                 attributes: Mapping[str, Any] | None = None) -> Any:  # fmt: skip
        return self._call(self.client.add_item(item, features, attributes))

    def recommend(self, user: str | None = None, k: int = 10, **kwargs: Any) -> Recommendations:
        return self._call(self.client.recommend(user, k, **kwargs))

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self.client.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
