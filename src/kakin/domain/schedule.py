"""Work that falls due with time: trial ends, renewals, month closes, pending changes, retries.

Billing dates begin at 00:00 in the tenant's time zone. :func:`run_next`
performs the single earliest action due by ``until``; callers loop until it
returns None, so a month of work is done in time order, one action at a time.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .account import PLAN, Account, OpenInvoice, Status, Subscription, phases_from
from .calendar import anniversary, month_start, next_month_start, period_index, start_of_day
from .catalog import AfterDunning, Alignment, Timing
from .charges import arrears_lines, usage_line
from .invoice import Line
from .lifecycle import Lifecycle, Result

_TRIAL_END, _PENDING, _BOUNDARY, _RETRY, _NOTICE, _EXPIRE = 0, 1, 2, 3, 4, 5
INCOMPLETE_EXPIRES_AFTER = timedelta(hours=23)  # as Stripe's incomplete subscriptions: 23 hours to complete 3-D Secure


def _candidates(lc: Lifecycle, account: Account) -> list[tuple[datetime, int, int, object]]:
    out: list[tuple[datetime, int, int, object]] = []
    for index, sub in enumerate(account.subscriptions):
        if sub.ended:
            continue
        price = lc.price_of(sub)
        pending = sub.pending
        in_advance = price is not None and price.timing is Timing.IN_ADVANCE
        if pending is not None and not (in_advance and pending.effective_on == sub.period_end):
            out.append((start_of_day(pending.effective_on, lc.zone), _PENDING, index, sub))
        if sub.status is Status.TRIALING and sub.trial_end and not (pending and pending.cancel):
            out.append((start_of_day(sub.trial_end, lc.zone), _TRIAL_END, index, sub))
        notice = _notice_due(lc, sub, in_advance)
        if notice is not None:
            out.append((notice[0], _NOTICE, index, (sub, notice[1])))
        if price is None or sub.period_end <= sub.period_start:
            continue
        if not in_advance or sub.status.billable or (pending is not None and pending.effective_on == sub.period_end):
            out.append((start_of_day(sub.period_end, lc.zone), _BOUNDARY, index, sub))
    for index, inv in enumerate(account.open_invoices):
        if inv.status == "open" and inv.next_retry_at is not None:
            out.append((inv.next_retry_at, _RETRY, index, inv))
        if inv.status == "open" and inv.expires_at is not None:
            out.append((inv.expires_at, _EXPIRE, index, inv))
    out.sort(key=lambda c: (c[0], c[1], c[2]))
    return out


def _notice_due(lc: Lifecycle, sub: Subscription, in_advance: bool) -> tuple[datetime, str] | None:
    """The notice a subscription is owed next (before a charge, before its trial ends), if the catalog asks for one."""
    cat = lc.catalog_of(sub)
    if sub.product != PLAN or (sub.pending is not None and sub.pending.cancel):
        return None
    if sub.status is Status.TRIALING and sub.trial_end and cat.notice_before_trial_end_days:
        key, on = f"trial:{sub.trial_end.isoformat()}", sub.trial_end - timedelta(days=cat.notice_before_trial_end_days)
    elif in_advance and sub.status.billable and cat.notice_before_charge_days and sub.period_end > sub.period_start:
        key, on = f"charge:{sub.period_end.isoformat()}", sub.period_end - timedelta(days=cat.notice_before_charge_days)
    else:
        return None
    if sub.notified == key or on <= sub.anchor:
        return None
    return start_of_day(on, lc.zone), key


def next_due(lc: Lifecycle, account: Account) -> datetime | None:
    candidates = _candidates(lc, account)
    return candidates[0][0] if candidates else None


def run_next(lc: Lifecycle, account: Account, until: datetime) -> Result | None:
    """Perform the earliest action due at or before ``until``; None when nothing is due."""
    candidates = _candidates(lc, account)
    if not candidates or candidates[0][0] > until:
        return None
    at, kind, _, target = candidates[0]
    result = _dispatch(lc, account, kind, target)
    result.at = at
    return result


def _dispatch(lc: Lifecycle, account: Account, kind: int, target: object) -> Result:
    if kind == _RETRY:
        assert isinstance(target, OpenInvoice)
        target.next_retry_at = None
        if target.deferred:  # a small balance that no charge joined within the catalog's small_balance_days
            return write_off(target)
        return Result(retries=[target], events=[("invoice.retry", {"number": target.number})])
    if kind == _EXPIRE:
        assert isinstance(target, OpenInvoice)
        return _expire_incomplete(lc, account, target)
    if kind == _NOTICE:
        assert isinstance(target, tuple)
        sub: Subscription = target[0]
        key: str = target[1]
        sub.notified = key
        what, on = key.split(":")
        if what == "trial":
            return Result(events=[("notice.trial_ending", {"trial_end": on, "plan": sub.plan})])
        price = lc.price_of(sub)
        assert price is not None
        amount = lc.upcoming_period_line(account, sub, sub.period_end, sub.period_end).amount
        return Result(events=[("notice.upcoming_charge", {"charge_on": on, "plan": sub.plan, "amount": amount})])
    assert isinstance(target, Subscription)
    if kind == _TRIAL_END:
        return _trial_end(lc, account, target)
    if kind == _PENDING:
        return _apply_pending(lc, account, target)
    price = lc.price_of(target)
    assert price is not None
    if price.timing is Timing.IN_ARREARS:
        return _close_arrears(lc, account, target)
    return _renew_in_advance(lc, account, target)


def _trial_end(lc: Lifecycle, account: Account, sub: Subscription) -> Result:
    assert sub.trial_end is not None
    on = sub.trial_end
    if account.can_pay:
        return Result(invoices=lc.activate(account, sub, on), events=[("subscription.trial_ended", {"status": "active"})])
    sub.status = Status.SUSPENDED
    lc.record_phase(account, sub, on)
    return Result(events=[("subscription.trial_ended", {"status": "suspended"})])


def _apply_pending(lc: Lifecycle, account: Account, sub: Subscription) -> Result:
    pending = sub.pending
    assert pending is not None
    sub.pending = None
    on = pending.effective_on
    if pending.cancel:
        return Result(invoices=lc.end(account, sub, on), events=[("subscription.ended", {"plan": sub.plan})])
    if pending.plan:
        sub.plan = pending.plan
        if pending.catalog_version is not None:  # a plan chosen from a later catalog version than the subscription's
            sub.catalog_version = pending.catalog_version
    if pending.contract:
        sub.contract = pending.contract
    if pending.seats is not None:
        sub.seats = pending.seats
    price = lc.price_of(sub)
    if price is not None and price.term_months and sub.term_anchor is None:
        sub.term_anchor = on
    lc.record_phase(account, sub, on)
    return Result(events=[("subscription.change_applied", {"plan": sub.plan, "contract": sub.contract, "seats": sub.seats})])


def _usage_lines(lc: Lifecycle, account: Account, sub: Subscription) -> list[Line]:
    """Last month's overage, priced by the plan (and its catalog version) in effect at the end of that month."""
    if sub.product != PLAN:
        return []
    catalog = lc.catalog_of(sub)
    plan = catalog.plans[sub.plan]
    month = month_start(sub.period_start)
    out = []
    for metric, usage in plan.usage.items():
        item = usage_line(catalog, plan, usage, account.used(metric, month), month)
        if item is not None:
            out.append(item)
    return out


