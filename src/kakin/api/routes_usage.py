"""Usage events, quota grants and entitlements."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kakin.adapters.db.store import UnitOfWork
from kakin.services import entitlements, usage

from .app import Auth, read, tenant_of, write
from .routes_customers import _customer
from .schemas import INTEGRAL, NO_NUL, Instant

router = APIRouter(prefix="/v1", tags=["usage"])
Metric = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UsageEventIn(_Body):
    customer: Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
    metric: Metric
    quantity: Annotated[int, Field(ge=1, le=10**12), INTEGRAL]
    timestamp: Instant
    transaction_id: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]


class UsageBatchIn(_Body):
    events: Annotated[list[UsageEventIn], Field(min_length=1, max_length=usage.MAX_BATCH)]


class ConsumeIn(_Body):
    count: Annotated[int, Field(ge=1, le=10_000_000), INTEGRAL]
    transaction_id: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


@router.post("/usage_events", summary="Record up to 1,000 metered events; duplicates are reported, never counted twice")
def record_usage(request: Request, op: Auth, body: UsageBatchIn) -> Response:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        results = usage.record_events(uow, tenant_of(uow, op), [e.model_dump() for e in body.events],
                                      request.app.state.clock())
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("recorded", "duplicate", "refused")}
        return {"data": results, **counts}

    return write(request, op, body, work)


@router.post("/customers/{customer_id}/usage/{metric}/consume",
             summary="Grant N units of quota whole, or refuse (409 quota_exceeded) counting nothing")
def consume(request: Request, op: Auth, customer_id: str, metric: Annotated[str, "metric"], body: ConsumeIn) -> Response:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return usage.consume(uow, tenant_of(uow, op), customer_id, metric, body.count, row["now"],
                             transaction_id=body.transaction_id)

    return write(request, op, body, work)


@router.get("/customers/{customer_id}/entitlements",
            summary="What the customer may do now: features, quotas used and left, storage, seat state")
def get_entitlements(request: Request, op: Auth, customer_id: str) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return entitlements.entitlements(uow, tenant_of(uow, op), customer_id, row["now"])

    return read(request, op, work)  # type: ignore[no-any-return]
