"""A gateway that times out or loses its answer after charging, and the invoice counter never locked while a card is
charged (issue 10 item 3), on SQLite and PostgreSQL.

NipoPlus GOLD, 10 seats from May 3: 180 × 10 = 1,800 yen at the sign-up and on June 3.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from kakin.adapters.db import store as store_module
from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import CardSimulator, ChargeOutcome
from kakin.domain import errors
from kakin.services import billing
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGNUP = datetime(2026, 5, 3, 10, tzinfo=JST)
JUNE_3 = datetime(2026, 6, 3, 1, tzinfo=JST)


def signed_up(engine: Engine, gateway: CardSimulator, key: str = "acme") -> None:
    with UnitOfWork(engine) as uow:
        tenant = uow.tenant("nipoplus") and open_tenant(uow, "nipoplus") or create_tenant(
            uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        billing.create_customer(uow, tenant, gateway, key, "株式会社アクメ", SIGNUP, payment_method="pm_card_visa")
    sign_up(engine, gateway, key)


def sign_up(engine: Engine, gateway: Any, key: str = "acme") -> None:
    def work(uow: UnitOfWork) -> None:
        billing.subscribe(uow, open_tenant(uow, "nipoplus"), gateway, key, SIGNUP, "gold", seats=10)
    in_transaction(engine, work)


def invoices(engine: Engine) -> list[tuple[int, str, int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(  # type: ignore[misc]
            tables.invoices.c.seq, tables.invoices.c.number, tables.invoices.c.total, tables.invoices.c.status).order_by(
            tables.invoices.c.seq))]


def attempts(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(  # type: ignore[misc]
            tables.payment_attempts.c.outcome, tables.payment_attempts.c.idempotency_key).order_by(
            tables.payment_attempts.c.id))]


def test_a_renewal_whose_answer_the_gateway_lost_is_charged_once_when_the_next_run_redoes_it(engine: Engine) -> None:
    gateway = CardSimulator()
    signed_up(engine, gateway)
    billing.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2026, 5, 28, tzinfo=JST))  # the notice
    gateway.fault = "lost_answer"
    assert billing.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3) == 0  # rolled back, left for later
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # the gateway did charge June
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid")]
    gateway.fault = None
    assert billing.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3) == 1
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # the same key: answered, not charged again
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "paid")]
    assert [outcome for outcome, _ in attempts(engine)] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("fault", ["timeout", "lost_answer"])
def test_a_sign_up_the_gateway_did_not_answer_is_refused_503_and_its_retry_charges_once(engine: Engine, fault: str) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", SIGNUP, payment_method="pm_card_visa")
    gateway.fault = fault
    with pytest.raises(errors.PaymentGatewayUnavailable) as refused:
        sign_up(engine, gateway)
    assert refused.value.code == "payment_gateway_unavailable"
    assert invoices(engine) == [] and attempts(engine) == []  # nothing changed, no number taken
    gateway.fault = None
    sign_up(engine, gateway)
    assert [amount for _, amount, _ in gateway.charged] == [1800]  # 180 × 10, charged once either way
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid")]


class SlowGateway(CardSimulator):
    """Charges only when told to, so a test can act while a charge is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.charging, self.go = threading.Event(), threading.Event()

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        self.charging.set()
        assert self.go.wait(timeout=30)
        return super().charge(payment_method, amount, idempotency_key, customer)


def test_another_customer_is_invoiced_while_a_renewal_is_being_charged_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, the tenant's invoice counter was locked before the charge: the second sign-up waited for it to the
    # lock timeout. Now the renewal is numbered after its charge, so the sign-up takes number 3 at once.
    engine = make_engine(pg_url)
    migrate(engine)
    gateway = SlowGateway()
    gateway.go.set()
    signed_up(engine, gateway, "acme")
    billing.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2026, 5, 28, tzinfo=JST))
    gateway.go.clear()
    gateway.charging.clear()
    renewal = threading.Thread(target=billing.run_due, args=(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3))
    renewal.start()
    assert gateway.charging.wait(timeout=30)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_MS", 1000)
    signed_up(engine, CardSimulator(), "beta")  # another customer, another gateway: not held by the slow charge
    gateway.go.set()
    renewal.join(timeout=30)
    # acme's sign-up, beta's (taken while acme's renewal was charging), then the June renewals (the run renews
    # beta too, signed up on the same day), numbered without a gap
    assert invoices(engine) == [(n, f"NIPOPLUS-{n:08d}", 1800, "paid") for n in (1, 2, 3, 4)]
    with engine.connect() as conn:
        beta = conn.execute(select(tables.invoices.c.seq).join(tables.customers).where(
            tables.customers.c.key == "beta").order_by(tables.invoices.c.seq)).scalars().first()
    assert beta == 2
    engine.dispose()
