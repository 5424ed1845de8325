"""In-memory snapshot of item attributes for re-ranking, refreshed in the background.

Readers never wait: :attr:`ItemAttributeCache.snapshot` is an immutable mapping that a
background thread replaces whole (one reference assignment) when the store's
``attributes_version`` moves.  A refresh reads only the items changed since the
snapshot's version, so polling an unchanged store costs one indexed ``max()`` query.
A snapshot is two layers, the items changed lately over the rest: a refresh copies only
the first (a catalogue-sized copy on every refresh held the GIL for milliseconds five
times a second while items arrived), and folds it into the rest once it holds an
eighth of the catalogue.
If the database is unreachable the last snapshot stays in place and the error is kept
in :attr:`last_error`.

Filters are the request filter language (:mod:`streamrec.stream.filters`) over each
item's :meth:`~streamrec.store.records.ItemAttributes.view`: ``category``,
``available``, ``tags`` (list) and ``created_at`` (epoch seconds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from streamrec.errors import StoreError
from streamrec.store.feature_store import FeatureStore
from streamrec.store.records import ItemAttributes
from streamrec.stream.filters import Filter, parse_filters

log = logging.getLogger(__name__)
#: The changed-items layer is folded into the rest once it holds more than this many
#: items and an eighth of the rest.
FOLD_MIN = 1024


class Layered(Mapping[str, Any]):
    """An immutable mapping: ``top`` over ``base`` (neither is changed afterwards)."""

    __slots__ = ("_n", "base", "top")

    def __init__(self, top: Mapping[str, Any], base: Mapping[str, Any], n: int = -1) -> None:
        self.top, self.base = top, base
        self._n = n if n >= 0 else len(base) + sum(1 for k in top if k not in base)

    def __getitem__(self, key: str) -> Any:
        value = self.top.get(key, _MISSING)
        return self.base[key] if value is _MISSING else value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.top.get(key, _MISSING)
        return self.base.get(key, default) if value is _MISSING else value

    def __iter__(self) -> Iterator[str]:
        yield from self.top
        yield from (k for k in self.base if k not in self.top)

    def __len__(self) -> int:
        return self._n

    def layered(self, changed: Mapping[str, Any]) -> Layered:
        """A new mapping with ``changed`` on top (folded into the base when large)."""
        top = {**self.top, **changed}
        if len(top) > max(FOLD_MIN, len(self.base) // 8):
            return Layered({}, {**self.base, **top})
        new = sum(1 for k in changed if k not in self.top and k not in self.base)
        return Layered(top, self.base, self._n + new)


_MISSING = object()
_EMPTY = Layered({}, {})


class ItemAttributeCache:
    """``item_id -> ItemAttributes`` kept close to the store, polled every ``interval`` s.

    Use as a context manager, or call :meth:`start` / :meth:`stop`::

        with ItemAttributeCache(store) as cache:
            kept = cache.filter(candidates, {"category": "comedy", "tags": {"all": ["new"]}})
    """

    def __init__(self, store: FeatureStore, *, interval: float = 0.2) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.store = store
        self.interval = interval
        self.last_error: StoreError | None = None
        # the snapshot and its filter views, replaced together (one reference assignment)
        self._data: tuple[Layered, Layered] = (_EMPTY, _EMPTY)
        self._version = -1  # nothing loaded yet
        self._refresh_lock = threading.Lock()  # one refresher at a time; readers never take it
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- readers (never block) -------------------------------------------------

    @property
    def snapshot(self) -> Mapping[str, ItemAttributes]:
        """The current immutable snapshot; hold on to it for a consistent view."""
        return self._data[0]

    @property
    def version(self) -> int:
        """``attributes_version`` the snapshot reflects (-1 before the first load)."""
        return self._version

    def get(self, item_id: str) -> ItemAttributes | None:
        return self._data[0].get(item_id)

    def view(self, item_id: str) -> Mapping[str, Any] | None:
        """The item's attributes as filters see them (None if the store lacks the item)."""
        return self._data[1].get(item_id)

    def matches(self, item_id: str, filters: Mapping[str, Any] | Filter | None) -> bool:
        """Whether ``item_id`` passes ``filters`` (see :mod:`streamrec.stream.filters`).

        An item the store does not hold has no attributes: it passes only filters
        whose every condition is ``ne``.  A bad filter raises InvalidFilterError.
        """
        return parse_filters(filters).matches(self._data[1].get(item_id))

    def filter(
        self, item_ids: Iterable[str], filters: Mapping[str, Any] | Filter | None
    ) -> list[str]:
        """The ``item_ids`` that pass ``filters``, in order (filters parsed once)."""
        flt = parse_filters(filters)
        views = self._data[1]
        return [i for i in item_ids if flt.matches(views.get(i))]

    # -- refreshing --------------------------------------------------------------

    def refresh(self) -> bool:
        """Poll the store once; returns whether the snapshot was replaced."""
        with self._refresh_lock:
            since = self._version
            if since >= 0 and self.store.attributes_version() == since:
                return False
            version, changed = self.store.item_attributes(since=max(since, 0))
            if since >= 0 and version == since and not changed:
                return False
            old, old_views = self._data if since >= 0 else (_EMPTY, _EMPTY)
            views = {i: MappingProxyType(a.view()) for i, a in changed.items()}
            self._data = (old.layered(changed), old_views.layered(views))
            self._version = version
        with self._changed:
            self._changed.notify_all()
        return True

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Block until the snapshot reflects ``version`` (for tools and tests, not readers)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._version >= version, timeout)

    def start(self) -> ItemAttributeCache:
        """Load the first snapshot (synchronously, so readers start with data), then poll."""
        if self._thread is not None:
            return self
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="streamrec-item-attributes", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ItemAttributeCache:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
                self.last_error = None
            except StoreError as exc:
                if self.last_error is None:
                    log.warning("item attribute cache keeps its last snapshot: %s", exc)
                self.last_error = exc
