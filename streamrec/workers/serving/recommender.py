"""The recommender: answers requests from a :class:`ModelState` (shared or replica).

Retrieval (Annoy top-N + fresh buffer, or exact over the catalogue when it is small or
the request asks), exact scoring, re-ranking (seen items excluded, attribute filters,
freshness boost, MMR), response.  Unknown users get a cold-start vector from inline
features, else the decayed-popularity fallback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Protocol

import numpy as np

from streamrec.errors import InvalidInputError
from streamrec.index import LiveIndex
from streamrec.model import HybridModel
from streamrec.settings import Settings
from streamrec.stream.codec import Rejected, decode, encode
from streamrec.stream.dead_letters import dead_letter, send_dead_letters
from streamrec.stream.fetch_wait import FetchWaitGuard
from streamrec.stream.filters import Filter, parse_filters
from streamrec.stream.kafka_clients import topics_with_slots
from streamrec.stream.limits import InputLimits
from streamrec.stream.records import Record
from streamrec.stream.recreated import SlotTurns
from streamrec.stream.schemas import DeadLetter, RecRequest, RecResponse, ScoredItem, Timing
from streamrec.stream.topics import Topics
from streamrec.workers.lifecycle import cancel, close
from streamrec.workers.metrics import Metrics
from streamrec.workers.serving.rerank import freshness_bonus, mmr
from streamrec.workers.state import ModelState

log = logging.getLogger(__name__)
WORKER = "recommender"


class RecommenderCore:
    """Broker-free request answering (the worker wraps it with Kafka I/O)."""

    def __init__(self, settings: Settings, state: ModelState, index: LiveIndex | None = None):
        self.settings = settings
        self.state = state
        self.index = index

    def answer(
        self, req: RecRequest, wait_ms: float = 0.0, stale: bool = False, queue_ms: float = 0.0
    ) -> RecResponse:
        t0 = time.perf_counter()
        m = self.state.model
        try:
            flt = parse_filters(req.filters)  # a bad filter: InvalidFilterError, in the response
            strategy, vec, row = self._user(req)
            rows, scores, retrieval = self._rank(req, strategy, vec, row, flt)
            items = [ScoredItem(item, float(s))
                     for item, s in zip(m.item_ids(rows), scores, strict=True)]  # fmt: skip
            error = None
        except InvalidInputError as exc:
            items, strategy, retrieval, error = [], "none", "none", str(exc)
        compute = (time.perf_counter() - t0) * 1000.0
        return RecResponse(
            request_id=req.request_id, user=req.user, items=items, strategy=strategy,
            model_version=m.version, n_events=m.n_events, retrieval=retrieval, stale=stale,
            error=error,
            timing=Timing(round(wait_ms, 3), round(compute, 3), round(wait_ms + compute, 3),
                          round(queue_ms, 3)),
            ts=time.time(),
        )  # fmt: skip

    def refuse(self, req: RecRequest, reason: str) -> RecResponse:
        """An answer without items that says why (e.g. ``overloaded``), computed from nothing."""
        m = self.state.model
        return RecResponse(
            request_id=req.request_id, user=req.user, items=[], strategy="none",
            model_version=m.version, n_events=m.n_events, retrieval="none", error=reason,
            ts=time.time(),
        )  # fmt: skip

    def _user(self, req: RecRequest) -> tuple[str, np.ndarray | None, int]:
        """(strategy, the user's query vector (see HybridModel.user_query) or None, row)."""
        m = self.state.model
        row = m.user_row(req.user) if req.user else -1
        if row >= 0:
            if m.seen_count(row) > 0:
                return "personalised", m.user_query_row(row), row
            if m.user_feature_count(row) > 1:
                return "cold-start", m.user_query_row(row), row
        if req.features:
            return "cold-start", m.user_query(None, req.features), row
        return "popular", None, row

    def _rank(
        self, req: RecRequest, strategy: str, vec: np.ndarray | None, user_row: int, flt: Filter
    ) -> tuple[np.ndarray, np.ndarray, str]:
        s = self.settings
        m = self.state.model
        n = m.n_items
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), "exact"
        excluded = [m.seen_items(user_row)] if user_row >= 0 else []
        if req.exclude:
            excluded.append(m.item_rows(req.exclude))
        excl = (
            np.concatenate(excluded).astype(np.int64) if excluded else np.zeros(0, dtype=np.int64)
        )
        diversity = s.diversity if req.diversity is None else req.diversity
        freshness = s.freshness if req.freshness is None else req.freshness
        plain = not flt and diversity == 0.0 and freshness == 0.0
        pool = req.k if plain else max(5 * req.k, 100)
        fresh = self.index.fresh.rows() if freshness > 0 and self.index is not None else None
        cand = None
        if vec is not None and not (req.exact or n < s.exact_below or self.index is None):
            cand = self.index.candidates(vec, s.index_candidates, n)
        # a known user's scores carry its continuity signal, as the model's own top k
        # (what evaluation measures) does: the query vector cannot hold it
        known = user_row if vec is not None else -1
        if cand is not None:  # O(candidates): nothing below touches the whole catalogue
            ranked: _Ranked = _CandidateScores(m, vec, cand, excl, known)  # type: ignore[arg-type]
            retrieval = "ann"
        else:
            scores = (
                m.popularity().astype(np.float32) if vec is None
                else m.scores_for_query(vec, known)
            )  # fmt: skip
            ranked = _CatalogueScores(m, scores.copy(), excl)
            retrieval = "exact"
        rows, vals = ranked.top(min(pool, n))
        if fresh is not None and len(fresh):
            extra = ranked.eligible(fresh)
            extra = extra[~np.isin(extra, rows)]
            rows = np.concatenate([rows, extra])
            vals = np.concatenate([vals, ranked.scores_of(extra)])
        if plain:
            return rows, vals, retrieval
        if flt:
            rows, vals = self._filtered(rows, vals, flt)
            if len(rows) < req.k and pool < ranked.size:
                rows, vals = ranked.top(ranked.size)
                rows, vals = self._filtered(rows, vals, flt)
        vals = vals.astype(np.float64)
        if freshness > 0:
            attrs = self.state.attributes
            created = np.array([attrs.created(item) or math.nan for item in m.item_ids(rows)])
            finite = vals[np.isfinite(vals)]
            spread = float(finite.max() - finite.min()) if len(finite) > 1 else 1.0
            vals = vals + freshness_bonus(created, time.time(), freshness,
                                          s.freshness_half_life_s, spread or 1.0)  # fmt: skip
        if len(rows) == 0:
            return rows, vals, retrieval
        vectors = (
            m.item_representations(rows)[:, : m.dim] if diversity > 0 else np.zeros((len(rows), 1))
        )
        order = mmr(vals, vectors, req.k, diversity)
        return rows[order], vals[order], retrieval

    def _filtered(
        self, rows: np.ndarray, vals: np.ndarray, flt: Filter
    ) -> tuple[np.ndarray, np.ndarray]:
        m, attrs = self.state.model, self.state.attributes
        keep = np.array([flt.matches(attrs.get(item)) for item in m.item_ids(rows)],
                        dtype=bool)  # fmt: skip
        return rows[keep], vals[keep]


