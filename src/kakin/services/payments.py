"""Payments after the fact: charges left in flight (the worker's step), reconciliation with the gateway
(支払い情報を復元, 3-D Secure, webhooks) and the payment log.

Charging itself happens in :func:`kakin.services.billing.settle` (see :mod:`kakin.services.charging`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db import Engine
from kakin.adapters.db.intents_repo import PaymentIntentRepository
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import ChargeOutcome, PaymentGateway
from kakin.domain import errors, schedule
from kakin.domain.lifecycle import Result

from .billing import BANK_TRANSFER, load, settle, snapshot
from .charging import Charge, Charger, Wall, ask, refund_closed_invoice_charge, refund_unapplied_charges, wall_clock
from .due_run import finish_charges, record_answers
from .operators import ActingOperator, acting_in
from .tenancy import Tenant, open_tenant

log = logging.getLogger("kakin.payments")
# How long a charge may be in flight before the worker settles it: longer than a command takes from recording its
# intent to committing (the gateway's own retries included), as long as the outbox's lease.
INTENT_GRACE = timedelta(minutes=5)
INTENT_BATCH = 100


def settle_intents(engine: Engine, gateway: PaymentGateway, now: datetime, *, grace: timedelta = INTENT_GRACE,
                   limit: int = INTENT_BATCH, wall: Wall = wall_clock) -> dict[str, int]:
    """The worker's step for charges left in flight: intents still ``pending`` or ``unknown`` ``grace`` before
    ``now`` (or the real time, if later) (a crash between the charge and its record, an answer lost) are asked of the gateway again with the
    same idempotency key (Stripe answers a repeated key with what it did the first time; a charge never made is
    made then), and the answer is recorded as the run would have: the invoice paid or dunned. A purchase charged
    without an invoice (its command was refused 503 and not sent again, or stopped) is refunded, and so is a charge
    that succeeded for an invoice closed meanwhile (marked ``refunding`` when its answer was recorded). Returns counts of
    intents: ``settled``, ``refunded`` (instead), ``unanswered`` (left for the next pass). Each intent is claimed first by a
    conditional update, so two workers never settle the same one; no transaction is open while the gateway is
    called. Source: issue 10 item 3.
    """
    counts = {"settled": 0, "refunded": 0, "unanswered": 0}
    with UnitOfWork(engine, readonly=True) as uow:
        # intents carry the real time they were last touched; a pass on a later clock (run-due --until) counts from it
        rows = uow.intents.to_settle(max(now, wall()) - grace, limit)
        codes = {t.id: t.code for t in uow.tenants()}
    answered: dict[str, list[tuple[dict[str, Any], ChargeOutcome]]] = {}
    for row in rows:
        key = row["idempotency_key"]
        with UnitOfWork(engine) as uow:
            if not uow.intents.claim(key, wall(), seen=row, statuses=(row["status"],)):
                continue  # another worker took it
        try:
            if row["status"] in PaymentIntentRepository.IN_FLIGHT:
                outcome = ask(gateway, row)  # the same key and parameters: the first answer
                if outcome is None:
                    with UnitOfWork(engine) as uow:
                        uow.intents.record_outcome(key, "unknown", None, None, wall())
                    counts["unanswered"] += 1
                    continue
                if row["invoice_id"] is not None:  # recorded below, with the others of its tenant
                    answered.setdefault(codes[row["tenant_id"]], []).append((row, outcome))
                    continue
                with UnitOfWork(engine) as uow:
                    uow.intents.record_outcome(key, "succeeded" if outcome.ok else "failed", outcome.code,
                                               outcome.reference, wall())
                if not (outcome.ok and row["purchase"]):
                    counts["settled"] += 1
                    continue
                row = {**row, "status": "succeeded", "reference": outcome.reference}
            if row["purchase"] or row["status"] == "refunding":
                counts["refunded"] += _give_back(engine, gateway, row, wall)
        except Exception:  # one intent the gateway or the database refuses does not stop the pass: next pass
            log.exception("payment intent %s could not be settled; it is tried again on a later pass", key)
    for code, items in answered.items():  # one short transaction per tenant records the answers on the invoices
        try:
            _record(engine, gateway, code, items, now, wall)
            counts["settled"] += len(items)
        except Exception:
            log.exception("%d payment intents of tenant %s could not be recorded; they are tried again on a later "
                          "pass", len(items), code)
    return counts


def _record(engine: Engine, gateway: PaymentGateway, code: str, items: list[tuple[dict[str, Any], ChargeOutcome]],
            now: datetime, wall: Wall) -> None:
    """Record settled intents' answers on their invoices as the due-work run would have (paid, or dunning), under
    their customers' locks; what that leads to (a plan reactivated and billed) is charged like the run's own."""

    def work(uow: UnitOfWork) -> Charger:
        tenant = open_tenant(uow, code)
        charger = Charger(uow, tenant.row.id, gateway, "defer", wall)
        ids = sorted({row["customer_id"] for row, _ in items})
        uow.changed_accounts(ids)  # locks them (the store's lock order) before they are read
        accounts = {a.id: a for a in uow.load_accounts(ids)}
        answers = []
        for row, outcome in items:
            account = accounts[row["customer_id"]]
            inv = next((o for o in account.open_invoices if o.id == row["invoice_id"]), None)
            if inv is None:  # no longer open: the answer is recorded, the invoice left as it is, a payment given back
                recorded = uow.intents.record_outcomes([(row["idempotency_key"], "succeeded" if outcome.ok else "failed",
                                                         outcome.code, outcome.reference)], wall())
                if outcome.ok and recorded:  # (not when a pass is giving it back already)
                    refund_closed_invoice_charge(uow, row["customer_id"], row["idempotency_key"],
                                                 str(row["invoice_id"]), wall())
                continue
            covered = set(PaymentIntentRepository.covers(row))
            answers.append((Charge(account, inv, [o for o in account.open_invoices if o.id in covered], now,
                                   row["idempotency_key"], row["amount"], row["payment_method"],
                                   row["gateway_customer"]), outcome))
        record_answers(uow, tenant, gateway, answers, now, charger)
        return charger

    finish_charges(lambda: UnitOfWork(engine), code, gateway, now, in_transaction(engine, work))


def _give_back(engine: Engine, gateway: PaymentGateway, row: dict[str, Any], wall: Wall) -> int:
    """Refund money taken with nothing to pay; 1 when refunded. A purchase charged without an invoice is marked
    ``refunding`` first under the customer's lock, so a command naming its invoice with this charge either did so
    already (nothing to refund) or finds it given back (and is refused: try again, with a new key). A charge for an
    invoice closed meanwhile was marked ``refunding`` when its answer was recorded
    (:func:`~kakin.services.billing.refund_closed_invoice_charge`)."""
    key = row["idempotency_key"]
    unlinked = row["invoice_id"] is None
    with UnitOfWork(engine) as uow:
        uow.lock_customer(row["customer_id"])
        if not uow.intents.give_back(key, "refunding", wall(), was=("succeeded", "refunding") if unlinked else
                                     ("refunding",), unlinked=unlinked):
            return 0
    refund = gateway.refund(row["reference"], row["amount"], f"{key}:refund")
    if not refund.ok:
        log.warning("purchase charge %s could not be refunded (%s); tried again on a later pass", key, refund.code)
        return 0
    with UnitOfWork(engine) as uow:
        uow.intents.give_back(key, "refunded", wall(), was=("refunding",), unlinked=unlinked)
    return 1


def restore_payment(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, now: datetime,
                    actor: str = "system") -> dict[str, Any]:
    """支払い情報を復元: ask the gateway about each open invoice's last payment and settle what succeeded there.

    After 3-D Secure a payment can succeed at the gateway without kakin hearing of it; this marks the
    invoice paid and the plan active, and writes the payment in the payment log (a ``succeeded`` attempt under
    the first attempt's key and reference; its intent ``succeeded``). Running it again changes nothing.
    """
    account = load(uow, tenant, key)
    before = snapshot(account)
    last = uow.last_payment_attempts([inv.id for inv in account.open_invoices])
    work = []
    restored = []
    for inv in list(account.open_invoices):
        attempt = last.get(inv.id)
        if attempt is None:
            continue
        reference = attempt["reference"]
        outcome = gateway.retrieve(reference)
        if outcome.ok:
            result = schedule.payment_succeeded(tenant.lifecycle, account, inv, now)
            result.events.append(("payment.restored", {"number": inv.number, "reference": reference}))
            work.append((account, result))
            restored.append(inv.number)
            uow.add_payment_attempts([{"invoice_id": inv.id, "customer_id": account.id, "at": now,
                                       "payment_method": attempt["payment_method"], "amount": attempt["amount"],
                                       "outcome": "succeeded", "code": None,
                                       "idempotency_key": attempt["idempotency_key"], "reference": reference}])
            uow.intents.completed(attempt["idempotency_key"], reference, wall_clock())
    settle(uow, tenant, gateway, work or [(account, Result())], now, actor, "payment.restore", {account.id or 0: before})
    return {"customer": key, "restored": restored}


def payment_status(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, number: str) -> dict[str, Any]:
    """The state of an invoice's latest payment at the gateway, and, while it awaits 3-D Secure, the client secret
    the customer's browser completes it with (Stripe.js ``confirmCardPayment``). Reading it changes nothing."""
    found = [r for r in uow.invoices_for(tenant.row, number=number) if r["customer"] == key]
    if not found:
        raise errors.NotFound(f"customer {key!r} has no invoice {number!r}", param="number")
    invoice = found[0]
    reference = uow.last_payment_references([invoice["id"]]).get(invoice["id"])
    out: dict[str, Any] = {"invoice": number, "invoice_status": invoice["status"], "reference": reference,
                           "status": None, "client_secret": None}
    if reference is not None:
        outcome = gateway.retrieve(reference)
        out["status"] = "succeeded" if outcome.ok else "requires_action" if outcome.requires_action else outcome.code
        out["client_secret"] = outcome.client_secret if invoice["status"] == "open" else None
    return out


def payment_reference_succeeded(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, reference: str,
                                now: datetime) -> dict[str, Any]:
    """The gateway says a payment succeeded (a signed webhook): restore the invoice it belongs to, if still open.
    A 3-D Secure payment completed for an invoice closed meanwhile (paid by bank transfer, written off, or a sign-up
    voided after 23 hours) paid nothing: its intent is ``succeeded`` and marked ``refunding``, and the worker's next
    pass refunds it (``refunding`` in the answer lists the invoice)."""
    found = uow.payment_by_reference(tenant.row, reference)
    if found is None:
        return {"reference": reference, "restored": []}
    result = restore_payment(uow, tenant, gateway, found["customer"], now, actor="gateway")  # locks the customer
    key = found["idempotency_key"]
    intent = uow.intents.by_keys([key]).get(key)
    if (intent is not None and intent["status"] == "failed" and intent["code"] == "authentication_required"
            and intent["reference"] == reference and uow.invoice_records.status(found["invoice_id"]) != "open"
            and gateway.retrieve(reference).ok):
        uow.intents.completed(key, reference, wall_clock())
        refund_closed_invoice_charge(uow, found["customer_id"], key, found["number"], wall_clock())
        result["refunding"] = [found["number"]]
    return result


def payment_log(uow: UnitOfWork, tenant: Tenant, key: str) -> list[dict[str, Any]]:
    """Every payment attempt made for the customer at the gateway, oldest first: what was asked (yen), the outcome
    (``succeeded``, ``failed``, ``requires_action``), the decline code, the invoice it was for (None for a purchase
    refused because the card was declined: it issued no invoice) and the gateway's reference. Reading changes nothing."""
    account = load(uow, tenant, key, lock=False)
    return [{"at": r["at"], "invoice": r["invoice"], "amount": r["amount"], "outcome": r["outcome"], "code": r["code"],
             "payment_method": r["payment_method"], "reference": r["reference"]}
            for r in uow.payment_attempts_of(tenant.row, account.id)]


def _open_invoice(uow: UnitOfWork, tenant: Tenant, number: str) -> tuple[Any, Any]:
    found = uow.invoices_for(tenant.row, number=number)
    if not found:
        raise errors.NotFound(f"no invoice {number!r}", param="number")
    account = load(uow, tenant, found[0]["customer"])
    inv = next((i for i in account.open_invoices if i.number == number and i.status == "open"), None)
    if inv is None:
        raise errors.InvoiceNotOpen(f"invoice {number} is {found[0]['status']}, not open", param="number")
    return account, inv


def retry_now(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, number: str,
              now: datetime) -> dict[str, Any]:
    """Charge an open invoice now instead of at its next scheduled retry (dunning, SPEC 3.2): the attempt counts like
    a scheduled one (a failure schedules the next retry, or ends dunning). Returns the invoice's number, status and
    attempts. ``op`` needs ``write`` (RoleForbidden); NotFound, InvoiceNotOpen; CollectedByBankTransfer for a customer
    who pays by bank transfer (there is no card to charge: record the transfer received, or switch the customer to
    card payment first). Audit-logged under ``op``."""
    acting_in(op, tenant.row, "write")
    account, inv = _open_invoice(uow, tenant, number)
    if account.collection == BANK_TRANSFER:
        raise errors.CollectedByBankTransfer(
            f"customer {account.key!r} pays by bank transfer, so invoice {number} cannot be charged to a card: record "
            "the transfer when it is received, or switch the customer to card payment first", param="number")
    before = snapshot(account)
    inv.next_retry_at = None
    settle(uow, tenant, gateway, [(account, Result(retries=[inv], events=[("invoice.retry", {"number": number})]))], now,
           op.actor, "invoice.retry_now", {account.id or 0: before})
    return {"number": number, "status": inv.status, "attempts": inv.attempts}


def write_off(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, number: str,
              now: datetime) -> dict[str, Any]:
    """Write an open invoice off (uncollectible): no more retries; the invoice itself, finalized, is unchanged. A plan
    past due is active again when nothing else is overdue (:func:`~kakin.domain.schedule.forgive`).
    ``op`` needs ``write`` (RoleForbidden); NotFound, InvoiceNotOpen. Audit-logged under ``op``."""
    acting_in(op, tenant.row, "write")
    account, inv = _open_invoice(uow, tenant, number)
    before = snapshot(account)
    settle(uow, tenant, gateway, [(account, schedule.forgive(tenant.lifecycle, account, inv, now))], now, op.actor,
           "invoice.write_off", {account.id or 0: before})
    refund_unapplied_charges(uow, account.id or 0, inv.id, number, wall_clock())  # nothing is collected for it now
    return {"number": number, "status": inv.status}
