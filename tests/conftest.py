"""Shared fixtures: the MovieLens path and planted synthetic worlds."""

from __future__ import annotations

from pathlib import Path

import pytest

ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-100k"


@pytest.fixture(scope="session")
def ml100k() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(
            f"MovieLens 100K not found at {ML100K} (it is read from ../shared, never copied)"
        )
    return ML100K
