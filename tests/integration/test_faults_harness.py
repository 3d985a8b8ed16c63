"""The fault harness (benchmarks/faults.py) at its CI size: 200 customers, 2 and 4 workers, on PostgreSQL.

It starts its own PostgreSQL cluster, SMTP sink, fake Stripe, workers and API
server, kills workers, restarts PostgreSQL, takes SMTP down, and exits 1 when
any count is off.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parents[2] / "benchmarks" / "faults.py"


def test_the_fault_harness_finds_every_count_as_expected_on_postgresql() -> None:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: run ./scripts/system-deps.sh (CI runs the fault harness)")
        pytest.skip("PostgreSQL not installed here (./scripts/system-deps.sh installs it); CI runs the fault harness")
    run = subprocess.run([sys.executable, str(HARNESS), "--n", "200", "--workers", "2,4", "--timeout", "240", "--seed", "7"],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    table = run.stdout
    assert run.returncode == 0, table + run.stderr[-3000:]
    for section in ("2 workers, N=200", "4 workers, N=200", "HTTP: 20 concurrent seat changes",
                    "HTTP: one POST ×10, one Idempotency-Key"):
        assert section in table, table
    assert table.count("customers renewed (expected N)") == 2
    assert table.count("their customers' card charges not refunded exactly once") == 2  # checked in both runs
    assert "PG restart yes" in table and "SMTP down 3 s yes" in table, table
