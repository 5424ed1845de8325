"""``streamrec demo``: the whole system on embedded defaults, on a planted synthetic world."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from streamrec.eval.synthetic import World, make_world
from streamrec.settings import Settings

COLOURS = {"books": "cyan", "music": "magenta", "games": "green", "films": "yellow"}


def _table(title: str, recs: Any, world: World, new: frozenset[str] = frozenset()) -> Table:
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("cluster")
    table.add_column("score", justify="right")
    for n, (item, score) in enumerate(recs.items, 1):
        cluster = world.items.get(item, item.split("-")[0])
        colour = COLOURS.get(cluster, "white")
        mark = " [bold red]NEW[/]" if item in new else ""
        table.add_row(str(n), item + mark, f"[{colour}]{cluster}[/]", f"{score:.3f}")
    mix = Counter(world.items.get(i, i.split("-")[0]) for i in recs.ids)
    table.add_section()
    table.add_row("", f"[dim]{recs.strategy}, {recs.retrieval}", f"[dim]{dict(mix)}",
                  f"[dim]{recs.timing.get('total_ms', 0):.1f} ms")  # fmt: skip
    return table


async def _demo(console: Console, settings: Settings) -> None:
    from streamrec.cli.common import open_store
    from streamrec.store import EntityRecord
    from streamrec.stream.broker import broker
    from streamrec.stream.client import Client
    from streamrec.workers import Stack

    t_start = time.perf_counter()
    world = make_world(n_users=80, items_per_cluster=30, events_per_user=20)
    console.rule("[bold]streamrec demo")
    console.print(
        f"A planted world: {len(world.items)} items in clusters {', '.join(world.clusters)} "
        f"(feature topic=<cluster>), {len(world.users)} users who each like one cluster "
        "(feature likes=<cluster>) and click inside it 90% of the time."
    )
    async with broker(settings) as bootstrap, contextlib.AsyncExitStack() as scope:
        store = scope.enter_context(open_store(settings))
        stack = Stack(settings, bootstrap, fresh=True, store=store)
        console.print("starting the workers (the first run after an install compiles the "
                      "numba kernels: about 45 s; later runs load them from numba's cache)")  # fmt: skip
        await stack.start()
        await stack.ready()
        web = f"http://127.0.0.1:{stack.web.port}/metrics" if stack.web else "off"
        console.print(f"embedded broker [bold]{bootstrap}[/], topics {settings.topic_prefix}.*, "
                      f"trainer + indexer + recommender up, feature store {store.url}, "
                      f"metrics {web}")  # fmt: skip
        try:
            async with Client(bootstrap, settings=settings) as client:
                t0 = time.perf_counter()
                for item in world.items:
                    await client.add_item(item, world.item_features(item),
                                          world.attributes(item), wait=False)  # fmt: skip
                for user in world.users:
                    await client.add_user(user, world.user_features(user), wait=False)
                for user, item, kind in world.events:
                    await client.track(user, item, kind, wait=False)
                await client.flush()
                await stack.state.wait_for(client.watermarks(), 60)
                dt = time.perf_counter() - t0
                n = len(world.items) + len(world.users) + len(world.events)
                console.print(f"\n[bold]1.[/] streamed {n} events (onboarding + "
                              f"{len(world.events)} interactions) through Kafka and learned them "
                              f"in {dt:.2f} s")  # fmt: skip
                r = await client.recommend("user-001", 8)
                console.print(_table(f"user-001 likes {world.users['user-001']}", r, world))

                console.print("\n[bold]2.[/] a new user [bold]alice[/] signs up with the feature "
                              "likes=games and has never clicked anything")  # fmt: skip
                await client.add_user("alice", ["likes=games"])
                r = await client.recommend("alice", 8)
                console.print(_table("alice, cold start from her features", r, world))

                films = [i for i, c in world.items.items() if c == "films"][:6]
                console.print(f"\n[bold]3.[/] alice clicks {len(films)} films, twice each: "
                              f"{', '.join(films)}")  # fmt: skip
                for _ in range(2):
                    for item in films:
                        await client.track("alice", item, "click", wait=False)
                r = await client.recommend("alice", 8)
                console.print(_table("alice after her clicks (clicked items excluded)", r, world))

                console.print("\n[bold]4.[/] a new film arrives: films-premiere")
                t1 = time.perf_counter()
                await client.add_item("films-premiere", ["topic=films"],
                                      {"category": "films", "available": True})  # fmt: skip
                r = await client.recommend("alice", 8, freshness=1.0)
                dt = (time.perf_counter() - t1) * 1000
                console.print(_table(f"alice with a freshness boost (half-life 0.25 s), {dt:.0f} ms "
                                     "after the new item's event", r, world, frozenset({"films-premiere"})))  # fmt: skip

                console.print("\n[bold]5.[/] filters and diversity for user-002 "
                              f"(likes {world.users['user-002']})")  # fmt: skip
                r = await client.recommend("user-002", 6, filters={"category": "books",
                                                                   "available": True})  # fmt: skip
                console.print(_table("only available books", r, world))
                r = await client.recommend("user-002", 6, diversity=0.7)
                console.print(_table("MMR diversity 0.7", r, world))

                r = await client.recommend("alice", 8, filters={"available": True})
                gone = r.ids[0]
                console.print(f"\n[bold]6.[/] another service withdraws {gone} (alice's top "
                              "available pick) by writing available=false straight into the "
                              "feature store")  # fmt: skip
                t2 = time.perf_counter()
                await asyncio.to_thread(
                    store.upsert_entities, [EntityRecord("item", gone, None, {"available": False})]
                )
                while gone in r.ids and time.perf_counter() - t2 < 5:
                    r = await client.recommend("alice", 8, filters={"available": True})
                dt = (time.perf_counter() - t2) * 1000
                console.print(_table(f"alice, only available items, {dt:.0f} ms after the "
                                     "store write", r, world))  # fmt: skip

                await client._producer.send_and_wait(client.topics.interactions, b"{not json")
                await asyncio.sleep(0.5)
                stats = stack.indexer.stats() if stack.indexer else {}
                for _ in range(100):  # the store writes in the background
                    if stack.sink is None or not stack.sink.pending():
                        break
                    await asyncio.sleep(0.05)
                users, items = store.count("user"), store.count("item")
                dead = stack.metrics.get("trainer", "dead_letters_total")
                console.print(Panel(
                    f"index: {stats.get('size')} items, age {stats.get('age_s')} s, recall@10 vs "
                    f"exact {stats.get('recall_at_10')}, {stats.get('fresh')} fresh, "
                    f"{stats.get('builds')} builds\n"
                    f"a malformed message went to {settings.topic_prefix}.dead-letters "
                    f"(dead letters: {dead:.0f}); the workers kept serving\n"
                    f"feature store {store.url}: {users} users, {items} items\n"
                    f"total demo time {time.perf_counter() - t_start:.1f} s",
                    title="health",
                ))  # fmt: skip
        finally:
            await stack.stop()


@click.command()
@click.option("--web-port", type=int, default=0, show_default=True,
              help="Health/metrics port (0: any free port, -1: off).")  # fmt: skip
def demo(web_port: int) -> None:
    """Start everything on embedded defaults and show streaming recommendations live."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    settings = Settings.load({"data_dir": Path(tempfile.mkdtemp(prefix="streamrec-demo-")),
                              "topic_prefix": "demo", "web_port": web_port, "bootstrap": None,
                              "exact_below": 0, "index_rebuild_s": 2.0,
                              "freshness_half_life_s": 0.25})  # fmt: skip
    # embedded defaults whatever the environment says: Tansu and SQLite in the temp dir
    settings = Settings(**{**settings.__dict__, "bootstrap": None, "database_url": None})
    asyncio.run(_demo(Console(), settings))
