"""Queries of usage: plans in effect for a batch, monthly counters, granted quota, recorded events.

``uow.usage`` (:class:`UsageRepository`); ``services.usage`` decides, these read and write. The hot path of
``kakin usage import`` goes straight to the SQLite driver where SQLAlchemy's per-value processing would cost more
than the statement (see ``bulk``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from kakin.domain.account import PendingChange

from .bulk import sqlite_instant
from .codecs import pending_from_json
from .tables import customers, subscriptions, usage_counters, usage_events


class DuplicateEvent(Exception):
    """A usage event's ``transaction_id`` was recorded by another writer meanwhile (the unique index said so)."""


_PLANS = (  # built once: a batch's plans are read with one cached statement
    select(customers.c.key, customers.c.id, subscriptions.c.plan, subscriptions.c.pending, subscriptions.c.period_start,
           subscriptions.c.status, subscriptions.c.catalog_version)
    .join(subscriptions, and_(subscriptions.c.customer_id == customers.c.id, subscriptions.c.product == "plan",
                              subscriptions.c.ended.is_(False)))
    .where(customers.c.tenant_id == bindparam("tenant_id"), customers.c.key.in_(bindparam("keys", expanding=True)))
    .order_by(subscriptions.c.id))

_COUNTER = and_(usage_counters.c.customer_id == bindparam("c_id"), usage_counters.c.metric == bindparam("c_metric"),
                usage_counters.c.month == bindparam("c_month"))
_ADD = update(usage_counters).where(_COUNTER).values(quantity=usage_counters.c.quantity + bindparam("n"))
_ADD_CAPPED = _ADD.where(usage_counters.c.quantity + bindparam("n") <= bindparam("cap"))

_SQLITE_COUNT = ("INSERT INTO usage_counters (customer_id, metric, month, quantity) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (customer_id, metric, month) DO UPDATE SET quantity = usage_counters.quantity + excluded.quantity")

# An event row: (customer_id, metric, quantity, occurred_at, month, transaction_id); more fields after these are
# ignored (services.usage carries what its check found).
EventRow = Sequence[Any]
_EVENT_COLUMNS = ("tenant_id", "customer_id", "metric", "quantity", "occurred_at", "month", "transaction_id", "recorded_at")
_SQLITE_INSERT = (f"INSERT INTO usage_events ({', '.join(_EVENT_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})")


