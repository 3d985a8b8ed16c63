"""Proration: what part of a period's price a span of days is worth.

Two conventions, chosen per price in the catalog:

- ``actual_days``: days ÷ days actually in the period (a day of April is 1/30
  of April, a day of May 1/31 of May);
- ``fixed_days``: days ÷ a fixed month length (NipoPlus: 30), with the days
  capped at that length so a whole period never costs more than its price.

Results are exact ``Fraction`` yen; the caller rounds once per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fractions import Fraction

from .calendar import days_between, days_in_month, next_month_start


class Convention(StrEnum):
    ACTUAL_DAYS = "actual_days"
    FIXED_DAYS = "fixed_days"


@dataclass(frozen=True)
class Proration:
    convention: Convention = Convention.ACTUAL_DAYS
    fixed_days: int = 30

    def share(self, days: int, period_days: int) -> Fraction:
        """The fraction of a period's price that ``days`` of it are worth."""
        if days < 0 or period_days <= 0:
            raise ValueError(f"days {days} of a {period_days}-day period")
        if days > period_days:
            raise ValueError(f"{days} days do not fit in a {period_days}-day period")
        if days == period_days:
            return Fraction(1)  # a whole period is the period's price, whatever its length
        if self.convention is Convention.FIXED_DAYS:
            return Fraction(min(days, self.fixed_days), self.fixed_days)
        return Fraction(days, period_days)


def prorated_change(
    unit_amount: int,
    quantity_delta: int,
    change_on: date,
    period_start: date,
    period_end: date,
    proration: Proration,
) -> Fraction:
    """The prorated price of ``quantity_delta`` units from ``change_on`` to ``period_end``.

    NipoPlus: 180 × 13 ÷ 30 × 10 = 780 for ten seats added on June 20 of the
    period June 3 – July 3. A negative delta gives a (negative) credit.
    """
    if not period_start <= change_on <= period_end:
        raise ValueError(f"{change_on} is outside the period {period_start} – {period_end}")
    remaining = days_between(change_on, period_end)
    share = proration.share(remaining, days_between(period_start, period_end))
    return unit_amount * share * quantity_delta


@dataclass(frozen=True)
class DailySpan:
    """``quantity`` units held on each day of [start, end)."""

    start: date
    end: date
    quantity: int


def daily_amount(unit_amount: int, spans: Iterable[DailySpan], proration: Proration) -> Fraction:
    """Per-day charges in calendar months: each day costs quantity × unit ÷ days in its month.

    LINE WORKS monthly contract, April: 10 users × 15 days + 15 users × 15 days
    = 375 user-days × 600 ÷ 30 = 7,500. Spans may cross month ends; each day is
    priced against its own month (``actual_days``) or the fixed month length.
    """
    total = Fraction(0)
    for span in spans:
        day = span.start
        while day < span.end:
            month_end = min(next_month_start(day), span.end)
            days = days_between(day, month_end)
            total += unit_amount * span.quantity * proration.share(
                days, days_in_month(day.year, day.month)
            )
            day = month_end
    return total
