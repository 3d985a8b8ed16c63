"""Proration matrix: fixed 30-day convention (NipoPlus), actual days, per-day billing (LINE WORKS)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from kakin.adapters.catalog_files import resolve_catalog
from kakin.domain.account import Phase
from kakin.domain.charges import arrears_lines
from kakin.domain.invoice import LineKind, line
from kakin.domain.money import Rounding, round_yen
from kakin.domain.proration import (
    Convention,
    DailySpan,
    Proration,
    daily_priced,
    prorated,
)

FIXED_30 = Proration(Convention.FIXED_DAYS, 30)
ACTUAL = Proration(Convention.ACTUAL_DAYS)
GOLD = 180  # NipoPlus GOLD, yen per seat per month, tax included


# --- the 30-day convention (NipoPlus) ----------------------------------------------


def test_seed_example_ten_seats_added_on_june_20_cost_780_yen() -> None:
    # period June 3 – July 3, 13 days remaining: 180 × 13 ÷ 30 × 10 = 780
    amount = prorated(GOLD, 10, date(2022, 6, 20), date(2022, 6, 3), date(2022, 7, 3), FIXED_30).exact
    assert amount == 780


def test_a_change_on_the_first_day_of_a_28_day_february_period_is_the_seeds_formula() -> None:
    # period Feb 28 – Mar 28 2025 (28 days), five seats added on Feb 28: 180 × 28 ÷ 30 × 5 = 840, not the whole 900
    priced = prorated(GOLD, 5, date(2025, 2, 28), date(2025, 2, 28), date(2025, 3, 28), FIXED_30)
    assert priced.exact == 840
    assert priced.formula == "180 × 28 ÷ 30 × 5"


def test_the_printed_formula_ends_with_the_amount_the_line_carries() -> None:
    # 180 × 13 ÷ 30 × 7 = 546 exactly; 100 × 13 ÷ 30 × 1 = 43.33… → the line carries 43 and prints 43
    seven = line(LineKind.PRORATION, "7 seats", 7, prorated(GOLD, 7, date(2022, 6, 20), date(2022, 6, 3),
                                                            date(2022, 7, 3), FIXED_30), Rounding.FLOOR)
    assert (seven.amount, seven.formula) == (546, "180 × 13 ÷ 30 × 7 = 546")
    odd = line(LineKind.PRORATION, "1 seat", 1, prorated(100, 1, date(2022, 6, 20), date(2022, 6, 3), date(2022, 7, 3),
                                                         FIXED_30), Rounding.FLOOR)
    assert (odd.amount, odd.formula) == (43, "100 × 13 ÷ 30 × 1 = 43")


def test_actual_days_print_the_period_length_as_the_divisor() -> None:
    # April 16 – May 1 of April (30 days): 600 × 15 ÷ 30 × 2 = 600
    priced = prorated(600, 2, date(2024, 4, 16), date(2024, 4, 1), date(2024, 5, 1), ACTUAL)
    assert (priced.exact, priced.formula) == (600, "600 × 15 ÷ 30 × 2")


def test_per_day_charges_print_user_days_times_the_price_over_the_days_in_the_month() -> None:
    # April: 10 users × 15 days + 15 users × 15 days = 375 user-days × 600 ÷ 30 = 7,500
    spans = [DailySpan(date(2024, 4, 1), date(2024, 4, 16), 10), DailySpan(date(2024, 4, 16), date(2024, 5, 1), 15)]
    priced = daily_priced(600, spans, ACTUAL)
    assert (priced.exact, priced.formula) == (7500, "375 × 600 ÷ 30")
    assert priced.exact == daily_priced(600, spans, ACTUAL).exact


def test_seat_decrease_is_a_negative_credit_over_thirty_days() -> None:
    # 180 × 13 ÷ 30 × (−10) = −780
    amount = prorated(GOLD, -10, date(2022, 6, 20), date(2022, 6, 3), date(2022, 7, 3), FIXED_30).exact
    assert amount == -780


def test_seat_increase_is_prorated_over_thirty_days_even_in_a_31_day_period() -> None:
    # period July 3 – Aug 3 (31 days), change July 20 → 14 days remaining: 180 × 14 ÷ 30 × 10 = 840
    amount = prorated(GOLD, 10, date(2022, 7, 20), date(2022, 7, 3), date(2022, 8, 3), FIXED_30).exact
    assert amount == 840


def test_seat_decrease_in_a_31_day_period_gives_an_exact_negative_credit() -> None:
    # 180 × 14 ÷ 30 × (−3) = −252
    amount = prorated(GOLD, -3, date(2022, 7, 20), date(2022, 7, 3), date(2022, 8, 3), FIXED_30).exact
    assert amount == -252


def test_days_remaining_are_capped_at_thirty_in_a_31_day_period() -> None:
    # change on the first day of July 3 – Aug 3: 31 days remain, capped at 30: 180 × 30 ÷ 30 × 1 = 180
    first_day = prorated(GOLD, 1, date(2022, 7, 3), date(2022, 7, 3), date(2022, 8, 3), FIXED_30).exact
    assert first_day == 180
    # the second day has 30 days remaining: 180 × 30 ÷ 30 = 180 as well
    second_day = prorated(GOLD, 1, date(2022, 7, 4), date(2022, 7, 3), date(2022, 8, 3), FIXED_30).exact
    assert second_day == 180
    # the third day: 180 × 29 ÷ 30 = 174
    third_day = prorated(GOLD, 1, date(2022, 7, 5), date(2022, 7, 3), date(2022, 8, 3), FIXED_30).exact
    assert third_day == 174


@pytest.mark.parametrize(
    ("period_start", "period_end", "change_on", "expected"),
    [
        # 28-day period Feb 3 – Mar 3 2023, Feb 17 → 14 days: 180 × 14 ÷ 30 × 5 = 420
        (date(2023, 2, 3), date(2023, 3, 3), date(2023, 2, 17), 420),
        # 29-day period Feb 3 – Mar 3 2024, Feb 17 → 15 days: 180 × 15 ÷ 30 × 5 = 450
        (date(2024, 2, 3), date(2024, 3, 3), date(2024, 2, 17), 450),
        # 30-day period June 3 – July 3, June 17 → 16 days: 180 × 16 ÷ 30 × 5 = 480
        (date(2022, 6, 3), date(2022, 7, 3), date(2022, 6, 17), 480),
        # 31-day period July 3 – Aug 3, July 17 → 17 days: 180 × 17 ÷ 30 × 5 = 510
        (date(2022, 7, 3), date(2022, 8, 3), date(2022, 7, 17), 510),
    ],
    ids=["28-day", "29-day", "30-day", "31-day"],
)
def test_fixed_days_price_depends_only_on_days_remaining_whatever_the_month_length(
    period_start: date, period_end: date, change_on: date, expected: int
) -> None:
    assert prorated(GOLD, 5, change_on, period_start, period_end, FIXED_30).exact == expected


def test_fixed_days_fractions_stay_exact_until_rounded_once() -> None:
    # 100 × 7 ÷ 30 × 1 = 70/3 = 23.33…; floored once → 23
    amount = prorated(100, 1, date(2022, 6, 26), date(2022, 6, 3), date(2022, 7, 3), FIXED_30).exact
    assert amount == Fraction(70, 3)
    assert round_yen(amount, Rounding.FLOOR) == 23


def test_a_change_on_the_last_day_of_a_period_is_worth_one_day() -> None:
    # July 2 in June 3 – July 3: 1 day: 180 × 1 ÷ 30 × 10 = 60
    amount = prorated(GOLD, 10, date(2022, 7, 2), date(2022, 6, 3), date(2022, 7, 3), FIXED_30).exact
    assert amount == 60


def test_a_change_on_the_renewal_date_is_worth_nothing_in_the_ending_period() -> None:
    # July 3 = period end: 0 days remaining: 180 × 0 ÷ 30 × 10 = 0
    amount = prorated(GOLD, 10, date(2022, 7, 3), date(2022, 6, 3), date(2022, 7, 3), FIXED_30).exact
    assert amount == 0


def test_a_change_outside_the_period_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the period"):
        prorated(GOLD, 10, date(2022, 7, 4), date(2022, 6, 3), date(2022, 7, 3), FIXED_30)
    with pytest.raises(ValueError, match="outside the period"):
        prorated(GOLD, 10, date(2022, 6, 2), date(2022, 6, 3), date(2022, 7, 3), FIXED_30)


def test_fixed_days_honour_another_fixed_length() -> None:
    # a 28-day convention: 14 days left of a 31-day period = 600 × 14 ÷ 28 × 1 = 300; 30 days left count 28 → 600
    proration = Proration(Convention.FIXED_DAYS, 28)
    assert prorated(600, 1, date(2024, 1, 18), date(2024, 1, 1), date(2024, 2, 1), proration).exact == 300
    assert prorated(600, 1, date(2024, 1, 2), date(2024, 1, 1), date(2024, 2, 1), proration).exact == 600


# --- actual days ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("period_start", "period_end", "change_on", "expected"),
    [
        # Feb 2023 (28 days), Feb 15 → 14 days: 600 × 14 ÷ 28 × 1 = 300
        (date(2023, 2, 1), date(2023, 3, 1), date(2023, 2, 15), Fraction(300)),
        # Feb 2024 (29 days), Feb 15 → 15 days: 600 × 15 ÷ 29 = 9000/29
        (date(2024, 2, 1), date(2024, 3, 1), date(2024, 2, 15), Fraction(9000, 29)),
        # April (30 days), Apr 16 → 15 days: 600 × 15 ÷ 30 = 300
        (date(2024, 4, 1), date(2024, 5, 1), date(2024, 4, 16), Fraction(300)),
        # March (31 days), Mar 17 → 15 days: 600 × 15 ÷ 31 = 9000/31
        (date(2024, 3, 1), date(2024, 4, 1), date(2024, 3, 17), Fraction(9000, 31)),
    ],
    ids=["28-day", "29-day", "30-day", "31-day"],
)
def test_actual_days_divide_by_the_days_in_the_period(
    period_start: date, period_end: date, change_on: date, expected: Fraction
) -> None:
    assert prorated(600, 1, change_on, period_start, period_end, ACTUAL).exact == expected


def test_actual_days_seat_decrease_is_a_negative_credit() -> None:
    # April, Apr 16 → 15 of 30 days: 600 × 15 ÷ 30 × (−2) = −600
    amount = prorated(600, -2, date(2024, 4, 16), date(2024, 4, 1), date(2024, 5, 1), ACTUAL).exact
    assert amount == -600


def test_actual_days_first_day_of_a_period_is_the_full_price() -> None:
    # March, Mar 1 → 31 of 31 days: 600 × 31 ÷ 31 × 3 = 1,800
    amount = prorated(600, 3, date(2024, 3, 1), date(2024, 3, 1), date(2024, 4, 1), ACTUAL).exact
    assert amount == 1800


# --- plan changes on the first and last day of a period (in advance) ---------------


def test_plan_change_on_the_first_day_of_a_period_charges_the_whole_difference() -> None:
    # 10 seats from 180 to 300 on June 3 of June 3 – July 3 (30 days):
    # −180 × 30 ÷ 30 × 10 + 300 × 30 ÷ 30 × 10 = −1,800 + 3,000 = 1,200
    start, end = date(2022, 6, 3), date(2022, 7, 3)
    credit = prorated(180, -10, start, start, end, FIXED_30).exact
    charge = prorated(300, 10, start, start, end, FIXED_30).exact
    assert (credit, charge, credit + charge) == (-1800, 3000, 1200)


def test_plan_change_on_the_last_day_of_a_period_charges_one_day_of_difference() -> None:
    # the same change on July 2 (1 day left): −180 × 1 ÷ 30 × 10 + 300 × 1 ÷ 30 × 10 = −60 + 100 = 40
    start, end = date(2022, 6, 3), date(2022, 7, 3)
    credit = prorated(180, -10, date(2022, 7, 2), start, end, FIXED_30).exact
    charge = prorated(300, 10, date(2022, 7, 2), start, end, FIXED_30).exact
    assert (credit, charge, credit + charge) == (-60, 100, 40)


def test_plan_change_on_the_last_day_of_a_31_day_month_by_actual_days() -> None:
    # 5 seats from 500 to 1,000 on Mar 31: (1,000 − 500) × 1 ÷ 31 × 5 = 2500/31
    start, end = date(2024, 3, 1), date(2024, 4, 1)
    total = prorated(500, -5, date(2024, 3, 31), start, end, ACTUAL).exact + prorated(
        1000, 5, date(2024, 3, 31), start, end, ACTUAL
    ).exact
    assert total == Fraction(2500, 31)
    assert round_yen(total, Rounding.FLOOR) == 80


# --- per-day billing in calendar months (LINE WORKS) --------------------------------


def test_line_works_april_ten_then_fifteen_users_costs_7500_yen() -> None:
    # 10 users Apr 1–15 + 15 users Apr 16–30: (10 × 15 + 15 × 15) × 600 ÷ 30 = 375 × 20 = 7,500
    spans = [DailySpan(date(2024, 4, 1), date(2024, 4, 16), 10), DailySpan(date(2024, 4, 16), date(2024, 5, 1), 15)]
    assert daily_priced(600, spans, ACTUAL).exact == 7500


def test_a_span_across_a_month_end_is_refused_since_each_month_is_billed_on_its_own() -> None:
    # post-paid months close one at a time (charges.arrears_lines): a span must lie inside one calendar month
    with pytest.raises(ValueError, match="not inside the month"):
        daily_priced(600, [DailySpan(date(2024, 1, 17), date(2024, 2, 15), 10)], ACTUAL)


@pytest.mark.parametrize(
    ("month_start", "month_end", "one_day"),
    [
        (date(2023, 2, 1), date(2023, 3, 1), Fraction(600, 28)),  # 28-day month: 600 ÷ 28 = 150/7
        (date(2024, 2, 1), date(2024, 3, 1), Fraction(600, 29)),  # 29-day month: 600 ÷ 29
        (date(2024, 4, 1), date(2024, 5, 1), Fraction(20)),  # 30-day month: 600 ÷ 30 = 20
        (date(2024, 1, 1), date(2024, 2, 1), Fraction(600, 31)),  # 31-day month: 600 ÷ 31
    ],
    ids=["28-day", "29-day", "30-day", "31-day"],
)
def test_a_whole_month_costs_the_monthly_price_and_one_day_its_share(
    month_start: date, month_end: date, one_day: Fraction
) -> None:
    # whole month: 600 × 10 × n ÷ n = 6,000 whatever n is
    assert daily_priced(600, [DailySpan(month_start, month_end, 10)], ACTUAL).exact == 6000
    # the first day alone: 600 × 1 ÷ n
    assert daily_priced(600, [DailySpan(month_start, date(month_start.year, month_start.month, 2), 1)], ACTUAL).exact == one_day


def test_a_leading_partial_month_is_charged_from_the_start_day() -> None:
    # sign-up Apr 16, 10 users: 600 × 10 × 15 ÷ 30 = 3,000
    assert daily_priced(600, [DailySpan(date(2024, 4, 16), date(2024, 5, 1), 10)], ACTUAL).exact == 3000


def test_a_trailing_partial_month_is_charged_for_the_days_used() -> None:
    # cancelled Apr 11 (used Apr 1–10), 10 users: 600 × 10 × 10 ÷ 30 = 2,000
    assert daily_priced(600, [DailySpan(date(2024, 4, 1), date(2024, 4, 11), 10)], ACTUAL).exact == 2000


def test_plan_change_on_the_first_day_of_the_month_bills_only_the_new_plan() -> None:
    # basic (600) → premium (1,200) effective Apr 1, 10 users: 0 + 1,200 × 10 × 30 ÷ 30 = 12,000
    basic = daily_priced(600, [DailySpan(date(2024, 4, 1), date(2024, 4, 1), 10)], ACTUAL).exact
    premium = daily_priced(1200, [DailySpan(date(2024, 4, 1), date(2024, 5, 1), 10)], ACTUAL).exact
    assert (basic, premium) == (0, 12000)


def test_plan_change_on_the_last_day_of_the_month_bills_that_day_at_the_new_plan() -> None:
    # basic Apr 1–29 + premium Apr 30, 10 users: 600 × 10 × 29 ÷ 30 + 1,200 × 10 × 1 ÷ 30 = 5,800 + 400 = 6,200
    basic = daily_priced(600, [DailySpan(date(2024, 4, 1), date(2024, 4, 30), 10)], ACTUAL).exact
    premium = daily_priced(1200, [DailySpan(date(2024, 4, 30), date(2024, 5, 1), 10)], ACTUAL).exact
    assert (basic, premium, basic + premium) == (5800, 400, 6200)


def test_daily_amount_with_fixed_days_prices_a_day_at_one_thirtieth() -> None:
    # one day of a 31-day month at the fixed convention: 180 × 1 ÷ 30 = 6
    assert daily_priced(180, [DailySpan(date(2024, 1, 5), date(2024, 1, 6), 1)], FIXED_30).exact == 6
    # the whole of January is capped at 30 days: 180 × 30 ÷ 30 = 180
    assert daily_priced(180, [DailySpan(date(2024, 1, 1), date(2024, 2, 1), 1)], FIXED_30).exact == 180


def test_arrears_lines_bill_the_april_example_as_one_line_of_7500_yen() -> None:
    catalog = resolve_catalog("lineworks")
    phases = [
        Phase(date(2024, 4, 1), "basic", "monthly", seats=0, members=10, billable=True),
        Phase(date(2024, 4, 16), "basic", "monthly", seats=0, members=15, billable=True),
    ]
    (only,) = arrears_lines(lambda _: catalog, phases, date(2024, 4, 1), date(2024, 5, 1))
    # 375 user-days × 600 ÷ 30 = 7,500
    assert only.amount == 7500
    assert only.quantity == 375
    assert "375 × 600 ÷ 30 = 7500" in only.formula


def test_arrears_lines_bill_users_beyond_annual_licenses_at_the_monthly_price() -> None:
    catalog = resolve_catalog("lineworks")
    phases = [Phase(date(2024, 4, 1), "basic", "annual", seats=10, members=12, billable=True)]
    lines = arrears_lines(lambda _: catalog, phases, date(2024, 4, 1), date(2024, 5, 1))
    # licenses: 10 × 30 days × 500 ÷ 30 = 5,000; users over: 2 × 30 × 600 ÷ 30 = 1,200
    assert sorted(item.amount for item in lines) == [1200, 5000]


def test_arrears_lines_floor_each_line_once() -> None:
    catalog = resolve_catalog("lineworks")
    phases = [Phase(date(2024, 3, 17), "basic", "monthly", seats=0, members=1, billable=True)]
    (only,) = arrears_lines(lambda _: catalog, phases, date(2024, 3, 1), date(2024, 4, 1))
    # Mar 17–31 = 15 days: 600 × 15 ÷ 31 = 290.32… → 290
    assert only.amount == 290
