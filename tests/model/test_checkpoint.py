"""Checkpoints: identical scores after a round trip; clear errors on bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import CheckpointError
from streamrec.model import HybridModel, load, read_header, save
from streamrec.model.checkpoint import FORMAT_VERSION, JSON_SLICE, json_bytes, snapshot
from tests.model.test_kernels import FULL, small_model


@pytest.fixture
def model() -> HybridModel:
    return small_model(**FULL)


def test_round_trip_gives_identical_scores_and_state(model: HybridModel, tmp_path: Path) -> None:
    path = save(model, tmp_path / "ck" / "model.npz", extra={"offsets": {"interactions/0": 41}})
    restored = load(path)
    for user in ["u0", "u3", "u11"]:
        np.testing.assert_array_equal(model.scores(user), restored.scores(user))
        assert model.recommend(user, 5) == restored.recommend(user, 5)
    for name, value in model.arrays().items():
        np.testing.assert_array_equal(value, restored.arrays()[name], err_msg=name)
    assert restored.config == model.config
    assert restored.context.rng.bit_generator.state == model.context.rng.bit_generator.state
    assert restored.n_events == model.n_events and restored.version == model.version
    assert read_header(path)["extra"] == {"offsets": {"interactions/0": 41}}
    # both continue identically: same random state, same tables
    model.learn(["u1", "u2"], ["i3", "i4"], ["click", "purchase"])
    restored.learn(["u1", "u2"], ["i3", "i4"], ["click", "purchase"])
    np.testing.assert_array_equal(model.scores("u1"), restored.scores("u1"))
    # and keep growing after the restore, past the tables' initial capacity
    new_users = [f"nu{n}" for n in range(150)]
    for n, user in enumerate(new_users):
        restored.add_user(user, [f"taste={n % 3}", f"zip={n}"])
        restored.add_item(f"ni{n}", [f"genre={n % 3}", f"tag={n}"])
    restored.learn(new_users, [f"ni{n}" for n in range(150)], ["click"] * 150)
    assert restored.n_users == model.n_users + 150
    again = load(save(restored, tmp_path / "again.npz"))
    again.learn(new_users[::-1], [f"ni{n}" for n in range(150)], ["purchase"] * 150)
    again.check_finite()


def test_save_is_atomic_and_leaves_no_temp_files(model: HybridModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    save(model, path)
    save(model, path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_truncated_file_fails_clearly(model: HybridModel, tmp_path: Path) -> None:
    path = save(model, tmp_path / "model.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(path)


def test_corrupt_member_fails_clearly(model: HybridModel, tmp_path: Path) -> None:
    path = save(model, tmp_path / "model.npz")
    data = bytearray(path.read_bytes())
    start = data.find(b"user_emb.npy") + 200  # inside the member's data
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load(path)


def test_missing_and_foreign_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(CheckpointError, match="no header"):
        load(other)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load(text)


def test_newer_format_version_is_refused(model: HybridModel, tmp_path: Path) -> None:
    path = save(model, tmp_path / "model.npz")
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header["version"] = FORMAT_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="format version"):
        load(path)


def test_large_extra_entries_are_members_read_only_when_asked(
    model: HybridModel, tmp_path: Path
) -> None:
    attributes = {f"i{n}": {"tags": ["a", "b"], "price": n} for n in range(2_000)}
    path = snapshot(model, {"epoch": "e1"}).write(tmp_path / "m.npz", {"attributes": attributes})
    header = read_header(path)
    assert header["extra"] == {"epoch": "e1"} and header["extra_members"] == ["attributes"]
    with np.load(path) as data:
        assert data["header"].size < 2_000 < data["extra_attributes"].size
    full = read_header(path, with_members=True)
    assert full["extra"] == {"epoch": "e1", "attributes": attributes}
    np.testing.assert_array_equal(load(path).scores("u0"), model.scores("u0"))
    # a damaged member is a CheckpointError when it is asked for, not before
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["extra_attributes"] = arrays["extra_attributes"][:100]
    np.savez(path, **arrays)
    assert read_header(path)["extra"] == {"epoch": "e1"}
    with pytest.raises(CheckpointError, match="corrupt extra_attributes"):
        read_header(path, with_members=True)


@pytest.mark.parametrize("n", [0, 1, JSON_SLICE, JSON_SLICE + 1, 3 * JSON_SLICE + 7])
def test_a_large_dict_is_encoded_in_slices_into_the_same_json(n: int) -> None:
    value = {f"i{k}": {"tags": ["a", "é"], "price": k / 3} for k in range(n)}
    assert bytes(json_bytes(value)) == json.dumps(value).encode()


def test_version_2_files_with_the_entries_in_the_header_still_read(
    model: HybridModel, tmp_path: Path
) -> None:
    path = save(model, tmp_path / "m.npz", extra={"epoch": "e1"})
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header["version"] = 2
    del header["extra_members"]
    header["extra"]["attributes"] = {"i1": {"tags": ["x"]}}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    extra = {"epoch": "e1", "attributes": {"i1": {"tags": ["x"]}}}
    assert read_header(path, with_members=True)["extra"] == extra
    np.testing.assert_array_equal(load(path).scores("u0"), model.scores("u0"))


def test_checkpoint_holds_no_pickles(model: HybridModel, tmp_path: Path) -> None:
    path = save(model, tmp_path / "model.npz")
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            with zf.open(name) as member:
                head = member.read(128)
            assert b"'descr': '|O'" not in head, f"{name} is an object array"
    with np.load(path, allow_pickle=False) as data:
        assert len(data.files) > 20


def test_a_snapshot_written_later_holds_the_model_as_it_was_taken(
    model: HybridModel, tmp_path: Path
) -> None:
    """The names and seen pairs are encoded by the write, from copies taken with the
    snapshot: what the model learns or onboards in between is not in the file."""
    before = tmp_path / "before.npz"
    save(model, before)
    taken = snapshot(model)
    model.add_user("late-user", {"age=old": 1.0})
    model.add_item("late-item", {"genre=new": 1.0})
    model.learn(["u1", "late-user", "u2"], ["late-item", "i3", "i4"], ["click"] * 3)
    later = taken.write(tmp_path / "later.npz")
    with np.load(before) as a, np.load(later) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            if name != "header":
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert "late-user" not in load(later).users.ids
