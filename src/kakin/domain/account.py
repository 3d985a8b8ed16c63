"""The customer account aggregate: subscriptions, their phases, pending items, usage.

Mutable on purpose (an aggregate that the life-cycle rules change in place);
the store loads and saves it whole inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from .invoice import Line


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    SUSPENDED = "suspended"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"  # a sign-up whose first charge awaits 3-D Secure: no service until it is paid

    @property
    def billable(self) -> bool:
        return self in _BILLABLE


_BILLABLE = frozenset({Status.ACTIVE, Status.PAST_DUE})  # a set read once: a member looked up on the class costs more

PLAN = "plan"  # the product of a customer's main subscription; add-ons use their own code


@dataclass(frozen=True)
class Phase:
    """The state in effect from ``start`` (a tenant-local date) until the next phase.

    A day is charged at the state in effect at the end of that day, so a later
    change on the same day replaces the earlier phase.
    """

    start: date
    plan: str
    contract: str
    seats: int
    members: int
    billable: bool
    catalog_version: int = 1  # the catalog version the day is priced with (issue 13)


def phases_from(phases: list[Phase], day: date) -> list[Phase]:
    """The phases billing can still need from ``day`` on: the one in effect on ``day`` (the latest that starts on
    or before it) and those that start after it; ``phases`` in start order."""
    before = [p for p in phases if p.start <= day]
    return before[-1:] + [p for p in phases if p.start > day]


@dataclass
class PendingChange:
    effective_on: date
    plan: str | None = None
    contract: str | None = None
    seats: int | None = None
    cancel: bool = False
    # seat changes made while a cancellation is pending, (date, before, after): billed only if it is withdrawn
    held: list[tuple[date, int, int]] = field(default_factory=list)
    catalog_version: int | None = None  # a scheduled plan change: the catalog version its plan comes from


@dataclass
class Subscription:
    product: str
    plan: str
    contract: str
    status: Status
    seats: int
    anchor: date  # anniversary anchor: renewals are anniversary(anchor, n)
    period_start: date
    period_end: date
    trial_end: date | None = None
    term_anchor: date | None = None  # start of an annual commitment
    pending: PendingChange | None = None
    canceled_on: date | None = None
    ended: bool = False
    value: str | None = None  # the add-on's value (a premium ID)
    notified: str | None = None  # the last notice sent, e.g. "charge:2026-06-03"
    catalog_version: int = 1  # the catalog version its prices come from (issue 13: moved at a period start, or never)
    id: int | None = None
    phases: list[Phase] = field(default_factory=list)
    new_phases: list[Phase] = field(default_factory=list)  # recorded since loading: to write
    superseded_phases: list[date] = field(default_factory=list)  # days whose written phase a new one replaces


@dataclass
class PendingItem:
    """A charge or credit waiting for the customer's next invoice."""

    line: Line
    id: int | None = None


@dataclass
class OpenInvoice:
    """An invoice awaiting payment, with its dunning state."""

    id: int
    number: str
    total: int
    attempts: int = 0  # failed attempts so far
    first_failed_at: datetime | None = None
    next_retry_at: datetime | None = None
    status: str = "open"  # open → paid | uncollectible (dunning failed, or a small balance written off) | void
    charge_key: str | None = None  # names this invoice at the gateway; stable across a crash and its rerun
    due_on: date | None = None  # bank transfer: pay by this date
    deferred: bool = False  # below the gateway's minimum charge: collected with the customer's next card charge
    expires_at: datetime | None = None  # a sign-up awaiting 3-D Secure: voided with its subscription unless paid by then


@dataclass
class Account:
    key: str  # the tenant's own id for the customer
    name: str
    payment_method: str | None = None
    members: int = 0
    credit: int = 0
    basic_id: str | None = None
    gateway_customer: str | None = None  # the payment gateway's id of this customer
    collection: str = "card"  # card | bank_transfer (請求書払い, enabled by the vendor's operators)
    deleted_on: date | None = None  # 退会: the organization was deleted; its invoices stay, its commands are refused
    sign_in_group: str | None = None  # members sign in as id@group (LINE WORKS without a domain of its own)
    verified_domain: str | None = None  # a domain whose ownership the customer proved with a DNS TXT record
    subscriptions: list[Subscription] = field(default_factory=list)
    pending_items: list[PendingItem] = field(default_factory=list)
    usage: dict[tuple[str, date], int] = field(default_factory=dict)  # monthly counters, read for overage
    open_invoices: list[OpenInvoice] = field(default_factory=list)
    id: int | None = None

    @property
    def plan_subscription(self) -> Subscription | None:
        for sub in reversed(self.subscriptions):
            if sub.product == PLAN and not sub.ended:
                return sub
        return None

    @property
    def can_pay(self) -> bool:
        """A card on file, or invoices paid by bank transfer."""
        return self.payment_method is not None or self.collection == "bank_transfer"

    def addon(self, code: str) -> Subscription | None:
        for sub in self.subscriptions:
            if sub.product == code and not sub.ended:
                return sub
        return None

    def used(self, metric: str, month: date) -> int:
        return self.usage.get((metric, month), 0)
