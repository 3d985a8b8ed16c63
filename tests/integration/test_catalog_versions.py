"""Catalog versions in the store, on SQLite and PostgreSQL: publishing, refusals, the first version of a tenant,
and the version each phase and invoice line records (issue 13)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete, func, select

from kakin.adapters.catalog_files import shipped_path
from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import AddonHasSubscribers, CatalogError, PlanHasSubscribers
from kakin.services import billing, catalogs, due_run
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
CATALOGS = Path(__file__).resolve().parents[1] / "scenarios" / "catalogs"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def nipoplus_with_customer(engine: Engine, gateway: CardSimulator) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2025, 4, 1))
        billing.create_customer(uow, tenant, gateway, "acme", "Acme", at(2025, 4, 1), payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", at(2025, 4, 10, 10), "gold", seats=10)


JUNE_1 = at(2025, 6, 1)


def publish(engine: Engine, file: str, *, existing: str = "next_period", dry_run: bool = False,
            effective: datetime = JUNE_1) -> dict[str, Any]:
    with UnitOfWork(engine) as uow:
        row = uow.tenant("nipoplus")
        assert row is not None
        return catalogs.publish(uow, row, (CATALOGS / file).read_text(encoding="utf-8"), file, effective_at=effective,
                                existing=existing, actor="operator", now=at(2025, 5, 20), dry_run=dry_run)


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.metadata.tables[table])).scalar_one())


def test_a_tenant_is_created_with_its_shipped_catalog_as_version_1(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2025, 4, 1))
    with engine.connect() as conn:
        stored = conn.execute(select(tables.catalog_versions)).mappings().one()
    text = shipped_path("nipoplus").read_text(encoding="utf-8")
    assert (stored["number"], stored["content"], stored["existing"]) == (1, text, "next_period")
    assert stored["sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_editing_the_catalog_file_changes_nothing_until_it_is_published(engine: Engine, tmp_path: Path) -> None:
    file = tmp_path / "vendor.toml"
    shutil.copy(shipped_path("nipoplus"), file)
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", str(file), at(2025, 4, 1))
    shutil.copy(CATALOGS / "nipoplus-gold-200.toml", file)  # the vendor edits the file on disk
    with UnitOfWork(engine) as uow:
        assert open_tenant(uow, "nipoplus", at(2025, 7, 1)).catalog.plans["gold"].prices["monthly"].unit_amount == 180
    publish(engine, "nipoplus-gold-200.toml")
    with UnitOfWork(engine) as uow:
        opened = open_tenant(uow, "nipoplus", at(2025, 7, 1))
        assert (opened.catalog.version, opened.catalog.plans["gold"].prices["monthly"].unit_amount) == (2, 200)
        assert open_tenant(uow, "nipoplus", at(2025, 5, 31)).catalog.version == 1  # not yet in effect


def test_a_tenant_made_before_versions_gets_version_1_from_its_file_when_first_opened(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2025, 4, 1))
    with engine.begin() as conn:  # as the rows were before migration 0018
        conn.execute(delete(tables.catalog_versions))
    with UnitOfWork(engine, readonly=True) as uow:  # a read opens it without writing
        assert open_tenant(uow, "nipoplus").catalog.version == 1
    assert rows(engine, "catalog_versions") == 0
    with UnitOfWork(engine) as uow:
        assert open_tenant(uow, "nipoplus").catalog.version == 1
    assert rows(engine, "catalog_versions") == 1


def test_a_publish_that_drops_a_plan_with_subscribers_is_refused_and_changes_nothing(engine: Engine) -> None:
    nipoplus_with_customer(engine, CardSimulator())
    audit = rows(engine, "audit_log")
    with pytest.raises(PlanHasSubscribers) as refused:
        publish(engine, "nipoplus-gold2-unmoved.toml")
    assert refused.value.plans == {"gold": 1} and refused.value.code == "plan_has_subscribers"
    assert (rows(engine, "catalog_versions"), rows(engine, "audit_log")) == (1, audit)
    assert publish(engine, "nipoplus-gold2-moved.toml")["version"] == 2  # moving them is allowed


def test_a_dry_run_shows_the_changes_and_the_subscribers_and_publishes_nothing(engine: Engine) -> None:
    nipoplus_with_customer(engine, CardSimulator())
    shown = publish(engine, "nipoplus-gold-200.toml", dry_run=True)
    assert (shown["version"], shown["dry_run"], shown["subscribers"]) == (2, True, {"gold": 1})
    assert shown["changes"] == ["~ plans.gold.prices.monthly.unit_amount: 180 → 200"]
    assert rows(engine, "catalog_versions") == 1


def test_a_version_may_not_change_the_time_zone_or_tax_inclusive_prices(engine: Engine, tmp_path: Path) -> None:
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2025, 4, 1))
        row = uow.tenant("nipoplus")
        assert row is not None
        text = shipped_path("nipoplus").read_text(encoding="utf-8").replace("inclusive = true", "inclusive = false")
        with pytest.raises(CatalogError, match="tax.inclusive: is False but version 1 has True"):
            catalogs.publish(uow, row, text, "exclusive.toml", effective_at=at(2025, 6, 1), existing="never",
                             actor="operator", now=at(2025, 5, 1))


def test_phases_and_invoice_lines_store_the_version_that_priced_them(engine: Engine) -> None:
    gateway = CardSimulator()
    nipoplus_with_customer(engine, gateway)
    publish(engine, "nipoplus-gold-200.toml")
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2025, 6, 10, 12))
    with engine.connect() as conn:
        lines = conn.execute(select(tables.invoices.c.issued_on, tables.invoice_lines.c.amount,
                                    tables.invoice_lines.c.catalog_version).join(tables.invoices).order_by(
            tables.invoices.c.seq)).all()
        phases = conn.execute(select(tables.subscription_phases.c.start, tables.subscription_phases.c.catalog_version)
                              .join(tables.subscriptions).where(tables.subscriptions.c.plan == "gold")
                              .order_by(tables.subscription_phases.c.start)).all()
        version = conn.execute(select(tables.subscriptions.c.catalog_version).where(
            tables.subscriptions.c.plan == "gold")).scalar_one()
    # Apr 10, May 10: 10 × 180 at version 1; Jun 10, the first renewal after Jun 1: 10 × 200 at version 2
    assert [(d.isoformat(), a, v) for d, a, v in lines] == [("2025-04-10", 1800, 1), ("2025-05-10", 1800, 1),
                                                           ("2025-06-10", 2000, 2)]
    assert [(d.isoformat(), v) for d, v in phases] == [("2025-04-10", 1), ("2025-06-10", 2)]
    assert version == 2


def test_a_publish_that_drops_an_add_on_or_its_billing_with_subscribers_is_refused_and_changes_nothing(
        engine: Engine) -> None:
    """LINE OA: a customer renews a monthly premium ID. A version without the add-on, or without its monthly price,
    would leave that subscription nothing to renew on."""
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "LINE OA", "line-oa", at(2025, 4, 1))
        billing.create_customer(uow, tenant, gateway, "shop", "商店", at(2025, 4, 1), payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "shop", at(2025, 4, 10, 10), "light")
        billing.set_premium_id(uow, tenant, gateway, "shop", at(2025, 4, 10, 10), "@kakin-shop")
    shipped = shipped_path("line-oa").read_text(encoding="utf-8")
    start = shipped.index("[addons.premium_id.prices.monthly]")
    without_monthly = shipped[:start] + shipped[shipped.index("[addons.premium_id.prices.annual]"):]
    without_monthly = without_monthly.replace("monthly = 0\n", "")  # its plan override names the dropped billing
    without_addon = shipped[:shipped.index("[addons.premium_id]")]
    versions, audit = rows(engine, "catalog_versions"), rows(engine, "audit_log")
    for text in (without_monthly, without_addon):
        with UnitOfWork(engine) as uow, pytest.raises(AddonHasSubscribers) as refused:
            row = uow.tenant("oa")
            assert row is not None
            catalogs.publish(uow, row, text, "line-oa.toml", effective_at=JUNE_1, existing="next_period",
                             actor="operator", now=at(2025, 5, 20))
        assert (refused.value.code, refused.value.param) == ("addon_has_subscribers", "addons")
        assert refused.value.as_dict()["addons"] == {"premium_id.monthly": 1}  # listed in the API's error body
        assert "nothing was published" in str(refused.value)
        assert (rows(engine, "catalog_versions"), rows(engine, "audit_log")) == (versions, audit)
    with UnitOfWork(engine) as uow:  # keeping the add-on as it is publishes
        row = uow.tenant("oa")
        assert row is not None
        out = catalogs.publish(uow, row, shipped.replace("unit_amount = 1200", "unit_amount = 1000"), "line-oa.toml",
                               effective_at=JUNE_1, existing="next_period", actor="operator", now=at(2025, 5, 20))
    assert out["version"] == 2
