"""The unit of work: one database transaction over the store, its lock order, its retries, tenants and audit.

One :class:`UnitOfWork` is one database transaction. Its parts load and save
account aggregates (``account_store.py``: batches of accounts, one query per
table, so a billing run streams through customers in constant memory) and
write invoices, credit notes and the payment log (``invoice_store.py``).

Locks. A writing transaction on SQLite is the only writer (``BEGIN IMMEDIATE``,
``adapters/db/migrate.py``). On PostgreSQL every transaction takes its row
locks in this one order, so two of them never wait on each other in a circle:

0. an API request's Idempotency-Key (an advisory lock, ``IdempotencyRepository.lock``), before anything else;
1. customer rows (``SELECT … FOR UPDATE``: a command locks its customer when it
   loads it and holds it to commit; the due-work run locks its batch with
   ``SKIP LOCKED``), then every row that belongs to them (subscriptions,
   phases, pending items, usage counters, open invoices);
2. the tenant row last, for its invoice and credit-note counters
   (:meth:`UnitOfWork.reserve_invoice_numbers`, :meth:`UnitOfWork.add_credit_note`),
   held only from the numbering to the commit, and to check a rule over all
   of the tenant's customers (:meth:`UnitOfWork.lock_tenant`: one account per
   local-government body, ``services.eligibility.apply``);
3. outbox rows (webhook events, mail), which nothing else waits on;
4. payment intents (``intents_repo``): written by a batch after its customer
   rows, or in short transactions of their own that hold no other lock (a
   command's charge, the worker settling one). No card is ever charged while
   a transaction is open: a batch charges after its commit, a command stops
   with :class:`ChargesNeeded` (``services.charging``).

An operator's row is locked by a console sign-in (``operators.by_email(…,
lock=True)``), which locks nothing else, so it has no place in this order.

A lock wait is bounded: ``SET LOCAL lock_timeout`` (:data:`LOCK_TIMEOUT_MS`)
on PostgreSQL, the busy timeout on SQLite. :func:`in_transaction` runs a
unit of work again after a deadlock or a serialization failure (bounded, with
jitter) and answers a lock wait that timed out with
:class:`~kakin.domain.errors.DatabaseBusy` (HTTP 503, "try again").
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, NestedTransaction, insert, select, update
from sqlalchemy.exc import DBAPIError

from kakin.domain import errors

from .account_store import AccountStore
from .bulk import insert_many
from .invoice_store import InvoiceStore
from .repositories import Repositories
from .rows import TenantRow, audit_json
from .tables import (
    audit_log,
    tenants,
)

log = logging.getLogger("kakin.store")

LOCK_TIMEOUT_MS = 5000  # the longest a PostgreSQL transaction waits for one lock before it is answered "busy"
RETRIES = 5  # how many times a unit of work is run again after a deadlock or a serialization failure
LOCKED = ("the customer's records are locked by other work that is taking long; nothing was changed: try again in "
          "a moment")  # what a lock wait that ran out is answered (503 database_busy)
UNIQUE_RERUNS = 2  # … and after a unique violation, whose rerun finds the value taken and refuses clearly
T = TypeVar("T")


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock (40P01) or a serialization failure (40001): running the whole transaction again can succeed."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in ("40P01", "40001")


def is_unique_violation(exc: BaseException) -> bool:
    """A unique constraint refused a row (23505): on PostgreSQL, another transaction committed the same value (a
    customer id, a member's e-mail, a premium ID) after this one checked that it was free."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) == "23505"


def is_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (stopped, restarting, the network gone): a
    PostgreSQL connection error (no SQLSTATE, class 08, or 57P01–57P03), or any error SQLAlchemy marks as a lost
    connection. Not a lock wait that ran out, a deadlock, a timeout or a full disk: those are not outages."""
    if not isinstance(exc, DBAPIError) or is_lock_timeout(exc):
        return False
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)  # none when no server answered; 08…: connection exceptions; 57P01–03: the server going away
    return isinstance(exc.orig, psycopg.OperationalError) and (
        state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03"))


def is_lock_timeout(exc: BaseException) -> bool:
    """A lock wait that ran out: PostgreSQL's lock_timeout (55P03), SQLite's "database is locked"."""
    if isinstance(exc, DBAPIError):
        if _sqlstate(exc) == "55P03":
            return True
        exc = exc.orig or exc
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class ChargesNeeded(Exception):
    """Raised by work run in :func:`in_transaction` that must charge at the gateway before it can go on: the
    transaction rolls back (no lock is held any more), ``perform(begin)`` makes the charges, recording each before
    and after in short transactions of its own, and the work runs again, finding the outcomes recorded.
    ``after(begin)``, if given, runs once the work has ended (committed, or refused): what it must do about charges
    the work, as it finally ran, did not use."""

    def __init__(self, perform: Callable[[Callable[[], UnitOfWork]], None],
                 after: Callable[[Callable[[], UnitOfWork]], None] | None = None) -> None:
        super().__init__("charges to make outside the transaction")
        self.perform, self.after = perform, after


CHARGE_ROUNDS = 20  # how many times one unit of work may stop to charge before it is a bug


def in_transaction(engine: Engine | Callable[[], UnitOfWork], work: Callable[[UnitOfWork], T], *,
                   attempts: int = RETRIES, pause: Callable[[float], None] = time.sleep) -> T:
    """Run ``work`` in a unit of work (of ``engine``, or made by a factory) and commit; after a deadlock or a serialization failure run it again in a new
    one, up to ``attempts`` times, waiting 10 ms, 20 ms, 40 ms, … with jitter (0.5–1.5 ×) between runs.

    Charges leave the transaction: the unit of work is marked ``charges_outside``, and work that needs a charge
    raises :class:`ChargesNeeded`, whose charges are made with no transaction open before ``work`` runs again.

    Raises :class:`~kakin.domain.errors.DatabaseBusy` when a lock wait timed out or every run failed that way;
    whatever ``work`` raises otherwise (a :class:`~kakin.domain.errors.KakinError` refusal) passes through. ``work``
    may run more than once: what it does outside the database must be idempotent (gateway charges carry keys).

    A unique constraint that refuses a row (another transaction took the same value after ``work`` checked it was
    free) runs ``work`` again, at most :data:`UNIQUE_RERUNS` times: its own check now sees the committed value and
    refuses with its clear error (409 ``customer_exists``, ``premium_id_taken``, …) instead of a 500.
    """
    begin = engine if callable(engine) else lambda: UnitOfWork(engine)
    afters: list[Callable[[Callable[[], UnitOfWork]], None]] = []
    try:
        result = _run(begin, work, attempts, pause, afters)
    except Exception:
        _after(afters, begin)
        raise
    _after(afters, begin)
    return result


def _after(afters: list[Callable[[Callable[[], UnitOfWork]], None]], begin: Callable[[], UnitOfWork]) -> None:
    """The work ended (committed or refused): what ``ChargesNeeded.after`` does about charges it did not use."""
    for after in afters:
        try:
            after(begin)
        except Exception:  # left as it is: a later retry of the invoice, or the worker, settles it
            log.exception("charges made for work that did not use them were not looked at")


def _run(begin: Callable[[], UnitOfWork], work: Callable[[UnitOfWork], T], attempts: int,
         pause: Callable[[float], None], afters: list[Callable[[Callable[[], UnitOfWork]], None]]) -> T:
    attempt = rounds = unique_reruns = 0
    while attempt < attempts:
        try:
            with begin() as uow:
                uow.charges_outside = True
                return work(uow)
        except ChargesNeeded as need:
            rounds += 1
            if rounds > CHARGE_ROUNDS:
                raise RuntimeError("a unit of work kept asking for charges") from need
            need.perform(begin)
            if need.after is not None:
                afters.append(need.after)
            continue
        except Exception as exc:
            if is_lock_timeout(exc):
                raise errors.DatabaseBusy(LOCKED) from exc
            if is_unique_violation(exc) and unique_reruns < UNIQUE_RERUNS:
                unique_reruns += 1
                log.warning("transaction run again after a unique violation of %s (%d of %d)",
                            getattr(getattr(getattr(exc, "orig", None), "diag", None), "constraint_name", None),
                            unique_reruns, UNIQUE_RERUNS)
                continue
            if not is_retryable(exc):
                raise
            log.info("transaction retried after %s (attempt %d of %d)", _sqlstate(exc), attempt + 1, attempts)
            pause(0.01 * 2 ** attempt * random.uniform(0.5, 1.5))
            attempt += 1
    raise errors.DatabaseBusy("other work on the same records kept conflicting with this request; nothing was changed: "
                              "try again in a moment")


class UnitOfWork(AccountStore, InvoiceStore, Repositories):
    """One transaction over the store. Use as a context manager; commits on success. Its repositories
    (``uow.domains``, ``uow.members``, …) are properties bound to its connection (``repositories.Repositories``)."""

    def __init__(self, engine: Engine, readonly: bool = False) -> None:
        self.engine = engine
        self.readonly = readonly
        self.conn: Connection
        self._pending_ids: dict[int, set[int]] = {}
        self._loaded: dict[tuple[str, int], dict[str, Any]] = {}
        # (actor, member id): the customer's member a request acts for, checked by the API; audit records this
        # transaction writes for that actor name the member (not those of due work done on the way)
        self.acting_member: tuple[str, str] | None = None
        self._after_rollback: list[Callable[[], None]] = []
        self._versions: dict[int, int] = {}  # customer id → the version loaded or saved (customers.version)
        self._written: dict[int, tuple[Any, ...]] = {}  # invoice id → its payment state as this transaction wrote it
        # set by in_transaction: a charge is made after this transaction, not in it (services.charging)
        self.charges_outside = False

    def __enter__(self) -> UnitOfWork:
        self.conn = self.engine.connect()
        if self.readonly:  # SQLite: a plain deferred transaction, which never waits behind a writer
            self.conn = self.conn.execution_options(kakin_readonly=True)
        self._tx = self.conn.begin()
        if self.conn.dialect.name == "postgresql":  # a lock wait is bounded (the store's docstring: Locks)
            self.conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
                if self._after_rollback:  # what must outlive the refusal, in a transaction of its own
                    try:
                        with self.conn.begin():
                            for write in self._after_rollback:
                                write()
                    except Exception:  # the refusal is still the answer; the lost record is logged
                        log.exception("a record kept across a rollback could not be written")
        finally:
            self._after_rollback.clear()
            self.conn.close()

    def commit(self) -> None:
        """Commit what is done so far and go on in a new transaction (a checkpoint)."""
        self._tx.commit()
        self._after_rollback.clear()
        self._tx = self.conn.begin()

    @contextmanager
    def keeping_earlier_work(self) -> Iterator[None]:
        """Run a block so that a refusal in it (a :class:`~kakin.domain.errors.KakinError`) undoes only the block:
        what this transaction did before it (due work a command caught up on) and the records kept across a
        rollback (:meth:`keep_if_rolled_back`) are committed, still under the locks taken, and the refusal is
        raised. Anything else rolls the whole transaction back as usual."""
        savepoint = self.conn.begin_nested()
        try:
            yield
        except errors.KakinError:
            savepoint.rollback()
            for write in self._after_rollback:
                write()
            self.commit()
            raise
        savepoint.commit()

    def adopt(self, earlier: UnitOfWork) -> UnitOfWork:
        """Take over what an earlier, committed unit of work knew of the accounts it saved (their rows as saved,
        their versions), so this one can save the same account objects again; returns self."""
        self._loaded, self._pending_ids, self._versions = earlier._loaded, earlier._pending_ids, earlier._versions
        return self

    def savepoint(self) -> NestedTransaction:
        """A block whose writes are undone alone when it raises (a SAVEPOINT; the exception passes on):
        ``with uow.savepoint(): …``."""
        return self.conn.begin_nested()

    def keep_if_rolled_back(self, write: Callable[[], None]) -> None:
        """Run ``write`` in a transaction of its own if this unit of work rolls back (a refused command's payment
        attempt stays in the payment log). Nothing runs if it commits: the caller writes it then as well."""
        self._after_rollback.append(write)

    # ------------------------------------------------------------- tenants
    def add_tenant(self, code: str, name: str, catalog: str, timezone: str, now: datetime,
                   registration_number: str | None = None, address: str | None = None) -> TenantRow:
        prefix = "".join(ch for ch in code.upper() if ch.isalnum())[:12]
        self.conn.execute(insert(tenants).values(
            code=code, name=name, catalog=catalog, timezone=timezone, invoice_prefix=prefix,
            registration_number=registration_number, address=address, created_at=now))
        tenant = self.tenant(code)
        assert tenant is not None
        return tenant

    def tenant(self, code: str) -> TenantRow | None:
        row = self.conn.execute(select(tenants).where(tenants.c.code == code)).mappings().first()
        return None if row is None else TenantRow.of(row)

    def update_tenant(self, tenant: TenantRow, values: dict[str, Any]) -> TenantRow:
        """Write the vendor's name, registration number and address; returns the row as it is now."""
        self.conn.execute(update(tenants).where(tenants.c.id == tenant.id).values(
            name=values["name"], registration_number=values["registration_number"], address=values["address"]))
        row = self.tenant(tenant.code)
        assert row is not None
        return row

    def lock_tenant(self, tenant: TenantRow) -> None:
        """Lock the tenant's row until commit (PostgreSQL; a SQLite writer holds the whole database already): last in
        the lock order, after the customer rows the transaction locks."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(select(tenants.c.id).where(tenants.c.id == tenant.id).with_for_update(key_share=True))

    def tenant_by_id(self, tenant_id: int) -> TenantRow:
        """The tenant with this row id (it must exist)."""
        return TenantRow.of(self.conn.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one())

    def tenants(self) -> list[TenantRow]:
        rows = self.conn.execute(select(tenants).order_by(tenants.c.id)).mappings()
        return [TenantRow.of(r) for r in rows]

    # ---------------------------------------------------------------- audit
    def audit(self, rows: list[dict[str, Any]]) -> None:
        """Record audit entries; ``before`` and ``after`` are the state as dicts (or None), stored as JSON text.

        The rows are the caller's fresh dicts: their states are encoded in place (copying them costs the billing run
        about 4%)."""
        acting = self.acting_member
        for row in rows:
            for side in ("before", "after"):
                if row[side] is not None:
                    row[side] = audit_json(row[side])
            if "member" not in row:
                row["member"] = acting[1] if acting is not None and row["actor"] == acting[0] else None
        insert_many(self.conn, audit_log, rows)

    def audit_rows(self, tenant: TenantRow) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(select(audit_log).where(audit_log.c.tenant_id == tenant.id).order_by(
            audit_log.c.id)).mappings()]
