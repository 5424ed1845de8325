"""Versioned JSON message schemas (msgspec), one tagged union per topic.

Every message carries ``kind`` (its tag) and ``v`` (schema version).  Readers accept
unknown fields (forward compatible) but reject unknown kinds and versions newer than
:data:`SCHEMA_VERSION`; the edge codec turns any rejection into a dead letter.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

SCHEMA_VERSION = 1

#: Hard bounds every worker shares (the model's, ``streamrec.model.config``: ids and names
#: as long as the store's columns, weights the WARP kernel takes, features per entity);
#: the configured, usually lower limits are :mod:`streamrec.stream.limits`'.
MAX_ID_LENGTH = 512
MAX_NAME_LENGTH = 512
MAX_FEATURE_WEIGHT = 1e4
MAX_FEATURES = 10_000

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Weight = Annotated[float, Meta(ge=-MAX_FEATURE_WEIGHT, le=MAX_FEATURE_WEIGHT)]
#: Features as names (``["genre=comedy"]``, weight 1 each) or ``{name: weight}``.
Features = (
    Annotated[list[Name], Meta(max_length=MAX_FEATURES)]
    | Annotated[dict[Name, Weight], Meta(max_length=MAX_FEATURES)]
    | None
)
Scalar = str | int | float | bool | None
#: Item attributes: scalars, or lists of strings (``"tags": ["family", "new"]``).
Attributes = dict[Name, Scalar | list[str]]


class Message(Struct, kw_only=True, omit_defaults=True):
    """Common header: schema version and producer time (seconds since the epoch)."""

    v: int = SCHEMA_VERSION
    ts: float = 0.0


# ------------------------------------------------------------------ interactions
class Interaction(Message, tag="interaction", tag_field="kind"):
    """A user acted on an item: ``type`` is a configured event type (click, purchase...)."""

    user: Id
    item: Id
    type: Annotated[str, Meta(min_length=1, max_length=64)] = "click"


# ---------------------------------------------------------------------- entities
class _UserFields(Message):
    user: Id
    features: Features = None


class _ItemFields(Message):
    item: Id
    features: Features = None
    attributes: Attributes = {}


class NewUser(_UserFields, tag="new_user", tag_field="kind"):
    """Onboard a user; its features build its cold-start vector."""


class NewItem(_ItemFields, tag="new_item", tag_field="kind"):
    """Onboard an item; ``attributes`` (category, available...) serve request filters."""


class UserUpdate(_UserFields, tag="user_update", tag_field="kind"):
    """Replace a user's features."""


class ItemUpdate(_ItemFields, tag="item_update", tag_field="kind"):
    """Replace an item's features (when given) and merge its attributes."""


EntityEvent = NewUser | NewItem | UserUpdate | ItemUpdate
TrainerInput = Interaction | NewUser | NewItem | UserUpdate | ItemUpdate


# ---------------------------------------------------------- requests / responses
class Watermark(Struct, frozen=True):
    """A record the answer must reflect: the model must have applied ``offset`` of it."""

    topic: str
    partition: int
    offset: int


class RecRequest(Message, tag="rec_request", tag_field="kind"):
    """Ask for ``k`` items for ``user`` (or for anonymous ``features``).

    ``after`` lists records (usually the client's own writes) the serving model must
    include before answering.  ``diversity`` (MMR weight in [0, 1]) and ``freshness``
    (boost for new items, in units of the candidates' score range) override the recommender's defaults; ``exact`` skips
    the approximate index.  ``deadline`` (Unix seconds, set by the SDK from its timeout)
    is when the caller stops waiting: a request read after it is dropped, not computed.
    """

    request_id: Annotated[str, Meta(min_length=1, max_length=128)]
    user: str | None = None
    k: Annotated[int, Meta(ge=1, le=1000)] = 10
    filters: dict[str, Any] = {}
    features: Features = None
    exclude: list[str] = []
    after: list[Watermark] = []
    exact: bool = False
    diversity: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    freshness: Annotated[float, Meta(ge=0.0)] | None = None
    deadline: Annotated[float, Meta(ge=0.0)] | None = None


class ScoredItem(Struct, frozen=True):
    item: str
    score: float


class Timing(Struct, omit_defaults=True):
    """Milliseconds: waiting for the model to catch up, computing, and in total; and
    ``queue_ms``, from the request being read off the broker to its answer beginning
    (the recommender's own queue, outside ``total_ms``)."""

    wait_ms: float = 0.0
    compute_ms: float = 0.0
    total_ms: float = 0.0
    queue_ms: float = 0.0


