"""Reports for operators (read permission): the dashboard's figures, the customer search, and the search and CSV
export of invoices and credit notes (電子帳簿保存法). Thin routes over ``services.analytics`` and ``services.search``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.calendar import local_date
from kakin.services import analytics, search

from .app import Auth, decode_cursor, encode_cursor, read

router = APIRouter(prefix="/v1", tags=["reports"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
Text = Annotated[str | None, Query(max_length=200)]
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # a date as YYYY-MM-DD only (pydantic would also take a number of seconds)


def _date(value: str | None, param: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise errors.InvalidValue(f"{param} must be a date (YYYY-MM-DD)", param=param) from None


@router.get("/dashboard", summary="The dashboard's figures: MRR, ARR, customers per plan, revenue and messages per month")
def dashboard(request: Request, op: Auth,
              today: Annotated[str | None, Query(pattern=DATE, description="the tenant-local date (default: today)")] = None,
              ) -> Response:
    day = _date(today, "today") or local_date(request.app.state.clock(), ZoneInfo(op.tenant.timezone))
    return read(request, op, lambda uow: analytics.dashboard(uow, op.tenant, day).as_dict())  # type: ignore[no-any-return]


@router.get("/search/customers", summary="Search customers by name, e-mail, customer id, member id or domain")
def search_customers(request: Request, op: Auth, text: Text = None,
                     plan: Annotated[str | None, Query(max_length=40)] = None,
                     status: Annotated[str | None, Query(max_length=20)] = None, limit: Limit = 20,
                     cursor: Cursor = None) -> Response:
    after = decode_cursor(cursor)

    def page(uow: UnitOfWork) -> dict[str, Any]:
        rows = search.search_customers(uow, op.tenant, text, plan, status, limit, after)
        last = encode_cursor(rows[-1]["row_id"]) if len(rows) == limit else None
        return {"data": [{k: v for k, v in r.items() if k != "row_id"} for r in rows], "next_cursor": last}

    return read(request, op, page)  # type: ignore[no-any-return]


def _query(issued_from: str | None, issued_to: str | None, amount_min: int | None, amount_max: int | None,
           counterparty: str | None, kind: str | None, limit: int = 50, cursor: str | None = None) -> search.DocumentQuery:
    return search.DocumentQuery(issued_from=_date(issued_from, "issued_from"), issued_to=_date(issued_to, "issued_to"),
                                amount_min=amount_min,
                                amount_max=amount_max, counterparty=counterparty, kind=kind, limit=limit, after=cursor)


IssuedFrom = Annotated[str | None, Query(pattern=DATE, description="issued on or after this date (YYYY-MM-DD)")]
IssuedTo = Annotated[str | None, Query(pattern=DATE, description="issued on or before this date (YYYY-MM-DD)")]
AmountMin = Annotated[int | None, Query(description="total, tax included, at least (yen)")]
AmountMax = Annotated[int | None, Query(description="total, tax included, at most (yen)")]
Kind = Annotated[str | None, Query(description="invoice or credit_note")]


@router.get("/documents", summary="Search invoices and credit notes by issue date, amount and counterparty (電子帳簿保存法)")
def search_documents(request: Request, op: Auth, issued_from: IssuedFrom = None, issued_to: IssuedTo = None,
                     amount_min: AmountMin = None, amount_max: AmountMax = None, counterparty: Text = None,
                     kind: Kind = None, limit: Limit = 50, cursor: Cursor = None) -> Response:
    query = _query(issued_from, issued_to, amount_min, amount_max, counterparty, kind, limit, cursor)

    def page(uow: UnitOfWork) -> dict[str, Any]:
        rows = search.search_documents(uow, op.tenant, query)
        last = rows[-1]["cursor"] if len(rows) == limit else None
        return {"data": [{k: v for k, v in r.items() if k != "cursor"} for r in rows], "next_cursor": last}

    return read(request, op, page)  # type: ignore[no-any-return]


@router.get("/documents.csv", summary="Every matching invoice and credit note as CSV (UTF-8 with BOM, for Excel)",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
def documents_csv(request: Request, op: Auth, issued_from: IssuedFrom = None, issued_to: IssuedTo = None,
                  amount_min: AmountMin = None, amount_max: AmountMax = None, counterparty: Text = None,
                  kind: Kind = None) -> StreamingResponse:
    op.require("read")
    query = _query(issued_from, issued_to, amount_min, amount_max, counterparty, kind)
    uow = UnitOfWork(request.app.state.engine, readonly=True)
    uow.__enter__()
    try:
        chunks = search.documents_csv(uow, op.tenant, query)  # the conditions are checked here, before any byte
    except BaseException as exc:
        uow.__exit__(type(exc), exc, exc.__traceback__)
        raise

    def body() -> Iterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk.encode("utf-8")
        finally:
            uow.__exit__(None, None, None)

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="documents.csv"'})
