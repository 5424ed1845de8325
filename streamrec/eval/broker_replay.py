"""Replay a log through the broker: publish events, ask for recommendations, score hits.

The protocol is the prequential one of ``streamrec.eval.prequential`` (EVALUATION.md):
entities are onboarded before their first event, the first ``burn_in`` share of
positive events is only learned, and every later positive event is scored before it is
published.  Each request carries the client's watermarks, so the served model includes
every earlier event: the figures match the in-process replay.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamrec.eval.datasets import Log
from streamrec.model import ModelConfig
from streamrec.stream.client import Client


@dataclass
class BrokerReplayResult:
    n_events: int
    n_scored: int
    hits: int
    cold_scored: int
    cold_hits: int
    rr_sum: float
    seconds: float
    stale: int

    @property
    def hr(self) -> float:
        return self.hits / self.n_scored if self.n_scored else math.nan

    @property
    def mrr(self) -> float:
        return self.rr_sum / self.n_scored if self.n_scored else math.nan

    @property
    def cold_hr(self) -> float:
        return self.cold_hits / self.cold_scored if self.cold_scored else math.nan

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else math.inf


async def replay_log(
    client: Client,
    log: Log,
    config: ModelConfig | None = None,
    *,
    k: int = 10,
    burn_in: float = 0.2,
    score: bool = True,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    timeout: float = 30.0,
    strict: bool = True,
) -> BrokerReplayResult:
    """Publish ``log`` through ``client``; with ``score``, request and score every test event.

    ``speed`` paces publishing at that many events per second (None: as fast as possible).
    ``strict`` waits for each message's acknowledgement before the next: then the trainer
    sees the exact stream order across partitions and topics (it orders a fetched batch
    by producer time, but a record still in flight on another partition could arrive in
    a later batch), so model updates, random draws included, match the in-process replay.
    Without it, publishing is pipelined and faster, and the figures match within noise.
    """
    wait = strict
    cfg = config or ModelConfig()
    weights = [cfg.event_weights.get(t, 0.0) for t in log.event_types]
    n_positive = sum(1 for w in weights if w > 0)
    n_burn = int(burn_in * n_positive)
    users: set[str] = set()
    items: set[str] = set()
    has_positive: set[str] = set()
    n_pos = scored = hits = cold_scored = cold_hits = stale = 0
    rr = 0.0
    start = time.perf_counter()
    for e in range(len(log)):
        user, item = log.users[e], log.items[e]
        uf, itf = log.user_features.get(e), log.item_features.get(e)
        if user not in users or uf is not None:
            users.add(user)
            await client.add_user(user, uf, wait=wait)
        if item not in items or itf is not None:
            items.add(item)
            await client.add_item(item, itf, wait=wait)
        if weights[e] > 0:
            if score and n_pos >= n_burn:
                r = await client.recommend(user, k, exact=True, timeout=timeout)
                stale += r.stale
                ids = r.ids
                cold = user not in has_positive
                scored += 1
                cold_scored += cold
                if item in ids:
                    hits += 1
                    cold_hits += cold
                    rr += 1.0 / (ids.index(item) + 1)
            has_positive.add(user)
            n_pos += 1
        await client.track(user, item, log.event_types[e], wait=wait)
        if speed:
            ahead = (e + 1) / speed - (time.perf_counter() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        if progress is not None and (e + 1) % 100 == 0:
            progress(e + 1)
    await client.flush()
    if progress is not None:
        progress(len(log))
    return BrokerReplayResult(len(log), scored, hits, cold_scored, cold_hits, rr,
                              time.perf_counter() - start, stale)  # fmt: skip
