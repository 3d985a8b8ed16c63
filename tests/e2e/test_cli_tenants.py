"""Editing a vendor from the command line: kakin tenant update."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import run


def test_tenant_update_sets_the_issuer_and_refuses_a_bad_registration_number(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db).returncode == 0
    updated = run("tenant", "update", "--code", "acme", "--registration-number", "T1040001000003",
                  "--address", "東京都港区芝公園4-2-8", db=db)
    assert updated.returncode == 0, updated.stderr
    assert "T1040001000003" in updated.stdout
    bad = run("tenant", "update", "--code", "acme", "--name", "Other", "--registration-number", "T8040001000003", db=db)
    assert bad.returncode == 2 and "check digit" in bad.stderr
    assert run("tenant", "update", "--code", "ghost", "--name", "X", db=db).returncode == 2
    assert run("tenant", "update", "--code", "acme", db=db).returncode == 2  # nothing to change
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name, registration_number, address FROM tenants").fetchone() == (
            "Acme", "T1040001000003", "東京都港区芝公園4-2-8")
        assert conn.execute("SELECT count(*) FROM audit_log WHERE action = 'tenant.updated'").fetchone()[0] == 1
