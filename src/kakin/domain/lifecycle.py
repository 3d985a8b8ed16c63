"""The subscription life cycle: accounts, subscribe, seats, members, activation and the end of a subscription.

Each command takes the account aggregate and ``now`` (a UTC instant), changes
the account in place and returns a :class:`Result` with the invoices it issues.
Seat changes are in :mod:`kakin.domain.seats`, plan changes and cancellation in
:mod:`kakin.domain.plan_changes`,
scheduled work (renewals, trial ends, month closes, retries) in
:mod:`kakin.domain.schedule`. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import errors
from .account import PLAN, Account, OpenInvoice, Phase, Status, Subscription
from .calendar import anniversary, local_date, month_start, next_month_start, period_index, start_of_day
from .catalog import Alignment, Basis, Catalog, Plan, Price, Timing, When
from .catalog_versions import CatalogHistory
from .charges import CONTRACT_JA, recurring_line
from .invoice import CreditNoteDraft, InvoiceDraft, Line, LineKind, TaxPolicy, credit_note, generate_invoice, line
from .money import product


@dataclass
class Result:
    """What a command or a due action produced, for the caller to persist and charge."""

    invoices: list[InvoiceDraft] = field(default_factory=list)
    credit_notes: list[CreditNoteDraft] = field(default_factory=list)  # issued now; their totals are on the balance
    retries: list[OpenInvoice] = field(default_factory=list)  # open invoices to charge again now
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    at: datetime | None = None  # when a due action fell due (None: now)


class Lifecycle:
    """The billing rules of one tenant. ``catalog`` is the version in force when the tenant was opened (vendor-wide
    settings: time zone, tax, dunning); ``history`` holds every published version (issue 13): a new subscription
    takes the version in force at ``now`` (:meth:`catalog_at`), an existing one is priced with its own
    (:meth:`catalog_of`) and moves at a period start (:meth:`move_to_version`)."""

    def __init__(self, catalog: Catalog, history: CatalogHistory | None = None) -> None:
        self.catalog = catalog
        self.history = history or CatalogHistory.single(catalog, datetime.min.replace(tzinfo=UTC))
        self.versioned = len(self.history.versions) > 1
        self.zone = ZoneInfo(catalog.timezone)
        self.tax = TaxPolicy(catalog.tax_rate, catalog.tax_inclusive, catalog.tax_rounding)

    # ----------------------------------------------------------------- helpers
    def today(self, now: datetime) -> date:
        return local_date(now, self.zone)

    def catalog_at(self, now: datetime) -> Catalog:
        """The catalog a subscription started at ``now`` takes: the latest version in effect."""
        return self.history.in_force(now) if self.versioned else self.catalog

    def catalog_of(self, sub: Subscription) -> Catalog:
        """The catalog version ``sub`` is priced with."""
        if not self.versioned and sub.catalog_version == self.catalog.version:
            return self.catalog
        return self.history.catalog(sub.catalog_version)

    def move_to_version(self, account: Account, sub: Subscription, on: date) -> tuple[str, dict[str, object]] | None:
        """At the start of a period on ``on``, move ``sub`` to the latest ``next_period`` version in effect by then
        (its plan renamed by ``[plan_moves]``), and record the phase; an event, or None when it stays (issue 13)."""
        if not self.versioned:
            return None
        target = self.history.moved_to(sub.catalog_version, start_of_day(on, self.zone))
        if target == sub.catalog_version:
            return None
        catalog = self.history.catalog(target)
        if sub.product == PLAN:
            plan = self.history.plan_after_moves(sub.plan, sub.catalog_version, target)
            found = catalog.plans.get(plan)
            if found is None or (found.prices and sub.contract not in found.prices):
                return None  # nowhere to go: it keeps the version it has
        elif sub.product not in catalog.addons or sub.contract not in catalog.addons[sub.product].prices:
            return None
        else:
            plan = sub.plan
        event = ("subscription.catalog_version_changed",
                 {"product": sub.product, "from": sub.catalog_version, "to": target, "plan": plan, "on": on.isoformat()})
        sub.plan, sub.catalog_version = plan, target
        self.record_phase(account, sub, on)
        return event

    def price_of(self, sub: Subscription) -> Price | None:
        catalog = self.catalog_of(sub)
        if sub.product == PLAN:
            return catalog.plans[sub.plan].prices.get(sub.contract)
        return catalog.addons[sub.product].prices.get(sub.contract)

    def record_phase(self, account: Account, sub: Subscription, on: date) -> None:
        """Note the state in effect from ``on``; a later change the same day replaces it (the last change of a day
        wins: this is the one place that decides it; SPEC 3.1, "a day is charged at the state in effect at the end of that day").

        ``sub.new_phases`` holds the phases to write, at most one a day; a phase already written on ``on`` that
        this one replaces goes into ``sub.superseded_phases``, for the store to remove."""
        phase = Phase(on, sub.plan, sub.contract, sub.seats, account.members, sub.status.billable, sub.catalog_version)
        if sub.phases and sub.phases[-1].start >= on:
            replaced = sub.phases[-1]
            sub.phases[-1] = phase
            if sub.new_phases and sub.new_phases[-1].start >= on:
                sub.new_phases[-1] = phase
            else:
                if replaced.start == on:
                    sub.superseded_phases.append(on)
                sub.new_phases.append(phase)
        else:
            sub.phases.append(phase)
            sub.new_phases.append(phase)

    def invoice(self, account: Account, lines: list[Line], issued_on: date, start: date | None, end: date | None,
                key: str | None = None) -> InvoiceDraft | None:
        """An invoice for these lines, with the credit balance applied; None when nothing is due.

        ``key`` names what a scheduled invoice bills, so the store can refuse billing it twice.
        """
        if not any(item.amount for item in lines):
            return None
        draft, account.credit = generate_invoice(
            lines, issued_on=issued_on, credit_balance=account.credit, tax=self.tax,
            period_start=start, period_end=end, billing_key=key,
        )
        return draft

    def credit(self, account: Account, sub: Subscription, lines: list[Line], on: date) -> list[CreditNoteDraft]:
        """A decrease (positive lines: what is returned) as a credit note against the invoice of ``sub``'s period.

        Credits are not sales (SPEC 4): the note's total, tax included, goes on the credit balance, which later
        invoices apply after tax (充当).
        """
        note = credit_note(lines, issued_on=on, tax=self.tax, period_start=sub.period_start, period_end=sub.period_end)
        if note is None:
            return []
        account.credit += note.total
        return [note]

    def period_line(self, account: Account, sub: Subscription, start: date, end: date) -> Line:
        """The in-advance charge for one period of a plan or an add-on, at the subscription's catalog version."""
        catalog = self.catalog_of(sub)
        if sub.product == PLAN:
            plan = catalog.plans[sub.plan]
            return recurring_line(catalog, plan, plan.prices[sub.contract], sub.seats, start, end)
        addon = catalog.addons[sub.product]
        current = account.plan_subscription
        amount = addon.unit_amount(sub.contract, current.plan if current else "")  # per-plan override (free under some plans)
        label = CONTRACT_JA.get(sub.contract, sub.contract)
        price = addon.prices.get(sub.contract)
        return line(LineKind.ADDON, f"{addon.name_ja} {sub.value or ''}（{label}）{start.isoformat()}〜{(end - timedelta(days=1)).isoformat()}",
                    1, product(amount, 1), catalog.line_rounding, period_start=start, period_end=end,
                    tax_rate=price.tax_rate if price is not None else None, catalog_version=catalog.version)

    def upcoming_period_line(self, account: Account, sub: Subscription, start: date, end: date) -> Line:
        """:meth:`period_line` for a period starting ``start``, at the version ``sub`` will have moved to by then
        (a notice before a charge names the amount that will be charged)."""
        target = self.history.moved_to(sub.catalog_version, start_of_day(start, self.zone)) if self.versioned else 0
        if not target or target == sub.catalog_version:
            return self.period_line(account, sub, start, end)
        ahead = replace(sub, phases=[], new_phases=[], superseded_phases=[])
        if self.move_to_version(account, ahead, start) is None:
            return self.period_line(account, sub, start, end)
        return self.period_line(account, ahead, start, end)

    def take_pending_items(self, account: Account) -> list[Line]:
        items = [p.line for p in account.pending_items]
        account.pending_items.clear()
        return items

    def period_for(self, price: Price | None, start: date) -> tuple[date, date]:
        if price is None:
            return start, start
        if price.alignment is Alignment.CALENDAR_MONTH:
            return month_start(start), next_month_start(start)
        return start, anniversary(start, 1, price.interval_months)

    def term_end(self, sub: Subscription, price: Price, today: date) -> date:
        assert price.term_months and sub.term_anchor
        n = period_index(sub.term_anchor, max(today, sub.term_anchor), price.term_months)
        return anniversary(sub.term_anchor, n + 1, price.term_months)

    def end_of_period(self, sub: Subscription, today: date) -> date:
        price = self.price_of(sub)
        if price is None:
            return today
        if price.term_months and sub.term_anchor:
            return self.term_end(sub, price, today)
        return sub.period_end

    def check_seats(self, plan: Plan, price: Price | None, seats: int) -> None:
        if price is None or price.basis is not Basis.SEAT:
            return
        low = plan.min_seats if plan.min_seats is not None else 1
        high = plan.max_seats
        if seats < low or (high is not None and seats > high):
            bounds = f"{low}–{high}" if high is not None else f"at least {low}"
            raise errors.SeatsOutOfRange(
                f"seats {seats} is outside {bounds} for plan {plan.code!r}; "
                f"choose a count in that range (a smaller team may buy {low})",
                param="seats",
            )

    # ---------------------------------------------------------------- accounts
    def open_account(self, key: str, name: str, now: datetime, payment_method: str | None = None, members: int = 0) -> Account:
        account = Account(key=key, name=name, payment_method=payment_method, members=members)
        catalog = self.catalog_at(now)
        if catalog.default_plan:
            self.start(account, catalog.plans[catalog.default_plan], catalog.default_contract, 0, now, 0)
        return account

    def start(self, account: Account, plan: Plan, contract: str, seats: int, now: datetime, trial_days: int,
              catalog: Catalog | None = None) -> Result:
        """Start a new main subscription from ``now``, ending the current one; ``plan`` is from ``catalog`` (by
        default the version in force at ``now``), whose version the subscription keeps."""
        catalog = catalog or self.catalog_at(now)
        today = self.today(now)
        result = Result()
        old = account.plan_subscription
        if old is not None:
            if old.status is not Status.CANCELED:
                old.status = Status.CANCELED
                old.canceled_on = today
                self.record_phase(account, old, today)
            old_price = self.price_of(old)
            # in-arrears days already used are invoiced at the month close, which then ends it
            if old_price is None or old_price.timing is Timing.IN_ADVANCE:
                old.ended = True
        price = plan.prices.get(contract)
        trial_end = today + timedelta(days=trial_days) if trial_days > 0 else None
        begins = trial_end or today
        period_start, period_end = self.period_for(price, begins)
        sub = Subscription(
            product=PLAN, plan=plan.code, contract=contract,
            status=Status.TRIALING if trial_end else Status.ACTIVE,
            seats=seats, anchor=begins, period_start=period_start, period_end=period_end,
            trial_end=trial_end,
            term_anchor=begins if price is not None and price.term_months else None,
            catalog_version=catalog.version,
        )
        if price is not None and price.timing is Timing.IN_ARREARS:
            sub.period_start, sub.period_end = month_start(today), next_month_start(today)
        account.subscriptions.append(sub)
        self.record_phase(account, sub, today)
        if sub.status is Status.ACTIVE and price is not None and price.timing is Timing.IN_ADVANCE:
            draft = self.invoice(
                account,
                [recurring_line(catalog, plan, price, seats, period_start, period_end)],
                today, period_start, period_end,
            )
            if draft:
                result.invoices.append(draft)
        result.events.append(("subscription.started", {"plan": plan.code, "contract": contract, "seats": seats, "status": sub.status.value}))
        return result

    # ---------------------------------------------------------------- commands
    def subscribe(
        self, account: Account, plan_code: str, now: datetime, *, contract: str | None = None,
        seats: int | None = None, members: int | None = None, trial_days: int | None = None,
    ) -> Result:
        catalog = self.catalog_at(now)
        plan = catalog.plan(plan_code)
        if plan.eligibility:
            raise errors.EligibilityRequired(
                f"plan {plan.code!r} needs an approved {plan.eligibility} eligibility application first",
                param="plan",
            )
        contract = contract or catalog.default_contract
        if plan.prices and contract not in plan.prices:
            raise errors.UnknownContract(
                f"plan {plan.code!r} has no {contract!r} contract; choose one of: {', '.join(sorted(plan.prices))}",
                param="contract",
            )
        current = account.plan_subscription
        if current is not None and current.plan == plan.code and current.pending is not None and current.pending.cancel:
            if seats is not None and seats != current.seats:  # checked before anything changes
                self.check_seats(plan, self.price_of(current), seats)
            from .seats import set_seats, withdraw_cancellation  # seats.py builds on this module

            result = withdraw_cancellation(self, account, current, now)
            if seats is not None and seats != current.seats:  # resumed with another count: a seat change, prorated
                changed = set_seats(self, account, seats, now)
                result.invoices += changed.invoices
                result.credit_notes += changed.credit_notes
                result.events += changed.events
            return result
        if current is not None and not self.catalog_of(current).plans[current.plan].is_free and current.status is not Status.CANCELED:
            raise errors.AlreadySubscribed(
                f"the customer already has plan {current.plan!r}; use change_plan to move to {plan.code!r}",
                param="plan",
            )
        if current is not None and current.plan == plan.code:
            raise errors.PlanChangeNotAllowed(f"the customer is already on plan {plan.code!r}", param="plan")
        if members is not None:
            if members < 0:
                raise errors.InvalidValue("members cannot be negative", param="members")
            account.members = members
        price = plan.prices.get(contract)
        if seats is None:
            seats = account.members if price is not None and price.basis is Basis.SEAT else 0
        self.check_seats(plan, price, seats)
        days = catalog.trial_days if trial_days is None else trial_days
        if days < 0:
            raise errors.InvalidValue("trial_days cannot be negative", param="trial_days")
        charged_now = days == 0 and price is not None and price.unit_amount > 0
        if (plan.requires_payment_method or charged_now) and not account.can_pay:  # a trial of such a plan needs one too
            raise errors.PaymentMethodRequired(
                f"plan {plan.code!r} needs a payment method before it starts: register one first",
                param="payment_method",
            )
        if current is not None:
            rule = catalog.change_policy(current.plan, current.contract, plan.code, contract)
            if rule is When.REFUSED:
                raise errors.PlanChangeNotAllowed(f"the catalog does not allow {current.plan!r} → {plan.code!r}", param="plan")
        return self.start(account, plan, contract, seats, now, days, catalog)

    def set_members(self, account: Account, members: int, now: datetime) -> Result:
        if members < 0:
            raise errors.InvalidValue("members cannot be negative", param="members")
        before = account.members
        account.members = members
        sub = account.plan_subscription
        if sub is not None:
            self.record_phase(account, sub, self.today(now))
        return Result(events=[("customer.members_changed", {"before": before, "after": members})])

    def delete_account(self, account: Account, now: datetime) -> Result:
        """退会: the organization is deleted. Every subscription ends today, with no free plan after it and no paid
        days left as a trial; days used on post-paid plans are still invoiced at the month close, and open invoices
        stay to be paid."""
        if account.deleted_on is not None:
            raise errors.CustomerDeleted(f"customer {account.key!r} was deleted on {account.deleted_on}", param="customer")
        today = self.today(now)
        for sub in account.subscriptions:
            if not sub.ended and sub.status is not Status.CANCELED:
                self.end(account, sub, today, fallback=False)
            sub.pending = None
        account.deleted_on = today
        return Result(events=[("customer.deleted", {"deleted_on": today.isoformat()})])

    def end(self, account: Account, sub: Subscription, today: date, fallback: bool = True) -> list[InvoiceDraft]:
        """Stop a subscription; in-arrears charges for the days used are invoiced at the month close."""
        sub.status = Status.CANCELED
        sub.canceled_on = today
        sub.pending = None
        self.record_phase(account, sub, today)
        price = self.price_of(sub)
        if price is None or price.timing is Timing.IN_ADVANCE:
            sub.ended = True
        start_now = datetime.combine(today, datetime.min.time(), tzinfo=self.zone)
        catalog = self.catalog_at(start_now)
        free = catalog.fallback_plan
        if fallback and sub.product == PLAN and free and free != sub.plan:
            return self.start(account, catalog.plans[free], catalog.default_contract, 0, start_now, 0, catalog).invoices
        return []

    def set_payment_method(self, account: Account, payment_method: str, now: datetime) -> Result:
        if not payment_method or not isinstance(payment_method, str):
            raise errors.InvalidValue("payment_method must be a payment method token", param="payment_method")
        account.payment_method = payment_method
        result = Result(events=[("customer.payment_method_set", {})])
        # a new card pays what is open at once (invoices paid by bank transfer wait for the transfer)
        waiting = [inv for inv in account.open_invoices if inv.status == "open"] if account.collection == "card" else []
        if waiting:
            result.retries.extend(waiting)  # a new payment method retries at once
            return result
        sub = account.plan_subscription
        if sub is not None and sub.status is Status.SUSPENDED:
            result.invoices.extend(self.activate(account, sub, self.today(now)))
        return result

    def activate(self, account: Account, sub: Subscription, on: date) -> list[InvoiceDraft]:
        """Start (or resume) paid service on ``on``: the first in-advance period is invoiced now, at the catalog
        version the subscription moves to for a period starting ``on`` (:meth:`move_to_version`)."""
        sub.status = Status.ACTIVE
        sub.trial_end = None
        self.move_to_version(account, sub, on)
        price = self.price_of(sub)
        self.record_phase(account, sub, on)
        if price is None:
            return []
        if price.term_months and sub.term_anchor is None:
            sub.term_anchor = on
        if price.timing is Timing.IN_ARREARS:
            return []
        sub.anchor = on
        sub.period_start, sub.period_end = self.period_for(price, on)
        catalog = self.catalog_of(sub)
        draft = self.invoice(account, [recurring_line(catalog, catalog.plans[sub.plan], price, sub.seats, sub.period_start,
                                                      sub.period_end)],
                             on, sub.period_start, sub.period_end, key=f"{sub.product}:{sub.anchor.isoformat()}:{on.isoformat()}")
        return [draft] if draft else []

    def require_paid(self, account: Account) -> Subscription:
        sub = account.plan_subscription
        if sub is None or sub.status is Status.CANCELED or self.catalog_of(sub).plans[sub.plan].is_free:
            raise errors.NotSubscribed("the customer has no paid subscription; subscribe first", param="customer")
        return sub

    @staticmethod
    def drop_empty_pending(sub: Subscription) -> None:
        p = sub.pending
        if p is not None and p.plan is None and p.contract is None and p.seats is None and not p.cancel:
            sub.pending = None
