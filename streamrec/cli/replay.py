"""``streamrec replay``: a log through the broker, test-then-train, at a chosen speed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamrec.cli.common import load_settings, run, stream_options
from streamrec.cli.options import dataset_option
from streamrec.settings import Settings


@contextlib.asynccontextmanager
async def workers_for(settings: Settings, with_workers: bool) -> AsyncIterator[str]:
    """A bootstrap address, with in-process workers on fresh topics when asked."""
    from streamrec.stream.broker import broker, check_reachable, ensure_topics
    from streamrec.stream.client import resolve_bootstrap
    from streamrec.stream.topics import Topics
    from streamrec.workers import Stack

    if not with_workers:
        bootstrap = resolve_bootstrap(settings)
        await check_reachable(bootstrap)
        await ensure_topics(
            bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions)
        )
        yield bootstrap
        return
    async with broker(settings) as bootstrap:
        stack = Stack(settings, bootstrap, fresh=True, web=False)
        try:
            await stack.start()
            await stack.ready()
            yield bootstrap
        finally:
            await stack.stop()


@click.command()
@dataset_option("MovieLens 100K directory, or a .csv / .jsonl log.")
@click.option("--limit", type=int, default=None, help="Only the first N events.")
@click.option(
    "--speed",
    type=float,
    default=None,
    help="Events per second (default: as fast as the round trips allow).",
)
@click.option(
    "--score/--no-score",
    default=True,
    show_default=True,
    help="Request and score a recommendation before each test event (waits for it).",
)
@click.option(
    "--strict/--pipelined",
    default=True,
    show_default=True,
    help="Wait for each event's acknowledgement (exact stream order, slower).",
)
@click.option("--k", type=int, default=10, show_default=True)
@click.option("--burn-in", type=float, default=0.2, show_default=True)
@click.option("--compare", is_flag=True, help="Also run the in-process replay and compare.")
@click.option(
    "--with-workers/--external-workers",
    default=None,
    help="Run the workers in this process on fresh topics (default: yes with the "
    "embedded broker, no with --bootstrap).",
)
@stream_options
def replay(dataset: Path, limit: int | None, speed: float | None, score: bool, strict: bool, k: int,
           burn_in: float, compare: bool, with_workers: bool | None, **values: Any) -> None:  # fmt: skip
    """Replay a log through the broker (publish, train, request, response) and report HR@k."""
    from streamrec.eval.datasets import load_dataset

    if values.get("data_dir") is None and with_workers is not False:
        values["data_dir"] = Path(tempfile.mkdtemp(prefix="streamrec-replay-"))
    settings = load_settings(values)
    embedded = not settings.bootstrap
    workers = embedded if with_workers is None else with_workers
    if strict and workers and settings.reorder_ms == 0:
        # exact stream order in the trainer (see Settings.reorder_ms): 30 ms absorbs the
        # broker serving partitions in different fetches
        settings = dataclasses.replace(settings, reorder_ms=30)
    log = load_dataset(dataset)
    if limit is not None:
        log = log.head(limit)
    console = Console()

    async def main(stop: asyncio.Event) -> Any:
        from streamrec.eval.broker_replay import replay_log
        from streamrec.stream.client import Client

        async with workers_for(settings, workers) as bootstrap:  # noqa: SIM117
            async with Client(bootstrap, settings=settings, timeout=60) as client:
                with Progress(TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("events"), TimeElapsedColumn(), console=console,
                              transient=True) as bar:  # fmt: skip
                    task = bar.add_task("replay", total=len(log))
                    return await replay_log(
                        client, log, settings.model, k=k, burn_in=burn_in, score=score,
                        speed=speed, strict=strict, progress=lambda n: bar.update(task, completed=n),
                    )  # fmt: skip

    result = run(main)
    table = Table(title=f"{log.name} through the broker")
    table.add_column("figure")
    table.add_column("broker", justify="right")
    reference = None
    if compare and score:
        from streamrec.eval.prequential import replay as in_process

        reference = in_process(log, settings.model, k=k, burn_in=burn_in, baselines=()).metrics()[
            "model"
        ]
        table.add_column("in-process", justify="right")
    rows = [("events", f"{result.n_events}", ""),
            ("scored events", f"{result.n_scored}", ""),
            (f"HR@{k}", f"{result.hr:.4f}", f"{reference['hr']:.4f}" if reference else ""),
            (f"MRR@{k}", f"{result.mrr:.4f}", f"{reference['mrr']:.4f}" if reference else ""),
            (f"cold-user HR@{k}", f"{result.cold_hr:.4f}",
             f"{reference['cold_hr']:.4f}" if reference else ""),
            ("stale answers", f"{result.stale}", ""),
            ("seconds", f"{result.seconds:.1f}", ""),
            ("events / s", f"{result.events_per_second:,.0f}", "")]  # fmt: skip
    for name, broker_value, ref in rows:
        table.add_row(name, broker_value, *([ref] if reference else []))
    console.print(table)
