"""Counters and gauges of one process, rendered in the Prometheus text format."""

from __future__ import annotations

from collections import defaultdict


class Metrics:
    """Named counters (monotonic) and gauges, all labelled by worker."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[tuple[str, str], float] = {}
        self.help: dict[str, str] = {}

    def inc(self, worker: str, name: str, value: float = 1.0, help: str = "") -> None:
        self.counters[(worker, name)] += value
        if help:
            self.help.setdefault(name, help)

    def set(self, worker: str, name: str, value: float, help: str = "") -> None:
        self.gauges[(worker, name)] = value
        if help:
            self.help.setdefault(name, help)

    def get(self, worker: str, name: str) -> float:
        return self.counters.get((worker, name), self.gauges.get((worker, name), 0.0))

    def render(self) -> str:
        lines: list[str] = []
        for kind, table in (("counter", self.counters), ("gauge", self.gauges)):
            names = sorted({n for _, n in table})
            for name in names:
                full = f"streamrec_{name}"
                if name in self.help:
                    lines.append(f"# HELP {full} {self.help[name]}")
                lines.append(f"# TYPE {full} {kind}")
                for (worker, n), value in sorted(table.items()):
                    if n == name:
                        lines.append(f'{full}{{worker="{worker}"}} {value:.6g}')
        return "\n".join(lines) + "\n"
