"""SDK publishing rate: ``track`` (one send per event) against ``track_many`` (batches).

Embedded broker, one process; ``--rounds`` rounds of ``--track`` ``track`` calls
(``wait=False``, then one flush) and ``--many`` events through ``track_many``, into
event-period topics (``--event-period-s``, 0: the plain topic).
Run: ``.venv/bin/python bench/publish.py [--event-period-s 0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from streamrec.settings import Settings
from streamrec.stream.broker import broker
from streamrec.stream.client import Client


def _events(n: int) -> list[tuple[str, str]]:
    return [(f"u{i % 1000}", f"i{i % 5000}") for i in range(n)]


async def main(args: argparse.Namespace) -> None:
    settings = Settings.load({"topic_prefix": "pub", "data_dir": tempfile.mkdtemp(),
                              "event_period_s": args.event_period_s}, environ={})  # fmt: skip
    async with broker(settings) as bootstrap, Client(bootstrap, settings=settings) as client:
        await client.track_many(_events(2000), wait=True)  # warm-up: metadata, connections
        for _ in range(args.rounds):
            one, many = _events(args.track), _events(args.many)
            wall, cpu = time.perf_counter(), time.process_time()
            for user, item in one:
                await client.track(user, item, wait=False)
            await client.flush()
            t_one = (time.perf_counter() - wall, time.process_time() - cpu)
            wall, cpu = time.perf_counter(), time.process_time()
            await client.track_many(many, wait=True)
            t_many = (time.perf_counter() - wall, time.process_time() - cpu)
            print(f"track: {len(one) / t_one[0]:,.0f}/s wall, {len(one) / t_one[1]:,.0f}/s CPU; "
                  f"track_many: {len(many) / t_many[0]:,.0f}/s wall, "
                  f"{len(many) / t_many[1]:,.0f}/s CPU")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--track", type=int, default=20_000)
    parser.add_argument("--many", type=int, default=200_000)
    parser.add_argument("--event-period-s", type=int, default=Settings().event_period_s,
                        help="the embedded broker's event periods (0: the plain topic)")  # fmt: skip
    asyncio.run(main(parser.parse_args()))
