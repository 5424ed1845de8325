"""The layering rules, checked on the source (see docs/architecture.md).

1. Each package of ``streamrec`` may import only the packages (or single modules)
   listed for it, and third-party I/O libraries stay in the layers that do I/O.  Imports
   under ``if TYPE_CHECKING:`` count too: a rule about layers is about what a reader
   must know.
2. Only ``streamrec/model`` touches the model's tables; everything else uses the public
   methods of :class:`~streamrec.model.HybridModel` (second half of this file).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import streamrec
from streamrec.model import HybridModel

ROOT = Path(streamrec.__file__).parent

#: Package (or module) -> the streamrec packages / modules it may import (itself implied).
RULES: dict[str, set[str]] = {
    "errors": set(),
    # the packages' names imported on first use (their __init__ files)
    "lazy": set(),
    "settings": {"errors", "model.config"},
    "model": {"errors", "lazy"},
    "index": {"errors"},
    "stream": {"errors", "settings"},
    "store": {"errors", "model.features", "stream.filters"},
    "eval": {"errors", "settings", "model", "index", "stream"},
    # shared worker modules: the state both roles use, checkpoints, deltas, operations
    "workers": {"errors", "lazy", "settings", "model", "index", "stream"},
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
    "__init__": {"errors", "lazy", "settings", "model", "stream"},
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


# --------------------------------------------------------------------------------------
# Only ``streamrec/model`` touches the model's tables: everything else uses its public API.
#
# An AST check over every module under ``streamrec/`` outside ``streamrec/model``:
# on a model (a name ``m`` or ``model``, anything ``.model``, a parameter annotated
# ``HybridModel`` or a name assigned ``HybridModel(...)``), only the public methods and
# properties of HybridModel and its ``config``, ``version`` and ``n_events`` may be used:
# not its tables (``users``, ``items``, ``context``, ``seen``, ``recent``, ``trend``...),
# not ``kernel_tables``, ``kernel_changes``, ``arrays``; entity-side chains (``.users.ids``,
# ``.fx``, ``.feature_names``...) are refused on any receiver; only the model's public
# modules may be imported (not ``hybrid``, ``tables``, ``kernels``...).
# --------------------------------------------------------------------------------------

#: Public names of HybridModel that still expose its internals.
INTERNAL_METHODS = {"kernel_tables", "kernel_changes", "arrays"}
MODEL_ATTRIBUTES = {"config", "version", "n_events"}
ALLOWED = {
    name
    for name, _ in inspect.getmembers(HybridModel)
    if not name.startswith("_") and name not in INTERNAL_METHODS
} | MODEL_ATTRIBUTES
#: Attributes of the model's entity sides and tables, refused whatever the receiver.
SIDE_INTERNALS = {"fx", "feature_names", "feature_marks", "entity_marks"}
SIDE_CHAINS = {("users", "ids"), ("items", "ids"), ("users", "table"), ("items", "table"),
               ("users", "fx"), ("items", "fx")}  # fmt: skip
PUBLIC_MODULES = {
    "streamrec.model",
    "streamrec.model.config",
    "streamrec.model.features",
    "streamrec.model.replica",
    "streamrec.model.checkpoint",
    "streamrec.model.popularity",
}


def _binds_model(value: ast.expr) -> bool:
    """``x.model``, ``HybridModel(...)`` or ``load(...)``: an expression that is a model."""
    if isinstance(value, ast.Attribute):
        return value.attr == "model"
    if isinstance(value, ast.Call):
        return ast.unparse(value.func) in {"HybridModel", "load", "model.HybridModel", "model.load"}
    return False


def _model_names(scope: ast.AST) -> set[str]:
    """Names bound to a model in ``scope``: parameters annotated, or assigned, a model."""
    names = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.arg) and node.annotation is not None:
            if "HybridModel" in ast.unparse(node.annotation):
                names.add(node.arg)
        elif isinstance(node, ast.Assign):
            pairs: list[tuple[ast.expr, ast.expr]] = []
            for target in node.targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs += zip(target.elts, node.value.elts, strict=False)
                else:
                    pairs.append((target, node.value))
            names.update(t.id for t, v in pairs if isinstance(t, ast.Name) and _binds_model(v))
    return names


def _is_model(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr == "model"


def _check(node: ast.AST, names: set[str], where: str) -> str | None:
    if isinstance(node, ast.Attribute):
        if _is_model(node.value, names) and node.attr not in ALLOWED:
            return f"{where}: {ast.unparse(node)} (model internal {node.attr!r})"
        if node.attr in SIDE_INTERNALS:
            return f"{where}: {ast.unparse(node)} (model table {node.attr!r})"
        if isinstance(node.value, ast.Attribute) and (node.value.attr, node.attr) in SIDE_CHAINS:
            return f"{where}: {ast.unparse(node)} (model table)"
    elif isinstance(node, ast.ImportFrom) and node.module:
        if node.module.startswith("streamrec.model") and node.module not in PUBLIC_MODULES:
            return f"{where}: imports {node.module} (a model internal)"
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("streamrec.model") and alias.name not in PUBLIC_MODULES:
                return f"{where}: imports {alias.name} (a model internal)"
    return None


def model_violations(source: str, filename: str = "<string>") -> list[str]:
    """Every model-internal access in ``source``, as ``file:line: what``.

    Model names are found per function (a module's ``m`` may be a model in one function
    and metrics in another); anything ``.model`` is a model everywhere.
    """
    tree = ast.parse(source, filename)
    scopes: list[ast.AST] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    found = set()
    for scope in scopes:
        names = _model_names(scope) if scope is not tree else set()
        for node in ast.walk(scope):
            problem = _check(node, names, f"{filename}:{getattr(node, 'lineno', 0)}")
            if problem is not None:
                found.add(problem)
    return sorted(found)


def test_no_module_outside_the_model_touches_its_tables() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if (ROOT / "model") in path.parents:
            continue
        found += model_violations(path.read_text(), str(path.relative_to(ROOT.parent)))
    assert not found, "model internals used outside streamrec/model:\n" + "\n".join(found)


MODEL_PLANTED = """
from streamrec.model.tables import FeatureTable
from streamrec.model import HybridModel


def serve(state, req):
    m = state.model
    row = m.users.ids.get(req.user)
    return m.seen.items(row), state.model.recent[row]


def rebuild(replica: HybridModel, side):
    tables = replica.kernel_tables()
    return side.fx.idx, replica.trend


def fine(model: HybridModel, world, metrics):
    m = metrics
    m.inc("x")
    return model.user_row("u"), model.n_items, model.version, world.items.get("x")
"""


def test_the_model_checker_reports_planted_violations() -> None:
    found = model_violations(MODEL_PLANTED, "planted.py")
    text = "\n".join(found)
    assert "imports streamrec.model.tables" in text
    assert "m.users.ids" in text and "m.users (model internal 'users')" in text
    assert "m.seen (model internal 'seen')" in text
    assert "state.model.recent (model internal 'recent')" in text
    assert "replica.kernel_tables (model internal 'kernel_tables')" in text
    assert "side.fx (model table 'fx')" in text
    assert "replica.trend (model internal 'trend')" in text
    first = MODEL_PLANTED.splitlines().index("def fine(model: HybridModel, world, metrics):") + 1
    public = [f for f in found if int(f.split(":")[1]) > first]
    assert not public, "public API use (and a metrics ``m``) is not a violation"
    assert len(found) == 8, text
