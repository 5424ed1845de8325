"""Onboarding throughput of the SQL feature store, SQLite and PostgreSQL in one run.

    .venv/bin/python bench/onboarding.py            # 20k users + 20k items per backend
    .venv/bin/python bench/onboarding.py --quick    # 2k + 2k

Phases, each in batches (one transaction per batch): insert users (4 features), insert
items (5 features + attributes), replay everything unchanged (the idempotent path),
update every user's and item's features.  PostgreSQL runs in a throw-away schema.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from streamrec.store import EntityRecord, FeatureStore

DEFAULT_PG = "postgresql+psycopg://root@127.0.0.1:5432/test"


def users(n: int, variant: int = 0) -> list[EntityRecord]:
    return [
        EntityRecord(
            "user",
            f"u{i}",
            {f"age={i % 60}": 1.0, f"country={i % 50}": 1.0, f"device={i % 5}": 1.0 + variant,
             f"plan={i % 3}": 1.0},
        )
        for i in range(n)
    ]  # fmt: skip


def items(n: int, variant: int = 0) -> list[EntityRecord]:
    return [
        EntityRecord(
            "item",
            f"i{i}",
            {f"genre={i % 20}": 1.0, f"year={i % 40}": 1.0, f"studio={i % 300}": 1.0,
             f"lang={i % 9}": 1.0, f"len={i % 7}": 0.5 + variant},
            {"category": f"c{i % 12}", "available": i % 10 != 0,
             "created_at": 1_700_000_000 + i, "tags": [f"t{i % 8}"]},
        )
        for i in range(n)
    ]  # fmt: skip


def timed(store: FeatureStore, records: Sequence[EntityRecord], batch: int) -> tuple[float, int]:
    """Seconds to write ``records`` in batches, and how many entities were written."""
    written = 0
    start = time.perf_counter()
    for lo in range(0, len(records), batch):
        written += store.upsert_entities(records[lo : lo + batch]).written
    return time.perf_counter() - start, written


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    conninfo = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"streamrec_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(
    name: str, url_cm: Callable[[], AbstractContextManager[str]], n: int, batch: int
) -> list[list[str]]:
    rows = []
    u0, i0, u1, i1 = users(n), items(n), users(n, 1), items(n, 1)
    with url_cm() as url, FeatureStore.open(url) as store:
        phases = [
            ("insert users (4 feat.)", u0),
            ("insert items (5 feat.)", i0),
            ("replay unchanged", u0 + i0),
            ("update users", u1),
            ("update items", i1),
        ]
        for phase, records in phases:
            seconds, written = timed(store, records, batch)
            rows.append([name, phase, f"{len(records):,}", f"{written:,}",
                         f"{seconds:.2f}", f"{len(records) / seconds:,.0f}"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k users + 2k items")
    parser.add_argument("-n", type=int, default=None, help="users (and items) per backend")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("STREAMREC_BENCH_PG_URL", DEFAULT_PG),
        help="PostgreSQL server [env: STREAMREC_BENCH_PG_URL]",
    )
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 20_000)
    table = run("sqlite", sqlite_url, n, args.batch)
    try:
        table += run("postgresql", lambda: pg_url(args.pg_url), n, args.batch)
    except psycopg.OperationalError as exc:
        print(f"postgresql skipped: {exc}")
    head = ["backend", "phase", "entities", "written", "seconds", "entities/s"]
    widths = [max(len(r[c]) for r in [head, *table]) for c in range(len(head))]
    print(f"batch size {args.batch}, {n:,} users + {n:,} items per backend")
    for r in [head, ["-" * w for w in widths], *table]:
        print(
            "  ".join(
                v.rjust(w) if c >= 2 else v.ljust(w)
                for c, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
