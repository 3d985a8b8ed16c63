"""Due work is shared fairly between tenants: one pass serves each tenant with due accounts in turn.

A tenant with a large backlog (here 20 customers, batches of 5) must not hold
back a tenant with two: the small tenant's renewals are done within the first
rounds of a pass, while the large tenant still has due work (issue 10, item 4).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import billing, due_work
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGNUP = datetime(2026, 5, 3, 10, tzinfo=JST)
NOW = datetime(2026, 6, 3, 1, tzinfo=JST)  # each customer owes the week-before notice (May 27), then the June 3 renewal


class NoMail:
    """A mail server that accepts every message (the notices are not what is tested here)."""

    def send(self, message: EmailMessage) -> None:
        return None


def no_post(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no webhook endpoint exists, so nothing is posted")


def tenant_with_customers(engine: Engine, code: str, n: int, gateway: CardSimulator) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, code, code, "nipoplus", SIGNUP)
        for i in range(n):
            billing.create_customer(uow, tenant, gateway, f"c{i}", f"顧客{i}", SIGNUP, payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, f"c{i}", SIGNUP, "gold", seats=10)


def due_accounts(engine: Engine, code: str) -> int:
    c, t = tables.customers, tables.tenants
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(c.join(t, t.c.id == c.c.tenant_id)).where(
            t.c.code == code, c.c.next_due_at <= NOW)).scalar_one())


def renewals(engine: Engine, code: str) -> int:
    inv, t = tables.invoices, tables.tenants
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inv.join(t, t.c.id == inv.c.tenant_id)).where(
            t.c.code == code, inv.c.issued_on == NOW.date())).scalar_one())


def test_a_small_tenants_due_work_is_done_in_the_first_rounds_while_a_large_tenant_has_a_backlog(engine: Engine) -> None:
    gateway = CardSimulator()
    tenant_with_customers(engine, "large", 20, gateway)  # created first: served first by the tenants' order
    tenant_with_customers(engine, "small", 2, gateway)
    batches: list[dict[str, Any]] = []
    # Four batches: the small tenant needs two (its notices, then its renewals), one per round of the pass.
    done = due_work.run_pass(engine, gateway, NoMail(), no_post, NOW, batch_size=5, log=batches.append,
                             stop=lambda: len(batches) >= 4)
    assert [b["tenant"] for b in batches] == ["large", "small", "large", "small"]
    assert done["small"] == 4  # 2 customers × (notice + renewal)
    assert due_accounts(engine, "small") == 0 and renewals(engine, "small") == 2
    assert done["large"] == 10 and due_accounts(engine, "large") == 20  # 2 batches of 5 notices; every renewal still due
    # The next pass finishes the large tenant's backlog, the small tenant having nothing left.
    more = due_work.run_pass(engine, gateway, NoMail(), no_post, NOW, batch_size=5, log=batches.append)
    assert more["small"] == 0 and more["large"] == 30  # 10 notices and 20 renewals left
    assert due_accounts(engine, "large") == 0 and renewals(engine, "large") == 20

