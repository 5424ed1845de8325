"""``streamrec up`` and ``streamrec worker ...``: run the workers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import click
from rich.console import Console

from streamrec.cli.common import (
    database_option,
    label_logs,
    load_settings,
    open_store,
    run,
    stream_options,
)
from streamrec.cli.options import model_config, model_options, read_toml
from streamrec.cli.supervisor import (
    PROCESSES,
    Supervisor,
    child_ports,
    children,
    command_line_options,
)
from streamrec.settings import RUNTIMES, Settings


def worker_options(fresh_help: str) -> Any:
    """The options of every command that runs workers: broker, store, model, web, --fresh."""

    def decorate(f: Any) -> Any:
        f = click.option("--fresh", is_flag=True, help=fresh_help)(f)
        f = click.option(
            "--runtime", type=click.Choice(RUNTIMES), default=None,
            help="What drives the workers: a faust App (agents, timers, web views) or plain "
                 "asyncio loops. [env STREAMREC_RUNTIME; default faust]",
        )(f)  # fmt: skip
        f = click.option(
            "--web-port", type=int, default=None,
            help="Health/metrics port (0 any, -1 off). [env STREAMREC_WEB_PORT; default 6066]",
        )(f)  # fmt: skip
        return stream_options(database_option(model_options(f)))

    return decorate


def _settings(values: dict[str, Any], web_port: int | None) -> Settings:
    config_file, sets = values.pop("config_file"), values.pop("sets")
    flags = {k: values.pop(k) for k in ("seed", "l2", "bias_lr", "lr", "dim", "loss")}
    config = model_config(read_toml(config_file), flags, sets)
    runtime = values.pop("runtime", None)
    return load_settings(values, web_port=web_port, runtime=runtime, model=config)


@click.command()
@worker_options("Ignore the checkpoint: start from an empty model.")
@click.option(
    "--single-process", is_flag=True,
    help="Run every worker in this one process (the model shared, no deltas) instead of "
         "the trainer and the recommender in processes of their own.",
)  # fmt: skip
def up(web_port: int | None, fresh: bool, single_process: bool, **values: Any) -> None:
    """Run everything: the embedded broker (unless --bootstrap) and all workers. Ctrl-C stops.

    By default the trainer (with the indexer) and the recommender run as separate
    processes (streamrec worker), supervised and restarted if they die; the recommender
    serves a replica fed by the deltas topic.  /health and /metrics on --web-port
    gather theirs.  The feature
    store (--database-url) is migrated on start-up; the trainer writes onboarding and
    checkpoints to it, the recommender's filters read it.
    """
    options = command_line_options(click.get_current_context(), skip=("fresh", "web_port",
                                                                      "single_process"))  # fmt: skip
    settings = _settings(values, web_port)
    label_logs("up")
    console = Console()

    async def main(stop: asyncio.Event) -> None:
        from streamrec.stream.broker import broker
        from streamrec.stream.client import discovery_file

        async with broker(settings) as bootstrap:
            marker = discovery_file(settings)
            if settings.embedded_broker:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(bootstrap)
            try:
                if single_process:
                    await _one_process(settings, bootstrap, fresh, stop, console)
                else:
                    await _processes(settings, bootstrap, options, fresh, stop, console)
            finally:
                if settings.embedded_broker:
                    with contextlib.suppress(OSError):
                        marker.unlink()
        console.print("stopped cleanly")

    run(main)


def _banner(settings: Settings, bootstrap: str, store_url: str, web: str, how: str) -> str:
    return (
        f"[bold green]streamrec up[/]  broker {bootstrap} "
        f"({'embedded' if settings.embedded_broker else 'external'}), {settings.runtime} "
        f"runtime, {how}, topics {settings.topic_prefix}.*, store {store_url}, "
        f"health/metrics {web}\n"
        f"export STREAMREC_BOOTSTRAP={bootstrap}   # for other shells; Ctrl-C stops"
    )


async def _one_process(
    settings: Settings, bootstrap: str, fresh: bool, stop: asyncio.Event, console: Console
) -> None:
    from streamrec.workers import Stack
    from streamrec.workers.heap import freeze_startup_heap

    with open_store(settings) as store:
        stack = Stack(settings, bootstrap, fresh=fresh, store=store)
        try:
            await stack.start()
            await stack.ready()
            freeze_startup_heap()
            web = f"http://127.0.0.1:{stack.web.port}" if stack.web else "off"
            console.print(_banner(settings, bootstrap, store.url, web, "one process"))
            await stop.wait()
            console.print("stopping...")
        finally:
            await stack.stop()


async def _processes(
    settings: Settings,
    bootstrap: str,
    options: list[str],
    fresh: bool,
    stop: asyncio.Event,
    console: Console,
) -> None:
    from streamrec.workers.web import WebServer

    with open_store(settings) as store:  # migrated once, before the workers open it
        store_url = store.url
    kids = children(options, fresh, child_ports(settings.web_port, len(PROCESSES)))
    supervisor = Supervisor(kids)
    server = None
    if settings.web_port >= 0:
        server = WebServer(supervisor.metrics, supervisor.health, settings.web_port,
                           settings.web_host)  # fmt: skip
        await server.start()
    web = f"http://127.0.0.1:{server.port}" if server else "off"
    supervisor.start()
    pids = ", ".join(f"{c.role} pid {c.proc.pid}" for c in kids if c.proc is not None)
    console.print(_banner(settings, bootstrap, store_url, web, f"processes: {pids}"))
    try:
        await supervisor.run(stop)
        console.print("stopping...")
    finally:
        if server is not None:
            await server.stop()


@click.command()
@click.argument("roles", nargs=-1, required=True,
                type=click.Choice(["trainer", "indexer", "recommender"]))  # fmt: skip
@worker_options("Trainer: ignore the checkpoint.")
def worker(roles: tuple[str, ...], web_port: int | None, fresh: bool, **values: Any) -> None:
    """Run workers against a running broker: one or more ROLES in this process.

    A recommender or indexer outside the trainer's process serves a replica of the
    model fed by the deltas topic (bootstrapped from the trainer's checkpoint when the
    data directory is shared).  The indexer writes the Annoy index beside the
    checkpoints; recommenders without one in their process load it from there
    (memory-mapped).  The trainer and recommenders use the feature store
    (--database-url), migrated on start-up.  `streamrec worker trainer indexer`
    is the first process of `streamrec up`.
    """
    roles = tuple(dict.fromkeys(roles))
    settings = _settings(values, web_port)
    console = Console()
    label = "+".join(roles)
    label_logs(label)

    async def main(stop: asyncio.Event) -> None:
        from streamrec.stream.broker import check_reachable, ensure_topics
        from streamrec.stream.client import resolve_bootstrap
        from streamrec.stream.topics import Topics
        from streamrec.workers import Stack
        from streamrec.workers.heap import freeze_startup_heap

        bootstrap = resolve_bootstrap(settings)
        await check_reachable(bootstrap)
        await ensure_topics(
            bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions)
        )
        # the indexer alone serves no filters and writes nothing: it needs no store
        needs_store = roles != ("indexer",)
        with open_store(settings) if needs_store else contextlib.nullcontext() as store:
            stack = Stack(settings, bootstrap, roles=roles, fresh=fresh, store=store)
            try:
                await stack.start()
                await stack.ready()
                freeze_startup_heap()
                console.print(f"[bold green]{label}[/] running on {bootstrap} ({settings.runtime} "
                              f"runtime), topics {settings.topic_prefix}.*; Ctrl-C stops")  # fmt: skip
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 10.0)
                    if roles == ("indexer",) and stack.indexer is not None:
                        console.print(f"index: {stack.indexer.stats()}")
            finally:
                await stack.stop()
        console.print("stopped cleanly")

    run(main)
