"""Package names imported on first use (PEP 562), so a process that needs only part of a
package (``streamrec up``'s supervisor, the index build child) loads nothing else."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``, from each module and the names it
    defines (imported at the first access, then kept in the package's namespace)."""
    namespace = vars(sys.modules[package])
    module_of = {name: module for module, names in where.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
