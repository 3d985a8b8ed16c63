"""The state billed for a day is the last one recorded that day: the domain decides it, the store only writes it."""

from __future__ import annotations

from datetime import date

from kakin.adapters.catalog_files import resolve_catalog
from kakin.domain.account import Account, Phase, Status, Subscription, phases_from
from kakin.domain.lifecycle import Lifecycle


def _monthly(phases: list[Phase]) -> tuple[Account, Subscription]:
    sub = Subscription("plan", "basic", "monthly", Status.ACTIVE, 0, date(2025, 4, 1), date(2025, 4, 1),
                       date(2025, 5, 1), phases=phases)
    return Account("acme", "Acme", members=10, subscriptions=[sub]), sub


def test_a_second_change_the_same_day_replaces_the_first_before_anything_is_written() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    account, sub = _monthly([Phase(date(2025, 4, 1), "basic", "monthly", 0, 10, True)])
    account.members = 12
    lc.record_phase(account, sub, date(2025, 4, 16))
    account.members = 15
    lc.record_phase(account, sub, date(2025, 4, 16))
    assert [(p.start, p.members) for p in sub.new_phases] == [(date(2025, 4, 16), 15)]
    assert sub.superseded_phases == []  # nothing of April 16 was written yet


def test_a_change_the_day_a_written_phase_starts_supersedes_that_phase() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    written = Phase(date(2025, 4, 16), "basic", "monthly", 0, 12, True)  # loaded from the store
    account, sub = _monthly([Phase(date(2025, 4, 1), "basic", "monthly", 0, 10, True), written])
    account.members = 15
    lc.record_phase(account, sub, date(2025, 4, 16))
    assert [(p.start, p.members) for p in sub.phases] == [(date(2025, 4, 1), 10), (date(2025, 4, 16), 15)]
    assert [(p.start, p.members) for p in sub.new_phases] == [(date(2025, 4, 16), 15)]
    assert sub.superseded_phases == [date(2025, 4, 16)]


def test_a_change_on_a_new_day_supersedes_nothing() -> None:
    lc = Lifecycle(resolve_catalog("lineworks"))
    account, sub = _monthly([Phase(date(2025, 4, 1), "basic", "monthly", 0, 10, True)])
    account.members = 15
    lc.record_phase(account, sub, date(2025, 4, 17))
    assert [p.start for p in sub.phases] == [date(2025, 4, 1), date(2025, 4, 17)]
    assert sub.superseded_phases == []


def test_billing_keeps_the_phase_in_effect_on_a_day_and_those_after_it() -> None:
    april, mid, may, june = date(2025, 4, 1), date(2025, 4, 16), date(2025, 5, 1), date(2025, 6, 3)
    phases = [Phase(day, "basic", "monthly", 0, n, True) for n, day in enumerate((april, mid, may, june))]
    assert [p.start for p in phases_from(phases, date(2025, 4, 20))] == [mid, may, june]
    assert [p.start for p in phases_from(phases, may)] == [may, june]  # one starts that day: nothing before it
    assert [p.start for p in phases_from(phases, date(2025, 3, 1))] == [april, mid, may, june]
