"""Declined purchases are refused, sign-ups awaiting 3-D Secure expire, hard declines are not retried, small balances
are written off (issue 9 items 6–8), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import CardDeclined
from kakin.services import access, billing, due_run, payments
from kakin.services.entitlements import entitlements
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
START = datetime(2025, 5, 3, 10, tzinfo=JST)


def seed(engine: Engine, gateway: CardSimulator, card: str, catalog: str = "nipoplus") -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "T", catalog, START)
        account = billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", START, payment_method=card)
        assert account.id is not None
        access.add_super_admin(uow, tenant.row, account.id, "boss@acme.example", "社長", START)


def run(engine: Engine, gateway: CardSimulator, until: datetime) -> None:
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, until)


def command(engine: Engine, gateway: CardSimulator, name: str, now: datetime, *args: Any, **kwargs: Any) -> None:
    with UnitOfWork(engine) as uow:
        getattr(billing, name)(uow, open_tenant(uow, "t"), gateway, "acme", now, *args, **kwargs)


def invoices(engine: Engine) -> list[dict[str, Any]]:
    with UnitOfWork(engine) as uow:
        return uow.invoices_for(open_tenant(uow, "t").row)


def attempts(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.payment_attempts).order_by(tables.payment_attempts.c.id)).mappings()]


def rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def plan(engine: Engine) -> tuple[str, str, str | None]:
    with UnitOfWork(engine) as uow:
        account = billing.load(uow, open_tenant(uow, "t"), "acme", lock=False)
    sub = account.plan_subscription
    assert sub is not None
    return sub.plan, sub.status.value, account.payment_method


def events(engine: Engine) -> list[str]:
    return [e["type"] for e in rows(engine, tables.webhook_events)] if "webhook_events" in tables.metadata.tables else []


def audit_events(engine: Engine) -> list[str]:
    import json

    out = []
    for r in rows(engine, tables.audit_log):
        after = json.loads(r["after"]) if r["after"] else {}
        out += [e["event"] for e in after.get("events", [])]
    return out


def test_a_declined_sign_up_is_refused_with_nothing_owed_and_its_attempt_kept_in_the_payment_log(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_chargeDeclinedInsufficientFunds")
    with pytest.raises(CardDeclined) as refused:
        command(engine, gateway, "subscribe", START, "gold", seats=10)
    assert (refused.value.code, refused.value.decline_code, refused.value.param) == (
        "card_declined", "insufficient_funds", "payment_method")
    assert invoices(engine) == [] and plan(engine)[:2] == ("free", "active")
    [attempt] = attempts(engine)
    # 180 × 10 = 1,800 was asked for once and refused; the attempt names the customer, not an invoice
    assert (attempt["invoice_id"], attempt["customer_id"], attempt["amount"], attempt["outcome"], attempt["code"]) == (
        None, 1, 1800, "failed", "insufficient_funds")
    command(engine, gateway, "set_payment_method", START + timedelta(minutes=5), "pm_card_visa")
    command(engine, gateway, "subscribe", START + timedelta(minutes=5), "gold", seats=10)
    [invoice] = invoices(engine)
    assert (invoice["number"], invoice["total"], invoice["status"]) == ("T-00000001", 1800, "paid")  # gapless
    later = attempts(engine)
    assert [a["outcome"] for a in later] == ["failed", "succeeded"]
    assert later[0]["idempotency_key"] != later[1]["idempotency_key"]  # the new card is a new payment at the gateway
    assert [amount for _, amount, _ in gateway.charged] == [1800]


def test_an_upgrade_whose_charge_is_declined_leaves_the_customer_on_its_plan(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_visa", catalog="line-oa")
    april = datetime(2025, 4, 10, 10, tzinfo=JST)
    command(engine, gateway, "subscribe", april, "light")
    command(engine, gateway, "set_payment_method", april, "pm_card_chargeDeclinedExpiredCard")
    with pytest.raises(CardDeclined) as refused:
        command(engine, gateway, "change_plan", april + timedelta(days=5), "standard")
    assert refused.value.decline_code == "expired_card"
    assert plan(engine) == ("light", "active", "pm_card_chargeDeclinedExpiredCard")  # not taken off: nothing happened
    assert [(i["total"], i["status"]) for i in invoices(engine)] == [(5500, "paid")]  # 5,000 + tax 500; no 11,000
    assert [(a["invoice_id"] is None, a["amount"], a["code"]) for a in attempts(engine)] == [
        (False, 5500, None), (True, 11000, "expired_card")]  # 15,000 − 5,000 = 10,000 + tax 1,000 was refused


def test_a_sign_up_awaiting_3d_secure_is_incomplete_and_expires_after_23_hours(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_authenticationRequired")
    command(engine, gateway, "subscribe", START, "gold", seats=10)
    [invoice] = invoices(engine)
    assert (invoice["status"], plan(engine)[:2]) == ("open", ("gold", "incomplete"))
    with UnitOfWork(engine) as uow:
        status = payments.payment_status(uow, open_tenant(uow, "t"), gateway, "acme", invoice["number"])
    assert status["status"] == "requires_action" and status["client_secret"]
    run(engine, gateway, START + timedelta(hours=22, minutes=59))
    assert plan(engine)[:2] == ("gold", "incomplete")  # not retried off-session meanwhile
    run(engine, gateway, START + timedelta(hours=23))
    [invoice] = invoices(engine)
    assert invoice["status"] == "void" and plan(engine)[:2] == ("free", "active")  # no subscription, nothing owed
    assert len(attempts(engine)) == 1 and gateway.charged == []
    assert "subscription.incomplete_expired" in audit_events(engine)


def test_a_sign_up_completed_with_3d_secure_within_23_hours_is_active(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_authenticationRequired")
    command(engine, gateway, "subscribe", START, "gold", seats=10)
    with UnitOfWork(engine) as uow:  # no paid features until it is paid
        assert entitlements(uow, open_tenant(uow, "t"), "acme", START)["active"] is False
    gateway.authenticate(attempts(engine)[0]["reference"])
    with UnitOfWork(engine) as uow:
        payments.restore_payment(uow, open_tenant(uow, "t"), gateway, "acme", START + timedelta(hours=2))
    run(engine, gateway, START + timedelta(days=2))
    assert [i["status"] for i in invoices(engine)] == ["paid"] and plan(engine)[:2] == ("gold", "active")
    with UnitOfWork(engine) as uow:
        assert entitlements(uow, open_tenant(uow, "t"), "acme", START + timedelta(days=2))["active"] is True


def test_a_hard_decline_is_not_retried_the_customer_is_asked_for_a_new_card_and_dunning_still_ends(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_visa")
    command(engine, gateway, "subscribe", START, "gold", seats=10)
    command(engine, gateway, "set_payment_method", START + timedelta(days=10), "pm_card_chargeDeclinedLostCard")
    run(engine, gateway, datetime(2025, 6, 9, 23, tzinfo=JST))  # the June 3 renewal fails; the window is open
    assert plan(engine) == ("gold", "past_due", None)  # the lost card is taken off the customer
    assert [a["code"] for a in attempts(engine)] == [None, "lost_card"]  # one attempt, no retry on June 4, 6, 8
    assert "payment.new_card_needed" in audit_events(engine)
    [mail] = [r for r in rows(engine, tables.outbox) if r["kind"] == "payment.failed"]
    assert "このカードでの再試行は行いません" in mail["body"] and "2025-06-10 00:00 までに" in mail["body"]
    run(engine, gateway, datetime(2025, 6, 10, 0, tzinfo=JST))  # June 3 + 7 days: the catalog's end state
    assert plan(engine)[:2] == ("free", "active")
    assert [i["status"] for i in invoices(engine)] == ["paid", "uncollectible"]
    assert len(attempts(engine)) == 2 and len(gateway.charged) == 1


def test_a_new_card_after_a_hard_decline_is_charged_at_once(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_visa")
    command(engine, gateway, "subscribe", START, "gold", seats=10)
    command(engine, gateway, "set_payment_method", START + timedelta(days=10), "pm_card_chargeDeclinedStolenCard")
    run(engine, gateway, datetime(2025, 6, 4, 12, tzinfo=JST))
    assert [a["code"] for a in attempts(engine)] == [None, "stolen_card"]  # June 3, and no retry on June 4
    command(engine, gateway, "set_payment_method", datetime(2025, 6, 4, 12, tzinfo=JST), "pm_card_visa")
    assert [i["status"] for i in invoices(engine)] == ["paid", "paid"] and plan(engine)[:2] == ("gold", "active")
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]


def test_a_new_card_that_declines_softly_after_a_hard_decline_follows_the_retry_days_of_the_first_failure(
        engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_visa")
    command(engine, gateway, "subscribe", START, "gold", seats=10)
    command(engine, gateway, "set_payment_method", START + timedelta(days=10), "pm_card_chargeDeclinedExpiredCard")
    run(engine, gateway, datetime(2025, 6, 5, 12, tzinfo=JST))
    command(engine, gateway, "set_payment_method", datetime(2025, 6, 5, 12, tzinfo=JST),
            "pm_card_chargeDeclinedProcessingError")
    run(engine, gateway, datetime(2025, 6, 9, 23, tzinfo=JST))
    assert plan(engine) == ("gold", "past_due", "pm_card_chargeDeclinedProcessingError")
    run(engine, gateway, datetime(2025, 6, 10, 1, tzinfo=JST))
    tried = [(a["at"].astimezone(JST).date().isoformat(), a["code"]) for a in attempts(engine)[1:]]
    # June 3 hard (no retry on June 4); the new card at once on June 5, then June 3 + 3, 5 and 7 days
    assert tried == [("2025-06-03", "expired_card"), ("2025-06-05", "processing_error"), ("2025-06-06", "processing_error"),
                     ("2025-06-08", "processing_error"), ("2025-06-10", "processing_error")]
    assert plan(engine)[:2] == ("free", "active")


def test_a_small_balance_of_a_deleted_customer_is_written_off_at_once(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, "pm_card_visa", catalog="lineworks")
    command(engine, gateway, "subscribe", datetime(2025, 3, 31, 10, tzinfo=JST), "lite", contract="monthly", members=1,
            trial_days=0)
    run(engine, gateway, datetime(2025, 4, 1, 1, tzinfo=JST))
    # April 1: 1 day × 360 ÷ 31 = 11.6 → 11, tax 1: 12 yen, below the 50-yen minimum; May 1 could still take it
    assert [(i["total"], i["status"], i["deferred"]) for i in invoices(engine)] == [(12, "open", True)]
    command(engine, gateway, "delete_customer", datetime(2025, 4, 1, 10, tzinfo=JST))
    # deleted on April 1: no day of April is used, so no later charge can take the 12 yen
    assert [(i["total"], i["status"]) for i in invoices(engine)] == [(12, "uncollectible")]
    assert "invoice.written_off" in audit_events(engine)
    run(engine, gateway, datetime(2025, 6, 1, 1, tzinfo=JST))
    assert [(i["total"], i["status"]) for i in invoices(engine)] == [(12, "uncollectible")] and gateway.charged == []
