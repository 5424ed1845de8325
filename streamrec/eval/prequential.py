"""Prequential (test-then-train) replay of a log, exactly as in EVALUATION.md.

For every event in time order: onboard the user and item (with their features) when
new; if the event is positive and past the burn-in, rank all known items for the user
excluding every item the user already has an event for, and score the hit; then learn
the event (seen-only events are only marked as seen).  The baselines
(:mod:`streamrec.eval.baselines`) run in the same pass on the same exclusions, or, with
``jobs`` > 1, in passes of their own in forked processes, on the same rows and
exclusions.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import numpy as np

from streamrec.errors import ReplayError
from streamrec.eval.baselines import Baseline, default_baselines
from streamrec.eval.datasets import Log
from streamrec.model import HybridModel, ModelConfig, ModelTopK


@dataclass
class SystemResult:
    """Hit statistics of one system over the scored events."""

    hits: np.ndarray  # uint8 per scored event
    ranks: np.ndarray  # 1-based rank in the top k, 0 when outside
    recommended: set[int] = field(default_factory=set)

    def summary(
        self, cold: np.ndarray, n_items: int, new_item: np.ndarray | None = None
    ) -> dict[str, float]:
        n = max(len(self.hits), 1)
        r = self.ranks.astype(np.float64)
        inside = r > 0
        safe = np.where(inside, r, 1.0)
        rr = np.where(inside, 1.0 / safe, 0.0)
        ndcg = np.where(inside, 1.0 / np.log2(safe + 1.0), 0.0)
        n_cold = int(cold.sum())
        return {
            "hr": float(self.hits.sum() / n),
            "mrr": float(rr.sum() / n),
            "ndcg": float(ndcg.sum() / n),
            "cold_hr": float(self.hits[cold].sum() / n_cold) if n_cold else math.nan,
            # HR on targets that were in the catalogue before this event: an item onboarded
            # at its first event is the newest item exactly when it is the target, which a
            # freshness prior turns into hits that live serving would not see as often
            "known_item_hr": _rate(self.hits, ~new_item) if new_item is not None else math.nan,
            "coverage": len(self.recommended) / n_items if n_items else 0.0,
        }


def _rate(hits: np.ndarray, mask: np.ndarray) -> float:
    n = int(mask.sum())
    return float(hits[mask].sum() / n) if n else math.nan


@dataclass
class ReplayResult:
    """Everything a report needs: per-system results and counters."""

    log_name: str
    k: int
    burn_in: float
    half_life: float
    n_events: int
    n_positive: int
    n_burn_in: int
    n_users: int
    n_items: int
    cold: np.ndarray  # bool per scored event
    systems: dict[str, SystemResult]
    seconds: float
    config: ModelConfig
    #: Display label of each system (by name).
    labels: dict[str, str] = field(default_factory=dict)
    #: Per scored event: was the target onboarded at this very event (first appearance)?
    new_item: np.ndarray | None = None

    @property
    def n_scored(self) -> int:
        return int(self.cold.shape[0])

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else math.inf

    def metrics(self) -> dict[str, dict[str, float]]:
        return {
            name: r.summary(self.cold, self.n_items, self.new_item)
            for name, r in self.systems.items()
        }


ProgressFn = Callable[[int], None]


def replay(
    log: Log,
    config: ModelConfig | None = None,
    *,
    k: int = 10,
    burn_in: float = 0.2,
    half_life: float = 2000.0,
    progress: ProgressFn | None = None,
    progress_every: int = 2000,
    baselines: Sequence[Baseline] | None = None,
    score_from: int = 0,
    jobs: int = 1,
) -> ReplayResult:
    """Run the prequential protocol over ``log``; ``progress(n)`` reports events done.

    ``baselines`` default to :func:`default_baselines` (pass ``()`` for the model alone).
    ``score_from``: events before this index are learned by every system, never scored
    (a held-out suffix after a learned prefix); the burn-in counts positives from there.
    ``jobs``: processes to spread the systems over.  With 2 or more, the baselines run
    in ``jobs - 1`` forked processes beside the model, each on its own copy of the rows
    and exclusions (the same for every system: the rows are numbered by first
    appearance), so every figure is the same as with ``jobs=1``; the baseline objects
    passed in are then left untouched.  Where ``fork`` is not available, 1 is used.
    """
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in must be in [0, 1), got {burn_in}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    model = HybridModel(config)
    systems = list(default_baselines(half_life) if baselines is None else baselines)
    weight_of = {t: model.event_weight(t) for t in set(log.event_types)}
    weights = np.array([weight_of[t] for t in log.event_types], dtype=np.float32)
    n_positive = int((weights[score_from:] > 0).sum())
    n_burn = int(burn_in * n_positive)
    plan = _Plan(log, weights, score_from, n_burn, n_positive - n_burn, k)
    groups = _spread(systems, jobs if "fork" in mp.get_all_start_methods() else 1)
    start = time.perf_counter()
    with _Forked(plan, model.config, groups[1:]) as others:
        ranker = ModelTopK(model)  # model.top_k_rows, bit for bit, without a full scan
        mine = plan.run(model, ranker, groups[0], progress, progress_every)
        results = dict(mine.systems)
        for theirs in others.results():
            results.update(theirs)
    seconds = time.perf_counter() - start
    if progress is not None:
        progress(len(log))
    model.check_finite()
    names = ["model", *(b.name for b in systems)]
    return ReplayResult(
        log_name=log.name,
        k=k,
        burn_in=burn_in,
        half_life=half_life,
        n_events=len(log),
        n_positive=n_positive,
        n_burn_in=n_burn,
        n_users=model.n_users,
        n_items=model.n_items,
        cold=mine.cold,
        systems={s: results[s] for s in names},
        seconds=seconds,
        config=model.config,
        labels={"model": "streamrec", **{b.name: b.label for b in systems}},
        new_item=mine.new_item,
    )


@dataclass
class _Pass:
    """What one pass over the log found: its systems' results, and per scored event
    whether the user was cold and the target new."""

    systems: dict[str, SystemResult]
    cold: np.ndarray
    new_item: np.ndarray


@dataclass
class _Plan:
    """The log and what decides which events are scored: the same in every process."""

    log: Log
    weights: np.ndarray
    score_from: int
    n_burn: int
    n_scored: int
    k: int

    def run(
        self,
        model: HybridModel,
        ranker: ModelTopK | None,
        systems: Sequence[Baseline],
        progress: ProgressFn | None = None,
        progress_every: int = 2000,
    ) -> _Pass:
        """One pass over the log, test then train, for ``systems`` (and the model when
        ``ranker`` is given; without it ``model`` only numbers the rows and keeps the
        exclusions, learning nothing)."""
        log, weights, k, n_scored = self.log, self.weights, self.k, self.n_scored
        names = (["model"] if ranker is not None else []) + [b.name for b in systems]
        hits = {s: np.zeros(n_scored, dtype=np.uint8) for s in names}
        ranks = {s: np.zeros(n_scored, dtype=np.int16) for s in names}
        recommended: dict[str, set[int]] = {s: set() for s in names}
        cold = np.zeros(n_scored, dtype=bool)
        new_item = np.zeros(n_scored, dtype=bool)
        has_positive: set[int] = set()
        urow = np.zeros(1, dtype=np.int32)
        irow = np.zeros(1, dtype=np.int32)
        wrow = np.zeros(1, dtype=np.float32)
        n_pos = 0
        scored = 0
        for e in range(len(log)):
            user, item = log.users[e], log.items[e]
            uf = log.user_features.get(e)
            u = model.user_row(user)
            if u < 0 or uf is not None:
                u = model.add_user(user, uf)
            itf = log.item_features.get(e)
            i = model.item_row(item)
            first_appearance = i < 0
            if i < 0 or itf is not None:
                i = model.add_item(item, itf)
                if not first_appearance and ranker is not None:
                    ranker.features_changed(i)
                if itf is not None or first_appearance:
                    for b in systems:
                        b.add_item(i, itf or ())
            w = weights[e]
            if w > 0:
                if e >= self.score_from and n_pos >= self.n_burn:
                    excluded = model.seen_items(u)
                    cold[scored] = u not in has_positive
                    new_item[scored] = first_appearance
                    tops = [] if ranker is None else [ranker.top_k(u, k, excluded)[0]]
                    tops += [b.top_k(u, model.n_items, k, excluded) for b in systems]
                    for name, rows in zip(names, tops, strict=True):
                        lst = rows.tolist()
                        recommended[name].update(lst)
                        if i in lst:
                            hits[name][scored] = 1
                            ranks[name][scored] = lst.index(i) + 1
                    scored += 1
                has_positive.add(u)
                if e >= self.score_from:
                    n_pos += 1
            for b in systems:
                b.learn(u, i, bool(w > 0))
            if ranker is None:
                model.mark_seen(u, i)
            else:
                urow[0], irow[0], wrow[0] = u, i, w
                model.learn_rows(urow, irow, wrow)
                ranker.learned(irow)
            if progress is not None and (e + 1) % progress_every == 0:
                progress(e + 1)
        systems_out = {s: SystemResult(hits[s], ranks[s], recommended[s]) for s in names}
        return _Pass(systems_out, cold, new_item)


def _spread(systems: Sequence[Baseline], jobs: int) -> list[list[Baseline]]:
    """The baselines per process: the model's own first (all of them when ``jobs`` is 1,
    else none), then ``jobs - 1`` groups dealt in turn."""
    if jobs == 1 or not systems:
        return [list(systems)]
    n = min(jobs - 1, len(systems))
    return [[], *([b for j, b in enumerate(systems) if j % n == g] for g in range(n))]


class _Forked:
    """Forked processes, one per group of baselines, each making its own pass over the
    log; :meth:`results` collects what they found, and leaving the block stops any
    still running (the model's pass raised)."""

    def __init__(self, plan: _Plan, config: ModelConfig, groups: list[list[Baseline]]):
        self.plan, self.config, self.groups = plan, config, groups
        self.children: list[tuple[BaseProcess, Connection]] = []

    def __enter__(self) -> _Forked:
        ctx = mp.get_context("fork")
        for group in self.groups:
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=_baselines_pass, args=(self.plan, self.config, group, send),
                name="streamrec-replay-baselines", daemon=True,
            )  # fmt: skip
            child.start()
            send.close()
            self.children.append((child, receive))
        return self

    def results(self) -> Iterator[dict[str, SystemResult]]:
        for child, receive in self.children:
            try:
                ok, payload = receive.recv()
            except EOFError:
                child.join()
                raise ReplayError(
                    f"a baselines process of the replay died (exit code {child.exitcode})"
                ) from None
            if not ok:
                raise ReplayError(f"a baselines process of the replay failed:\n{payload}")
            yield payload

    def __exit__(self, *exc: object) -> None:
        for child, receive in self.children:
            if child.is_alive():
                child.terminate()
            child.join()
            receive.close()


def _baselines_pass(
    plan: _Plan, config: ModelConfig, systems: list[Baseline], send: Connection
) -> None:
    """A forked process's pass: the baselines of ``systems``, on rows of a model that
    learns nothing; sends ``(True, results)`` or ``(False, traceback)``."""
    try:
        found = plan.run(HybridModel(config), None, systems)
        send.send((True, found.systems))
    except BaseException:  # whatever it was, the parent raises it
        send.send((False, traceback.format_exc()))
    finally:
        send.close()
