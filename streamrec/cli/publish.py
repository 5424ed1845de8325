"""``streamrec publish ...`` and ``streamrec recommend``: talk to a running deployment."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from streamrec.cli.common import load_settings, run, stream_options
from streamrec.errors import InvalidInputError
from streamrec.settings import Settings


def _pairs(values: tuple[str, ...], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in values:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"{what} expects name=value, got {pair!r}")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _client_call(settings: Settings, fn: Any) -> Any:
    async def main(stop: asyncio.Event) -> Any:
        from streamrec.stream.client import Client

        async with Client(settings=settings) as client:
            return await fn(client)

    return run(main)


@click.group()
def publish() -> None:
    """Publish events to a running streamrec (see `streamrec up`)."""


@publish.command("interaction")
@click.argument("user")
@click.argument("item")
@click.option("--type", "event_type", default="click", help="Event type (click, purchase, ...).")
@stream_options
def publish_interaction(user: str, item: str, event_type: str, **values: Any) -> None:
    """USER acted on ITEM."""
    md = _client_call(load_settings(values), lambda c: c.track(user, item, event_type))
    click.echo(f"published to {md.topic}[{md.partition}]@{md.offset}")


@publish.command("user")
@click.argument("user")
@click.option("-f", "--feature", "features", multiple=True, help="Feature name, e.g. age=3.")
@stream_options
def publish_user(user: str, features: tuple[str, ...], **values: Any) -> None:
    """Onboard USER (or replace its features)."""
    md = _client_call(load_settings(values), lambda c: c.add_user(user, list(features)))
    click.echo(f"published to {md.topic}[{md.partition}]@{md.offset}")


@publish.command("item")
@click.argument("item")
@click.option("-f", "--feature", "features", multiple=True, help="Feature name, e.g. genre=3.")
@click.option("-a", "--attr", "attrs", multiple=True,
              help="Attribute name=value for filters (JSON values: available=true).")  # fmt: skip
@stream_options
def publish_item(
    item: str, features: tuple[str, ...], attrs: tuple[str, ...], **values: Any
) -> None:
    """Onboard ITEM with features and attributes (or update them)."""
    attributes = _pairs(attrs, "--attr")
    md = _client_call(load_settings(values),
                      lambda c: c.add_item(item, list(features), attributes))  # fmt: skip
    click.echo(f"published to {md.topic}[{md.partition}]@{md.offset}")


@publish.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@stream_options
def publish_file(path: Path, **values: Any) -> None:
    """Publish every JSON message of a .jsonl file (each with its "kind") to its topic."""
    from streamrec.stream.codec import Rejected, decode
    from streamrec.stream.schemas import EntityEvent, Interaction

    async def send_all(client: Any) -> int:
        n = 0
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                msg = decode(line.encode(), Interaction | EntityEvent)
            except Rejected as exc:
                raise InvalidInputError(f"{path}:{lineno}: {exc.reason}") from None
            if isinstance(msg, Interaction):
                await client.send(await client.interactions_topic(), msg, msg.user)
            else:
                key = getattr(msg, "user", None) or getattr(msg, "item", None)
                await client.send(client.topics.entities, msg, key)
            n += 1
        await client.flush()
        return n

    n = _client_call(load_settings(values), send_all)
    click.echo(f"published {n} messages")


@click.command()
@click.argument("user", required=False)
@click.option("-k", type=int, default=10, show_default=True, help="How many items.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help='Attribute filter name=value (JSON: available=true, category=["a","b"]).',
)
@click.option(
    "-f", "--feature", "features", multiple=True, help="Inline user feature (cold start)."
)
@click.option("--diversity", type=float, default=None, help="MMR diversity weight in [0, 1].")
@click.option("--freshness", type=float, default=None, help="Score boost of new items.")
@click.option("--exact", is_flag=True, help="Score the whole catalogue (skip the index).")
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait.")
@stream_options
def recommend(
    user: str | None, k: int, filters: tuple[str, ...], features: tuple[str, ...],
    diversity: float | None, freshness: float | None, exact: bool, as_json: bool,
    timeout: float, **values: Any,
) -> None:  # fmt: skip
    """Ask a running streamrec for recommendations for USER (or anonymous --feature ones)."""
    settings = load_settings(values)
    recs = _client_call(settings, lambda c: c.recommend(
        user, k, filters=_pairs(filters, "--filter"), features=list(features) or None,
        diversity=diversity, freshness=freshness, exact=exact, timeout=timeout,
    ))  # fmt: skip
    if as_json:
        import dataclasses

        click.echo(json.dumps(dataclasses.asdict(recs), indent=2))
        if recs.error:
            raise SystemExit(1)  # the JSON above says why
        return
    table = Table(title=f"{user or 'anonymous'}: {recs.strategy} ({recs.retrieval}), "
                        f"model v{recs.model_version}, {recs.timing.get('total_ms', 0):.1f} ms")  # fmt: skip
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for n, (item, score) in enumerate(recs.items, 1):
        table.add_row(str(n), item, f"{score:.3f}")
    Console().print(table)
    if recs.error:
        raise click.ClickException(recs.error)
