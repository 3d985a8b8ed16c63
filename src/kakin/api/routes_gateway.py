"""Events from the payment gateway (Stripe webhooks), checked by their signature."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.services import payments
from kakin.services.tenancy import open_tenant

router = APIRouter(prefix="/v1/gateway", tags=["payment gateway"])


@router.post("/stripe/{tenant_code}/webhook", summary="Stripe webhook: a payment that succeeded (e.g. after 3-D Secure)")
async def stripe_webhook(request: Request, tenant_code: str) -> dict[str, Any]:
    """Only reading the body is awaited here; checking the signature and the database work run in the threadpool,
    so a slow database or gateway never blocks the event loop (and with it every other request)."""
    payload = await request.body()
    return await run_in_threadpool(_handle, request, tenant_code, payload)


def _handle(request: Request, tenant_code: str, payload: bytes) -> dict[str, Any]:
    gateway = request.app.state.gateway
    verify = getattr(gateway, "verify_webhook", None)
    if verify is None:
        raise errors.NotFound("Stripe is not configured on this server", param="tenant_code")
    try:
        event = verify(payload, request.headers.get("Stripe-Signature", ""))
    except Exception:  # a forged, stale or malformed signature: refused, nothing done
        raise errors.InvalidSignature("the Stripe-Signature header does not match this payload",
                                      param="Stripe-Signature") from None
    if event.get("type") != "payment_intent.succeeded":
        return {"received": True, "handled": False}
    data = event.get("data")
    intent = data.get("object") if isinstance(data, dict) else None
    if not isinstance(intent, dict) or not isinstance(intent.get("id"), str) or not intent["id"]:
        raise errors.InvalidValue("a payment_intent.succeeded event must carry data.object with the payment intent's "
                                  "id", param="data.object")
    reference = intent["id"]
    with UnitOfWork(request.app.state.engine) as uow:
        tenant = open_tenant(uow, tenant_code)
        result = payments.payment_reference_succeeded(uow, tenant, gateway, reference, request.app.state.clock())
    return {"received": True, "handled": True, **result}
