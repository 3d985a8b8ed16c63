"""Money: exact yen, named rounding rules, consumption tax once per rate."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from kakin.domain.invoice import Line, LineKind, TaxPolicy, generate_invoice
from kakin.domain.money import Rounding, TaxedAmount, format_rate, round_yen, tax_for_rate

TEN_PERCENT = Fraction(1, 10)


# --- tax, exclusive of tax (税抜) -------------------------------------------------


def test_three_lines_of_105_yen_at_ten_percent_carry_31_yen_tax_not_30() -> None:
    taxed = tax_for_rate([105, 105, 105], TEN_PERCENT, tax_inclusive=False, rounding=Rounding.FLOOR)
    # once on the total: floor(315 × 10/100) = floor(31.5) = 31
    # (per line it would be 3 × floor(10.5) = 30)
    assert taxed.tax == 31
    assert taxed.net == 315
    # 315 + 31 = 346
    assert taxed.gross == 346


def test_tax_exclusive_total_is_rounded_once_by_each_rule() -> None:
    # 315 × 10/100 = 31.5
    floor = tax_for_rate([105, 105, 105], TEN_PERCENT, tax_inclusive=False, rounding=Rounding.FLOOR)
    ceil = tax_for_rate([105, 105, 105], TEN_PERCENT, tax_inclusive=False, rounding=Rounding.CEIL)
    half_up = tax_for_rate([105, 105, 105], TEN_PERCENT, tax_inclusive=False, rounding=Rounding.HALF_UP)
    assert (floor.tax, ceil.tax, half_up.tax) == (31, 32, 32)


def test_tax_exclusive_at_eight_percent_is_computed_on_the_total() -> None:
    # reduced rate 8%: floor(3 × 99 × 8/100) = floor(23.76) = 23 (per line: 3 × floor(7.92) = 21)
    taxed = tax_for_rate([99, 99, 99], Fraction(8, 100), tax_inclusive=False, rounding=Rounding.FLOOR)
    assert taxed == TaxedAmount(rate=Fraction(2, 25), net=297, tax=23, gross=320)


# --- tax, inclusive of tax (税込) -------------------------------------------------


def test_tax_included_in_1800_yen_is_163_yen() -> None:
    taxed = tax_for_rate([1800], TEN_PERCENT, tax_inclusive=True, rounding=Rounding.FLOOR)
    # floor(1,800 × 0.1 ÷ 1.1) = floor(163.63…) = 163; net 1,800 − 163 = 1,637
    assert taxed == TaxedAmount(rate=TEN_PERCENT, net=1637, tax=163, gross=1800)


def test_tax_included_in_4380_yen_is_398_yen() -> None:
    # 3,600 + 780 from the NipoPlus example: floor(4,380 × 0.1 ÷ 1.1) = floor(398.18…) = 398
    taxed = tax_for_rate([3600, 780], TEN_PERCENT, tax_inclusive=True, rounding=Rounding.FLOOR)
    assert taxed == TaxedAmount(rate=TEN_PERCENT, net=3982, tax=398, gross=4380)


def test_tax_inclusive_rounding_rules_differ_only_in_the_last_yen() -> None:
    # 1,800 × 0.1 ÷ 1.1 = 163.63…
    results = {rule: tax_for_rate([1800], TEN_PERCENT, tax_inclusive=True, rounding=rule).tax for rule in Rounding}
    assert results == {Rounding.FLOOR: 163, Rounding.CEIL: 164, Rounding.HALF_UP: 164}


def test_tax_inclusive_is_computed_once_on_the_total_not_per_line() -> None:
    # once: floor(3,150 × 0.1 ÷ 1.1) = floor(286.36…) = 286
    # per line it would be 3 × floor(1,050 × 0.1 ÷ 1.1) = 3 × floor(95.45…) = 285
    taxed = tax_for_rate([1050, 1050, 1050], TEN_PERCENT, tax_inclusive=True, rounding=Rounding.FLOOR)
    assert taxed.tax == 286
    assert taxed.net == 3150 - 286


def test_an_invoice_of_three_105_yen_lines_carries_31_yen_tax() -> None:
    lines = [Line(LineKind.RECURRING, f"item {i}", 1, 105) for i in range(3)]
    draft, balance = generate_invoice(
        lines,
        issued_on=date(2024, 5, 1),
        credit_balance=0,
        tax=TaxPolicy(rate=TEN_PERCENT, inclusive=False, rounding=Rounding.FLOOR),
    )
    # floor(315 × 0.1) = 31; total 315 + 31 = 346
    assert draft.tax_amount == 31
    assert draft.total == 346
    assert balance == 0


# --- round_yen on exact fractions ---------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "floor", "ceil", "half_up"),
    [
        (Fraction(7802, 10), 780, 781, 780),  # 780.2
        (Fraction(1561, 2), 780, 781, 781),  # 780.5: half goes up
        (Fraction(7808, 10), 780, 781, 781),  # 780.8
        (Fraction(780), 780, 780, 780),  # whole yen stay put
        (Fraction(70, 3), 23, 24, 23),  # 100 × 7 ÷ 30 = 23.33…
        (Fraction(440014, 5), 88002, 88003, 88003),  # 88,002.8 (60,001 LINE OA messages)
        (Fraction(1, 3), 0, 1, 0),
        (Fraction(1, 2), 0, 1, 1),
        (Fraction(0), 0, 0, 0),
    ],
)
def test_round_yen_rounds_positive_fractions_by_the_named_rule(amount: Fraction, floor: int, ceil: int, half_up: int) -> None:
    assert round_yen(amount, Rounding.FLOOR) == floor
    assert round_yen(amount, Rounding.CEIL) == ceil
    assert round_yen(amount, Rounding.HALF_UP) == half_up


@pytest.mark.parametrize(
    ("amount", "floor", "ceil", "half_up"),
    [
        (Fraction(-7802, 10), -780, -781, -780),  # -780.2
        (Fraction(-1561, 2), -780, -781, -781),  # -780.5: by magnitude, -(780.5 rounded)
        (Fraction(-7808, 10), -780, -781, -781),  # -780.8
        (Fraction(-780), -780, -780, -780),
        (Fraction(-70, 3), -23, -24, -23),  # a credit of 100 × 7 ÷ 30
        (Fraction(-1, 3), 0, -1, 0),
    ],
)
def test_round_yen_rounds_negative_fractions_by_magnitude(amount: Fraction, floor: int, ceil: int, half_up: int) -> None:
    # a credit is never larger than the charge it mirrors: round(-x) == -round(x)
    assert round_yen(amount, Rounding.FLOOR) == floor
    assert round_yen(amount, Rounding.CEIL) == ceil
    assert round_yen(amount, Rounding.HALF_UP) == half_up


def test_a_floored_credit_mirrors_the_floored_charge() -> None:
    # 180 × 7 ÷ 30 × 1 = 42 exactly; 100 × 7 ÷ 30 = 23.33… → charge 23, credit -23 (math.floor would give -24)
    charge = Fraction(100 * 7, 30)
    assert round_yen(charge, Rounding.FLOOR) == 23
    assert round_yen(-charge, Rounding.FLOOR) == -23


def test_round_yen_accepts_plain_integers() -> None:
    assert round_yen(4380, Rounding.FLOOR) == 4380
    assert round_yen(-270, Rounding.CEIL) == -270


# --- TaxedAmount --------------------------------------------------------------------


def test_taxed_amount_refuses_net_plus_tax_not_equal_to_gross() -> None:
    # 315 + 31 = 346, not 345
    with pytest.raises(ValueError, match="net 315 \\+ tax 31 != gross 345"):
        TaxedAmount(rate=TEN_PERCENT, net=315, tax=31, gross=345)


def test_taxed_amount_accepts_net_plus_tax_equal_to_gross() -> None:
    taxed = TaxedAmount(rate=TEN_PERCENT, net=315, tax=31, gross=346)
    assert taxed.net + taxed.tax == taxed.gross == 346


def test_rates_are_shown_as_percentages() -> None:
    assert format_rate(Fraction(1, 10)) == "10%"
    assert format_rate(Fraction(2, 25)) == "8%"
    assert format_rate(Fraction(55, 1000)) == "5.5%"
