"""Topic names under one prefix, and the partition count of each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """The six streamrec topics, named ``<prefix>.<role>``.

    ``deltas`` always has one partition: embedding deltas must be applied in order.
    """

    prefix: str = "streamrec"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}.interactions"

    @property
    def entities(self) -> str:
        return f"{self.prefix}.entities"

    @property
    def requests(self) -> str:
        return f"{self.prefix}.rec-requests"

    @property
    def responses(self) -> str:
        return f"{self.prefix}.rec-responses"

    @property
    def deltas(self) -> str:
        return f"{self.prefix}.deltas"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    def all(self) -> tuple[str, ...]:
        return (
            self.interactions,
            self.entities,
            self.requests,
            self.responses,
            self.deltas,
            self.dead_letters,
        )

    def partitions(self, default: int) -> dict[str, int]:
        """Partition count per topic: ``default`` everywhere but the ordered deltas topic."""
        return {name: (1 if name == self.deltas else default) for name in self.all()}
