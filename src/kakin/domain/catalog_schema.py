"""Build a :class:`Catalog` from a parsed catalog file, refusing anything malformed.

Every error names the file, the key (dotted path) and the reason: unknown keys,
wrong types, negative prices, min above max, tier gaps, unknown plans in change
rules. Pure: the caller reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from fractions import Fraction
from typing import Any

from .catalog import (
    HARD_DECLINE_CODES,
    AddOn,
    AfterDunning,
    Alignment,
    Basis,
    Cancellation,
    Catalog,
    ChangeRule,
    Domains,
    Dunning,
    MidPeriodChange,
    MxRecord,
    Plan,
    Price,
    Tier,
    Timing,
    UsagePrice,
    When,
)
from .eligibility import ELIGIBILITY_RULE_SETS
from .errors import CatalogError
from .money import Rounding
from .proration import Convention, Proration

_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
_PERCENT = re.compile(r"^(\d+(\.\d+)?)%$")
_DECLINE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class _Table:
    """One TOML table being read; remembers which keys were used."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        self.file = file
        self.path = path
        if not isinstance(data, Mapping):
            raise CatalogError(file, path or "(top)", f"must be a table, not {type(data).__name__}")
        self.data = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> CatalogError:
        return CatalogError(self.file, self.key(name), reason)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., ) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                raise self.error(name, "is required")
            return default
        value = self.data[name]
        if isinstance(value, bool) and kind is not bool and not (isinstance(kind, tuple) and bool in kind):
            raise self.error(name, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {_kind_name(kind)}, not {type(value).__name__} {value!r}")
        return value

    def amount(self, name: str, default: Any = ...) -> int:
        value = self.get(name, int, default)
        if value is not None and value < 0:
            raise self.error(name, f"is {value}: a price cannot be negative")
        return value  # type: ignore[no-any-return]

    def count(self, name: str, default: Any = ..., minimum: int = 0) -> Any:
        value = self.get(name, int, default)
        if value is not None and value < minimum:
            raise self.error(name, f"is {value}: must be at least {minimum}")
        return value

    def choice(self, name: str, enum: type[Enum], default: Any = ...) -> Any:
        value = self.get(name, str, default)
        if value is None or isinstance(value, enum):
            return value
        try:
            return enum(value)
        except ValueError:
            options = ", ".join(repr(e.value) for e in enum)
            raise self.error(name, f"is {value!r}: must be one of {options}") from None

    def table(self, name: str, default: Any = ...) -> _Table:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                raise self.error(name, "is required")
            return _Table(self.file, self.key(name), default)
        return _Table(self.file, self.key(name), self.data[name])

    def names(self, name: str) -> dict[str, str]:
        t = self.table(name)
        names = {"ja": t.get("ja", str), "en": t.get("en", str)}
        t.finish()
        return names

    def finish(self) -> None:
        for name in self.data:
            if name not in self.used:
                raise self.error(name, "unknown key (check its spelling against the catalog format)")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _exact(t: _Table, name: str) -> Fraction:
    """A non-negative exact amount: an integer or a decimal string such as "2.8"."""
    value = t.get(name, (int, str))
    if isinstance(value, int):
        if value < 0:
            raise t.error(name, f"is {value}: a price cannot be negative")
        return Fraction(value)
    if not _DECIMAL.match(value):
        raise t.error(name, f"is {value!r}: write a non-negative decimal such as \"2.8\"")
    return Fraction(value)


def _code(t: _Table, name: str, value: str) -> str:
    if not _CODE.match(value):
        raise t.error(name, f"{value!r} is not a valid code (lowercase letters, digits, _ and -)")
    return value


_MISSING = object()


def parse_rate(t: _Table, name: str, default: object = _MISSING) -> Fraction | None:
    """A tax rate written as a percentage ("10%", "8%" for the reduced rate); ``default`` when absent and optional."""
    if default is not _MISSING and name not in t.data:
        t.get(name, str, None)  # marks the key as read
        return None
    rate_text = t.get(name, str)
    match = _PERCENT.match(rate_text)
    if not match:
        raise t.error(name, f"is {rate_text!r}: write a percentage such as \"10%\" (or \"8%\", the reduced rate)")
    return Fraction(match.group(1)) / 100


def parse_price(t: _Table, contract: str) -> Price:
    convention = t.choice("proration", Convention, Convention.ACTUAL_DAYS)
    fixed = t.count("proration_days", 30, minimum=1)
    price = Price(
        contract=contract,
        basis=t.choice("basis", Basis),
        unit_amount=t.amount("unit_amount"),
        timing=t.choice("timing", Timing),
        alignment=t.choice("alignment", Alignment),
        interval_months=t.count("interval_months", 1, minimum=1),
        proration=Proration(convention, fixed),
        mid_period_change=t.choice("mid_period_change", MidPeriodChange, MidPeriodChange.PRORATE_NEXT_INVOICE),
        term_months=t.count("term_months", None, minimum=1),
        members_over_seats=t.get("members_over_seats", str, None),
        seat_decrease=t.choice("seat_decrease", When, When.IMMEDIATE),
        cancellation=t.choice("cancellation", When, None),
        tax_rate=parse_rate(t, "tax_rate", None),
    )
    t.finish()
    if price.cancellation is When.REFUSED:
        raise t.error("cancellation", "must be \"immediate\" or \"end_of_period\"")
    if price.timing is Timing.IN_ARREARS and price.alignment is Alignment.ANNIVERSARY:
        raise t.error("alignment", "in_arrears prices are billed per calendar month: use \"calendar_month\"")
    return price


def parse_usage(t: _Table, metric: str) -> UsagePrice:
    included_raw = t.get("included", (int, str))
    if isinstance(included_raw, str):
        if included_raw != "unlimited":
            raise t.error("included", f"is {included_raw!r}: give a number or \"unlimited\"")
        included = None
    else:
        if included_raw < 0:
            raise t.error("included", f"is {included_raw}: must be at least 0")
        included = included_raw
    hard_limit = t.get("hard_limit", bool, False)
    tax_rate = parse_rate(t, "tax_rate", None)
    tiers: list[Tier] = []
    raw_tiers = t.get("tiers", list, [])
    for i, raw in enumerate(raw_tiers):
        tt = _Table(t.file, t.key(f"tiers[{i}]"), raw)
        tier = Tier(
            first=tt.count("first", minimum=1),
            last=tt.count("last", None, minimum=1),
            unit_amount=_exact(tt, "unit_amount"),
        )
        tt.finish()
        expected_first = (included or 0) + 1 if i == 0 else (tiers[-1].last or 0) + 1
        if i > 0 and tiers[-1].last is None:
            raise tt.error("first", "follows a tier without a \"last\": only the final tier may be open-ended")
        if tier.first != expected_first:
            where = "the included quantity" if i == 0 else f"tiers[{i - 1}]"
            raise tt.error(
                "first",
                f"is {tier.first} but {where} ends at {expected_first - 1}: tiers must be contiguous, "
                f"with no gap or overlap (use first = {expected_first})",
            )
        if tier.last is not None and tier.last < tier.first:
            raise tt.error("last", f"is {tier.last}, below first = {tier.first}")
        tiers.append(tier)
    if hard_limit and tiers:
        raise t.error("tiers", "a hard-limited metric refuses use beyond the included quantity: drop the tiers")
    if included is None and hard_limit:
        raise t.error("hard_limit", "an unlimited metric has no limit to enforce")
    if not hard_limit and included is not None and not tiers:
        raise t.error("tiers", "use beyond the included quantity needs tiers, or set hard_limit = true")
    t.finish()
    return UsagePrice(metric=metric, included=included, hard_limit=hard_limit, tiers=tuple(tiers), tax_rate=tax_rate)


def parse_plan(t: _Table, code: str) -> Plan:
    names = t.names("name")
    prices_t = t.table("prices", {})
    prices = {}
    for contract in prices_t.data:
        _code(prices_t, contract, contract)
        prices[contract] = parse_price(prices_t.table(contract), contract)
    prices_t.finish()
    usage_t = t.table("usage", {})
    usage = {metric: parse_usage(usage_t.table(metric), metric) for metric in usage_t.data}
    usage_t.finish()
    features_t = t.table("features", {})
    features = dict(features_t.data)
    features_t.used.update(features)
    min_seats = t.count("min_seats", None, minimum=0)
    max_seats = t.count("max_seats", None, minimum=1)
    if min_seats is not None and max_seats is not None and min_seats > max_seats:
        raise t.error("min_seats", f"is {min_seats}, above max_seats = {max_seats}")
    plan = Plan(
        code=code,
        name_ja=names["ja"],
        name_en=names["en"],
        rank=t.count("rank", minimum=0),
        prices=prices,
        usage=usage,
        features=features,
        min_seats=min_seats,
        max_seats=max_seats,
        requires_payment_method=t.get("requires_payment_method", bool, False),
        eligibility=t.get("eligibility", str, None),
        over_seat_restricts=_strings(t, "over_seat_restricts"),
    )
    t.finish()
    if plan.eligibility is not None and plan.eligibility not in ELIGIBILITY_RULE_SETS:
        raise t.error("eligibility", f"is {plan.eligibility!r}: kakin has rules for {', '.join(sorted(ELIGIBILITY_RULE_SETS))}")
    for contract, price in prices.items():
        if price.members_over_seats is not None and price.members_over_seats not in prices:
            raise CatalogError(
                t.file,
                t.key(f"prices.{contract}.members_over_seats"),
                f"names contract {price.members_over_seats!r}, which plan {code!r} has no price for",
            )
    return plan


def _strings(t: _Table, name: str) -> tuple[str, ...]:
    values = t.get(name, list, [])
    if not all(isinstance(v, str) for v in values):
        raise t.error(name, "must be a list of strings")
    return tuple(values)


def _plan_set(t: _Table, name: str, plans: Mapping[str, Plan]) -> frozenset[str] | None:
    value = t.get(name, (str, list), "*")
    if value == "*":
        return None
    values = [value] if isinstance(value, str) else value
    for v in values:
        if v not in plans:
            raise t.error(name, f"names unknown plan {v!r}; known plans: {', '.join(sorted(plans))}")
    return frozenset(values)


def _contract_set(t: _Table, name: str, contracts: set[str]) -> frozenset[str] | None:
    value = t.get(name, (str, list), "*")
    if value == "*":
        return None
    values = [value] if isinstance(value, str) else value
    for v in values:
        if v not in contracts:
            raise t.error(name, f"names unknown contract {v!r}; known contracts: {', '.join(sorted(contracts))}")
    return frozenset(values)


def _domains(t: _Table) -> Domains:
    """``[domains]`` provided_suffix (a domain such as "by-works.com") and mx_records (``{priority, value}`` each)."""
    suffix = t.get("provided_suffix", str, None)
    if suffix is not None and not _HOST.match(suffix):
        raise t.error("provided_suffix", f"is {suffix!r}: write a domain such as \"by-works.com\"")
    records = []
    for i, item in enumerate(t.get("mx_records", list, [])):
        if not isinstance(item, dict):
            raise t.error(f"mx_records[{i}]", "must be a table such as { priority = 10, value = \"mx1.example.com\" }")
        rt = _Table(t.file, t.key(f"mx_records[{i}]"), item)
        value = rt.get("value", str)
        if not _HOST.match(value):
            raise rt.error("value", f"is {value!r}: write a host name such as \"mx1.example.com\"")
        records.append(MxRecord(rt.count("priority", minimum=0), value))
        rt.finish()
    t.finish()
    return Domains(suffix, tuple(records))


def parse_catalog(data: Mapping[str, Any], file: str) -> Catalog:
    top = _Table(file, "", data)
    vendor = top.table("vendor")
    code = _code(vendor, "code", vendor.get("code", str))
    name = vendor.get("name", str)
    timezone = vendor.get("timezone", str, "Asia/Tokyo")
    currency = vendor.get("currency", str, "JPY")
    if currency != "JPY":
        raise vendor.error("currency", f"is {currency!r}: kakin bills in yen, use \"JPY\"")
    admin_limit = vendor.count("admin_limit", None, minimum=1)
    vendor.finish()

    tax = top.table("tax")
    tax_rate = parse_rate(tax, "rate")
    assert tax_rate is not None
    tax_inclusive = tax.get("inclusive", bool)
    tax_rounding = tax.choice("rounding", Rounding, Rounding.FLOOR)
    tax.finish()

    billing = top.table("billing", {})
    line_rounding = billing.choice("line_rounding", Rounding, Rounding.FLOOR)
    default_plan = billing.get("default_plan", str, None)
    fallback_plan = billing.get("fallback_plan", str, None)
    default_contract = billing.get("default_contract", str, "monthly")
    bank_transfer_due_days = billing.count("bank_transfer_due_days", 30, minimum=1)
    small_balance_days = billing.count("small_balance_days", 30, minimum=1)
    billing.finish()

    plans_t = top.table("plans")
    plans = {}
    for plan_code in plans_t.data:
        _code(plans_t, plan_code, plan_code)
        plans[plan_code] = parse_plan(plans_t.table(plan_code), plan_code)
    plans_t.finish()
    if not plans:
        raise plans_t.error("", "declare at least one plan")
    for key, value in (("default_plan", default_plan), ("fallback_plan", fallback_plan)):
        if value is not None and value not in plans:
            raise billing.error(key, f"names unknown plan {value!r}; known plans: {', '.join(sorted(plans))}")
    contracts = {c for p in plans.values() for c in p.prices}
    if contracts and default_contract not in contracts:
        raise billing.error("default_contract", f"names unknown contract {default_contract!r}")

    trial = top.table("trial", {})
    trial_days = trial.count("days", 0)
    without = trial.get("without_payment_method", str, "suspend")
    if without != "suspend":
        raise trial.error("without_payment_method", f"is {without!r}: only \"suspend\" is supported")
    trial.finish()

    rules = []
    for i, raw in enumerate(top.get("plan_changes", list, [])):
        rt = _Table(file, f"plan_changes[{i}]", raw)
        rules.append(
            ChangeRule(
                from_plans=_plan_set(rt, "from", plans),
                to_plans=_plan_set(rt, "to", plans),
                from_contracts=_contract_set(rt, "from_contract", contracts),
                to_contracts=_contract_set(rt, "to_contract", contracts),
                when=rt.choice("when", When),
                needs_verified_domain=rt.get("needs_verified_domain", bool, False),
            )
        )
        rt.finish()

    dunning_t = top.table("dunning", {})
    retry_days = dunning_t.get("retry_days", list, [])
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in retry_days) or retry_days != sorted(set(retry_days)):
        raise dunning_t.error("retry_days", f"is {retry_days!r}: give increasing whole days after the failure, such as [1, 3, 5, 7]")
    hard = dunning_t.get("hard_decline_codes", list, list(HARD_DECLINE_CODES))
    if any(not isinstance(c, str) or not _DECLINE_CODE.match(c) for c in hard) or len(set(hard)) != len(hard):
        raise dunning_t.error("hard_decline_codes", f"is {hard!r}: give distinct decline codes such as "
                              "[\"expired_card\", \"lost_card\", \"stolen_card\"] (lowercase letters, digits and _)")
    dunning = Dunning(tuple(retry_days), dunning_t.choice("after_last_failure", AfterDunning, AfterDunning.SUSPEND),
                      frozenset(hard))
    dunning_t.finish()
    if dunning.after_last_failure is AfterDunning.FALLBACK_PLAN and fallback_plan is None:
        raise dunning_t.error("after_last_failure", "needs billing.fallback_plan")

    cancel_t = top.table("cancellation", {})
    cancellation = Cancellation(
        when=cancel_t.choice("when", When, When.END_OF_PERIOD),
        remaining_as_trial=cancel_t.get("remaining_as_trial", bool, False),
    )
    cancel_t.finish()
    if cancellation.when is When.REFUSED:
        raise cancel_t.error("when", "use \"immediate\" or \"end_of_period\"")

    notices_t = top.table("notices", {})
    before_charge = notices_t.count("before_charge_days", None, minimum=1)
    before_trial_end = notices_t.count("before_trial_end_days", None, minimum=1)
    notices_t.finish()

    addons_t = top.table("addons", {})
    addons = {}
    for addon_code in addons_t.data:
        at = addons_t.table(addon_code)
        names = at.names("name")
        pt = at.table("prices")
        aprices = {c: parse_price(pt.table(c), c) for c in pt.data}
        pt.finish()
        ot = at.table("plan_overrides", {})
        overrides: dict[str, dict[str, int]] = {}
        for plan_code in ot.data:
            if plan_code not in plans:
                raise ot.error(plan_code, f"names unknown plan {plan_code!r}")
            pot = ot.table(plan_code)
            overrides[plan_code] = {}
            for c in pot.data:
                if c not in aprices:
                    raise pot.error(c, f"names no price of add-on {addon_code!r}; known: {', '.join(sorted(aprices))}")
                overrides[plan_code][c] = pot.amount(c)
            pot.finish()
        ot.finish()
        at.finish()
        addons[addon_code] = AddOn(addon_code, names["ja"], names["en"], aprices, overrides)
    addons_t.finish()
    domains = _domains(top.table("domains", {}))
    moves_t = top.table("plan_moves", {})
    plan_moves: dict[str, str] = {}
    for old in moves_t.data:
        target = moves_t.get(old, str)
        if old in plans:
            raise moves_t.error(old, f"plan {old!r} is still in this catalog: only a plan it drops can move")
        if target not in plans:
            raise moves_t.error(old, f"names unknown plan {target!r}; known plans: {', '.join(sorted(plans))}")
        plan_moves[old] = target
    moves_t.finish()
    top.finish()

    return Catalog(
        code=code,
        name=name,
        timezone=timezone,
        currency=currency,
        tax_rate=tax_rate,
        tax_inclusive=tax_inclusive,
        tax_rounding=tax_rounding,
        line_rounding=line_rounding,
        plans=plans,
        default_plan=default_plan,
        fallback_plan=fallback_plan,
        trial_days=trial_days,
        suspend_without_payment_method=True,
        change_rules=tuple(rules),
        dunning=dunning,
        cancellation=cancellation,
        addons=addons,
        admin_limit=admin_limit,
        default_contract=default_contract,
        source=file,
        notice_before_charge_days=before_charge,
        notice_before_trial_end_days=before_trial_end,
        bank_transfer_due_days=bank_transfer_due_days,
        small_balance_days=small_balance_days,
        domains=domains,
        plan_moves=plan_moves,
    )
