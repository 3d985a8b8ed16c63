"""Message quotas and account IDs (LINE Official Account).

- A send of N messages is granted whole or refused whole before anything is
  counted; counts reset on the 1st of each month in the tenant's zone. The
  rule (:func:`monthly_cap`, :func:`refuse`) holds on every path that counts
  usage: quota grants, usage events and file imports.
- Basic ID: ``@`` + 3 digits + 5 lowercase letters, random and unique.
- Premium ID: ``@`` + 4–18 of ``a-z 0-9 _ -``, unique, fixed while in use,
  billed in advance from the day it is taken and renewed on that anniversary.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from datetime import date, datetime

from . import errors
from .account import Account, Status, Subscription
from .catalog import Catalog, UsagePrice
from .lifecycle import Lifecycle, Result

PREMIUM_ID = re.compile(r"^@[a-z0-9_-]{4,18}$")
BASIC_ID = re.compile(r"^@[0-9]{3}[a-z]{5}$")
MESSAGES = "messages"


def plan_in_effect(plan: str, pending_plan: str | None, pending_on: date | None, today: date) -> str:
    """The plan that counts today, even before the worker has applied a change due by today."""
    if pending_plan and pending_on is not None and pending_on <= today:
        return pending_plan
    return plan


def quota_of(catalog: Catalog, plan_code: str, metric: str) -> UsagePrice:
    """The usage price of ``metric`` under ``plan_code``; raises ``unknown_metric`` when the plan does not meter it."""
    usage = catalog.plans[plan_code].usage.get(metric)
    if usage is None:
        raise errors.UnknownMetric(f"plan {plan_code!r} does not meter {metric!r}", param="metric")
    return usage


def monthly_cap(usage: UsagePrice) -> int | None:
    """The most a customer may count of ``usage``'s metric in one month, or ``None`` when nothing is refused.

    A hard limit (``hard_limit = true`` in the catalog, LINE OA's communication and light plans: "more
    messages: refused", SPEC 3.3) caps the month at the included quantity; a count of N is granted only when
    ``used + N <= cap``, whole or not at all. Without a hard limit (or with unlimited usage) there is no cap:
    what goes beyond the included quantity is overage, priced at the next invoice.
    """
    return usage.included if usage.hard_limit and usage.included is not None else None


def remaining(included: int | None, used: int) -> int | None:
    """What is left of a monthly quota of ``included`` with ``used`` counted: never below 0; None when unlimited."""
    return None if included is None else max(0, included - used)


def refuse(plan_code: str, usage: UsagePrice, metric: str, used: int, count: int) -> errors.QuotaExceeded:
    """The refusal (``quota_exceeded``, nothing counted) of a count of ``count`` that would pass the monthly cap
    with ``used`` already counted; says how much is left."""
    left = remaining(usage.included, used)
    assert left is not None
    return errors.QuotaExceeded(
        f"sending {count} would exceed the {plan_code} plan's {usage.included} {metric} this month; "
        f"{left} left (upgrade the plan to send more)",
        remaining=left,
    )


def new_basic_id(rng: random.Random, taken: Callable[[str], bool]) -> str:
    for _ in range(1000):
        candidate = "@" + "".join(rng.choices(string.digits, k=3)) + "".join(rng.choices(string.ascii_lowercase, k=5))
        if not taken(candidate):
            return candidate
    raise RuntimeError("no free basic ID after 1000 tries")


def set_premium_id(
    lc: Lifecycle, account: Account, premium_id: str, billing: str, now: datetime, taken: Callable[[str], bool],
    addon_code: str = "premium_id",
) -> Result:
    catalog = lc.catalog_at(now)
    addon = catalog.addons.get(addon_code)
    if addon is None:
        raise errors.UnknownAddon(f"the {catalog.code} catalog has no {addon_code!r} add-on", param="premium_id")
    if not isinstance(premium_id, str) or not PREMIUM_ID.match(premium_id):
        raise errors.InvalidPremiumId(
            f"{premium_id!r} is not a valid premium ID: write @ followed by 4–18 lowercase letters, digits, _ or -",
            param="premium_id",
        )
    if billing not in addon.prices:
        raise errors.InvalidValue(f"billing must be one of: {', '.join(sorted(addon.prices))}", param="billing")
    current = account.addon(addon_code)
    if current is not None:
        raise errors.PremiumIdLocked(
            f"the premium ID {current.value} cannot be changed while it is in use", param="premium_id")
    if taken(premium_id):
        raise errors.PremiumIdTaken(f"{premium_id} is already taken; choose another", param="premium_id")
    plan_sub = account.plan_subscription
    if addon.unit_amount(billing, plan_sub.plan if plan_sub else "") > 0 and not account.can_pay:
        raise errors.PaymentMethodRequired("register a payment method before taking a paid premium ID", param="payment_method")
    today = lc.today(now)
    price = addon.prices[billing]
    start, end = lc.period_for(price, today)
    sub = Subscription(product=addon_code, plan="", contract=billing, status=Status.ACTIVE, seats=1,
                       anchor=today, period_start=start, period_end=end, value=premium_id, catalog_version=catalog.version)
    account.subscriptions.append(sub)
    draft = lc.invoice(account, [lc.period_line(account, sub, start, end)], today, start, end)
    return Result(invoices=[draft] if draft else [], events=[("addon.started", {"addon": addon_code, "value": premium_id, "billing": billing})])
