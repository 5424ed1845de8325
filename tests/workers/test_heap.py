"""Freezing a worker's start-up heap: full collections skip it, later garbage still goes."""

from __future__ import annotations

import gc
import weakref

from streamrec.workers.heap import freeze_startup_heap


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_the_startup_heap_is_frozen_and_later_cycles_are_still_collected() -> None:
    before = _Cycle()
    ref_before = weakref.ref(before)
    try:
        assert freeze_startup_heap() > 0
        after = _Cycle()
        ref_after = weakref.ref(after)
        del before, after
        gc.collect()
        assert ref_after() is None  # created after the freeze: collected
        assert ref_before() is not None  # frozen: the full collection did not scan it
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
        gc.collect()
    assert ref_before() is None
