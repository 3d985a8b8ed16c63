"""Queries of the operator console's figures and searches (``services.analytics``, ``services.search``): SQL only.

One repository on the unit of work's connection (``uow.reports``), like the others in this package. Every query
names the tenant, so another tenant's rows never appear. Grouping by month is done by the caller from per-day or per-month rows, so the
SQL is the same on SQLite and PostgreSQL. The indexes these queries use are in ``tables.py`` (migration 0022).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, literal, literal_column, or_, select, text, union
from sqlalchemy import table as text_table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import ColumnElement, Select

from .tables import (
    TRIGRAM_TABLES,
    credit_notes,
    customers,
    dashboard_marks,
    dashboard_sums,
    domain_verifications,
    invoices,
    members,
    subscriptions,
    usage_events,
)

PLAN = "plan"  # the product of a customer's main subscription (domain.account.PLAN)


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally (escape character \\)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


TRIGRAM = 3  # the shortest text the trigram indexes can find: shorter ones are matched by scanning
KINDS = ("invoice", "credit_note")  # their order among documents issued the same day
Sums = tuple[int, list[tuple[date, int]]]  # (the highest row id read, amounts per day)
FEW_CUSTOMERS = 2000  # a counterparty matching at most this many customers is searched through their documents


class ReportRepository:
    """The console's reads (dashboard figures, searches, the documents list) on one connection: ``uow.reports``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def recurring_plan_groups(self, tenant_id: int, statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Main subscriptions in ``statuses`` that have not ended, grouped by (plan, contract): ``customers`` (how many)
        and ``seats`` (their sum)."""
        q = select(subscriptions.c.plan, subscriptions.c.contract, func.count().label("customers"),
                   func.coalesce(func.sum(subscriptions.c.seats), 0).label("seats")).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.status.in_(list(statuses)),
            subscriptions.c.product == PLAN, subscriptions.c.ended.is_(False)).group_by(
            subscriptions.c.plan, subscriptions.c.contract)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def recurring_member_groups(self, tenant_id: int, statuses: Sequence[str],
                                plans: Sequence[str]) -> list[dict[str, Any]]:
        """As :func:`recurring_plan_groups` for ``plans`` only (those priced by registered users), with ``members``
        (the sum of their customers' registered users) and ``members_over_seats`` (registered users beyond seats,
        summed per customer)."""
        if not plans:
            return []
        over = case((customers.c.members > subscriptions.c.seats, customers.c.members - subscriptions.c.seats), else_=0)
        q = select(subscriptions.c.plan, subscriptions.c.contract,
                   func.coalesce(func.sum(customers.c.members), 0).label("members"),
                   func.coalesce(func.sum(over), 0).label("members_over_seats")).join(
            customers, customers.c.id == subscriptions.c.customer_id).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.status.in_(list(statuses)),
            subscriptions.c.product == PLAN, subscriptions.c.ended.is_(False),
            subscriptions.c.plan.in_(list(plans))).group_by(subscriptions.c.plan, subscriptions.c.contract)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def recurring_addon_groups(self, tenant_id: int, statuses: Sequence[str],
                               products: Sequence[str]) -> list[dict[str, Any]]:
        """Subscriptions to the add-ons ``products`` in ``statuses`` that have not ended, grouped by (product,
        contract): ``count``."""
        if not products:
            return []
        q = select(subscriptions.c.product, subscriptions.c.contract, func.count().label("count")).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.product.in_(list(products)),
            subscriptions.c.ended.is_(False), subscriptions.c.status.in_(list(statuses))).group_by(
            subscriptions.c.product, subscriptions.c.contract)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def recurring_addon_groups_under(self, tenant_id: int, statuses: Sequence[str],
                                     main_plans: Sequence[str]) -> list[dict[str, Any]]:
        """The part of :func:`recurring_addon_groups` whose customers' current main plan is one of ``main_plans`` (the
        plans that override an add-on's price), grouped by (product, contract, ``main_plan``): ``count``."""
        if not main_plans:
            return []
        main = subscriptions.alias("main")
        q = select(subscriptions.c.product, subscriptions.c.contract, main.c.plan.label("main_plan"),
                   func.count().label("count")).select_from(main).join(subscriptions, and_(
                       subscriptions.c.customer_id == main.c.customer_id, subscriptions.c.product != PLAN,
                       subscriptions.c.ended.is_(False), subscriptions.c.status.in_(list(statuses)))).where(
            main.c.tenant_id == tenant_id, main.c.product == PLAN, main.c.ended.is_(False),
            main.c.plan.in_(list(main_plans)), main.c.status != "canceled").group_by(
            subscriptions.c.product, subscriptions.c.contract, main.c.plan)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def customers_created(self, tenant_id: int, start: datetime, end: datetime) -> int:
        """How many of the tenant's customers were created in [start, end) (UTC instants)."""
        return int(self.conn.execute(select(func.count()).select_from(customers).where(
            customers.c.tenant_id == tenant_id, customers.c.created_at >= start, customers.c.created_at < end)).scalar_one())

    def customers_whose_plan_ended(self, tenant_id: int, start: date, end: date, paid_plans: Sequence[str],
                                   live_statuses: Sequence[str]) -> int:
        """How many customers had a main subscription on one of ``paid_plans`` end (``canceled_on``) in [start, end)
        and have none on a paid plan in ``live_statuses`` now (an upgrade or a withdrawn cancellation is not an end)."""
        if not paid_plans:
            return 0
        now_paid = subscriptions.alias("now_paid")
        q = select(func.count(func.distinct(subscriptions.c.customer_id))).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.product == PLAN,
            subscriptions.c.plan.in_(list(paid_plans)), subscriptions.c.canceled_on >= start,
            subscriptions.c.canceled_on < end,
            ~exists().where(now_paid.c.customer_id == subscriptions.c.customer_id, now_paid.c.product == PLAN,
                            now_paid.c.ended.is_(False), now_paid.c.plan.in_(list(paid_plans)),
                            now_paid.c.status.in_(list(live_statuses))))
        return int(self.conn.execute(q).scalar_one())

    def commit_ordered_ids(self) -> bool:
        """Whether new rows become visible in the order of their ids: SQLite has one writer at a time, so a row with a
        lower id is never committed after one with a higher id; PostgreSQL hands sequence values out before commit."""
        return self.conn.dialect.name == "sqlite"

    def invoice_sums(self, tenant_id: int, after_id: int, until_id: int | None = None) -> Sums:
        """The tenant's invoices with a row id in (``after_id``, ``until_id``] (every status: the summed columns never
        change): the highest row id among them (``after_id`` when none) and, per issue date, their sales before tax
        (``total + credit_applied − tax``: a credit balance applied is not a reduction of the sale)."""
        net = invoices.c.total + invoices.c.credit_applied - invoices.c.tax
        return self._sums(invoices, invoices.c.issued_on, net, after_id, until_id, invoices.c.tenant_id == tenant_id)

    def credit_note_sums(self, tenant_id: int, after_id: int, until_id: int | None = None) -> Sums:
        """As :func:`invoice_sums`, for credit notes: per issue date, the amounts returned before tax."""
        return self._sums(credit_notes, credit_notes.c.issued_on, credit_notes.c.total - credit_notes.c.tax,
                     after_id, until_id, credit_notes.c.tenant_id == tenant_id)

    def usage_sums(self, tenant_id: int, metric: str, after_id: int, until_id: int | None = None) -> Sums:
        """As :func:`invoice_sums`, for the tenant's recorded usage events of ``metric`` (an append-only log: a monthly
        counter is the sum of its events): per calendar month (its first day), the quantity."""
        return self._sums(usage_events, usage_events.c.month, usage_events.c.quantity, after_id, until_id,
                     and_(usage_events.c.tenant_id == tenant_id, usage_events.c.metric == metric))

    def _sums(self, table: Any, day: Any, amount: Any, after_id: int, until_id: int | None,
              condition: ColumnElement[bool]) -> Sums:
        q = select(day, func.sum(amount), func.max(table.c.id)).where(table.c.id > after_id, condition)
        if until_id is not None:
            q = q.where(table.c.id <= until_id)
        rows = self.conn.execute(q.group_by(day)).all()
        return max([after_id, *(int(r[2]) for r in rows)]), [(r[0], int(r[1])) for r in rows]

    def snapshot(self) -> tuple[int, int]:
        """PostgreSQL: (xmin, xmax) of the current snapshot — every transaction id below xmin has ended; none at or
        above xmax had started."""
        row = self.conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text, "
                                "pg_snapshot_xmax(pg_current_snapshot())::text")).one()
        return int(row[0]), int(row[1])

    def highest_id(self, table_name: str) -> int:
        """The highest row id of ``invoices``, ``credit_notes`` or ``usage_events`` (0 when empty): a primary-key lookup."""
        table = {"invoices": invoices, "credit_notes": credit_notes, "usage_events": usage_events}[table_name]
        return int(self.conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())

    def void_invoice_sums(self, tenant_id: int, start: date, end: date) -> list[tuple[date, int]]:
        """Per issue date in [start, end): the sales before tax of the tenant's void invoices (an unpaid 3-D Secure
        sign-up: invoiced, then voided), to take off the sums of :func:`invoice_sums`; from the partial index
        ``ix_invoices_void``."""
        net = invoices.c.total + invoices.c.credit_applied - invoices.c.tax
        q = select(invoices.c.issued_on, func.sum(net)).where(
            invoices.c.tenant_id == tenant_id, invoices.c.status == literal_column("'void'"), invoices.c.issued_on >= start,
            invoices.c.issued_on < end).group_by(invoices.c.issued_on)
        return [(r[0], int(r[1])) for r in self.conn.execute(q)]

    def open_amounts(self, tenant_id: int, today: date) -> tuple[int, int]:
        """(open, overdue): yen still due on open invoices (``total − credited``), and the part of it on invoices past
        due — a charge that failed (in dunning) or a bank transfer whose due date is before ``today``. Read from the
        partial index of open invoices (``ix_invoices_open``), which the status written as a literal lets the planner use."""
        due = invoices.c.total - invoices.c.credited
        late = or_(invoices.c.first_failed_at.is_not(None), and_(invoices.c.due_on.is_not(None), invoices.c.due_on < today))
        row = self.conn.execute(select(func.coalesce(func.sum(due), 0), func.coalesce(func.sum(case((late, due), else_=0)), 0)).where(
            invoices.c.tenant_id == tenant_id, invoices.c.status == literal_column("'open'"))).one()
        return int(row[0]), int(row[1])

    def _contains(self, column: Any, text: str) -> ColumnElement[bool]:
        """``column`` contains ``text``, ignoring the case of Latin letters: SQLite's LIKE already does (and twice as
        fast as over lower()), PostgreSQL's ILIKE."""
        pattern = _like(text)
        if self.conn.dialect.name == "sqlite":
            return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
        return column.ilike(pattern, escape="\\")  # type: ignore[no-any-return]

    def _contains_any(self, columns: Sequence[Any], text: str) -> ColumnElement[bool]:
        """One of ``columns`` (of one table: ``customers``' name and addressee, or ``members``' email) contains ``text``,
        as :func:`_contains` says, found through a trigram index (migration 0027).

        PostgreSQL: the ILIKE itself, which the planner answers from the GIN ``gin_trgm_ops`` indexes. SQLite: for a
        text of :data:`TRIGRAM` characters or more, the row ids the FTS5 trigram table matches with the text as a phrase
        (a substring, any case; its case folding covers more than Latin letters, so it finds a superset), then the LIKE
        on those rows only, which keeps the result exactly LIKE's (``%`` and ``_`` literal, Latin letters any case).
        A text of 1 or 2 characters has no trigram: it is the plain LIKE, which scans the column's index."""
        like = or_(*(self._contains(column, text) for column in columns))
        if self.conn.dialect.name != "sqlite" or len(text) < TRIGRAM:
            return like
        table = columns[0].table
        fts = next(name for name, (content, _) in TRIGRAM_TABLES.items() if content == table.name)
        names = " ".join(column.name for column in columns)
        phrase = "{" + names + '} : "' + text.replace('"', '""') + '"'
        found: Select[Any] = select(literal_column("rowid")).select_from(text_table(fts)).where(
            literal_column(fts).op("MATCH")(phrase))
        return and_(table.c.id.in_(found), like)

    def search_customers(self, tenant_id: int, *, text: str | None, plan: str | None, status: str | None,
                         deleted: bool | None, limit: int, after: int | None) -> list[dict[str, Any]]:
        """The tenant's customers in row-id order after ``after``, at most ``limit``, each with its current main
        subscription (``plan``, ``status``; None when it has none) and its super admin's ``email``.

        ``text`` matches a name or a member's e-mail containing it (case-insensitive), or exactly a customer id, a
        member id, the verified domain or a registered domain. ``plan`` and ``status`` filter on the current main
        subscription, ``deleted`` on 退会. The candidates are found first, each way by its own index or scan, so that
        the page is read from them rather than by walking every customer."""
        latest = subscriptions.alias("later")
        current = and_(subscriptions.c.customer_id == customers.c.id, subscriptions.c.product == PLAN,
                       subscriptions.c.ended.is_(False),
                       ~exists().where(latest.c.customer_id == customers.c.id, latest.c.product == PLAN,
                                       latest.c.ended.is_(False), latest.c.id > subscriptions.c.id))
        admin = members.alias("admin")
        q: Select[Any] = select(customers.c.id.label("row_id"), customers.c.key, customers.c.name, customers.c.created_at,
                                customers.c.deleted_on, customers.c.verified_domain, subscriptions.c.plan,
                                subscriptions.c.status, admin.c.email).select_from(customers).outerjoin(
            subscriptions, current).outerjoin(admin, and_(admin.c.customer_id == customers.c.id,
                                                          admin.c.role == "super_admin")).where(
            customers.c.tenant_id == tenant_id)
        if text:
            mine = customers.c.tenant_id == tenant_id
            candidates = union(
                select(customers.c.id).where(mine, self._contains_any([customers.c.name], text)),
                select(customers.c.id).where(mine, customers.c.key == text),
                select(customers.c.id).where(mine, customers.c.verified_domain == text),
                select(members.c.customer_id).where(members.c.tenant_id == tenant_id,
                                                    self._contains_any([members.c.email], text)),
                select(members.c.customer_id).where(members.c.tenant_id == tenant_id, members.c.public_id == text),
                select(domain_verifications.c.customer_id).where(domain_verifications.c.tenant_id == tenant_id,
                                                                 domain_verifications.c.domain == text))
            q = q.where(customers.c.id.in_(candidates))
        if plan is not None or status is not None:
            subscribed = select(subscriptions.c.customer_id).where(
                subscriptions.c.tenant_id == tenant_id, subscriptions.c.product == PLAN, subscriptions.c.ended.is_(False))
            if plan is not None:
                q, subscribed = q.where(subscriptions.c.plan == plan), subscribed.where(subscriptions.c.plan == plan)
            if status is not None:
                q, subscribed = q.where(subscriptions.c.status == status), subscribed.where(subscriptions.c.status == status)
            q = q.where(customers.c.id.in_(subscribed))
        if deleted is not None:
            q = q.where(customers.c.deleted_on.is_not(None) if deleted else customers.c.deleted_on.is_(None))
        if after is not None:
            q = q.where(customers.c.id > after)
        return [dict(r) for r in self.conn.execute(q.order_by(customers.c.id).limit(limit)).mappings()]

    def search_documents(self, tenant_id: int, *, kind: str | None, issued_from: date | None,
                         issued_to: date | None, amount_min: int | None, amount_max: int | None, counterparty: str | None,
                         limit: int, after: tuple[date, int, int] | None) -> list[dict[str, Any]]:
        """A page of the tenant's invoices and credit notes matching every condition given: newest issue date first,
        then invoices before credit notes, then by row id descending; at most ``limit`` after the position ``after`` =
        (issued_on, kind's place in :data:`KINDS`, row id) of the previous page's last one.

        Each row: ``kind``, ``rank`` (its place in KINDS), ``row_id``, ``number``, ``issued_on``, ``counterparty`` (the
        recipient the document was written with), ``customer`` (its key), ``total`` and ``tax`` (yen, tax included) and
        ``status`` (an invoice's status; a credit note's settlement). ``total`` is the stored document total: what an
        invoice asks to be paid, what a credit note returns. ``counterparty`` matches the customer: its name or
        addressee containing it (case-insensitive), or its id exactly. Each kind is read in index order with its own limit, then
        the two are merged.
        """
        found: list[dict[str, Any]] = []
        chosen: Any = None
        if counterparty is not None:  # the customers first: a few are looked up by id, many are checked on the way
            matching = union(select(customers.c.id).where(customers.c.tenant_id == tenant_id, self._contains_any([customers.c.name, customers.c.addressee], counterparty)),
                select(customers.c.id).where(customers.c.tenant_id == tenant_id, customers.c.key == counterparty))
            ids = list(self.conn.execute(matching.limit(FEW_CUSTOMERS + 1)).scalars())
            if not ids:
                return []
            chosen = ids if len(ids) <= FEW_CUSTOMERS else matching
        for rank, (name, table, status) in enumerate((("invoice", invoices, invoices.c.status),
                                                      ("credit_note", credit_notes, credit_notes.c.settlement))):
            if kind is not None and kind != name:
                continue
            q = select(literal(name).label("kind"), literal(rank).label("rank"), table.c.id.label("row_id"),
                       table.c.number, table.c.issued_on,
                       func.coalesce(table.c.recipient_name, customers.c.name).label("counterparty"),
                       customers.c.key.label("customer"), table.c.total, table.c.tax, status.label("status")).join(
                customers, customers.c.id == table.c.customer_id).where(table.c.tenant_id == tenant_id)
            if issued_from is not None:
                q = q.where(table.c.issued_on >= issued_from)
            if issued_to is not None:
                q = q.where(table.c.issued_on <= issued_to)
            if amount_min is not None:
                q = q.where(table.c.total >= amount_min)
            if amount_max is not None:
                q = q.where(table.c.total <= amount_max)
            if counterparty is not None:
                q = q.where(table.c.customer_id.in_(chosen))
            if after is not None:
                day, after_rank, row_id = after
                if rank > after_rank:
                    q = q.where(table.c.issued_on <= day)
                elif rank < after_rank:
                    q = q.where(table.c.issued_on < day)
                else:
                    q = q.where(or_(table.c.issued_on < day, and_(table.c.issued_on == day, table.c.id < row_id)))
            if isinstance(chosen, list):  # a few customers: their documents first (SQLite would walk every issue date)
                few = q.cte(f"few_{name}").prefix_with("MATERIALIZED")
                q = select(few).order_by(few.c.issued_on.desc(), few.c.row_id.desc()).limit(limit)
            else:
                q = q.order_by(table.c.issued_on.desc(), table.c.id.desc()).limit(limit)
            found.extend(dict(r) for r in self.conn.execute(q).mappings())
        found.sort(key=lambda r: (r["issued_on"], -r["rank"], r["row_id"]), reverse=True)
        return found[:limit]

    def stream_documents(self, tenant_id: int, *, batch: int = 1000, **conditions: Any) -> Iterator[dict[str, Any]]:
        """Every matching document (``conditions`` as for :func:`search_documents`, without limit and after), in its
        order, read ``batch`` at a time."""
        after: tuple[date, int, int] | None = None
        while True:
            rows = self.search_documents(tenant_id, limit=batch, after=after, **conditions)
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]
            after = (last["issued_on"], last["rank"], last["row_id"])

    def saved_mark(self, tenant_id: int, series: str) -> int:
        """The highest row id that the sums saved for (``tenant_id``, ``series``) cover; 0 when none are saved."""
        mark = self.conn.execute(select(dashboard_marks.c.settled).where(
            dashboard_marks.c.tenant_id == tenant_id, dashboard_marks.c.series == series)).scalar()
        return int(mark or 0)

    def saved_sums(self, tenant_id: int, series: str) -> tuple[int, list[tuple[date, int]]]:
        """The mark and the sums per day saved for (``tenant_id``, ``series``), read together by one statement (so a
        save committed meanwhile is seen whole or not at all): (0, []) when none are saved."""
        rows = self.conn.execute(select(dashboard_marks.c.settled, dashboard_sums.c.day, dashboard_sums.c.amount).outerjoin(
            dashboard_sums, and_(dashboard_sums.c.tenant_id == dashboard_marks.c.tenant_id,
                                 dashboard_sums.c.series == dashboard_marks.c.series)).where(
            dashboard_marks.c.tenant_id == tenant_id, dashboard_marks.c.series == series)).all()
        if not rows:
            return 0, []
        return int(rows[0][0]), [(r[1], int(r[2])) for r in rows if r[1] is not None]

    def save_sums(self, tenant_id: int, series: str, settled: int, sums: dict[date, int]) -> bool:
        """Replace the sums saved for (``tenant_id``, ``series``) by ``sums`` (per day, every row with an id up to
        ``settled``), unless what is saved already reaches ``settled``; returns whether they were replaced. The mark's
        row is updated first, so two workers saving at once take turns and the lower mark never overwrites the higher."""
        dialect = postgresql_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        self.conn.execute(dialect(dashboard_marks).values(tenant_id=tenant_id, series=series, settled=0).on_conflict_do_nothing())
        raised = self.conn.execute(dashboard_marks.update().where(
            dashboard_marks.c.tenant_id == tenant_id, dashboard_marks.c.series == series,
            dashboard_marks.c.settled < settled).values(settled=settled)).rowcount
        if not raised:
            return False
        self.conn.execute(dashboard_sums.delete().where(dashboard_sums.c.tenant_id == tenant_id,
                                                   dashboard_sums.c.series == series))
        if sums:
            self.conn.execute(dashboard_sums.insert(), [{"tenant_id": tenant_id, "series": series, "day": day, "amount": amount}
                                                   for day, amount in sorted(sums.items())])
        return True
