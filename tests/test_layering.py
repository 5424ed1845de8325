"""Only ``streamrec/model`` touches the model's tables: everything else uses its public API.

An AST check over every module under ``streamrec/`` outside ``streamrec/model``:

* on a model (a name ``m`` or ``model``, anything ``.model``, a parameter annotated
  ``HybridModel`` or a name assigned ``HybridModel(...)``), only the public methods and
  properties of :class:`HybridModel` and its ``config``, ``version`` and ``n_events``
  may be used: not its tables (``users``, ``items``, ``context``, ``seen``, ``recent``,
  ``trend``, ``activity``...), not ``kernel_tables``, ``kernel_changes``, ``arrays``;
* entity-side chains (``.users.ids``, ``.items.fx``, ``.feature_names``, ``.fx``...)
  are refused on any receiver;
* only the model's public modules may be imported (not ``hybrid``, ``tables``,
  ``kernels``...).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from streamrec.model import HybridModel

ROOT = Path(__file__).resolve().parents[1] / "streamrec"

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


def violations(source: str, filename: str = "<string>") -> list[str]:
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
        found += violations(path.read_text(), str(path.relative_to(ROOT.parent)))
    assert not found, "model internals used outside streamrec/model:\n" + "\n".join(found)


PLANTED = """
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


def test_the_checker_reports_planted_violations() -> None:
    found = violations(PLANTED, "planted.py")
    text = "\n".join(found)
    assert "imports streamrec.model.tables" in text
    assert "m.users.ids" in text and "m.users (model internal 'users')" in text
    assert "m.seen (model internal 'seen')" in text
    assert "state.model.recent (model internal 'recent')" in text
    assert "replica.kernel_tables (model internal 'kernel_tables')" in text
    assert "side.fx (model table 'fx')" in text
    assert "replica.trend (model internal 'trend')" in text
    first = PLANTED.splitlines().index("def fine(model: HybridModel, world, metrics):") + 1
    public = [f for f in found if int(f.split(":")[1]) > first]
    assert not public, "public API use (and a metrics ``m``) is not a violation"
    assert len(found) == 8, text
