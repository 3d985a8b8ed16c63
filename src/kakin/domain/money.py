"""Money: integer yen, exact fractions, and named rounding rules.

Yen are ``int``. Anything fractional (proration, 2.8 yen per message, tax) is a
``Fraction`` until one call of :func:`round_yen` with the catalog's rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache


class Rounding(StrEnum):
    FLOOR = "floor"
    CEIL = "ceil"
    HALF_UP = "half_up"


def round_yen(amount: Fraction | int, rule: Rounding) -> int:
    """Round an exact amount to whole yen by the named rule.

    Negative amounts round by magnitude (a credit of -780.5 floors to -780), so a
    credit is never larger than its charge would have been.
    """
    if isinstance(amount, int):
        return amount  # already whole yen
    value = amount
    if value.denominator == 1:
        return value.numerator
    if value < 0:
        return -round_yen(-value, rule)
    if rule is Rounding.FLOOR:
        return math.floor(value)
    if rule is Rounding.CEIL:
        return math.ceil(value)
    if rule is Rounding.HALF_UP:
        return math.floor(value + Fraction(1, 2))
    raise ValueError(f"unknown rounding rule {rule!r}")


@dataclass(frozen=True)
class TaxedAmount:
    """One tax rate's share of an invoice. Invariant: net + tax == gross."""

    rate: Fraction
    net: int
    tax: int
    gross: int

    def __post_init__(self) -> None:
        if self.net + self.tax != self.gross:
            raise ValueError(f"net {self.net} + tax {self.tax} != gross {self.gross}")


def tax_for_rate(
    line_amounts: Iterable[int], rate: Fraction, *, tax_inclusive: bool, rounding: Rounding
) -> TaxedAmount:
    """Consumption tax computed once on the total at one rate, then rounded.

    Tax-exclusive: tax = total × rate (three lines of 105 at 10% → 315 × 0.1 = 31.5 → 31).
    Tax-inclusive: tax = total × rate ÷ (1 + rate) (1,800 at 10% → 163.63… → 163).
    """
    total = sum(line_amounts)
    # the exact tax as numerator / denominator of integers: rate = p / q
    p, q = rate.numerator, rate.denominator
    num, den = (total * p, q + p) if tax_inclusive else (total * p, q)
    if rounding is Rounding.FLOOR and num >= 0:
        tax = num // den  # the common case, without building a Fraction
    else:
        tax = round_yen(Fraction(num, den), rounding)
    if tax_inclusive:
        return TaxedAmount(rate=rate, net=total - tax, tax=tax, gross=total)
    return TaxedAmount(rate=rate, net=total, tax=tax, gross=total + tax)


@dataclass(frozen=True)
class Priced:
    """An exact amount and the arithmetic that gives it, made by one computation.

    ``formula`` is the arithmetic without its result (``"180 × 13 ÷ 30 × 10"``);
    :meth:`shown` appends the amount a line actually carries, so the printed
    formula and the amount can never disagree.
    """

    exact: Fraction | int  # an int when the amount is whole yen already (the common case, kept cheap)
    formula: str

    def rounded(self, rule: Rounding) -> int:
        return round_yen(self.exact, rule)

    def shown(self, amount: int) -> str:
        """The formula with the amount it gave: ``"180 × 13 ÷ 30 × 10 = 780"``."""
        return f"{self.formula} = {amount}"


def number_text(value: Fraction | int) -> str:
    """An exact number as printed in a formula: 3, 2.8, or 1/3 when it has no finite decimal."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    return decimal_text(value) if d == 1 else f"{value.numerator}/{value.denominator}"


def product(unit: Fraction | int, quantity: int) -> Priced:
    """unit × quantity: a period's fee (180 × 20 = 3,600), an add-on (100 × 1)."""
    if isinstance(unit, int):
        return Priced(unit * quantity, f"{unit} × {quantity}")
    return Priced(unit * quantity, f"{number_text(unit)} × {quantity}")


def decimal_text(value: Fraction) -> str:
    """An exact amount as decimal text: Fraction(14, 5) → "2.8" (exact for terminating decimals)."""
    return format((Decimal(value.numerator) / Decimal(value.denominator)).normalize(), "f")


@lru_cache(maxsize=64)  # a catalog has a rate or two; every invoice line and tax row prints one
def format_rate(rate: Fraction) -> str:
    """10% for Fraction(1, 10); 8% for Fraction(2, 25)."""
    percent = rate * 100
    if percent.denominator == 1:
        return f"{percent.numerator}%"
    return f"{decimal_text(percent)}%"
