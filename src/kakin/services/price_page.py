"""The catalog as its vendor's price page shows it, and its rules in words an operator reads (API and console)."""

from __future__ import annotations

from typing import Any

from kakin.domain.catalog import Catalog
from kakin.domain.money import decimal_text, format_rate


def price_page(cat: Catalog) -> dict[str, Any]:
    """Plans by rank with their prices per contract (yen per seat, member or flat, timing, alignment, interval, term,
    tax rate), usage allowances and tiers (exact decimals as text), add-ons: ``GET /v1/catalog`` and the console."""
    plans = []
    for plan in sorted(cat.plans.values(), key=lambda p: p.rank):
        plans.append({
            "code": plan.code, "name": {"ja": plan.name_ja, "en": plan.name_en}, "rank": plan.rank,
            "min_seats": plan.min_seats, "max_seats": plan.max_seats, "features": plan.features,
            "requires_eligibility": plan.eligibility,
            "prices": {c: {"unit_amount": p.unit_amount, "per": p.basis.value, "timing": p.timing.value,
                           "alignment": p.alignment.value, "interval_months": p.interval_months,
                           "term_months": p.term_months, "tax_rate": format_rate(p.tax_rate or cat.tax_rate)}
                       for c, p in plan.prices.items()},
            "usage": {m: {"included": u.included, "hard_limit": u.hard_limit,
                          "tiers": [{"first": t.first, "last": t.last, "unit_amount": decimal_text(t.unit_amount)}
                                    for t in u.tiers], "tax_rate": format_rate(u.tax_rate or cat.tax_rate)}
                      for m, u in plan.usage.items()},
        })
    return {"vendor": cat.name, "version": cat.version, "currency": cat.currency, "tax_rate": format_rate(cat.tax_rate),
            "tax_inclusive": cat.tax_inclusive, "trial_days": cat.trial_days, "plans": plans,
            "addons": [{"code": a.code, "name": {"ja": a.name_ja, "en": a.name_en},
                        "prices": {c: p.unit_amount for c, p in a.prices.items()},
                        "plan_overrides": a.plan_overrides} for a in cat.addons.values()]}


def rules(cat: Catalog) -> dict[str, Any]:
    """The catalog's billing rules: tax, trial, cancellation, dunning and plan changes (each rule's from/to plans
    and contracts, ``None`` meaning any, when it takes effect, whether it needs a verified domain)."""
    def names(values: frozenset[str] | None) -> list[str] | None:
        return None if values is None else sorted(values)

    return {
        "tax": {"rate": format_rate(cat.tax_rate), "inclusive": cat.tax_inclusive, "rounding": cat.tax_rounding.value,
                "line_rounding": cat.line_rounding.value},
        "trial_days": cat.trial_days, "default_plan": cat.default_plan, "fallback_plan": cat.fallback_plan,
        "cancellation": {"when": cat.cancellation.when.value, "remaining_as_trial": cat.cancellation.remaining_as_trial},
        "dunning": {"retry_days": list(cat.dunning.retry_days), "after_last_failure": cat.dunning.after_last_failure.value,
                    "hard_decline_codes": sorted(cat.dunning.hard_decline_codes)},
        "bank_transfer_due_days": cat.bank_transfer_due_days, "small_balance_days": cat.small_balance_days,
        "admin_limit": cat.admin_limit,
        "plan_changes": [{"from": names(r.from_plans), "to": names(r.to_plans), "from_contract": names(r.from_contracts),
                          "to_contract": names(r.to_contracts), "when": r.when.value,
                          "needs_verified_domain": r.needs_verified_domain} for r in cat.change_rules],
    }
