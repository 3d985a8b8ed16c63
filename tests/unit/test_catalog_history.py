"""Catalog versions in the domain: which version is in force, when an existing subscription moves, what each
day and each seat change is priced with, and the diff a publish shows (issue 13)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kakin.adapters.catalog_files import load_catalog_file, parse_catalog_text, read_catalog_text, resolve_catalog
from kakin.domain import schedule
from kakin.domain import seats as seat_rules
from kakin.domain.account import Account, Phase
from kakin.domain.catalog import Catalog
from kakin.domain.catalog_diff import catalog_diff
from kakin.domain.catalog_versions import CatalogHistory, CatalogVersion, Existing
from kakin.domain.charges import arrears_lines
from kakin.domain.errors import CatalogError
from kakin.domain.lifecycle import Lifecycle

JST = ZoneInfo("Asia/Tokyo")
CATALOGS = Path(__file__).resolve().parents[1] / "scenarios" / "catalogs"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def versioned(base: str, new_file: str, effective: datetime, existing: Existing) -> Lifecycle:
    """Version 1 the shipped catalog (in effect from 2025), version 2 a changed file."""
    v1 = resolve_catalog(base)
    v2 = replace(load_catalog_file(CATALOGS / new_file), version=2)
    return Lifecycle(v1, CatalogHistory([CatalogVersion(1, v1, at(2025, 1, 1), Existing.NEXT_PERIOD),
                                         CatalogVersion(2, v2, effective, existing)]))


def nipoplus_customer(lc: Lifecycle, signed_up: datetime, seats: int = 10) -> Account:
    account = lc.open_account("acme", "Acme", signed_up, payment_method="pm_card_visa")
    lc.subscribe(account, "gold", signed_up, seats=seats)
    return account


def run_until(lc: Lifecycle, account: Account, until: datetime) -> list[tuple[date, int, list[int | None]]]:
    """Every invoice due by ``until``: (issued on, total, the catalog version of each line)."""
    issued = []
    while (result := schedule.run_next(lc, account, until)) is not None:
        for draft in result.invoices:
            issued.append((draft.issued_on, draft.total, [ln.catalog_version for ln in draft.lines]))
    return issued


def test_new_subscriptions_take_the_highest_numbered_version_in_effect() -> None:
    lc = versioned("nipoplus", "nipoplus-gold-200.toml", at(2025, 6, 1), Existing.NEXT_PERIOD)
    assert lc.catalog_at(at(2025, 5, 31, 23, 59)).version == 1
    assert lc.catalog_at(at(2025, 6, 1)).version == 2
    assert lc.history.in_force(datetime(2001, 1, 1, tzinfo=UTC)).version == 1  # before any took effect: the first


def test_next_period_moves_an_existing_customer_at_its_first_renewal_on_or_after_the_effective_instant() -> None:
    lc = versioned("nipoplus", "nipoplus-gold-200.toml", at(2025, 6, 1), Existing.NEXT_PERIOD)
    account = nipoplus_customer(lc, at(2025, 4, 10, 10))
    # May 10 renews at 180 (before Jun 1); Jun 10 is the first period starting after it: 10 × 200 = 2,000
    assert run_until(lc, account, at(2025, 6, 10, 12)) == [(date(2025, 5, 10), 1800, [1]), (date(2025, 6, 10), 2000, [2])]
    assert account.plan_subscription is not None and account.plan_subscription.catalog_version == 2


def test_never_keeps_an_existing_customer_on_its_version_and_prices_its_seat_change_there() -> None:
    lc = versioned("nipoplus", "nipoplus-gold-200.toml", at(2025, 6, 1), Existing.NEVER)
    account = nipoplus_customer(lc, at(2025, 4, 10, 10))
    assert run_until(lc, account, at(2025, 6, 10, 12))[-1] == (date(2025, 6, 10), 1800, [1])  # 10 × 180
    seat_rules.set_seats(lc, account, 15, at(2025, 6, 20, 10))
    # 180 × 20 ÷ 30 × 5 = 600 (days remaining Jun 20 → Jul 10 = 20), then 15 × 180 = 2,700
    assert run_until(lc, account, at(2025, 7, 10, 12)) == [(date(2025, 7, 10), 3300, [1, 1])]


def test_a_customer_signing_up_after_the_effective_instant_pays_the_new_price_at_once() -> None:
    lc = versioned("nipoplus", "nipoplus-gold-200.toml", at(2025, 6, 1), Existing.NEVER)
    account = lc.open_account("new", "New", at(2025, 6, 5, 10), payment_method="pm_card_visa")
    result = lc.subscribe(account, "gold", at(2025, 6, 5, 10), seats=10)
    assert [(d.total, [ln.catalog_version for ln in d.lines]) for d in result.invoices] == [(2000, [2])]  # 10 × 200


def test_the_notice_before_a_charge_names_the_price_of_the_version_it_will_be_charged_at() -> None:
    lc = versioned("nipoplus", "nipoplus-gold-200.toml", at(2025, 6, 1), Existing.NEXT_PERIOD)
    account = nipoplus_customer(lc, at(2025, 5, 10, 10))
    notice = schedule.run_next(lc, account, at(2025, 6, 3, 12))  # a week before Jun 10
    assert notice is not None
    assert notice.events == [("notice.upcoming_charge", {"charge_on": "2025-06-10", "plan": "gold", "amount": 2000})]


def test_post_paid_days_are_priced_with_the_version_each_phase_records() -> None:
    lc = versioned("lineworks", "lineworks-basic-720.toml", at(2025, 6, 15), Existing.NEXT_PERIOD)
    phases = [Phase(date(2025, 6, 1), "basic", "monthly", 0, 10, True, 1),
              Phase(date(2025, 6, 15), "basic", "monthly", 0, 10, True, 2)]
    lines = arrears_lines(lc.history.catalog, phases, date(2025, 6, 1), date(2025, 7, 1))
    # Jun 1–14: 140 user-days × 600 ÷ 30 = 2,800; Jun 15–30: 160 user-days × 720 ÷ 30 = 3,840
    assert [(ln.amount, ln.catalog_version) for ln in lines] == [(2800, 1), (3840, 2)]


def test_an_existing_post_paid_customer_keeps_the_old_price_for_the_rest_of_its_month() -> None:
    lc = versioned("lineworks", "lineworks-basic-720.toml", at(2025, 6, 15), Existing.NEXT_PERIOD)
    account = lc.open_account("acme", "Acme", at(2025, 5, 1, 9), payment_method="pm_card_visa", members=10)
    lc.subscribe(account, "basic", at(2025, 5, 1, 9), contract="monthly", trial_days=0)
    # Jun 1: May at 600 (10 × 600 = 6,000 + 10% = 6,600); Jul 1: June still at 600; Aug 1: July at 720 (7,200 + 720)
    assert run_until(lc, account, at(2025, 8, 1, 12)) == [
        (date(2025, 6, 1), 6600, [1]), (date(2025, 7, 1), 6600, [1]), (date(2025, 8, 1), 7920, [2])]


def test_plan_moves_rename_a_dropped_plan_when_its_subscriber_moves() -> None:
    lc = versioned("nipoplus", "nipoplus-gold2-moved.toml", at(2025, 6, 1), Existing.NEXT_PERIOD)
    account = nipoplus_customer(lc, at(2025, 5, 10, 10))
    assert run_until(lc, account, at(2025, 6, 10, 12)) == [(date(2025, 6, 10), 2000, [2])]  # GOLD2: 10 × 200
    sub = account.plan_subscription
    assert sub is not None and (sub.plan, sub.catalog_version) == ("gold2", 2)
    assert [(p.start, p.plan, p.catalog_version) for p in sub.new_phases][-1] == (date(2025, 6, 10), "gold2", 2)


def test_plan_moves_apply_version_after_version() -> None:
    base = resolve_catalog("nipoplus")
    v2 = replace(base, version=2, plan_moves={"gold": "gold2"})
    v3 = replace(base, version=3, plan_moves={"gold2": "gold3"})
    history = CatalogHistory([CatalogVersion(n, c, at(2025, n, 1), Existing.NEXT_PERIOD) for n, c in ((1, base), (2, v2), (3, v3))])
    assert history.plan_after_moves("gold", 1, 3) == "gold3"
    assert history.plan_after_moves("gold", 1, 2) == "gold2"
    assert history.moved_to(1, at(2025, 2, 15)) == 2 and history.moved_to(1, at(2025, 3, 1)) == 3


def test_a_never_version_does_not_move_anyone_but_a_later_next_period_version_does() -> None:
    base = resolve_catalog("nipoplus")
    history = CatalogHistory([CatalogVersion(1, base, at(2025, 1, 1), Existing.NEXT_PERIOD),
                              CatalogVersion(2, replace(base, version=2), at(2025, 2, 1), Existing.NEVER),
                              CatalogVersion(3, replace(base, version=3), at(2025, 3, 1), Existing.NEXT_PERIOD)])
    assert history.moved_to(1, at(2025, 2, 10)) == 1
    assert history.moved_to(1, at(2025, 3, 10)) == 3


def _with_moves(text: str) -> Catalog:
    return parse_catalog_text(read_catalog_text(CATALOGS / "nipoplus-gold2-unmoved.toml") + text, "moves.toml")


def test_plan_moves_must_move_a_plan_the_catalog_drops_to_a_plan_it_has() -> None:
    assert _with_moves('\n[plan_moves]\ngold = "gold2"\n').plan_moves == {"gold": "gold2"}
    with pytest.raises(CatalogError, match=r"plan_moves\.gold: names unknown plan 'platinum'"):
        _with_moves('\n[plan_moves]\ngold = "platinum"\n')
    with pytest.raises(CatalogError, match=r"plan_moves\.free: plan 'free' is still in this catalog"):
        _with_moves('\n[plan_moves]\nfree = "gold2"\n')


def test_the_diff_shows_prices_included_quantities_tiers_plans_and_change_rules() -> None:
    old = resolve_catalog("line-oa")
    plans = dict(old.plans)
    standard = plans["standard"]
    usage = standard.usage["messages"]
    tiers = (replace(usage.tiers[0], unit_amount=usage.tiers[0].unit_amount + 1), *usage.tiers[1:])
    plans["standard"] = replace(standard, prices={c: replace(p, unit_amount=16_500) for c, p in standard.prices.items()},
                                usage={"messages": replace(usage, included=35_000, tiers=tiers)})
    del plans["light"]
    new = replace(old, plans=plans, change_rules=old.change_rules[1:])
    lines = [c.text() for c in catalog_diff(old, new)]
    assert "- plans.light: ライトプラン" in lines
    assert "~ plans.standard.prices.monthly.unit_amount: 15000 → 16500" in lines
    assert "~ plans.standard.usage.messages.included: 30000 → 35000" in lines
    assert any(line.startswith("~ plans.standard.usage.messages.tiers: 30001–50000 at 3, ") for line in lines)
    assert any(line.startswith("- plan_changes: ") for line in lines)
    assert catalog_diff(old, old) == []
