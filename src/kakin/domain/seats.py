"""Seat changes: contracted seats (licenses) and what a change mid-period bills.

A prepaid plan bills an increase as ``unit × days remaining ÷ 30 × seats added`` on the next invoice and a
decrease as a credit note (seeds/nipoplus-paid-plan.ja.txt, SPEC 3.2 and 4). While a cancellation is pending the
difference is held, and billed as for an active customer only if the cancellation is withdrawn.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from . import errors
from .account import Account, PendingChange, PendingItem, Status, Subscription
from .catalog import Basis, MidPeriodChange, Price, Timing, When
from .charges import plan_label
from .invoice import LineKind, line
from .lifecycle import Lifecycle, Result
from .money import product
from .proration import prorated


def set_seats(lc: Lifecycle, account: Account, seats: int, now: datetime) -> Result:
    """Change the contracted seats (licenses) of the paid plan: at once, or at the end of the period or term
    for an annual decrease; a prepaid plan bills the difference by :func:`seat_difference`. Raises
    SeatsOutOfRange, NotSubscribed, or SeatsNotApplicable for a per-user price."""
    sub = lc.require_paid(account)
    plan = lc.catalog_of(sub).plans[sub.plan]
    price = lc.price_of(sub)
    if price is None or price.basis is not Basis.SEAT:
        raise errors.SeatsNotApplicable(
            f"the {sub.contract!r} contract of plan {sub.plan!r} is billed per registered user, not per seat; "
            "use set_members", param="seats",
        )
    lc.check_seats(plan, price, seats)
    today = lc.today(now)
    result = Result(events=[("subscription.seats_changed", {"before": sub.seats, "after": seats})])
    delta = seats - sub.seats
    if delta == 0:
        if sub.pending and sub.pending.seats is not None:
            sub.pending.seats = None
            lc.drop_empty_pending(sub)
        return result
    # the paid days left became a trial when the customer cancelled (NipoPlus, SPEC 3.2): a change made now is
    # billed as for an active customer if the cancellation is withdrawn, and never if the customer leaves. A
    # customer still active until its cancellation takes effect is billed as usual, on its last invoice.
    cancelling = (sub.pending is not None and sub.pending.cancel and sub.status is Status.TRIALING
                  and price.timing is Timing.IN_ADVANCE)
    if (sub.status is Status.TRIALING and not cancelling) or price.timing is Timing.IN_ARREARS:
        if delta < 0 and price.seat_decrease is When.END_OF_PERIOD and sub.status is not Status.TRIALING:
            effective = lc.end_of_period(sub, today)
            sub.pending = sub.pending or PendingChange(effective_on=effective)
            sub.pending.seats = seats
            result.events.append(("subscription.change_scheduled", {"seats": seats, "effective_on": effective.isoformat()}))
            return result
        if sub.pending:
            sub.pending.seats = None
            lc.drop_empty_pending(sub)
        sub.seats = seats
        lc.record_phase(account, sub, today)
        return result
    if cancelling and sub.pending is not None:  # held: billed only if the cancellation is withdrawn
        sub.pending.held.append((today, sub.seats, seats))
    else:
        seat_difference(lc, account, sub, result, price, sub.seats, seats, today, today)
    sub.seats = seats
    lc.record_phase(account, sub, today)
    return result

def seat_difference(lc: Lifecycle, account: Account, sub: Subscription, result: Result, price: Price, before: int,
                    after: int, changed_on: date, today: date) -> None:
    """Bill a mid-period seat change of a prepaid plan made on ``changed_on`` (SPEC 3.2, the seed's formula).

    An increase goes on the next invoice as ``unit × days remaining ÷ 30 × seats added`` (or, for
    ``charge_difference_now`` prices, is invoiced at once in full); a decrease is a credit note for
    ``unit × days remaining ÷ 30 × seats removed``, issued ``today``. Priced at the subscription's own catalog
    version (issue 13: a grandfathered customer's seats cost what its seats cost).
    """
    catalog = lc.catalog_of(sub)
    plan = catalog.plans[sub.plan]
    delta = after - before
    what = f"{plan_label(plan, sub.contract)} 人数変更 {before}→{after}"
    span = f"{changed_on.isoformat()}〜{(sub.period_end - timedelta(days=1)).isoformat()}"
    if price.mid_period_change is not MidPeriodChange.PRORATE_NEXT_INVOICE:  # the rest of the period, in full
        if delta > 0:
            draft = lc.invoice(account, [line(
                LineKind.PRORATION, f"{plan_label(plan, sub.contract)} 追加 {delta}", delta,
                product(price.unit_amount, delta), catalog.line_rounding, period_start=changed_on,
                period_end=sub.period_end, tax_rate=price.tax_rate, catalog_version=catalog.version,
            )], today, changed_on, sub.period_end)
            result.invoices.extend([draft] if draft else [])
        return
    priced = prorated(price.unit_amount, abs(delta), changed_on, sub.period_start, sub.period_end, price.proration)
    if delta > 0:
        account.pending_items.append(PendingItem(line(
            LineKind.PRORATION, f"{what} 日割り {span}", delta, priced, catalog.line_rounding,
            period_start=changed_on, period_end=sub.period_end, tax_rate=price.tax_rate, catalog_version=catalog.version)))
    else:
        result.credit_notes += lc.credit(account, sub, [line(
            LineKind.CREDIT, f"{what} 日割り減額 {span}", -delta, priced, catalog.line_rounding,
            period_start=changed_on, period_end=sub.period_end, tax_rate=price.tax_rate,
            catalog_version=catalog.version)], today)

def withdraw_cancellation(lc: Lifecycle, account: Account, sub: Subscription, now: datetime) -> Result:
    """Subscribing again to the plan whose cancellation is pending keeps it, as if never cancelled.

    Seat changes made while the cancellation was pending are billed now as for an active customer, each from
    the day it was made (SPEC 3.2): NipoPlus 10 → 50 seats on May 11, withdrawn May 12, adds
    180 × 23 ÷ 30 × 40 = 5,520 to the June 3 invoice.
    """
    held: list[tuple[date, int, int]] = []
    if sub.pending is not None:  # what else was scheduled (fewer licenses at the term's end) stays scheduled
        held, sub.pending.held, sub.pending.cancel = sub.pending.held, [], False
        lc.drop_empty_pending(sub)
    today = lc.today(now)
    result = Result(events=[("subscription.cancellation_withdrawn", {"plan": sub.plan})])
    if sub.status is Status.TRIALING and sub.trial_end == sub.period_end:
        sub.status = Status.ACTIVE
        sub.trial_end = None
        lc.record_phase(account, sub, today)
    price = lc.price_of(sub)
    if price is not None and sub.status.billable:
        for changed_on, before, after in held:
            seat_difference(lc, account, sub, result, price, before, after, changed_on, today)
    return result
