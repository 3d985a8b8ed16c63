"""The account store: load and save account aggregates, invoices, audit records.

One :class:`UnitOfWork` is one database transaction. Loading and saving work
on batches of accounts (one query per table), so a billing run streams through
customers in constant memory.

Locks. A writing transaction on SQLite is the only writer (``BEGIN IMMEDIATE``,
``adapters/db/migrate.py``). On PostgreSQL every transaction takes its row
locks in this one order, so two of them never wait on each other in a circle:

1. customer rows (``SELECT … FOR UPDATE``: a command locks its customer when it
   loads it and holds it to commit; the due-work run locks its batch with
   ``SKIP LOCKED``), then every row that belongs to them (subscriptions,
   phases, pending items, usage counters, open invoices);
2. the tenant row last, for its invoice and credit-note counters
   (:meth:`UnitOfWork.reserve_invoice_numbers`, :meth:`UnitOfWork.add_credit_note`),
   held only from the numbering to the commit;
3. outbox rows (webhook events, mail), which nothing else waits on;
4. payment intents (``intents_repo``): written by a batch after its customer
   rows, or in short transactions of their own that hold no other lock (a
   command's charge, the worker settling one). No card is ever charged while
   a transaction is open: a batch charges after its commit, a command stops
   with :class:`ChargesNeeded` (``services.charging``).

A lock wait is bounded: ``SET LOCAL lock_timeout`` (:data:`LOCK_TIMEOUT_MS`)
on PostgreSQL, the busy timeout on SQLite. :func:`in_transaction` runs a
unit of work again after a deadlock or a serialization failure (bounded, with
jitter) and answers a lock wait that timed out with
:class:`~kakin.domain.errors.DatabaseBusy` (HTTP 503, "try again").
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, NestedTransaction, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from kakin.domain import errors
from kakin.domain.account import Account, OpenInvoice, PendingItem, Phase, Status, Subscription, phases_from
from kakin.domain.documents import Issuer, frozen_parties, recipient_of
from kakin.domain.invoice import InvoiceDraft, Line, LineKind
from kakin.domain.money import TaxedAmount, format_rate

from .bulk import driver_level, in_ids, insert_many, sqlite_instant, update_many
from .codecs import pending_from_json as _pending_from_json
from .codecs import pending_to_json as _pending_to_json
from .repositories import Repositories
from .tables import (
    audit_log,
    credit_notes,
    customers,
    invoice_lines,
    invoices,
    payment_attempts,
    pending_items,
    subscription_phases,
    subscriptions,
    tenants,
    usage_counters,
)

log = logging.getLogger("kakin.store")

LOCK_TIMEOUT_MS = 5000  # the longest a PostgreSQL transaction waits for one lock before it is answered "busy"
RETRIES = 5  # how many times a unit of work is run again after a deadlock or a serialization failure
T = TypeVar("T")


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock (40P01) or a serialization failure (40001): running the whole transaction again can succeed."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in ("40P01", "40001")


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
    attempt = rounds = 0
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
                raise errors.DatabaseBusy(
                    "the customer's records are locked by other work that is taking long; nothing was changed: "
                    "try again in a moment") from exc
            if not is_retryable(exc):
                raise
            log.info("transaction retried after %s (attempt %d of %d)", _sqlstate(exc), attempt + 1, attempts)
            pause(0.01 * 2 ** attempt * random.uniform(0.5, 1.5))
            attempt += 1
    raise errors.DatabaseBusy("other work on the same records kept conflicting with this request; nothing was changed: "
                              "try again in a moment")


@dataclass(frozen=True)
class TenantRow:
    id: int
    code: str
    name: str
    catalog: str
    timezone: str
    invoice_prefix: str
    registration_number: str | None
    address: str | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, r: Any) -> TenantRow:
        return cls(r["id"], r["code"], r["name"], r["catalog"], r["timezone"], r["invoice_prefix"], r["registration_number"],
                   r["address"], r["created_at"])


def audit_json(state: dict[str, Any]) -> str:
    """An audit state as JSON: keys sorted, dates and instants in ISO 8601, Japanese text as is, other values as text."""
    return orjson.dumps(state, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _rate_text(rate: Fraction | None) -> str | None:
    return None if rate is None else format_rate(rate)


def parse_rate(text: str | None) -> Fraction | None:
    """"8%" → Fraction(2, 25); None stays None (the standard rate)."""
    return None if text is None else Fraction(text.rstrip("%")) / 100


def taxes_json(taxes: Sequence[TaxedAmount]) -> str:
    """Totals and tax per rate as stored: [{"rate": "10%", "net": 819, "tax": 81, "gross": 900}]."""
    return _taxes_json(tuple(taxes))


@lru_cache(maxsize=4096)  # a billing run writes the same few amounts again and again
def _taxes_json(taxes: tuple[TaxedAmount, ...]) -> str:
    return json.dumps([{"rate": format_rate(t.rate), "net": t.net, "tax": t.tax, "gross": t.gross} for t in taxes])


class UnitOfWork(Repositories):
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

    def changed_accounts(self, customer_ids: Sequence[int]) -> set[int]:
        """Lock these customers (PostgreSQL; in the store's lock order) and return those saved by another
        transaction since this unit of work (or the one it adopted) loaded or saved them."""
        q = select(customers.c.id, customers.c.version).where(in_ids(self.conn, customers.c.id, set(customer_ids)))
        if self.conn.dialect.name == "postgresql":
            q = q.order_by(customers.c.id).with_for_update()
        return {int(i) for i, v in self.conn.execute(q).all() if self._versions.get(int(i)) != v}

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

    def tenant_by_id(self, tenant_id: int) -> TenantRow:
        """The tenant with this row id (it must exist)."""
        return TenantRow.of(self.conn.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one())

    def tenants(self) -> list[TenantRow]:
        rows = self.conn.execute(select(tenants).order_by(tenants.c.id)).mappings()
        return [TenantRow.of(r) for r in rows]

    # ----------------------------------------------------------- accounts
    def add_account(self, tenant: TenantRow, account: Account, now: datetime, test_clock_id: int | None = None) -> None:
        account.id = self.conn.execute(insert(customers).values(
            tenant_id=tenant.id, key=account.key, name=account.name, payment_method=account.payment_method,
            members=account.members, credit=account.credit, basic_id=account.basic_id, created_at=now,
            test_clock_id=test_clock_id, sign_in_group=account.sign_in_group,
        ).returning(customers.c.id)).scalar_one()
        self._pending_ids[account.id] = set()
        self.save_accounts(tenant, [account], now, next_due={})

    def customer_row(self, tenant: TenantRow, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(customers).where(customers.c.tenant_id == tenant.id, customers.c.key == key)).mappings().first()
        return dict(row) if row else None

    def account_id(self, tenant: TenantRow, key: str, lock: bool = False) -> int | None:
        """The customer's row id; with ``lock``, the row stays locked until commit (the worker skips it meanwhile)."""
        q = select(customers.c.id).where(customers.c.tenant_id == tenant.id, customers.c.key == key)
        if lock and self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        return self.conn.execute(q).scalar_one_or_none()

    def lock_customer(self, customer_id: int) -> None:
        """Lock the customer's row until commit (PostgreSQL; a SQLite writer holds the whole database already)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(select(customers.c.id).where(customers.c.id == customer_id).with_for_update())

    def customer_exists(self, customer_id: int | None) -> bool:
        return customer_id is not None and self.conn.execute(
            select(customers.c.id).where(customers.c.id == customer_id)).first() is not None

    def basic_id_taken(self, tenant: TenantRow, basic_id: str) -> bool:
        return self.conn.execute(select(customers.c.id).where(
            customers.c.tenant_id == tenant.id, customers.c.basic_id == basic_id)).first() is not None

    def addon_value_taken(self, tenant: TenantRow, product: str, value: str) -> bool:
        return self.conn.execute(select(subscriptions.c.id).where(
            subscriptions.c.tenant_id == tenant.id, subscriptions.c.product == product,
            subscriptions.c.value == value, subscriptions.c.ended.is_(False))).first() is not None

    def due_account_ids(self, tenant: TenantRow, until: datetime, limit: int, lock: bool = False,
                        test_clock_id: int | None = None) -> list[int]:
        """Accounts with work due by ``until``: on the real clock, or on one test clock."""
        clock = customers.c.test_clock_id.is_(None) if test_clock_id is None else customers.c.test_clock_id == test_clock_id
        q = select(customers.c.id, customers.c.next_due_at).where(
            customers.c.tenant_id == tenant.id, clock, customers.c.next_due_at.is_not(None), customers.c.next_due_at <= until)
        q = q.order_by(customers.c.next_due_at, customers.c.id).limit(limit)
        if lock and self.conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True, of=customers)
        return [int(i) for i in self.conn.execute(q).scalars().all()]

    def load_accounts(self, ids: Sequence[int], summary: bool = False) -> list[Account]:
        """Load whole aggregates for these customers, one query per table.

        ``summary`` loads the customers and their subscriptions only (enough to show them, not to bill them).
        """
        if not ids:
            return []
        id_list = list(ids)
        accounts: dict[int, Account] = {}
        next_due_at: dict[int, datetime | None] = {}
        for r in self._customer_rows(id_list):
            next_due_at[r["id"]] = r["next_due_at"]
            self._versions[r["id"]] = r["version"]
            accounts[r["id"]] = Account(key=r["key"], name=r["name"], payment_method=r["payment_method"],
                                        members=r["members"], credit=r["credit"], basic_id=r["basic_id"], id=r["id"],
                                        gateway_customer=r["gateway_customer"], collection=r["collection"],
                                        deleted_on=r["deleted_on"], sign_in_group=r["sign_in_group"],
                                        verified_domain=r["verified_domain"])
        subs: dict[int, Subscription] = {}
        for r in self._subscription_rows(id_list):
            sub = Subscription(
                product=r["product"], plan=r["plan"], contract=r["contract"], status=Status(r["status"]),
                seats=r["seats"], anchor=r["anchor"], period_start=r["period_start"], period_end=r["period_end"],
                trial_end=r["trial_end"], term_anchor=r["term_anchor"], pending=_pending_from_json(r["pending"]),
                canceled_on=r["canceled_on"], ended=r["ended"], value=r["value"], notified=r["notified"], id=r["id"],
                catalog_version=r["catalog_version"])
            subs[r["id"]] = sub
            accounts[r["customer_id"]].subscriptions.append(sub)
        if summary:
            return [accounts[i] for i in id_list if i in accounts]
        if subs:
            # Only the history billing still needs: the phase in effect at the period's start and those after it.
            earlier = subscription_phases.alias("earlier")
            in_effect_at_start = select(func.max(earlier.c.start)).where(
                earlier.c.subscription_id == subscription_phases.c.subscription_id,
                earlier.c.start <= subscriptions.c.period_start).scalar_subquery()
            phase_rows = self.conn.execute(
                select(subscription_phases).join(subscriptions, subscriptions.c.id == subscription_phases.c.subscription_id)
                .where(in_ids(self.conn, subscription_phases.c.subscription_id, subs),
                       subscription_phases.c.start >= func.coalesce(in_effect_at_start, subscriptions.c.period_start))
                .order_by(subscription_phases.c.subscription_id, subscription_phases.c.start, subscription_phases.c.id)).mappings().all()
            for r in phase_rows:
                subs[r["subscription_id"]].phases.append(
                    Phase(r["start"], r["plan"], r["contract"], r["seats"], r["members"], r["billable"], r["catalog_version"]))
            for sub in subs.values():
                sub.phases = phases_from(sub.phases, sub.period_start)
        for r in self.conn.execute(select(pending_items).where(in_ids(self.conn, pending_items.c.customer_id, id_list)).order_by(
                pending_items.c.id)).mappings().all():
            accounts[r["customer_id"]].pending_items.append(PendingItem(Line(
                LineKind(r["kind"]), r["description"], r["quantity"], r["amount"], r["period_start"], r["period_end"],
                r["formula"], parse_rate(r["tax_rate"]), r["catalog_version"]), id=r["id"]))
        # usage counts for the months billing can still need: from each period's month on
        earliest = min((sub.period_start.replace(day=1) for sub in subs.values()), default=None)
        if earliest is not None:
            for r in self.conn.execute(select(usage_counters).where(
                    in_ids(self.conn, usage_counters.c.customer_id, id_list), usage_counters.c.month >= earliest)).mappings().all():
                accounts[r["customer_id"]].usage[(r["metric"], r["month"])] = r["quantity"]
        for r in self.conn.execute(select(invoices).where(
                in_ids(self.conn, invoices.c.customer_id, id_list), invoices.c.status == "open").order_by(invoices.c.seq)).mappings().all():
            accounts[r["customer_id"]].open_invoices.append(OpenInvoice(
                r["id"], r["number"], r["total"] - r["credited"], r["attempts"], r["first_failed_at"], r["next_retry_at"],
                r["status"], due_on=r["due_on"], deferred=r["deferred"], expires_at=r["expires_at"]))
        for account in accounts.values():
            assert account.id is not None
            self._pending_ids[account.id] = {p.id for p in account.pending_items if p.id is not None}
            self._remember(account, next_due_at[account.id])
        return [accounts[i] for i in id_list if i in accounts]

    _CUSTOMER_COLUMNS = ("id", "key", "name", "payment_method", "members", "credit", "basic_id", "gateway_customer",
                         "collection", "next_due_at", "deleted_on", "sign_in_group", "verified_domain", "version")

    def _customer_rows(self, ids: list[int]) -> Iterable[Mapping[Any, Any]]:
        if self.conn.dialect.name != "sqlite":
            return self.conn.execute(select(customers).where(in_ids(self.conn, customers.c.id, ids))).mappings().all()
        names = ", ".join(f'"{c}"' for c in self._CUSTOMER_COLUMNS)
        rows = self.conn.exec_driver_sql(
            f"SELECT {names} FROM customers WHERE id IN ({', '.join('?' for _ in ids)})", tuple(ids)).all()
        out = []
        for row in rows:
            r = dict(zip(self._CUSTOMER_COLUMNS, row, strict=True))
            if r["next_due_at"] is not None:  # stored in UTC without its offset, as UtcDateTime writes it
                r["next_due_at"] = datetime.fromisoformat(r["next_due_at"]).replace(tzinfo=UTC)
            if r["deleted_on"] is not None:
                r["deleted_on"] = date.fromisoformat(r["deleted_on"])
            out.append(r)
        return out

    _SUB_COLUMNS = ("id", "customer_id", "product", "plan", "contract", "status", "seats", "anchor", "period_start",
                    "period_end", "trial_end", "term_anchor", "pending", "canceled_on", "ended", "value", "notified",
                    "catalog_version")
    _SUB_DATES = ("anchor", "period_start", "period_end", "trial_end", "term_anchor", "canceled_on")

    def _subscription_rows(self, customer_ids: list[int]) -> Iterable[Mapping[Any, Any]]:
        """The live subscriptions of these customers (on SQLite read through the driver: the hot path of a run)."""
        if self.conn.dialect.name != "sqlite":
            return self.conn.execute(select(subscriptions).where(
                in_ids(self.conn, subscriptions.c.customer_id, customer_ids), subscriptions.c.ended.is_(False)).order_by(
                subscriptions.c.id)).mappings().all()
        marks = ", ".join("?" for _ in customer_ids)
        names = ", ".join(f'"{c}"' for c in self._SUB_COLUMNS)
        rows = self.conn.exec_driver_sql(
            f"SELECT {names} FROM subscriptions WHERE customer_id IN ({marks}) AND ended = 0 ORDER BY id",
            tuple(customer_ids)).all()
        out = []
        for row in rows:
            r = dict(zip(self._SUB_COLUMNS, row, strict=True))
            for c in self._SUB_DATES:
                if r[c] is not None:
                    r[c] = date.fromisoformat(r[c])
            r["ended"] = bool(r["ended"])
            out.append(r)
        return out

    # Saving writes only the columns that changed since loading (a renewal changes a period and a due time).
    @staticmethod
    def _customer_values(a: Account, next_due_at: datetime | None) -> dict[str, Any]:
        return {"payment_method": a.payment_method, "members": a.members, "credit": a.credit, "next_due_at": next_due_at,
                "gateway_customer": a.gateway_customer, "collection": a.collection, "deleted_on": a.deleted_on}

    @staticmethod
    def _subscription_values(sub: Subscription) -> dict[str, Any]:
        return {"product": sub.product, "plan": sub.plan, "contract": sub.contract, "status": sub.status.value,
                "seats": sub.seats, "anchor": sub.anchor, "period_start": sub.period_start, "period_end": sub.period_end,
                "trial_end": sub.trial_end, "term_anchor": sub.term_anchor, "pending": _pending_to_json(sub.pending),
                "canceled_on": sub.canceled_on, "ended": sub.ended, "value": sub.value, "notified": sub.notified,
                "catalog_version": sub.catalog_version}

    def _remember(self, a: Account, next_due_at: datetime | None) -> None:
        assert a.id is not None
        self._loaded[("customer", a.id)] = {**self._customer_values(a, next_due_at), "version": self._versions.get(a.id, 0)}
        for sub in a.subscriptions:
            if sub.id is not None:
                self._loaded[("subscription", sub.id)] = self._subscription_values(sub)

    def _update_changed(self, table: Any, kind: str, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """UPDATE each row's changed columns; rows that changed the same columns share one executemany."""
        groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
        for row_id, values in rows:
            before = self._loaded.get((kind, row_id))
            changed = tuple(k for k, v in values.items() if before is None or before[k] != v)
            if changed:
                groups.setdefault(changed, []).append((row_id, values))
            self._loaded[(kind, row_id)] = values
        for columns, params in groups.items():
            update_many(self.conn, table, columns, params)

    def save_accounts(self, tenant: TenantRow, accounts: Iterable[Account], now: datetime,
                      next_due: dict[int, datetime | None]) -> None:
        accounts = list(accounts)
        if not accounts:
            return
        versions = self._versions
        for a in accounts:  # every save bumps the version: a run that charged meanwhile sees the account changed
            if a.id is not None:
                versions[a.id] = versions.get(a.id, 0) + 1
        self._update_changed(customers, "customer", [(a.id, {**self._customer_values(a, next_due.get(a.id)),
                                                             "version": versions[a.id]})
                                                      for a in accounts if a.id is not None])
        updates: list[tuple[int, dict[str, Any]]] = []
        phases: list[dict[str, Any]] = []
        superseded: list[tuple[int, date]] = []
        for a in accounts:
            for sub in a.subscriptions:
                values = self._subscription_values(sub)
                if sub.id is None:
                    sub.id = self.conn.execute(insert(subscriptions).values(
                        tenant_id=tenant.id, customer_id=a.id, created_at=now, **values).returning(subscriptions.c.id)).scalar_one()
                    self._loaded[("subscription", sub.id)] = values
                else:
                    updates.append((sub.id, values))
                for p in sub.new_phases:
                    phases.append({"subscription_id": sub.id, "start": p.start, "plan": p.plan, "contract": p.contract,
                                   "seats": p.seats, "members": p.members, "billable": p.billable, "recorded_at": now,
                                   "catalog_version": p.catalog_version})
                sub.new_phases.clear()
                superseded.extend((sub.id, on) for on in sub.superseded_phases)
                sub.superseded_phases.clear()
        self._update_changed(subscriptions, "subscription", updates)
        if superseded:  # phases the domain replaced (Lifecycle.record_phase decides which one a day keeps)
            self.conn.execute(delete(subscription_phases).where(
                subscription_phases.c.subscription_id == bindparam("s_id"), subscription_phases.c.start == bindparam("s_on")),
                [{"s_id": s_id, "s_on": on} for s_id, on in superseded])
        insert_many(self.conn, subscription_phases, phases)
        new_items: list[tuple[Account, PendingItem]] = []
        gone: list[int] = []
        for a in accounts:
            assert a.id is not None
            kept = {p.id for p in a.pending_items if p.id is not None}
            gone.extend(self._pending_ids.get(a.id, set()) - kept)
            for item in a.pending_items:
                if item.id is None:
                    new_items.append((a, item))
        if gone:
            self.conn.execute(delete(pending_items).where(pending_items.c.id.in_(gone)))
        for a, item in new_items:
            ln = item.line
            item.id = self.conn.execute(insert(pending_items).values(
                customer_id=a.id, kind=ln.kind.value, description=ln.description, quantity=ln.quantity,
                amount=ln.amount, period_start=ln.period_start, period_end=ln.period_end, formula=ln.formula,
                tax_rate=_rate_text(ln.tax_rate), catalog_version=ln.catalog_version,
                created_at=now).returning(pending_items.c.id)).scalar_one()
        for a in accounts:
            assert a.id is not None
            self._pending_ids[a.id] = {p.id for p in a.pending_items if p.id is not None}
        self.save_invoice_states([inv for a in accounts for inv in a.open_invoices if inv.id], now)
        for a in accounts:
            a.open_invoices = [inv for inv in a.open_invoices if inv.status == "open"]

    _INVOICE_STATE = ("status", "attempts", "first_failed_at", "next_retry_at", "paid_at", "deferred", "expires_at")

    def save_invoice_states(self, open_invoices: Iterable[OpenInvoice], now: datetime) -> None:
        """Write the payment and dunning state of invoices (paid now when their status says so); one written
        by this transaction and unchanged since is left alone."""
        rows = []
        for inv in open_invoices:
            state = (inv.status, inv.attempts, inv.first_failed_at, inv.next_retry_at,
                     now if inv.status == "paid" else None, inv.deferred, inv.expires_at)
            if self._written.get(inv.id) != state:
                rows.append((inv.id, dict(zip(self._INVOICE_STATE, state, strict=True))))
        update_many(self.conn, invoices, self._INVOICE_STATE, rows)

    def mark_invoices_paid(self, invoice_ids: Sequence[int], now: datetime) -> None:
        """Write invoices as :func:`~kakin.domain.schedule.payment_succeeded` leaves them (paid at ``now``, no
        retry, not deferred, no expiry): only those columns, so their dunning counts stay as stored."""
        if not invoice_ids:
            return
        dialect = driver_level(self.conn)
        paid = "UPDATE invoices SET status = 'paid', paid_at = ?, next_retry_at = NULL, deferred = false, expires_at = NULL"
        if dialect == "sqlite":  # one statement: the ids as one JSON array
            self.conn.exec_driver_sql(paid + " WHERE id IN (SELECT value FROM json_each(?))",
                                      (sqlite_instant(now), json.dumps(list(invoice_ids))))
        elif dialect == "postgresql":  # one statement: the ids as one array
            self.conn.exec_driver_sql(paid.replace("?", "%s") + " WHERE id = ANY(%s::BIGINT[])", (now, list(invoice_ids)))
        else:
            self.conn.execute(update(invoices).where(invoices.c.id == bindparam("_id")).values(
                status="paid", paid_at=now, next_retry_at=None, deferred=False, expires_at=None),
                [{"_id": i} for i in invoice_ids])
        for i in invoice_ids:  # as written, when this transaction wrote the invoice
            known = self._written.get(i)
            if known is not None:
                self._written[i] = ("paid", known[1], known[2], None, now, False, None)

    # ----------------------------------------------------------- invoices
    def add_invoices(self, tenant: TenantRow, first_seq: int, drafts: Sequence[tuple[Account, InvoiceDraft, OpenInvoice]],
                     now: datetime, *, tax_inclusive: bool, tax_rate: Fraction | None = None) -> list[int]:
        """Write finalized invoices numbered from ``first_seq`` (reserved by :meth:`reserve_invoice_numbers`).

        ``tax_rate`` is the catalog's standard rate (the invoice's ``tax_rate``; lines at another rate carry theirs).
        """
        if not drafts:
            return []
        parties = self.document_parties(tenant, {account.id for account, _, _ in drafts if account.id is not None})
        rows = []
        for i, (account, draft, inv) in enumerate(drafts):
            seq = first_seq + i
            rows.append({
                **parties[account.id or 0],
                "tenant_id": tenant.id, "customer_id": account.id, "seq": seq, "number": self.invoice_number(tenant, seq),
                "issued_on": draft.issued_on, "issued_at": now, "period_start": draft.period_start,
                "period_end": draft.period_end, "subtotal": draft.subtotal, "tax": draft.tax_amount, "total": draft.total,
                "tax_rate": format_rate(tax_rate if tax_rate is not None else draft.taxes[0].rate), "tax_inclusive": tax_inclusive, "taxes": taxes_json(draft.taxes),
                "credit_applied": draft.credit_applied, "credit_carried": 0, "status": inv.status,
                "attempts": inv.attempts, "first_failed_at": inv.first_failed_at, "next_retry_at": inv.next_retry_at,
                "paid_at": now if inv.status == "paid" else None, "billing_key": draft.billing_key, "due_on": inv.due_on,
                "deferred": inv.deferred, "expires_at": inv.expires_at,
            })
        insert_many(self.conn, invoices, rows)  # one executemany; ids are read back by the reserved numbers
        by_seq = dict(self.conn.execute(select(invoices.c.seq, invoices.c.id).where(
            invoices.c.tenant_id == tenant.id, invoices.c.seq.between(first_seq, first_seq + len(rows) - 1))).all())
        ids = [by_seq[r["seq"]] for r in rows]
        for inv_id, r in zip(ids, rows, strict=True):  # as written: saving the same state again is skipped
            self._written[inv_id] = tuple(r[c] for c in self._INVOICE_STATE)
        line_rows = []
        for inv_id, (_, draft, _) in zip(ids, drafts, strict=True):
            for pos, ln in enumerate(draft.lines):
                line_rows.append({"invoice_id": inv_id, "position": pos, "kind": ln.kind.value, "description": ln.description,
                                  "quantity": ln.quantity, "amount": ln.amount, "period_start": ln.period_start,
                                  "period_end": ln.period_end, "formula": ln.formula,
                                  "tax_rate": _rate_text(ln.tax_rate), "catalog_version": ln.catalog_version})
        if line_rows:
            insert_many(self.conn, invoice_lines, line_rows)
        return ids

    def add_credit_note(self, tenant: TenantRow, customer_id: int, invoice_id: int, now: datetime, issued_on: date, *,
                        amount: int, tax: int, total: int, reason: str, settlement: str,
                        refund_reference: str | None = None, taxes: Sequence[TaxedAmount] = (),
                        lines: Sequence[Line] = ()) -> str:
        """Write a credit note (適格返還請求書) against an invoice, numbered per tenant without gaps; its number.

        The tenant row stays locked until commit, so numbers never gap or repeat (like invoices).
        """
        seq = int(self.conn.execute(update(tenants).where(tenants.c.id == tenant.id).values(
            next_credit_note_seq=tenants.c.next_credit_note_seq + 1).returning(tenants.c.next_credit_note_seq)).scalar_one()) - 1
        number = f"{tenant.invoice_prefix}-CN-{seq:08d}"
        self.conn.execute(credit_notes.insert().values(
            tenant_id=tenant.id, customer_id=customer_id, invoice_id=invoice_id, seq=seq, number=number,
            issued_on=issued_on, issued_at=now, amount=amount, tax=tax, total=total, reason=reason,
            settlement=settlement, refund_reference=refund_reference, taxes=taxes_json(taxes) if taxes else None,
            lines=json.dumps([{"description": ln.description, "quantity": ln.quantity, "amount": ln.amount,
                               "formula": ln.formula, "tax_rate": _rate_text(ln.tax_rate),
                               **({"catalog_version": ln.catalog_version} if ln.catalog_version is not None else {})}
                              for ln in lines],
                             ensure_ascii=False) if lines else None,
            **self.document_parties(tenant, {customer_id})[customer_id]))
        if settlement != "credit":  # a credit goes on the balance; the invoice itself is still owed in full
            self.conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(credited=invoices.c.credited + total))
        return number

    def invoice_reduced_by(self, customer_id: int, period_start: date | None, on: date) -> int | None:
        """The invoice a credit for a period reduces: the customer's invoice of that period, else its latest one
        with sales issued by ``on``; None when it has none."""
        base = select(invoices.c.id).where(invoices.c.customer_id == customer_id, invoices.c.issued_on <= on,
                                           invoices.c.subtotal > 0)
        if period_start is not None:
            found = self.conn.execute(base.where(invoices.c.period_start == period_start).order_by(
                invoices.c.seq.desc())).scalars().first()
            if found is not None:
                return int(found)
        found = self.conn.execute(base.order_by(invoices.c.seq.desc())).scalars().first()
        return None if found is None else int(found)

    def credit_notes_for(self, tenant: TenantRow, customer_id: int | None = None) -> list[dict[str, Any]]:
        """Every credit note of the tenant (or of its customer with row id ``customer_id``, read by that index) in
        number order, with its customer's key and its invoice's number."""
        q = select(credit_notes, customers.c.key.label("customer"), invoices.c.number.label("invoice_number")).join(
            customers, customers.c.id == credit_notes.c.customer_id).join(
            invoices, invoices.c.id == credit_notes.c.invoice_id).where(credit_notes.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(credit_notes.c.customer_id == customer_id)
        return [dict(r) for r in self.conn.execute(q.order_by(credit_notes.c.seq)).mappings()]

    def document_parties(self, tenant: TenantRow, customer_ids: set[int]) -> dict[int, dict[str, str | None]]:
        """The issuer (the tenant as it is now) and each customer's recipient, as the columns that freeze them on
        the invoices and credit notes written now."""
        issuer = Issuer(tenant.name, tenant.registration_number, tenant.address or "")
        found = self.conn.execute(select(customers.c.id, customers.c.name, customers.c.addressee, customers.c.postal_code,
                                         customers.c.address).where(in_ids(self.conn, customers.c.id, customer_ids))).all()
        return {int(r.id): frozen_parties(issuer, recipient_of(r.name, r.addressee, r.postal_code, r.address))
                for r in found}

    def invoice_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """How many invoices each customer has (committed ones: a rolled-back batch's do not count)."""
        if not customer_ids:
            return {}
        rows = self.conn.execute(select(invoices.c.customer_id, func.count()).where(
            in_ids(self.conn, invoices.c.customer_id, set(customer_ids))).group_by(invoices.c.customer_id)).all()
        return {int(c): int(n) for c, n in rows}

    @staticmethod
    def invoice_number(tenant: TenantRow, seq: int) -> str:
        return f"{tenant.invoice_prefix}-{seq:08d}"

    def reserve_invoice_numbers(self, tenant: TenantRow, n: int) -> int:
        """Reserve n consecutive numbers and return the first. The tenant row stays locked until
        commit, and a rollback returns the numbers, so they never gap or repeat."""
        if n == 0:
            return 0
        nxt = self.conn.execute(update(tenants).where(tenants.c.id == tenant.id).values(
            next_invoice_seq=tenants.c.next_invoice_seq + n).returning(tenants.c.next_invoice_seq)).scalar_one()
        return int(nxt) - n

    def last_payment_references(self, invoice_ids: list[int]) -> dict[int, str]:
        """The gateway reference of each invoice's latest attempt that has one."""
        out: dict[int, str] = {}
        if invoice_ids:
            for invoice_id, reference in self.conn.execute(select(payment_attempts.c.invoice_id, payment_attempts.c.reference).where(
                    payment_attempts.c.invoice_id.in_(invoice_ids), payment_attempts.c.reference.is_not(None)).order_by(
                    payment_attempts.c.id)):
                out[int(invoice_id)] = reference
        return out

    def customer_key_for_payment(self, tenant: TenantRow, reference: str) -> str | None:
        return self.conn.execute(select(customers.c.key).join(invoices, invoices.c.customer_id == customers.c.id).join(
            payment_attempts, payment_attempts.c.invoice_id == invoices.c.id).where(
            invoices.c.tenant_id == tenant.id, payment_attempts.c.reference == reference)).scalars().first()

    def add_payment_attempts(self, rows: list[dict[str, Any]]) -> None:
        insert_many(self.conn, payment_attempts, rows)

    def refused_attempt_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """How many declined purchases (payment attempts without an invoice) each customer has in the payment log."""
        if not customer_ids:
            return {}
        rows = self.conn.execute(select(payment_attempts.c.customer_id, func.count()).where(
            payment_attempts.c.customer_id.in_(customer_ids), payment_attempts.c.invoice_id.is_(None)).group_by(
            payment_attempts.c.customer_id)).all()
        return {int(c): int(n) for c, n in rows}

    def payment_attempts_of(self, tenant: TenantRow, customer_id: int | None = None) -> list[dict[str, Any]]:
        """The payment log, oldest first: every attempt at the gateway, with its invoice number when it has one."""
        q = select(payment_attempts, invoices.c.number.label("invoice"), customers.c.key.label("customer")).join(
            customers, customers.c.id == payment_attempts.c.customer_id).outerjoin(
            invoices, invoices.c.id == payment_attempts.c.invoice_id).where(customers.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(payment_attempts.c.customer_id == customer_id)
        return [dict(r) for r in self.conn.execute(q.order_by(payment_attempts.c.id)).mappings()]

    def invoices_for(self, tenant: TenantRow, customer_id: int | None = None, number: str | None = None, *,
                     after: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Invoices with their lines and the customer's key, in number order; with ``limit``, a page of at most
        ``limit`` rows after row id ``after``, in id order (the API's cursor)."""
        q = select(invoices, customers.c.key.label("customer")).join(customers, customers.c.id == invoices.c.customer_id).where(
            invoices.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(invoices.c.customer_id == customer_id)
        if number is not None:
            q = q.where(invoices.c.number == number)
        if after is not None:
            q = q.where(invoices.c.id > after)
        q = q.order_by(invoices.c.seq) if limit is None else q.order_by(invoices.c.id).limit(limit)
        rows = [dict(r) for r in self.conn.execute(q).mappings()]
        if not rows:
            return rows
        by_id = {r["id"]: r for r in rows}
        for r in rows:
            r["lines"] = []
        for ln in self.conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id.in_(list(by_id))).order_by(
                invoice_lines.c.invoice_id, invoice_lines.c.position)).mappings():
            by_id[ln["invoice_id"]]["lines"].append(dict(ln))
        return rows

    def latest_plan_subscriptions(self, tenant: TenantRow) -> dict[int, dict[str, Any]]:
        """Each customer's most recent main subscription (ended or not), for reporting."""
        latest = select(func.max(subscriptions.c.id).label("id")).where(
            subscriptions.c.tenant_id == tenant.id, subscriptions.c.product == "plan").group_by(subscriptions.c.customer_id).subquery()
        rows = self.conn.execute(select(subscriptions).join(latest, and_(subscriptions.c.id == latest.c.id))).mappings()
        return {r["customer_id"]: dict(r) for r in rows}

    def customers_of(self, tenant: TenantRow, ids: list[int] | None = None) -> list[dict[str, Any]]:
        q = select(customers).where(customers.c.tenant_id == tenant.id)
        if ids is not None:
            q = q.where(customers.c.id.in_(ids))
        return [dict(r) for r in self.conn.execute(q.order_by(customers.c.id)).mappings()]

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
