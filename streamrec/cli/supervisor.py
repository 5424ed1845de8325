"""``streamrec up`` as separate processes: one ``streamrec worker`` per role, supervised.

The trainer and the recommender each get a process (and a core): a burst of requests
never starves learning and a burst of events never starves serving.  The recommender
serves a replica fed by the deltas topic, bootstrapped from the trainer's checkpoints in
the shared data directory.

The supervisor owns the embedded broker (children find it through the discovery file,
as any ``streamrec worker`` does), restarts a child that dies (backoff doubling from
1 s to 30 s, reset after a minute of uptime), serves ``/health`` and ``/metrics`` for the
whole deployment (each child's own, gathered), and stops every child on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamrec.stream.local_kafka import die_with_parent
from streamrec.workers.metrics import Metrics

log = logging.getLogger(__name__)

#: The processes of ``up``, in start order: each a name and the roles it runs.  The
#: indexer sits with the trainer (it reads the trainer's own model, builds the Annoy
#: index in a child process and writes it beside the checkpoints), off the serving
#: process, which loads each new index file memory-mapped.
PROCESSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("trainer", ("trainer", "indexer")),
    ("recommender", ("recommender",)),
)
_BACKOFF_MAX_S = 30.0
_STABLE_S = 60.0
#: glibc malloc settings for the worker processes, unless the environment sets them:
#: two arenas instead of eight per core (the store cache's thread, the executor threads
#: and the event loop each grew one), and blocks of 1 MiB or more (numpy tables, decoded
#: fetches, index representations) mmapped and handed back to the system when freed, so
#: the heap does not keep the high-water mark of every table resize.  Measured with
#: bench/memory.py (docs/operations.md): 60 MB less in the trainer at 20,000 items.
MALLOC_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "MALLOC_TRIM_THRESHOLD_": "1048576",
}


@dataclass
class Child:
    """One ``streamrec worker <role>`` process."""

    role: str
    argv: list[str]
    web_port: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 1.0
    health: dict[str, Any] = field(default_factory=dict)
    metrics: str = ""

    def spawn(self) -> None:
        # its own session: a Ctrl-C in the terminal reaches the supervisor, which stops
        # the children in order; and killed with the supervisor, however it dies
        self.proc = subprocess.Popen(self.argv, start_new_session=True, env=child_env(),
                                     preexec_fn=die_with_parent())  # fmt: skip
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _Gathered(Metrics):
    """The children's ``/metrics`` texts, as one exposition."""

    def __init__(self, children: Sequence[Child]) -> None:
        super().__init__()
        self.children = children

    def render(self) -> str:
        return "".join(c.metrics for c in self.children)


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one deployment."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self.metrics = _Gathered(self.children)

    def start(self) -> None:
        for child in self.children:
            child.spawn()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch the started children until ``stop``; then stop them."""
        try:
            while not stop.is_set():
                self._restart_dead()
                await asyncio.gather(*(self._poll(c) for c in self.children))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            await self.stop()

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.alive:
                continue
            up_for = now - child.started_at
            if up_for > _STABLE_S:
                child.backoff = 1.0
            if up_for < child.backoff:
                continue  # wait out the backoff, counted from the last start
            log.warning("the %s process exited with code %s; restarting it (restart %d)",
                        child.role, child.proc.returncode, child.restarts + 1)  # fmt: skip
            child.restarts += 1
            child.backoff = min(_BACKOFF_MAX_S, child.backoff * 2)
            child.health = {}
            child.spawn()

    async def _poll(self, child: Child) -> None:
        if child.web_port <= 0 or not child.alive:
            child.health = {} if not child.alive else child.health
            return
        base = f"http://127.0.0.1:{child.web_port}"
        try:
            health, metrics = await asyncio.gather(
                asyncio.to_thread(_get, f"{base}/health"),
                asyncio.to_thread(_get, f"{base}/metrics"),
            )
            child.health, child.metrics = json.loads(health), metrics
        except (OSError, ValueError):
            child.health = {}  # starting, or gone: reported as not ready

    def health(self) -> dict[str, Any]:
        processes = {
            c.role: {"pid": c.proc.pid if c.proc else None, "alive": c.alive,
                     "restarts": c.restarts, **c.health}
            for c in self.children
        }  # fmt: skip
        ok = all(p["alive"] and p.get("status") == "ok" for p in processes.values())
        return {"status": "ok" if ok else "degraded", "processes": processes}

    async def stop(self, timeout: float = 30.0) -> None:
        for child in self.children:
            if child.alive:
                assert child.proc is not None
                child.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc is None:
                continue
            try:
                await asyncio.to_thread(child.proc.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("the %s process did not stop in %.0f s: killing it", child.role,
                            timeout)  # fmt: skip
                child.proc.kill()
                await asyncio.to_thread(child.proc.wait)


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: ``environ`` (default ``os.environ``) with
    :data:`MALLOC_ENV` for the variables it does not set."""
    env = dict(os.environ if environ is None else environ)
    for name, value in MALLOC_ENV.items():
        env.setdefault(name, value)
    return env


def _get(url: str) -> str:
    """The body at ``url``, also of an error status (a degraded /health answers 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


def children(
    options: Sequence[str],
    fresh: bool,
    web_ports: Sequence[int],
    processes: Sequence[tuple[str, tuple[str, ...]]] = PROCESSES,
) -> list[Child]:
    """One child per process: ``python -m streamrec worker <roles> <options>``.

    ``options`` are the command-line options ``up`` was given (environment variables
    reach the children by inheritance); ``--fresh`` goes to the trainer only.
    """
    out = []
    for (name, roles), port in zip(processes, web_ports, strict=True):
        argv = [sys.executable, "-m", "streamrec", "worker", *roles, *options,
                "--web-port", str(port)]  # fmt: skip
        if fresh and "trainer" in roles:
            argv.append("--fresh")
        out.append(Child(name, argv, port))
    return out


def child_ports(web_port: int, n: int) -> list[int]:
    """Ports for the children's web servers: free ones, or -1 (off) when ``web_port`` is."""
    if web_port < 0:
        return [-1] * n
    from streamrec.stream.broker import free_port

    return [free_port() for _ in range(n)]


def command_line_options(ctx: Any, skip: Sequence[str]) -> list[str]:
    """The options of click context ``ctx`` that came from the command line, as argv."""
    import click
    from click.core import ParameterSource

    argv: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in skip or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value, flag = ctx.params[param.name], max(param.opts, key=len)
        if param.count:
            argv += [flag] * int(value)
        elif param.is_flag:
            argv += [flag] if value else []
        elif param.multiple:
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, os.fspath(value) if hasattr(value, "__fspath__") else str(value)]
    return argv
