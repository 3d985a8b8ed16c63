"""Previews: the customer's next scheduled invoice if nothing changes, and what a plan change would bill.

Computed on a copy of the account run forward by the domain's schedule, so
nothing is written or charged. Served by ``GET /v1/customers/{id}/upcoming_invoice``,
``POST …/subscription/plan/preview``, the portal's overview and its 「人数の変更」.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import plan_changes, schedule
from kakin.domain import seats as seat_rules
from kakin.domain.account import Account
from kakin.domain.invoice import InvoiceDraft
from kakin.domain.lifecycle import Lifecycle

from . import billing
from .tenancy import Tenant

HORIZON_DAYS = 400  # an annual contract's next invoice is at most a year and a month away


def upcoming_invoice(uow: UnitOfWork, tenant: Tenant, key: str, now: datetime) -> dict[str, Any] | None:
    """The next invoice customer ``key`` will be issued after ``now`` if nothing changes, as
    ``{"issued_on", "period_start", "period_end", "subtotal", "tax", "credit_applied", "total", "lines"}`` (integer
    yen; ``total`` is what will be asked for, after credit), or None when none falls due within ``HORIZON_DAYS``.
    Raises NotFound for an unknown customer."""
    return next_invoice(tenant.lifecycle, _caught_up(uow, tenant, key, now), now)


def preview_change_plan(uow: UnitOfWork, tenant: Tenant, key: str, now: datetime, plan: str, *,
                        contract: str | None = None, seats: int | None = None) -> dict[str, Any]:
    """What a plan change will bill, computed on a copy of the account; nothing is written or charged.

    Returns ``{"plan", "contract", "effective"}`` (``"immediate"`` or the ISO date it takes effect), the invoices
    the change issues at once (``invoices_now``) and the customer's next scheduled invoice with and without the
    change, each as :func:`draft_json` gives it. Raises what the change itself would (PlanChangeNotAllowed, …).
    """
    lc = tenant.lifecycle
    baseline = _caught_up(uow, tenant, key, now)
    changed = copy.deepcopy(baseline)
    result = plan_changes.change_plan(lc, changed, plan, now, contract=contract, seats=seats)
    sub = changed.plan_subscription
    return {
        "plan": plan,
        "contract": sub.contract if sub else contract,
        "effective": "immediate" if sub is None or sub.pending is None else sub.pending.effective_on.isoformat(),
        "invoices_now": [draft_json(d) for d in result.invoices],
        "next_invoice": next_invoice(lc, changed, now),
        "next_invoice_without_change": next_invoice(lc, baseline, now),
    }


def preview_set_seats(uow: UnitOfWork, tenant: Tenant, key: str, now: datetime, seats: int) -> dict[str, Any]:
    """What changing the contracted seats to ``seats`` will bill, computed on a copy of the account; nothing is written
    or charged (NipoPlus 「人数の変更」: the difference is added to or taken from the next payment, seed
    nipoplus-paid-plan 利用人数の変更に伴う過不足金).

    Returns ``{"seats", "seats_before", "invoices_now", "credit_now", "next_invoice", "next_invoice_without_change",
    "next_payment_change"}``: integer yen; ``credit_now`` is what credit notes issued at once add to the balance,
    ``next_payment_change`` the next invoice's total with the change less its total without (negative: less to pay).
    Raises what the change itself would (SeatsOutOfRange, NotSubscribed, SeatsNotApplicable)."""
    lc = tenant.lifecycle
    baseline = _caught_up(uow, tenant, key, now)
    changed = copy.deepcopy(baseline)
    before = changed.plan_subscription.seats if changed.plan_subscription else None
    result = seat_rules.set_seats(lc, changed, seats, now)
    with_change, without = next_invoice(lc, changed, now), next_invoice(lc, baseline, now)
    return {
        "seats": seats, "seats_before": before,
        "invoices_now": [draft_json(d) for d in result.invoices],
        "credit_now": sum(note.total for note in result.credit_notes),
        "next_invoice": with_change, "next_invoice_without_change": without,
        "next_payment_change": (with_change["total"] if with_change else 0) - (without["total"] if without else 0),
    }


def _caught_up(uow: UnitOfWork, tenant: Tenant, key: str, now: datetime) -> Account:
    """Customer ``key``'s account as loaded (unlocked), with the work due by ``now`` done on it in memory only."""
    account = billing.load(uow, tenant, key, lock=False)
    for _ in range(10_000):  # bring the copy up to now, as a command would
        if schedule.run_next(tenant.lifecycle, account, now) is None:
            break
    return account


def next_invoice(lc: Lifecycle, account: Account, now: datetime) -> dict[str, Any] | None:
    """Run ``account`` (a copy: it is changed) forward from ``now`` to its next scheduled invoice, assuming nothing
    else changes; that invoice as :func:`draft_json` gives it, or None within ``HORIZON_DAYS``."""
    horizon = now + timedelta(days=HORIZON_DAYS)
    for _ in range(1000):
        result = schedule.run_next(lc, account, horizon)
        if result is None:
            return None
        if result.invoices:
            return draft_json(result.invoices[0])
    return None


def draft_json(draft: InvoiceDraft) -> dict[str, Any]:
    """An invoice not yet issued: dates in ISO 8601, amounts in integer yen, its lines with their formulas."""
    return {"issued_on": draft.issued_on.isoformat(),
            "period_start": draft.period_start.isoformat() if draft.period_start else None,
            "period_end": draft.period_end.isoformat() if draft.period_end else None,
            "subtotal": draft.subtotal, "tax": draft.tax_amount, "credit_applied": draft.credit_applied,
            "total": draft.total,
            "lines": [{"kind": ln.kind.value, "description": ln.description, "quantity": ln.quantity, "amount": ln.amount,
                       "formula": ln.formula} for ln in draft.lines]}
