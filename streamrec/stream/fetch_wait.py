"""A consumer's fetch wait raised when its fetches come back empty while records wait.

The embedded broker (Tansu's memory engine) stores every produced record batch as one
object and, for a fetch that has records to return, lists every batch object of the
partition first: about 0.44 ms of broker CPU per 1,000 batches on the project machine
(``bench/broker_fetch.py``; Apache Kafka stays flat).  A fetch that takes longer than its
``fetch_max_wait_ms`` is answered *empty*, and nothing ever removes a batch, so a consumer
waiting 10 ms (``fetch_wait_ms``, the request path's default) stops receiving anything
once a partition holds about 23,000 batches, and one waiting 100 ms at about 230,000.

:class:`FetchWaitGuard` sees that state (a partition's position behind its high watermark
and no record for ``patience_s``) and doubles the consumer's wait, up to ``cap_ms``, so the
consumer goes on at a higher latency instead of stopping.  On Apache Kafka a fetch never
comes back empty while records wait, so the guard never acts there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from streamrec.stream.kafka_clients import fetch_positions

log = logging.getLogger(__name__)


class FetchWaitGuard:
    """Call :meth:`after_poll` with each ``getmany`` result of ``consumer``."""

    def __init__(
        self, consumer: Any, what: str, cap_ms: int = 5000, patience_s: float = 1.0
    ) -> None:
        self.consumer = consumer
        self.what = what
        self.cap_ms = cap_ms
        self.patience_s = patience_s
        self.raised = 0  # how many times the wait was raised
        self._starving_since: float | None = None

    @property
    def wait_ms(self) -> int | None:
        """The consumer's fetch wait now (None before it started)."""
        fetcher = getattr(self.consumer, "_fetcher", None)
        return None if fetcher is None else int(fetcher._fetch_max_wait_ms)

    def after_poll(self, batch: Any) -> None:
        """Note one poll's result; raise the wait after ``patience_s`` of starving."""
        if batch or not self._behind():
            self._starving_since = None
            return
        now = time.monotonic()
        if self._starving_since is None:
            self._starving_since = now
            return
        if now - self._starving_since < self.patience_s:
            return
        self._starving_since = now
        wait = self.wait_ms
        if wait is None or wait >= self.cap_ms:
            return
        raised = min(self.cap_ms, max(2 * wait, 1))
        # aiokafka reads the wait from its fetcher for every fetch (no public setter)
        self.consumer._fetcher._fetch_max_wait_ms = raised
        self.raised += 1
        log.warning(
            "%s: fetches came back empty for %.1f s while records wait (the embedded "
            "broker lists every record batch of a partition per fetch, and answers empty "
            "past the fetch wait): fetch wait raised from %d to %d ms",
            self.what, self.patience_s, wait, raised,
        )  # fmt: skip

    def _behind(self) -> bool:
        """Whether an assigned partition (not paused) is behind its high watermark."""
        return any(
            f.position < f.highwater and not f.paused for f in fetch_positions(self.consumer)
        )
