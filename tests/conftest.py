"""Shared fixtures: the MovieLens path, and one broker per test session (embedded Tansu,
or STREAMREC_BOOTSTRAP)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrec.settings import Settings


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A Kafka bootstrap address for the whole session."""
    external = os.environ.get("STREAMREC_BOOTSTRAP")
    if external:
        yield external
        return
    from streamrec.stream.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    asyncio.run(broker.start())
    try:
        yield broker.bootstrap
    finally:
        asyncio.run(broker.stop())


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a unique topic prefix (so tests never share topics) under tmp_path."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "topic_prefix": f"t{uuid.uuid4().hex[:10]}",
            "data_dir": tmp_path / "data",
            "web_port": -1,
            "fetch_wait_ms": 5,
        }
        values.update(overrides)
        return Settings.load(values, environ={})

    return make


ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-100k"


@pytest.fixture(scope="session")
def ml100k() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(
            f"MovieLens 100K not found at {ML100K} (it is read from ../shared, never copied)"
        )
    return ML100K


JD = ML100K.parent / "jd-jdata" / "events.csv"


@pytest.fixture(scope="session")
def jd_events() -> Path:
    if not JD.is_file():
        pytest.skip(f"JD JData sample not found at {JD} (it is read from ../shared, never copied)")
    return JD
