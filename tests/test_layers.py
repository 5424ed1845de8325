"""The import rules of every package, checked on the source (see docs/architecture.md).

Each package of ``streamrec`` may import only the packages (or single modules) listed
for it, and third-party I/O libraries stay in the layers that do I/O.  Imports under
``if TYPE_CHECKING:`` count too: a rule about layers is about what a reader must know.
"""

from __future__ import annotations

import ast
from pathlib import Path

import streamrec

ROOT = Path(streamrec.__file__).parent

#: Package (or module) -> the streamrec packages / modules it may import (itself implied).
RULES: dict[str, set[str]] = {
    "errors": set(),
    "settings": {"errors", "model.config"},
    "model": {"errors"},
    "index": {"errors"},
    "stream": {"errors", "settings"},
    "store": {"errors", "model.features", "stream.filters"},
    "eval": {"errors", "settings", "model", "index", "stream"},
    # shared worker modules: the state both roles use, checkpoints, deltas, operations
    "workers": {"errors", "settings", "model", "index", "stream"},
    # the roles never import each other; workers/stack.py wires them together
    "workers.training": {"errors", "settings", "model", "stream", "workers"},
    "workers.serving": {"errors", "settings", "model", "index", "stream", "workers"},
    # the runtimes drive the roles' workers (as workers/stack.py wires them)
    "workers.runtime": {
        "errors",
        "settings",
        "stream",
        "workers",
        "workers.training",
        "workers.serving",
    },
    "cli": {
        "__init__",
        "errors",
        "settings",
        "model",
        "index",
        "stream",
        "store",
        "eval",
        "workers",
    },
    "__init__": {"errors", "settings", "model", "stream"},
    "__main__": {"cli"},
}
#: What a rule's packages never cover: the worker roles are not "shared worker modules".
FORBIDDEN: dict[str, set[str]] = {
    "workers": {"workers.training", "workers.serving"},
    "workers.training": {"workers.serving"},
    "workers.serving": {"workers.training"},
}
#: Modules allowed to reach past their package's rule, and where to.
EXCEPTIONS: dict[str, set[str]] = {
    # the one place that wires roles and the store's adapters together
    "workers.stack": {"workers.training", "workers.serving", "store"},
    "workers.__init__": {"workers.training", "workers.serving"},
}
#: Third-party libraries -> the packages that may import them.
LIBRARIES: dict[str, set[str]] = {
    "aiokafka": {"stream", "workers", "cli"},
    "faust": {"stream", "workers", "cli"},
    "aiohttp": {"workers"},
    "sqlalchemy": {"store"},
    "alembic": {"store"},
    "psycopg": {"store"},
    "annoy": {"index"},
    "numba": {"model", "index"},
}


def module_name(path: Path) -> str:
    """``streamrec/workers/serving/core.py`` -> ``workers.serving.core``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts)


def imports(source: str, filename: str = "<source>") -> set[str]:
    """Every absolute module name imported by ``source`` (``streamrec.`` kept)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _rule_for(module: str) -> tuple[str, set[str], set[str]]:
    """The most specific rule (longest package prefix) that governs ``module``."""
    best = ""
    for pkg in RULES:
        if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best):
            best = pkg
    assert best, f"no import rule for streamrec.{module}: add one to RULES"
    extra = EXCEPTIONS.get(module, set())
    return best, RULES[best] | {best} | extra, FORBIDDEN.get(best, set()) - extra


def _covered(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def _target(name: str) -> str:
    """The streamrec module an import names (``streamrec.__version__`` -> ``__init__``)."""
    target = name.removeprefix("streamrec.")
    top = target.split(".")[0]
    if not (ROOT / top).is_dir() and not (ROOT / f"{top}.py").is_file():
        return "__init__"
    return target


def violations(module: str, source: str) -> list[str]:
    """The imports of ``module`` (given its source) that break the rules."""
    pkg, allowed, forbidden = _rule_for(module)
    out = []
    for name in sorted(imports(source, module)):
        top = name.split(".")[0]
        if top == "streamrec":
            if name == "streamrec":
                continue
            target = _target(name)
            # "from streamrec.model import HybridModel" lists streamrec.model.HybridModel too:
            # the module part alone may be what the rule allows
            ok = _covered(target, allowed) or _covered(target.rsplit(".", 1)[0], allowed)
            if not ok or _covered(target, forbidden):
                out.append(f"streamrec.{module} imports {name} (rule {pkg}: {sorted(allowed)})")
        elif top in LIBRARIES and not any(
            module == p or module.startswith(p + ".") for p in LIBRARIES[top]
        ):
            out.append(f"streamrec.{module} imports {top} (allowed in {sorted(LIBRARIES[top])})")
    return out


def test_every_module_follows_the_import_rules() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        found += violations(module_name(path), path.read_text())
    assert found == []


def test_the_checker_sees_violations() -> None:
    """Planted sources: each breaks one rule, and the checker names it."""
    assert violations("model.hybrid", "from streamrec.stream.schemas import Delta")
    assert violations("model.kernels", "import aiokafka")
    assert violations("index.ann", "from streamrec.model import HybridModel")
    assert violations("workers.serving.recommender", "from streamrec.workers.training import x")
    assert violations("workers.training.core", "import streamrec.workers.serving.rerank")
    assert violations("workers.state", "from streamrec.workers.training.core import TrainerCore")
    assert violations("store.cache", "from streamrec.workers.attributes import X")
    assert violations("stream.client", "from sqlalchemy import text")
    assert violations("eval.prequential", "from streamrec.store import FeatureStore")
    # and accepts what is allowed
    assert violations("workers.deltas", "from streamrec.store.adapters import StoreCatalog")
    assert not violations("workers.stack", "from streamrec.workers.training.trainer import T")
    assert not violations("store.cache", "from streamrec.stream.filters import parse_filters")
    assert not violations("model.hybrid", "from streamrec.model.kernels import learn_batch")
