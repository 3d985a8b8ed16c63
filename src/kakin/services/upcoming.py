"""The upcoming invoice: what the customer's next scheduled invoice will bill if nothing changes.

Computed on a copy of the account run forward by the domain's schedule, so
nothing is written or charged (as ``billing.preview_change_plan`` does for a
plan change). Served by ``GET /v1/customers/{id}/upcoming_invoice`` and the
portal's overview.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import schedule
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
    account = billing.load(uow, tenant, key, lock=False)
    lc = tenant.lifecycle
    for _ in range(10_000):  # bring the copy up to now, as a command would
        if schedule.run_next(lc, account, now) is None:
            break
    return next_invoice(lc, copy.deepcopy(account), now)


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
