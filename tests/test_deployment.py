"""The compose deployment, checked without Docker.

``docker-compose.yml`` is parsed, and its trainer and recommender services run as local
processes with the same commands (``python -m streamrec`` standing for the image's
``streamrec`` entry point) and the same environment (``environment:`` over the
``env_file:``), against a real Apache Kafka and PostgreSQL.  Substituted, as a host
without Docker needs: the service host names (``kafka:9092`` and the database URL's
host, credentials and database: the session's servers), the data volume (one temporary
directory, shared by the three processes as the ``checkpoints`` volume is), the topic
prefix (made unique), and ``--web-port`` (three processes on one host need three ports).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url

from streamrec.eval.synthetic import make_world
from streamrec.settings import Settings
from streamrec.stream.client import Client
from tests.databases import libpq

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ compose file
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR}`` against the environment."""

    def one(m: re.Match[str]) -> str:
        return os.environ.get(m.group(1)) or (m.group(3) or "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, value)


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as compose builds it: env files, then ``environment:``."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for f in [files] if isinstance(files, str) else files:
        env.update(_read_env_file(ROOT / _interpolate(f if isinstance(f, str) else f["path"])))
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(e.split("=", 1) for e in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


def test_compose_publishes_no_broker_or_database_port_and_keeps_credentials_out() -> None:
    services = compose()["services"]
    assert "ports" not in services["kafka"] and "ports" not in services["postgres"]
    assert any("kafka" in v for v in services["kafka"]["volumes"])  # a data volume
    text = COMPOSE.read_text()
    for name in ("trainer", "recommender", "postgres"):
        env = service_env(services[name])
        assert "env_file" in services[name]
        for secret in ("POSTGRES_PASSWORD", "STREAMREC_DATABASE_URL"):
            if secret in env:
                assert env[secret] not in text  # the value lives in the env file only
    for name in ("trainer", "recommender"):
        assert service_env(services[name])["STREAMREC_WEB_HOST"] == "0.0.0.0"


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    for cmd in (["docker-compose"], ["docker", "compose"]):
        if shutil.which(cmd[0]):
            probe = subprocess.run([*cmd, "version"], capture_output=True, text=True)
            if probe.returncode == 0:
                break
    else:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    done = subprocess.run([*cmd, "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == {"kafka", "postgres", "trainer", "recommender"}
    # the env file was found and read: the credentials reach the services
    assert rendered["services"]["trainer"]["environment"]["STREAMREC_DATABASE_URL"]


# ------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            body: bytes = r.read()
            return body
    except OSError:
        return None


def metric(port: int, name: str) -> float:
    body = get(port, "/metrics") or b""
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Process:
    """One compose service replica, run as a local process in its own process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.port = int(argv[argv.index("--web-port") + 1])
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamrec", *argv], env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log.read_text()}"
            body = get(self.port, "/health")
            if body is not None:
                health: dict[str, Any] = json.loads(body)
                return health
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not healthy in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM (a clean stop), SIGKILL after 30 s; the return code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture
def database(pg_base_url: str) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server (as the postgres service's)."""
    name = f"streamrec_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq(pg_base_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(libpq(pg_base_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def local_env(
    service: dict[str, Any], kafka: str, pg_base_url: str, database: str, data: Path, prefix: str
) -> dict[str, str]:
    env = service_env(service)
    assert env["STREAMREC_BOOTSTRAP"] == "kafka:9092"
    compose_db = make_url(env["STREAMREC_DATABASE_URL"])
    assert compose_db.host == "postgres"
    base = make_url(pg_base_url)
    env["STREAMREC_BOOTSTRAP"] = kafka
    env["STREAMREC_DATABASE_URL"] = compose_db.set(
        username=base.username, password=base.password, host=base.host, port=base.port,
        database=database, query=base.query,
    ).render_as_string(hide_password=False)  # fmt: skip
    env["STREAMREC_DATA_DIR"] = str(data)
    env["STREAMREC_TOPIC_PREFIX"] = f"{env['STREAMREC_TOPIC_PREFIX']}-{prefix}"
    keep = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    keep["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**keep, **env}


def local_argv(service: dict[str, Any]) -> list[str]:
    argv = [str(a) for a in service["command"]]
    argv[argv.index("--web-port") + 1] = str(free_port())
    return argv


def test_compose_topology_answers_from_two_recommender_processes(
    kafka_bootstrap: str, pg_base_url: str, database: str, tmp_path: Path
) -> None:
    services = compose()["services"]
    replicas = services["recommender"]["deploy"]["replicas"]
    assert replicas == 2
    data = tmp_path / "data"  # the shared checkpoints volume
    data.mkdir()
    prefix = uuid.uuid4().hex[:8]

    def env(name: str) -> dict[str, str]:
        return local_env(services[name], kafka_bootstrap, pg_base_url, database, data, prefix)

    procs: list[Process] = []
    try:
        # compose: the recommenders start once the trainer is healthy
        trainer = Process("trainer", local_argv(services["trainer"]), env("trainer"),
                          tmp_path / "trainer.log")  # fmt: skip
        procs.append(trainer)
        assert trainer.wait_healthy()["roles"] == ["trainer"]
        recommenders = [
            Process(
                f"recommender-{i}",
                local_argv(services["recommender"]),
                env("recommender"),
                tmp_path / f"recommender-{i}.log",
            )
            for i in range(replicas)
        ]
        procs += recommenders
        for r in recommenders:
            assert r.wait_healthy()["roles"] == ["recommender"]
        partitions = int(env("trainer")["STREAMREC_PARTITIONS"])
        settings = Settings.load(
            {"topic_prefix": env("trainer")["STREAMREC_TOPIC_PREFIX"], "partitions": partitions},
            environ={},
        )
        answered, personal = asyncio.run(_traffic(kafka_bootstrap, settings, recommenders))
        served = [metric(r.port, "streamrec_requests_total") for r in recommenders]
        print(f"{answered} answers: {served} per recommender process; {personal:.2f} in cluster")
        assert all(n > 0 for n in served), f"answers per recommender process: {served}"
        assert sum(served) >= answered
        # the planted preference: users' top items come from their favourite cluster
        assert personal >= 0.8
    finally:
        codes = [p.stop() for p in procs]
    assert codes == [0] * len(procs), [p.log.read_text()[-2000:] for p in procs]
    assert not any(p.group_alive() for p in procs)  # no orphan processes


async def _traffic(kafka: str, settings: Settings, recommenders: list[Any]) -> tuple[int, float]:
    """Onboard and click a planted world; ask until both recommenders have answered."""
    world = make_world()  # as the end-to-end tests: learnt from two passes of its events
    async with Client(kafka, settings=settings, timeout=30) as client:
        for item in world.items:
            await client.add_item(item, world.item_features(item), world.attributes(item),
                                  wait=False)  # fmt: skip
        for user in world.users:
            await client.add_user(user, world.user_features(user), wait=False)
        for _ in range(2):
            for user, item, kind in world.events:
                await client.track(user, item, kind, wait=False)
        await client.flush()
        answered = hits = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for user, fav in world.users.items():
                r = await client.recommend(user, 5)
                assert not r.error and not r.stale and len(r.items) == 5, r
                answered += 1
                hits += world.cluster_of(r.ids).count(fav)
            if all(metric(p.port, "streamrec_requests_total") > 0 for p in recommenders):
                break
        return answered, hits / (5 * answered)
