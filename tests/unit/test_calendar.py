"""Billing calendar: anniversaries from the anchor, never chained; periods; tenant-local days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kakin.domain.calendar import (
    add_months,
    anniversary,
    days_in_month,
    iter_dates,
    local_date,
    next_month_start,
    period_index,
    start_of_day,
)

TOKYO = ZoneInfo("Asia/Tokyo")

ANCHORS = [date(year, 1, day) for year in (2023, 2024) for day in (28, 29, 30, 31)]


def _last_day(year: int, month: int) -> int:
    """Independent of the code under test: the day before the 1st of the following month."""
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (following - timedelta(days=1)).day


def _expected_anniversary(anchor: date, n: int) -> date:
    year, month = anchor.year, anchor.month
    for _ in range(n):
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return date(year, month, min(anchor.day, _last_day(year, month)))


@pytest.mark.parametrize("anchor", ANCHORS, ids=str)
def test_anniversaries_keep_the_anchor_day_or_the_last_day_of_shorter_months(anchor: date) -> None:
    for n in range(25):
        assert anniversary(anchor, n) == _expected_anniversary(anchor, n), n


def test_independent_expectation_is_not_trivial() -> None:
    # the expectation helper itself clamps: Jan 30 2023 + 1 month → Feb 28, + 2 → Mar 30
    assert _expected_anniversary(date(2023, 1, 30), 1) == date(2023, 2, 28)
    assert _expected_anniversary(date(2023, 1, 30), 2) == date(2023, 3, 30)


def test_january_31_renews_on_february_29_then_march_31_in_a_leap_year() -> None:
    anchor = date(2024, 1, 31)
    assert [anniversary(anchor, n) for n in range(5)] == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
    ]


def test_january_31_renews_on_february_28_in_a_common_year() -> None:
    anchor = date(2023, 1, 31)
    assert anniversary(anchor, 1) == date(2023, 2, 28)
    assert anniversary(anchor, 2) == date(2023, 3, 31)


def test_anniversaries_are_computed_from_the_anchor_not_chained() -> None:
    anchor = date(2024, 1, 31)
    chained = add_months(add_months(anchor, 1), 1)  # Feb 29 + 1 month = Mar 29: the drift we avoid
    assert chained == date(2024, 3, 29)
    assert anniversary(anchor, 2) == date(2024, 3, 31)


@pytest.mark.parametrize("anchor", ANCHORS, ids=str)
def test_the_thirteenth_anniversary_equals_thirteen_months_after_the_anchor(anchor: date) -> None:
    assert anniversary(anchor, 13) == add_months(anchor, 13)
    assert anniversary(anchor, 13).day == min(anchor.day, _last_day(anchor.year + 1, 2))


def test_sign_up_on_the_tenth_renews_on_the_tenth() -> None:
    anchor = date(2024, 1, 10)
    assert [anniversary(anchor, n).day for n in range(24)] == [10] * 24


def test_yearly_anniversary_of_february_29_falls_on_february_28_then_returns() -> None:
    anchor = date(2024, 2, 29)
    assert anniversary(anchor, 1, interval_months=12) == date(2025, 2, 28)
    assert anniversary(anchor, 4, interval_months=12) == date(2028, 2, 29)


def test_add_months_crosses_year_ends_in_both_directions() -> None:
    assert add_months(date(2023, 11, 30), 3) == date(2024, 2, 29)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2024, 1, 15), -13) == date(2022, 12, 15)


@pytest.mark.parametrize("anchor", [*ANCHORS, date(2024, 5, 3), date(2024, 2, 29)], ids=str)
def test_period_index_round_trips_every_anniversary(anchor: date) -> None:
    for n in range(25):
        assert period_index(anchor, anniversary(anchor, n)) == n


@pytest.mark.parametrize("anchor", [*ANCHORS, date(2024, 5, 3)], ids=str)
def test_every_day_lies_in_the_period_period_index_names(anchor: date) -> None:
    for on in iter_dates(anchor, anchor + timedelta(days=731)):
        n = period_index(anchor, on)
        assert anniversary(anchor, n) <= on < anniversary(anchor, n + 1), on


def test_period_index_of_the_day_before_a_renewal_is_the_previous_period() -> None:
    anchor = date(2022, 5, 3)
    assert period_index(anchor, date(2022, 7, 2)) == 1  # June 3 – July 3
    assert period_index(anchor, date(2022, 7, 3)) == 2
    # Jan 31 anchor: Mar 30 2024 is still in the period Feb 29 – Mar 31
    assert period_index(date(2024, 1, 31), date(2024, 3, 30)) == 1


def test_period_index_with_yearly_interval() -> None:
    anchor = date(2024, 2, 29)
    assert period_index(anchor, date(2025, 2, 27), interval_months=12) == 0
    assert period_index(anchor, date(2025, 2, 28), interval_months=12) == 1
    assert period_index(anchor, date(2028, 2, 28), interval_months=12) == 3
    assert period_index(anchor, date(2028, 2, 29), interval_months=12) == 4


def test_period_index_refuses_a_date_before_the_anchor() -> None:
    with pytest.raises(ValueError, match="before the anchor"):
        period_index(date(2024, 5, 3), date(2024, 5, 2))


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [(2023, 2, 28), (2024, 2, 29), (2100, 2, 28), (2000, 2, 29), (2024, 4, 30), (2024, 12, 31)],
)
def test_days_in_month_knows_leap_years(year: int, month: int, days: int) -> None:
    assert days_in_month(year, month) == days


def test_next_month_start_rolls_over_december() -> None:
    assert next_month_start(date(2024, 12, 31)) == date(2025, 1, 1)
    assert next_month_start(date(2024, 1, 31)) == date(2024, 2, 1)


def test_the_first_of_the_month_in_tokyo_begins_at_15_utc_the_day_before() -> None:
    assert start_of_day(date(2024, 6, 1), TOKYO) == datetime(2024, 5, 31, 15, 0, tzinfo=UTC)
    assert local_date(datetime(2024, 5, 31, 15, 0, tzinfo=UTC), TOKYO) == date(2024, 6, 1)
    assert local_date(datetime(2024, 5, 31, 14, 59, 59, tzinfo=UTC), TOKYO) == date(2024, 5, 31)


def test_local_date_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2024, 6, 1, 0, 0), TOKYO)


def test_iter_dates_is_half_open() -> None:
    assert list(iter_dates(date(2024, 2, 27), date(2024, 3, 1))) == [
        date(2024, 2, 27),
        date(2024, 2, 28),
        date(2024, 2, 29),
    ]
