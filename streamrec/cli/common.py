"""Options shared by the streaming commands, and the asyncio runner with clean Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from streamrec.settings import Settings

if TYPE_CHECKING:
    from streamrec.store import FeatureStore

T = TypeVar("T")


def stream_options(f: Any) -> Any:
    """--bootstrap, --prefix, --partitions, --data-dir (each names its environment variable)."""
    opts = [
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Checkpoints and the embedded broker's address file. "
                          "[env STREAMREC_DATA_DIR; default ./data]"),
        click.option("--partitions", type=int, default=None,
                     help="Partitions of new topics. [env STREAMREC_PARTITIONS; default 3]"),
        click.option("--prefix", "topic_prefix", default=None,
                     help="Topic name prefix. [env STREAMREC_TOPIC_PREFIX; default streamrec]"),
        click.option("--bootstrap", default=None, metavar="HOST:PORT[,..]",
                     help="Kafka bootstrap servers; empty: the embedded broker. "
                          "[env STREAMREC_BOOTSTRAP]"),
        click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug)."),
    ]  # fmt: skip
    for opt in opts:
        f = opt(f)
    return f


def database_option(f: Any) -> Any:
    """--database-url: the feature store the workers use."""
    return click.option(
        "--database-url", "database_url", default=None, metavar="URL",
        help="SQLAlchemy URL of the feature store (migrated on start-up). "
             "[env STREAMREC_DATABASE_URL; default sqlite:///<data dir>/streamrec.db]",
    )(f)  # fmt: skip


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[FeatureStore]:
    """The feature store at ``settings.db_url``, migrated to the newest schema."""
    from streamrec.store import FeatureStore

    with FeatureStore.open(settings.db_url, upgrade=True) as store:
        yield store


#: Log lines: time, level, logger, message; a worker process adds its roles (:func:`label_logs`).
LOG_FORMAT = "%(asctime)s %(levelname)s {label}%(name)s: %(message)s"


def load_settings(values: dict[str, Any], **extra: Any) -> Settings:
    keys = ("data_dir", "partitions", "topic_prefix", "bootstrap", "database_url")
    overrides = {k: values.pop(k, None) for k in keys}
    overrides.update({k: v for k, v in extra.items() if v is not None})
    level = {0: logging.WARNING, 1: logging.INFO}.get(values.pop("verbose", 0), logging.DEBUG)
    logging.basicConfig(level=level, format=LOG_FORMAT.format(label=""))
    logging.getLogger("aiokafka").setLevel(max(level, logging.ERROR))
    return Settings.load(overrides)


def label_logs(label: str) -> None:
    """Name this process's roles in each of its log lines (``streamrec up`` writes the
    lines of all its processes to one file)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT.format(label=f"[{label}] ")))


def run(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop`` so it can shut down cleanly."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())
