"""Catalog versions from the command line: kakin catalog publish, diff and show (issue 13)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import run

CATALOGS = Path(__file__).resolve().parents[1] / "scenarios" / "catalogs"
EFFECTIVE = "2026-06-01T00:00:00+09:00"


def test_publish_shows_the_changes_first_and_a_dry_run_commits_nothing(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "np", "--name", "NipoPlus", "--catalog", "nipoplus", db=db).returncode == 0
    new = str(CATALOGS / "nipoplus-gold-200.toml")
    dry = run("catalog", "publish", new, "--tenant", "np", "--effective", EFFECTIVE, "--existing", "next_period",
              "--dry-run", db=db)
    assert dry.returncode == 0, dry.stderr
    assert "~ plans.gold.prices.monthly.unit_amount: 180 → 200" in dry.stdout and "would be published" in dry.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM catalog_versions").fetchone()[0] == 1
    done = run("catalog", "publish", new, "--tenant", "np", "--effective", EFFECTIVE, "--existing", "never", db=db)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT number, existing FROM catalog_versions ORDER BY number").fetchall() == [
            (1, "next_period"), (2, "never")]
        assert conn.execute("SELECT effective_at FROM catalog_versions WHERE number = 2").fetchone() == (
            "2026-05-31 15:00:00.000000",)  # Jun 1 00:00 JST, stored in UTC
    diff = run("catalog", "diff", "np@1", "np@2", db=db)
    assert diff.returncode == 0 and diff.stdout.strip() == "~ plans.gold.prices.monthly.unit_amount: 180 → 200"
    shown = run("catalog", "show", "--tenant", "np", "--version", "2", db=db)
    assert shown.returncode == 0 and "200 / seat" in shown.stdout and "catalog version 2" in shown.stdout


def test_publish_refuses_a_bad_existing_policy_an_instant_without_offset_and_a_missing_version(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "np", "--name", "NipoPlus", "--catalog", "nipoplus", db=db).returncode == 0
    new = str(CATALOGS / "nipoplus-gold-200.toml")
    bad = run("catalog", "publish", new, "--tenant", "np", "--effective", EFFECTIVE, "--existing", "sometimes", db=db)
    assert bad.returncode == 2 and "existing must be one of: next_period, never" in bad.stderr
    naive = run("catalog", "publish", new, "--tenant", "np", "--effective", "2026-06-01T00:00:00", "--existing", "never",
                db=db)
    assert naive.returncode == 2 and "needs a UTC offset" in naive.stderr
    assert run("catalog", "diff", "np@1", "np@7", db=db).returncode == 2
