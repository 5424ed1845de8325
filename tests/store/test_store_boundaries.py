"""Only streamrec/store speaks SQL: no other module imports sqlalchemy, alembic or psycopg."""

from __future__ import annotations

import ast
from pathlib import Path

import streamrec

SQL_LIBRARIES = {"sqlalchemy", "alembic", "psycopg", "psycopg2"}
ROOT = Path(streamrec.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sql_libraries_are_imported_only_in_store() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & SQL_LIBRARIES)
        for path in ROOT.rglob("*.py")
        if "store" not in path.relative_to(ROOT).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert _imports(ROOT / "store" / "_engine.py") & SQL_LIBRARIES  # the test can see imports
