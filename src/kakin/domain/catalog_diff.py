"""What changes for customers between two catalogs (``kakin catalog diff``, a publish's dry run).

Prices, included quantities, tiers, seat bounds, plans and add-ons added or removed, plan-change rules, trial
and cancellation rules, plan moves. Each change is a :class:`Change` with a dotted key in the catalog file's own
terms (``plans.gold.prices.monthly.unit_amount``) and the old and new values as text. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from .catalog import Catalog, ChangeRule, Plan, Price, UsagePrice
from .money import decimal_text, format_rate


@dataclass(frozen=True)
class Change:
    kind: str  # "added", "removed" or "changed"
    key: str  # dotted, as in the catalog file
    old: str | None = None
    new: str | None = None

    def text(self) -> str:
        """One line: ``+ key: new``, ``- key: old`` or ``~ key: old → new``."""
        if self.kind == "added":
            return f"+ {self.key}: {self.new}"
        if self.kind == "removed":
            return f"- {self.key}: {self.old}"
        return f"~ {self.key}: {self.old} → {self.new}"


def _price_text(price: Price) -> str:
    rate = f" ※{format_rate(price.tax_rate)}" if price.tax_rate is not None else ""
    return f"{price.unit_amount} per {price.basis.value}, {price.timing.value}, {price.alignment.value}{rate}"


def _tiers_text(usage: UsagePrice) -> str:
    return ", ".join(f"{t.first}–{'' if t.last is None else t.last} at {decimal_text(t.unit_amount)}" for t in usage.tiers) or "none"


def _rule_text(rule: ChangeRule) -> str:
    def names(values: frozenset[str] | None) -> str:
        return "*" if values is None else "/".join(sorted(values))

    contracts = ""
    if rule.from_contracts is not None or rule.to_contracts is not None:
        contracts = f" ({names(rule.from_contracts)} → {names(rule.to_contracts)})"
    domain = ", needs a verified domain" if rule.needs_verified_domain else ""
    return f"{names(rule.from_plans)} → {names(rule.to_plans)}{contracts}: {rule.when.value}{domain}"


def _compare(out: list[Change], key: str, old: object, new: object) -> None:
    if old != new:
        out.append(Change("changed", key, str(old), str(new)))


def _plan_changes(out: list[Change], old: Plan, new: Plan) -> None:
    key = f"plans.{new.code}"
    for contract in sorted(old.prices.keys() | new.prices.keys()):
        a, b = old.prices.get(contract), new.prices.get(contract)
        if a is None and b is not None:
            out.append(Change("added", f"{key}.prices.{contract}", new=_price_text(b)))
        elif b is None and a is not None:
            out.append(Change("removed", f"{key}.prices.{contract}", old=_price_text(a)))
        elif a is not None and b is not None:
            _compare(out, f"{key}.prices.{contract}.unit_amount", a.unit_amount, b.unit_amount)
            for name in ("basis", "timing", "alignment", "interval_months", "term_months", "proration",
                         "mid_period_change", "seat_decrease", "cancellation", "members_over_seats"):
                _compare(out, f"{key}.prices.{contract}.{name}", _plain(getattr(a, name)), _plain(getattr(b, name)))
            if a.tax_rate != b.tax_rate:
                out.append(Change("changed", f"{key}.prices.{contract}.tax_rate", _rate(a.tax_rate), _rate(b.tax_rate)))
    _compare(out, f"{key}.min_seats", old.min_seats, new.min_seats)
    _compare(out, f"{key}.max_seats", old.max_seats, new.max_seats)
    _compare(out, f"{key}.requires_payment_method", old.requires_payment_method, new.requires_payment_method)
    for metric in sorted(old.usage.keys() | new.usage.keys()):
        u, v = old.usage.get(metric), new.usage.get(metric)
        where = f"{key}.usage.{metric}"
        if u is None and v is not None:
            out.append(Change("added", where, new=f"included {_included(v)}, tiers {_tiers_text(v)}"))
        elif v is None and u is not None:
            out.append(Change("removed", where, old=f"included {_included(u)}, tiers {_tiers_text(u)}"))
        elif u is not None and v is not None:
            _compare(out, f"{where}.included", _included(u), _included(v))
            _compare(out, f"{where}.hard_limit", u.hard_limit, v.hard_limit)
            _compare(out, f"{where}.tiers", _tiers_text(u), _tiers_text(v))


def _plain(value: object) -> object:
    inner = getattr(value, "value", None)
    if isinstance(inner, str):
        return inner
    convention = getattr(value, "convention", None)
    if convention is not None:
        return f"{convention.value} ({getattr(value, 'fixed_days', '')})"
    return value


def _rate(rate: Fraction | None) -> str:
    return "standard" if rate is None else format_rate(rate)


def _included(usage: UsagePrice) -> str:
    return "unlimited" if usage.included is None else str(usage.included)


def _sets(out: list[Change], key: str, old: Iterable[str], new: Iterable[str]) -> None:
    a, b = list(old), list(new)
    for item in a:
        if item not in b:
            out.append(Change("removed", key, old=item))
    for item in b:
        if item not in a:
            out.append(Change("added", key, new=item))


def catalog_diff(old: Catalog, new: Catalog) -> list[Change]:
    """The changes that matter to customers from ``old`` to ``new``, in the file's order of keys (issue 13 item 4)."""
    out: list[Change] = []
    for code in old.plans:
        if code not in new.plans:
            moved = f" (subscribers move to {new.plan_moves[code]!r})" if code in new.plan_moves else ""
            out.append(Change("removed", f"plans.{code}", old=f"{old.plans[code].name_ja}{moved}"))
    for code, plan in new.plans.items():
        if code not in old.plans:
            prices = "; ".join(f"{c}: {_price_text(p)}" for c, p in plan.prices.items()) or "free"
            out.append(Change("added", f"plans.{code}", new=f"{plan.name_ja} ({prices})"))
        else:
            _plan_changes(out, old.plans[code], plan)
    for code in old.addons.keys() | new.addons.keys():
        a, b = old.addons.get(code), new.addons.get(code)
        if a is None or b is None:
            shown = b if b is not None else a
            assert shown is not None
            text = ", ".join(f"{c}: {p.unit_amount}" for c, p in shown.prices.items())
            out.append(Change("added" if a is None else "removed", f"addons.{code}", old=None if b else text, new=text if b else None))
            continue
        for contract in sorted(a.prices.keys() | b.prices.keys()):
            x, y = a.prices.get(contract), b.prices.get(contract)
            _compare(out, f"addons.{code}.prices.{contract}.unit_amount", x.unit_amount if x else None, y.unit_amount if y else None)
        _compare(out, f"addons.{code}.plan_overrides", a.plan_overrides, b.plan_overrides)
    _sets(out, "plan_changes", [_rule_text(r) for r in old.change_rules], [_rule_text(r) for r in new.change_rules])
    _compare(out, "trial.days", old.trial_days, new.trial_days)
    _compare(out, "cancellation.when", old.cancellation.when.value, new.cancellation.when.value)
    _compare(out, "cancellation.remaining_as_trial", old.cancellation.remaining_as_trial, new.cancellation.remaining_as_trial)
    _compare(out, "tax.rate", format_rate(old.tax_rate), format_rate(new.tax_rate))
    _compare(out, "tax.rounding", old.tax_rounding.value, new.tax_rounding.value)
    _compare(out, "billing.line_rounding", old.line_rounding.value, new.line_rounding.value)
    _compare(out, "billing.default_plan", old.default_plan, new.default_plan)
    _compare(out, "billing.fallback_plan", old.fallback_plan, new.fallback_plan)
    _compare(out, "dunning.retry_days", list(old.dunning.retry_days), list(new.dunning.retry_days))
    return out
