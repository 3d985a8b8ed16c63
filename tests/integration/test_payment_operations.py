"""Bank transfer, payments received by hand, restore payment after 3-D Secure, credit notes and refunds."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.adapters.pdf import render_pdf
from kakin.domain.errors import KakinError
from kakin.services import billing, due_run, operations, payments
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
START = datetime(2022, 5, 3, 10, tzinfo=JST)


def seed(engine: Engine, gateway: CardSimulator, card: str | None = "pm_card_visa", catalog: str = "nipoplus") -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "株式会社カキン（デモ）", catalog, START, registration_number="T8000000000001")
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", START, payment_method=card)


def pays_by_transfer_on_gold(engine: Engine, gateway: CardSimulator) -> None:
    """acme is switched to bank transfer (請求書払い), then takes GOLD with 10 seats: its invoice waits for a transfer."""
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        operations.set_collection(uow, tenant, gateway, CommandLine(tenant.row), "acme", "bank_transfer", START)
        billing.subscribe(uow, tenant, gateway, "acme", START, "gold", seats=10)


def invoices(engine: Engine) -> list[dict[str, object]]:
    with UnitOfWork(engine) as uow:
        return uow.invoices_for(open_tenant(uow, "t").row)


def plan_status(engine: Engine) -> tuple[str, str]:
    with UnitOfWork(engine) as uow:
        sub = billing.load(uow, open_tenant(uow, "t"), "acme", lock=False).plan_subscription
        assert sub is not None
        return sub.plan, sub.status.value


def test_bank_transfer_invoices_wait_for_their_due_date_and_are_marked_paid_by_hand(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, card=None)  # no card at all: the vendor lets this customer pay by bank transfer
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        with pytest.raises(KakinError) as no_card:
            billing.subscribe(uow, tenant, gateway, "acme", START, "gold", seats=10)
        assert no_card.value.code == "payment_method_required"
    pays_by_transfer_on_gold(engine, gateway)
    (first,) = invoices(engine)
    assert first["status"] == "open" and first["due_on"].isoformat() == "2022-06-02"  # 30 days to pay
    assert gateway.charged == []  # nothing charged to the card
    with UnitOfWork(engine) as uow:
        operations.mark_paid(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), str(first["number"]), START + timedelta(days=5),
                             reference="振込 0512")
    assert invoices(engine)[0]["status"] == "paid"
    assert plan_status(engine) == ("gold", "active")


def test_an_overdue_bank_transfer_goes_through_the_same_dunning(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway)
    pays_by_transfer_on_gold(engine, gateway)
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, datetime(2022, 6, 3, 1, tzinfo=JST))
    assert plan_status(engine) == ("gold", "past_due")  # overdue since June 3; retried 1, 3, 5, 7 days later
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, datetime(2022, 6, 11, tzinfo=JST))
    assert plan_status(engine) == ("free", "active")  # the last retry failed: cancelled, on the free plan
    assert [i["status"] for i in invoices(engine)] == ["uncollectible", "open"]  # June's renewal still awaits its transfer
    assert gateway.charged == []


def test_restore_payment_settles_an_invoice_paid_after_3d_secure(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, card="pm_card_authenticationRequired")
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "t"), gateway, "acme", START, "gold", seats=10)
    (invoice,) = invoices(engine)
    assert invoice["status"] == "open" and plan_status(engine) == ("gold", "incomplete")  # no service until 3-D Secure
    with UnitOfWork(engine) as uow:
        reference = uow.conn.execute(select(tables.payment_attempts.c.reference)).scalar_one()
        outcome = uow.conn.execute(select(tables.payment_attempts.c.outcome)).scalar_one()
    assert outcome == "requires_action"
    with UnitOfWork(engine) as uow:  # nothing to restore yet: the customer has not authenticated
        assert payments.restore_payment(uow, open_tenant(uow, "t"), gateway, "acme", START)["restored"] == []
    gateway.authenticate(reference)  # the customer completes 3-D Secure; kakin is not told
    with UnitOfWork(engine) as uow:
        assert payments.restore_payment(uow, open_tenant(uow, "t"), gateway, "acme", START)["restored"] == [invoice["number"]]
    with UnitOfWork(engine) as uow:  # restoring again changes nothing
        assert payments.restore_payment(uow, open_tenant(uow, "t"), gateway, "acme", START)["restored"] == []
    assert invoices(engine)[0]["status"] == "paid" and plan_status(engine) == ("gold", "active")
    assert len(gateway.charged) == 1  # the one payment made at the gateway, nothing more
    with UnitOfWork(engine) as uow:  # the payment log shows the payment that paid it, once; its intent succeeded
        log = uow.conn.execute(select(tables.payment_attempts.c.outcome, tables.payment_attempts.c.amount,
                                      tables.payment_attempts.c.reference).order_by(tables.payment_attempts.c.id)).all()
        intent = uow.conn.execute(select(tables.payment_intents.c.status, tables.payment_intents.c.code)).one()
    assert [tuple(r) for r in log] == [("requires_action", 1800, reference), ("succeeded", 1800, reference)]
    assert tuple(intent) == ("succeeded", None)


def test_a_credit_note_refunds_a_paid_invoice_and_references_it(engine: Engine, tmp_path: Path) -> None:
    gateway = CardSimulator()
    seed(engine, gateway)
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "t"), gateway, "acme", START, "gold", seats=10)
    number = str(invoices(engine)[0]["number"])
    with UnitOfWork(engine) as uow:
        note = operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), number, 360, "2名分の誤請求", START)
    # 360 yen tax included at 10%: tax 360 × 10 ÷ 110 = 32.7 → 32
    assert note == {"number": "T-CN-00000001", "invoice": number, "amount": 360, "tax": 32, "total": 360,
                    "settlement": "refund", "refund_reference": "re_sim_000001"}
    assert gateway.refunded == [("pi_sim_000001", 360)]
    with UnitOfWork(engine) as uow:
        second = operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), number, 100, "調整", START,
                                              refund=False)
        with pytest.raises(KakinError) as too_much:
            operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), number, 1341, "x", START)
        doc = operations.credit_note_document(uow, open_tenant(uow, "t"), "T-CN-00000001")
    assert second["number"] == "T-CN-00000002" and second["settlement"] == "credit"
    assert too_much.value.code == "credit_exceeds_invoice"  # 1,800 − 360 − 100 = 1,340 left
    assert invoices(engine)[0]["total"] == 1800  # the invoice itself never changes
    with UnitOfWork(engine) as uow:
        assert billing.load(uow, open_tenant(uow, "t"), "acme", lock=False).credit == 100
    assert doc["original_invoice"]["number"] == number and doc["issuer"]["registration_number"] == "T8000000000001"
    if shutil.which("pdftotext"):
        f = tmp_path / "cn.pdf"
        f.write_bytes(render_pdf(doc))
        text = subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, text=True, check=True).stdout
        for expected in ("返還請求書（適格返還請求書）", "T-CN-00000001", number, "¥360", "内消費税（10%）", "¥32", "2名分の誤請求"):
            assert expected in text, expected


def test_a_credit_note_on_an_open_invoice_lowers_what_is_charged(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway, card="pm_card_authenticationRequired")  # the sign-up awaits 3-D Secure: its invoice is open
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "t"), gateway, "acme", START, "gold", seats=10)
    number = str(invoices(engine)[0]["number"])
    with UnitOfWork(engine) as uow:
        note = operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), number, 800, "値引き", START)
        billing.set_payment_method(uow, open_tenant(uow, "t"), gateway, "acme", START + timedelta(hours=1), "pm_card_visa")
    assert note["settlement"] == "reduce"
    assert [amount for _, amount, _ in gateway.charged] == [1000]  # 1,800 − 800 charged on the new card
    assert invoices(engine)[0]["status"] == "paid" and plan_status(engine) == ("gold", "active")


def test_an_invoice_below_the_gateways_minimum_waits_and_is_charged_with_the_next_one(engine: Engine) -> None:
    gateway = CardSimulator()  # like Stripe, it charges at least 50 yen
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "LINE WORKS", "lineworks", START)
        for key in ("small", "gone"):
            billing.create_customer(uow, tenant, gateway, key, key, START, payment_method="pm_card_visa")
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        # lite, 1 user, from Jan 30: January is 2 days × 360 ÷ 31 = 23.2 → 23, tax 2, total 25
        billing.subscribe(uow, tenant, gateway, "small", datetime(2025, 1, 30, 10, tzinfo=JST), "lite", contract="monthly",
                          members=1, trial_days=0)
        # from Jan 31, cancelled Feb 1: 1 day × 360 ÷ 31 = 11.6 → 11, tax 1, total 12, and nothing after it
        billing.subscribe(uow, tenant, gateway, "gone", datetime(2025, 1, 31, 10, tzinfo=JST), "lite", contract="monthly",
                          members=1, trial_days=0)
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, datetime(2025, 2, 1, 9, tzinfo=JST))
    with UnitOfWork(engine) as uow:
        billing.cancel(uow, open_tenant(uow, "t"), gateway, "gone", datetime(2025, 2, 1, 10, tzinfo=JST))
    feb = {(r["customer"], r["total"], r["status"], r["deferred"]) for r in invoices(engine)}
    # "gone" bills no day of February (cancelled on its first day): no charge can take its 12 yen, written off
    assert feb == {("small", 25, "open", True), ("gone", 12, "uncollectible", True)}
    assert gateway.charged == []  # nothing below 50 yen reaches the card
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, datetime(2025, 3, 1, 9, tzinfo=JST))
    rows = invoices(engine)
    # March 1: February is 360, tax 36, total 396; charged once together with January's 25
    assert [(r["customer"], r["total"], r["status"]) for r in rows] == [
        ("small", 25, "paid"), ("gone", 12, "uncollectible"), ("small", 396, "paid")]
    assert [amount for _, amount, _ in gateway.charged] == [421]
    with UnitOfWork(engine) as uow:
        attempts = uow.conn.execute(select(tables.payment_attempts.c.invoice_id, tables.payment_attempts.c.amount,
                                           tables.payment_attempts.c.idempotency_key)).all()
        tenant = open_tenant(uow, "t")
        gone = billing.load(uow, tenant, "gone", lock=False)
        status = uow.latest_plan_subscriptions(tenant.row)[gone.id or 0]["status"]
    assert sorted(a.amount for a in attempts) == [25, 396] and len({a.idempotency_key for a in attempts}) == 1
    assert status == "canceled"  # cancelled as asked, not suspended by dunning over 12 yen
    assert gone.open_invoices == []


def test_retry_now_is_refused_for_a_customer_who_pays_by_bank_transfer_and_changes_nothing(engine: Engine) -> None:
    gateway = CardSimulator()
    seed(engine, gateway)
    pays_by_transfer_on_gold(engine, gateway)
    (first,) = invoices(engine)
    with engine.connect() as conn:
        audit_before = conn.execute(select(tables.audit_log.c.id)).all()
    with UnitOfWork(engine) as uow, pytest.raises(KakinError) as refused:
        tenant = open_tenant(uow, "t")
        payments.retry_now(uow, tenant, gateway, CommandLine(tenant.row), str(first["number"]), START + timedelta(days=1))
    assert (refused.value.code, refused.value.param) == ("collected_by_bank_transfer", "number")
    assert "record the transfer" in str(refused.value)
    (after,) = invoices(engine)
    assert (after["status"], after["attempts"]) == ("open", 0)  # no attempt counted, no dunning step
    with engine.connect() as conn:
        assert conn.execute(select(tables.audit_log.c.id)).all() == audit_before
    assert gateway.charged == []


def test_a_credit_note_run_again_after_its_refund_refunds_once_though_another_was_numbered_meanwhile(
        engine: Engine) -> None:
    # The first run refunds 360 yen at the gateway, then its transaction rolls back (a lock wait that ran out, a
    # crash); meanwhile another customer's credit note takes the tenant's next number. Run again, the same request
    # must send the same refund key: before, the key carried the next credit-note number, so the money went twice.
    gateway = CardSimulator()
    seed(engine, gateway)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        billing.create_customer(uow, tenant, gateway, "beta", "株式会社ベータ", START, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", START, "gold", seats=10)
        billing.subscribe(uow, tenant, gateway, "beta", START, "gold", seats=10)
    acme, beta = (str(i["number"]) for i in invoices(engine))

    class RolledBack(Exception):
        pass

    def credit_acme() -> dict[str, Any]:
        with UnitOfWork(engine) as uow:
            return operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), acme,
                                                360, "2名分の誤請求", START)

    with pytest.raises(RolledBack), UnitOfWork(engine) as uow:
        operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), acme, 360,
                                     "2名分の誤請求", START)
        raise RolledBack  # after the refund, before the commit
    with UnitOfWork(engine) as uow:
        operations.issue_credit_note(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), beta, 100,
                                     "調整", START)
    assert credit_acme()["settlement"] == "refund"
    assert gateway.refunded == [("pi_sim_000001", 360), ("pi_sim_000002", 100)]  # acme's 360 once, beta's 100


def test_a_3d_secure_payment_completed_after_its_invoice_was_paid_by_transfer_is_refunded_once(engine: Engine) -> None:
    # The sign-up's 1,800 yen awaits 3-D Secure; the customer pays by bank transfer instead, and the vendor records
    # it; then the customer also completes 3-D Secure, and Stripe's webhook says the payment succeeded. The invoice
    # is paid once, by the transfer: the card's 1,800 yen is given back by the worker's next pass. Before, neither
    # the bank transfer nor the webhook looked at the payment, and the customer paid twice.
    gateway = CardSimulator()
    seed(engine, gateway, card="pm_card_authenticationRequired")
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "t"), gateway, "acme", START, "gold", seats=10)
    number = str(invoices(engine)[0]["number"])
    with UnitOfWork(engine) as uow:
        reference = uow.conn.execute(select(tables.payment_attempts.c.reference)).scalar_one()
        operations.mark_paid(uow, open_tenant(uow, "t"), gateway, CommandLine(uow.tenant("t")), number, START,
                             reference="振込")
    gateway.authenticate(reference)  # the money is taken at the gateway
    with UnitOfWork(engine) as uow:
        answer = payments.payment_reference_succeeded(uow, open_tenant(uow, "t"), gateway, reference, START)
    assert answer["restored"] == [] and answer["refunding"] == [number]
    assert invoices(engine)[0]["status"] == "paid"  # by the transfer
    assert payments.settle_intents(engine, gateway, START, grace=timedelta(0))["refunded"] == 1
    assert gateway.refunded == [(reference, 1800)]
    with UnitOfWork(engine) as uow:  # the webhook sent again changes nothing
        assert "refunding" not in payments.payment_reference_succeeded(uow, open_tenant(uow, "t"), gateway, reference, START)
    assert payments.settle_intents(engine, gateway, START, grace=timedelta(0))["refunded"] == 0
    assert gateway.refunded == [(reference, 1800)]
