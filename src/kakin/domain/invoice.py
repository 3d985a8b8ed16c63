"""Invoice generation as a pure function, and credit notes.

Lines carry exact amounts until :func:`line` rounds them once by the catalog's
rule, and each line prints the formula that gave its amount (one
:class:`~kakin.domain.money.Priced` computation). :func:`generate_invoice`
computes consumption tax once per rate on the invoice's sales at that rate
(SPEC 4), then applies the customer's credit balance after tax, like a payment
(充当): a credit is never a taxable line and never makes an invoice negative.
A decrease is recorded as a credit note (適格返還請求書, :func:`credit_note`)
whose total adds to the balance. A finalized invoice never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction

from .money import Priced, Rounding, TaxedAmount, tax_for_rate


class LineKind(StrEnum):
    RECURRING = "recurring"
    PRORATION = "proration"
    USAGE = "usage"
    ADDON = "addon"
    CREDIT = "credit"  # a line of a credit note: what is returned


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: int
    amount: int  # yen in the catalog's price basis (tax-exclusive or tax-inclusive)
    period_start: date | None = None
    period_end: date | None = None
    formula: str = ""  # how the amount was computed, e.g. "180 × 13 ÷ 30 × 10 = 780"
    tax_rate: Fraction | None = None  # None: the catalog's standard rate
    catalog_version: int | None = None  # the catalog version that priced it (None: not from a catalog price)


def line(
    kind: LineKind,
    description: str,
    quantity: int,
    priced: Priced,
    rounding: Rounding,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
    tax_rate: Fraction | None = None,
    catalog_version: int | None = None,
) -> Line:
    """A line whose exact amount is rounded here, once, by the named rule; its formula ends with that amount.
    ``catalog_version``: the version of the catalog whose price gave it (issue 13)."""
    amount = priced.rounded(rounding)
    return Line(kind, description, quantity, amount, period_start, period_end, priced.shown(amount), tax_rate,
                catalog_version)


@dataclass(frozen=True)
class TaxPolicy:
    rate: Fraction  # the standard rate ([tax] rate); a line may carry another (軽減税率 8%)
    inclusive: bool
    rounding: Rounding

    def by_rate(self, lines: Sequence[Line]) -> tuple[TaxedAmount, ...]:
        """Tax once per rate on the total of the lines at that rate, each rounded once (SPEC 4).

        The standard rate comes first, then the others from the highest. Raises ValueError when the lines at
        one rate add up to less than zero (a decrease belongs on a credit note, not on an invoice).
        """
        if all(item.tax_rate is None for item in lines):  # one rate, the standard one: the renewal run's case
            amounts = [item.amount for item in lines]
            if sum(amounts) < 0:
                raise ValueError(f"the lines at {self.rate} add up to {sum(amounts)}: decreases go on credit notes")
            return (tax_for_rate(amounts, self.rate, tax_inclusive=self.inclusive, rounding=self.rounding),)
        totals: dict[Fraction, list[int]] = {}
        for item in lines:
            totals.setdefault(item.tax_rate if item.tax_rate is not None else self.rate, []).append(item.amount)
        if not totals:
            totals[self.rate] = []
        out = []
        for rate in (totals if len(totals) == 1 else sorted(totals, key=lambda r: (r != self.rate, -r))):
            if sum(totals[rate]) < 0:
                raise ValueError(f"the lines at {rate} add up to {sum(totals[rate])}: decreases go on credit notes")
            out.append(tax_for_rate(totals[rate], rate, tax_inclusive=self.inclusive, rounding=self.rounding))
        return tuple(out)


@dataclass(frozen=True)
class InvoiceDraft:
    issued_on: date
    period_start: date | None
    period_end: date | None
    lines: tuple[Line, ...]
    subtotal: int  # sum of the lines, in the price basis
    taxes: tuple[TaxedAmount, ...]  # per tax rate: the sales at that rate and their tax
    credit_applied: int = 0  # credit balance applied after tax (充当)
    billing_key: str | None = None  # what a scheduled invoice bills, e.g. "plan:2026-06-03": billed at most once

    # computed once from the fields above (a draft is read many times while it is written and announced)
    gross: int = field(init=False, repr=False, compare=False)  # the invoice's own sales, tax included
    tax_amount: int = field(init=False, repr=False, compare=False)  # the consumption tax of its sales, every rate
    total: int = field(init=False, repr=False, compare=False)  # what the customer is asked to pay: gross − credit

    def __post_init__(self) -> None:
        gross = sum(t.gross for t in self.taxes)
        object.__setattr__(self, "gross", gross)
        object.__setattr__(self, "tax_amount", sum(t.tax for t in self.taxes))
        object.__setattr__(self, "total", gross - self.credit_applied)


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
    """Build an invoice from its lines and the credit balance (yen, tax included); return it and the new balance.

    Tax once per rate on the sales at that rate; then the balance is applied to the total after tax, as far as it
    goes (充当), and what is left stays on the balance. NipoPlus, 900 of sales and a balance of 2,250: tax
    floor(900 × 10 ÷ 110) = 81, 充当 900, due 0, balance 1,350. Raises ValueError for a negative balance or
    negative sales at a rate.
    """
    if credit_balance < 0:
        raise ValueError("a credit balance cannot be negative")
    taxes = tax.by_rate(lines)
    gross = sum(t.gross for t in taxes)
    applied = min(credit_balance, gross)
    draft = InvoiceDraft(
        issued_on=issued_on,
        period_start=period_start,
        period_end=period_end,
        lines=tuple(lines),
        subtotal=sum(item.amount for item in lines),
        taxes=taxes,
        credit_applied=applied,
        billing_key=billing_key,
    )
    return draft, credit_balance - applied


@dataclass(frozen=True)
class CreditNoteDraft:
    """A credit note (適格返還請求書): what is returned on the invoice that billed ``period_start``–``period_end``."""

    issued_on: date
    period_start: date | None
    period_end: date | None
    lines: tuple[Line, ...]  # positive amounts: what is returned, each with its formula
    taxes: tuple[TaxedAmount, ...]  # per tax rate, each rounded once

    @property
    def amount(self) -> int:
        """In the price basis (tax-exclusive or tax-inclusive, as the catalog prices)."""
        return sum(item.amount for item in self.lines)

    @property
    def tax_amount(self) -> int:
        return sum(t.tax for t in self.taxes)

    @property
    def total(self) -> int:
        """Returned, tax included: what the credit balance grows by."""
        return sum(t.gross for t in self.taxes)


def credit_note(lines: Sequence[Line], *, issued_on: date, tax: TaxPolicy, period_start: date | None,
                period_end: date | None) -> CreditNoteDraft | None:
    """A credit note for these (positive) lines, tax once per rate; None when nothing is returned.

    NipoPlus, 30 → 5 seats with 15 days left: 180 × 15 ÷ 30 × 25 = 2,250, tax floor(2,250 × 10 ÷ 110) = 204.
    """
    kept = tuple(item for item in lines if item.amount)
    if not kept:
        return None
    return CreditNoteDraft(issued_on, period_start, period_end, kept, tax.by_rate(kept))
