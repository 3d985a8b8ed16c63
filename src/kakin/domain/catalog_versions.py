"""Catalog versions: which price list is in force for new subscriptions, and for each existing one.

A tenant publishes its catalog as numbered versions (1, 2, …), each with the instant it takes effect and what
happens to existing subscriptions (issue 13, SPEC 4 "Catalogs are versioned"):

- new subscriptions take the latest version in force (the highest number whose ``effective_at`` has come);
- ``next_period``: an existing subscription moves to it at its first period that starts on or after
  ``effective_at`` (a prepaid plan at its renewal, a post-paid one at the 1st of a month, a trial when it ends);
- ``never``: existing subscriptions keep the version they have (grandfathered).

A plan the new version drops moves to the plan its ``[plan_moves]`` names. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .catalog import Catalog


class Existing(StrEnum):
    """What a new version does to existing subscriptions."""

    NEXT_PERIOD = "next_period"
    NEVER = "never"


@dataclass(frozen=True)
class CatalogVersion:
    number: int
    catalog: Catalog  # its ``version`` is ``number``
    effective_at: datetime  # an aware instant
    existing: Existing


class CatalogHistory:
    """A tenant's versions in number order (at least version 1)."""

    def __init__(self, versions: Sequence[CatalogVersion]) -> None:
        if not versions:
            raise ValueError("a catalog history needs version 1")
        self.versions = tuple(sorted(versions, key=lambda v: v.number))
        self._by_number = {v.number: v for v in self.versions}

    @classmethod
    def single(cls, catalog: Catalog, effective_at: datetime) -> CatalogHistory:
        """One version (a catalog file not published, as ``kakin catalog check`` and unit tests use it)."""
        return cls([CatalogVersion(catalog.version, catalog, effective_at, Existing.NEXT_PERIOD)])

    @property
    def latest(self) -> CatalogVersion:
        return self.versions[-1]

    def catalog(self, number: int) -> Catalog:
        """The catalog of version ``number``; KeyError when there is no such version."""
        return self._by_number[number].catalog

    def in_force(self, at: datetime) -> Catalog:
        """The catalog for new subscriptions at ``at``: the highest-numbered version in effect; before any took
        effect (a test clock set before the tenant existed), the first."""
        found = self.versions[0]
        for v in self.versions:
            if v.effective_at <= at:
                found = v
        return found.catalog

    def moved_to(self, number: int, period_start: datetime) -> int:
        """The version an existing subscription on ``number`` is on for a period that starts at ``period_start``:
        the highest-numbered ``next_period`` version after ``number`` in effect by then, else ``number``."""
        found = number
        for v in self.versions:
            if v.number > number and v.existing is Existing.NEXT_PERIOD and v.effective_at <= period_start:
                found = v.number
        return found

    def plan_after_moves(self, plan: str, from_number: int, to_number: int) -> str:
        """The plan a subscription has after moving from one version to a later one: each version's
        ``[plan_moves]`` in turn (v2 drops ``gold`` for ``gold2``; v3 drops ``gold2`` for ``gold3``)."""
        for v in self.versions:
            if from_number < v.number <= to_number:
                plan = v.catalog.plan_moves.get(plan, plan)
        return plan
