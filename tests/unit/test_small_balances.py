"""Small balances below the gateway's minimum: written off when no charge can take them (issue 9 item 8)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kakin.adapters.catalog_files import resolve_catalog
from kakin.domain import schedule
from kakin.domain.account import OpenInvoice
from kakin.domain.lifecycle import Lifecycle

JST = ZoneInfo("Asia/Tokyo")


def test_a_small_balance_no_charge_took_within_small_balance_days_is_written_off() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    now = datetime(2025, 4, 1, tzinfo=JST)
    account = lc.open_account("acme", "acme", now, "pm_card_visa", members=1)
    lc.subscribe(account, "lite", now, contract="monthly", trial_days=0)
    small = OpenInvoice(1, "T-00000001", 12)
    schedule.defer_small_balance(lc, small, now)
    account.open_invoices.append(small)
    assert small.next_retry_at == now + timedelta(days=30)  # the catalog's small_balance_days
    # the May 1 month close would have charged it with the next invoice; suppose no charge came (nothing billed)
    account.subscriptions[-1].period_end = datetime(2025, 6, 1).date()
    result = schedule.run_next(lc, account, now + timedelta(days=30))
    assert result is not None and result.retries == []  # not sent to the card below the minimum again
    assert small.status == "uncollectible"
    assert result.events == [("invoice.written_off", {"number": "T-00000001", "total": 12})]


def test_a_small_balance_waits_while_a_charge_within_small_balance_days_can_take_it() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    now = datetime(2025, 4, 1, tzinfo=JST)
    account = lc.open_account("acme", "acme", now, "pm_card_visa", members=1)
    lc.subscribe(account, "lite", now, contract="monthly", trial_days=0)
    small = OpenInvoice(1, "T-00000001", 12)
    schedule.defer_small_balance(lc, small, now)
    account.open_invoices.append(small)
    assert schedule.next_charge_on(lc, account) == datetime(2025, 5, 1).date()  # the April close, 30 days on
    assert schedule.write_off_stranded(lc, account, now).events == [] and small.status == "open"
    lc.delete_account(account, now)  # deleted the same day: no day of April is billed, nothing can take it
    assert schedule.next_charge_on(lc, account) is None
    assert schedule.write_off_stranded(lc, account, now).events == [
        ("invoice.written_off", {"number": "T-00000001", "total": 12})]
