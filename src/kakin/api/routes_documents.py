"""Qualified invoices and receipts as JSON and PDF; the billing profile printed on them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kakin.adapters.db.store import UnitOfWork
from kakin.services import documents

from .app import Auth, read, tenant_of, write

router = APIRouter(prefix="/v1", tags=["documents"])


class BillingProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    addressee: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    postal_code: Annotated[str, Field(max_length=8)] | None = None
    address: Annotated[str, Field(max_length=500)] | None = None
    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


@router.post("/customers/{customer_id}/billing_profile", summary="Addressee (宛名), postal code, address, billing e-mail")
def set_billing_profile(request: Request, op: Auth, customer_id: str, body: BillingProfileIn) -> Response:
    return write(request, op, body, lambda uow: documents.set_billing_profile(
        uow, op.tenant, customer_id, addressee=body.addressee, postal_code=body.postal_code, address=body.address,
        email=body.email, now=request.app.state.clock(), actor=op.actor))


def _pdf(doc: dict[str, Any]) -> Response:
    from kakin.adapters.pdf import render_pdf

    return Response(render_pdf(doc), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{doc["number"]}.pdf"'})


@router.get("/invoices/{number}/document", summary="The invoice as a qualified invoice (適格請求書), JSON")
def invoice_document(request: Request, op: Auth, number: str) -> dict[str, Any]:
    return read(request, op, lambda uow: documents.invoice_document(uow, tenant_of(uow, op), number))  # type: ignore[no-any-return]


@router.get("/invoices/{number}/document.pdf", summary="The qualified invoice as a PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def invoice_pdf(request: Request, op: Auth, number: str) -> Response:
    return _pdf(read(request, op, lambda uow: documents.invoice_document(uow, tenant_of(uow, op), number)))


@router.get("/invoices/{number}/receipt", summary="The receipt (領収証) of a paid invoice, JSON")
def receipt(request: Request, op: Auth, number: str) -> dict[str, Any]:
    return read(request, op, lambda uow: documents.receipt_document(uow, tenant_of(uow, op), number))  # type: ignore[no-any-return]


@router.get("/invoices/{number}/receipt.pdf", summary="The receipt as a PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def receipt_pdf(request: Request, op: Auth, number: str) -> Response:
    return _pdf(read(request, op, lambda uow: documents.receipt_document(uow, tenant_of(uow, op), number)))


__all__ = ["UnitOfWork", "router"]
