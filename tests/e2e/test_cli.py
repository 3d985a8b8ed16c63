"""The kakin command beyond simulate: catalogs, tenants, the database and due work."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

KAKIN = [sys.executable, "-m", "kakin.cli"]
SHIPPED = Path(__file__).resolve().parents[2] / "src" / "kakin" / "catalogs"


def run(*args: str, db: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if db is not None:
        env["KAKIN_DATABASE_URL"] = f"sqlite:///{db}"
    return subprocess.run([*KAKIN, *args], capture_output=True, text=True, timeout=120, env=env)


def test_catalog_check_shows_the_price_page_of_a_shipped_catalog() -> None:
    result = run("catalog", "check", "lineworks")
    assert result.returncode == 0, result.stderr
    for text in ("lite", "basic", "premium", "1,200 / member", "500 / seat"):
        assert text in result.stdout


def test_catalog_check_names_file_key_and_reason_of_a_bad_catalog(tmp_path: Path) -> None:
    bad = (SHIPPED / "nipoplus.toml").read_text(encoding="utf-8").replace("min_seats = 5", "min_seats = 1000")
    f = tmp_path / "bad.toml"
    f.write_text(bad, encoding="utf-8")
    result = run("catalog", "check", str(f))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "plans.gold.min_seats" in message and "above max_seats = 999" in message


def test_a_tenant_with_a_bad_catalog_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    data = tomllib.loads((SHIPPED / "line-oa.toml").read_text(encoding="utf-8"))
    assert data["plans"]["standard"]["usage"]["messages"]["tiers"][1]["first"] == 50001
    bad = (SHIPPED / "line-oa.toml").read_text(encoding="utf-8").replace("first = 50001", "first = 50101")
    f = tmp_path / "gap.toml"
    f.write_text(bad, encoding="utf-8")
    db = tmp_path / "k.db"
    result = run("tenant", "create", "--code", "oa", "--name", "OA", "--catalog", str(f), db=db)
    assert result.returncode == 2
    assert "tiers[1].first" in " ".join(result.stderr.split())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_a_tenant_is_created_once_and_due_work_runs_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db).returncode == 0
    again = run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db)
    assert again.returncode == 2 and "already exists" in again.stderr
    due = run("run-due", "--until", "2026-06-01T00:00:00+09:00", db=db)
    assert due.returncode == 0 and "acme: 0 actions" in due.stdout
    assert run("run-due", "--until", "tomorrow", db=db).returncode == 2


def test_api_keys_are_created_listed_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db).returncode == 0
    made = run("api-key", "--tenant", "acme", "--role", "viewer", "--name", "dashboard", db=db)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    prefix = "_".join(key.split("_", 2)[:2])
    listed = run("api-key", "--tenant", "acme", "--list", db=db)
    assert listed.returncode == 0 and prefix in listed.stdout and "dashboard" in listed.stdout
    assert key not in listed.stdout  # only the prefix is shown
    assert run("api-key", "--tenant", "acme", "--revoke", prefix, db=db).returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT revoked_at IS NOT NULL FROM api_keys WHERE prefix = ?", (prefix,)).fetchone()[0] == 1
    unknown = run("api-key", "--tenant", "acme", "--revoke", "kk_000000000000", db=db)
    assert unknown.returncode == 2 and "no API key 'kk_000000000000'" in " ".join(unknown.stderr.split())


def test_demo_bills_the_worked_examples_beside_the_served_vendors_and_a_second_run_reports_them(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    serve = ("from datetime import UTC, datetime\n"
             "from kakin.adapters.db.migrate import make_engine, migrate\n"
             "from kakin.adapters.payments import CardSimulator\n"
             "from kakin.serve import ensure_reference_tenants\n"
             f"e = make_engine('sqlite:///{db}'); migrate(e)\n"
             "ensure_reference_tenants(e, CardSimulator(), datetime.now(UTC))\n")
    subprocess.run([sys.executable, "-c", serve], check=True)  # what `make run` leaves in the database
    first = run("demo", db=db)
    assert first.returncode == 0, first.stderr
    assert "4,380" in first.stdout and "33,000" in first.stdout and "9,900" in first.stdout
    assert "already" not in first.stdout and first.stdout.count("into demo tenant demo-") == 3
    second = run("demo", db=db)
    assert second.returncode == 0 and second.stdout.count("billed by an earlier run") == 3
    assert "4,380" in second.stdout
    with sqlite3.connect(db) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM tenants ORDER BY id")]
        assert codes == ["nipoplus", "lineworks", "line-oa", "demo-nipoplus", "demo-lineworks", "demo-line-oa"]
        assert conn.execute("SELECT count(*) FROM invoices JOIN tenants ON tenants.id = invoices.tenant_id "
                            "WHERE tenants.code LIKE 'demo-%'").fetchone()[0] == 10
    due = run("run-due", db=db)  # the demos' customers stay on their test clocks: the real clock bills none of them
    assert due.returncode == 0 and all(f"demo-{v}: 0 actions" in due.stdout for v in ("nipoplus", "lineworks", "line-oa"))


def test_usage_import_counts_each_transaction_once_and_names_bad_lines(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "oa", "--name", "OA", "--catalog", "line-oa", db=db).returncode == 0
    seed = (
        "from datetime import UTC, datetime\n"
        "from kakin.adapters.db.migrate import make_engine\n"
        "from kakin.adapters.db.store import UnitOfWork\n"
        "from kakin.adapters.payments import CardSimulator\n"
        "from kakin.services import billing\n"
        "from kakin.services.tenancy import open_tenant\n"
        f"e = make_engine('sqlite:///{db}'); g = CardSimulator(); now = datetime.now(UTC)\n"
        "with UnitOfWork(e) as u:\n"
        "    t = open_tenant(u, 'oa')\n"
        "    billing.create_customer(u, t, g, 'shop', 'shop', now, payment_method='pm_card_visa')\n"
        "    billing.subscribe(u, t, g, 'shop', now, 'standard')\n")
    subprocess.run([sys.executable, "-c", seed], check=True)
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    rows = ["customer,metric,quantity,timestamp,transaction_id"]
    rows += [f"shop,messages,2,{now},t{i % 1500}" for i in range(2200)]
    rows += [f"ghost,messages,2,{now},g1"]
    f = tmp_path / "usage.csv"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run("usage", "import", str(f), "--tenant", "oa", db=db)
    assert result.returncode == 0, result.stderr
    assert "recorded 1,500, duplicates 700, refused 1" in result.stdout
    assert "line 2202: not_found" in result.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sum(quantity) FROM usage_counters").fetchone()[0] == 3000
    jsonl = tmp_path / "usage.jsonl"
    good = json.dumps({"customer": "shop", "metric": "messages", "quantity": 5, "timestamp": now, "transaction_id": "j1"})
    jsonl.write_text(good + '\n{"customer": "shop"\n', encoding="utf-8")
    bad = run("usage", "import", str(jsonl), "--tenant", "oa", db=db)
    assert bad.returncode == 2 and "line 2: not JSON" in bad.stderr


def test_usage_import_refuses_an_event_past_a_hard_limit_and_counts_nothing_of_it(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "oa", "--name", "OA", "--catalog", "line-oa", db=db).returncode == 0
    seed = (
        "from datetime import UTC, datetime\n"
        "from kakin.adapters.db.migrate import make_engine\n"
        "from kakin.adapters.db.store import UnitOfWork\n"
        "from kakin.adapters.payments import CardSimulator\n"
        "from kakin.services import billing\n"
        "from kakin.services.tenancy import open_tenant\n"
        f"e = make_engine('sqlite:///{db}'); g = CardSimulator(); now = datetime.now(UTC)\n"
        "with UnitOfWork(e) as u:\n"
        "    t = open_tenant(u, 'oa')\n"
        "    billing.create_customer(u, t, g, 'cafe', 'cafe', now, payment_method='pm_card_visa')\n"
        "    billing.subscribe(u, t, g, 'cafe', now, 'light')\n")
    subprocess.run([sys.executable, "-c", seed], check=True)
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    f = tmp_path / "usage.csv"
    f.write_text(f"customer,metric,quantity,timestamp,transaction_id\ncafe,messages,6000,{now},big\n"
                 f"cafe,messages,4000,{now},ok\ncafe,messages,1001,{now},over\n", encoding="utf-8")
    result = run("usage", "import", str(f), "--tenant", "oa", db=db)
    assert result.returncode == 0, result.stderr
    assert "recorded 1, duplicates 0, refused 2" in result.stdout
    assert "line 2: quota_exceeded" in result.stdout and "line 4: quota_exceeded" in result.stdout
    with sqlite3.connect(db) as conn:  # light: 5,000 included, a hard limit; only the 4,000 fits
        assert conn.execute("SELECT sum(quantity) FROM usage_counters").fetchone()[0] == 4000


def test_version_prints_the_package_version() -> None:
    project = tomllib.loads((SHIPPED.parents[2] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kakin {project['version']}"


def test_the_key_list_shows_instants_in_iso_8601_with_the_tenants_offset(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db).returncode == 0
    listed = run("api-key", "--tenant", "acme", "--list", db=db)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.?\d*\+09:00", listed.stdout), listed.stdout
