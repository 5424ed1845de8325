"""Publishing deltas: the model's change set against the old whole-table diff, side by side.

A model with ``--users`` users and ``--items`` items (identity plus a few shared
features each, the default config: d = 64, recent items, activity buckets, trend) is
onboarded, and its first change set (every user and item new) is published and applied
to a replica, timed (export and encode; decode and apply).  Then it learns ``--events``
events; then, on the same state, the two ways of publishing what moved:

(a) the old way (streamrec before change sets), the old ``DeltaTracker.build`` and the
    old trainer's encoding, copied in :class:`OldPublisher`: compare every live row of
    the user, item and context feature tables with a copy taken at the previous publish
    and copy the tables again (``TableWatch``, a faithful copy of the old
    ``workers/delta.py:_TableWatch``), add the head message (seen pairs, the touched
    users' recent items and activity, the positive items' trend) and encode every
    message as JSON.  The table diff alone is reported too.
(b) ``model.export_changes()`` (rows the kernels marked, O(rows touched)), split into
    parts, turned into the wire's ``Delta`` messages (``DeltaTracker.build``) and encoded
    as the trainer sends them (MessagePack); (b') the same messages as JSON, to show
    what the codec contributes.

Repeated ``--repeat`` times (fresh events each time), the two ways in turn first (the
one run second finds the caches as the other left them: (a) sweeps every table, which
pushes the rows just learned out of the caches; in the trainer the export runs right
after the learning step); medians are reported, overall and by order, of wall-clock
time and of this process's CPU time (on a shared machine, wall time also counts the
time slices other processes held the CPU: a few ms that weigh far more on (b) than on (a)).

    python bench/changeset.py            # 100k users, 100k items, 5,000 events
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import msgspec
import numpy as np
from rich.console import Console
from rich.table import Table

from streamrec.model import HybridModel, ModelConfig
from streamrec.stream.codec import decode_binary, encode, encode_binary
from streamrec.stream.schemas import Delta
from streamrec.workers.deltas import DeltaTracker, from_delta


class Clock:
    """Wall-clock and CPU time (this process's) of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


class TableWatch:
    """A copy of a table's live rows, to find the rows that changed since (the old way)."""

    def __init__(self) -> None:
        self.emb = np.zeros((0, 0), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)

    def changed(self, emb: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        n, m = emb.shape[0], self.emb.shape[0]
        if m and self.emb.shape[1] == emb.shape[1]:
            moved = np.any(emb[:m] != self.emb, axis=1)
            if bias is not None:
                moved |= bias[:m] != self.bias
            rows = np.concatenate([np.flatnonzero(moved), np.arange(m, n)])
        else:
            rows = np.arange(n)
        self.emb = emb.copy()
        self.bias = bias.copy() if bias is not None else self.bias
        return rows.astype(np.int32)


class OldRows(msgspec.Struct, omit_defaults=True):
    """The old wire struct for table rows (``Rows``)."""

    idx: bytes
    emb: bytes
    bias: bytes = b""


class OldDelta(msgspec.Struct, kw_only=True, omit_defaults=True, tag="delta", tag_field="kind"):
    """The old wire struct of a delta message (``Delta`` before change sets)."""

    v: int = 1
    ts: float = 0.0
    seq: int
    version: int
    n_events: int
    final: bool = True
    user_base: int = 0
    new_users: list[str] = []
    item_base: int = 0
    new_items: list[str] = []
    user_feat_base: int = 0
    new_user_feats: list[str] = []
    item_feat_base: int = 0
    new_item_feats: list[str] = []
    user_rows: OldRows | None = None
    item_rows: OldRows | None = None
    ctx_rows: OldRows | None = None
    recent: OldRows | None = None
    activity: OldRows | None = None
    trend: OldRows | None = None
    trend_scale: float = 0.0
    seen: bytes = b""


_json = msgspec.json.Encoder()


def _i32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.int32).tobytes()


def _f32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()


class OldPublisher:
    """The old publish: the old ``DeltaTracker.build`` and the trainer's JSON encoding.

    A copy of the old ``workers/delta.py`` (reading the model's tables directly, as it
    did): the three float tables diffed against copies, the head message with the seen
    pairs, the touched users' recent items and activity and the positive items' trend
    (from the Python sets :meth:`learned` fills, as the old trainer did at every batch),
    then every message encoded as JSON; 1,500 table rows per message.  The table diff
    alone is timed too (``table_s``).
    """

    def __init__(self, model: HybridModel) -> None:
        self.model = model
        self.watches = {"user": TableWatch(), "item": TableWatch(), "ctx": TableWatch()}
        self.seen: list[np.ndarray] = []
        self.positive_items: set[int] = set()
        self.touched_users: set[int] = set()
        self.trend_scale = float(model.trend_state[0])
        self.table_s = 0.0
        self.publish()

    def learned(self, users: np.ndarray, items: np.ndarray, weights: np.ndarray) -> None:
        """The old tracker's bookkeeping of a learned batch (outside the publish clock)."""
        self.seen.append(np.stack([users, items], axis=1).astype(np.int32))
        self.positive_items.update(items[weights > 0].tolist())
        self.touched_users.update(users.tolist())

    def _tables(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        m = self.model
        ut, it, c = m.users.table, m.items.table, m.context
        return {"user": (ut.emb[: ut.n], ut.bias[: ut.n]), "item": (it.emb[: it.n], it.bias[: it.n]),
                "ctx": (c.emb[: c.n], None)}  # fmt: skip

    def publish(self) -> tuple[list[bytes], int]:
        m = self.model
        t0 = time.perf_counter()
        changed = {name: self.watches[name].changed(emb, bias)
                   for name, (emb, bias) in self._tables().items()}  # fmt: skip
        self.table_s = time.perf_counter() - t0
        head = OldDelta(seq=0, version=m.version, n_events=m.n_events,
                        user_base=m.n_users, item_base=m.n_items,
                        seen=_i32(np.concatenate(self.seen)) if self.seen else b"")  # fmt: skip
        scale = float(m.trend_state[0])
        if scale < self.trend_scale:  # the trainer renormalised its counts: ship them all
            self.positive_items.update(range(m.n_items))
        if self.positive_items:
            rows = np.array(sorted(self.positive_items), dtype=np.int32)
            head.trend = OldRows(idx=_i32(rows), emb=m.trend[rows].astype(np.float64).tobytes())
        head.trend_scale = self.trend_scale = scale
        if self.touched_users:
            rows = np.array(sorted(self.touched_users), dtype=np.int32)
            head.recent = OldRows(idx=_i32(rows), emb=_i32(m.recent[rows]),
                                  bias=_i32(m.recent_n[rows]))  # fmt: skip
            head.activity = OldRows(idx=_i32(rows), emb=_i32(m.activity[rows]))
        deltas, n_rows = [head], 0
        for (name, (emb, bias)), field in zip(self._tables().items(),
                                              ("user_rows", "item_rows", "ctx_rows"), strict=True):  # fmt: skip
            rows = changed[name]
            n_rows += len(rows)
            for start in range(0, len(rows), 1500):
                part = rows[start : start + 1500]
                payload = OldRows(idx=_i32(part), emb=_f32(emb[part]),
                                  bias=_f32(bias[part]) if bias is not None else b"")  # fmt: skip
                target = deltas[-1]
                if getattr(target, field) is not None:
                    target = OldDelta(seq=0, version=m.version, n_events=m.n_events,
                                      user_base=m.n_users, item_base=m.n_items)  # fmt: skip
                    deltas.append(target)
                setattr(target, field, payload)
        self.seen.clear()
        self.positive_items.clear()
        self.touched_users.clear()
        return [_json.encode(d) for d in deltas], n_rows


def build_model(n_users: int, n_items: int, seed: int) -> HybridModel:
    rng = np.random.default_rng(seed)
    model = HybridModel(ModelConfig(seed=seed))
    for u in range(n_users):
        feats = [f"age={rng.integers(8)}", f"city={rng.integers(200)}", f"device={rng.integers(4)}"]
        model.add_user(f"u{u}", feats)
    for i in range(n_items):
        feats = [
            f"genre={rng.integers(30)}",
            f"brand={rng.integers(500)}",
            f"price={rng.integers(10)}",
        ]
        model.add_item(f"i{i}", feats)
    return model


def onboarding(model: HybridModel, tracker: DeltaTracker, console: Console) -> None:
    """Publish the onboarding (every user and item new) and apply it to a replica, timed."""
    with Clock() as t_out:
        messages = [encode_binary(d) for d in tracker.build([])]
    replica = HybridModel(model.config)
    with Clock() as t_in:
        for raw in messages:
            replica.apply_changes(from_delta(decode_binary(raw, Delta)))
    same = np.array_equal(replica.items.table.emb[: model.items.table.n],
                          model.items.table.emb[: model.items.table.n])  # fmt: skip
    console.print(f"onboarding change set: {len(messages)} messages, "
                  f"{sum(map(len, messages)):,} bytes; export + encode {t_out.cpu:.2f} s CPU, "
                  f"decode + apply on a replica {t_in.cpu:.2f} s CPU "
                  f"({'same item table' if same else 'DIFFERENT item table'})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5_000, help="events learned per publish")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    console = Console()
    t0 = time.perf_counter()
    model = build_model(args.users, args.items, seed=1)
    console.print(f"onboarded {model.n_users:,} users and {model.n_items:,} items "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    rng = np.random.default_rng(2)
    old = OldPublisher(model)
    tracker = DeltaTracker(model)
    onboarding(model, tracker, console)  # published once, outside the table's clock
    model.learn_rows(np.zeros(1, np.int32), np.zeros(1, np.int32), np.ones(1, np.float32))
    old.publish()  # compile and settle both sides outside the clock
    tracker.build([])
    runs: list[dict[str, Any]] = []
    for k in range(args.repeat):
        users = rng.integers(model.n_users, size=args.events).astype(np.int32)
        items = rng.integers(model.n_items, size=args.events).astype(np.int32)
        weights = np.ones(args.events, dtype=np.float32)
        model.learn_rows(users, items, weights)
        old.learned(users, items, weights)  # the old trainer's per-batch bookkeeping
        b_first = k % 2 == 1  # the one run second finds the caches as the other left them
        if not b_first:
            with Clock() as t_old:
                old_msgs, old_rows = old.publish()
        with Clock() as t_build:
            deltas = tracker.build([])  # export_changes, split, to wire structs
        with Clock() as t_binary:
            new_msgs = [encode_binary(d) for d in deltas]  # what the trainer sends
        if b_first:
            with Clock() as t_old:
                old_msgs, old_rows = old.publish()
        with Clock() as t_json:
            json_msgs = [encode(d) for d in deltas]  # the same messages as JSON, for comparison
        new_rows = sum(len(r.rows) // 4 for d in deltas
                       for r in (d.user_rows, d.item_rows, d.context_rows) if r is not None)  # fmt: skip
        runs.append({"old_s": t_old.wall, "old_table_s": old.table_s, "new_s": t_build.wall + t_binary.wall,
                     "new_json_s": t_build.wall + t_json.wall, "old_cpu_s": t_old.cpu,
                     "new_cpu_s": t_build.cpu + t_binary.cpu,
                     "old_rows": old_rows, "new_rows": new_rows,
                     "old_bytes": sum(map(len, old_msgs)), "new_bytes": sum(map(len, new_msgs)),
                     "new_json_bytes": sum(map(len, json_msgs)), "new_messages": len(new_msgs),
                     "b_first": b_first})  # fmt: skip
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    table = Table(title=f"Publishing {args.events:,} events' changes, {args.users:,} users x "
                        f"{args.items:,} items, d={model.dim} (median of {args.repeat})")  # fmt: skip
    for col in ("way", "time", "CPU time", "feature/context rows", "bytes"):
        table.add_column(col, justify="right")
    table.add_row("(a) old publish (table diff)", f"{med['old_s'] * 1000:.1f} ms",
                  f"{med['old_cpu_s'] * 1000:.1f} ms", f"{med['old_rows']:,.0f}",
                  f"{med['old_bytes']:,.0f}")  # fmt: skip
    table.add_row("  of which the table diff", f"{med['old_table_s'] * 1000:.1f} ms", "", "", "")
    table.add_row("(b) export_changes + MessagePack", f"{med['new_s'] * 1000:.1f} ms",
                  f"{med['new_cpu_s'] * 1000:.1f} ms", f"{med['new_rows']:,.0f}",
                  f"{med['new_bytes']:,.0f}")  # fmt: skip
    table.add_row("(b') export_changes + JSON", f"{med['new_json_s'] * 1000:.1f} ms", "",
                  f"{med['new_rows']:,.0f}", f"{med['new_json_bytes']:,.0f}")  # fmt: skip
    console.print(table)
    ratio = med["new_s"] / med["old_s"]
    cpu_ratio = med["new_cpu_s"] / med["old_cpu_s"]
    console.print(f"(b) / (a) = {ratio:.3f}   per run: "
                  + ", ".join(f"{r['new_s'] / r['old_s']:.3f}" for r in runs)
                  + f"   (b') / (a) = {med['new_json_s'] / med['old_s']:.3f}")  # fmt: skip
    console.print(f"CPU time (b) / (a) = {cpu_ratio:.3f}   per run: "
                  + ", ".join(f"{r['new_cpu_s'] / r['old_cpu_s']:.3f}" for r in runs)
                  + "   (wall time counts the time other processes held the CPU too)")  # fmt: skip
    for first, label in ((False, "(a) run first, (b) after it"),
                         (True, "(b) run first, right after learning as in the trainer")):  # fmt: skip
        ratios = [r["new_cpu_s"] / r["old_cpu_s"] for r in runs if r["b_first"] is first]
        if ratios:
            console.print(f"  {label}: CPU time (b) / (a) median {statistics.median(ratios):.3f} "
                          f"of {len(ratios)} runs")  # fmt: skip
    console.print(f"(b) / the table diff alone = {med['new_s'] / med['old_table_s']:.3f}")
    console.print("(b) also carries the accumulators, the continuity rings and weights and "
                  "the model's counters, which (a) leaves out.")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": runs, "median": med, "ratio": ratio, "cpu_ratio": cpu_ratio,
                       **vars(args)}, fh, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
