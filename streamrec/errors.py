"""The one exception tree of streamrec.

Every error streamrec raises on purpose derives from :class:`StreamrecError`::

    StreamrecError
    ├── ConfigError                 a setting or hyperparameter is invalid
    ├── InvalidInputError           an event, id, feature or request is malformed
    │   ├── UnknownEventTypeError   event type not in the configured weights
    │   ├── InvalidIdError          empty / non-string / reserved id
    │   ├── InvalidFeatureError     bad feature name or non-finite feature weight
    │   ├── InvalidWeightError      NaN, infinite or negative event weight
    │   ├── InvalidFilterError      a request filter has an unknown operator or a bad value
    │   └── UnknownEntityError      a user or item the model has never seen
    ├── ModelDivergedError          an update would have written a non-finite value
    ├── CheckpointError             a checkpoint is missing, truncated, corrupt or too new
    ├── ReplicaError                a change set does not fit the replica it is applied to
    ├── DatasetError                an interaction log cannot be read
    ├── ReplayError                 a process of a parallel replay failed or died
    ├── BrokerError                 the Kafka broker (embedded or remote) failed
    │   ├── TopicError              topics could not be created or described
    │   └── RequestTimeoutError     no recommendation response arrived in time
    └── StoreError                  the SQL store failed or rejected a record
        ├── InvalidRecordError      a record of a write batch is malformed (batch not written)
        ├── StoreSchemaError        the database schema is missing, behind or unlike the models
        └── CheckpointConflictError a checkpoint version is registered with other contents

Messages say what was wrong, with the offending value, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "CheckpointConflictError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "InvalidFeatureError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidRecordError",
    "InvalidWeightError",
    "ModelDivergedError",
    "ReplayError",
    "ReplicaError",
    "RequestTimeoutError",
    "StoreError",
    "StoreSchemaError",
    "StreamrecError",
    "TopicError",
    "UnknownEntityError",
    "UnknownEventTypeError",
]


class StreamrecError(Exception):
    """Root of every error streamrec raises on purpose."""


class ConfigError(StreamrecError, ValueError):
    """A setting or hyperparameter has an invalid value."""


class InvalidInputError(StreamrecError, ValueError):
    """An event, id, feature or request is malformed."""


class UnknownEventTypeError(InvalidInputError):
    """An event type that has no configured weight."""


class InvalidIdError(InvalidInputError):
    """An empty, non-string or reserved user/item id."""


class InvalidFeatureError(InvalidInputError):
    """A malformed feature name or a non-finite feature weight."""


class InvalidWeightError(InvalidInputError):
    """A NaN, infinite or negative event weight."""


class InvalidFilterError(InvalidInputError):
    """A request filter that breaks :mod:`streamrec.stream.filters` (operator, value, size)."""


class UnknownEntityError(InvalidInputError, KeyError):
    """A user or item id the model has never seen."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModelDivergedError(StreamrecError, ArithmeticError):
    """An SGD update would have written NaN or infinity into the model.

    The offending update is not applied; lower the learning rate or raise L2.  ``events``
    are the indices of the refused events in their batch when known (every other event
    of the batch was learned); ``event`` is the first of them.
    """

    def __init__(self, message: str, *, events: list[int] | None = None) -> None:
        super().__init__(message)
        self.events = list(events or [])
        self.event = self.events[0] if self.events else None


class CheckpointError(StreamrecError):
    """A checkpoint file is missing, truncated, corrupt or of an unknown format."""


class ReplicaError(StreamrecError, ValueError):
    """A change set names rows the replica holds differently, or skips rows (one was lost)."""


class DatasetError(StreamrecError):
    """An interaction log or dataset directory cannot be read."""


class ReplayError(StreamrecError):
    """A baselines process of a replay (``jobs`` > 1) raised or died; the message says how."""


class BrokerError(StreamrecError):
    """The Kafka broker (embedded or remote) could not be started or reached."""


class StoreError(StreamrecError):
    """The SQL store failed, or rejected a record."""


class InvalidRecordError(StoreError, ValueError):
    """A record of a write batch is malformed; the whole batch was rejected, nothing written.

    ``index`` is the record's position in the batch and ``entity_id`` its id (as given).
    """

    def __init__(self, message: str, *, index: int, entity_id: object) -> None:
        super().__init__(message)
        self.index = index
        self.entity_id = entity_id


class StoreSchemaError(StoreError):
    """The database schema is missing, older than the code, or differs from the models.

    Run ``streamrec db upgrade`` (or open the store with ``upgrade=True``).
    """


class CheckpointConflictError(StoreError):
    """A checkpoint version is already registered with a different path or offsets."""


class TopicError(BrokerError):
    """The streamrec topics could not be created or described on the broker."""


class RequestTimeoutError(BrokerError, TimeoutError):
    """No recommendation response arrived in time: are the workers running?"""
