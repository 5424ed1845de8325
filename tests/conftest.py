"""Shared fixtures: the MovieLens path, the brokers of the session (every test using
``bootstrap`` runs on the embedded Tansu and on a real Apache Kafka, tests/brokers.py), and
the worker runtimes the broker tests run on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrec.settings import Settings
from tests.brokers import BROKERS, embedded_kafka, real_kafka
from tests.databases import postgres_server


@pytest.fixture(scope="session")
def embedded_bootstrap() -> Iterator[str]:
    """The embedded Tansu broker, started once per session."""
    with embedded_kafka() as address:
        yield address


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Apache Kafka, started once per session (see tests/brokers.py)."""
    with real_kafka() as address:
        yield address


@pytest.fixture(scope="session", params=BROKERS, ids=BROKERS)
def bootstrap(request: pytest.FixtureRequest) -> str:
    """A Kafka bootstrap address: every test using it runs on both brokers."""
    address: str = request.getfixturevalue(f"{request.param}_bootstrap")
    return address


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """URL of a reachable PostgreSQL server, started once per session (tests/databases.py)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def embedded(request: pytest.FixtureRequest, bootstrap: str) -> bool:
    """Whether ``bootstrap`` is the embedded broker (faust gets its tuned timings there)."""
    return bool(bootstrap == request.getfixturevalue("embedded_bootstrap"))


RUNTIMES = {
    "faust": {"runtime": "faust"},
    "faust-agent": {"runtime": "faust", "faust_requests": "agent"},
    "asyncio": {"runtime": "asyncio"},
}


@pytest.fixture(scope="session", params=list(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings of the worker runtime a stack test runs on: faust (requests by fetch
    task), faust with requests through a faust agent, plain asyncio; ids say which."""
    return RUNTIMES[request.param]


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a unique topic prefix (so tests never share topics) under tmp_path."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "topic_prefix": f"t{uuid.uuid4().hex[:10]}",
            "data_dir": tmp_path / "data",
            "web_port": -1,
            "fetch_wait_ms": 5,
            "feed_fetch_wait_ms": 5,
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
