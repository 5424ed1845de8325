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
from streamrec.model.config import ModelConfig

ENV_PREFIX = "STREAMREC_"


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
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"partitions={self.partitions!r} must be >= 1")
        if not self.topic_prefix or any(c.isspace() for c in self.topic_prefix):
            raise ConfigError(f"topic_prefix={self.topic_prefix!r} must be a non-empty word")

    @property
    def db_url(self) -> str:
        """The effective database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'streamrec.db').resolve()}"

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
    if name == "partitions":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}PARTITIONS={raw!r} is not an integer") from None
    return raw