def _close_arrears(lc: Lifecycle, account: Account, sub: Subscription) -> Result:
    """Post-paid: the calendar month just ended, per day, invoiced on the 1st."""
    start, boundary = sub.period_start, sub.period_end
    lines = arrears_lines(lc.history.catalog, sub.phases, start, boundary)
    lines += _usage_lines(lc, account, sub)
    if sub.product == PLAN:
        lines += lc.take_pending_items(account)
    sub.phases = phases_from(sub.phases, boundary)
    events: list[tuple[str, dict[str, object]]] = [("period.closed", {"start": start.isoformat()})]
    if sub.status is Status.CANCELED:
        sub.ended = True
    else:
        sub.period_start, sub.period_end = boundary, next_month_start(boundary)
        moved = lc.move_to_version(account, sub, boundary)  # days from the 1st on at the version it moves to
        events += [moved] if moved else []
    draft = lc.invoice(account, lines, boundary, start, boundary, key=f"{sub.product}:{sub.anchor.isoformat()}:{start.isoformat()}")
    return Result(invoices=[draft] if draft else [], events=events)


def _renew_in_advance(lc: Lifecycle, account: Account, sub: Subscription) -> Result:
    """Prepaid: charge the next period at its start, with last period's usage and pending items."""
    boundary = sub.period_end
    lines = _usage_lines(lc, account, sub)
    if sub.product == PLAN:
        lines += lc.take_pending_items(account)
    result = Result()
    pending = sub.pending if sub.pending is not None and sub.pending.effective_on <= boundary else None
    if pending is not None:
        result = _apply_pending(lc, account, sub)
        if pending.cancel:
            draft = lc.invoice(account, lines, boundary, sub.period_start, boundary, key=f"{sub.product}:{sub.anchor.isoformat()}:{boundary.isoformat()}")
            result.invoices[:0] = [draft] if draft else []
            return result
    moved = lc.move_to_version(account, sub, boundary)  # the new period at the version it moves to (issue 13)
    if moved is not None:
        result.events.append(moved)
    price = lc.price_of(sub)
    if price is None:  # moved to a plan without a price (a free plan)
        sub.period_start = sub.period_end = boundary
        draft = lc.invoice(account, lines, boundary, None, None, key=f"{sub.product}:{sub.anchor.isoformat()}:{boundary.isoformat()}")
        result.invoices.extend([draft] if draft else [])
        return result
    if price.alignment is Alignment.CALENDAR_MONTH:
        start, end = boundary, next_month_start(boundary)
    else:
        n = period_index(sub.anchor, boundary, price.interval_months)
        start, end = anniversary(sub.anchor, n, price.interval_months), anniversary(sub.anchor, n + 1, price.interval_months)
    sub.period_start, sub.period_end = start, end
    if sub.status.billable:
        lines.append(lc.period_line(account, sub, start, end))
    draft = lc.invoice(account, lines, boundary, start, end, key=f"{sub.product}:{sub.anchor.isoformat()}:{boundary.isoformat()}")
    result.invoices.extend([draft] if draft else [])
    result.events.append(("subscription.renewed", {"period_start": start.isoformat(), "period_end": end.isoformat()}))
    return result


