"""Graduated usage tiers (LINE OA standard plan) and credit carried between invoices (NipoPlus)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from kakin.adapters.catalog_files import resolve_catalog
from kakin.domain.catalog import Catalog, UsagePrice
from kakin.domain.charges import usage_line
from kakin.domain.invoice import CreditNoteDraft, Line, LineKind, TaxPolicy, credit_note, generate_invoice, line
from kakin.domain.money import Rounding
from kakin.domain.proration import Convention, Proration, prorated

MAY = date(2024, 5, 1)


@pytest.fixture(scope="module")
def line_oa() -> Catalog:
    return resolve_catalog("line-oa")


@pytest.fixture(scope="module")
def messages(line_oa: Catalog) -> UsagePrice:
    return line_oa.plans["standard"].usage["messages"]


# --- graduated tiers -----------------------------------------------------------------


def test_standard_plan_includes_30000_messages(messages: UsagePrice) -> None:
    assert messages.included == 30000
    assert messages.overage_units(30000) == 0
    assert messages.overage_amount(30000) == 0


def test_35000_messages_cost_15000_yen_over_the_fee(line_oa: Catalog, messages: UsagePrice) -> None:
    # (35,000 − 30,000) × 3 = 15,000
    assert messages.overage_units(35000) == 5000
    assert messages.overage_amount(35000) == 15000
    item = usage_line(line_oa, line_oa.plans["standard"], messages, 35000, MAY)
    assert item is not None
    assert (item.kind, item.quantity, item.amount) == (LineKind.USAGE, 5000, 15000)


def test_60001_messages_cost_88002_yen_after_one_floor(line_oa: Catalog, messages: UsagePrice) -> None:
    # 20,000 × 3 + 10,001 × 2.8 = 60,000 + 28,002.8 = 88,002.8 → floored once: 88,002
    assert messages.overage_amount(60001) == Fraction(880028, 10)
    item = usage_line(line_oa, line_oa.plans["standard"], messages, 60001, MAY)
    assert item is not None
    assert item.amount == 88002
    assert item.quantity == 30001
    # the printed formula ends with the amount the line carries, from the same computation
    assert item.formula == "20000 × 3 + 10001 × 2.8 = 88002"


def test_exactly_50000_messages_stay_in_the_three_yen_tier(messages: UsagePrice) -> None:
    # 20,000 × 3 = 60,000
    assert messages.overage_amount(50000) == 60000
    # the 50,001st message is the first at 2.8: 60,000 + 1 × 2.8 = 60,002.8
    assert messages.overage_amount(50001) == Fraction(300014, 5)


def test_exactly_100000_messages_fill_the_two_point_eight_tier(messages: UsagePrice) -> None:
    # 20,000 × 3 + 50,000 × 2.8 = 60,000 + 140,000 = 200,000
    assert messages.overage_amount(100000) == 200000
    # the 100,001st message is the first at 2.6: 200,000 + 2.6 = 200,002.6
    assert messages.overage_amount(100001) == Fraction(1000013, 5)


def test_the_first_message_over_the_quota_costs_three_yen(line_oa: Catalog, messages: UsagePrice) -> None:
    item = usage_line(line_oa, line_oa.plans["standard"], messages, 30001, MAY)
    assert item is not None
    # 1 × 3 = 3
    assert (item.quantity, item.amount) == (1, 3)


def test_usage_within_the_quota_makes_no_line(line_oa: Catalog, messages: UsagePrice) -> None:
    assert usage_line(line_oa, line_oa.plans["standard"], messages, 29999, MAY) is None
    assert usage_line(line_oa, line_oa.plans["standard"], messages, 30000, MAY) is None


def test_hard_limited_and_unlimited_plans_make_no_usage_line(line_oa: Catalog) -> None:
    light = line_oa.plans["light"]
    local = line_oa.plans["local_government"]
    assert light.usage["messages"].hard_limit is True
    assert usage_line(line_oa, light, light.usage["messages"], 6000, MAY) is None
    assert local.usage["messages"].included is None
    assert usage_line(line_oa, local, local.usage["messages"], 10_000_000, MAY) is None


def test_a_usage_line_covers_its_calendar_month(line_oa: Catalog, messages: UsagePrice) -> None:
    item = usage_line(line_oa, line_oa.plans["standard"], messages, 35000, date(2024, 12, 1))
    assert item is not None
    assert (item.period_start, item.period_end) == (date(2024, 12, 1), date(2025, 1, 1))


# --- credit carried between invoices ------------------------------------------------

NIPOPLUS_TAX = TaxPolicy(rate=Fraction(1, 10), inclusive=True, rounding=Rounding.FLOOR)
FIXED_30 = Proration(Convention.FIXED_DAYS, 30)


def _recurring(amount: int) -> Line:
    return Line(LineKind.RECURRING, "GOLD", amount // 180, amount)


def _credit_for_fifteen_fewer_seats() -> CreditNoteDraft:
    # 20 → 5 seats on June 20 in June 3 – July 3: 180 × 13 ÷ 30 × 15 = 1,170 returned
    priced = prorated(180, 15, date(2022, 6, 20), date(2022, 6, 3), date(2022, 7, 3), FIXED_30)
    note = credit_note([line(LineKind.CREDIT, "seats 20 → 5", 15, priced, Rounding.FLOOR)], issued_on=date(2022, 6, 20),
                       tax=NIPOPLUS_TAX, period_start=date(2022, 6, 3), period_end=date(2022, 7, 3))
    assert note is not None
    return note


def test_a_seat_decrease_is_a_credit_note_with_its_own_tax() -> None:
    # 180 × 13 ÷ 30 × 15 = 1,170, tax included floor(1,170 × 10 ÷ 110) = floor(106.36…) = 106
    note = _credit_for_fifteen_fewer_seats()
    assert (note.amount, note.tax_amount, note.total) == (1170, 106, 1170)
    assert note.lines[0].formula == "180 × 13 ÷ 30 × 15 = 1170"


def test_a_credit_larger_than_the_invoice_is_applied_after_tax_and_the_rest_stays_on_the_balance() -> None:
    # July 3: sale 5 × 180 = 900, tax floor(900 × 10 ÷ 110) = 81; 充当 900 of the 1,170 → 0 due, 270 left
    draft, balance = generate_invoice([_recurring(900)], issued_on=date(2022, 7, 3),
                                      credit_balance=_credit_for_fifteen_fewer_seats().total, tax=NIPOPLUS_TAX)
    assert (draft.subtotal, draft.tax_amount, draft.credit_applied, draft.total) == (900, 81, 900, 0)
    assert balance == 270
    assert [item.kind for item in draft.lines] == [LineKind.RECURRING]  # the credit is not a line: not a sale


def test_the_next_invoice_applies_the_balance_after_tax_and_keeps_the_tax_of_its_sale() -> None:
    # Aug 3: 900 sold, tax floor(900 ÷ 11) = 81 (not the tax of 630); 900 − 充当 270 = 630 due
    draft, balance = generate_invoice([_recurring(900)], issued_on=date(2022, 8, 3), credit_balance=270, tax=NIPOPLUS_TAX)
    assert draft.subtotal == 900
    assert draft.credit_applied == 270
    assert draft.tax_amount == 81
    assert draft.total == 630
    assert balance == 0


def test_credit_is_applied_to_the_total_with_tax_on_tax_exclusive_prices() -> None:
    # LINE OA light 5,000 + 10% tax = 5,500; a balance of 6,000 pays it all: 0 due, 500 left
    policy = TaxPolicy(rate=Fraction(1, 10), inclusive=False, rounding=Rounding.FLOOR)
    draft, balance = generate_invoice([_recurring(5000)], issued_on=date(2022, 8, 1), credit_balance=6000, tax=policy)
    assert (draft.subtotal, draft.tax_amount, draft.credit_applied, draft.total, balance) == (5000, 500, 5500, 0, 500)


def test_credit_larger_than_the_next_invoice_keeps_carrying_over() -> None:
    # 900 against a balance of 1,000: 充当 900, 0 due, 1,000 − 900 = 100 left
    draft, balance = generate_invoice([_recurring(900)], issued_on=date(2022, 8, 3), credit_balance=1000, tax=NIPOPLUS_TAX)
    assert (draft.subtotal, draft.total, draft.credit_applied) == (900, 0, 900)
    assert balance == 100


def test_credit_carried_over_three_invoices_is_used_up_exactly() -> None:
    balance = _credit_for_fifteen_fewer_seats().total  # 1,170
    totals = []
    # July: 900 − 900 → 0, balance 270
    # Aug: 180 − 180 → 0, balance 90
    # Sep: 900 − 90 = 810
    for amount in (900, 180, 900):
        draft, balance = generate_invoice([_recurring(amount)], issued_on=date(2022, 9, 3), credit_balance=balance,
                                          tax=NIPOPLUS_TAX)
        totals.append(draft.total)
    assert totals == [0, 0, 810]
    assert balance == 0


def test_an_empty_invoice_leaves_the_balance_untouched() -> None:
    draft, balance = generate_invoice([], issued_on=date(2022, 7, 3), credit_balance=500, tax=NIPOPLUS_TAX)
    assert (draft.total, draft.credit_applied) == (0, 0)
    assert balance == 500


def test_a_negative_credit_balance_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        generate_invoice([_recurring(900)], issued_on=date(2022, 7, 3), credit_balance=-1, tax=NIPOPLUS_TAX)


def test_sales_that_add_up_below_zero_are_refused_as_a_decrease_that_belongs_on_a_credit_note() -> None:
    with pytest.raises(ValueError, match="credit notes"):
        generate_invoice([_recurring(900), Line(LineKind.PRORATION, "minus", 1, -1170)], issued_on=date(2022, 7, 3),
                         credit_balance=0, tax=NIPOPLUS_TAX)


def test_the_seed_july_invoice_is_4380_yen() -> None:
    # 780 + 3,600 = 4,380, tax included floor(4,380 ÷ 11) = 398
    extra = line(
        LineKind.PRORATION,
        "seats 10 → 20",
        10,
        prorated(180, 10, date(2022, 6, 20), date(2022, 6, 3), date(2022, 7, 3), FIXED_30),
        Rounding.FLOOR,
    )
    assert extra.formula == "180 × 13 ÷ 30 × 10 = 780"
    draft, balance = generate_invoice([_recurring(3600), extra], issued_on=date(2022, 7, 3), credit_balance=0, tax=NIPOPLUS_TAX)
    assert (draft.total, draft.tax_amount, balance) == (4380, 398, 0)


def test_what_is_left_of_a_quota_is_never_negative_and_none_when_unlimited() -> None:
    from kakin.domain.messaging import remaining

    assert remaining(5000, 4200) == 800  # 5,000 − 4,200
    assert remaining(5000, 5300) == 0  # overage leaves nothing, not −300
    assert remaining(None, 10**9) is None
