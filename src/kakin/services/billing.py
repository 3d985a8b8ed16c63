"""Billing commands and what they and the due-work run (``due_run.py``) share.

Every command loads one account aggregate, applies a domain rule, then
:func:`settle` persists what it produced: invoices get gapless numbers and are
charged, payment outcomes feed dunning, the account and an audit record are
saved, all in the caller's transaction.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import ChargeOutcome, PaymentGateway
from kakin.domain import errors, messaging, plan_changes, schedule
from kakin.domain import seats as seat_rules
from kakin.domain.account import Account, OpenInvoice, Status
from kakin.domain.calendar import instant_text, start_of_day
from kakin.domain.invoice import CreditNoteDraft
from kakin.domain.lifecycle import Result

from . import mail
from .charging import Charge, Charger
from .tenancy import Tenant

BANK_TRANSFER = "bank_transfer"
log = logging.getLogger("kakin.billing")


def snapshot(account: Account) -> dict[str, Any]:
    sub = account.plan_subscription
    out: dict[str, Any] = {"members": account.members, "credit": account.credit,
                           "payment_method": bool(account.payment_method), "collection": account.collection}
    if sub is not None:
        out.update(plan=sub.plan, contract=sub.contract, status=sub.status.value, seats=sub.seats)
        if sub.pending:
            out["pending"] = {"effective_on": sub.pending.effective_on.isoformat(), "plan": sub.pending.plan,
                              "seats": sub.pending.seats, "cancel": sub.pending.cancel}
    for other in account.subscriptions:
        if other.product != "plan" and not other.ended:
            out[other.product] = other.value
    return out


def settle(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, work: Sequence[tuple[Account, Result]],
           now: datetime, actor: str, action: str | None = None, before: dict[int, dict[str, Any]] | None = None,
           purchase: bool = False, *, charger: Charger | None = None,
           answered: Sequence[tuple[Charge, ChargeOutcome]] = ()) -> None:
    """Persist results for a batch of accounts: invoices, charges, dunning, account state, audit.

    Each new invoice is charged first, then numbered (gapless per tenant; the
    tenant's counter is locked only from the numbering to the commit, never
    while a card is charged) and written once with the outcome. One audit record per account
    names the action and lists every event it caused, with the state before
    and after; a command that changed nothing (no event, the same state before and after: a second cancel) leaves
    no record.

    ``purchase``: the work is a command the customer makes on session (a
    sign-up, an upgrade, more seats, an add-on) whose own invoices are charged
    at once. A declined charge refuses it whole (:class:`~kakin.domain.errors.CardDeclined`,
    the caller's transaction rolls back; no invoice number was taken yet) and its
    attempt stays in the payment log, without an invoice. A sign-up whose charge
    needs 3-D Secure is ``incomplete`` until the customer completes it (SPEC 3.2,
    issue 9 item 6).
    """
    lc = tenant.lifecycle
    if charger is None:
        charger = Charger(uow, tenant.row.id, gateway, "outside" if uow.charges_outside else "inline")
    events: dict[int, list[dict[str, Any]]] = {}
    attempts: list[dict[str, Any]] = []
    numbered: dict[str, str] = {}  # placeholder → invoice number
    todo = list(work)
    for round_no in range(20):
        if not todo:
            break
        new = [(a, d, r.at or now) for a, r in todo for d in r.invoices]
        on_session = purchase and round_no == 0  # the command's own invoices, not what their payments led to
        counts = uow.invoice_counts([a.id for a, d, _ in new if a.id is not None and not d.billing_key])
        refused = charger.purchases_not_made([a.id for a, _, _ in new if a.id is not None]) if on_session else {}
        fresh: list[tuple[Account, Any, OpenInvoice, datetime]] = []
        charges: list[tuple[Account, OpenInvoice, datetime]] = []
        for k, (account, draft, at) in enumerate(new):
            # numbered after the charges (below): until then a placeholder, replaced in every event that names it
            inv = OpenInvoice(0, f"(unnumbered {round_no}.{k})", draft.total, status="open" if draft.total > 0 else "paid")
            # Invoice numbers of a rolled-back batch are handed out again, so the gateway key names what is billed:
            # the scheduled period, or the customer's n-th invoice and its amount.
            counts[account.id or 0] = counts.get(account.id or 0, 0) + 1
            what = draft.billing_key or f"n{counts[account.id or 0]}:{draft.total}"
            if refused.get(account.id or 0):  # a purchase tried again after a decline is a new payment at the gateway
                what += f":r{refused[account.id or 0]}"
            inv.charge_key = f"{tenant.code}:c{account.id}:{what}"
            fresh.append((account, draft, inv, at))
            _note(events, account, at, "invoice.finalized", {"number": inv.number, "total": draft.total, "tax": draft.tax_amount})
            if inv.status == "open":
                charges.append((account, inv, at))
        for account, result in todo:
            for name, details in result.events:
                _note(events, account, result.at or now, name, details)
            charges.extend((account, inv, result.at or now) for inv in result.retries)
        followups: list[tuple[Account, Result]] = []
        outcomes: list[tuple[OpenInvoice, dict[str, Any]]] = []

        def answer(c: Charge, outcome: ChargeOutcome, outcomes: list[tuple[OpenInvoice, dict[str, Any]]] = outcomes,
                   followups: list[tuple[Account, Result]] = followups) -> None:
            """What the gateway answered for a charge: the payment log, then the invoice paid or dunned."""
            account, inv, at = c.account, c.inv, c.at
            ok, code, waiting = outcome.ok, outcome.code, outcome.requires_action
            if c.purchase and not ok and not (waiting and _signup(account)):
                _refuse_purchase(uow, account, at, c.amount, c.key, outcome)
            for paid in (inv, *c.carried):  # one attempt row per invoice the payment covers, each with its amount
                outcomes.append((paid, {"at": at, "customer_id": account.id, "payment_method": c.payment_method,
                                        "amount": paid.total,
                                        "outcome": "succeeded" if ok else "requires_action" if waiting else "failed",
                                        "code": code, "idempotency_key": c.key, "reference": outcome.reference}))
            for paid in c.carried:
                if ok:
                    done = schedule.payment_succeeded(lc, account, paid, at)
                    done.at = at
                    followups.append((account, done))
                else:
                    paid.deferred = True  # still waiting for a charge to join
            settled(account, inv, at, ok, code, bool(c.purchase) and waiting)

        def settled(account: Account, inv: OpenInvoice, at: datetime, ok: bool, code: str | None, incomplete: bool,
                    followups: list[tuple[Account, Result]] = followups) -> None:
            if ok:
                follow = schedule.payment_succeeded(lc, account, inv, at)
            else:
                if inv not in account.open_invoices:
                    account.open_invoices.append(inv)
                if incomplete:
                    follow = schedule.payment_incomplete(lc, account, inv, at)
                else:
                    follow = schedule.payment_failed(lc, account, inv, at, code)
            follow.at = at
            followups.append((account, follow))

        if round_no == 0:
            for c, outcome in answered:  # charges made after an earlier transaction, answered now
                answer(c, outcome)
        # an invoice whose earlier charge has no recorded outcome yet is not charged again meanwhile
        busy = charger.in_flight([inv.id for _, inv, _ in charges if inv.id])
        keys = [f"{inv.charge_key or f'{tenant.code}:{inv.number}'}:{inv.attempts + 1}" for _, inv, _ in charges]
        charger.look_up(keys, {a.id for a, _, _ in charges if a.id is not None})
        for (account, inv, at), key in zip(charges, keys, strict=True):
            if inv.id in busy:
                continue
            if account.collection == BANK_TRANSFER:
                if inv.id == 0:  # a new invoice: payable by bank transfer until its due date, then it is overdue
                    inv.due_on = (at.astimezone(lc.zone).date() + timedelta(days=tenant.catalog.bank_transfer_due_days))
                    inv.next_retry_at = start_of_day(inv.due_on + timedelta(days=1), lc.zone)
                    if inv not in account.open_invoices:
                        account.open_invoices.append(inv)
                    continue
                settled(account, inv, at, False, "overdue", False)  # the due date passed: the same dunning as cards
                continue
            if not account.payment_method:
                settled(account, inv, at, False, "payment_method_required", False)
                continue
            # invoices too small for the gateway wait, open, and are charged together with the next one
            carried = [o for o in account.open_invoices if o.deferred and o.status == "open" and o is not inv]
            amount = inv.total + sum(o.total for o in carried)
            if amount < gateway.minimum_charge:
                schedule.defer_small_balance(lc, inv, at)
                if inv not in account.open_invoices:
                    account.open_invoices.append(inv)
                _note(events, account, at, "invoice.deferred", {"number": inv.number, "total": inv.total,
                                                                "minimum_charge": gateway.minimum_charge})
                continue
            c = Charge(account, inv, carried, at, key, amount, account.payment_method, account.gateway_customer,
                       purchase=action if on_session and inv.id == 0 else None)
            told = charger.outcome(c)
            if told is None:  # charged after this transaction: the invoice stays open, its outcome comes later
                if inv not in account.open_invoices:
                    account.open_invoices.append(inv)
                inv.next_retry_at = None  # not due again while the charge is in flight
                for o in carried:  # nor written off: the charge in flight pays them too
                    o.deferred = False
                continue
            answer(c, told)
        charger.stop_for_charges()  # charges to make with no lock held: the transaction rolls back and runs again
        # The tenant's invoice counter is locked from here to the commit (the store's lock order: tenant last), never
        # while a card is charged: the numbers of a rolled-back transaction are handed out again, gapless.
        first = uow.reserve_invoice_numbers(tenant.row, len(fresh))
        for k, (_, _, inv, _) in enumerate(fresh):
            number = uow.invoice_number(tenant.row, first + k)
            numbered[inv.number] = number
            inv.number = number
        stored = uow.add_invoices(tenant.row, first, [(a, d, inv) for a, d, inv, _ in fresh], now,
                                  tax_inclusive=tenant.catalog.tax_inclusive, tax_rate=tenant.catalog.tax_rate)
        for (_, _, inv, _), invoice_id in zip(fresh, stored, strict=True):
            inv.id = invoice_id
        for account, result in todo:
            for note in result.credit_notes:
                _credit_note(uow, tenant, account, note, result.at or now, events)
        attempts.extend({"invoice_id": inv.id, **row} for inv, row in outcomes)
        charger.written()  # intents of this round's charges, now that their invoices have ids
        todo = [(a, r) for a, r in followups if r.invoices or r.retries or r.events or r.credit_notes]
    else:
        raise RuntimeError("payment follow-ups did not settle")
    for noted in events.values():
        for event in noted:
            if event.get("number") in numbered:
                event["number"] = numbered[event["number"]]
    accounts = list({id(a): a for a, _ in work}.values())
    for a in accounts:  # small balances no later charge can take are written off, never left open forever
        for name, details in schedule.write_off_stranded(lc, a, now).events:
            _note(events, a, now, name, details)
    audit = []
    for a in accounts:
        noted = events.get(id(a), [])
        if action is None and not noted:
            continue
        state, was = snapshot(a), (before or {}).get(a.id or 0)
        if not noted and was == state:
            continue
        after = {**state, "events": noted} if noted else state
        audit.append(audit_record(tenant, a, noted[0]["at"] if action is None else now, actor, action or noted[0]["event"],
                            was, after))
    uow.add_payment_attempts(attempts)
    uow.save_accounts(tenant.row, accounts, now, {a.id: schedule.next_due(lc, a) for a in accounts})  # type: ignore[misc]
    uow.audit(audit)
    everything = [(a, e) for a in accounts for e in events.get(id(a), [])]
    publish(uow, tenant, everything, now)
    mail.enqueue(uow, tenant, everything, now)


def _credit_note(uow: UnitOfWork, tenant: Tenant, account: Account, note: CreditNoteDraft, at: datetime,
                 events: dict[int, list[dict[str, Any]]]) -> None:
    """Write a credit note the domain issued (its total is already on the credit balance) against the invoice of
    the period it reduces."""
    invoice_id = uow.invoice_reduced_by(account.id or 0, note.period_start, note.issued_on)
    if invoice_id is None:  # nothing was invoiced to reduce: the credit stays on the balance alone
        _note(events, account, at, "credit.added", {"total": note.total})
        return
    reason = " / ".join(f"{ln.description}（{ln.formula}）" for ln in note.lines)
    number = uow.add_credit_note(tenant.row, account.id or 0, invoice_id, at, note.issued_on, amount=note.amount,
                                 tax=note.tax_amount, total=note.total, reason=reason, settlement="credit",
                                 taxes=note.taxes, lines=note.lines)
    _note(events, account, at, "credit_note.issued", {"number": number, "total": note.total, "tax": note.tax_amount,
                                                      "settlement": "credit"})


def _signup(account: Account) -> bool:
    """The command started the customer's paid plan (a subscription not stored yet), rather than changing one."""
    sub = account.plan_subscription
    return sub is not None and sub.id is None and sub.status is Status.ACTIVE


def _refuse_purchase(uow: UnitOfWork, account: Account, at: datetime, amount: int, key: str, outcome: Any) -> None:
    """A purchase's charge was declined: refuse the command; its attempt outlives the rollback, with no invoice."""
    row = {"invoice_id": None, "customer_id": account.id, "at": at, "payment_method": account.payment_method,
           "amount": amount, "outcome": "failed", "code": outcome.code, "idempotency_key": key,
           "reference": outcome.reference}
    uow.keep_if_rolled_back(lambda: uow.add_payment_attempts([row]) if uow.customer_exists(account.id) else None)
    decline = outcome.code if outcome.code not in (None, "card_declined") else "generic_decline"
    if outcome.requires_action:
        message = ("the card needs 3-D Secure, which a change to a running plan cannot wait for; nothing was changed or "
                   "charged: register a card that does not ask for it, or try again")
    else:
        message = (f"the card was declined ({decline}); nothing was changed or charged: register another payment "
                   "method and try again")
    raise errors.CardDeclined(message, decline_code=decline)


PUBLIC_EVENT_PREFIXES = ("subscription.", "invoice.", "payment.", "addon.", "customer.")


def publish(uow: UnitOfWork, tenant: Tenant, noted: Sequence[tuple[Account, dict[str, Any]]], now: datetime) -> None:
    """Queue webhook events for the tenant's endpoints (delivered by the worker)."""

    endpoints = [e for e in uow.webhooks.endpoints_of(tenant.row.id) if e["enabled"]]
    if not noted or not endpoints:
        return
    events = []
    for account, event in noted:
        name = str(event["event"])
        if name.startswith(PUBLIC_EVENT_PREFIXES):
            data = {k: v for k, v in event.items() if k not in ("event", "at")}
            events.append({"id": "evt_" + secrets.token_hex(12), "type": name,
                           "created": instant_text(event["at"], tenant.lifecycle.zone),
                           "customer": account.key, "data": data})
    uow.webhooks.record_events(tenant.row.id, events, now, endpoints)


def _note(events: dict[int, list[dict[str, Any]]], account: Account, at: datetime, name: str, details: dict[str, Any]) -> None:
    events.setdefault(id(account), []).append({"event": name, "at": at, **details})


def audit_record(tenant: Tenant, account: Account, at: datetime, actor: str, action: str,
                 before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """An audit-log row for the account: who (``actor``) did what (``action``) at ``at``, the state before and after
    (:func:`snapshot` dicts, or None)."""
    return {"tenant_id": tenant.row.id, "customer_id": account.id, "at": at, "actor": actor, "action": action,
            "before": before, "after": after}


# ------------------------------------------------------------------ commands
def create_customer(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, name: str, now: datetime, *,
                    payment_method: str | None = None, members: int = 0, rng: random.Random | None = None,
                    actor: str = "system", test_clock_id: int | None = None, sign_in_group: str | None = None) -> Account:
    if not key or not isinstance(key, str):
        raise errors.InvalidValue("a customer needs an id", param="id")
    if not name or not isinstance(name, str):
        raise errors.InvalidValue(f"customer {key!r} needs a name", param="name")
    if uow.account_id(tenant.row, key) is not None:
        raise errors.CustomerExists(f"customer {key!r} already exists", param="id")
    if payment_method is not None and not gateway.is_known(payment_method):
        raise errors.PaymentMethodUnknown(f"payment method {payment_method!r} is not known to the payment gateway",
                                          param="payment_method")
    account = tenant.lifecycle.open_account(key, name, now, payment_method, members)
    account.sign_in_group = sign_in_group
    if payment_method is not None:
        account.gateway_customer, account.payment_method = gateway.attach(payment_method, key, None)
    if "premium_id" in tenant.catalog.addons:  # accounts that can take a premium ID get a basic ID
        account.basic_id = messaging.new_basic_id(rng or random.Random(), lambda b: uow.basic_id_taken(tenant.row, b))
    uow.add_account(tenant.row, account, now, test_clock_id)
    settle(uow, tenant, gateway, [(account, Result())], now, actor, "customer.created", {})
    return account


def load(uow: UnitOfWork, tenant: Tenant, key: str, lock: bool = True) -> Account:
    account_id = uow.account_id(tenant.row, key, lock=lock)
    if account_id is None:
        raise errors.NotFound(f"no customer {key!r} in tenant {tenant.code!r}", param="customer")
    return uow.load_accounts([account_id])[0]


def catch_up(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, account: Account, now: datetime) -> int:
    """Do the account's work that fell due before ``now`` (the worker may not have reached it yet)."""
    for done in range(10_000):
        result = schedule.run_next(tenant.lifecycle, account, now)
        if result is None:
            return done
        settle(uow, tenant, gateway, [(account, result)], now, "worker")
    raise RuntimeError(f"customer {account.key!r}: due work does not settle")


def _command(action: str, rule: Callable[..., Result | Any], with_gateway: bool = False,
             purchase: bool = False) -> Callable[..., Account]:
    def run(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, now: datetime, *args: Any,
            actor: str = "system", **kwargs: Any) -> Account:
        account = load(uow, tenant, key)
        if account.deleted_on is not None:
            raise errors.CustomerDeleted(f"customer {key!r} was deleted on {account.deleted_on}; it cannot be changed",
                                         param="customer")
        caught_up = catch_up(uow, tenant, gateway, account, now)
        before = snapshot(account)

        def apply() -> None:
            result = rule(tenant, gateway if with_gateway else uow, account, now, *args, **kwargs)
            settle(uow, tenant, gateway, [(account, result if isinstance(result, Result) else Result())], now, actor,
                   action, {account.id or 0: before}, purchase=purchase)

        if caught_up:  # a refusal keeps the work that fell due: it is committed, the command's part is not
            with uow.keeping_earlier_work():
                apply()
        else:
            apply()
        return account

    run.__name__ = action.replace(".", "_")
    run.__doc__ = (f"The {action} command: load and lock the account, do what fell due, apply the rule, settle; the "
                   "customer's row stays locked from the load to the commit (issue 10 item 1).")
    return run


# Purchases (purchase=True) charge their own invoices at once and are refused whole when the card is declined.
subscribe = _command("subscription.subscribe", lambda t, u, a, now, plan, **kw: t.lifecycle.subscribe(a, plan, now, **kw),
                     purchase=True)
set_seats = _command("subscription.set_seats", lambda t, u, a, now, seats: seat_rules.set_seats(t.lifecycle, a, seats, now),
                     purchase=True)
set_members = _command("customer.set_members", lambda t, u, a, now, members: t.lifecycle.set_members(a, members, now))
change_plan = _command("subscription.change_plan",
                       lambda t, u, a, now, plan, **kw: plan_changes.change_plan(t.lifecycle, a, plan, now, **kw),
                       purchase=True)
delete_customer = _command("customer.deleted", lambda t, u, a, now: t.lifecycle.delete_account(a, now))
cancel = _command("subscription.cancel", lambda t, u, a, now: plan_changes.cancel(t.lifecycle, a, now))
set_premium_id = _command(
    "addon.premium_id",
    lambda t, u, a, now, premium_id, billing="monthly": messaging.set_premium_id(
        t.lifecycle, a, premium_id, billing, now, lambda v: u.addon_value_taken(t.row, "premium_id", v)),
    purchase=True,
)


def set_payment_method(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, now: datetime,
                       payment_method: str, actor: str = "system") -> Account:
    if not isinstance(payment_method, str) or not gateway.is_known(payment_method):
        raise errors.PaymentMethodUnknown(f"payment method {payment_method!r} is not known to the payment gateway",
                                          param="payment_method")
    return _set_pm(uow, tenant, gateway, key, now, payment_method, actor=actor)


def _attach_and_set(t: Tenant, gateway: PaymentGateway, a: Account, now: datetime, pm: str) -> Result:
    a.gateway_customer, attached = gateway.attach(pm, a.key, a.gateway_customer)
    return t.lifecycle.set_payment_method(a, attached, now)


_set_pm = _command("customer.set_payment_method", _attach_and_set, with_gateway=True)
