"""``streamrec kafka``: a real single-node Apache Kafka in the foreground (no Docker)."""

from __future__ import annotations

import asyncio
import time

import click

from streamrec.cli.common import run
from streamrec.stream.local_kafka import KAFKA_VERSION


@click.command()
@click.option("--port", type=int, default=9092, help="Broker port on 127.0.0.1 (0: any free).")
@click.option("--controller-port", type=int, default=0, help="KRaft controller port (0: any free).")
@click.option("--version", "version", default=KAFKA_VERSION, help="Apache Kafka version.")
@click.option("--heap", default="512m", help="JVM heap (-Xmx).")
@click.option("--timeout", type=float, default=120.0, help="Seconds to wait for it to answer.")
def kafka(port: int, controller_port: int, version: str, heap: str, timeout: float) -> None:
    """Run Apache Kafka (KRaft, one node) from the official jars until Ctrl-C.

    The jars are fetched once with Maven from Maven Central into ~/.cache/streamrec
    (env STREAMREC_KAFKA_CACHE); the data lives in a temporary directory removed at exit. Point
    streamrec at it with STREAMREC_BOOTSTRAP=<the printed address>.
    """
    from streamrec.stream.local_kafka import LocalKafka

    broker = LocalKafka(version=version, port=port or None,
                        controller_port=controller_port or None, heap=heap)  # fmt: skip

    async def main(stop: asyncio.Event) -> None:
        t0 = time.monotonic()
        click.echo(f"starting Apache Kafka {version} (data in {broker.dir}) ...", err=True)
        await broker.start(timeout=timeout)
        click.echo(f"Kafka ready in {time.monotonic() - t0:.1f} s; Ctrl-C stops it", err=True)
        click.echo(broker.bootstrap)
        try:
            await stop.wait()
        finally:
            click.echo("stopping Kafka ...", err=True)
            await broker.stop()

    run(main)