# ------------------------------------------------------------------- payments
def payment_failed(lc: Lifecycle, account: Account, inv: OpenInvoice, now: datetime, code: str | None = None) -> Result:
    """A charge failed (``code``: the gateway's decline code, ``overdue``, …): schedule the next retry, or apply the
    catalog's end of dunning.

    Retries fall on ``[dunning] retry_days`` counted from the first failure, each still ahead of ``now`` (NipoPlus:
    1, 3, 5 and 7 days, SPEC 3.2); the last of them closes the retry window. A hard decline (``hard_decline_codes``:
    an expired, lost or stolen card, …) is not retried on that card: the card is taken off the customer, who is
    asked for a new one (charged at once when registered, see :meth:`Lifecycle.set_payment_method`), and the
    catalog's end state still applies when the window closes. Source: SPEC 3.2, issue 9 item 7.
    """
    inv.attempts += 1
    inv.first_failed_at = inv.first_failed_at or now
    dunning = lc.catalog.dunning
    hard = code in dunning.hard_decline_codes
    ahead = [t for t in (inv.first_failed_at + timedelta(days=d) for d in dunning.retry_days) if t > now]
    next_at = (ahead[-1] if hard else ahead[0]) if ahead else None  # a hard decline waits for a new card until the end
    sub = account.plan_subscription
    today = lc.today(now)
    failed: dict[str, object] = {"number": inv.number, "attempt": inv.attempts, "code": code,
                                 "retry": next_at is not None and not hard, "hard_decline": hard}
    result = Result(events=[("payment.failed", failed)])
    if hard:
        account.payment_method = None  # never charged again; a card registered later pays what is open at once
        failed["deadline"] = next_at.astimezone(lc.zone).isoformat() if next_at else None  # when the window closes
        result.events.append(("payment.new_card_needed", {"number": inv.number, "code": code,
                                                          "deadline": failed["deadline"]}))
    if next_at is not None:
        inv.next_retry_at = next_at
        if sub is not None and sub.status is Status.ACTIVE:
            sub.status = Status.PAST_DUE
            lc.record_phase(account, sub, today)
        return result
    inv.next_retry_at = None
    if lc.catalog.dunning.after_last_failure is AfterDunning.FALLBACK_PLAN:
        inv.status = "uncollectible"
        for other in account.subscriptions:
            if not other.ended and other.product != PLAN:
                other.status, other.canceled_on, other.ended = Status.CANCELED, today, True
        if sub is not None and sub.status is not Status.CANCELED:
            result.invoices.extend(lc.end(account, sub, today))
        result.events.append(("subscription.canceled_for_nonpayment", {"number": inv.number}))
    elif sub is not None:
        sub.status = Status.SUSPENDED
        lc.record_phase(account, sub, today)
        result.events.append(("subscription.suspended_for_nonpayment", {"number": inv.number}))
    return result


