"""Log loaders: MovieLens 100K and the generic CSV / JSON-lines format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import DatasetError
from streamrec.eval.datasets import ML_EXPOSURE, ML_POSITIVE, load_dataset, load_log, load_movielens


def test_movielens_stream_follows_the_protocol(ml100k: Path) -> None:
    log = load_movielens(ml100k)
    assert len(log) == 100_000
    assert len(set(log.users)) == 943 and len(set(log.items)) == 1682
    assert np.all(np.diff(log.timestamps) >= 0), "the stream is in time order"
    assert log.event_types.count(ML_POSITIVE) + log.event_types.count(ML_EXPOSURE) == len(log)
    # features ride on each entity's first event, exactly once
    assert len(log.user_features) == 943 and len(log.item_features) == 1682
    first = {}
    for e, u in enumerate(log.users):
        first.setdefault(u, e)
    assert set(log.user_features) == set(first.values())
    feats = log.user_features[first["1"]]
    assert set(feats) == {"age=2", "sex=M", "occ=technician", "zip=8"}  # 24, M, technician, 85711
    item_first = {}
    for e, i in enumerate(log.items):
        item_first.setdefault(i, e)
    toy_story = log.item_features[item_first["1"]]  # Animation, Children's, Comedy; 1995
    assert set(toy_story) == {"genre=3", "genre=4", "genre=5", "decade=199"}


def test_ties_keep_file_order(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,event,timestamp\nb,x,click,5\na,y,click,3\nc,z,view,5\n")
    log = load_log(path)
    assert log.users == ["a", "b", "c"]


def test_csv_and_jsonl_give_the_same_log(tmp_path: Path) -> None:
    rows = [
        {"user": "u1", "item": "i1", "event": "click", "timestamp": 2,
         "user_features": ["age=3", "sex=F"], "item_features": ["genre=a"]},
        {"user": "u2", "item": "i1", "event": "purchase", "timestamp": 1},
        {"user": "u1", "item": "i2", "event": "view", "timestamp": 3, "item_features": ["genre=b"]},
    ]  # fmt: skip
    jl = tmp_path / "log.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    csv = tmp_path / "log.csv"
    csv.write_text(
        "user,item,event,timestamp,user_features,item_features\n"
        "u1,i1,click,2,age=3|sex=F,genre=a\n"
        "u2,i1,purchase,1,,\n"
        "u1,i2,view,3,,genre=b\n"
    )
    a, b = load_dataset(jl), load_dataset(csv)
    assert a.users == b.users == ["u2", "u1", "u1"]
    assert a.event_types == b.event_types == ["purchase", "click", "view"]
    assert a.user_features == b.user_features == {1: ("age=3", "sex=F")}
    assert a.item_features == b.item_features == {1: ("genre=a",), 2: ("genre=b",)}


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("user,item,timestamp\nu,i,1\n", ".csv", "lacks column"),
        ("user,item,event,timestamp\nu,i,click,soon\n", ".csv", "not a number"),
        ("user,item,event,timestamp\n,i,click,1\n", ".csv", "empty or invalid user"),
        ('{"user": "u", "item": "i", "event": "click"}\n', ".jsonl", "missing field 'timestamp'"),
        ("{not json\n", ".jsonl", "not valid JSON"),
        ("user,item,event,timestamp\n", ".csv", "holds no events"),
        ("a\tb\n", ".tsv", "unknown log format"),
    ],
)
def test_bad_logs_fail_with_the_row(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"log{suffix}"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_log(path)


def test_missing_movielens_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"u\.data is missing"):
        load_movielens(tmp_path)
