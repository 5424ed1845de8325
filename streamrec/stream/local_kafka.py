"""A real single-node Apache Kafka (KRaft, combined broker + controller) from the official jars.

No Docker: Maven resolves ``org.apache.kafka:kafka_2.13:<version>`` from Maven Central
(``kafka-pom.xml``, shipped next to this module) into a cache outside the repository,
``$STREAMREC_KAFKA_CACHE`` or ``~/.cache/streamrec``, as ``kafka-<version>/libs``.  Then
``kafka.tools.StorageTool format`` and ``kafka.Kafka server.properties`` run with a small
heap on free loopback ports, the data in a temporary directory (removed at stop).

The broker process dies with the process that started it (``PR_SET_PDEATHSIG`` on Linux;
the signal fires when the *thread* that started it exits, so start it from a long-lived
thread, as ``asyncio.run`` and the CLI do).  Needs ``java`` (17+) and, for the first
start of a version, ``mvn`` and Maven Central.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import importlib.resources
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from streamrec.errors import BrokerError
from streamrec.stream.broker import free_port

log = logging.getLogger(__name__)

#: The version docker-compose.yml deploys (image apache/kafka:3.8.0).
KAFKA_VERSION = "3.8.0"
CACHE_ENV = "STREAMREC_KAFKA_CACHE"
POM = "kafka-pom.xml"
_COMPLETE = ".complete"

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


def cache_root() -> Path:
    """Where the jars are cached: ``$STREAMREC_KAFKA_CACHE`` or ``~/.cache/streamrec``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamrec"


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise BrokerError("a local Kafka needs Java 17+ (`java` not on PATH, JAVA_HOME unset)")
    return found


def kafka_libs(version: str = KAFKA_VERSION, timeout: float = 600.0) -> Path:
    """The directory of the broker's jars, downloaded with Maven on first use.

    Concurrent callers (parallel test sessions) wait on a lock file; a half-done download
    never counts as cached (it lands in a scratch directory renamed at the end).
    """
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _COMPLETE).exists():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise BrokerError(
                f"the Kafka {version} jars are not cached in {libs} and `mvn` is not on PATH "
                f"to fetch them from Maven Central (or set {CACHE_ENV} to a cache holding them)"
            )
        scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        pom = home / POM
        pom.write_bytes(importlib.resources.files("streamrec.stream").joinpath(POM).read_bytes())
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-Dkafka.version={version}", f"-DoutputDirectory={scratch}"]  # fmt: skip
        log.info("fetching Kafka %s jars with Maven into %s", version, libs)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise BrokerError(f"Maven could not fetch the Kafka {version} jars: {exc}") from exc
        if done.returncode != 0 or not any(scratch.glob("kafka_2.13-*.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
            raise BrokerError(
                f"Maven could not fetch the Kafka {version} jars (exit {done.returncode}):\n"
                + "\n".join(tail)
            )
        (scratch / _COMPLETE).touch()
        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
    return libs


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


def cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, as ``kafka-storage random-uuid``).

    Like Kafka's ``Uuid.randomUuid`` it never starts with ``-``: the storage
    tool's argument parser would read such an id as an option (about 1 start in 64).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class LocalKafka:
    """One Apache Kafka broker process (KRaft combined mode) on ``127.0.0.1``."""

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        data_dir: Path | None = None,
    ) -> None:
        self.version = version
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.heap = heap
        self._own_dir = data_dir is None
        self.dir = data_dir or Path(tempfile.mkdtemp(prefix="streamrec-kafka-"))
        self.log_file = self.dir / "kafka.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def server_properties(self) -> str:
        p, c = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{c}",
            "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            # one node: every internal topic with one replica (and few partitions: the
            # coordinators load faster)
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # as the embedded broker: unknown topics are created on first use
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": "8388608",  # as docker-compose.yml
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, libs: Path, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def format_storage(self, libs: Path) -> None:
        (self.dir / "server.properties").write_text(self.server_properties())
        (self.dir / "log4j.properties").write_text(_LOG4J)
        cmd = self._java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id(),
                         "-c", str(self.dir / "server.properties"))  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BrokerError(
                f"kafka StorageTool format failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )

    async def start(self, timeout: float = 60.0) -> str:
        """Fetch the jars if needed, format the storage, start the broker, wait until it answers."""
        import asyncio

        try:
            libs = await asyncio.to_thread(kafka_libs, self.version)
            await asyncio.to_thread(self.format_storage, libs)
            cmd = self._java(libs, "kafka.Kafka", str(self.dir / "server.properties"))
            with self.log_file.open("ab") as out:
                try:
                    self._proc = subprocess.Popen(
                        cmd,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=die_with_parent(),  # only a prctl: no locks taken
                        cwd=self.dir,
                    )
                except OSError as exc:
                    raise BrokerError(f"cannot start Kafka ({cmd[0]}): {exc}") from exc
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise
        log.info("Kafka %s ready on %s (data in %s)", self.version, self.bootstrap, self.dir)
        return self.bootstrap

    def log_tail(self, lines: int = 20) -> str:
        """The broker log's first errors, then its last ``lines`` lines."""
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if " ERROR " in line or " FATAL " in line][:5]
        tail = text[-lines:]
        return "\n".join([*(e for e in errors if e not in tail), *tail])

    async def _wait_ready(self, timeout: float) -> None:
        import asyncio

        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise BrokerError(
                    f"Kafka exited with code {code} at start-up; its log ends with:\n"
                    + self.log_tail()
                )
            try:  # the port first: aiokafka logs every refused connection as an error
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
            except OSError as exc:
                last = exc
                await asyncio.sleep(0.1)
                continue
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await asyncio.wait_for(admin.start(), 5)
                await asyncio.wait_for(admin.describe_cluster(), 5)
                return
            except Exception as exc:
                last = exc
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
            await asyncio.sleep(0.25)
        raise BrokerError(
            f"Kafka did not answer on {self.bootstrap} within {timeout:.0f} s (last error "
            f"{last!r}); its log ends with:\n" + self.log_tail()
        )

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (a clean controlled shutdown), SIGKILL after ``grace`` seconds."""
        import asyncio

        await asyncio.to_thread(self.stop_sync, grace)

    def stop_sync(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