def payment_succeeded(lc: Lifecycle, account: Account, inv: OpenInvoice, now: datetime) -> Result:
    """The invoice is paid: a sign-up awaiting 3-D Secure starts, a past-due or suspended plan is active again
    once nothing else is overdue."""
    inv.status = "paid"
    inv.next_retry_at = None
    inv.deferred = False
    result = Result(events=[("payment.succeeded", {"number": inv.number})])
    sub = account.plan_subscription
    if inv.expires_at is not None:
        inv.expires_at = None
        if sub is not None and sub.status is Status.INCOMPLETE:
            sub.status = Status.ACTIVE
            lc.record_phase(account, sub, lc.today(now))
            result.events.append(("subscription.activated", {"plan": sub.plan, "number": inv.number}))
    if any(o.status == "open" and not o.deferred and o is not inv for o in account.open_invoices):
        return result
    if sub is not None and sub.status is Status.PAST_DUE:
        sub.status = Status.ACTIVE
        lc.record_phase(account, sub, lc.today(now))
    elif sub is not None and sub.status is Status.SUSPENDED:
        result.invoices.extend(lc.activate(account, sub, lc.today(now)))
    return result


def payment_changes_only_the_invoice(account: Account, inv: OpenInvoice) -> bool:
    """Whether :func:`payment_succeeded` would change nothing but the invoice (and announce it): no sign-up awaits
    3-D Secure on it and the plan is not past due or suspended. A run records such payments without saving the
    account again."""
    sub = account.plan_subscription
    return inv.expires_at is None and (sub is None or sub.status not in (Status.PAST_DUE, Status.SUSPENDED))


def payment_incomplete(lc: Lifecycle, account: Account, inv: OpenInvoice, now: datetime) -> Result:
    """A sign-up's first charge awaits 3-D Secure: the subscription is ``incomplete`` (no service, not retried) until
    the customer completes it, and expires 23 hours later (Stripe's rule). Source: issue 9 item 6."""
    sub = account.plan_subscription
    assert sub is not None
    sub.status = Status.INCOMPLETE
    lc.record_phase(account, sub, lc.today(now))
    inv.expires_at = now + INCOMPLETE_EXPIRES_AFTER
    inv.next_retry_at = None
    return Result(events=[("subscription.incomplete", {"plan": sub.plan, "number": inv.number,
                                                       "expires_at": inv.expires_at.isoformat()})])


def _expire_incomplete(lc: Lifecycle, account: Account, inv: OpenInvoice) -> Result:
    """23 hours without 3-D Secure: the sign-up never happened. Its invoice is void (nothing owed; its number stays
    used, so numbers remain gapless) and the customer is back on the catalog's fallback plan."""
    assert inv.expires_at is not None
    today = lc.today(inv.expires_at)
    inv.status, inv.expires_at, inv.next_retry_at = "void", None, None
    result = Result(events=[("invoice.voided", {"number": inv.number, "total": inv.total})])
    sub = account.plan_subscription
    if sub is not None and sub.status is Status.INCOMPLETE:
        result.invoices.extend(lc.end(account, sub, today))
        result.events.append(("subscription.incomplete_expired", {"plan": sub.plan}))
    return result


