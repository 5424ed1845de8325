"""Registry of model checkpoints: version, file path, consumed offsets, metrics.

A trainer registers a checkpoint after writing its file; a recommender or a standby
trainer bootstraps from :func:`latest`.  Registering the same version again with the
same path and offsets is a no-op (a retried call), with different contents an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from streamrec.errors import CheckpointConflictError, InvalidInputError
from streamrec.store._writer import lock_counter
from streamrec.store.records import CheckpointInfo, to_utc
from streamrec.store.schema import CHECKPOINTS as _TABLE


def _json_object(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"checkpoint {name} must be a mapping, got {value!r}")
    try:
        # Round-trip so what we store is exactly what we hand back (str keys, no NaN).
        out: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"checkpoint {name} is not JSON-serialisable: {exc}") from None
    return out


def register(
    conn: Connection,
    path: str,
    offsets: Mapping[str, Any],
    metrics: Mapping[str, Any] | None,
    version: int | None,
) -> CheckpointInfo:
    """Insert one checkpoint in the caller's write transaction (see module docstring)."""
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"checkpoint path must be a non-empty string, got {path!r}")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidInputError(f"checkpoint version must be an integer >= 1, got {version!r}")
    offsets_json = _json_object("offsets", offsets)
    metrics_json = _json_object("metrics", metrics)
    lock_counter(conn)  # serialises registrations, so max(version) + 1 is ours alone
    if version is None:
        top = conn.execute(select(func.coalesce(func.max(_TABLE.c.version), 0))).scalar_one()
        version = int(top) + 1
    else:
        stmt = select(_TABLE).where(_TABLE.c.version == version)
        existing = conn.execute(stmt).mappings().one_or_none()
        if existing is not None:
            if existing["path"] == path and existing["offsets"] == offsets_json:
                return _info(existing)
            raise CheckpointConflictError(
                f"checkpoint version {version} is already registered with path "
                f"{existing['path']!r} and offsets {existing['offsets']!r}; "
                "register the new one under a new version"
            )
    row: dict[str, Any] = {
        "version": version,
        "path": path,
        "created_at": datetime.now(UTC),
        "offsets": offsets_json,
        "metrics": metrics_json,
    }
    conn.execute(_TABLE.insert().values(**row))
    return CheckpointInfo(**row)


def latest(conn: Connection) -> CheckpointInfo | None:
    stmt = select(_TABLE).order_by(_TABLE.c.version.desc()).limit(1)
    row = conn.execute(stmt).mappings().one_or_none()
    return None if row is None else _info(row)


def list_all(conn: Connection, limit: int | None = None) -> list[CheckpointInfo]:
    """Checkpoints, newest first."""
    stmt = select(_TABLE).order_by(_TABLE.c.version.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_info(row) for row in conn.execute(stmt).mappings()]


def _info(row: RowMapping) -> CheckpointInfo:
    return CheckpointInfo(
        version=row["version"],
        path=row["path"],
        created_at=to_utc(row["created_at"]),
        offsets=dict(row["offsets"]),
        metrics=dict(row["metrics"]),
    )
