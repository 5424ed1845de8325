"""Learning one batch on several threads at once (Hogwild, as LightFM's ``num_threads``).

The batch's events are split by user (``user % threads``): each thread learns its users'
events in their order, so a user's rows and rings have one writer.  Feature rows that
several users or items share are written by the threads without locks, as LightFM
does; an update may then be lost to a concurrent one, which SGD tolerates.

What must not race is kept apart:

- **the rows the kernels mark** (the change log the replicas follow): each extra thread
  marks its own :class:`ChangeLog`, merged into the model's after the batch;
- **the random draws and counters**: each extra thread has its own generator (seeded
  from the model's) and statistics;
- **the popularity ring and decayed counts** (one ring position and one decay scale for
  all): :func:`kernels.learn_shared` writes them after the threads, in the batch's
  order, exactly as one thread does (``HP_SHARED_LATER``).  Meanwhile the threads add
  each positive to its item's count at the batch's scale, so the trend they learn
  against moves within the batch; those counts are then put back and rewritten.  (With
  the counts frozen for the batch, a 1,800-event world learned on two threads put 6 to
  8 items of a taste in a cold-start user's top 10, one thread 8 to 10.)

``learn_batch`` releases the GIL (``nogil``), so the threads run on as many cores.  The
result depends on how the threads interleave: learning on one thread stays the
reproducible path (the replay uses it).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from streamrec.model import kernels, vectors
from streamrec.model.dirty import ChangeLog, DirtyRows
from streamrec.model.state import ChangeMarks, KernelTables

#: Fewest events per thread worth a thread (below, a batch is learned on one thread).
MIN_EVENTS_PER_THREAD = 500

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool of ``workers`` learning threads (grown when asked for more)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamrec-learn")
        _pool_size = workers
    return _pool


def threads_for(n_events: int, threads: int) -> int:
    """How many threads a batch of ``n_events`` is learned on, at most ``threads``."""
    return max(1, min(threads, n_events // MIN_EVENTS_PER_THREAD))


class ThreadMarks:
    """The change logs of the extra threads, kept between batches (no allocation per batch)."""

    def __init__(self) -> None:
        self.logs: list[ChangeLog] = []

    def log(self, k: int) -> ChangeLog:
        while len(self.logs) <= k:
            self.logs.append(ChangeLog())
        return self.logs[k]


def _kernel_rows(log: ChangeLog) -> tuple[DirtyRows, ...]:
    """The dirty-row logs :func:`kernels.learn_batch` marks, in :class:`ChangeMarks` order."""
    return (log.user_features, log.item_features, log.trained_items, log.context, log.users,
            log.items, log.ring)  # fmt: skip


def merge_marks(into: ChangeLog, extra: ChangeLog) -> None:
    """Mark in ``into`` every row ``extra`` marked, and clear ``extra``: O(rows marked)."""
    for target, source in zip(_kernel_rows(into), _kernel_rows(extra), strict=True):
        rows = source.take(ordered=False)
        if len(rows):
            target.mark_many(rows)


def marks_like(log: ChangeLog, sizes: ChangeMarks) -> ChangeMarks:
    """The kernel view of ``log``, with room for the tables ``sizes`` is sized to."""
    return ChangeMarks(*(rows.marks(view.flags.shape[0])
                         for rows, view in zip(_kernel_rows(log), sizes, strict=True)))  # fmt: skip


def learn_split(
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    *,
    threads: int,
    tables: KernelTables,
    n_items: int,
    hp: np.ndarray,
    rng: np.ndarray,
    stats: np.ndarray,
    changes: ChangeLog,
    marks: ChangeMarks,
    thread_marks: ThreadMarks,
) -> list[int]:
    """Learn the events on ``threads`` threads (the caller's among them); the indices of
    the events the kernel refused (their update would have written a non-finite value),
    ascending.  Every other event is learned."""
    parts = [np.flatnonzero(users % threads == k) for k in range(threads)]
    counts = tables.popularity.trend.copy()  # the threads' provisional counts are undone
    hp_split = hp.copy()
    hp_split[kernels.HP_SHARED_LATER] = 1.0
    jobs: list[Future[list[int]]] = []
    extra_stats = [np.zeros_like(stats) for _ in range(threads - 1)]
    pool = _executor(threads - 1)
    for k in range(1, threads):
        part = parts[k]
        rng_k = np.array([vectors.seed_state(int(rng[0]) + k)], dtype=np.int64)
        marks_k = marks_like(thread_marks.log(k - 1), marks)
        jobs.append(pool.submit(learn_in_order, users[part], items[part], weights[part], rng_k,
                                tables, n_items, hp_split, extra_stats[k - 1], marks_k))  # fmt: skip
    try:
        mine = parts[0]
        refused = [int(mine[e]) for e in learn_in_order(users[mine], items[mine], weights[mine],
                   rng, tables, n_items, hp_split, stats, marks)]  # fmt: skip
    finally:  # (whatever happened here, no thread goes on writing once this returns)
        wait(jobs)
        for k in range(1, threads):  # every row a thread wrote is marked, even then
            merge_marks(changes, thread_marks.log(k - 1))
    for k, job in enumerate(jobs, start=1):
        refused += [int(parts[k][e]) for e in job.result()]
        stats += extra_stats[k - 1]
    refused.sort()
    flags = np.zeros(users.shape[0], dtype=np.uint8)
    flags[np.asarray(refused, dtype=np.intp)] = 1
    tables.popularity.trend[:] = counts
    kernels.learn_shared(items, weights, flags, tables.popularity, hp, marks)
    return refused


def learn_in_order(
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    rng: np.ndarray,
    tables: KernelTables,
    n_items: int,
    hp: np.ndarray,
    stats: np.ndarray,
    marks: ChangeMarks,
) -> list[int]:
    """Learn the events on this thread, in order, past any the kernel refuses (it stops
    at one: the events after it are learned by the next call); the refused indices."""
    refused: list[int] = []
    start = 0
    while start < users.shape[0]:
        status = int(kernels.learn_batch(users[start:], items[start:], weights[start:], rng,
                                         *tables, n_items, hp, stats, marks))  # fmt: skip
        if status < 0:
            break
        refused.append(start + status)
        start += status + 1
    return refused
