"""Payments after the fact: reconciliation with the gateway (支払い情報を復元, 3-D Secure, webhooks) and the payment log.

Charging itself happens in :func:`kakin.services.billing.settle`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors, schedule
from kakin.domain.lifecycle import Result

from .billing import load, settle, snapshot
from .operators import ActingOperator, acting_in
from .tenancy import Tenant


def restore_payment(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, now: datetime,
                    actor: str = "system") -> dict[str, Any]:
    """支払い情報を復元: ask the gateway about each open invoice's last payment and settle what succeeded there.

    After 3-D Secure a payment can succeed at the gateway without kakin hearing of it; this marks the
    invoice paid and the plan active. Running it again changes nothing.
    """
    account = load(uow, tenant, key)
    before = snapshot(account)
    references = uow.last_payment_references([inv.id for inv in account.open_invoices])
    work = []
    restored = []
    for inv in list(account.open_invoices):
        reference = references.get(inv.id)
        if reference is None:
            continue
        outcome = gateway.retrieve(reference)
        if outcome.ok:
            result = schedule.payment_succeeded(tenant.lifecycle, account, inv, now)
            result.events.append(("payment.restored", {"number": inv.number, "reference": reference}))
            work.append((account, result))
            restored.append(inv.number)
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
    """The gateway says a payment succeeded (a signed webhook): restore the invoice it belongs to, if still open."""
    key = uow.customer_key_for_payment(tenant.row, reference)
    if key is None:
        return {"reference": reference, "restored": []}
    return restore_payment(uow, tenant, gateway, key, now, actor="gateway")


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
    attempts. ``op`` needs ``write`` (RoleForbidden); NotFound, InvoiceNotOpen. Audit-logged under ``op``."""
    acting_in(op, tenant.row, "write")
    account, inv = _open_invoice(uow, tenant, number)
    before = snapshot(account)
    inv.next_retry_at = None
    settle(uow, tenant, gateway, [(account, Result(retries=[inv], events=[("invoice.retry", {"number": number})]))], now,
           op.actor, "invoice.retry_now", {account.id or 0: before})
    return {"number": number, "status": inv.status, "attempts": inv.attempts}


def write_off(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, number: str,
              now: datetime) -> dict[str, Any]:
    """Write an open invoice off (uncollectible): no more retries; the invoice itself, finalized, is unchanged.
    ``op`` needs ``write`` (RoleForbidden); NotFound, InvoiceNotOpen. Audit-logged under ``op``."""
    acting_in(op, tenant.row, "write")
    account, inv = _open_invoice(uow, tenant, number)
    before = snapshot(account)
    settle(uow, tenant, gateway, [(account, schedule.write_off(inv))], now, op.actor, "invoice.write_off",
           {account.id or 0: before})
    return {"number": number, "status": inv.status}