class UsageRepository:
    """Usage counters, events and the plans they count under (services/usage.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @contextmanager
    def atomically(self) -> Iterator[None]:
        """Writes that stand or fall together (a savepoint); raises DuplicateEvent, with them undone, when one of the
        events written inside was recorded concurrently."""
        try:
            with self.conn.begin_nested():
                yield
        except IntegrityError as exc:
            raise DuplicateEvent(str(exc.orig)) from exc

    def live_plans(self, tenant_id: int,
                   keys: Sequence[str]) -> list[tuple[str, int, str, PendingChange | None, date, str, int]]:
        """The live main subscription of each of these customers: (key, customer id, plan, pending change,
        period start, status, catalog version), in subscription order."""
        rows = self.conn.execute(_PLANS, {"tenant_id": tenant_id, "keys": list(keys)}).all()
        return [(key, cid, plan, pending_from_json(pending), start, status, version)
                for key, cid, plan, pending, start, status, version in rows]

    def add_to_counter(self, customer_id: int, metric: str, month: date, count: int, cap: int | None) -> bool:
        """Add ``count`` to an existing monthly counter in one conditional UPDATE; False (nothing added) when the
        counter would pass ``cap``. One statement decides and counts, so parallel grants never pass the cap on SQLite
        (one writer at a time) or PostgreSQL (the row lock; the condition is re-checked on the committed row)."""
        params: dict[str, Any] = {"c_id": customer_id, "c_metric": metric, "c_month": month, "n": count}
        if cap is None:
            return self.conn.execute(_ADD, params).rowcount == 1
        return self.conn.execute(_ADD_CAPPED, {**params, "cap": cap}).rowcount == 1

    def used(self, customer_id: int, metric: str, month: date) -> int:
        """The monthly counter's quantity; 0 when it has none."""
        value = self.conn.execute(select(usage_counters.c.quantity).where(
            usage_counters.c.customer_id == customer_id, usage_counters.c.metric == metric,
            usage_counters.c.month == month)).scalar_one_or_none()
        return int(value or 0)

    def _upsert(self) -> Any:
        """An INSERT that can say ON CONFLICT (PostgreSQL and SQLite share the syntax)."""
        if self.conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        return upsert(usage_counters)

    def count(self, totals: dict[tuple[int, str, date], int]) -> None:
        """Add quantities to monthly counters by (customer id, metric, month), creating those missing.

        Increments, never overwrites, so concurrent writers never lose each other's counts; rows are written in key
        order, one lock order for every writer (PostgreSQL). On SQLite straight to the driver. A quantity of 0 only
        makes sure the counter exists (a conditional grant updates an existing row)."""
        if not totals:
            return
        ordered = sorted(totals.items())
        if self.conn.dialect.name == "sqlite":
            self.conn.exec_driver_sql(_SQLITE_COUNT, [(c, m, mo.isoformat(), q) for (c, m, mo), q in ordered])
            return
        stmt = self._upsert()
        stmt = stmt.on_conflict_do_update(index_elements=["customer_id", "metric", "month"],
                                          set_={"quantity": usage_counters.c.quantity + stmt.excluded.quantity})
        self.conn.execute(stmt, [{"customer_id": c, "metric": m, "month": mo, "quantity": q} for (c, m, mo), q in ordered])

    def known_transactions(self, tenant_id: int, transaction_ids: Sequence[str]) -> set[str]:
        """The ids among ``transaction_ids`` the tenant has already recorded (asked 500 at a time)."""
        found: set[str] = set()
        sqlite = self.conn.dialect.name == "sqlite"
        for i in range(0, len(transaction_ids), 500):
            chunk = list(transaction_ids[i:i + 500])
            if sqlite:  # the same query straight to the driver: no IN-list expansion and bind processing per call
                found.update(t for (t,) in self.conn.exec_driver_sql(
                    "SELECT transaction_id FROM usage_events WHERE tenant_id = ? AND transaction_id IN "
                    f"({', '.join('?' * len(chunk))})", (tenant_id, *chunk)))
                continue
            found.update(self.conn.execute(select(usage_events.c.transaction_id).where(
                usage_events.c.tenant_id == tenant_id, usage_events.c.transaction_id.in_(chunk))).scalars())
        return found

    def add_events(self, tenant_id: int, rows: Sequence[EventRow], now: datetime) -> None:
        """Insert event rows with one executemany; raises IntegrityError (inside :meth:`atomically`, DuplicateEvent)
        when a transaction id is already recorded.

        On SQLite the rows go to the driver's executemany as SQLAlchemy's SQLite types store them (instants in
        UTC as ``YYYY-MM-DD HH:MM:SS.ffffff``, dates as ``YYYY-MM-DD``, as :class:`UtcDateTime` and ``Date``
        would bind them), which skips bind processing per value; other databases take the Core insert.
        """
        if self.conn.dialect.name != "sqlite":
            self.conn.execute(insert(usage_events), [dict(zip(_EVENT_COLUMNS, (tenant_id, *r[:6], now), strict=True))
                                                     for r in rows])
            return
        months: dict[date, str] = {}
        recorded_at = sqlite_instant(now)
        self.conn.exec_driver_sql(_SQLITE_INSERT, [
            (tenant_id, r[0], r[1], r[2], sqlite_instant(r[3]), months.get(r[4]) or months.setdefault(r[4], r[4].isoformat()),
             r[5], recorded_at)
            for r in rows])
