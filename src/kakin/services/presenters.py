"""One presenter per resource: customers and invoices as the API and the portal show them."""

from __future__ import annotations

from typing import Any

from kakin.domain.account import Account
from kakin.domain.catalog import Catalog
from kakin.domain.documents import tax_by_rate


def customer_json(account: Account, row: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """A customer as the API and the portal show it: its subscription (with ``display_plan``, the plan as the customer
    is shown it), add-ons, credit (yen) and domain state. ``row`` is its stored row (``test_clock_public_id`` read)."""
    sub = account.plan_subscription
    out: dict[str, Any] = {
        "id": account.key, "name": account.name, "users": account.members, "credit": account.credit,
        "has_payment_method": account.payment_method is not None, "basic_id": account.basic_id,
        "test_clock": row.get("test_clock_public_id"), "subscription": None, "addons": [],
        "deleted_on": account.deleted_on, "sign_in_group": account.sign_in_group,
        "verified_domain": account.verified_domain,
    }
    if sub is not None:
        out["subscription"] = {
            "plan": sub.plan, "contract": sub.contract, "status": sub.status.value, "seats": sub.seats,
            # the plan as the customer is shown it (LINE OA shows the local-government plan as standard); a plan the
            # version in force dropped (the customer has not moved yet, or never will) as the plan it moves to
            "display_plan": catalog.plans[sub.plan].features.get("display_as", sub.plan) if sub.plan in catalog.plans
            else catalog.plan_moves.get(sub.plan, sub.plan),
            "catalog_version": sub.catalog_version,
            "current_period_start": sub.period_start, "current_period_end": sub.period_end, "trial_end": sub.trial_end,
            "pending_change": None if sub.pending is None else {
                "effective_on": sub.pending.effective_on, "plan": sub.pending.plan, "contract": sub.pending.contract,
                "seats": sub.pending.seats, "cancel": sub.pending.cancel},
        }
    out["addons"] = [{"addon": s.product, "value": s.value, "billing": s.contract, "current_period_end": s.period_end}
                     for s in account.subscriptions if s.product != "plan" and not s.ended]
    return out


def invoice_json(r: dict[str, Any]) -> dict[str, Any]:
    """An issued invoice as the API and the portal show it: amounts in integer yen, tax per rate, lines with formulas.
    ``r`` is a row of ``UnitOfWork.invoices_for``."""
    return {"number": r["number"], "customer": r["customer"], "issued_on": r["issued_on"], "period_start": r["period_start"],
            "period_end": r["period_end"], "status": r["status"], "subtotal": r["subtotal"], "tax": r["tax"],
            "tax_rate": r["tax_rate"], "tax_inclusive": r["tax_inclusive"], "total": r["total"],
            "credit_applied": r["credit_applied"], "credit_carried": r["credit_carried"],
            "taxes": [{k: v for k, v in t.items() if k != "label"} for t in tax_by_rate(r)],  # per rate
            "lines": [{"kind": ln["kind"], "description": ln["description"], "quantity": ln["quantity"], "amount": ln["amount"],
                       "formula": ln["formula"], "tax_rate": ln["tax_rate"] or r["tax_rate"],
                       "catalog_version": ln.get("catalog_version")} for ln in r.get("lines", [])]}
