"""Hostile input at the trainer's edge, without a broker: hypothesis-drawn bad payloads
mixed into a clean world.  No exception escapes, every bad payload is dead-lettered with
its original bytes, and the model learns what the clean run learns: the same ids and
arrays, so its checkpoint is the clean run's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.errors import ModelDivergedError
from streamrec.model import HybridModel, ModelConfig, checkpoint
from streamrec.stream.codec import Rejected, decode, encode
from streamrec.stream.records import Record
from streamrec.stream.schemas import Interaction, NewItem, RecRequest
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.state import ModelState
from streamrec.workers.training.core import TrainerCore, decode_record
from streamrec.workers.training.sinks import MemoryEntitySink
from tests.hostile import CleanWorld, Payload, clean_world, hostile

CLEAN = clean_world(300)
CONFIG = ModelConfig(dim=8)


def _records(values: list[tuple[str, bytes]]) -> list[Record]:
    return [Record(topic, 0, offset, b"k", value) for offset, (topic, value) in enumerate(values)]


def _run(values: list[tuple[str, bytes]]) -> tuple[HybridModel, list, MemoryEntitySink]:
    model = HybridModel(CONFIG)
    sink = MemoryEntitySink()
    core = TrainerCore(ModelState(model), sink, DeltaTracker(model))
    dead = core.apply([decode_record(r) for r in _records(values)])
    return model, dead, sink


def _clean_values(world: CleanWorld) -> list[tuple[str, bytes]]:
    return [("entities", v) for v in world.entities] + [
        ("interactions", v) for v in world.interactions
    ]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[HybridModel, int]:
    model, dead, _ = _run(_clean_values(CLEAN))
    assert dead == [] and model.n_events == CLEAN.n_events
    path = checkpoint.save(model, tmp_path_factory.mktemp("clean") / "model.npz")
    return model, path.stat().st_size


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])  # fmt: skip
@given(bad=st.lists(hostile(), min_size=1, max_size=12), data=st.data())
def test_bad_payloads_are_dead_lettered_and_the_clean_run_is_learned_exactly(
    bad: list[Payload],
    data: st.DataObject,
    clean_run: tuple[HybridModel, int],
    tmp_path: Path,
) -> None:
    clean_model, clean_size = clean_run
    values = _clean_values(CLEAN)
    trainer_bad = [p for p in bad if p.topic != "requests"]
    positions = sorted(data.draw(st.lists(st.integers(0, len(values)), min_size=len(trainer_bad),
                                          max_size=len(trainer_bad))))  # fmt: skip
    mixed = list(values)
    bad_offsets = []
    for shift, (pos, payload) in enumerate(zip(positions, trainer_bad, strict=True)):
        mixed.insert(pos + shift, (payload.topic, payload.value))
        bad_offsets.append(pos + shift)
    model, dead, _ = _run(mixed)
    # every bad payload, and nothing else, dead-lettered with its original bytes
    assert [d.source_offset for d in dead] == bad_offsets
    assert [d.original for d in dead] == [p.value for p in trainer_bad]
    assert all(d.reason for d in dead)
    # the clean events all learned, as in the clean run (to float rounding: two runs of
    # the same events differ by ~1e-8)
    assert model.n_events == CLEAN.n_events
    assert list(model.users.ids) == list(clean_model.users.ids)
    assert list(model.items.ids) == list(clean_model.items.ids)
    mine, theirs = model.arrays(), clean_model.arrays()
    for name, array in theirs.items():
        np.testing.assert_allclose(mine[name], array, rtol=1e-4, atol=1e-6, err_msg=name)
    size = checkpoint.save(model, tmp_path / "model.npz").stat().st_size
    assert size <= 2 * clean_size
    # requests: the recommender's decode refuses every bad one (it dead-letters them)
    for payload in (p for p in bad if p.topic == "requests"):
        with pytest.raises(Rejected):
            decode(payload.value, RecRequest)


def test_an_interaction_the_model_refuses_onboards_nobody_and_spares_its_batch() -> None:
    """The old bug: the user row was appended before the item was refused, and the next
    flush failed for the whole batch."""
    values = [("entities", v) for v in CLEAN.entities[:5]]
    values += [
        ("interactions", encode(Interaction(user="fresh", item=" ", ts=2.0))),
        ("interactions", encode(Interaction(user="u1", item="i2", ts=2.0))),
        ("interactions", encode(Interaction(user="u2", item="i3", type="teleport", ts=2.0))),
        ("interactions", encode(Interaction(user="u3", item="i4", ts=2.0))),
    ]
    model, dead, sink = _run(values)
    assert [d.source_offset for d in dead] == [5, 7]
    assert "item id" in dead[0].reason and "teleport" in dead[1].reason
    assert not model.has_user("fresh") and "fresh" not in sink.users
    assert model.n_events == 2


def test_a_diverging_event_is_dead_lettered_and_the_rest_of_its_run_learned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is silently dropped: the model refuses a diverging event and learns the
    others; that event is dead-lettered with the reason."""
    values = [("entities", v) for v in CLEAN.entities]
    values += [("interactions", v) for v in CLEAN.interactions[:20]]
    model = HybridModel(CONFIG)
    core = TrainerCore(ModelState(model), MemoryEntitySink(), DeltaTracker(model))
    learn = model.learn_rows
    calls: list[int] = []

    def diverging(users: np.ndarray, items: np.ndarray, weights: np.ndarray,
                  threads: int = 1) -> object:  # fmt: skip
        calls.append(len(users))
        keep = np.arange(len(users)) != 7  # the model refuses event 7, learns the others
        learn(users[keep], items[keep], weights[keep])
        raise ModelDivergedError("event 7 would write infinity", events=[7])

    monkeypatch.setattr(model, "learn_rows", diverging)
    dead = core.apply([decode_record(r) for r in _records(values)])
    first = len(CLEAN.entities)
    assert [d.source_offset for d in dead] == [first + 7]
    assert "diverged" in dead[0].reason
    assert calls == [20] and model.n_events == 19


