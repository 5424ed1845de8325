"""Hyperparameters of the hybrid model: one frozen dataclass, validated on creation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamrec.errors import ConfigError

LOSSES = ("warp", "bpr", "logistic")
OPTIMIZERS = ("adagrad", "sgd")

#: Hard bounds of what the model takes (the settings' edge limits may only be lower):
#: longest id and feature name (the store's columns), largest feature weight in absolute
#: value (at 1e6 WARP scores overflow at once; 1e4 on 256 features per side trained
#: without a divergence), most features per entity.
MAX_ID_LENGTH = 512
MAX_NAME_LENGTH = 512
MAX_FEATURE_WEIGHT = 1e4
MAX_FEATURES = 10_000

#: Default weight of each event type. Weight 0 marks the item as seen without training.
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 0.0,
    "exposure": 0.0,
    "click": 1.0,
    "like": 1.0,
    "add_to_cart": 2.0,
    "purchase": 3.0,
}


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of :class:`~streamrec.model.HybridModel`.

    Defaults are the values tuned on the MovieLens 100K prequential protocol
    (see docs/evaluation.md for the measurement).
    """

    dim: int = 64
    loss: str = "warp"
    #: "adagrad": row-wise adaptive steps (see accum_decay); "sgd": constant step lr.
    optimizer: str = "adagrad"
    #: Adagrad step for embedding rows.
    lr: float = 0.05
    #: Adagrad step for the feature biases (item popularity follows it).
    bias_lr: float = 0.05
    #: Decay of the per-row squared-gradient accumulator: 1.0 is Adagrad, < 1.0 RMSprop-like
    #: (the step never shrinks to zero, so the model keeps following recent behaviour).
    accum_decay: float = 1.0
    #: The same decay for the bias accumulators: below 1.0 the item biases keep following
    #: recent popularity instead of freezing on the all-time counts.
    bias_decay: float = 1.0
    l2: float = 1e-6
    #: Scale of the normal initialisation of shared-feature and context embeddings.
    #: Identity embeddings always start at zero.
    init_scale: float = 0.1
    #: WARP: the most negatives sampled per positive before giving up.
    max_sampled: int = 50
    #: BPR / logistic: negatives per positive.
    n_negatives: int = 1
    #: Fraction of negatives drawn from the recent positives (popularity-aware sampling).
    pop_sampling: float = 0.0
    #: How many recent positive events the popularity-aware sampler draws from.
    pop_window: int = 2000
    #: Weight of the recency-popularity prior ``log1p(decayed positive count)`` in every
    #: score (0 disables); the embeddings learn around it.
    trend_weight: float = 1.0
    #: Half-life of that decayed count, in positive events.
    trend_half_life: float = 2000.0
    #: Weight of a seen-only event (view, exposure) in that decayed count: what is being
    #: looked at right now is a signal too, strongest for users with no history yet.
    trend_seen_weight: float = 1.0
    #: Pseudo-count a new item's trend starts with (halving with newer items):
    #: among items with no positives yet, the newest rank first (item cold start on
    #: catalogues with heavy churn), and the trend affinity learns how much that is worth.
    new_item_prior: float = 30.0
    #: Half-life of that pseudo-count, in items onboarded after it.
    new_item_half_life: float = 10.0
    #: Buckets of the user's activity (log2 of its positive-event count) learned as a
    #: dynamic user feature: how users with no or little history behave (0 disables).
    activity_buckets: int = 8
    #: The user's last N items join the user representation (0 disables).
    recent_items: int = 5
    #: Weight of the recent-items part of the user representation.
    recent_weight: float = 2.0
    #: An item's context embedding (in the user's recent items) sums the context rows of
    #: all its features, not just its identity: a new item carries context at once.
    context_features: bool = True
    #: Do seen-only events (views, low ratings) enter the recent items too?
    recent_include_seen: bool = True
    #: Weight of the content-continuity signal: how many of an item's (non-identity)
    #: features occur among the features of the user's last ``continuity_items`` items
    #: (0 disables).  Each user's weight is this plus its features' and activity bucket's
    #: learned continuity biases, learned like the trend affinity: sessions that stay in
    #: a category or brand, and new items known only by their features, score from it.
    continuity_weight: float = 1.0
    #: How many of the user's last items (of any event type) the continuity signal reads.
    continuity_items: int = 5
    #: Adagrad step of the continuity weights: large, so the weight finds its level on
    #: each log (high where sessions stay in a category, near zero where they do not).
    continuity_lr: float = 0.05
    #: The most negatives the continuity weights' WARP samples per positive (fewer cost
    #: less; at 10 a category-loyal log lost 5% of its HR@10: docs/evaluation.md).
    continuity_max_sampled: int = 30
    #: With WARP, the continuity weights' WARP looks for its violator among the draws
    #: of the embeddings' WARP (its first ``continuity_max_sampled``) instead of drawing
    #: its own.
    continuity_shared_draws: bool = True
    #: Weight of the identity feature of each user and item.
    identity_weight: float = 1.0
    #: Divide each entity's feature weights so they sum to one (LightFM's normalisation).
    normalize_features: bool = False
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    seed: int = 42

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"model setting {name}={getattr(self, name)!r} is invalid: {why}")

        if not isinstance(self.dim, int) or self.dim < 1:
            raise bad("dim", "must be a positive integer")
        if self.loss not in LOSSES:
            raise bad("loss", f"choose one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        for name in ("lr", "bias_lr", "continuity_lr", "init_scale", "identity_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise bad(name, "must be a finite number >= 0")
        for name in ("trend_half_life", "new_item_half_life"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise bad(name, "must be a finite number > 0")
        for name in ("l2", "recent_weight", "trend_weight", "continuity_weight",
                     "trend_seen_weight", "new_item_prior"):  # fmt: skip
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise bad(name, "must be a finite number >= 0")
        for name in ("accum_decay", "bias_decay"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise bad(name, "must be in (0, 1]")
        if not 0.0 <= self.pop_sampling <= 1.0:
            raise bad("pop_sampling", "must be in [0, 1]")
        for name in ("max_sampled", "continuity_max_sampled", "n_negatives", "pop_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise bad(name, "must be a positive integer")
        if not isinstance(self.activity_buckets, int) or not 0 <= self.activity_buckets <= 32:
            raise bad("activity_buckets", "must be an integer in [0, 32]")
        for name in ("recent_items", "continuity_items"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "must be an integer >= 0")
        if not self.event_weights:
            raise bad("event_weights", "needs at least one event type")
        for name, weight in self.event_weights.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"event type {name!r} must be a non-empty string")
            if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(
                    f"event weight for {name!r} is {weight!r}: must be a finite number >= 0"
                )

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["event_weights"] = dict(self.event_weights)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build from a mapping (config file, checkpoint); unknown keys are an error."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            default = known[name].default
            if name == "event_weights":
                if not isinstance(value, Mapping):
                    raise ConfigError(
                        f"event_weights must be a table of type = weight, got {value!r}"
                    )
                kwargs[name] = {str(k): float(v) for k, v in value.items()}
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"model setting {name} must be true or false, got {value!r}")
                kwargs[name] = value
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"model setting {name} must be an integer, got {value!r}")
                kwargs[name] = value
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"model setting {name} must be a number, got {value!r}")
                kwargs[name] = float(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)
