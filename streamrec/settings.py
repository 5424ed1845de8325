"""The one settings object, built in one place from defaults, environment and arguments.

Every runtime setting has a default that works on one machine (embedded broker, SQLite
under the data directory).  Environment variables (read only here, never at import
time) override defaults; explicit arguments override both.

==========================  ============================  ================================
setting                     environment variable          default
==========================  ============================  ================================
data_dir                    STREAMREC_DATA_DIR            ./data
bootstrap                   STREAMREC_BOOTSTRAP           (empty: start the embedded broker)
database_url                STREAMREC_DATABASE_URL        sqlite:///<data_dir>/streamrec.db
topic_prefix                STREAMREC_TOPIC_PREFIX        streamrec
partitions                  STREAMREC_PARTITIONS          3
fetch_wait_ms               STREAMREC_FETCH_WAIT_MS       10 (requests, responses: long-poll bound)
feed_fetch_wait_ms          STREAMREC_FEED_FETCH_WAIT_MS  100 (events, deltas: long-poll bound)
batch_max                   STREAMREC_BATCH_MAX           5000 (trainer records per batch)
learn_interval_ms           STREAMREC_LEARN_INTERVAL_MS   0 (caught up: fetch at most this often)
learn_threads               STREAMREC_LEARN_THREADS       1 (2: large batches on two threads)
reorder_ms                  STREAMREC_REORDER_MS          0 (trainer hold-back window)
delta_interval_ms           STREAMREC_DELTA_INTERVAL_MS   200
checkpoint_interval_s       STREAMREC_CHECKPOINT_INTERVAL_S  60 (0: only at stop)
deltas_rotate_mb            STREAMREC_DELTAS_ROTATE_MB    64 (0: never; deltas topic size)
index_rebuild_s             STREAMREC_INDEX_REBUILD_S     10
index_rebuild_changes       STREAMREC_INDEX_REBUILD_CHANGES  500 (items not indexed)
index_rebuild_growth        STREAMREC_INDEX_REBUILD_GROWTH  0.5 (events learned, relative)
index_trees                 STREAMREC_INDEX_TREES         15
index_candidates            STREAMREC_INDEX_CANDIDATES    200
exact_below                 STREAMREC_EXACT_BELOW         2000 (items; smaller: exact)
sync_timeout_ms             STREAMREC_SYNC_TIMEOUT_MS     5000
diversity                   STREAMREC_DIVERSITY           0.0 (MMR weight)
freshness                   STREAMREC_FRESHNESS           0.0 (boost, x score range)
freshness_half_life_s       STREAMREC_FRESHNESS_HALF_LIFE_S  3600
web_port                    STREAMREC_WEB_PORT            6066 (0: any free, -1: off)
web_host                    STREAMREC_WEB_HOST            127.0.0.1 (0.0.0.0 in containers)
runtime                     STREAMREC_RUNTIME             faust (or asyncio)
faust_requests              STREAMREC_FAUST_REQUESTS      fetch (or agent)
request_slots               STREAMREC_REQUEST_SLOTS       4 (embedded broker; 0: off)
event_period_s              STREAMREC_EVENT_PERIOD_S      30 (embedded broker; 0: off)
compression                 STREAMREC_COMPRESSION         zstd (events, requests, responses)
request_concurrency         STREAMREC_REQUEST_CONCURRENCY  1 (faust agent actors)
max_message_bytes           STREAMREC_MAX_MESSAGE_BYTES   1048576 (in: dead letter; out: split)
max_id_length               STREAMREC_MAX_ID_LENGTH       512 (characters, at most 512)
max_feature_name_length     STREAMREC_MAX_FEATURE_NAME_LENGTH  256 (at most 512)
max_features                STREAMREC_MAX_FEATURES        256 (per user or item)
max_feature_weight          STREAMREC_MAX_FEATURE_WEIGHT  1000 (abs., at most 10000)
max_attributes              STREAMREC_MAX_ATTRIBUTES      64 (per item event)
max_attribute_values        STREAMREC_MAX_ATTRIBUTE_VALUES  256 (elements of one list)
store_queue_max             STREAMREC_STORE_QUEUE_MAX     100000 (upserts; then backpressure)
health_max_lag              STREAMREC_HEALTH_MAX_LAG      100000 (records not yet learned)
health_max_store_backlog    STREAMREC_HEALTH_MAX_STORE_BACKLOG  50000 (upserts)
health_max_checkpoint_age_s STREAMREC_HEALTH_MAX_CHECKPOINT_AGE_S  0 (0: 3 x interval + 60)
health_max_replica_gap_s    STREAMREC_HEALTH_MAX_REPLICA_GAP_S  30 (waiting to resync)
max_in_flight               STREAMREC_MAX_IN_FLIGHT       64 (requests; above: overloaded)
index_search_k              STREAMREC_INDEX_SEARCH_K      3000 (-1: Annoy's, trees x n)
index_build                 STREAMREC_INDEX_BUILD         process (or thread)
index_build_nice            STREAMREC_INDEX_BUILD_NICE    10 (the build process's niceness)
index_fresh_keep_s          STREAMREC_INDEX_FRESH_KEEP_S  30 (new items stay fresh)
index_fresh_keep_max        STREAMREC_INDEX_FRESH_KEEP_MAX  2000 (at most, once indexed)
index_recall_interval_s     STREAMREC_INDEX_RECALL_INTERVAL_S  1.0 (recall sampling)
==========================  ============================  ================================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamrec.errors import ConfigError
from streamrec.model.config import MAX_FEATURE_WEIGHT, MAX_ID_LENGTH, MAX_NAME_LENGTH, ModelConfig

ENV_PREFIX = "STREAMREC_"
#: The worker runtimes (``streamrec.workers.runtime``).
RUNTIMES = ("faust", "asyncio")
#: How the faust runtime's recommenders read requests.
FAUST_REQUESTS = ("fetch", "agent")
#: Where the indexer builds the Annoy index.
INDEX_BUILDS = ("process", "thread")
#: Compression of the JSON messages producers send (events, requests, responses).
COMPRESSIONS = ("zstd", "gzip", "lz4", "snappy", "none")


@dataclass(frozen=True)
class Settings:
    """Runtime settings of every streamrec command and worker."""

    data_dir: Path = Path("data")
    #: Kafka bootstrap servers ("host:port,..."); None starts the embedded broker.
    bootstrap: str | None = None
    #: SQLAlchemy URL of the feature store; None means SQLite under ``data_dir``.
    database_url: str | None = None
    topic_prefix: str = "streamrec"
    partitions: int = 3
    #: Longest a fetch of requests (recommenders) or responses (the SDK) waits at the
    #: broker for data: the latency a request may gain per hop against idle polling (the
    #: embedded broker answers a waiting fetch up to half of it after data arrived).
    fetch_wait_ms: int = 10
    #: The same for the trainer's events and the replicas' deltas: each idle consumer
    #: fetches 1000 / this many times a second (an idle ``streamrec up`` kept the
    #: embedded broker at 14% of a core with these at 10 ms, 5% at 100 ms), for up to
    #: about half of it added to the learning and replica lag.
    feed_fetch_wait_ms: int = 100
    #: Most records the trainer decodes and learns per batch.
    batch_max: int = 5000
    #: Once the trainer has caught up (a fetch brought fewer than ``batch_max`` records),
    #: its next fetch waits until this long after the last one, so that it learns in
    #: batches rather than a few records at a time (0: fetch again at once).  On the
    #: embedded broker every fetch that returns records lists all the record batches of
    #: each partition it reads, and the events topic keeps every batch: at 10,000 clicks/s
    #: fetching as they came cost the broker a growing share of a core.  It adds up to
    #: this much to the learning lag, and so to every consistent request's wait (a
    #: broker replay asks one at a time): off by default.
    learn_interval_ms: int = 0
    #: Threads the trainer learns a large batch on (Hogwild, split by user; a batch of
    #: fewer than 500 interactions per thread is learned on one): behind a backlog the
    #: learning uses that many cores, at some cost in quality where few feature rows
    #: are shared by many (docs/model.md).  1 learns exactly as the replay does.
    learn_threads: int = 1
    #: The trainer holds each record this long and applies held records in producer-time
    #: order, so records delayed on other partitions by less than this still land in
    #: order (0: apply each fetched batch at once, merged by producer time).
    reorder_ms: int = 0
    #: How often the trainer publishes coalesced embedding deltas.
    delta_interval_ms: int = 200
    #: How often the trainer writes a checkpoint (0: only when it stops).
    checkpoint_interval_s: float = 60.0
    #: Once the trainer has published this many MB of deltas on the deltas topic, it
    #: writes a checkpoint and recreates the topic empty (0: never).  The embedded broker
    #: keeps every record in memory and has no retention: this bounds what it holds.
    deltas_rotate_mb: float = 64.0
    #: Annoy index: rebuild period, and rebuild early once this many items of the fresh
    #: buffer are not in the index (those kept fresh after a build that holds them do
    #: not count).
    index_rebuild_s: float = 10.0
    index_rebuild_changes: int = 500
    #: Rebuild early once the model has learned this share more events than it had when
    #: the last build read it (and at least 10,000): a young model moves fast, and an
    #: index built after 100,000 clicks kept a served recall@10 of 0.950 for 50,000 more
    #: and fell to 0.80 after 400,000, ten seconds of a bulk ingest (0: off;
    #: ``bench/ann_tradeoff.py``, docs/benchmarks.md).
    index_rebuild_growth: float = 0.5
    #: Annoy trees and per-query node budget (``index_search_k`` below): at 100,000
    #: items 15 trees and 3,000 nodes gave recall@10 0.981 for 384 us of served retrieval
    #: per request, 20 trees and Annoy's default budget (4,000) 0.991 for 469 us, and a
    #: rebuild 1.54 CPU s against 1.98 (``bench/ann_tradeoff.py``, docs/benchmarks.md).
    index_trees: int = 15
    #: Annoy candidates per request before exact re-scoring.
    index_candidates: int = 200
    #: Catalogues smaller than this are scored exactly (faster than the index there).
    exact_below: int = 2000
    #: How long a request waits for the model to reach its ``after`` watermarks.
    sync_timeout_ms: int = 5000
    #: Re-ranking defaults (requests may override): MMR diversity weight in [0, 1] and
    #: freshness boost added to the score of an item created ``t`` seconds ago as
    #: ``freshness * range * 2 ** (-t / freshness_half_life_s)``, where ``range`` is the
    #: spread of the candidates' scores (so 1.0 lifts a brand-new item to the top).
    diversity: float = 0.0
    freshness: float = 0.0
    freshness_half_life_s: float = 3600.0
    #: Port of the health / Prometheus metrics web server (0: any free port, -1: off).
    web_port: int = 6066
    #: Interface of that server: loopback by default; ``0.0.0.0`` in a container, so the
    #: health checks and metrics scrapers outside it reach it.
    web_host: str = "127.0.0.1"
    #: What drives the workers: ``faust`` (a faust App: agents, tasks, timers, web views)
    #: or ``asyncio`` (plain aiokafka loops, kept for comparison).
    runtime: str = "faust"
    #: faust runtime, how recommenders read requests: ``fetch`` (a faust task with
    #: aiokafka batch fetches in the ``<prefix>.recommender`` consumer group) or ``agent``
    #: (a faust agent in the app's consumer group, ``stream.take_events`` batches).
    faust_requests: str = "fetch"
    #: On the embedded broker, the request path's ring of topic pairs, each current for
    #: ``SLOT_S`` (4) seconds and recycled in turn (``stream/topics.py``): 0 or at least
    #: 3.  0 keeps the plain request and response topics only, whose fetches cost more
    #: with every request answered there.  Not used with ``faust_requests=agent`` (the
    #: agent reads the plain topic) nor on a Kafka cluster (use its retention).
    request_slots: int = 4
    #: On the embedded broker, interactions go to a topic per period of this many
    #: seconds, each deleted once the trainer has learned it and checkpointed it
    #: (``stream/topics.py``, ``Trainer.maintain_event_topics``), so the broker holds
    #: a few minutes of events, not all of them.  0 keeps the plain interactions topic
    #: only.  The SDK takes the length from the topics' names, not from this.  Not used
    #: on a Kafka cluster (its retention).
    event_period_s: int = 30
    #: Compression of the batches the SDK and the recommenders produce (JSON events,
    #: requests, responses; deltas are float tables and travel uncompressed): ``zstd``
    #: (12x on click events at 0.2 us each), ``gzip``, ``lz4``, ``snappy`` or ``none``.
    #: The embedded broker keeps batches as they arrive, so this divides what it holds.
    compression: str = "zstd"
    #: faust runtime with ``faust_requests=agent``: concurrent actors of the recommender
    #: agent in one process (a request waiting for the model holds one actor).
    request_concurrency: int = 1
    #: The largest message, in bytes: a consumed message above it is dead-lettered with
    #: the reason (edge validation of the trainer's topics and of requests), and deltas
    #: are split to half of it.  A dead letter carries its original in base64 (up to
    #: about 1.4 times this): the broker's ``message.max.bytes`` (8 MiB in compose and
    #: the test Kafka; Kafka's default 1048588) should allow that, or letters of the
    #: largest originals are sent with the original cut to 64 KiB.
    max_message_bytes: int = 1_048_576
    #: Longest user / item id (characters; the store's column holds 512).  Ids and feature
    #: names never hold control characters (NUL, newline...).
    max_id_length: int = MAX_ID_LENGTH
    #: Longest feature name (characters; the store's column holds 512).
    max_feature_name_length: int = 256
    #: Most features of one user or item (the model pads every entity's feature list to
    #: the longest one, so this bounds its memory).
    max_features: int = 256
    #: Largest feature weight, in absolute value (the model takes at most 1e4: beyond,
    #: WARP scores overflow).
    max_feature_weight: float = 1000.0
    #: Most attributes of one item event, and most elements of one list attribute.
    max_attributes: int = 64
    max_attribute_values: int = 256
    #: Feature-store upserts the trainer may have queued; beyond, it stops fetching until
    #: the store catches up (backpressure during a database outage).
    store_queue_max: int = 100_000
    #: /health answers 503 (degraded) above these: records in the trainer's input topics
    #: not learned yet, entity upserts not yet in the feature store, age of the last
    #: checkpoint (0: three checkpoint intervals plus a minute; none when checkpoints are
    #: off), and seconds a replica has waited for a checkpoint to resync from.
    health_max_lag: int = 100_000
    health_max_store_backlog: int = 50_000
    health_max_checkpoint_age_s: float = 0.0
    health_max_replica_gap_s: float = 30.0
    #: Requests one recommender holds at once (waiting for their ``after`` watermarks or
    #: being computed); a request above the bound is answered ``overloaded`` at once.
    max_in_flight: int = 64
    #: Annoy's per-query node budget (-1: Annoy's default, ``index_candidates x trees``).
    index_search_k: int = 3000
    #: Where the indexer builds: ``process`` (a child process: no serving interpreter
    #: spends time on it) or ``thread`` (a thread of the indexer's process).
    index_build: str = "process"
    #: How much lower the build process's scheduling priority is (``nice``, 0 to 19): the
    #: build takes the CPU time serving and learning leave idle instead of competing
    #: with them for it (``thread`` builds run at the indexer's priority).
    index_build_nice: int = 10
    #: An item stays in the fresh buffer (searched by its current representation) at
    #: least this long after it was created or re-featured, even once an index holds it:
    #: new items move most while they collect their first events.
    index_fresh_keep_s: float = 30.0
    #: At most this many of them (the most recently changed) stay fresh once an index
    #: holds them: every check re-embeds each fresh item, so a bulk catalogue or a heavy
    #: churn must not make it O(catalogue).  Items no index holds yet always stay.
    index_fresh_keep_max: int = 2000
    #: How often index workers measure recall@10 of served retrieval (4 sampled users
    #: against exact search, O(catalogue) each, one every quarter of the interval; the
    #: ``index_recall_at_10`` gauge).
    index_recall_interval_s: float = 1.0
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"partitions={self.partitions!r} must be >= 1")
        if self.index_search_k < 1 and self.index_search_k != -1:
            raise ConfigError(f"index_search_k={self.index_search_k!r} must be >= 1, or -1")
        for name in ("deltas_rotate_mb", "learn_interval_ms", "index_rebuild_growth"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be >= 0")
        if not 0.0 <= self.diversity <= 1.0:
            raise ConfigError(f"diversity={self.diversity!r} must be in [0, 1]")
        for name in ("fetch_wait_ms", "feed_fetch_wait_ms", "batch_max", "learn_threads",
                     "delta_interval_ms",
                     "index_trees", "index_candidates", "sync_timeout_ms", "request_concurrency",
                     "max_in_flight", "max_message_bytes", "max_features", "max_attributes",
                     "max_attribute_values", "store_queue_max"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be >= 1")
        for name, cap in (("max_id_length", MAX_ID_LENGTH),
                          ("max_feature_name_length", MAX_NAME_LENGTH)):  # fmt: skip
            if not 1 <= getattr(self, name) <= cap:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be in [1, {cap}]")
        if not 0.0 < self.max_feature_weight <= MAX_FEATURE_WEIGHT:
            raise ConfigError(f"max_feature_weight={self.max_feature_weight!r} must be in "
                              f"(0, {MAX_FEATURE_WEIGHT:g}] (larger weights break the model)")  # fmt: skip
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"runtime={self.runtime!r} must be one of {', '.join(RUNTIMES)}")
        if not 0 <= self.index_build_nice <= 19:
            raise ConfigError(f"index_build_nice={self.index_build_nice!r} must be in [0, 19]")
        if self.index_build not in INDEX_BUILDS:
            raise ConfigError(f"index_build={self.index_build!r} must be one of "
                              f"{', '.join(INDEX_BUILDS)}")  # fmt: skip
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression={self.compression!r} must be one of "
                              f"{', '.join(COMPRESSIONS)}")  # fmt: skip
        if self.faust_requests not in FAUST_REQUESTS:
            raise ConfigError(f"faust_requests={self.faust_requests!r} must be one of "
                              f"{', '.join(FAUST_REQUESTS)}")  # fmt: skip
        if self.request_slots < 0 or self.request_slots in (1, 2):
            raise ConfigError(f"request_slots={self.request_slots!r} must be 0 or >= 3 (a "
                              "slot is recycled while the one before it is current)")  # fmt: skip
        if self.event_period_s < 0:
            raise ConfigError(f"event_period_s={self.event_period_s!r} must be >= 0 (0: off)")
        if not self.topic_prefix or any(c.isspace() for c in self.topic_prefix):
            raise ConfigError(f"topic_prefix={self.topic_prefix!r} must be a non-empty word")

    @property
    def embedded_request_slots(self) -> int:
        """The request slots ``streamrec up`` makes on the embedded broker: none for the
        faust agent, which reads the plain request topic."""
        agent = self.runtime == "faust" and self.faust_requests == "agent"
        return 0 if agent else self.request_slots

    @property
    def db_url(self) -> str:
        """The effective database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'streamrec.db').resolve()}"

    @property
    def compression_type(self) -> str | None:
        """``compression`` as aiokafka's producers take it (None: uncompressed)."""
        return None if self.compression == "none" else self.compression

    @property
    def embedded_broker(self) -> bool:
        return not self.bootstrap

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Defaults, then ``STREAMREC_*`` variables, then non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "model":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw)
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)


def _coerce(name: str, raw: str) -> Any:
    default = {f.name: f.default for f in dataclasses.fields(Settings)}.get(name)
    for kind in (int, float):
        if isinstance(default, kind) and not isinstance(default, bool):
            try:
                return kind(raw)
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}{name.upper()}={raw!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None
    return raw
