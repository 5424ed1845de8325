"""The checkpoint registry: register, latest, list, retries and conflicts."""

from __future__ import annotations

import math

import pytest

from streamrec.errors import CheckpointConflictError, InvalidInputError
from streamrec.store import FeatureStore


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
