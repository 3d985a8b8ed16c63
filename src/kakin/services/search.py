"""The operator console's searches (issue 12): customers, and invoices and credit notes as 電子帳簿保存法 asks.

電子帳簿保存法 (the electronic bookkeeping act) asks that stored transaction documents can be found by issue date
(a range), amount (a range) and counterparty, each alone or combined: :class:`DocumentQuery` holds those
conditions, :func:`search_documents` answers a page, :func:`documents_csv` every match as CSV for Excel. Bad input
is refused with ``invalid_value`` (or ``invalid_cursor``, ``unknown_plan``) naming the field, before any query.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kakin.adapters.catalog_files import resolve_catalog
from kakin.adapters.db import reports_repo
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.account import Status

from .tenancy import Tenant

MAX_LIMIT = 100  # a page of a list, as everywhere in the API
MAX_TEXT = 200  # characters of a search text
DELETED = "deleted"  # the status filter for customers that deleted their organization (退会)
STATUSES = (*(s.value for s in Status), DELETED)
KINDS = reports_repo.KINDS
CSV_COLUMNS = ("number", "kind", "issued_on", "counterparty", "customer", "total", "tax", "status")
CSV_BATCH = 1000  # documents read and written per chunk of the CSV


def _row(tenant: TenantRow | Tenant) -> TenantRow:
    return tenant.row if isinstance(tenant, Tenant) else tenant


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidValue(f"limit must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    return limit


def _text(value: str | None, param: str) -> str | None:
    """A search text stripped (None when empty); refused when too long or holding a control character."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidValue(f"{param} must be text", param=param)
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise errors.InvalidValue(f"{param} must be at most {MAX_TEXT} characters", param=param)
    if any(ord(ch) < 32 for ch in value):
        raise errors.InvalidValue(f"{param} must not contain control characters", param=param)
    return value or None


def search_customers(uow: UnitOfWork, tenant_row: TenantRow | Tenant, text: str | None, plan: str | None,
                     status: str | None, limit: int, after: int | None) -> list[dict[str, Any]]:
    """Customers of the tenant matching every filter given, in creation order (row id), a page at a time.

    ``text`` matches a customer whose name or a member's e-mail contains it (case-insensitive), or whose customer
    id, member id (``mem_…``), verified domain or registered domain is exactly it. ``plan`` (a catalog plan code)
    and ``status`` (``active``, ``trialing``, ``past_due``, ``suspended``, ``canceled``, ``incomplete``) filter on
    the customer's current main subscription; ``status="deleted"`` finds customers that deleted their organization.
    ``limit``: 1–100; ``after``: the ``row_id`` of the previous page's last customer.

    Each row: ``id`` (the customer id), ``name``, ``email`` (the super admin's), ``plan``, ``status`` (None
    without a subscription), ``deleted_on``, ``verified_domain``, ``created_at``, ``row_id``. Raises InvalidValue
    (``text``, ``status``, ``limit``, ``after``) and UnknownPlan (``plan``).
    """
    row = _row(tenant_row)
    text = _text(text, "text")
    _limit(limit)
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
        raise errors.InvalidValue("after must be the row_id of a customer this search returned", param="after")
    if plan is not None:
        catalog = tenant_row.catalog if isinstance(tenant_row, Tenant) else resolve_catalog(row.catalog)
        catalog.plan(plan)  # UnknownPlan, naming the plans there are
    if status is not None and status not in STATUSES:
        raise errors.InvalidValue(f"status must be one of: {', '.join(STATUSES)}", param="status")
    found = uow.reports.search_customers(row.id, text=text, plan=plan,
        status=None if status == DELETED else status, deleted=True if status == DELETED else None,
        limit=limit, after=after)
    return [{"id": r["key"], "name": r["name"], "email": r["email"], "plan": r["plan"], "status": r["status"],
             "deleted_on": r["deleted_on"], "verified_domain": r["verified_domain"], "created_at": r["created_at"],
             "row_id": r["row_id"]} for r in found]


@dataclass(frozen=True)
class DocumentQuery:
    """What to look for among invoices and credit notes; every condition given must hold (None: any).

    ``issued_from`` / ``issued_to``: issue dates, both inclusive. ``amount_min`` / ``amount_max``: the document's
    total in yen, tax included, both inclusive (an invoice's total: what it asks to be paid; a credit note's: what
    it returns). ``counterparty``: the customer — its name or addressee (宛名) containing the text, or its id.
    ``kind``: ``invoice`` or ``credit_note``. ``limit``: 1–100 per page; ``after``: the ``cursor`` of the previous
    page's last row.
    """

    issued_from: date | None = None
    issued_to: date | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    counterparty: str | None = None
    kind: str | None = None
    limit: int = 50
    after: str | None = None


