"""Billing calendar: tenant-local dates, anniversaries and calendar months.

Instants are timezone-aware UTC ``datetime``; billing dates are ``date`` in the
tenant's zone. Anniversaries are always computed from the anchor, never
chained from the previous date, so Jan 31 → Feb 29 → Mar 31 (not Mar 29).
"""

from __future__ import annotations

import calendar as _cal
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and _cal.isleap(year) else _DAYS[month - 1]


@lru_cache(maxsize=8192)  # a billing run asks for the same few anniversaries of many anchors
def add_months(anchor: date, months: int) -> date:
    """The date ``months`` after ``anchor``, clamped to the month's last day."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    return date(year, month, min(anchor.day, days_in_month(year, month)))


def anniversary(anchor: date, n: int, interval_months: int = 1) -> date:
    """The n-th billing date counted from the anchor (n = 0 is the anchor itself)."""
    return add_months(anchor, n * interval_months)


def period_index(anchor: date, on: date, interval_months: int = 1) -> int:
    """The index n of the anniversary period [anniversary(n), anniversary(n+1)) holding ``on``."""
    if on < anchor:
        raise ValueError(f"{on} is before the anchor {anchor}")
    months = (on.year - anchor.year) * 12 + (on.month - anchor.month)
    n = max(0, months // interval_months)
    while anniversary(anchor, n + 1, interval_months) <= on:
        n += 1
    while n > 0 and anniversary(anchor, n, interval_months) > on:
        n -= 1
    return n


def month_start(on: date) -> date:
    return on.replace(day=1)


def next_month_start(on: date) -> date:
    return add_months(on.replace(day=1), 1)


def days_between(start: date, end: date) -> int:
    return (end - start).days


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The tenant-local calendar date of a UTC instant."""
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(zone).date()


def instant_text(instant: datetime, zone: tzinfo) -> str:
    """An instant as shown to people and programs: ISO 8601 with ``T`` and the offset of ``zone`` (the zone a request
    asked in, or the tenant's), such as ``2026-05-03T10:00:00+09:00``. SPEC 5: instants carry their offset everywhere.
    """
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(zone).isoformat()


@lru_cache(maxsize=8192)  # every account due on a date asks for the same instant
def start_of_day(on: date, zone: ZoneInfo) -> datetime:
    """00:00 of a tenant-local date, as a UTC instant."""
    return datetime.combine(on, time(0), tzinfo=zone).astimezone(UTC)


def iter_dates(start: date, end: date):  # type: ignore[no-untyped-def]
    """Dates in [start, end)."""
    d = start
    while d < end:
        yield d
        d += timedelta(days=1)
