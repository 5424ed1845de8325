"""Atomic, pickle-free checkpoints of the whole model state.

A checkpoint is an ``.npz`` file: every table, vocabulary (NUL-separated UTF-8 bytes),
seen set (CSR), the random generator state and the counters, plus a JSON header with
the format version and the config.  Large entries of the header's ``extra`` given at
write time (``more_extra``: the item attributes of the workers) are JSON members of
their own (``extra_<name>``), so reading the header stays cheap; ``read_header(path,
with_members=True)`` puts them back.  It is written to a temporary file in the target
directory, fsynced and renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.errors import CheckpointError, StreamrecError
from streamrec.model.config import ModelConfig
from streamrec.model.hybrid import HybridModel
from streamrec.model.seen import SeenSets
from streamrec.model.vocab import Vocabulary

FORMAT = "streamrec-model"
#: 2: continuity weights (``user_cont``), the continuity ring (``last``), context rows
#: per item feature (not per item), the context generator's state.
#: 3: ``more_extra`` entries as members of their own, listed in the header's
#: ``extra_members`` (in version 2 they were in the header's ``extra``).
FORMAT_VERSION = 3
#: The versions this code reads: 2 differs only in where ``more_extra`` went.
READS_VERSIONS = (2, 3)
_MEMBER = "extra_"


def _header(model: HybridModel, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "n_events": model.n_events,
        "model_version": model.version,
        "rng_state": model.rng.bit_generator.state,
        "context_rng_state": model.context.rng.bit_generator.state,
        "extra": extra or {},
    }


@dataclass(frozen=True)
class Snapshot:
    """A model's whole state copied at one moment, to be written later (the model may
    move on meanwhile): :func:`snapshot` under the trainer's lock, :meth:`write` off it."""

    arrays: dict[str, np.ndarray]
    #: The JSON header, encoded by :meth:`write` (encoding a large ``extra`` takes time).
    header: dict[str, Any]
    n_users: int
    n_items: int
    n_events: int
    version: int
    #: The arrays whose encoding is left to :meth:`write` (the names, the seen pairs as
    #: CSR: half of a copy's time at 100,000 items), from copies taken with the snapshot.
    encoded: Callable[[], dict[str, np.ndarray]] = dict

    def write(
        self, path: str | os.PathLike[str], more_extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Write the snapshot to ``path`` atomically (temporary file, fsync, rename);
        ``more_extra`` (entries the caller copied with the snapshot and turns into
        JSON-ready values only now, off its lock, or already encoded by :func:`json_bytes`)
        are written as members of their own, read back into ``extra`` by
        ``read_header(path, with_members=True)``."""
        more = dict(more_extra or {})
        header = {**self.header, "extra_members": sorted(more)}
        arrays = {**self.arrays, **self.encoded(), "header": json_bytes(header)}
        arrays.update({_MEMBER + name: value if isinstance(value, np.ndarray) else json_bytes(value)
                       for name, value in more.items()})  # fmt: skip
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target


def snapshot(model: HybridModel, extra: dict[str, Any] | None = None) -> Snapshot:
    """Copies of every array, vocabulary and counter of ``model`` (O(model) memory and
    a memory copy; the file is written by :meth:`Snapshot.write`)."""
    arrays: dict[str, np.ndarray] = {name: a.copy() for name, a in model.arrays().items()}
    names = {"user_ids": model.users.ids.frozen(), "item_ids": model.items.ids.frozen(),
             "user_features": model.users.feature_names.frozen(),
             "item_features": model.items.feature_names.frozen()}  # fmt: skip
    seen = model.seen.frozen()

    def encoded() -> dict[str, np.ndarray]:
        out = {name: encode() for name, encode in names.items()}
        out["seen_indptr"], out["seen_indices"] = seen()
        return out

    header = json.loads(json.dumps(_header(model, extra)))  # a copy, and JSON-ready now
    return Snapshot(arrays, header, model.n_users, model.n_items, model.n_events, model.version,
                    encoded)  # fmt: skip


def save(
    model: HybridModel, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` atomically; ``extra`` (JSON) rides along (e.g. offsets)."""
    return snapshot(model, extra).write(path)


#: Entries of a large dict encoded per ``json.dumps`` call by :func:`json_bytes`.
JSON_SLICE = 4096


def json_bytes(value: Any) -> np.ndarray:
    """``json.dumps(value)``, UTF-8, as bytes.  A large dict (the item attributes: 0.19 s
    at 100,000 items) is encoded :data:`JSON_SLICE` entries per call, joined into the
    same text: one call holds the GIL throughout, and a checkpoint is written in a
    thread beside the trainer's event loop."""
    if not isinstance(value, dict) or len(value) <= JSON_SLICE:
        return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
    entries = list(value.items())
    parts = [json.dumps(dict(entries[k : k + JSON_SLICE]))[1:-1]
             for k in range(0, len(entries), JSON_SLICE)]  # fmt: skip
    return np.frombuffer(("{" + ", ".join(parts) + "}").encode(), dtype=np.uint8)


def read_header(path: str | os.PathLike[str], *, with_members: bool = False) -> dict[str, Any]:
    """The JSON header of a checkpoint (format, version, config, counters, extra).

    ``with_members``: the entries written as members of their own (``more_extra`` of
    :meth:`Snapshot.write`) join ``extra`` too; without, only the header is parsed
    (milliseconds, whatever the size of those entries)."""
    target = Path(path)
    with _open(target) as data:
        header = _parse_header(target, data)
        if with_members:
            names = header.get("extra_members", [])
            if not isinstance(names, list) or not isinstance(header.get("extra"), dict):
                raise CheckpointError(f"checkpoint {target} has a corrupt header")
            for name in names:
                header["extra"][name] = _parse_json(target, data, _MEMBER + str(name))
        return header


def _open(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable streamrec checkpoint "
            f"(truncated or corrupt?): {exc}"
        ) from exc


def _parse_json(path: Path, data: Any, member: str) -> Any:
    try:
        return json.loads(bytes(data[member]).decode())
    except KeyError:
        what = "no header: not a streamrec checkpoint" if member == "header" else f"no {member}"
        raise CheckpointError(f"checkpoint {path} has {what}") from None
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} has a corrupt {member}: {exc}") from exc


