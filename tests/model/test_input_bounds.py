"""The model's hard input bounds and the memory of long ids and long feature lists."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import InvalidFeatureError, InvalidIdError
from streamrec.model import HybridModel, ModelConfig, checkpoint
from streamrec.model.config import MAX_FEATURE_WEIGHT, MAX_FEATURES
from streamrec.model.vocab import Vocabulary
from streamrec.stream import schemas


def test_the_schemas_share_the_models_bounds() -> None:
    from streamrec.model import config

    assert schemas.MAX_ID_LENGTH == config.MAX_ID_LENGTH
    assert schemas.MAX_NAME_LENGTH == config.MAX_NAME_LENGTH
    assert schemas.MAX_FEATURE_WEIGHT == config.MAX_FEATURE_WEIGHT
    assert schemas.MAX_FEATURES == config.MAX_FEATURES


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "\x1b[31m", "c1\x85", "\ud800"])
def test_ids_and_names_with_control_characters_are_refused(bad: str) -> None:
    model = HybridModel(ModelConfig(dim=4))
    with pytest.raises(InvalidIdError, match="control character"):
        model.add_user(bad)
    with pytest.raises(InvalidFeatureError, match="control character"):
        model.add_item("i", [f"genre={bad}"])
    assert model.n_users == 0 and model.n_items == 0


def test_weights_and_feature_counts_are_bounded() -> None:
    model = HybridModel(ModelConfig(dim=4))
    model.add_item("ok", {"a": MAX_FEATURE_WEIGHT, "b": -MAX_FEATURE_WEIGHT})
    with pytest.raises(InvalidFeatureError, match="limit"):
        model.add_item("heavy", {"a": 1e20})
    with pytest.raises(InvalidFeatureError, match="limit"):  # repeated names add up
        model.add_item("sum", ["a"] * 10_001)
    with pytest.raises(InvalidFeatureError, match=f"more than {MAX_FEATURES}"):
        model.add_item("many", [f"f{k}" for k in range(MAX_FEATURES + 1)])
    assert not model.has_item("heavy") and not model.has_item("many")
    # normalised weights: a near-zero sum of signed weights would blow them up
    norm = HybridModel(ModelConfig(dim=4, normalize_features=True))
    with pytest.raises(InvalidFeatureError, match="normalised"):
        norm.add_user("u", {"a": 5000.0, "b": -5000.99})
    assert not norm.has_user("u")
    norm.add_user("v", {"a": 3.0, "b": 1.0})


def test_the_vocabulary_is_saved_without_fixed_width_padding(tmp_path: Path) -> None:
    names = [f"u{k}" for k in range(10_000)]
    long = names + ["x" * 512]
    compact = Vocabulary(long).to_array()
    assert compact.dtype == np.uint8
    assert compact.nbytes < 2 * (sum(len(n) + 1 for n in names) + 512)
    assert compact.nbytes * 20 < np.array(long, dtype=str).nbytes  # what it used to be
    assert list(Vocabulary.from_array(compact)) == long
    # older checkpoints (fixed-width arrays) still load, and odd names keep that form
    assert list(Vocabulary.from_array(np.array(["a", "bc"], dtype=str))) == ["a", "bc"]
    assert list(Vocabulary.from_array(Vocabulary(["a\x00b", "é"]).to_array())) == ["a\x00b", "é"]
    assert list(Vocabulary.from_array(Vocabulary().to_array())) == []
    model = HybridModel(ModelConfig(dim=4))
    for name in long[:200] + ["y" * 512, "ünï"]:
        model.add_user(name)
    loaded = checkpoint.load(checkpoint.save(model, tmp_path / "m.npz"))
    assert list(loaded.users.ids) == list(model.users.ids)


def test_item_vectors_do_not_pad_every_feature_list_to_the_widest() -> None:
    model = HybridModel(ModelConfig(dim=64))
    for i in range(1000):
        model.add_item(f"i{i}", [f"genre={i % 7}"])
    model.add_item("wide", [f"tag={k}" for k in range(1000)])
    reps = model.items.vectors()
    side = model.items
    idx = side.fx.idx[: model.n_items]
    w = np.where(idx >= 0, side.fx.w[: model.n_items], 0.0).astype(np.float32)
    expected = np.einsum("nk,nkd->nd", w, side.table.emb[np.maximum(idx, 0)])
    np.testing.assert_allclose(reps, expected, rtol=1e-5, atol=1e-6)
    tracemalloc.start()
    model.item_representations()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # the padded gather was 1,001 x 1,001 x 64 float32 (256 MB); now a few (n, d) arrays
    assert peak < 16 * 1001 * 66 * 4 + 8 * 1001 * 1001
