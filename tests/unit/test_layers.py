"""Services speak to the unit of work and the repositories in adapters/db, never to SQLAlchemy or the tables."""

from __future__ import annotations

import ast
from pathlib import Path

import kakin.services

SERVICES = Path(kakin.services.__file__).parent
# Next to move (issue 10, being reworked for transactions and charges right now): their SQL goes to repositories too.
NOT_YET = {"billing.py", "payments.py", "due_work.py"}
FORBIDDEN = ("sqlalchemy", "kakin.adapters.db.tables")


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
    offences = {path.name: [m for m in _imports(path) if _offending(m)]
                for path in sorted(SERVICES.glob("*.py")) if path.name not in NOT_YET}
    assert {name: found for name, found in offences.items() if found} == {}

