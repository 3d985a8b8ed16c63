"""The operator actions refuse themselves in the services: each takes the acting operator, refuses a role that may
not (RoleForbidden, nothing changed) or another tenant's operator (NotFound), and audit-logs under the operator.
Retry now and write off, the dunning page's actions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain import errors
from kakin.services import billing, due_run, eligibility, operations, payments, tenancy, webhooks
from kakin.services.operators import ConsoleOperator
from kakin.services.tenancy import create_tenant, open_tenant

START = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)  # 10:00 JST


def _as(engine: Engine, role: str, tenant: str = "t") -> ConsoleOperator:
    with UnitOfWork(engine) as uow:
        row = uow.tenant(tenant)
        assert row is not None
        return ConsoleOperator(row, role, f"{role}@{tenant}.example")


@pytest.fixture
def past_due(engine: Engine) -> tuple[CardSimulator, str]:
    """NipoPlus acme, GOLD 10 seats paid at sign-up; its card then declines, and the June renewal fails: 1 attempt."""
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "T", "nipoplus", START)
        create_tenant(uow, "other", "Other", "nipoplus", START)
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", START, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", START, "gold", seats=10)
        billing.set_payment_method(uow, tenant, gateway, "acme", START, "pm_card_chargeDeclined")
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, START + timedelta(days=31))
    with UnitOfWork(engine) as uow:
        (inv,) = [r for r in uow.invoices_for(open_tenant(uow, "t").row) if r["status"] == "open"]
    assert inv["attempts"] == 1 and inv["total"] == 1800  # 180 yen × 10 seats, tax included
    return gateway, inv["number"]


def _invoice(engine: Engine, number: str) -> dict[str, Any]:
    with UnitOfWork(engine) as uow:
        (row,) = uow.invoices_for(open_tenant(uow, "t").row, number=number)
        return row


def _audit(engine: Engine, action: str) -> list[dict[str, Any]]:
    with UnitOfWork(engine) as uow:
        return [r for r in uow.audit_rows(open_tenant(uow, "t").row) if r["action"] == action]


def test_every_operator_action_refuses_a_viewer_and_changes_nothing(engine: Engine,
                                                                     past_due: tuple[CardSimulator, str]) -> None:
    gateway, number = past_due
    viewer = _as(engine, "viewer")
    actions = [
        lambda uow, t: operations.set_collection(uow, t, gateway, viewer, "acme", "bank_transfer", START),
        lambda uow, t: operations.mark_paid(uow, t, gateway, viewer, number, START),
        lambda uow, t: operations.issue_credit_note(uow, t, gateway, viewer, number, 100, "x", START),
        lambda uow, t: payments.retry_now(uow, t, gateway, viewer, number, START),
        lambda uow, t: payments.write_off(uow, t, gateway, viewer, number, START),
        lambda uow, t: eligibility.verify_account(uow, t, viewer, "acme", START),
        lambda uow, t: eligibility.review_queue(uow, t, viewer, START),
        lambda uow, t: tenancy.update_tenant(uow, viewer, START, name="X"),
        lambda uow, t: webhooks.create_endpoint(uow, viewer, "https://example.com/hook", [], START),
        lambda uow, t: webhooks.resend(uow, viewer, "whd_1", START),
    ]
    before = len(_audit(engine, "customer.collection"))
    for act in actions:
        with pytest.raises(errors.RoleForbidden), UnitOfWork(engine) as uow:
            act(uow, open_tenant(uow, "t"))
    inv = _invoice(engine, number)
    assert (inv["status"], inv["attempts"], inv["credited"]) == ("open", 1, 0)
    assert len(_audit(engine, "customer.collection")) == before
    with UnitOfWork(engine) as uow:
        assert open_tenant(uow, "t").row.name == "T"


def test_a_reviewer_may_not_take_payments_and_a_billing_admin_may_not_review(engine: Engine,
                                                                             past_due: tuple[CardSimulator, str]) -> None:
    gateway, number = past_due
    reviewer, billing_admin = _as(engine, "reviewer"), _as(engine, "billing_admin")
    with pytest.raises(errors.RoleForbidden), UnitOfWork(engine) as uow:
        operations.mark_paid(uow, open_tenant(uow, "t"), gateway, reviewer, number, START)
    with pytest.raises(errors.RoleForbidden), UnitOfWork(engine) as uow:
        eligibility.verify_account(uow, open_tenant(uow, "t"), billing_admin, "acme", START)


def test_an_operator_of_another_tenant_finds_nothing(engine: Engine, past_due: tuple[CardSimulator, str]) -> None:
    gateway, number = past_due
    stranger = _as(engine, "owner", tenant="other")
    with pytest.raises(errors.NotFound), UnitOfWork(engine) as uow:
        operations.mark_paid(uow, open_tenant(uow, "t"), gateway, stranger, number, START)
    assert _invoice(engine, number)["status"] == "open"


def test_retry_now_charges_at_once_and_a_failure_counts_as_an_attempt(engine: Engine,
                                                                      past_due: tuple[CardSimulator, str]) -> None:
    gateway, number = past_due
    admin = _as(engine, "billing_admin")
    later = START + timedelta(days=31, hours=2)
    charged = len(gateway.charged)
    with UnitOfWork(engine) as uow:
        out = payments.retry_now(uow, open_tenant(uow, "t"), gateway, admin, number, later)
    assert out == {"number": number, "status": "open", "attempts": 2}  # the card still declines
    inv = _invoice(engine, number)
    assert inv["attempts"] == 2 and inv["next_retry_at"] is not None  # dunning goes on from the first failure
    assert _audit(engine, "invoice.retry_now")[0]["actor"] == "operator:billing_admin@t.example"
    assert len(gateway.charged) == charged  # a declined charge takes nothing
    with UnitOfWork(engine) as uow:  # a new card pays what is open at once; then there is nothing to retry
        billing.set_payment_method(uow, open_tenant(uow, "t"), gateway, "acme", later, "pm_card_visa")
    assert _invoice(engine, number)["status"] == "paid"
    with pytest.raises(errors.InvoiceNotOpen), UnitOfWork(engine) as uow:
        payments.retry_now(uow, open_tenant(uow, "t"), gateway, admin, number, later)


def test_write_off_makes_the_invoice_uncollectible_and_stops_its_retries(engine: Engine,
                                                                         past_due: tuple[CardSimulator, str]) -> None:
    gateway, number = past_due
    owner = _as(engine, "owner")
    assert _plan_status(engine) == "past_due"
    with UnitOfWork(engine) as uow:
        out = payments.write_off(uow, open_tenant(uow, "t"), gateway, owner, number, START + timedelta(days=31))
    assert out == {"number": number, "status": "uncollectible"}
    inv = _invoice(engine, number)
    assert (inv["status"], inv["next_retry_at"], inv["total"]) == ("uncollectible", None, 1800)  # the invoice unchanged
    assert _audit(engine, "invoice.write_off")[0]["actor"] == "operator:owner@t.example"
    assert _plan_status(engine) == "active"  # nothing is overdue any more: no longer past due


def _plan_status(engine: Engine) -> str:
    with UnitOfWork(engine) as uow:
        account = billing.load(uow, open_tenant(uow, "t"), "acme", lock=False)
    assert account.plan_subscription is not None
    return account.plan_subscription.status.value
