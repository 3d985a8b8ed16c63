"""What the vendor's operators do by hand: bank transfer, payments received, credit notes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors, schedule
from kakin.domain.calendar import local_date
from kakin.domain.documents import parties_of, tax_by_rate
from kakin.domain.lifecycle import Result
from kakin.domain.money import tax_for_rate

from .billing import BANK_TRANSFER, load, settle, snapshot
from .charging import refund_unapplied_charges, wall_clock
from .operators import ActingOperator, acting_in
from .tenancy import Tenant

COLLECTIONS = ("card", BANK_TRANSFER)


def set_collection(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, key: str, method: str,
                   now: datetime) -> dict[str, Any]:
    """Enable bank transfer (請求書払い) for a customer, or go back to card payment (``method``: ``card`` or
    ``bank_transfer``). ``op`` needs the ``write`` permission (RoleForbidden); InvalidValue for another method,
    NotFound for an unknown customer. Audit-logged under ``op``."""
    acting_in(op, tenant.row, "write")
    if method not in COLLECTIONS:
        raise errors.InvalidValue(f"collection must be one of: {', '.join(COLLECTIONS)}", param="collection")
    account = load(uow, tenant, key)
    before = snapshot(account)
    account.collection = method
    settle(uow, tenant, gateway, [(account, Result())], now, op.actor, "customer.collection", {account.id or 0: before})
    return {"customer": key, "collection": method}


def _invoice_row(uow: UnitOfWork, tenant: Tenant, number: str) -> dict[str, Any]:
    row = uow.invoice_records.invoice_by_number(tenant.row.id, number)
    if row is None:
        raise errors.NotFound(f"no invoice {number!r}", param="number")
    return row


def mark_paid(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, number: str, now: datetime,
              reference: str | None = None) -> dict[str, Any]:
    """Record a payment received outside the gateway (a bank transfer); the plan goes on as after any payment.
    ``op`` needs ``write`` (RoleForbidden); NotFound for an unknown invoice, InvoiceNotOpen for one not open."""
    acting_in(op, tenant.row, "write")
    row = _invoice_row(uow, tenant, number)
    account = load(uow, tenant, row["key"])
    inv = next((i for i in account.open_invoices if i.id == row["id"]), None)
    if inv is None:
        raise errors.InvoiceNotOpen(f"invoice {number} is {row['status']}, not open", param="number")
    before = snapshot(account)
    result = schedule.payment_succeeded(tenant.lifecycle, account, inv, now)
    uow.add_payment_attempts([{"invoice_id": inv.id, "customer_id": account.id, "at": now, "payment_method": "bank_transfer",
                               "amount": inv.total,
                               "outcome": "succeeded", "code": None, "idempotency_key": f"manual:{number}",
                               "reference": reference}])
    settle(uow, tenant, gateway, [(account, result)], now, op.actor, "invoice.mark_paid", {account.id or 0: before})
    refund_unapplied_charges(uow, account.id or 0, inv.id, number, wall_clock())  # the card must not pay it too
    return {"number": number, "status": "paid"}


def issue_credit_note(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, number: str,
                      amount: int, reason: str, now: datetime, refund: bool = True) -> dict[str, Any]:
    """A credit note (適格返還請求書) against a finalized invoice, which itself never changes.

    ``amount`` is in the invoice's price basis (tax-exclusive or tax-inclusive, as the catalog prices).
    A paid invoice is refunded through the gateway (or, with ``refund=False``, credited to the customer's
    balance); an open invoice is reduced by the credit. ``op`` needs ``write`` (RoleForbidden).
    """
    acting_in(op, tenant.row, "write")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise errors.InvalidValue("amount must be a whole number of yen, at least 1", param="amount")
    if not reason or not reason.strip():
        raise errors.InvalidValue("give the reason for the credit note", param="reason")
    row = _invoice_row(uow, tenant, number)
    account = load(uow, tenant, row["key"])  # the customer's lock first: concurrent credit notes are counted in turn
    row = _invoice_row(uow, tenant, number)  # as it stands under the lock
    credited_basis = uow.invoice_records.credited(row["id"])
    left = row["subtotal"] - credited_basis
    if amount > left:
        raise errors.CreditExceedsInvoice(f"at most {left} yen of invoice {number} can still be credited",
                                          param="amount")
    if row["status"] == "uncollectible":
        raise errors.Conflict(f"invoice {number} is uncollectible: nothing was paid to return", param="number")
    cat = tenant.catalog
    taxed = tax_for_rate([amount], cat.tax_rate, tax_inclusive=cat.tax_inclusive, rounding=cat.tax_rounding)
    before = snapshot(account)
    settlement, refund_reference = "credit", None
    if row["status"] == "open":
        settlement = "reduce"
        for inv in account.open_invoices:
            if inv.id == row["id"]:
                inv.total -= taxed.gross
    elif refund:
        reference = uow.invoice_records.paid_reference(row["id"])
        if reference is not None:
            # The key names this refund by what the invoice had been credited before it, read under the customer's
            # lock: the same request run again (a retry after a lock wait, a deadlock or a crash) refunds once; the
            # next credit note of the invoice, committed after it, has another key.
            outcome = gateway.refund(reference, taxed.gross, f"{tenant.code}:refund:{number}:{credited_basis}:{amount}")
            if not outcome.ok:
                raise errors.RefundFailed(f"the payment gateway refused the refund ({outcome.code})", param="number")
            settlement, refund_reference = "refund", outcome.reference
    if settlement == "credit":
        account.credit += taxed.gross  # the balance is applied after tax, like a payment (充当)
    credit_number = uow.add_credit_note(tenant.row, row["customer_id"], row["id"], now, local_date(now, tenant.lifecycle.zone),
                                        amount=amount, tax=taxed.tax, total=taxed.gross, reason=reason.strip(),
                                        settlement=settlement, refund_reference=refund_reference, taxes=[taxed])
    event = ("credit_note.issued", {"number": credit_number, "invoice": number, "total": taxed.gross, "settlement": settlement})
    settle(uow, tenant, gateway, [(account, Result(events=[event]))], now, op.actor, "invoice.credit_note", {account.id or 0: before})
    return {"number": credit_number, "invoice": number, "amount": amount, "tax": taxed.tax, "total": taxed.gross,
            "settlement": settlement, "refund_reference": refund_reference}


def credit_note_document(uow: UnitOfWork, tenant: Tenant, number: str) -> dict[str, Any]:
    """The content of a credit note (適格返還請求書) that references its invoice."""
    note = uow.invoice_records.credit_note(tenant.row.id, number)
    if note is None:
        raise errors.NotFound(f"no credit note {number!r}", param="number")
    issuer, recipient = parties_of(note)
    inclusive = tenant.catalog.tax_inclusive
    return {
        "type": "credit_note", "title": "返還請求書（適格返還請求書）", "number": note["number"],
        "issued_on": note["issued_on"].isoformat(),
        "original_invoice": {"number": note["invoice_number"], "issued_on": note["invoice_issued_on"].isoformat()},
        "issuer": {"name": issuer.name, "registration_number": issuer.registration_number, "address": issuer.address},
        "recipient": {"name": recipient.name, "postal_code": recipient.postal_code, "address": recipient.address},
        "reason": note["reason"], "prices_include_tax": inclusive,
        "lines": [{**ln, "tax_rate": ln.get("tax_rate") or note["tax_rate"]} for ln in json.loads(note["lines"] or "[]")],
        "by_rate": [{k: v for k, v in r.items() if k != "label"}
                    for r in tax_by_rate({**note, "tax_inclusive": inclusive})],
        "total": note["total"], "settlement": note["settlement"],
    }

