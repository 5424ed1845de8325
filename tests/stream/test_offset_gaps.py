"""OffsetGaps: the records a consumer was never given, from the offsets it was given."""

from __future__ import annotations

from streamrec.stream.records import OffsetGaps

KEY = ("t.interactions", 0)


def test_contiguous_runs_open_no_gap() -> None:
    gaps = OffsetGaps()
    gaps.expect(KEY, 0)
    assert gaps.seen(KEY, 0, 9) is None
    assert gaps.seen(KEY, 10, 19) is None
    assert gaps.missing == 0


def test_a_run_after_a_hole_reports_the_offsets_skipped() -> None:
    gaps = OffsetGaps()
    gaps.expect(KEY, 0)
    assert gaps.seen(KEY, 113, 200) == (0, 112)  # the log's first 113 records are gone
    assert gaps.seen(KEY, 201, 300) is None
    assert gaps.seen(KEY, 311, 320) == (301, 310)
    assert gaps.missing == 123


def test_an_unknown_position_or_a_seek_back_reports_nothing() -> None:
    gaps = OffsetGaps()
    assert gaps.seen(KEY, 50, 60) is None  # position unknown: this run sets it
    assert gaps.seen(KEY, 61, 70) is None
    gaps.expect(KEY, 0)  # a recreated topic, read again from its start
    assert gaps.seen(KEY, 0, 5) is None
    assert gaps.seen(KEY, 6, 9) is None
    assert gaps.missing == 0


def test_partitions_are_tracked_apart() -> None:
    gaps = OffsetGaps()
    other = ("t.entities", 1)
    gaps.expect(KEY, 0)
    gaps.expect(other, 0)
    assert gaps.seen(KEY, 0, 99) is None
    assert gaps.seen(other, 5, 10) == (0, 4)
    assert gaps.missing == 5
