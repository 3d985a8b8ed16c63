"""The dashboard's monthly sums saved by the worker (migration 0027): a new process's first dashboard reads the saved
sums and the rows above their mark, not every invoice, and its figures stay exact (later invoices, credit notes)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from kakin.adapters.db import reports_repo
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.db.reports_repo import ReportRepository
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import analytics, billing, due_work, operations, series
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
MAY_3 = datetime(2026, 5, 3, 10, tzinfo=JST)


class NoMail:
    """A mail server that accepts every message (the notices are not what is tested here)."""

    def send(self, message: Any) -> None:
        return None


def no_post(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no webhook endpoint exists, so nothing is posted")


def subscribe(engine: Engine, gateway: CardSimulator, key: str, seats: int) -> None:
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        billing.create_customer(uow, tenant, gateway, key, key, MAY_3, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, key, MAY_3, "gold", seats=seats)


def board(engine: Engine) -> analytics.Dashboard:
    with UnitOfWork(engine, readonly=True) as uow:
        return analytics.dashboard(uow, open_tenant(uow, "t").row, date(2026, 5, 31))


def save(engine: Engine) -> int:
    """What the worker's pass does for the dashboard, twice (on PostgreSQL rows settle at a later pass)."""
    with UnitOfWork(engine, readonly=True) as uow:
        tid = open_tenant(uow, "t").row.id
    return sum(analytics.save_sums(lambda readonly: UnitOfWork(engine, readonly=readonly), [tid]) for _ in range(2))


def test_a_new_processs_first_dashboard_reads_the_saved_sums_and_only_the_invoices_above_their_mark(
        database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "GRACE_SECONDS", 0.0)  # PostgreSQL: settle at the next pass, however soon
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "t", "t", "nipoplus", MAY_3)
    subscribe(engine, gateway, "a", 10)
    subscribe(engine, gateway, "b", 5)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        number = str(uow.invoices_for(tenant.row)[0]["number"])
        operations.issue_credit_note(uow, tenant, gateway, CommandLine(tenant.row), number, 110, "返金",
                                     MAY_3 + timedelta(days=1))
    assert save(engine) >= 2  # the invoices' and the credit notes' series (no usage in NipoPlus)
    with UnitOfWork(engine, readonly=True) as uow:
        mark = uow.reports.saved_mark(open_tenant(uow, "t").row.id, "invoices")
    assert mark >= 2  # both invoices are in the saved sums
    subscribe(engine, gateway, "c", 20)  # after the save: only in the rows above the mark

    read_after: list[int] = []
    invoice_sums = ReportRepository.invoice_sums

    def recording(self: ReportRepository, tenant_id: int, after_id: int, until_id: int | None = None) -> reports_repo.Sums:
        read_after.append(after_id)
        return invoice_sums(self, tenant_id, after_id, until_id)

    monkeypatch.setattr(ReportRepository, "invoice_sums", recording)
    fresh = make_engine(database_url)  # another process: nothing kept in memory yet
    try:
        # a: 1,800 − floor(1,800 × 10 ÷ 110) = 1,637; b: 900 − floor(900 × 10 ÷ 110) = 819; the credit note:
        # −(110 − floor(110 × 10 ÷ 110)) = −100; c (after the save): 3,600 − floor(3,600 × 10 ÷ 110) = 3,273
        # → 1,637 + 819 − 100 + 3,273 = 5,629
        assert board(fresh).invoiced_by_month[-1] == ("2026-05", 5629)
    finally:
        fresh.dispose()
    assert read_after and min(read_after) >= mark  # never from the first invoice


def test_the_worker_pass_saves_the_sums_and_the_dashboard_stays_exact_after_later_writes(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "GRACE_SECONDS", 0.0)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "t", "t", "nipoplus", MAY_3)
    subscribe(engine, gateway, "a", 10)
    done = [due_work.run_pass(engine, gateway, NoMail(), no_post, MAY_3 + timedelta(minutes=n)) for n in range(2)]
    assert sum(d["dashboard sums saved"] for d in done) >= 1
    subscribe(engine, gateway, "b", 5)
    assert board(engine).invoiced_by_month[-1] == ("2026-05", 2456)  # 1,637 + 819


def test_a_save_never_replaces_sums_that_reach_further(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        tid = create_tenant(uow, "t", "t", "nipoplus", MAY_3).row.id
    may_3, may_4 = date(2026, 5, 3), date(2026, 5, 4)
    with UnitOfWork(engine) as uow:
        assert uow.reports.save_sums(tid, "invoices", 5, {may_3: 100, may_4: 50})
    with UnitOfWork(engine) as uow:
        assert not uow.reports.save_sums(tid, "invoices", 3, {may_3: 70})  # a slower worker's older sums
        assert not uow.reports.save_sums(tid, "invoices", 5, {may_3: 100, may_4: 50})
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.reports.saved_sums(tid, "invoices") == (5, [(may_3, 100), (may_4, 50)])
        assert uow.reports.saved_sums(tid, "credit_notes") == (0, [])