_CURSOR = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\.([01])\.([0-9]{1,18})")


def _cursor(row: dict[str, Any]) -> str:
    return f"{row['issued_on'].isoformat()}.{row['rank']}.{row['row_id']}"


def _conditions(query: DocumentQuery) -> dict[str, Any]:
    """The query's conditions checked, as ``uow.reports.search_documents`` takes them (without limit and after)."""
    for param in ("issued_from", "issued_to"):
        value = getattr(query, param)
        if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
            raise errors.InvalidValue(f"{param} must be a date (YYYY-MM-DD)", param=param)
    if query.issued_from is not None and query.issued_to is not None and query.issued_from > query.issued_to:
        raise errors.InvalidValue(f"issued_to ({query.issued_to}) is before issued_from ({query.issued_from}): "
                                  "give the earlier date first", param="issued_to")
    for param in ("amount_min", "amount_max"):
        value = getattr(query, param)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise errors.InvalidValue(f"{param} must be a whole number of yen, 0 or more", param=param)
    if query.amount_min is not None and query.amount_max is not None and query.amount_min > query.amount_max:
        raise errors.InvalidValue(f"amount_max ({query.amount_max}) is below amount_min ({query.amount_min}): "
                                  "give the smaller amount as amount_min", param="amount_max")
    if query.kind is not None and query.kind not in KINDS:
        raise errors.InvalidValue(f"kind must be one of: {', '.join(KINDS)}", param="kind")
    counterparty = _text(query.counterparty, "counterparty")
    return {"kind": query.kind, "issued_from": query.issued_from, "issued_to": query.issued_to,
            "amount_min": query.amount_min, "amount_max": query.amount_max,
            "counterparty": counterparty}


def _document(r: dict[str, Any]) -> dict[str, Any]:
    return {"number": r["number"], "kind": r["kind"], "issued_on": r["issued_on"], "counterparty": r["counterparty"],
            "customer": r["customer"], "total": r["total"], "tax": r["tax"], "status": r["status"]}


def search_documents(uow: UnitOfWork, tenant_row: TenantRow | Tenant, query: DocumentQuery) -> list[dict[str, Any]]:
    """A page of the tenant's invoices and credit notes matching ``query``: newest issue date first (invoices
    before credit notes of the same day, then latest first).

    Each row: ``number``, ``kind`` (``invoice`` | ``credit_note``), ``issued_on``, ``counterparty`` (the recipient
    the document was written with), ``customer`` (the customer id), ``total`` and ``tax`` (yen, tax included),
    ``status`` (an invoice's ``open`` / ``paid`` / ``uncollectible`` / ``void``; a credit note's settlement
    ``refund`` / ``credit`` / ``reduce``) and ``cursor`` (pass it as ``after`` for the next page). Raises
    InvalidValue naming the field (an inverted date or amount range, a negative amount, an unknown kind, a limit
    outside 1–100) and InvalidCursor (``after``).
    """
    conditions = _conditions(query)
    _limit(query.limit)
    after = None
    if query.after is not None:
        match = _CURSOR.fullmatch(query.after) if isinstance(query.after, str) else None
        try:
            after = (date.fromisoformat(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None
        except ValueError:
            after = None
        if after is None:
            raise errors.InvalidCursor("after is not a cursor this search returned", param="after")
    rows = uow.reports.search_documents(_row(tenant_row).id, limit=query.limit, after=after, **conditions)
    return [{**_document(r), "cursor": _cursor(r)} for r in rows]


def _cell(value: Any) -> Any:
    """A CSV cell; text that Excel would take for a formula (= + - @ first) is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def documents_csv(uow: UnitOfWork, tenant_row: TenantRow | Tenant, query: DocumentQuery) -> Iterator[str]:
    """Every document matching ``query`` (its limit and after are ignored) as CSV, in the order of
    :func:`search_documents`: chunks of text, the first a UTF-8 byte order mark (so Excel reads the Japanese
    names) and the header row (:data:`CSV_COLUMNS`), then up to :data:`CSV_BATCH` rows each (CRLF line ends).

    The conditions are checked before the first chunk (InvalidValue as :func:`search_documents`); the rows are
    read as the chunks are taken, so ``uow`` must stay open until the iterator is exhausted."""
    conditions = _conditions(query)
    tenant_id = _row(tenant_row).id

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield "\ufeff" + buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        n = 0
        for r in uow.reports.stream_documents(tenant_id, batch=CSV_BATCH, **conditions):
            d = _document(r)
            writer.writerow([_cell(d[c].isoformat() if c == "issued_on" else d[c]) for c in CSV_COLUMNS])
            n += 1
            if n % CSV_BATCH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()

    return chunks()
