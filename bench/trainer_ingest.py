"""The trainer's own cost per record, without a broker: what ``streamrec up``'s trainer
process spends besides the learning kernel.

    python bench/trainer_ingest.py                  # 10k items + 10k users, 200k clicks
    python bench/trainer_ingest.py --entities 40000 --events 400000

Two phases, on fetch-shaped batches (aiokafka ``ConsumerRecord`` lists over 3
partitions, ``--batch`` records each), through the trainer's own code path
(``Record.batch``, ``decode_batch``, ``TrainerCore.apply``):

1. **onboarding**: ``--entities`` new-item and new-user events (half each, items with 2
   features and a category) into a model wired as ``up`` wires it: the SQLite feature
   store's sink (its writer thread) and item attributes, and an item-change listener
   that reads the changed items' representations (as the indexer's fresh buffer does).
   Entities/s and CPU microseconds per entity (every thread of the process);
2. **ingest**: ``--events`` clicks on them with the learning kernel replaced by a no-op,
   so the figure is the trainer's per-event overhead: decoding and ordering a batch,
   checking and queueing its interactions (microseconds per event, best of 3).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka.structs import ConsumerRecord, TopicPartition

from streamrec.model import HybridModel
from streamrec.settings import Settings
from streamrec.store import FeatureStore
from streamrec.store.adapters import StoreEntitySink, StoreItemAttributes
from streamrec.stream.codec import encode
from streamrec.stream.limits import InputLimits
from streamrec.stream.records import Record
from streamrec.stream.schemas import Interaction, NewItem, NewUser
from streamrec.workers.attributes import MemoryItemAttributes
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.state import ModelState
from streamrec.workers.training.core import TrainerCore, decode_batch


def fetched(topic: str, values: list[bytes], parts: int = 3) -> dict[Any, list[Any]]:
    """``values`` as one ``getmany`` result: round robin over ``parts`` partitions."""
    out: dict[Any, list[Any]] = {}
    for k, v in enumerate(values):
        tp = TopicPartition(topic, k % parts)
        rec = ConsumerRecord(topic, tp.partition, k // parts, 1_000 + k, 0, None, v, None,
                             len(v), -1, [])  # fmt: skip
        out.setdefault(tp, []).append(rec)
    return out


def entity_values(n: int) -> list[bytes]:
    out = []
    for k in range(n // 2):
        out.append(encode(NewItem(item=f"i{k}", features=[f"cat={k % 200}", f"brand={k * 7919 % 2000}"],
                                  attributes={"category": str(k % 200)}, ts=1.0 + k * 1e-6)))  # fmt: skip
        out.append(encode(NewUser(user=f"u{k}", features=[f"likes={k % 200}"], ts=1.0 + k * 1e-6)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entities", type=int, default=20_000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5_000, help="records per fetched batch")
    args = p.parse_args()
    s = Settings.load({}, environ={})
    store = FeatureStore.open(f"sqlite:///{Path(tempfile.mkdtemp()) / 'store.db'}")
    attrs = StoreItemAttributes(store, MemoryItemAttributes()).start()
    sink = StoreEntitySink(store, on_written=attrs.confirm).start()
    model = HybridModel(s.model)
    state = ModelState(model, attributes=attrs)
    state.on_items_changed(
        lambda rows: model.item_representations(np.asarray(list(rows), dtype=np.int64))
    )
    core = TrainerCore(state, sink, DeltaTracker(model), InputLimits.from_settings(s))

    values = entity_values(args.entities)
    batches = [fetched("entities", values[i : i + args.batch])
               for i in range(0, len(values), args.batch)]  # fmt: skip
    gc.freeze()  # the bench's own inputs: not for the collector to walk again and again
    c0, t0 = time.process_time(), time.perf_counter()
    for b in batches:
        core.apply(decode_batch(Record.batch(b)))
        sink.flush()
    sink.flush(wait=600)
    c1, t1 = time.process_time(), time.perf_counter()
    n = len(values)
    print(f"onboarding: {n:,} entities in batches of {args.batch:,}: {n / (t1 - t0):,.0f} "
          f"entities/s, {1e6 * (c1 - c0) / n:.1f} us CPU per entity (all threads)")  # fmt: skip
    sink.close()
    attrs.close()

    rng = np.random.default_rng(0)
    half = args.entities // 2
    users, items = rng.integers(0, half, args.events), rng.integers(0, half, args.events)
    clicks = [encode(Interaction(user=f"u{u}", item=f"i{i}", ts=10.0 + k * 1e-6))
              for k, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True))]  # fmt: skip
    batches = [fetched("interactions", clicks[i : i + args.batch])
               for i in range(0, len(clicks), args.batch)]  # fmt: skip
    gc.freeze()  # the bench's own inputs: not for the collector to walk again and again
    model._kernel_call = lambda u, i, w: -1  # type: ignore[method-assign]
    best_decode = best_apply = float("inf")
    for _ in range(3):
        decode_s = apply_s = 0.0
        for b in batches:
            t0 = time.perf_counter()
            decoded = decode_batch(Record.batch(b))
            t1 = time.perf_counter()
            core.apply(decoded)
            t2 = time.perf_counter()
            decode_s += t1 - t0
            apply_s += t2 - t1
        best_decode, best_apply = min(best_decode, decode_s), min(best_apply, apply_s)
    e = args.events
    print(f"ingest overhead (kernel not run): decode and order {1e6 * best_decode / e:.2f} us "
          f"per event, check and queue {1e6 * best_apply / e:.2f} us per event")  # fmt: skip


if __name__ == "__main__":
    main()