def _parse_header(path: Path, data: Any) -> dict[str, Any]:
    header = _parse_json(path, data, "header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    if header.get("version") not in READS_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path} has format version {header.get('version')!r}; this streamrec "
            f"reads versions {', '.join(map(str, READS_VERSIONS))}"
        )
    return header


def load(path: str | os.PathLike[str]) -> HybridModel:
    """Read a checkpoint written by :func:`save`; any defect raises :class:`CheckpointError`."""
    target = Path(path)
    with _open(target) as data:
        header = _parse_header(target, data)
        try:
            arrays = {name: data[name] for name in data.files if not name.startswith(_MEMBER)}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise CheckpointError(f"checkpoint {target} is corrupt: {exc}") from exc
    try:
        return _restore(header, arrays)
    except CheckpointError:
        raise
    except (KeyError, ValueError, IndexError, TypeError, StreamrecError) as exc:
        raise CheckpointError(f"checkpoint {target} is inconsistent: {exc!r}") from exc


def _restore(header: dict[str, Any], a: dict[str, np.ndarray]) -> HybridModel:
    model = HybridModel(ModelConfig.from_dict(header["config"]))
    model.rng.bit_generator.state = header["rng_state"]
    model.context.rng.bit_generator.state = header["context_rng_state"]
    for side, prefix in ((model.users, "user"), (model.items, "item")):
        side.ids = Vocabulary.from_array(a[f"{prefix}_ids"])
        side.feature_names = Vocabulary.from_array(a[f"{prefix}_features"])
        t = side.table
        nf = len(side.feature_names)
        t.n = nf
        t.emb = a[f"{prefix}_emb"].astype(np.float32).reshape(nf, model.dim).copy()
        t.bias = a[f"{prefix}_bias"].astype(np.float32).copy()
        t.emb_acc = a[f"{prefix}_emb_acc"].astype(np.float32).copy()
        t.bias_acc = a[f"{prefix}_bias_acc"].astype(np.float32).copy()
        if prefix == "user":  # continuity weights (user side only)
            t.cont = a["user_cont"].astype(np.float32).copy()
            t.cont_acc = a["user_cont_acc"].astype(np.float32).copy()
        else:
            t.cont, t.cont_acc = np.zeros(nf, np.float32), np.ones(nf, np.float32)
        ne = len(side.ids)
        side.fx.idx = a[f"{prefix}_fx"].astype(np.int32).copy()
        side.fx.w = a[f"{prefix}_fw"].astype(np.float32).copy()
        side.fx.n = ne
        if side.fx.idx.shape[0] != ne or t.bias.shape[0] != nf:
            raise CheckpointError(f"{prefix} tables do not match the {prefix} vocabularies")
        if side.fx.idx.size and side.fx.idx.max() >= nf:
            raise CheckpointError(f"{prefix} feature rows point past the feature table")
        t.count = np.zeros(nf, dtype=np.float32)  # entities per feature, from the rows
        np.add.at(t.count, side.fx.idx[:ne][side.fx.idx[:ne] >= 0], 1.0)
    model.context.emb = a["ctx_emb"].astype(np.float32).reshape(-1, model.dim).copy()
    model.context.emb_acc = a["ctx_acc"].astype(np.float32).copy()
    model.context.n = model.context.emb.shape[0]
    if model.context.n != len(model.items.feature_names):
        raise CheckpointError("context table does not match the item feature vocabulary")
    model.recent = (
        a["recent"].astype(np.int32).reshape(model.n_users, model.config.recent_items).copy()
    )
    model.recent_n = a["recent_n"].astype(np.int32).copy()
    width = model.config.continuity_items
    model.last = a["last"].astype(np.int32).reshape(model.n_users, width).copy()
    model.last_n = a["last_n"].astype(np.int32).copy()
    model.activity = a["activity"].astype(np.int32).copy()
    model.activity_rows = a["activity_rows"].astype(np.int32).copy()
    model.pop_ring = a["pop_ring"].astype(np.int32).copy()
    model.pop_state = a["pop_state"].astype(np.int64).copy()
    model.trend = a["trend"].astype(np.float64).copy()
    model.trend_state = a["trend_state"].astype(np.float64).copy()
    if model.trend.shape[0] != model.n_items:
        raise CheckpointError("trend counts do not match the item vocabulary")
    model.rng_state = a["rng_state"].astype(np.int64).copy()
    model.stats = a["stats"].astype(np.float64).copy()
    model.seen = SeenSets.from_csr(a["seen_indptr"], a["seen_indices"])
    model.seen.ensure(model.n_users)
    model.n_events = int(header["n_events"])
    model.version = int(header["model_version"])
    model.forget_changes()
    return model
