"""Invariants, checked with hypothesis.

- an invoice is never negative and credit is never lost (applied after tax, as far as it goes);
- consumption tax is computed once per rate, within [0, total);
- proration of a full period equals the period price with actual days; with the seed's 30-day formula a period
  of 30 days or more costs its price and a shorter one (February) its days ÷ 30;
- anniversary dates never drift.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kakin.domain.calendar import add_months, anniversary, days_in_month, period_index
from kakin.domain.invoice import Line, LineKind, TaxPolicy, generate_invoice
from kakin.domain.money import Rounding, tax_for_rate
from kakin.domain.proration import Convention, DailySpan, Proration, daily_priced, prorated

FAST = settings(max_examples=200, deadline=None)

rates = st.integers(min_value=0, max_value=25).map(lambda percent: Fraction(percent, 100))
roundings = st.sampled_from(list(Rounding))
policies = st.builds(TaxPolicy, rate=rates, inclusive=st.booleans(), rounding=roundings)
amounts = st.integers(min_value=0, max_value=200_000)  # sales: decreases are credit notes, never invoice lines
lines_of = st.lists(amounts, max_size=12).map(
    lambda values: [Line(LineKind.RECURRING, f"line {i}", 1, v) for i, v in enumerate(values)]
)
REDUCED = Fraction(8, 100)
mixed_lines = st.lists(st.tuples(amounts, st.booleans()), max_size=12).map(
    lambda values: [Line(LineKind.RECURRING, f"line {i}", 1, v, tax_rate=REDUCED if r else None)
                    for i, (v, r) in enumerate(values)]
)
balances = st.integers(min_value=0, max_value=300_000)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
unit_amounts = st.integers(min_value=0, max_value=100_000)
quantities = st.integers(min_value=-999, max_value=999)


def _round(numerator: int, denominator: int, rule: Rounding) -> int:
    """Independent integer rounding of a non-negative numerator/denominator."""
    if rule is Rounding.FLOOR:
        return numerator // denominator
    if rule is Rounding.CEIL:
        return -(-numerator // denominator)
    return (2 * numerator + denominator) // (2 * denominator)


# --- invoices never negative, credit never lost ----------------------------------------


@FAST
@given(lines=lines_of, balance=balances, policy=policies)
def test_an_invoice_is_never_negative_and_credit_is_conserved(lines: list[Line], balance: int, policy: TaxPolicy) -> None:
    draft, new_balance = generate_invoice(lines, issued_on=date(2024, 5, 1), credit_balance=balance, tax=policy)

    assert draft.subtotal >= 0
    assert draft.total >= 0
    assert draft.tax_amount >= 0
    assert new_balance >= 0
    # credit is applied after tax, like a payment: what was sold with its tax, less the credit, is what is due,
    # and what the balance lost is exactly what was applied
    assert draft.total == draft.gross - draft.credit_applied
    assert balance - new_balance == draft.credit_applied == min(balance, draft.gross)
    # the invoice's lines are its sales: they add up to its subtotal
    assert sum(item.amount for item in draft.lines) == draft.subtotal == sum(item.amount for item in lines)


# --- tax once per rate ---------------------------------------------------------------


@FAST
@given(values=st.lists(st.integers(min_value=0, max_value=500_000), max_size=12), policy=policies)
def test_tax_is_computed_once_per_rate_and_lies_within_zero_and_the_total(values: list[int], policy: TaxPolicy) -> None:
    taxed = tax_for_rate(values, policy.rate, tax_inclusive=policy.inclusive, rounding=policy.rounding)
    total = sum(values)
    p, q = policy.rate.numerator, policy.rate.denominator
    if policy.inclusive:
        # tax = total × rate ÷ (1 + rate) = total × p ÷ (q + p), rounded once
        expected = _round(total * p, q + p, policy.rounding)
    else:
        # tax = total × rate = total × p ÷ q, rounded once
        expected = _round(total * p, q, policy.rounding)
    assert taxed.tax == expected
    assert taxed.net + taxed.tax == taxed.gross
    assert 0 <= taxed.tax <= taxed.gross
    # strictly below the total; a 1-yen tax-inclusive total rounded up is the one degenerate case
    if taxed.gross >= 2 or policy.rounding is not Rounding.CEIL:
        assert taxed.tax < taxed.gross or taxed.gross == 0


@FAST
@given(values=st.lists(st.integers(min_value=0, max_value=500_000), min_size=1, max_size=12), rate=rates)
def test_tax_once_on_the_total_is_never_less_than_tax_floored_per_line(values: list[int], rate: Fraction) -> None:
    once = tax_for_rate(values, rate, tax_inclusive=False, rounding=Rounding.FLOOR).tax
    per_line = sum(tax_for_rate([v], rate, tax_inclusive=False, rounding=Rounding.FLOOR).tax for v in values)
    assert per_line <= once < per_line + len(values)


@FAST
@given(lines=lines_of, balance=balances, policy=policies)
def test_the_invoice_tax_is_the_tax_on_its_subtotal(lines: list[Line], balance: int, policy: TaxPolicy) -> None:
    draft, _ = generate_invoice(lines, issued_on=date(2024, 5, 1), credit_balance=balance, tax=policy)
    # the credit applied never changes the tax: it is the tax of the invoice's own sales
    assert draft.taxes == (tax_for_rate([draft.subtotal], policy.rate, tax_inclusive=policy.inclusive,
                                        rounding=policy.rounding),)


@FAST
@given(lines=mixed_lines, inclusive=st.booleans(), rounding=roundings)
def test_each_tax_rate_is_taxed_once_on_its_own_lines(lines: list[Line], inclusive: bool, rounding: Rounding) -> None:
    policy = TaxPolicy(Fraction(1, 10), inclusive, rounding)
    draft, _ = generate_invoice(lines, issued_on=date(2024, 5, 1), credit_balance=0, tax=policy)
    by_rate = {t.rate: t for t in draft.taxes}
    for rate, picked in ((Fraction(1, 10), [ln.amount for ln in lines if ln.tax_rate is None]),
                         (REDUCED, [ln.amount for ln in lines if ln.tax_rate is not None])):
        if picked:
            assert by_rate[rate] == tax_for_rate(picked, rate, tax_inclusive=inclusive, rounding=rounding)
    assert draft.tax_amount == sum(t.tax for t in draft.taxes)


# --- proration of a full period --------------------------------------------------------


@FAST
@given(start=dates, period_days=st.integers(min_value=1, max_value=400), unit=unit_amounts, quantity=quantities)
def test_actual_days_proration_of_a_full_period_equals_the_period_price(
    start: date, period_days: int, unit: int, quantity: int
) -> None:
    end = start + timedelta(days=period_days)
    # unit × quantity × period_days ÷ period_days
    assert prorated(unit, quantity, start, start, end, Proration(Convention.ACTUAL_DAYS)).exact == unit * quantity


@FAST
@example(anchor=date(2023, 1, 3), n=1, unit=180, quantity=10)  # Feb 3 – Mar 3 2023: 28 days
@example(anchor=date(2024, 1, 3), n=1, unit=180, quantity=10)  # Feb 3 – Mar 3 2024: 29 days
@example(anchor=date(2022, 5, 3), n=1, unit=180, quantity=10)  # June 3 – July 3: 30 days
@example(anchor=date(2022, 5, 3), n=2, unit=180, quantity=10)  # July 3 – Aug 3: 31 days
@given(anchor=dates, n=st.integers(min_value=0, max_value=36), unit=unit_amounts, quantity=quantities)
def test_fixed_days_proration_from_the_first_day_is_the_seeds_formula_for_every_period_length(
    anchor: date, n: int, unit: int, quantity: int
) -> None:
    start, end = anniversary(anchor, n), anniversary(anchor, n + 1)
    days = (end - start).days
    assert 28 <= days <= 31
    # unit × days remaining (at most 30) ÷ 30 × quantity: the price for 30 or 31 days, 28/30 or 29/30 of it in February
    amount = prorated(unit, quantity, start, start, end, Proration(Convention.FIXED_DAYS, 30)).exact
    assert amount == Fraction(unit * min(days, 30) * quantity, 30)
    assert (amount == unit * quantity) == (days >= 30 or unit * quantity == 0)


@FAST
@given(
    anchor=dates,
    n=st.integers(min_value=0, max_value=36),
    offset=st.integers(min_value=0, max_value=31),
    unit=unit_amounts,
    quantity=st.integers(min_value=0, max_value=999),
)
def test_fixed_days_proration_of_part_of_a_period_never_exceeds_the_period_price(
    anchor: date, n: int, offset: int, unit: int, quantity: int
) -> None:
    start, end = anniversary(anchor, n), anniversary(anchor, n + 1)
    change_on = min(start + timedelta(days=offset), end)
    amount = prorated(unit, quantity, change_on, start, end, Proration(Convention.FIXED_DAYS, 30)).exact
    assert 0 <= amount <= unit * quantity


@FAST
@given(month=dates.map(lambda d: d.replace(day=1)), unit=unit_amounts, quantity=st.integers(min_value=0, max_value=999))
def test_per_day_billing_of_a_whole_calendar_month_equals_the_monthly_price(month: date, unit: int, quantity: int) -> None:
    end = add_months(month, 1)
    # Σ over the month's days of unit × quantity ÷ days in month = unit × quantity
    assert daily_priced(unit, [DailySpan(month, end, quantity)], Proration(Convention.ACTUAL_DAYS)).exact == unit * quantity


@FAST
@given(start=dates, days=st.integers(min_value=0, max_value=31), cut=st.integers(min_value=0, max_value=31))
def test_splitting_a_span_never_changes_its_per_day_price(start: date, days: int, cut: int) -> None:
    end = min(start + timedelta(days=days), add_months(start.replace(day=1), 1))  # inside one calendar month
    middle = start + timedelta(days=min(cut, (end - start).days))
    whole = daily_priced(600, [DailySpan(start, end, 7)], Proration(Convention.ACTUAL_DAYS)).exact
    parts = [span for span in (DailySpan(start, middle, 7), DailySpan(middle, end, 7)) if span.start < span.end]
    split = daily_priced(600, parts, Proration(Convention.ACTUAL_DAYS)).exact
    assert whole == split


# --- anniversaries never drift ---------------------------------------------------------


def _month_length(year: int, month: int) -> int:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (following - timedelta(days=1)).day


@FAST
@given(anchor=dates, n=st.integers(min_value=0, max_value=600))
def test_anniversaries_never_drift(anchor: date, n: int) -> None:
    due = anniversary(anchor, n)
    assert due == add_months(anchor, n)
    assert (due.year * 12 + due.month) - (anchor.year * 12 + anchor.month) == n
    assert due.day == min(anchor.day, _month_length(due.year, due.month))
    assert due.day == min(anchor.day, days_in_month(due.year, due.month))


@FAST
@given(anchor=dates, n=st.integers(min_value=0, max_value=120), interval=st.sampled_from([1, 3, 6, 12]))
def test_period_index_inverts_anniversary(anchor: date, n: int, interval: int) -> None:
    due = anniversary(anchor, n, interval)
    assert period_index(anchor, due, interval) == n
    assert period_index(anchor, anniversary(anchor, n + 1, interval) - timedelta(days=1), interval) == n
