"""Charges outside the database transaction (issue 10 item 3): payment intents and the three ways to charge.

A charge kakin means to make is a :class:`Charge` with a gateway idempotency key. :func:`settle
<kakin.services.billing.settle>` asks a :class:`Charger` for each one's outcome, which answers in one of three
modes:

- ``defer`` (the due-work run): the invoice is finalized (numbered, written) with an intent ``pending`` in the
  batch's transaction; the run charges after the commit, with no lock held, and records the outcomes in a
  second short transaction (:func:`kakin.services.due_run.run_due`).
- ``outside`` (a command run by :func:`~kakin.adapters.db.store.in_transaction`, as every API write is): the
  command stops with :class:`~kakin.adapters.db.store.ChargesNeeded`, its transaction rolls back, :func:`perform`
  records each intent, charges and records the outcome, each step in a short transaction of its own or none,
  and the command runs again under its lock, finding the outcomes recorded. A purchase is therefore charged
  before its invoice exists: declined, it is refused whole with no invoice (numbers stay gapless).
- ``inline`` (a unit of work opened by hand: tests, the scenario simulator): charged at once in the transaction,
  as a single process with an in-process gateway can afford.

An outcome once recorded is never asked for again: a rerun, a crash and its redo, or another worker reaching the
same due work use the recorded outcome (the key names what is billed). Intents left ``pending`` or ``unknown``
are settled by the worker (:func:`kakin.services.payments.settle_intents`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kakin.adapters.db.intents_repo import PaymentIntentRepository as IntentRepo
from kakin.adapters.db.store import ChargesNeeded, UnitOfWork
from kakin.adapters.payments import ChargeOutcome, GatewayUnavailable, PaymentGateway
from kakin.domain import errors
from kakin.domain.account import Account, OpenInvoice

log = logging.getLogger("kakin.charging")
Wall = Callable[[], datetime]

UNANSWERED = ("the payment gateway did not answer; nothing was changed: send the same request again (the charge is "
              "retried with the same key, so the card is never charged twice; a charge the gateway made for a "
              "purchase that is not retried is refunded by the worker within minutes)")


def wall_clock() -> datetime:
    """The real time, for intents' timestamps: how long a charge has been in flight is real time, also for a
    customer on a test clock."""
    return datetime.now(UTC)


@dataclass
class Charge:
    """One payment asked of the gateway: ``amount`` yen for ``inv`` and the small balances ``carried`` with it."""

    account: Account
    inv: OpenInvoice
    carried: list[OpenInvoice]
    at: datetime
    key: str
    amount: int
    payment_method: str | None
    gateway_customer: str | None
    purchase: str | None = None  # the command's action, for a purchase's own charge (its invoice is not written yet)
    row: dict[str, Any] | None = field(default=None, repr=False)  # its intent as stored, when one exists
    answer: ChargeOutcome | None = field(default=None, repr=False)  # what the gateway answered, once asked here


def outcome_of(row: dict[str, Any]) -> ChargeOutcome:
    """A recorded intent's outcome as the gateway gave it."""
    code = row["code"]
    return ChargeOutcome(ok=row["status"] == "succeeded", code=code, reference=row["reference"],
                         requires_action=code == "authentication_required")


def status_of(outcome: ChargeOutcome | None) -> str:
    return "unknown" if outcome is None else "succeeded" if outcome.ok else "failed"


def call(gateway: PaymentGateway, c: Charge) -> ChargeOutcome | None:
    """Ask the gateway for the charge (the stored intent's parameters when it was asked before: the same key must
    carry the same request); None when no answer came (the charge may have been made)."""
    if c.row is not None:
        return ask(gateway, c.row)
    return ask(gateway, {"payment_method": c.payment_method or "", "amount": c.amount, "idempotency_key": c.key,
                         "gateway_customer": c.gateway_customer})


def ask(gateway: PaymentGateway, intent: dict[str, Any]) -> ChargeOutcome | None:
    """Send an intent's charge (payment_method, amount, idempotency_key, gateway_customer) to the gateway; None when
    no answer came. Sent again with the same key, it is answered with what the gateway did the first time."""
    try:
        return gateway.charge(intent["payment_method"], intent["amount"], intent["idempotency_key"],
                              customer=intent["gateway_customer"])
    except GatewayUnavailable as exc:
        log.warning("charge %s: the payment gateway did not answer (%s)", intent["idempotency_key"], exc)
        return None


def intent_row(tenant_id: int, c: Charge, status: str, at: datetime, outcome: ChargeOutcome | None = None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "customer_id": c.account.id, "invoice_id": c.inv.id or None,
            "covers": [o.id for o in c.carried if o.id] or None, "purchase": c.purchase, "amount": c.amount,
            "payment_method": c.payment_method or "", "gateway_customer": c.gateway_customer,
            "idempotency_key": c.key, "status": status, "code": outcome.code if outcome else None,
            "reference": outcome.reference if outcome else None, "attempts": 0 if status == "pending" else 1, "at": at}


