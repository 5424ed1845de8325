"""The checkpoint registry: register, latest, list, retries and conflicts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streamrec.errors import CheckpointConflictError, InvalidInputError
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.store import FeatureStore
from streamrec.workers.checkpoints import Checkpoints


def test_register_latest_and_list(store: FeatureStore) -> None:
    assert store.latest_checkpoint() is None
    assert store.list_checkpoints() == []

    first = store.register_checkpoint(
        "/ckpt/1.npz", {"interactions": {"0": 10, "1": 7}}, {"hr@10": 0.2}
    )
    second = store.register_checkpoint("/ckpt/2.npz", {"interactions": {"0": 25, "1": 9}})

    assert (first.version, second.version) == (1, 2)
    latest = store.latest_checkpoint()
    assert latest == second
    assert latest is not None and latest.offsets == {"interactions": {"0": 25, "1": 9}}
    assert latest.metrics == {}
    assert latest.created_at.tzinfo is not None
    assert [c.version for c in store.list_checkpoints()] == [2, 1]
    assert store.list_checkpoints(limit=1) == [second]


def test_explicit_versions_retry_and_conflict(store: FeatureStore) -> None:
    a = store.register_checkpoint("/ckpt/a.npz", {"t": {"0": 1}}, version=7)
    assert store.register_checkpoint("/ckpt/a.npz", {"t": {"0": 1}}, version=7) == a  # retried
    with pytest.raises(CheckpointConflictError, match="version 7 is already registered"):
        store.register_checkpoint("/ckpt/b.npz", {"t": {"0": 2}}, version=7)
    assert store.register_checkpoint("/ckpt/c.npz", {}).version == 8


@pytest.mark.parametrize(
    ("path", "offsets", "version", "message"),
    [
        ("", {}, None, "path"),
        ("/x", {"t": math.nan}, None, "JSON"),
        ("/x", {"t": object()}, None, "JSON"),
        ("/x", {}, 0, "version"),
    ],
)
def test_bad_registrations_write_nothing(
    store: FeatureStore, path: str, offsets: dict[str, object], version: int | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.register_checkpoint(path, offsets, version=version)
    assert store.list_checkpoints() == []


@pytest.mark.parametrize("registered", [False, True])
def test_each_checkpoint_written_becomes_the_newest(
    store: FeatureStore, tmp_path: Path, registered: bool
) -> None:
    """What replicas read (``Checkpoints.path``) is the last checkpoint written; with a
    registry it is a versioned file, registered."""
    settings = Settings.load({"data_dir": tmp_path, "model": ModelConfig(dim=4)}, environ={})
    checkpoints = Checkpoints(settings, "deltas", store if registered else None)
    model = HybridModel(settings.model)
    model.add_item("i1")
    first = checkpoints.prepare(model, {}, 3, epoch="e", next_seq=2).write()
    assert checkpoints.latest_position() == ("e", 2, 3)
    model.add_item("i2")
    second = checkpoints.prepare(model, {}, 0, epoch="e", next_seq=5).write()
    assert checkpoints.latest_position() == ("e", 5, 0)
    latest = checkpoints.latest()
    assert latest is not None and latest.model.n_items == 2
    if registered:
        listed = store.latest_checkpoint()
        assert second != first and listed is not None
        assert Path(listed.path) == second.resolve() == checkpoints.path.resolve()


def test_a_replica_reads_the_attributes_only_when_it_asks(tmp_path: Path) -> None:
    """A replica whose attributes come from the store leaves their member unparsed."""
    settings = Settings.load({"data_dir": tmp_path, "model": ModelConfig(dim=4)}, environ={})
    checkpoints = Checkpoints(settings, "deltas")
    model = HybridModel(settings.model)
    model.add_item("i1")
    attributes = {"i1": {"attributes": {"category": "c"}, "created": 1.0}}
    checkpoints.prepare(model, {}, 0, lambda: attributes, epoch="e", next_seq=1).write()
    full, bare = checkpoints.latest(), checkpoints.latest(attributes=False)
    assert full is not None and full.attributes == attributes
    assert bare is not None and bare.attributes == {} and bare.model.n_items == 1