@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernel_refuses_diverging_events_and_learns_the_others(threads: int) -> None:
    """A real divergence (a learning rate that overflows): the error names the refused
    events, ``n_events`` counts every other one, and no table holds NaN or infinity;
    on two threads (a batch large enough to be split) as on one."""
    model = HybridModel(ModelConfig(dim=8, lr=1e30, bias_lr=1e30, optimizer="sgd"))
    for i in range(5):
        model.add_item(f"i{i}", {"genre=a": 1000.0})
    for u in range(4):
        model.add_user(f"u{u}", {"age=1": 1000.0})
    n = 1200
    users = np.arange(n, dtype=np.int32) % 4
    items = np.arange(n, dtype=np.int32) % 5
    refused: list[int] = []
    for _ in range(20):
        before = model.n_events
        try:
            model.learn_rows(users, items, np.ones(n, dtype=np.float32), threads=threads)
        except ModelDivergedError as exc:
            refused = exc.events
            break
    assert refused, "the learning rate should have diverged"
    assert refused == sorted(set(refused)) and refused[0] >= 0 and refused[-1] < n
    assert model.n_events == before + n - len(refused)
    model.check_finite()


def test_limits_come_from_the_settings() -> None:
    from streamrec.settings import Settings
    from streamrec.stream.limits import InputLimits

    limits = InputLimits.from_settings(Settings.load({"max_features": 2}, environ={}))
    model = HybridModel(CONFIG)
    core = TrainerCore(ModelState(model), MemoryEntitySink(), DeltaTracker(model), limits)
    values = [
        ("entities", encode(NewItem(item="ok", features=["a", "b"], ts=1.0))),
        ("entities", encode(NewItem(item="no", features=["a", "b", "c"], ts=1.0))),
    ]
    dead = core.apply([decode_record(r) for r in _records(values)])
    assert [d.source_offset for d in dead] == [1]
    assert "STREAMREC_MAX_FEATURES" in dead[0].reason
    assert model.has_item("ok") and not model.has_item("no")
