"""The catalog model: a vendor's price list as data.

Plans with ranks, features and quotas; prices per contract type with timing and
alignment; seat bounds; trials; plan-change rules (first matching rule wins,
anything unmatched is refused); dunning and cancellation policies; add-ons with
per-plan price overrides; usage prices with included quantities and graduated
tiers. :mod:`kakin.domain.catalog_schema` builds these from a parsed file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

from .money import Priced, Rounding, number_text
from .proration import Proration


class Timing(StrEnum):
    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


class Alignment(StrEnum):
    ANNIVERSARY = "anniversary"
    CALENDAR_MONTH = "calendar_month"


class Basis(StrEnum):
    SEAT = "seat"  # contracted seats or licenses
    MEMBER = "member"  # registered users, counted per day
    FLAT = "flat"  # one fee per period


class MidPeriodChange(StrEnum):
    """How an in-advance price handles a change inside a paid period."""

    PRORATE_NEXT_INVOICE = "prorate_next_invoice"  # NipoPlus seats
    CHARGE_DIFFERENCE_NOW = "charge_difference_now"  # LINE OA upgrades


class When(StrEnum):
    IMMEDIATE = "immediate"
    END_OF_PERIOD = "end_of_period"
    REFUSED = "refused"


class AfterDunning(StrEnum):
    FALLBACK_PLAN = "fallback_plan"
    SUSPEND = "suspend"


@dataclass(frozen=True)
class Price:
    contract: str
    basis: Basis
    unit_amount: int
    timing: Timing
    alignment: Alignment
    interval_months: int = 1
    proration: Proration = Proration()
    mid_period_change: MidPeriodChange = MidPeriodChange.PRORATE_NEXT_INVOICE
    term_months: int | None = None  # commitment (LINE WORKS annual: 12)
    members_over_seats: str | None = None  # contract whose price bills members beyond seats
    seat_decrease: When = When.IMMEDIATE
    cancellation: When | None = None  # overrides [cancellation] when (LINE WORKS annual: at the end of the term)
    tax_rate: Fraction | None = None  # another rate than [tax] rate (軽減税率 8%); None: the standard rate


@dataclass(frozen=True)
class Tier:
    first: int  # first unit of the month this tier prices (1-based, inclusive)
    last: int | None  # last unit, None = no upper bound
    unit_amount: Fraction


@dataclass(frozen=True)
class UsagePrice:
    metric: str
    included: int | None  # None = unlimited
    hard_limit: bool
    tiers: tuple[Tier, ...] = ()
    tax_rate: Fraction | None = None  # another rate than [tax] rate (軽減税率 8%); None: the standard rate

    def overage(self, used: int) -> Priced:
        """The exact price of ``used`` units in one month beyond the included quantity, with its formula.

        Graduated tiers (SPEC 3.3), standard plan, 60,000 messages: 20,000 × 3 + 10,000 × 2.8 = 88,000.
        """
        total = Fraction(0)
        parts = []
        for tier in self.tiers:
            upper = used if tier.last is None else min(used, tier.last)
            units = upper - tier.first + 1
            if units > 0:
                total += units * tier.unit_amount
                parts.append(f"{units} × {number_text(tier.unit_amount)}")
        return Priced(total, " + ".join(parts) or "0")

    def overage_amount(self, used: int) -> Fraction:
        """The exact amount of :meth:`overage` (standard plan, 35,000 messages: 5,000 × 3 = 15,000)."""
        return Fraction(self.overage(used).exact)

    def overage_units(self, used: int) -> int:
        if self.included is None:
            return 0
        return max(0, used - self.included)


@dataclass(frozen=True)
class Plan:
    code: str
    name_ja: str
    name_en: str
    rank: int
    prices: dict[str, Price]
    usage: dict[str, UsagePrice] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    min_seats: int | None = None
    max_seats: int | None = None
    requires_payment_method: bool = False
    eligibility: str | None = None
    over_seat_restricts: tuple[str, ...] = ()  # features held back while registered users exceed seats

    @property
    def is_free(self) -> bool:
        return not self.prices or all(p.unit_amount == 0 for p in self.prices.values())


@dataclass(frozen=True)
class ChangeRule:
    from_plans: frozenset[str] | None  # None = any
    to_plans: frozenset[str] | None
    from_contracts: frozenset[str] | None
    to_contracts: frozenset[str] | None
    when: When
    # customers who sign in with a group name (id@group) need a verified domain first (LINE WORKS: lite → paid plans)
    needs_verified_domain: bool = False

    def matches(self, from_plan: str, from_contract: str, to_plan: str, to_contract: str) -> bool:
        return all(
            allowed is None or value in allowed
            for allowed, value in (
                (self.from_plans, from_plan),
                (self.to_plans, to_plan),
                (self.from_contracts, from_contract),
                (self.to_contracts, to_contract),
            )
        )


@dataclass(frozen=True)
class AddOn:
    code: str
    name_ja: str
    name_en: str
    prices: dict[str, Price]
    plan_overrides: dict[str, dict[str, int]] = field(default_factory=dict)

    def unit_amount(self, billing: str, plan: str) -> int:
        override = self.plan_overrides.get(plan, {})
        if billing in override:
            return override[billing]
        return self.prices[billing].unit_amount


# Declines no retry can cure (Stripe's decline codes): the card is not charged again; the customer needs a new one.
HARD_DECLINE_CODES = ("expired_card", "lost_card", "stolen_card", "incorrect_number", "card_not_supported")


@dataclass(frozen=True)
class Dunning:
    retry_days: tuple[int, ...] = ()  # days after the first failure; their last closes the retry window
    after_last_failure: AfterDunning = AfterDunning.SUSPEND
    hard_decline_codes: frozenset[str] = frozenset(HARD_DECLINE_CODES)


@dataclass(frozen=True)
class Cancellation:
    when: When = When.END_OF_PERIOD
    remaining_as_trial: bool = False  # NipoPlus: paid days left become a trial


@dataclass(frozen=True)
class MxRecord:
    """A mail exchanger a customer's own domain publishes to receive the vendor's mail: priority, host."""

    priority: int
    value: str


@dataclass(frozen=True)
class Domains:
    """``[domains]``: the vendor's domain a customer may use before it has one (``GROUP.`` + ``provided_suffix``,
    LINE WORKS ``by-works.com``) and the MX records its own domain needs for mail. Source: seed
    lineworks-upgrade-procedure."""

    provided_suffix: str | None = None
    mx_records: tuple[MxRecord, ...] = ()


@dataclass(frozen=True)
class Catalog:
    code: str
    name: str
    timezone: str
    currency: str
    tax_rate: Fraction
    tax_inclusive: bool
    tax_rounding: Rounding
    line_rounding: Rounding
    plans: dict[str, Plan]
    default_plan: str | None
    fallback_plan: str | None
    trial_days: int
    suspend_without_payment_method: bool
    change_rules: tuple[ChangeRule, ...]
    dunning: Dunning
    cancellation: Cancellation
    addons: dict[str, AddOn] = field(default_factory=dict)
    admin_limit: int | None = None
    default_contract: str = "monthly"
    source: str = ""
    notice_before_charge_days: int | None = None  # NipoPlus: e-mail about a week before each charge
    notice_before_trial_end_days: int | None = None
    bank_transfer_due_days: int = 30  # 請求書払い: days from the invoice to its due date
    small_balance_days: int = 30  # an amount below the gateway's minimum waits this long for another charge
    domains: Domains = field(default_factory=Domains)
    # [plan_moves] old = "new": subscribers of a plan this version drops move to another when they take it up
    plan_moves: dict[str, str] = field(default_factory=dict)
    version: int = 1  # the catalog version number this content was published as (issue 13)

    def plan(self, code: str) -> Plan:
        from .errors import UnknownPlan

        try:
            return self.plans[code]
        except KeyError:
            known = ", ".join(sorted(self.plans))
            raise UnknownPlan(
                f"plan {code!r} is not in the {self.code} catalog; choose one of: {known}",
                param="plan",
            ) from None

    def change_rule(self, from_plan: str, from_contract: str, to_plan: str, to_contract: str) -> ChangeRule | None:
        """The first rule that matches the change, if any."""
        return next((r for r in self.change_rules if r.matches(from_plan, from_contract, to_plan, to_contract)), None)

    def change_policy(self, from_plan: str, from_contract: str, to_plan: str, to_contract: str) -> When:
        """First matching rule wins; a change no rule allows is refused."""
        rule = self.change_rule(from_plan, from_contract, to_plan, to_contract)
        return When.REFUSED if rule is None else rule.when
