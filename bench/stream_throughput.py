"""Throughput of the streaming path on the embedded broker (kept apart from tests).

Publishes N synthetic interactions, measures how fast the trainer applies them, then
measures recommendation round trips.  Run: ``.venv/bin/python bench/stream_throughput.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

from streamrec.eval.synthetic import make_world
from streamrec.settings import Settings
from streamrec.stream.broker import broker
from streamrec.stream.client import Client
from streamrec.workers import Stack


async def main(n_events: int = 100_000, n_requests: int = 300) -> None:
    settings = Settings.load({"topic_prefix": "bench", "data_dir": tempfile.mkdtemp(),
                              "web_port": -1}, environ={})  # fmt: skip
    world = make_world(n_users=500, items_per_cluster=250, events_per_user=1)
    async with broker(settings) as bootstrap:
        stack = Stack(settings, bootstrap, fresh=True, web=False)
        await stack.start()
        await stack.ready()
        async with Client(bootstrap, settings=settings) as client:
            for item in world.items:
                await client.add_item(
                    item, world.item_features(item), world.attributes(item), wait=False
                )
            for user in world.users:
                await client.add_user(user, world.user_features(user), wait=False)
            await client.recommend("user-000", 10)  # warm-up (numba compilation)
            events = world.events
            t0 = time.perf_counter()
            for n in range(n_events):
                user, item, kind = events[n % len(events)]
                await client.track(user, item, kind, wait=False)
            await client.flush()
            published = time.perf_counter() - t0
            assert await stack.state.wait_for(client.watermarks(), 300)
            applied = time.perf_counter() - t0
            print(f"published {n_events} events in {published:.2f} s "
                  f"({n_events / published:,.0f}/s); trained all after {applied:.2f} s "
                  f"({n_events / applied:,.0f}/s end to end)")  # fmt: skip
            lat = []
            for n in range(n_requests):
                t = time.perf_counter()
                await client.recommend(f"user-{n % 500:03d}", 10)
                lat.append((time.perf_counter() - t) * 1000)
            lat.sort()
            print(f"recommend round trip: median {statistics.median(lat):.1f} ms, "
                  f"p95 {lat[int(0.95 * len(lat))]:.1f} ms over {n_requests} requests")  # fmt: skip
        await stack.stop()


if __name__ == "__main__":
    asyncio.run(main(*(int(a) for a in sys.argv[1:])))