# --------------------------------------------------------------- small balances
def defer_small_balance(lc: Lifecycle, inv: OpenInvoice, now: datetime) -> None:
    """An invoice below the gateway's minimum charge waits, open, for the customer's next charge; if none has taken
    it ``[billing] small_balance_days`` later, it is written off (see :func:`write_off`)."""
    inv.deferred = True
    if inv.next_retry_at is None:
        inv.next_retry_at = now + timedelta(days=lc.catalog.small_balance_days)


def next_charge_on(lc: Lifecycle, account: Account) -> date | None:
    """The first date on which the account's live subscriptions can still issue a charge; None when nothing will.

    A billable in-advance subscription charges at its next billing date (unless a cancellation ends it there and
    nothing is left to bill), a trial that turns paid at its end, a post-paid one at its month close when a day of
    the month is billable (days used, also after a cancellation). A deleted customer, a suspended or incomplete plan and free plans charge nothing.
    """
    if account.deleted_on is not None and not any(not s.ended for s in account.subscriptions):
        return None
    dates = []
    for sub in account.subscriptions:
        price = lc.price_of(sub)
        if sub.ended or price is None:
            continue
        plan = lc.catalog_of(sub).plans.get(sub.plan) if sub.product == PLAN else None
        priced = price.unit_amount > 0 or (plan is not None and any(u.tiers for u in plan.usage.values()))
        if not priced:
            continue
        if price.timing is Timing.IN_ARREARS:
            if _bills_a_day(sub):
                dates.append(sub.period_end)
        elif sub.pending is not None and sub.pending.cancel:
            if sub.product == PLAN and sum(p.line.amount for p in account.pending_items) > 0:
                dates.append(sub.pending.effective_on)  # the last invoice still bills pending items
        elif sub.status.billable:
            dates.append(sub.period_end)
        elif sub.status is Status.TRIALING and sub.trial_end and account.can_pay:
            dates.append(sub.trial_end)
    return min(dates, default=None)


def _bills_a_day(sub: Subscription) -> bool:
    """A post-paid period has a billable day (a cancellation or deletion today leaves none after it)."""
    for i, phase in enumerate(sub.phases):
        end = sub.phases[i + 1].start if i + 1 < len(sub.phases) else sub.period_end
        if phase.billable and max(phase.start, sub.period_start) < min(end, sub.period_end):
            return True
    return False


def write_off_stranded(lc: Lifecycle, account: Account, now: datetime) -> Result:
    """Write off small balances that can never join another charge: the customer cancelled or was deleted, or
    nothing else will be charged within ``[billing] small_balance_days``. Source: issue 9 item 8."""
    waiting = [inv for inv in account.open_invoices if inv.status == "open" and inv.deferred]
    if not waiting:
        return Result()
    upcoming = next_charge_on(lc, account)
    if upcoming is not None and upcoming <= lc.today(now) + timedelta(days=lc.catalog.small_balance_days):
        return Result()
    result = Result()
    for inv in waiting:
        done = write_off(inv)
        result.events += done.events
    return result


def write_off(inv: OpenInvoice) -> Result:
    """A small balance no charge will collect: ``uncollectible``, never left open forever."""
    inv.status, inv.next_retry_at = "uncollectible", None
    return Result(events=[("invoice.written_off", {"number": inv.number, "total": inv.total})])


def forgive(lc: Lifecycle, account: Account, inv: OpenInvoice, now: datetime) -> Result:
    """The vendor writes an open invoice off (uncollectible: no more retries). A plan past due (in dunning) is active
    again once nothing else is overdue, as after a payment (:func:`payment_succeeded`). A plan suspended for
    nonpayment stays suspended: the service starts again when the customer subscribes or pays what is open.
    Source: SPEC 3.2 (dunning); the rule for "nothing else overdue" is :func:`payment_succeeded`'s."""
    result = write_off(inv)
    sub = account.plan_subscription
    overdue = any(o.status == "open" and not o.deferred and o is not inv for o in account.open_invoices)
    if sub is not None and sub.status is Status.PAST_DUE and not overdue:
        sub.status = Status.ACTIVE
        lc.record_phase(account, sub, lc.today(now))
    return result
