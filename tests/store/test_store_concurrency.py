"""Concurrent writers (threads and processes) upserting overlapping batches."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

from helpers import items, users, write_overlapping

from streamrec.model.features import parse_features
from streamrec.store import EntityRecord, FeatureStore


def _run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _expected(n: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    return _state(users(n)), _state(items(n))


def _state(records: list[EntityRecord]) -> dict[str, dict[str, float]]:
    return {r.id: parse_features(r.kind, r.features) for r in records}


def test_threads_with_overlapping_batches_agree(store: FeatureStore) -> None:
    def writer(start: int, reverse: bool) -> Callable[[], None]:
        def run() -> None:
            records = users(60, start) + items(60, start)
            if reverse:
                records.reverse()
            for lo in range(0, len(records), 25):
                store.upsert_entities(records[lo : lo + 25])

        return run

    errors = _run_threads([writer(0, False), writer(30, True), writer(0, True), writer(30, False)])

    assert errors == []
    want_users, want_items = _expected(90)
    assert dict(store.iter_entity_features("user")) == want_users
    assert dict(store.iter_entity_features("item")) == want_items
    # Same content from every writer: each entity was inserted once and never changed.
    assert {store.version("user", f"u{i}") for i in range(90)} == {1}
    assert {store.version("item", f"i{i}") for i in range(90)} == {1}


def test_conflicting_writers_never_mix_a_batch(store: FeatureStore) -> None:
    def writer(variant: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(5):
                store.upsert_entities(users(40, variant=variant) + items(40, variant=variant))

        return run

    assert _run_threads([writer(0), writer(1), writer(0), writer(1)]) == []
    # One batch commits whole: every entity carries the variant of the last batch.
    state = (dict(store.iter_entity_features("user")), dict(store.iter_entity_features("item")))
    assert state in [(_state(users(40, variant=v)), _state(items(40, variant=v))) for v in (0, 1)]


def test_two_processes_migrate_and_write_overlapping_batches(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=write_overlapping, args=(db_url, 0, 150, 50, False)),
        ctx.Process(target=write_overlapping, args=(db_url, 100, 150, 50, True)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]

    with FeatureStore.open(db_url, upgrade=False) as store:
        want_users, want_items = _expected(250)
        assert dict(store.iter_entity_features("user")) == want_users
        assert dict(store.iter_entity_features("item")) == want_items
        assert store.version("user", "u120") == 1
