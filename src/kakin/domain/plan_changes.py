"""Plan and contract changes, and cancellation, under the catalog's rules.

The rules are data (``[[plan_changes]]``, ``[cancellation]``, a price's own
``cancellation``); these functions apply them to an account and return what
the change issues, like the other commands of :class:`~kakin.domain.lifecycle.Lifecycle`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

from . import errors
from . import seats as seats_module
from .account import Account, PendingChange, PendingItem, Status, Subscription
from .calendar import next_month_start
from .catalog import Basis, Catalog, MidPeriodChange, Plan, Price, Timing, When
from .invoice import LineKind, line
from .lifecycle import Lifecycle, Result
from .money import Priced
from .proration import prorated


def change_plan(lc: Lifecycle, account: Account, plan_code: str, now: datetime, *, contract: str | None = None,
                seats: int | None = None) -> Result:
    """Move to another plan or contract under the catalog's rules: at once, at the end of the period, or refused.

    Another plan, its price and the change rules come from the catalog version in force at ``now``, which the
    subscription takes with the change (issue 13); a change of contract alone stays in the subscription's own
    version."""
    sub = account.plan_subscription
    if sub is None or sub.status is Status.CANCELED:
        raise errors.NotSubscribed("the customer has no subscription to change; subscribe first", param="customer")
    own = lc.catalog_of(sub)
    catalog = own if plan_code == sub.plan and plan_code in own.plans else lc.catalog_at(now)
    plan = catalog.plan(plan_code)
    if own.plans[sub.plan].is_free and not plan.is_free:
        return lc.subscribe(account, plan_code, now, contract=contract, seats=seats)
    contract = contract or sub.contract
    today = lc.today(now)
    if plan.code == sub.plan and contract == sub.contract:
        if sub.pending and sub.pending.cancel:
            return seats_module.withdraw_cancellation(lc, account, sub, now)
        if sub.pending and (sub.pending.plan or sub.pending.contract):
            sub.pending = None  # staying on the current plan withdraws the scheduled change
            return Result(events=[("subscription.change_withdrawn", {})])
        raise errors.PlanChangeNotAllowed(f"the customer is already on plan {plan.code!r} ({contract})", param="plan")
    if contract not in plan.prices and plan.prices:
        raise errors.UnknownContract(f"plan {plan.code!r} has no {contract!r} contract", param="contract")
    if plan.code != sub.plan and contract != sub.contract and sub.contract in plan.prices:
        # Both change: each part follows its own rule. LINE WORKS basic (annual) → premium (monthly) upgrades now and
        # leaves the annual contract when its 12 months end, as the contract change alone would.
        plan_now = catalog.change_policy(sub.plan, sub.contract, plan.code, sub.contract) is When.IMMEDIATE
        if plan_now and catalog.change_policy(plan.code, sub.contract, plan.code, contract) is When.END_OF_PERIOD:
            result = change_plan(lc, account, plan.code, now, contract=sub.contract, seats=seats)
            result.events += change_plan(lc, account, plan.code, now, contract=contract).events
            return result
    rule = catalog.change_rule(sub.plan, sub.contract, plan.code, contract)
    when = When.REFUSED if rule is None else rule.when
    if rule is None or when is When.REFUSED:
        allowed = sorted({p for p in catalog.plans if p != sub.plan
                          and catalog.change_policy(sub.plan, sub.contract, p, contract) is not When.REFUSED})
        hint = f"allowed from {sub.plan!r}: {', '.join(allowed)}" if allowed else f"no change is allowed from {sub.plan!r}"
        raise errors.PlanChangeNotAllowed(
            f"moving from {sub.plan!r} ({sub.contract}) to {plan.code!r} ({contract}) is not allowed; {hint}", param="plan")
    if rule.needs_verified_domain and account.sign_in_group and not account.verified_domain:
        raise errors.DomainVerificationRequired(
            f"members sign in as id@{account.sign_in_group}; {plan.code!r} needs a domain instead: register one and "
            "verify it with its DNS TXT record first (their IDs become id@domain)", param="domain")
    if plan.eligibility:
        raise errors.EligibilityRequired(
            f"plan {plan.code!r} needs an approved {plan.eligibility} eligibility application first", param="plan")
    new_price = plan.prices.get(contract)
    if new_price is not None and new_price.unit_amount > 0 and sub.status is not Status.TRIALING and not account.can_pay:
        raise errors.PaymentMethodRequired("register a payment method before changing to a paid plan", param="payment_method")
    new_seats = seats if seats is not None else (sub.seats or account.members)
    lc.check_seats(plan, new_price, new_seats)
    result = Result(events=[("subscription.plan_change", {"from": sub.plan, "to": plan.code, "contract": contract, "when": when.value})])
    if when is When.END_OF_PERIOD:
        effective = lc.end_of_period(sub, today)
        sub.pending = PendingChange(effective_on=effective, plan=plan.code, contract=contract, seats=new_seats,
                                    catalog_version=catalog.version if catalog.version != sub.catalog_version else None)
        return result
    old_price = lc.price_of(sub)
    if (old_price is not None and new_price is not None and sub.status.billable
            and old_price.timing is Timing.IN_ADVANCE):
        _mid_period(catalog, account, sub, plan, old_price, new_price, new_seats, today, result, lc)
    if new_price is not None and new_price.term_months and (old_price is None or not old_price.term_months):
        sub.term_anchor = today
    sub.pending = _carried_over(lc, sub, plan, contract)
    sub.plan, sub.contract, sub.seats, sub.catalog_version = plan.code, contract, new_seats, catalog.version
    lc.drop_empty_pending(sub)
    lc.record_phase(account, sub, today)
    return result


def _carried_over(lc: Lifecycle, sub: Subscription, plan: Plan, contract: str) -> PendingChange | None:
    """What stays scheduled when the plan changes at once.

    A change scheduled for the term's end (back to the monthly contract, fewer
    licenses) carries over to the new plan; a scheduled downgrade or
    cancellation gives way to the change made now, as does everything when the
    contract itself changes.
    """
    kept = sub.pending
    if kept is None or kept.cancel or kept.plan not in (None, sub.plan) or contract != sub.contract:
        return None
    if kept.plan is not None:
        kept.plan = plan.code
    if kept.seats is not None:
        try:
            lc.check_seats(plan, plan.prices.get(kept.contract or contract), kept.seats)
        except errors.SeatsOutOfRange:
            kept.seats = None  # outside the new plan's bounds: the count stays as it is
    return kept

def _mid_period(catalog: Catalog, account: Account, sub: Subscription, plan: Plan, old: Price, new: Price,
                seats: int, today: date, result: Result, lc: Lifecycle) -> None:
    """A prepaid plan changed within its period: the difference at once, or prorated onto the next invoice.
    ``old`` is the subscription's price (its own catalog version), ``new`` the price of ``plan`` in ``catalog``.

    A prorated decrease is a credit note, like a seat decrease (SPEC 4: credits are not sales).
    """
    version = catalog.version
    old_total = old.unit_amount * (1 if old.basis is Basis.FLAT else sub.seats)
    new_total = new.unit_amount * (1 if new.basis is Basis.FLAT else seats)
    diff = new_total - old_total
    span = f"{today.isoformat()}〜{(sub.period_end - timedelta(days=1)).isoformat()}"
    if new.mid_period_change is MidPeriodChange.CHARGE_DIFFERENCE_NOW:
        if diff <= 0:
            return
        draft = lc.invoice(account, [line(  # LINE OA light → standard: 15,000 − 5,000 = 10,000 at once
            LineKind.PRORATION, f"{plan.name_ja}へ変更 差額 {span}", 1,
            Priced(Fraction(diff), f"{new_total} − {old_total}"), catalog.line_rounding,
            period_start=today, period_end=sub.period_end, tax_rate=new.tax_rate, catalog_version=version,
        )], today, today, sub.period_end)
        result.invoices.extend([draft] if draft else [])
        return
    priced = prorated(abs(diff), 1, today, sub.period_start, sub.period_end, new.proration)
    if diff > 0:
        account.pending_items.append(PendingItem(line(
            LineKind.PRORATION, f"{plan.name_ja}へ変更 日割り差額 {span}", 1, priced, catalog.line_rounding,
            period_start=today, period_end=sub.period_end, tax_rate=new.tax_rate, catalog_version=version,
        )))
    elif diff < 0:
        result.credit_notes += lc.credit(account, sub, [line(
            LineKind.CREDIT, f"{plan.name_ja}へ変更 日割り減額 {span}", 1, priced, catalog.line_rounding,
            period_start=today, period_end=sub.period_end, tax_rate=old.tax_rate, catalog_version=version,
        )], today)


def cancel(lc: Lifecycle, account: Account, now: datetime) -> Result:
    """Cancel under the catalog's policy (or the contract's own): at once, or at the end of the period or term."""
    sub = lc.require_paid(account)
    if sub.pending is not None and sub.pending.cancel:
        return Result()  # cancelled already: cancelling again changes nothing
    today = lc.today(now)
    policy = lc.catalog_of(sub).cancellation
    price = lc.price_of(sub)
    when = price.cancellation if price is not None and price.cancellation is not None else policy.when
    result = Result(events=[("subscription.canceled", {"plan": sub.plan, "when": when.value})])
    if when is When.IMMEDIATE or price is None or sub.status is Status.TRIALING and not policy.remaining_as_trial:
        result.invoices.extend(lc.end(account, sub, today))
        return result
    if price.term_months and sub.term_anchor:  # a committed term (annual licenses) runs to its end
        effective = lc.term_end(sub, price, today)
    else:
        effective = sub.period_end if price.timing is Timing.IN_ADVANCE else next_month_start(today)
    sub.pending = PendingChange(effective_on=effective, cancel=True)
    if policy.remaining_as_trial and sub.status.billable:
        sub.status = Status.TRIALING
        sub.trial_end = effective
        lc.record_phase(account, sub, today)
    return result


def grant_plan(lc: Lifecycle, account: Account, plan_code: str, now: datetime) -> Result:
    """Give a plan an approved eligibility application allows, without the catalog's change rules.

    A customer paying for a plan keeps it to the end of the period it paid for (LINE OA: the month; last month's
    usage is billed as usual) and moves on the next billing date; anyone else moves at once.
    """
    catalog = lc.catalog_at(now)
    plan = catalog.plan(plan_code)
    contract = catalog.default_contract if catalog.default_contract in plan.prices else next(
        iter(plan.prices), catalog.default_contract)
    today = lc.today(now)
    sub = account.plan_subscription
    if sub is None or sub.status is Status.CANCELED:
        result = lc.start(account, plan, contract, 0, now, 0, catalog)
        result.events.append(("subscription.plan_granted", {"plan": plan.code, "effective_on": today.isoformat()}))
        return result
    price = lc.price_of(sub)
    if price is not None and price.unit_amount > 0 and sub.status.billable:
        effective = lc.end_of_period(sub, today)
        sub.pending = PendingChange(effective_on=effective, plan=plan.code, contract=contract, seats=sub.seats,
                                    catalog_version=catalog.version if catalog.version != sub.catalog_version else None)
        return Result(events=[("subscription.plan_granted", {"plan": plan.code, "effective_on": effective.isoformat()})])
    sub.plan, sub.contract, sub.pending, sub.catalog_version = plan.code, contract, None, catalog.version
    if sub.status is not Status.ACTIVE:
        sub.status, sub.trial_end = Status.ACTIVE, None
    lc.record_phase(account, sub, today)
    return Result(events=[("subscription.plan_granted", {"plan": plan.code, "effective_on": today.isoformat()})])
