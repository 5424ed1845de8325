"""What keeps ``streamrec up`` small: lazy package imports and the workers' malloc settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.cli.supervisor import MALLOC_ENV, Child, child_env


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    ["streamrec", "streamrec.cli.up", "streamrec.cli.supervisor", "streamrec.workers.web",
     "streamrec.index.build", "streamrec.settings"],
)  # fmt: skip
def test_supervisor_and_index_build_load_no_numba(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    assert module in loaded
    assert not {"numba", "llvmlite"} & loaded


def test_lazy_names_are_the_defining_modules_objects() -> None:
    code = (
        "import streamrec, streamrec.model, streamrec.workers\n"
        "from streamrec.model.hybrid import HybridModel\n"
        "from streamrec.model.checkpoint import save\n"
        "from streamrec.workers.stack import Stack\n"
        "from streamrec.stream.client import Client\n"
        "assert streamrec.HybridModel is HybridModel and streamrec.Client is Client\n"
        "assert streamrec.model.HybridModel is HybridModel and streamrec.model.save is save\n"
        "assert streamrec.workers.Stack is Stack\n"
        "from streamrec.model import ModelConfig, TopK\n"
        "from streamrec.workers import Trainer\n"
        "for pkg in (streamrec, streamrec.model, streamrec.workers):\n"
        "    assert all(hasattr(pkg, name) for name in pkg.__all__), pkg\n"
        "    try:\n"
        "        pkg.no_such_name\n"
        "    except AttributeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'{pkg} invented no_such_name')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_child_env_adds_the_malloc_settings_the_environment_lacks() -> None:
    env = child_env({"PATH": "/bin", "MALLOC_ARENA_MAX": "4"})
    assert env["PATH"] == "/bin"
    assert env["MALLOC_ARENA_MAX"] == "4"  # the operator's choice wins
    assert env["MALLOC_MMAP_THRESHOLD_"] == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"] == "1048576"
    assert env["MALLOC_TRIM_THRESHOLD_"] == MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"] == "1048576"
    assert child_env({})["MALLOC_ARENA_MAX"] == "2"


def test_a_spawned_worker_gets_the_malloc_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    out = tmp_path / "env.txt"
    code = (
        "import os, pathlib\n"
        f"pathlib.Path({str(out)!r}).write_text(' '.join(os.environ.get(n, '-') for n in "
        f"{sorted(MALLOC_ENV)!r}))\n"
    )
    child = Child("probe", [sys.executable, "-c", code], web_port=-1)
    child.spawn()
    assert child.proc is not None
    assert child.proc.wait(60) == 0
    assert out.read_text().split() == [MALLOC_ENV[n] for n in sorted(MALLOC_ENV)]