class Charger:
    """Outcomes for one settle: recorded ones, else a charge made now (``inline``), after a rerun (``outside``) or
    after the commit (``defer``; :attr:`deferred` lists them for the caller)."""

    def __init__(self, uow: UnitOfWork, tenant_id: int, gateway: PaymentGateway, mode: str, wall: Wall = wall_clock):
        assert mode in ("inline", "outside", "defer")
        self.uow, self.tenant_id, self.gateway, self.mode, self.wall = uow, tenant_id, gateway, mode, wall
        self.known: dict[str, dict[str, Any]] = {}
        self.needed: list[Charge] = []
        self.deferred: list[Charge] = []
        self._new: list[tuple[Charge, str, ChargeOutcome | None]] = []
        self._links: list[Charge] = []

    def in_flight(self, invoice_ids: Iterable[int]) -> set[int]:
        """Invoices with a charge whose outcome is not recorded yet."""
        ids = list(invoice_ids)
        return self.uow.intents.in_flight(ids) if ids else set()

    def purchases_not_made(self, customer_ids: list[int]) -> dict[int, int]:
        """How many purchases each customer tried that did not happen: declined (in the payment log without an
        invoice) or charged and refunded (their intents given back). A purchase tried again after one is a new
        payment at the gateway (a new key)."""
        counts = self.uow.refused_attempt_counts(customer_ids)
        for customer_id, n in self.uow.intents.given_back_counts(customer_ids).items():
            counts[customer_id] = counts.get(customer_id, 0) + n
        return counts

    def look_up(self, keys: Sequence[str], customer_ids: Iterable[int]) -> None:
        """Read the intents of these keys (one query). A due-work batch (``defer``) reads only its customers'
        intents that name no invoice yet (a command's charge whose command never committed): any other intent
        of a key it bills belongs to an invoice already written, which the batch would not bill again."""
        if self.mode == "defer":
            self.known.update(self.uow.intents.unlinked(customer_ids))
        elif keys:
            self.known.update(self.uow.intents.by_keys([k for k in keys if k not in self.known]))

    def outcome(self, c: Charge) -> ChargeOutcome | None:
        """The charge's outcome, or None when it is made later (``outside``, ``defer``)."""
        row = c.row = self.known.get(c.key)
        if row is not None and row["status"] in ("succeeded", "failed"):
            if row["invoice_id"] is None:
                self._links.append(c)
            return outcome_of(row)
        if row is not None and row["status"] in IntentRepo.REFUNDED:  # given back: this purchase must start afresh
            raise errors.PaymentGatewayUnavailable(UNANSWERED, param="payment_method")
        if self.mode == "inline":
            outcome = call(self.gateway, c)
            if outcome is None:
                raise errors.PaymentGatewayUnavailable(UNANSWERED, param="payment_method")
            if row is None:
                self._new.append((c, status_of(outcome), outcome))
            else:
                self.uow.intents.record_outcome(c.key, status_of(outcome), outcome.code, outcome.reference,
                                            self.wall())
                if row["invoice_id"] is None:
                    self._links.append(c)
            return outcome
        if self.mode == "outside":
            self.needed.append(c)
            return None
        if row is None:
            self._new.append((c, "pending", None))
        elif row["invoice_id"] is None:
            self._links.append(c)
        self.deferred.append(c)
        return None

    def record(self, answers: Sequence[tuple[Charge, ChargeOutcome | None]]) -> set[str]:
        """Record the gateway's answers on their intents (``unknown`` where none came); returns the keys recorded,
        without those being given back (:meth:`PaymentIntentRepository.record_outcomes`)."""
        return self.uow.intents.record_outcomes([
            (c.key, status_of(outcome), outcome.code if outcome else None, outcome.reference if outcome else None)
            for c, outcome in answers], self.wall())

    def stop_for_charges(self) -> None:
        """``outside``: raise :class:`ChargesNeeded` for the charges asked for, to be made with no lock held."""
        if self.needed:
            needed, self.needed = self.needed, []
            raise ChargesNeeded(functools.partial(perform, self.gateway, self.tenant_id, needed, self.wall),
                                functools.partial(give_back_unused, needed, self.wall))

    def written(self) -> None:
        """After the round's invoices are numbered and written: store the new intents and name the invoices of
        recorded ones (a purchase given back meanwhile refuses the command: try again)."""
        if self._new:
            at = self.wall()
            self.uow.intents.add([intent_row(self.tenant_id, c, status, at, outcome)
                                              for c, status, outcome in self._new])
            for c, status, _ in self._new:
                self.known[c.key] = {"status": status, "invoice_id": c.inv.id or None}
            self._new = []
        for c in self._links:
            if c.inv.id and not self.uow.intents.link(c.key, c.inv.id):
                raise errors.PaymentGatewayUnavailable(UNANSWERED, param="payment_method")
            if c.key in self.known:
                self.known[c.key]["invoice_id"] = c.inv.id or None
        self._links = []


