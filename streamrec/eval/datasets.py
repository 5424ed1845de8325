"""Interaction logs: MovieLens 100K from its directory, or a generic CSV / JSON-lines log.

A :class:`Log` is the stream in time order (stable sort: ties keep file order).  Each
event may carry the features of its user and item; the replay onboards an entity with
them before its first event and updates it when they change later.

Generic format, one event per row (CSV with a header, or JSON lines)::

    user,item,event,timestamp,user_features,item_features
    u1,i9,click,1700000000,age=3|sex=F,genre=comedy|decade=199

``event`` is an event type (``click``, ``purchase``, ``view``...); ``timestamp`` any
number (seconds); the two feature columns are optional, names separated by ``|`` in CSV
and lists (or ``{name: weight}`` objects) in JSON.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamrec.errors import DatasetError

Features = tuple[str, ...] | Mapping[str, float]

#: Event types of the MovieLens mapping: rating >= 4 is positive, lower ratings only seen.
ML_POSITIVE = "like"
ML_EXPOSURE = "exposure"


@dataclass
class Log:
    """A stream of events in time order, with optional onboarding features."""

    users: list[str]
    items: list[str]
    event_types: list[str]
    timestamps: np.ndarray
    #: Features of an entity published with (before) a given event: event index -> features.
    user_features: dict[int, Features] = field(default_factory=dict)
    item_features: dict[int, Features] = field(default_factory=dict)
    name: str = "log"

    def __len__(self) -> int:
        return len(self.users)

    def head(self, n: int) -> Log:
        """The first ``n`` events (features of later events dropped)."""
        return Log(
            self.users[:n], self.items[:n], self.event_types[:n], self.timestamps[:n],
            {e: f for e, f in self.user_features.items() if e < n},
            {e: f for e, f in self.item_features.items() if e < n},
            name=f"{self.name}[:{n}]",
        )  # fmt: skip


def _sorted(
    users: list[str],
    items: list[str],
    types: list[str],
    ts: list[float],
    ufeat: Sequence[Features | None],
    ifeat: Sequence[Features | None],
    name: str,
) -> Log:
    t = np.asarray(ts, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    log = Log(
        users=[users[o] for o in order],
        items=[items[o] for o in order],
        event_types=[types[o] for o in order],
        timestamps=t[order],
        name=name,
    )
    for new, old in enumerate(order.tolist()):
        if ufeat[old]:
            log.user_features[new] = ufeat[old]
        if ifeat[old]:
            log.item_features[new] = ifeat[old]
    return log


def load_movielens(path: str | Path) -> Log:
    """MovieLens 100K as a stream, with the user and item features of EVALUATION.md.

    Users: ``age=<age // 10, capped at 6>``, ``sex=``, ``occ=``, ``zip=<first char>``.
    Items: ``genre=<index>`` per genre flag, ``decade=<first three digits of the year>``.
    Features are attached to each entity's first event in time order.
    """
    root = Path(path)
    data = root / "u.data"
    if not data.is_file():
        raise DatasetError(
            f"{root} is not a MovieLens 100K directory: {data} is missing "
            "(expected u.data, u.user and u.item)"
        )
    ufeat: dict[str, tuple[str, ...]] = {}
    user_file = root / "u.user"
    if user_file.is_file():
        for line in user_file.read_text(encoding="latin-1").splitlines():
            if not line.strip():
                continue
            uid, age, sex, occ, zipc = line.split("|")
            ufeat[uid] = (f"age={min(int(age) // 10, 6)}", f"sex={sex}", f"occ={occ}",
                          f"zip={zipc[:1]}")  # fmt: skip
    ifeat: dict[str, tuple[str, ...]] = {}
    item_file = root / "u.item"
    if item_file.is_file():
        for line in item_file.read_text(encoding="latin-1").splitlines():
            if not line.strip():
                continue
            parts = line.split("|")
            iid, date, flags = parts[0], parts[2], parts[5:]
            feats = [f"genre={g}" for g, flag in enumerate(flags) if flag.strip() == "1"]
            year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else ""
            feats.append(f"decade={year[:3]}" if year else "decade=unk")
            ifeat[iid] = tuple(feats)
    users: list[str] = []
    items: list[str] = []
    types: list[str] = []
    ts: list[float] = []
    try:
        raw = np.loadtxt(data, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(
            f"{data} is not tab-separated user item rating timestamp: {exc}"
        ) from exc
    if raw.shape[1] != 4:
        raise DatasetError(f"{data} has {raw.shape[1]} columns; expected 4")
    for u, i, r, t in raw.tolist():
        users.append(str(u))
        items.append(str(i))
        types.append(ML_POSITIVE if r >= 4 else ML_EXPOSURE)
        ts.append(float(t))
    log = _sorted(users, items, types, ts, [None] * len(users), [None] * len(users), "ml-100k")
    seen_u: set[str] = set()
    seen_i: set[str] = set()
    for e, (u, i) in enumerate(zip(log.users, log.items, strict=True)):
        if u not in seen_u:
            seen_u.add(u)
            if u in ufeat:
                log.user_features[e] = ufeat[u]
        if i not in seen_i:
            seen_i.add(i)
            if i in ifeat:
                log.item_features[e] = ifeat[i]
    return log


def _parse_feature_cell(value: object, where: str) -> Features | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("|") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    raise DatasetError(f"{where}: features must be a list of names or a name->weight object")


def load_log(path: str | Path) -> Log:
    """A generic log: ``.csv`` (with header) or ``.jsonl`` / ``.json`` (one object per line)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"log file {p} does not exist")
    rows: list[Mapping[str, object]] = []
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"user", "item", "event", "timestamp"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{p}: CSV header lacks column(s) {', '.join(sorted(missing))}")
            rows = list(reader)
    elif p.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{p}:{n}: not valid JSON: {exc}") from exc
                if not isinstance(obj, dict):
                    raise DatasetError(f"{p}:{n}: each line must be a JSON object")
                rows.append(obj)
    else:
        raise DatasetError(f"{p}: unknown log format {p.suffix!r}; use .csv or .jsonl")
    users: list[str] = []
    items: list[str] = []
    types: list[str] = []
    ts: list[float] = []
    uf: list[Features | None] = []
    itf: list[Features | None] = []
    for n, row in enumerate(rows, 1):
        where = f"{p} row {n}"
        try:
            user, item, event, stamp = row["user"], row["item"], row["event"], row["timestamp"]
        except KeyError as exc:
            raise DatasetError(f"{where}: missing field {exc.args[0]!r}") from None
        if not isinstance(user, str | int) or str(user) == "":
            raise DatasetError(f"{where}: empty or invalid user {user!r}")
        if not isinstance(item, str | int) or str(item) == "":
            raise DatasetError(f"{where}: empty or invalid item {item!r}")
        try:
            t = float(stamp)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: timestamp {stamp!r} is not a number") from None
        if not math.isfinite(t):
            raise DatasetError(f"{where}: timestamp {stamp!r} is not finite")
        users.append(str(user))
        items.append(str(item))
        types.append(str(event))
        ts.append(t)
        uf.append(_parse_feature_cell(row.get("user_features"), where))
        itf.append(_parse_feature_cell(row.get("item_features"), where))
    if not users:
        raise DatasetError(f"{p} holds no events")
    return _sorted(users, items, types, ts, uf, itf, p.name)


def save_log(log: Log, path: str | Path) -> None:
    """Write ``log`` as JSON lines in the generic format (features on their events)."""

    def cell(features: Features | None) -> object:
        return dict(features) if isinstance(features, Mapping) else list(features or ())

    with Path(path).open("w", encoding="utf-8") as fh:
        for e in range(len(log)):
            row: dict[str, object] = {
                "user": log.users[e],
                "item": log.items[e],
                "event": log.event_types[e],
                "timestamp": float(log.timestamps[e]),
            }
            if e in log.user_features:
                row["user_features"] = cell(log.user_features[e])
            if e in log.item_features:
                row["item_features"] = cell(log.item_features[e])
            fh.write(json.dumps(row) + "\n")


def load_dataset(path: str | Path) -> Log:
    """A MovieLens 100K directory, or a generic log file."""
    p = Path(path)
    if p.is_dir():
        return load_movielens(p)
    return load_log(p)
