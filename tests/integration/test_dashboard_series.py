"""The dashboard's monthly series are summed incrementally (services.series): still exact after later invoices,
credit notes, usage and voids, and on PostgreSQL when a lower id commits after a higher one was read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import analytics, billing, due_run, operations, series, usage
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
MAY_3 = datetime(2026, 5, 3, 10, tzinfo=JST)


def board(engine: Engine, code: str = "t", today: date = date(2026, 5, 31)) -> analytics.Dashboard:
    with UnitOfWork(engine, readonly=True) as uow:
        return analytics.dashboard(uow, open_tenant(uow, code).row, today)


def test_later_invoices_credit_notes_and_voids_show_in_the_next_dashboard(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "t", "nipoplus", MAY_3)
        billing.create_customer(uow, tenant, gateway, "a", "a", MAY_3, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "a", MAY_3, "gold", seats=10)
    assert board(engine).invoiced_by_month[-1] == ("2026-05", 1637)  # 1,800 − floor(1,800 × 10 ÷ 110) = 1,637
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        billing.create_customer(uow, tenant, gateway, "b", "b", MAY_3, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "b", MAY_3, "gold", seats=5)
        number = str(uow.invoices_for(tenant.row)[0]["number"])
        operations.issue_credit_note(uow, tenant, gateway, CommandLine(tenant.row), number, 110, "返金", MAY_3 + timedelta(days=1))
    # + 900 − floor(900 × 10 ÷ 110) = 819; − the credit note 110 − floor(110 × 10 ÷ 110) = 100 → 1,637 + 819 − 100
    assert board(engine).invoiced_by_month[-1] == ("2026-05", 2356)
    with UnitOfWork(engine) as uow:  # a sign-up awaiting 3-D Secure: invoiced, open ...
        tenant = open_tenant(uow, "t")
        billing.create_customer(uow, tenant, gateway, "c", "c", MAY_3, payment_method="pm_card_authenticationRequired")
        billing.subscribe(uow, tenant, gateway, "c", MAY_3, "gold", seats=20)
    assert board(engine).invoiced_by_month[-1] == ("2026-05", 5629)  # + 3,600 − floor(3,600 × 10 ÷ 110) = 3,273
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, MAY_3 + timedelta(days=2))  # ... void after 23 hours
    assert board(engine).invoiced_by_month[-1] == ("2026-05", 2356)  # the void invoice is no sale


def test_later_messages_show_in_the_next_dashboard(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "oa", "line-oa", MAY_3)
        billing.create_customer(uow, tenant, gateway, "a", "a", MAY_3)
        usage.consume(uow, tenant, "a", "messages", 120, MAY_3)
    assert board(engine, "oa").messages_by_month[-1] == ("2026-05", 120)
    with UnitOfWork(engine) as uow:
        usage.consume(uow, open_tenant(uow, "oa"), "a", "messages", 30, MAY_3)
    assert board(engine, "oa").messages_by_month[-1] == ("2026-05", 150)  # 120 + 30


def _invoice(tenant_id: int, customer_id: int, seq: int, total: int) -> dict[str, object]:
    at = datetime(2026, 5, 3, tzinfo=UTC)
    return {"tenant_id": tenant_id, "customer_id": customer_id, "seq": seq, "number": f"T-{seq}",
            "issued_on": date(2026, 5, 3), "issued_at": at, "subtotal": total, "tax": 0, "total": total,
            "tax_rate": "10%", "tax_inclusive": False, "credit_applied": 0, "credit_carried": 0, "status": "paid"}


def test_on_postgresql_an_invoice_committed_after_a_higher_id_was_read_is_still_counted(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "t", "lineworks", MAY_3)
        customer = uow.conn.execute(insert(tables.customers).values(
            tenant_id=tenant.row.id, key="a", name="a", created_at=MAY_3).returning(tables.customers.c.id)).scalar_one()
    tid = tenant.row.id
    now = [0.0]

    def sums() -> dict[date, int]:
        with UnitOfWork(engine, readonly=True) as uow:
            return series.sums(uow, "invoices", ("test", tid), lambda a, u: uow.reports.invoice_sums(tid, a, u),
                               clock=lambda: now[0])

    slow = engine.connect()
    slow_tx = slow.begin()
    slow.execute(insert(tables.invoices).values(**_invoice(tid, customer, 1, 100)))  # takes the lower id, uncommitted
    with engine.begin() as conn:
        conn.execute(insert(tables.invoices).values(**_invoice(tid, customer, 2, 20)))  # the higher id, committed
    assert sums() == {date(2026, 5, 3): 20}
    slow_tx.commit()
    slow.close()
    now[0] = 2.0  # the second call, two seconds later, sees every writer of the first one ended
    assert sums() == {date(2026, 5, 3): 120}  # 20 + 100
    now[0] = 4.0
    assert sums() == {date(2026, 5, 3): 120}  # and it settled both: nothing counted twice
    with engine.begin() as conn:
        conn.execute(insert(tables.invoices).values(**_invoice(tid, customer, 3, 3)))
    assert sums() == {date(2026, 5, 3): 123}  # 20 + 100 + 3
    engine.dispose()
