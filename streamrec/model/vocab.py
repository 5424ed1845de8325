"""String ids and feature names mapped to dense rows, growing as new ones arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np


class Vocabulary:
    """A growing bijection between strings and the rows ``0 .. len - 1``."""

    __slots__ = ("_index", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def get(self, name: str, default: int = -1) -> int:
        return self._index.get(name, default)

    def rows(self, names: Iterable[str]) -> list[int]:
        """:meth:`get` of every name: its row, -1 for an unknown one."""
        get = self._index.get
        return [get(name, -1) for name in names]

    def add(self, name: str) -> tuple[int, bool]:
        """The row of ``name``, adding it when new; the flag says whether it was new."""
        row = self._index.get(name)
        if row is not None:
            return row, False
        row = len(self._names)
        self._index[name] = row
        self._names.append(name)
        return row, True

    def name(self, row: int) -> str:
        return self._names[row]

    def names(self, rows: Iterable[int]) -> list[str]:
        return [self._names[r] for r in rows]

    def to_array(self) -> np.ndarray:
        """The names as one array, saved without pickle: their UTF-8 bytes separated by NUL
        (uint8), so one long name costs its own length, not that length times every name
        as a fixed-width unicode array did.  Names holding NUL (or empty) keep that older
        fixed-width form."""
        return _names_array(self._names)

    def frozen(self) -> Callable[[], np.ndarray]:
        """:meth:`to_array` as of now, encoded when called: a copy of the list of names
        (pointers), so a checkpoint copies under its lock and encodes off it."""
        names = self._names[:]
        return lambda: _names_array(names)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Vocabulary:
        """The vocabulary of :meth:`to_array` (either form)."""
        if array.dtype == np.uint8:
            if not array.size:
                return cls()
            return cls(array.tobytes().decode("utf-8", "surrogatepass").split("\x00"))
        return cls(str(x) for x in array.tolist())


def _names_array(names: list[str]) -> np.ndarray:
    """:meth:`Vocabulary.to_array` of ``names``."""
    if not names:
        return np.zeros(0, dtype=np.uint8)
    if any(not name or "\x00" in name for name in names):
        return np.array(names, dtype=str)
    joined = "\x00".join(names).encode("utf-8", "surrogatepass")
    return np.frombuffer(joined, dtype=np.uint8).copy()
