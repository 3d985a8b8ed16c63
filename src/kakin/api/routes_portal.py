"""Portal sessions for the vendor's backend, and the upcoming invoice."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kakin.services import authorization, portal, upcoming

from .app import Auth, read, tenant_of, write
from .schemas import NO_NUL

router = APIRouter(prefix="/v1", tags=["portal"])


class PortalSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    customer: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
    member: Annotated[str, Field(min_length=1, max_length=40, pattern=NO_NUL)]
    locale: Literal["ja", "en"] = "ja"
    return_url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://[^\x00-\x20]+$")]


@router.post("/portal_sessions", status_code=201,
             summary="A one-time link (5 minutes) that opens the customer portal for one member of a customer")
def create_portal_session(request: Request, op: Auth, body: PortalSessionIn) -> Response:
    def work(uow: Any) -> dict[str, Any]:
        token, expires_at = portal.create_link(uow, op.tenant, body.customer, body.member, body.locale, body.return_url,
                                               request.app.state.clock())
        return {"url": str(request.base_url).rstrip("/") + f"/portal/open/{token}", "expires_at": expires_at}

    return write(request, op, body, work, status=201)


@router.get("/customers/{customer_id}/upcoming_invoice",
            summary="The next invoice the customer will be issued if nothing changes (null when none is due within 400 days)")
def upcoming_invoice(request: Request, op: Auth, customer_id: str) -> Any:
    def work(uow: Any) -> dict[str, Any]:
        row = authorization.customer_for(uow, op, customer_id, request.app.state.clock)
        return {"customer": customer_id, "upcoming_invoice": upcoming.upcoming_invoice(
            uow, tenant_of(uow, op), customer_id, row["now"])}

    return read(request, op, work)
