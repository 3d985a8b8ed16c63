"""Account aggregates in the store: load a batch of customers whole (one query per table), save what changed,
and the invoice states a payment or dunning leaves. Part of :class:`~kakin.adapters.db.store.UnitOfWork`; its
locks follow the order the store's docstring gives."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from kakin.domain.account import Account, OpenInvoice, PendingItem, Phase, Status, Subscription, phases_from
from kakin.domain.invoice import Line, LineKind

from .bulk import driver_level, in_ids, insert_many, sqlite_instant, update_many
from .codecs import pending_from_json as _pending_from_json
from .codecs import pending_to_json as _pending_to_json
from .rows import INVOICE_STATE, TenantRow, UnitOfWorkState, parse_rate, rate_text
from .tables import (
    customers,
    invoices,
    pending_items,
    subscription_phases,
    subscriptions,
    usage_counters,
)


class AccountStore(UnitOfWorkState):
    """Account aggregates on the unit of work's connection (a part of ``UnitOfWork``)."""

    def changed_accounts(self, customer_ids: Sequence[int]) -> set[int]:
        """Lock these customers (PostgreSQL; in the store's lock order) and return those saved by another
        transaction since this unit of work (or the one it adopted) loaded or saved them."""
        q = select(customers.c.id, customers.c.version).where(in_ids(self.conn, customers.c.id, set(customer_ids)))
        if self.conn.dialect.name == "postgresql":
            q = q.order_by(customers.c.id).with_for_update()
        return {int(i) for i, v in self.conn.execute(q).all() if self._versions.get(int(i)) != v}

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
                tax_rate=rate_text(ln.tax_rate), catalog_version=ln.catalog_version,
                created_at=now).returning(pending_items.c.id)).scalar_one()
        for a in accounts:
            assert a.id is not None
            self._pending_ids[a.id] = {p.id for p in a.pending_items if p.id is not None}
        self.save_invoice_states([inv for a in accounts for inv in a.open_invoices if inv.id], now)
        for a in accounts:
            a.open_invoices = [inv for inv in a.open_invoices if inv.status == "open"]


    def save_invoice_states(self, open_invoices: Iterable[OpenInvoice], now: datetime) -> None:
        """Write the payment and dunning state of invoices (paid now when their status says so); one written
        by this transaction and unchanged since is left alone."""
        rows = []
        for inv in open_invoices:
            state = (inv.status, inv.attempts, inv.first_failed_at, inv.next_retry_at,
                     now if inv.status == "paid" else None, inv.deferred, inv.expires_at)
            if self._written.get(inv.id) != state:
                rows.append((inv.id, dict(zip(INVOICE_STATE, state, strict=True))))
        update_many(self.conn, invoices, INVOICE_STATE, rows)

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
