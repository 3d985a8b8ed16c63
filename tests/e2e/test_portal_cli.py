"""Portal links from the command line and at start-up: kakin portal-link, and the links kakin serve prints."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from test_cli import run

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.payments import CardSimulator
from kakin.serve import demo_portal_links, ensure_reference_tenants

NOW = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)


def reference_database(tmp_path: Path) -> Path:
    db = tmp_path / "k.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    ensure_reference_tenants(engine, CardSimulator(), NOW)
    engine.dispose()
    return db


def test_serve_makes_a_portal_link_for_a_demo_super_admin_of_each_reference_vendor(tmp_path: Path) -> None:
    db = reference_database(tmp_path)
    engine = make_engine(f"sqlite:///{db}")
    links = demo_portal_links(engine, NOW, "http://127.0.0.1:8000")
    engine.dispose()
    assert [(tenant, customer) for tenant, customer, _ in links] == [("nipoplus", "acme"), ("lineworks", "sakura"),
                                                                     ("line-oa", "shop")]
    assert all(re.fullmatch(r"http://127\.0\.0\.1:8000/portal/open/[A-Za-z0-9_-]{43}", url) for _, _, url in links)
    with sqlite3.connect(db) as conn:
        roles = conn.execute("SELECT m.role FROM portal_sessions p JOIN members m ON m.id = p.member_id").fetchall()
    assert roles == [("super_admin",)] * 3


def test_portal_link_prints_a_fresh_link_and_refuses_an_unknown_customer(tmp_path: Path) -> None:
    db = reference_database(tmp_path)
    made = run("portal-link", "--tenant", "nipoplus", "--customer", "acme", "--locale", "en", db=db)
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/portal/open/[A-Za-z0-9_-]{43}\n", made.stdout)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT locale FROM portal_sessions").fetchall() == [("en",)]
    missing = run("portal-link", "--tenant", "nipoplus", "--customer", "ghost", db=db)
    assert missing.returncode == 2 and "not_found" in missing.stderr


def test_serve_on_a_database_whose_nipoplus_tenant_kakin_did_not_seed_starts_without_demo_links_or_owner(
        tmp_path: Path) -> None:
    """A vendor's own database with a tenant coded ``nipoplus`` and none of the demo customers: the start neither fails
    nor adds a demo console owner to that tenant; the reference tenants kakin creates still get theirs."""
    from kakin.adapters.db.store import UnitOfWork
    from kakin.serve import demo_console_sign_ins
    from kakin.services import operators
    from kakin.services.tenancy import create_tenant

    engine = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
    migrate(engine)
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus（本番）", "nipoplus", NOW)
    ensure_reference_tenants(engine, CardSimulator(), NOW)
    links = demo_portal_links(engine, NOW, "http://127.0.0.1:8000")
    owners = demo_console_sign_ins(engine, NOW)
    with UnitOfWork(engine) as uow:
        row = uow.tenant("nipoplus")
        assert row is not None
        staff = operators.list_operators(uow, row)
    engine.dispose()
    assert [tenant for tenant, _, _ in links] == ["lineworks", "line-oa"]
    assert [tenant for tenant, _, _ in owners] == ["lineworks", "line-oa"]
    assert staff == []  # no demo owner with a printed password in the vendor's own tenant
