"""Invoice generation as a pure function.

Lines carry exact amounts until :func:`line` rounds them once by the catalog's
rule. :func:`generate_invoice` applies the customer's credit balance, never
produces a negative invoice (a surplus is carried forward as credit, never
lost) and computes consumption tax once per rate on the invoice's total.
A finalized invoice never changes; corrections are new lines on later invoices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fractions import Fraction

from .money import Rounding, TaxedAmount, round_yen, tax_for_rate


class LineKind(StrEnum):
    RECURRING = "recurring"
    PRORATION = "proration"
    USAGE = "usage"
    ADDON = "addon"
    CREDIT_APPLIED = "credit_applied"
    CREDIT_CARRIED = "credit_carried"


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: int
    amount: int  # yen in the catalog's price basis (tax-exclusive or tax-inclusive)
    period_start: date | None = None
    period_end: date | None = None
    formula: str = ""  # how the amount was computed, e.g. "180 × 13 ÷ 30 × 10 = 780"


def line(
    kind: LineKind,
    description: str,
    quantity: int,
    exact_amount: Fraction | int,
    rounding: Rounding,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
    formula: str = "",
) -> Line:
    """A line whose exact amount is rounded here, once, by the named rule."""
    amount = round_yen(exact_amount, rounding)
    return Line(kind, description, quantity, amount, period_start, period_end, formula)


@dataclass(frozen=True)
class TaxPolicy:
    rate: Fraction
    inclusive: bool
    rounding: Rounding


@dataclass(frozen=True)
class InvoiceDraft:
    issued_on: date
    period_start: date | None
    period_end: date | None
    lines: tuple[Line, ...]
    subtotal: int  # sum of lines, in the price basis
    tax: TaxedAmount
    credit_applied: int = 0
    credit_carried: int = 0
    billing_key: str | None = None  # what a scheduled invoice bills, e.g. "plan:2026-06-03": billed at most once

    @property
    def total(self) -> int:
        """What the customer is asked to pay, tax included."""
        return self.tax.gross

    @property
    def tax_amount(self) -> int:
        return self.tax.tax


def generate_invoice(
    lines: Sequence[Line],
    *,
    issued_on: date,
    credit_balance: int,
    tax: TaxPolicy,
    period_start: date | None = None,
    period_end: date | None = None,
    billing_key: str | None = None,
) -> tuple[InvoiceDraft, int]:
    """Build an invoice from its lines and the credit balance; return it and the new balance.

    - Credit reduces the invoice down to zero, never below; what is left stays
      on the balance.
    - Negative lines (credits for seat decreases) larger than the charges leave
      a zero invoice and add the surplus to the balance.
    - Tax once per rate on the final subtotal.
    """
    if credit_balance < 0:
        raise ValueError("a credit balance cannot be negative")
    out = list(lines)
    subtotal = sum(item.amount for item in out)
    new_balance = credit_balance
    applied = carried = 0
    if subtotal < 0:
        carried = -subtotal
        out.append(Line(LineKind.CREDIT_CARRIED, "次回以降へ繰越す減額分 / credit carried forward", 1, carried))
        new_balance += carried
        subtotal = 0
    elif subtotal > 0 and credit_balance > 0:
        applied = min(credit_balance, subtotal)
        out.append(Line(LineKind.CREDIT_APPLIED, "前回からの繰越減額の充当 / credit applied", 1, -applied))
        new_balance -= applied
        subtotal -= applied
    taxed = tax_for_rate([subtotal], tax.rate, tax_inclusive=tax.inclusive, rounding=tax.rounding)
    draft = InvoiceDraft(
        issued_on=issued_on,
        period_start=period_start,
        period_end=period_end,
        lines=tuple(out),
        subtotal=subtotal,
        tax=taxed,
        credit_applied=applied,
        credit_carried=carried,
        billing_key=billing_key,
    )
    return draft, new_balance

