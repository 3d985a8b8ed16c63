"""Payment intents (``payment_intents``): the charges kakin means to make, recorded before the gateway is called.

One repository on the unit of work's connection (``uow.intents``), like the others in this package. A row is written
``pending`` with the charge's idempotency key before the gateway is called; its outcome (``succeeded``, ``failed``,
or ``unknown`` when the gateway did not answer) is recorded in a short transaction after the call. The worker
settles rows left ``pending`` or ``unknown`` (``services.payments.settle_intents``). Money taken with nothing to
pay is given back, ``refunding`` then ``refunded``: a purchase charged without an invoice (its command never
committed), and a charge that succeeded for an invoice closed meanwhile (paid by bank transfer, voided, written
off while the card was being charged).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql

from .bulk import COPY_FROM, _plan, _tuples, driver_level, in_ids, in_values, insert_many, sqlite_instant
from .tables import payment_attempts, payment_intents

IN_FLIGHT = ("pending", "unknown")  # the gateway may have charged; nobody knows the outcome yet
REFUNDED = ("refunding", "refunded")  # money taken with nothing to pay, given back


class PaymentIntentRepository:
    """The charges kakin means to make (``payment_intents``), on one connection: ``uow.intents``."""

    IN_FLIGHT = IN_FLIGHT
    REFUNDED = REFUNDED

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def by_keys(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The intents with these idempotency keys, by key (keys without one are absent)."""
        wanted = sorted(set(keys))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            for r in self.conn.execute(select(payment_intents).where(
                    payment_intents.c.idempotency_key.in_(wanted[start:start + 500]))).mappings():
                out[r["idempotency_key"]] = dict(r)
        return out

    def unlinked(self, customer_ids: Iterable[int]) -> dict[str, dict[str, Any]]:
        """These customers' intents that name no invoice, by key (few: purchases refused or given back, and charges
        whose command has not committed)."""
        ids = set(customer_ids)
        if not ids:
            return {}
        return {r["idempotency_key"]: dict(r) for r in self.conn.execute(select(payment_intents).where(
            payment_intents.c.invoice_id.is_(None), in_ids(self.conn, payment_intents.c.customer_id, ids))).mappings()}

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write new intents: tenant_id, customer_id, invoice_id, covers (a list of invoice ids or None), purchase,
        amount (yen), payment_method, gateway_customer, idempotency_key, status, at (the wall clock); code and
        reference when the outcome is known already. A key recorded meanwhile by another transaction (two commands
        catching up on the same renewal) is left as it is: the same key is the same charge."""
        if not rows:
            return
        values = [{
            "tenant_id": r["tenant_id"], "customer_id": r["customer_id"], "invoice_id": r.get("invoice_id"),
            "covers": json.dumps(r["covers"]) if r.get("covers") else None, "purchase": r.get("purchase"),
            "amount": r["amount"], "currency": "JPY", "payment_method": r["payment_method"],
            "gateway_customer": r.get("gateway_customer"), "idempotency_key": r["idempotency_key"], "status": r["status"],
            "code": r.get("code"), "reference": r.get("reference"), "attempts": r.get("attempts", 0),
            "created_at": r["at"], "updated_at": r["at"]} for r in rows]
        dialect = driver_level(self.conn)
        if dialect == "postgresql" and len(values) >= COPY_FROM:  # a due-work batch: one COPY, as no key exists yet
            try:
                with self.conn.begin_nested():
                    insert_many(self.conn, payment_intents, values)
                return
            except psycopg.errors.UniqueViolation:
                pass  # some key was recorded meanwhile: row by row below, leaving those as they are
        if dialect is not None:
            sql, converters = _plan(payment_intents, tuple(values[0]), dialect)
            sql = sql + " ON CONFLICT (idempotency_key) DO NOTHING"
            self.conn.exec_driver_sql(sql, _tuples([list(v.values()) for v in values], converters))
        else:
            self.conn.execute(postgresql.insert(payment_intents).on_conflict_do_nothing(
                index_elements=["idempotency_key"]), values)

    @staticmethod
    def covers(row: dict[str, Any]) -> list[int]:
        """The other invoices (small balances carried along) the intent's payment pays."""
        return [int(i) for i in json.loads(row["covers"])] if row.get("covers") else []

    def record_outcome(self, key: str, status: str, code: str | None, reference: str | None, at: datetime) -> None:
        """The gateway's answer for the intent with this key (``unknown``: it did not answer); one more call counted."""
        self.conn.execute(update(payment_intents).where(payment_intents.c.idempotency_key == key).values(
            status=status, code=code, reference=reference, updated_at=at, attempts=payment_intents.c.attempts + 1))

    def record_outcomes(self, rows: Sequence[tuple[str, str, str | None, str | None]], at: datetime) -> set[str]:
        """Many outcomes at once, as :func:`record_outcome`: (key, status, code, reference) each. An intent being given
        back (``refunding``, ``refunded``: a worker found its invoice closed) is left as it is. Returns the keys
        recorded. On PostgreSQL one statement over arrays."""
        if not rows:
            return set()
        dialect = driver_level(self.conn)
        if dialect == "postgresql":
            keys, statuses, codes, references = (list(column) for column in zip(*rows, strict=True))
            return set(self.conn.exec_driver_sql(
                "UPDATE payment_intents SET status = v.status, code = v.code, reference = v.reference, updated_at = %s, "
                "attempts = payment_intents.attempts + 1 FROM unnest(%b::TEXT[], %b::TEXT[], %b::TEXT[], %b::TEXT[]) "
                "AS v(key, status, code, reference) WHERE payment_intents.idempotency_key = v.key "
                "AND payment_intents.status NOT IN ('refunding', 'refunded') RETURNING payment_intents.idempotency_key",
                (at, keys, statuses, codes, references)).scalars().all())
        c = payment_intents.c
        wanted = [key for key, *_ in rows]
        given_back = set(self.conn.execute(select(c.idempotency_key).where(
            in_values(self.conn, c.idempotency_key, wanted), c.status.in_(REFUNDED))).scalars())
        todo = [row for row in rows if row[0] not in given_back]
        if not todo:
            return set()
        if dialect == "sqlite":  # the rows read above stay as read: SQLite has one writer at a time
            stamp = sqlite_instant(at)
            self.conn.exec_driver_sql(
                "UPDATE payment_intents SET status = ?, code = ?, reference = ?, updated_at = ?, attempts = attempts + 1 "
                "WHERE idempotency_key = ?",
                [(status, code, reference, stamp, key) for key, status, code, reference in todo])
        elif todo:
            self.conn.execute(update(payment_intents).where(c.idempotency_key == bindparam("_key")).values(
                status=bindparam("_status"), code=bindparam("_code"), reference=bindparam("_reference"), updated_at=at,
                attempts=c.attempts + 1), [{"_key": key, "_status": status, "_code": code, "_reference": reference}
                                           for key, status, code, reference in todo])
        return {row[0] for row in todo}

    def applied(self, customer_ids: Iterable[int], keys: Iterable[str], *, paid: bool = False) -> set[str]:
        """Which of these charges' answers are in the payment log already (a ``payment_attempts`` row with the key):
        applied to their invoices, by the run or by a worker settling them; an answer is never applied twice.
        ``paid``: only those the log shows as a payment that succeeded (a charge that paid an invoice; a 3-D Secure
        request logged as ``requires_action`` and completed later for an invoice closed meanwhile did not)."""
        wanted = sorted(set(keys))
        ids = set(customer_ids)
        if not wanted or not ids:
            return set()
        q = select(payment_attempts.c.idempotency_key).where(
            in_ids(self.conn, payment_attempts.c.customer_id, ids),
            in_values(self.conn, payment_attempts.c.idempotency_key, wanted))
        if paid:
            q = q.where(payment_attempts.c.outcome == "succeeded")
        return set(self.conn.execute(q).scalars())

    def claim(self, key: str, at: datetime, seen: dict[str, Any] | None = None,
              statuses: Sequence[str] = IN_FLIGHT) -> bool:
        """Take the intent for a call to the gateway: true when its status is one of ``statuses`` and, given the row
        as it was ``seen``, nobody touched it since. One conditional UPDATE, so of two workers racing for it one wins
        (on PostgreSQL the loser's UPDATE waits for the winner's, then finds the row changed)."""
        q = update(payment_intents).where(payment_intents.c.idempotency_key == key,
                                          payment_intents.c.status.in_(list(statuses)))
        if seen is not None:
            q = q.where(payment_intents.c.status == seen["status"], payment_intents.c.updated_at == seen["updated_at"])
        return self.conn.execute(q.values(updated_at=at)).rowcount == 1

    def give_back(self, key: str, status: str, at: datetime, *, was: Sequence[str], unlinked: bool = True) -> bool:
        """Move an intent from one of the statuses ``was`` to ``status`` (``refunding``, ``refunded``); false when it
        was in none of them or, ``unlinked`` (a purchase's charge), when it names an invoice now."""
        q = update(payment_intents).where(payment_intents.c.idempotency_key == key,
                                          payment_intents.c.status.in_(list(was)))
        if unlinked:
            q = q.where(payment_intents.c.invoice_id.is_(None))
        return self.conn.execute(q.values(status=status, updated_at=at)).rowcount == 1

    def completed(self, key: str, reference: str, at: datetime) -> None:
        """The intent's payment, refused at first for 3-D Secure (``failed``, ``authentication_required``), was
        completed by the customer afterwards: ``succeeded``, as the gateway now says."""
        self.conn.execute(update(payment_intents).where(
            payment_intents.c.idempotency_key == key, payment_intents.c.reference == reference,
            payment_intents.c.status == "failed").values(status="succeeded", code=None, updated_at=at))

    def link(self, key: str, invoice_id: int) -> bool:
        """Name the invoice a purchase's charge paid, in the transaction that writes the invoice; false when the
        intent was given back (refunding) meanwhile."""
        return self.conn.execute(update(payment_intents).where(
            payment_intents.c.idempotency_key == key, payment_intents.c.status.in_(("succeeded", "failed")),
            payment_intents.c.invoice_id.is_(None)).values(invoice_id=invoice_id)).rowcount == 1

    def succeeded_for(self, invoice_id: int) -> list[str]:
        """The keys of the invoice's own charges that succeeded (its intents ``succeeded``, in key order)."""
        return sorted(self.conn.execute(select(payment_intents.c.idempotency_key).where(
            payment_intents.c.invoice_id == invoice_id, payment_intents.c.status == "succeeded")).scalars())

    def in_flight(self, invoice_ids: Iterable[int]) -> set[int]:
        """Which of these invoices have a charge whose outcome is not recorded yet (never charge them again meanwhile)."""
        ids = sorted(set(invoice_ids))
        if not ids:
            return set()
        return {int(i) for i in self.conn.execute(select(payment_intents.c.invoice_id).where(
            payment_intents.c.invoice_id.in_(ids), payment_intents.c.status.in_(IN_FLIGHT))).scalars()}

    def to_settle(self, older_than: datetime, limit: int) -> list[dict[str, Any]]:
        """Intents the worker settles, oldest first: left ``pending`` or ``unknown``, a purchase charged without an
        invoice, or a refund begun, each untouched since ``older_than``."""
        c = payment_intents.c
        q = select(payment_intents).where(c.updated_at <= older_than, (c.status.in_(IN_FLIGHT + ("refunding",))) | (
            (c.status == "succeeded") & c.purchase.is_not(None) & c.invoice_id.is_(None)))
        return [dict(r) for r in self.conn.execute(q.order_by(c.updated_at, c.id).limit(limit)).mappings()]

    def given_back_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """How many purchases each customer was charged for and refunded (their keys are not used again)."""
        if not customer_ids:
            return {}
        rows = self.conn.execute(select(payment_intents.c.customer_id, func.count()).where(
            payment_intents.c.customer_id.in_(customer_ids), payment_intents.c.status.in_(REFUNDED),
            payment_intents.c.invoice_id.is_(None)).group_by(
            payment_intents.c.customer_id)).all()
        return {int(c): int(n) for c, n in rows}

    def of_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's intents, oldest first."""
        return [dict(r) for r in self.conn.execute(select(payment_intents).where(
            payment_intents.c.customer_id == customer_id).order_by(payment_intents.c.id)).mappings()]
