"""The due-work run: everything due by a time, in batches, with card charges made after each batch's commit.

:func:`run_due` claims due accounts, applies the schedule's next action to each (a renewal, a retry, a notice, a
trial's end) and finalizes their invoices in one short transaction (:func:`~kakin.services.billing.settle`); the
charges are made with no transaction open and their answers recorded in a second short one (:func:`record_answers`),
which the worker's settling of intents left in flight uses too (``services/payments.py``). Source: issue 10 item 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import ChargeOutcome, PaymentGateway
from kakin.domain import schedule
from kakin.domain.account import Account, OpenInvoice
from kakin.domain.lifecycle import Result

from . import mail
from .billing import audit_record, publish, settle, snapshot
from .charging import Charge, Charger, charge_deferred, refund_closed_invoice_charge
from .tenancy import Tenant


def run_due(engine_uow: Callable[[], UnitOfWork], tenant_code: str, gateway: PaymentGateway, until: datetime, *,
            batch_size: int = 1000, on_batch: Callable[[int], None] | None = None, max_batches: int | None = None,
            test_clock_id: int | None = None) -> int:
    """Do everything due by ``until``: one action per due account per batch; returns the number of actions.

    A batch is one short transaction: it claims its due accounts (``SKIP LOCKED`` on PostgreSQL), finalizes their
    invoices (numbered, written) and records a payment intent per charge. The charges are made after its commit,
    with no lock held, and their outcomes recorded in a second short transaction (:func:`record_answers`). A
    crash loses at most the uncommitted batch, which the next run redoes; a crash between a charge and its record
    leaves the intent ``pending`` for the worker to settle with the same key (never charged twice).
    """
    from .tenancy import open_tenant

    done = 0
    batches = 0

    def batch(uow: UnitOfWork) -> tuple[int, Charger]:
        """One batch: the number of actions, 0 when nothing is due (or only a stale due time was stored)."""
        tenant = open_tenant(uow, tenant_code, until)
        charger = Charger(uow, tenant.row.id, gateway, "defer")
        ids = uow.due_account_ids(tenant.row, until, batch_size, lock=True, test_clock_id=test_clock_id)
        if not ids:
            return 0, charger
        accounts = uow.load_accounts(ids)
        work = []
        for account in accounts:
            result = schedule.run_next(tenant.lifecycle, account, until)
            if result is not None:
                work.append((account, result))
        if not work:  # a stale next_due_at: store the recomputed one and stop
            settle(uow, tenant, gateway, [(a, Result()) for a in accounts], until, "worker", charger=charger)
            return 0, charger
        settle(uow, tenant, gateway, work, until, "worker", charger=charger)
        return len(work), charger

    while max_batches is None or batches < max_batches:
        n, charger = in_transaction(engine_uow, batch)  # a deadlock redoes the batch
        finish_charges(engine_uow, tenant_code, gateway, until, charger)
        if not n:
            break
        done += n
        batches += 1
        if on_batch is not None:
            on_batch(n)
    return done


def finish_charges(engine_uow: Callable[[], UnitOfWork], tenant_code: str, gateway: PaymentGateway, now: datetime,
                   charger: Charger) -> None:
    """Make the charges a committed transaction deferred, with no transaction open, then record their outcomes in
    a short one (which may defer more: a payment that reactivates a plan bills it), until none is left."""
    from .tenancy import open_tenant

    while charger.deferred:
        answers = charge_deferred(gateway, charger.deferred)
        earlier, runs = charger.uow, 0

        def record(uow: UnitOfWork, earlier: UnitOfWork = earlier,
                   answers: list[tuple[Charge, ChargeOutcome | None]] = answers) -> Charger:
            nonlocal runs
            runs += 1
            if runs == 1:  # the accounts as the batch saved them; a rerun after a deadlock reloads them all
                uow.adopt(earlier)
            tenant = open_tenant(uow, tenant_code)
            after = Charger(uow, tenant.row.id, gateway, "defer")
            record_answers(uow, tenant, gateway, answers, now, after)
            return after

        charger = in_transaction(engine_uow, record)


def record_answers(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway,
                   answers: Sequence[tuple[Charge, ChargeOutcome | None]], now: datetime, charger: Charger) -> None:
    """Record what the gateway answered for charges made after an earlier transaction: the intents' outcomes, the
    payment log, paid invoices or dunning. Locks the customers first (the store's lock order); an account saved by
    another transaction since (a command while the card was charged) is reloaded, never overwritten. No answer
    (``None``) leaves the intent ``unknown`` and its invoice open, for the worker to settle. An answer already in the
    payment log (a worker settled the intent while the batch was still charging, longer than its grace period) is
    not applied again, nor one whose intent is being given back. A charge that succeeded for an invoice closed
    meanwhile is refunded (:func:`refund_closed_invoice_charge`).

    A payment that changes nothing but its invoices (:func:`~kakin.domain.schedule.payment_changes_only_the_invoice`:
    a renewal paid) is written as that alone: the invoices paid, the payment log, the ``payment.succeeded`` event
    and its receipt, an audit record; the account is not saved again.
    Anything else (a failure and its dunning, a plan reactivated) is settled like the run's own work.
    """
    recorded = charger.record(answers)
    answers = [(c, outcome) for c, outcome in answers if c.key in recorded]  # not given back meanwhile
    accounts = {c.account.id: c.account for c, _ in answers}
    ids = [i for i in accounts if i is not None]
    changed = uow.changed_accounts(ids)  # locked: the answers applied meanwhile are final now
    applied = uow.intents.applied(ids, [c.key for c, _ in answers])
    answers = [(c, outcome) for c, outcome in answers if c.key not in applied]
    for fresh in uow.load_accounts(sorted(changed)):
        accounts[fresh.id] = fresh
    paid: list[tuple[Charge, ChargeOutcome]] = []
    answered: list[tuple[Charge, ChargeOutcome]] = []
    for c, outcome in answers:
        account = accounts[c.account.id]
        inv = next((o for o in account.open_invoices if o.id == c.inv.id), None)
        if outcome is None or inv is None:  # unanswered; or no longer open (closed otherwise while it was charged)
            if inv is None and outcome is not None and outcome.ok:
                refund_closed_invoice_charge(uow, c.account.id or 0, c.key, c.inv.number, charger.wall())
            continue
        if account is not c.account:  # reloaded: the same invoices, as stored now
            covered = {o.id for o in c.carried}
            c = replace(c, account=account, inv=inv, carried=[o for o in account.open_invoices if o.id in covered])
        simple = outcome.ok and all(schedule.payment_changes_only_the_invoice(account, o) for o in (inv, *c.carried))
        (paid if simple else answered).append((c, outcome))
    if paid:
        _record_paid(uow, tenant, paid, now)
    if answered:
        involved = list({id(c.account): c.account for c, _ in answered}.values())
        settle(uow, tenant, gateway, [(a, Result()) for a in involved], now, "worker", charger=charger,
               answered=answered)


def _record_paid(uow: UnitOfWork, tenant: Tenant, paid: Sequence[tuple[Charge, ChargeOutcome]], now: datetime) -> None:
    """Payments that change nothing but their invoices: the invoices paid, one attempt row per invoice, an audit
    record per account listing the events, the events (webhooks, the receipt)."""
    rows: list[dict[str, Any]] = []
    invoices: list[OpenInvoice] = []
    noted: list[tuple[Account, dict[str, Any]]] = []
    for c, outcome in paid:
        for inv in (c.inv, *c.carried):
            done = schedule.payment_succeeded(tenant.lifecycle, c.account, inv, c.at)
            invoices.append(inv)
            rows.append({"invoice_id": inv.id, "at": c.at, "customer_id": c.account.id,
                         "payment_method": c.payment_method, "amount": inv.total, "outcome": "succeeded",
                         "code": outcome.code, "idempotency_key": c.key, "reference": outcome.reference})
            noted.extend((c.account, {"event": name, "at": c.at, **details}) for name, details in done.events)
    uow.add_payment_attempts(rows)
    uow.mark_invoices_paid([inv.id for inv in invoices if inv.id], now)
    by_account: dict[int, tuple[Account, list[dict[str, Any]]]] = {}
    for account, event in noted:
        by_account.setdefault(id(account), (account, []))[1].append(event)
    uow.audit([audit_record(tenant, a, events[0]["at"], "worker", events[0]["event"], None, {**snapshot(a), "events": events})
               for a, events in by_account.values()])
    publish(uow, tenant, noted, now)
    mail.enqueue(uow, tenant, noted, now)
