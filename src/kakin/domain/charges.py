"""What a period costs: recurring lines in advance, per-day lines in arrears, usage lines.

Every amount is exact until :func:`kakin.domain.invoice.line` rounds it once,
and each line carries its formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from .account import Phase
from .calendar import days_between
from .catalog import Basis, Catalog, Plan, Price, UsagePrice
from .invoice import Line, LineKind, line
from .money import product
from .proration import DailySpan, daily_priced

CONTRACT_JA = {"monthly": "月額契約", "annual": "年額契約"}


def _period_text(start: date, end: date) -> str:
    return f"{start.isoformat()}〜{(end - timedelta(days=1)).isoformat()}"


def plan_label(plan: Plan, contract: str) -> str:
    return f"{plan.name_ja}（{CONTRACT_JA.get(contract, contract)}）"


def quantity_for(price: Price, seats: int) -> int:
    return 1 if price.basis is Basis.FLAT else seats


def recurring_line(catalog: Catalog, plan: Plan, price: Price, seats: int, start: date, end: date) -> Line:
    """An in-advance period: unit × quantity, whole."""
    qty = quantity_for(price, seats)
    return line(
        LineKind.RECURRING,
        f"{plan_label(plan, price.contract)} {_period_text(start, end)}",
        qty,
        product(price.unit_amount, qty),
        catalog.line_rounding,
        period_start=start,
        period_end=end,
        tax_rate=price.tax_rate,
        catalog_version=catalog.version,
    )


def arrears_lines(catalog_of: Callable[[int], Catalog], phases: Sequence[Phase], start: date, end: date) -> list[Line]:
    """Per-day charges for [start, end) inside one calendar month, from the phases in effect.

    Each day costs quantity × unit ÷ days in the month, at the state at the end
    of that day, with the prices of the catalog version that phase records (``catalog_of(number)``: issue 13).
    One line per catalog version, plan, contract and price component, rounded once.
    """
    if start.replace(day=1) != (end - timedelta(days=1)).replace(day=1):
        raise ValueError(f"{start}–{end} is not inside one calendar month")
    # (catalog version, plan, contract, component price contract) → list of spans
    groups: dict[tuple[int, str, str, str], list[DailySpan]] = {}
    ordered = sorted(phases, key=lambda p: p.start)
    for i, phase in enumerate(ordered):
        span_start = max(phase.start, start)
        span_end = min(ordered[i + 1].start if i + 1 < len(ordered) else end, end)
        if span_start >= span_end or not phase.billable:
            continue
        plan = catalog_of(phase.catalog_version).plans[phase.plan]
        price = plan.prices.get(phase.contract)
        if price is None:
            continue
        if price.basis is Basis.MEMBER:
            parts = [(price.contract, phase.members)]
        elif price.basis is Basis.SEAT:
            parts = [(price.contract, phase.seats)]
            if price.members_over_seats:
                parts.append((price.members_over_seats, max(0, phase.members - phase.seats)))
        else:
            parts = [(price.contract, 1)]
        for component, qty in parts:
            if qty > 0:
                groups.setdefault((phase.catalog_version, phase.plan, phase.contract, component), []).append(
                    DailySpan(span_start, span_end, qty)
                )
    out = []
    for (version, plan_code, contract, component), spans in groups.items():
        catalog = catalog_of(version)
        plan = catalog.plans[plan_code]
        price = plan.prices[component]
        unit_days = sum(s.quantity * days_between(s.start, s.end) for s in spans)
        over = component != contract
        what = "ライセンス超過ユーザー" if over else ("ユーザー" if price.basis is Basis.MEMBER else "ライセンス")
        first = min(s.start for s in spans)
        last = max(s.end for s in spans)
        out.append(
            line(
                LineKind.RECURRING,
                f"{plan_label(plan, contract)} {what} {unit_days}人日 {_period_text(first, last)}",
                unit_days,
                daily_priced(price.unit_amount, spans, price.proration),
                catalog.line_rounding,
                period_start=first,
                period_end=last,
                tax_rate=price.tax_rate,
                catalog_version=version,
            )
        )
    return out


def usage_line(catalog: Catalog, plan: Plan, usage: UsagePrice, used: int, month: date) -> Line | None:
    """Overage for one month: graduated tiers, exact, floored once for the whole line.

    Standard, 35,000 messages: (35,000 − 30,000) × 3 = 15,000.
    """
    over = usage.overage_units(used)
    if over <= 0 or not usage.tiers:
        return None
    end = date(month.year + (month.month // 12), month.month % 12 + 1, 1)
    return line(
        LineKind.USAGE,
        f"{plan.name_ja} 追加メッセージ {over}通 {_period_text(month, end)}",
        over,
        usage.overage(used),
        catalog.line_rounding,
        period_start=month,
        period_end=end,
        tax_rate=usage.tax_rate,
        catalog_version=catalog.version,
    )
