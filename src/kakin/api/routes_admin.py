"""The catalog as a price page, invoices, the audit log, webhook endpoints and test clocks."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.calendar import instant_text
from kakin.services import access, catalogs, clocks, price_page, tenancy, webhooks
from kakin.services.presenters import invoice_json

from .app import Auth, decode_cursor, forget_keys, paged, read, tenant_of, write
from .schemas import AdvanceIn, CatalogVersionIn, TenantIn, TestClockIn, WebhookEndpointIn

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/tenant", tags=["tenant"], summary="The vendor: the issuer its qualified invoices name")
def get_tenant(request: Request, op: Auth) -> dict[str, Any]:
    return read(request, op, lambda uow: tenancy.tenant_view(tenant_of(uow, op)))  # type: ignore[no-any-return]


@router.patch("/tenant", tags=["tenant"],
              summary="Change the vendor's name, registration number (T + 13 digits) or address (owner); later documents "
                      "name the new issuer, earlier ones keep theirs")
def update_tenant(request: Request, op: Auth, body: TenantIn) -> Response:
    return write(request, op, body, lambda uow: tenancy.tenant_view(tenancy.update_tenant(
        uow, op, request.app.state.clock(), name=body.name, registration_number=body.registration_number,
        address=body.address)), permission=None)


@router.get("/catalog", tags=["catalog"], summary="Plans and prices as the vendor's price page shows them: the catalog "
            "version in force now, or version N")
def catalog(request: Request, op: Auth, version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        if version is None:
            return price_page.price_page(tenancy.open_tenant(uow, op.tenant.code, request.app.state.clock()).catalog)
        return price_page.price_page(catalogs.version_catalog(uow, op.tenant, version))

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/catalog/versions", tags=["catalog"],
            summary="The catalog's published versions: hash, who published it, when it takes effect, what it does to "
                    "existing subscriptions, and which is in force")
def catalog_versions(request: Request, op: Auth) -> dict[str, Any]:
    return read(request, op, lambda uow: {  # type: ignore[no-any-return]
        "data": catalogs.versions_view(uow, op.tenant, request.app.state.clock())})


@router.post("/catalog/versions", tags=["catalog"], status_code=201,
             responses={200: {"description": "A dry run: the changes and the subscribers per plan; nothing published"}},
             summary="Publish a catalog file as the next version (owner): new subscriptions take it from `effective`; "
                     "existing ones move at their next period or never. `dry_run` shows the changes and publishes "
                     "nothing; a version that drops a plan with subscribers without [plan_moves] is refused (409)")
def publish_catalog_version(request: Request, op: Auth, body: CatalogVersionIn) -> Response:
    op.require("manage")
    return write(request, op, body, lambda uow: catalogs.publish(
        uow, op.tenant, body.content, body.source, effective_at=body.effective, existing=body.existing, actor=op.actor,
        now=request.app.state.clock(), dry_run=body.dry_run), status=200 if body.dry_run else 201, permission="manage")


@router.get("/invoices", tags=["invoices"], summary="All invoices, newest last (cursor pagination)")
def list_invoices(request: Request, op: Auth, limit: Limit = 20, cursor: Cursor = None) -> dict[str, Any]:
    after = decode_cursor(cursor)

    def work(uow: UnitOfWork) -> dict[str, Any]:
        return paged(uow.invoices_for(op.tenant, after=after, limit=limit + 1), limit, invoice_json)

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/invoices/{number}", tags=["invoices"], summary="One invoice with its lines")
def get_invoice(request: Request, op: Auth, number: Annotated[str, "invoice number"]) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        found = [r for r in uow.invoices_for(op.tenant, number=number)]
        if not found:
            raise errors.NotFound(f"no invoice {number!r}", param="number")
        return invoice_json(found[0])

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/audit_log", tags=["audit"], summary="Every state change: who (the key and the acting member), the customer, what, when, before and after")
def audit_log(request: Request, op: Auth, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    after = decode_cursor(cursor)

    def work(uow: UnitOfWork) -> dict[str, Any]:
        rows = uow.listing.page("audit_log", op.tenant.id, after, limit)
        keys = uow.customer_records.keys({r["customer_id"] for r in rows if r["customer_id"] is not None})
        return paged(rows, limit, lambda r: {
            "at": r["at"], "actor": r["actor"], "member": r["member"], "customer": keys.get(r["customer_id"]),
            "action": r["action"], "before": json.loads(r["before"]) if r["before"] else None,
            "after": json.loads(r["after"]) if r["after"] else None})

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/api_keys", tags=["api keys"], summary="The tenant's API keys (prefix, role, name; never the key)")
def list_api_keys(request: Request, op: Auth) -> dict[str, Any]:
    op.require("manage")
    return read(request, op, lambda uow: {"data": access.list_api_keys(uow, op.tenant), "next_cursor": None})  # type: ignore[no-any-return]


@router.post("/api_keys/{prefix}/revoke", tags=["api keys"], summary="Revoke a key: it stops working at once")
def revoke_api_key(request: Request, op: Auth, prefix: Annotated[str, Path(max_length=24, pattern="^kk_[0-9a-f]+$")]) -> Response:
    op.require("manage")
    response = write(request, op, None, lambda uow: access.revoke_api_key(uow, op.tenant, prefix, request.app.state.clock(),
                                                                          op.actor))
    forget_keys(request)  # no cached authentication outlives a revocation in this process
    return response


@router.post("/webhook_endpoints", status_code=201, tags=["webhooks"],
             summary="Add an endpoint; its signing secret is shown once")
def create_webhook_endpoint(request: Request, op: Auth, body: WebhookEndpointIn) -> Response:
    return write(request, op, body, lambda uow: webhooks.create_endpoint(uow, op, body.url, body.events,
                                                                         request.app.state.clock()), status=201,
                 permission=None)


@router.get("/webhook_endpoints", tags=["webhooks"], summary="The tenant's webhook endpoints")
def list_webhook_endpoints(request: Request, op: Auth) -> dict[str, Any]:
    return read(request, op, lambda uow: {"data": webhooks.endpoints(uow, op), "next_cursor": None})  # type: ignore[no-any-return]


@router.get("/webhook_endpoints/{endpoint_id}/deliveries", tags=["webhooks"], summary="The delivery log of an endpoint")
def list_deliveries(request: Request, op: Auth, endpoint_id: str) -> dict[str, Any]:
    return read(request, op, lambda uow: {"data": webhooks.deliveries(uow, op, endpoint_id),  # type: ignore[no-any-return]
                                          "next_cursor": None})


@router.post("/webhook_deliveries/{delivery_id}/resend", tags=["webhooks"],
             summary="Send a delivered or failed delivery again at the worker's next pass (owner)")
def resend_delivery(request: Request, op: Auth, delivery_id: Annotated[str, Path(max_length=40)]) -> Response:
    return write(request, op, None, lambda uow: webhooks.resend(uow, op, delivery_id, request.app.state.clock()),
                 permission=None)


@router.post("/test_clocks", status_code=201, tags=["test clocks"], summary="Create a clock frozen at a time")
def create_test_clock(request: Request, op: Auth, body: TestClockIn) -> Response:
    asked = body.frozen_time.tzinfo  # the answer gives the clock's time in the offset it was asked in
    return write(request, op, body, lambda uow: {
        **clocks.create_clock(uow, op.tenant, body.name, body.frozen_time, request.app.state.clock()),
        "frozen_time": instant_text(body.frozen_time, asked or UTC)}, status=201)


@router.get("/test_clocks/{clock_id}", tags=["test clocks"], summary="A test clock")
def get_test_clock(request: Request, op: Auth, clock_id: str) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        clock = uow.test_clocks.get(op.tenant.id, clock_id)
        if clock is None:
            raise errors.NotFound(f"no test clock {clock_id!r}", param="clock_id")
        return {"id": clock["public_id"], "name": clock["name"], "frozen_time": clock["frozen_time"]}

    return read(request, op, work)  # type: ignore[no-any-return]


@router.post("/test_clocks/{clock_id}/advance", tags=["test clocks"],
             summary="Move the clock forward; everything due for its customers happens")
def advance_test_clock(request: Request, op: Auth, clock_id: str, body: AdvanceIn) -> dict[str, Any]:
    op.require("write")
    advanced = clocks.advance_clock(request.app.state.engine, op.tenant, clock_id, body.frozen_time,
                                    request.app.state.gateway)
    return {**advanced, "frozen_time": instant_text(body.frozen_time, body.frozen_time.tzinfo or UTC)}  # in the offset asked