class RecResponse(Message, tag="rec_response", tag_field="kind"):
    """The answer to one request, correlated by ``request_id``.

    ``strategy``: personalised | cold-start | popular.  ``retrieval``: exact | ann.
    ``stale`` is true when the model had not reached the request's ``after`` in time.
    """

    request_id: str
    user: str | None
    items: list[ScoredItem]
    strategy: str
    model_version: int
    n_events: int
    retrieval: str = "exact"
    stale: bool = False
    error: str | None = None
    timing: Timing = msgspec.field(default_factory=Timing)


# --------------------------------------------------------------------- deltas
class FeatureRows(Struct, omit_defaults=True):
    """Rows of a feature table, absolute contents: ``rows`` (int32), ``emb`` (n x dim
    float32) and its row-wise Adagrad accumulator ``emb_acc`` (float32); ``bias`` and
    ``bias_acc`` (float32) for the tables that have biases (not the context table);
    ``cont`` and ``cont_acc`` (float32): the continuity weights (user rows only)."""

    rows: bytes
    emb: bytes
    emb_acc: bytes
    bias: bytes = b""
    bias_acc: bytes = b""
    cont: bytes = b""
    cont_acc: bytes = b""


class FeatureLists(Struct):
    """Entities' feature rows and weights, as the trainer holds them: entity ``rows[i]``
    (int32) has the next ``counts[i]`` (int32) entries of ``features`` (int32) and
    ``weights`` (float32)."""

    rows: bytes
    counts: bytes
    features: bytes
    weights: bytes


class UserHistory(Struct):
    """Per-user state of ``rows`` (int32): ``recent`` (n x width int32) the ring of recent
    items, ``recent_count`` (int32) how many were pushed, ``activity`` (int32) positive
    events (the activity bucket), ``last`` (n x width int32) and ``last_count`` (int32)
    the ring of the last items the content-continuity signal reads."""

    rows: bytes
    recent: bytes
    recent_count: bytes
    activity: bytes
    last: bytes
    last_count: bytes


class ItemTrend(Struct):
    """Items' raw decayed positive counts: ``rows`` (int32), ``counts`` (float64), to be
    divided by the delta's ``trend_scale``."""

    rows: bytes
    counts: bytes


class RingSlots(Struct):
    """Slots (int32) of the trainer's ring of recent positives and their items (int32)."""

    slots: bytes
    items: bytes


class ItemMeta(Struct, omit_defaults=True):
    attributes: Attributes = {}
    created: float = 0.0


class Delta(Message, tag="delta", tag_field="kind"):
    """A part of a model change set (see ``streamrec/model/replica.py`` and ``workers/deltas.py``).

    Entity and feature rows are appended in trainer row order (``*_base`` is the first
    new row), so a replica that applies deltas in order holds the same rows; every other
    content is absolute.  The counters (``trend_scale`` ... ``stats``) ride in every part;
    ``offsets`` in the ``final`` part of a change set.
    """

    seq: int
    version: int
    n_events: int
    #: The trainer incarnation that published it; ``seq`` counts from 0 in each epoch.
    epoch: str = ""
    final: bool = True
    offsets: list[Watermark] = []
    #: Event-period topics that began before this Unix second are learned and deleted
    #: (``stream/topics.py``; 0: none).  In the ``final`` part, as ``offsets``.
    events_retired_before: int = 0
    user_base: int = 0
    new_users: list[str] = []
    item_base: int = 0
    new_items: list[str] = []
    user_feature_base: int = 0
    new_user_features: list[str] = []
    item_feature_base: int = 0
    new_item_features: list[str] = []
    user_feature_lists: FeatureLists | None = None
    item_feature_lists: FeatureLists | None = None
    user_rows: FeatureRows | None = None
    item_rows: FeatureRows | None = None
    context_rows: FeatureRows | None = None
    users: UserHistory | None = None
    item_trend: ItemTrend | None = None
    ring: RingSlots | None = None
    #: (user, item) int32 pairs newly seen.
    seen: bytes = b""
    trend_scale: float = 1.0
    ring_count: int = 0
    rng_state: int = 0
    stats: list[float] = []
    item_meta: dict[str, ItemMeta] = {}


# --------------------------------------------------------------- dead letters
class DeadLetter(Message, tag="dead_letter", tag_field="kind"):
    """A message a worker could not use, with why and where it came from."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    worker: str
    original: bytes
    key: bytes | None = None
    #: Set when ``original`` was cut (the letter was too large to send): its full length.
    truncated: bool = False
    original_size: int = 0
