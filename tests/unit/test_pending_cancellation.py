"""Changes made while a cancellation is pending (SPEC 3.2): billed as for an active customer if it is withdrawn."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from kakin.adapters.catalog_files import resolve_catalog
from kakin.domain import plan_changes, seats
from kakin.domain.lifecycle import Lifecycle

JST = ZoneInfo("Asia/Tokyo")


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=JST)


def test_a_seat_increase_while_a_cancellation_is_pending_is_billed_from_its_day_when_withdrawn() -> None:
    lc = Lifecycle(resolve_catalog("nipoplus"))
    account = lc.open_account("up", "株式会社増員", _at(date(2025, 5, 3)), payment_method="pm_card_visa")
    lc.subscribe(account, "gold", _at(date(2025, 5, 3)), seats=10)
    plan_changes.cancel(lc, account, _at(date(2025, 5, 10)))
    seats.set_seats(lc, account, 50, _at(date(2025, 5, 11)))
    assert account.pending_items == []  # nothing owed while the customer is leaving
    lc.subscribe(account, "gold", _at(date(2025, 5, 12)))
    (item,) = account.pending_items
    # May 11 → Jun 3 = 23 days: 180 × 23 ÷ 30 × 40 = 5,520
    assert (item.line.amount, item.line.formula) == (5520, "180 × 23 ÷ 30 × 40 = 5520")


def test_a_seat_decrease_while_a_cancellation_is_pending_is_a_credit_note_only_when_withdrawn() -> None:
    lc = Lifecycle(resolve_catalog("nipoplus"))
    account = lc.open_account("down", "株式会社減員", _at(date(2025, 5, 3)), payment_method="pm_card_visa")
    lc.subscribe(account, "gold", _at(date(2025, 5, 3)), seats=30)
    plan_changes.cancel(lc, account, _at(date(2025, 5, 10)))
    assert seats.set_seats(lc, account, 10, _at(date(2025, 5, 11))).credit_notes == []
    (note,) = lc.subscribe(account, "gold", _at(date(2025, 5, 12))).credit_notes
    # 180 × 23 ÷ 30 × 20 = 2,760, tax 2,760 × 10 ÷ 110 = 250.9 → 250, issued on the day of the withdrawal
    assert (note.amount, note.tax_amount, note.issued_on) == (2760, 250, date(2025, 5, 12))
    assert account.credit == 2760


def test_fewer_licenses_scheduled_while_a_cancellation_is_pending_stay_scheduled_when_it_is_withdrawn() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    account = lc.open_account("lw", "株式会社年額", _at(date(2025, 4, 1)), payment_method="pm_card_visa", members=10)
    lc.subscribe(account, "basic", _at(date(2025, 4, 1)), contract="annual", seats=10, trial_days=0)
    plan_changes.cancel(lc, account, _at(date(2025, 5, 10)))
    seats.set_seats(lc, account, 5, _at(date(2025, 5, 12)))  # an annual contract reduces licenses at its term's end
    lc.subscribe(account, "basic", _at(date(2025, 5, 15)), contract="annual")
    sub = account.plan_subscription
    assert sub is not None and sub.pending is not None
    assert (sub.pending.cancel, sub.pending.seats, sub.pending.effective_on) == (False, 5, date(2026, 4, 1))
    assert sub.seats == 10


def test_a_customer_still_active_until_its_cancellation_is_billed_for_a_seat_increase_on_its_last_invoice() -> None:
    from pathlib import Path

    from kakin.domain import schedule

    catalog = resolve_catalog(str(Path(__file__).resolve().parents[1] / "catalogs" / "gyokai-nippo.toml"))
    lc = Lifecycle(catalog)
    account = lc.open_account("desk", "株式会社素材商事", _at(date(2025, 4, 10)), payment_method="pm_card_visa")
    lc.subscribe(account, "print", _at(date(2025, 4, 10)), seats=3)
    plan_changes.cancel(lc, account, _at(date(2025, 4, 15)))  # at the end of April; April is paid and used
    seats.set_seats(lc, account, 5, _at(date(2025, 4, 20)))
    drafts = []
    while (done := schedule.run_next(lc, account, _at(date(2025, 5, 2)))) is not None:
        drafts += done.invoices
    (last,) = drafts
    # 11 days to May 1: 4,400 × 11 ÷ 30 × 2 = 3,226.6 → 3,226 at 8%, tax 258.08 → 258; no May fee after the cancellation
    assert [ln.formula for ln in last.lines] == ["4400 × 11 ÷ 30 × 2 = 3226"]
    assert (last.tax_amount, last.total) == (258, 3484)
