"""Services speak to the unit of work and its repositories (``uow.domains``, ``uow.members``, …), never to its
connection, SQLAlchemy or the tables: the SQL lives in adapters/db (issue 10, "Shape")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kakin.services

SERVICES = Path(kakin.services.__file__).parent
EXCLUDED: set[str] = set()  # every service speaks to the repositories; a module listed here would be visibly exempt
FORBIDDEN = ("sqlalchemy", "kakin.adapters.db.tables")
CONNECTION = re.compile(r"\.conn\b")  # uow.conn, self.uow.conn, u.conn: any reach for a unit of work's connection


def _services() -> list[Path]:
    return [path for path in sorted(SERVICES.glob("*.py")) if path.name not in EXCLUDED]


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth (inside functions too), relative imports resolved; ``from a import
    b`` counts as both ``a`` and ``a.b``."""
    package = "kakin.services"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return found


def _offending(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_no_service_imports_sqlalchemy_or_the_tables() -> None:
    offences = {path.name: [m for m in _imports(path) if _offending(m)] for path in _services()}
    assert {name: found for name, found in offences.items() if found} == {}


def test_no_service_mentions_the_unit_of_works_connection() -> None:
    offences = {path.name: [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                            if CONNECTION.search(line)]
                for path in _services()}
    assert {name: lines for name, lines in offences.items() if lines} == {}
