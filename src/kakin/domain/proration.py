"""Proration: what part of a period's price a span of days is worth.

Two conventions, chosen per price in the catalog:

- ``actual_days``: days ÷ days actually in the period (a day of April is 1/30
  of April, a day of May 1/31 of May);
- ``fixed_days``: days ÷ a fixed month length (NipoPlus: 30), with the days
  capped at that length; a mid-period change is ``unit × days ÷ 30 × seats``
  whatever the period's length (the seed's formula).

Results are exact ``Fraction`` yen; the caller rounds once per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fractions import Fraction

from .calendar import days_between, days_in_month, next_month_start
from .money import Priced


class Convention(StrEnum):
    ACTUAL_DAYS = "actual_days"
    FIXED_DAYS = "fixed_days"


@dataclass(frozen=True)
class Proration:
    convention: Convention = Convention.ACTUAL_DAYS
    fixed_days: int = 30


def prorated(
    unit_amount: int,
    quantity: int,
    change_on: date,
    period_start: date,
    period_end: date,
    proration: Proration,
) -> Priced:
    """What ``quantity`` units cost from ``change_on`` to ``period_end``, with the formula that gives it.

    ``fixed_days`` is the seed's formula for every period length (seeds/nipoplus-paid-plan.ja.txt, SPEC 3.2):
    ``unit × days remaining ÷ 30 × quantity``, days remaining counted from the change date to the next billing
    date and at most 30. Ten seats added on June 20 of June 3 – July 3: 180 × 13 ÷ 30 × 10 = 780; five on the
    first day of Feb 28 – Mar 28: 180 × 28 ÷ 30 × 5 = 840. ``actual_days``: ``unit × days ÷ days in the period ×
    quantity``. A negative quantity gives a negative amount (a credit). Raises ValueError for a date outside the
    period.
    """
    if not period_start <= change_on <= period_end:
        raise ValueError(f"{change_on} is outside the period {period_start} – {period_end}")
    remaining = days_between(change_on, period_end)
    if proration.convention is Convention.FIXED_DAYS:
        days, divisor = min(remaining, proration.fixed_days), proration.fixed_days
    else:
        days, divisor = remaining, days_between(period_start, period_end)
    exact = Fraction(unit_amount * days * quantity, divisor)
    return Priced(exact, f"{unit_amount} × {days} ÷ {divisor} × {quantity}")


@dataclass(frozen=True)
class DailySpan:
    """``quantity`` units held on each day of [start, end)."""

    start: date
    end: date
    quantity: int


def daily_priced(unit_amount: int, spans: Iterable[DailySpan], proration: Proration) -> Priced:
    """Per-day charges inside one calendar month, with the formula: unit-days × unit ÷ days in the month.

    LINE WORKS monthly contract, April: 375 user-days × 600 ÷ 30 = 7,500. With
    ``fixed_days`` a span's days count at most the fixed length and a whole month counts as that length.
    Raises ValueError for spans outside one calendar month.
    """
    spans = list(spans)
    if not spans:
        return Priced(Fraction(0), "0")
    month = spans[0].start.replace(day=1)
    dim = days_in_month(month.year, month.month)
    unit_days = 0
    for span in spans:
        if span.start.replace(day=1) != month or span.end > next_month_start(month):
            raise ValueError(f"{span.start}–{span.end} is not inside the month of {month}")
        days = days_between(span.start, span.end)
        if proration.convention is Convention.FIXED_DAYS:
            days = proration.fixed_days if days == dim else min(days, proration.fixed_days)
        unit_days += span.quantity * days
    divisor = dim if proration.convention is Convention.ACTUAL_DAYS else proration.fixed_days
    return Priced(Fraction(unit_amount * unit_days, divisor), f"{unit_days} × {unit_amount} ÷ {divisor}")