def perform(gateway: PaymentGateway, tenant_id: int, needed: Sequence[Charge], wall: Wall,
            begin: Callable[[], UnitOfWork]) -> None:
    """Make the charges a command asked for, with no database transaction open: for each, record the intent
    (``pending``) in a short transaction, call the gateway, record the outcome in another. A gateway that does not
    answer leaves the intent ``unknown`` and refuses the command (503 ``payment_gateway_unavailable``)."""
    for c in needed:
        with begin() as uow:
            c.row = uow.intents.by_keys([c.key]).get(c.key)
            if c.row is None:
                uow.intents.add([intent_row(tenant_id, c, "pending", wall())])
            elif c.row["status"] not in IntentRepo.IN_FLIGHT:
                continue  # answered meanwhile (another request, the worker): the rerun reads it
            else:
                uow.intents.claim(c.key, wall())  # the worker leaves it alone for its grace period
        outcome = c.answer = call(gateway, c)
        with begin() as uow:
            closed = False
            if outcome is not None and outcome.ok and c.inv.id and c.account.id is not None:
                uow.lock_customer(c.account.id)  # against a bank transfer recorded for the invoice at this moment
                closed = uow.invoice_records.status(c.inv.id) != "open"
            uow.intents.record_outcome(c.key, status_of(outcome), outcome.code if outcome else None,
                                        outcome.reference if outcome else None, wall())
            if closed:  # closed while the card was charged: given back now, even if this process dies next
                refund_closed_invoice_charge(uow, c.account.id or 0, c.key, c.inv.number, wall())
        if outcome is None:
            raise errors.PaymentGatewayUnavailable(UNANSWERED, param="payment_method")


def refund_closed_invoice_charge(uow: UnitOfWork, customer_id: int, key: str, number: str, at: datetime) -> None:
    """A charge that succeeded for an invoice no longer open: closed otherwise while the card was being charged (paid by
    bank transfer, voided, written off). The customer must not pay twice: the intent is marked ``refunding`` and the
    worker's next pass refunds it at the gateway (:func:`kakin.services.payments.settle_intents`). Nothing is done when
    this very charge's answer was already recorded on the invoice (a worker settled it while the run was still
    charging): then it is what paid the invoice. Call under the customer's lock, after the outcome is recorded."""
    if uow.intents.applied([customer_id], [key], paid=True):  # the same key always gets the same answer: this paid it
        return
    if uow.intents.give_back(key, "refunding", at, was=("succeeded",), unlinked=False):
        log.warning("charge %s succeeded for invoice %s, which was closed meanwhile: it is refunded", key, number)


def refund_unapplied_charges(uow: UnitOfWork, customer_id: int, invoice_id: int, number: str, at: datetime) -> None:
    """The invoice is being closed otherwise (a bank transfer recorded, written off): a card charge that succeeded for
    it but whose answer was never applied to it (a command charged the card, recorded the outcome, and its process
    died before the command committed) is given back (:func:`refund_closed_invoice_charge`); without this no later
    pass would look at it, and the customer would pay twice. Call under the customer's lock, with the invoice's id
    and number (``at``: the wall clock). A command still charging is covered by :func:`perform`, which checks the invoice under
    the same lock when it records its answer."""
    for key in uow.intents.succeeded_for(invoice_id):
        refund_closed_invoice_charge(uow, customer_id, key, number, at)


def give_back_unused(charges: Sequence[Charge], wall: Wall, begin: Callable[[], UnitOfWork]) -> None:
    """After a command that charged outside its transaction has ended (committed or refused): a charge it made for an
    existing invoice that succeeded but was not applied to it, because the invoice was closed meanwhile (a bank
    transfer recorded, voided, written off before the command ran again), is given back
    (:func:`refund_closed_invoice_charge`). An invoice still open keeps the answer for its next retry, which sends the
    same key; a purchase's charge without its invoice is refunded by the worker already."""
    for c in charges:
        if c.answer is None or not c.answer.ok or not c.inv.id or c.account.id is None:
            continue
        with begin() as uow:
            uow.lock_customer(c.account.id)
            if uow.invoice_records.status(c.inv.id) != "open":
                refund_closed_invoice_charge(uow, c.account.id, c.key, c.inv.number, wall())


def charge_deferred(gateway: PaymentGateway, deferred: Sequence[Charge]) -> list[tuple[Charge, ChargeOutcome | None]]:
    """Make the charges a due-work batch finalized, with no transaction open; None for each that got no answer."""
    return [(c, call(gateway, c)) for c in deferred]