class _Ranked(Protocol):
    """Scores of the items a request may get, ranked on demand."""

    size: int

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def eligible(self, rows: np.ndarray) -> np.ndarray: ...
    def scores_of(self, rows: np.ndarray) -> np.ndarray: ...


class _CatalogueScores:
    """Every item scored (exact search, popularity): ``top`` skips the excluded rows."""

    def __init__(self, model: HybridModel, scores: np.ndarray, excl: np.ndarray) -> None:
        self.model, self.scores, self.excl = model, scores, excl.astype(np.int32)
        self.size = len(scores)

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.model.top_k_scores(self.scores, k, self.excl)

    def eligible(self, rows: np.ndarray) -> np.ndarray:
        rows = rows[rows < self.size]
        return rows[~np.isin(rows, self.excl)]

    def scores_of(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[rows]


class _CandidateScores:
    """Retrieval candidates (sorted rows) less the excluded ones, re-scored exactly at once
    (with user row ``user``'s continuity signal, when it is known)."""

    def __init__(
        self,
        model: HybridModel,
        query: np.ndarray,
        cand: np.ndarray,
        excl: np.ndarray,
        user: int = -1,
    ) -> None:
        self.model = model
        self.rows = without(cand, excl)
        self.scores = np.einsum("ij,j->i", model.item_representations(self.rows), query)
        cont = model.continuity_scores(user, self.rows) if user >= 0 else None
        if cont is not None:
            self.scores = (self.scores + cont).astype(np.float32)
        self.size = len(self.rows)

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        pos, vals = self.model.top_k_scores(self.scores, min(k, self.size), _NONE)
        return self.rows[pos], vals

    def eligible(self, rows: np.ndarray) -> np.ndarray:
        return rows[np.isin(rows, self.rows)]

    def scores_of(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[np.searchsorted(self.rows, rows)]


_NONE = np.zeros(0, dtype=np.int32)


def without(rows: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """``rows`` (sorted, unique) less ``excluded``: ``rows[~np.isin(rows, excluded)]`` by
    binary search, O(excluded log rows) instead of sorting both."""
    if not len(excluded) or not len(rows):
        return rows
    pos = np.searchsorted(rows, excluded)
    inside = pos < len(rows)
    pos = pos[inside]
    keep = np.ones(len(rows), dtype=bool)
    keep[pos[rows[pos] == excluded[inside]]] = False
    return rows[keep]


class Recommender:
    """The recommender worker: a consumer group on the request topic.

    Requests are served concurrently (a request waiting for its ``after`` watermarks
    holds no other), at most ``settings.max_in_flight`` at once: above that a request is
    answered ``overloaded`` at once, without computing anything.  A request whose
    ``deadline`` passed (the caller stopped waiting) is dropped, never computed; one whose
    deadline passes while it waits for the model is dropped too.  Each case is counted.
    """

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        state: ModelState,
        index: LiveIndex | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.limits = InputLimits.from_settings(settings)
        self.bootstrap = bootstrap
        self.topics = Topics(settings.topic_prefix)
        self.core = RecommenderCore(settings, state, index)
        self.metrics = metrics or Metrics()
        self._consumer: Any = None
        self._fetch_wait: FetchWaitGuard | None = None
        self._turns = SlotTurns([])
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.running = False

    @property
    def state(self) -> ModelState:
        return self.core.state

    @property
    def in_flight(self) -> int:
        """Requests accepted and not answered yet (waiting for the model or computing)."""
        return len(self._in_flight)

    async def start(self) -> None:
        """Open the clients and answer from an asyncio task (the asyncio runtime)."""
        await self.open()
        self.running = True
        self._task = asyncio.create_task(self._run(), name="recommender")

    async def open(self, consume: bool = True) -> None:
        """Open the response producer and, with ``consume``, the request consumer group
        (the faust runtime consumes through its agent instead: ``consume=False``)."""
        from aiokafka import AIOKafkaConsumer

        from streamrec.stream.kafka_clients import make_producer

        s = self.settings
        self._producer = await make_producer(
            self.bootstrap, linger_ms=0, compression_type=self.settings.compression_type
        )
        await self._producer.start()
        if not consume:
            return
        _, slots = await topics_with_slots(self._producer, self.topics)
        # the slots of the current and the previous periods are read; the others once read
        # to their end are paused (stream/recreated.py)
        self._turns = SlotTurns([self.topics.request_slot(i) for i in range(slots)],
                                live_periods=2)  # fmt: skip
        self._consumer = AIOKafkaConsumer(
            *self.topics.request_topics(slots), bootstrap_servers=self.bootstrap,
            group_id=f"{s.topic_prefix}.recommender", auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_wait_ms, rebalance_timeout_ms=3000,
            heartbeat_interval_ms=500, session_timeout_ms=10000,
        )  # fmt: skip
        await self._consumer.start()
        self._fetch_wait = FetchWaitGuard(self._consumer, "recommender (requests)")

    async def ready(self, timeout: float = 30.0) -> bool:
        """Wait until the group gave this member partitions of the request topic."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._consumer is not None and self._consumer.assignment():
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        self.running = False
        await cancel(self._task)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await close(self._consumer, self._producer)

    async def _run(self) -> None:
        while self.running:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recommender loop error; continuing")
                await asyncio.sleep(0.5)

    async def poll_once(self) -> None:
        """One fetch from the request consumer group; its requests start concurrently."""
        s = self.settings
        batch = await self._consumer.getmany(timeout_ms=max(s.fetch_wait_ms, 20), max_records=200)
        if self._fetch_wait is not None:
            self._fetch_wait.after_poll(batch)
        self._turns.after_poll(self._consumer)  # request slots (stream/topics.py)
        for records in Record.batch(batch):
            await self.answer_batch(records)
        await asyncio.sleep(0)  # let the requests just started compute before the next fetch

    async def answer_batch(self, records: list[Record]) -> None:
        """Start answering each request, concurrently; returns without waiting for them
        (a request blocked on its ``after`` holds back no other, nor the next batch).

        Undecodable requests go to the dead-letter topic, expired ones are dropped, and
        those above the in-flight bound are answered ``overloaded``.
        """
        dead: list[DeadLetter] = []
        m = self.metrics
        for record in records:
            reply_to = self.topics.response_for(record.topic)
            try:
                self.limits.check_size(record.value)
                req = decode(record.value, RecRequest)
            except Rejected as exc:
                dead.append(dead_letter(exc.reason, record, WORKER))
                continue
            try:
                self.limits.check_request(req)
            except Rejected as exc:  # dead-lettered, and answered when its id is usable
                dead.append(dead_letter(exc.reason, record, WORKER))
                if _usable_id(self.limits, req.request_id):
                    await self._send(self.core.refuse(req, f"invalid request: {exc.reason}"),
                                     reply_to)  # fmt: skip
                continue
            if _expired(req):
                m.inc(WORKER, "expired_requests_total", 1,
                      "requests dropped unanswered: their deadline had passed")  # fmt: skip
                continue
            if len(self._in_flight) >= self.settings.max_in_flight:
                await self._send(self.core.refuse(req, OVERLOADED), reply_to)
                m.inc(WORKER, "overloaded_requests_total", 1,
                      "requests answered 'overloaded' (in-flight bound reached)")  # fmt: skip
                continue
            task = asyncio.create_task(self._serve(req, reply_to, time.perf_counter()),
                                       name=f"request {req.request_id}")  # fmt: skip
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        m.set(WORKER, "requests_in_flight", len(self._in_flight),
              "requests accepted and not answered yet")  # fmt: skip
        if dead:
            n = await send_dead_letters(self._producer, self.topics.dead_letters, dead)
            m.inc(WORKER, "dead_letters_total", n, "messages sent to the dead-letter topic")

    async def _serve(self, req: RecRequest, reply_to: str, taken: float) -> None:
        try:
            await self._answer(req, reply_to, taken)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request %s failed", req.request_id)
            self.metrics.inc(WORKER, "request_failures_total", 1, "requests that raised")

    async def _answer(self, req: RecRequest, reply_to: str, taken: float) -> None:
        t0 = time.perf_counter()
        stale = False
        m = self.metrics
        if req.after:
            limit = self.settings.sync_timeout_ms / 1000
            if req.deadline is not None:
                limit = min(limit, req.deadline - time.time())
            stale = not await self.state.wait_for(req.after, max(limit, 0.0))
        if _expired(req):
            m.inc(WORKER, "expired_requests_total", 1,
                  "requests dropped unanswered: their deadline had passed")  # fmt: skip
            return
        wait_ms = (time.perf_counter() - t0) * 1000.0
        resp = self.core.answer(req, wait_ms, stale, (t0 - taken) * 1000.0)
        if _expired(req):  # computing took it past its deadline: the caller gave up
            m.inc(WORKER, "expired_requests_total", 1,
                  "requests dropped unanswered: their deadline had passed")  # fmt: skip
            return
        await self._send(resp, reply_to)
        m.inc(WORKER, "requests_total", 1, "recommendation requests answered")
        m.inc(WORKER, "request_seconds_total", resp.timing.total_ms / 1000, "time answering")
        if stale:
            m.inc(WORKER, "stale_responses_total", 1, "answers given before the model caught up")
        if resp.error:
            m.inc(WORKER, "request_errors_total", 1, "requests answered with an error")

    async def _send(self, resp: RecResponse, topic: str) -> None:
        """Answer on ``topic``: the response topic paired with the request's."""
        await self._producer.send(topic, encode(resp), key=resp.request_id.encode())


#: The error of a request refused because the recommender holds too many already.
OVERLOADED = "overloaded"


def _usable_id(limits: InputLimits, request_id: str) -> bool:
    try:
        limits.check_id("request", request_id)
    except Rejected:
        return False
    return True


#: An answer needs time to reach its caller (the responses topic, the SDK's consumer):
#: one sent later than this before the deadline would arrive after the caller gave up.
DELIVERY_MARGIN_S = 0.1


def _expired(req: RecRequest) -> bool:
    return req.deadline is not None and time.time() >= req.deadline - DELIVERY_MARGIN_S
