"""Qualified invoices and receipts as JSON and PDF; the billing profile printed on them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kakin.services import documents, operations, payments

from .app import Auth, read, read_value, tenant_of, write
from .routes_customers import ActingMember
from .schemas import INTEGRAL, NO_NUL, Email

router = APIRouter(prefix="/v1", tags=["documents"])


class BillingProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    addressee: Annotated[str, Field(min_length=1, max_length=300, pattern=NO_NUL)] | None = None
    postal_code: Annotated[str, Field(max_length=8, pattern=NO_NUL)] | None = None
    address: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = None
    email: Email | None = None


@router.post("/customers/{customer_id}/billing_profile", summary="Addressee (宛名), postal code, address, billing e-mail")
def set_billing_profile(request: Request, op: Auth, customer_id: str, body: BillingProfileIn,
                        member: ActingMember = None) -> Response:
    """With ``Kakin-Acting-Member``, that member must be the customer's super admin (403 super_admin_required)."""
    return write(request, op, body, lambda uow: documents.change_billing_profile(
        uow, op.acting_for(member), customer_id, request.app.state.clock, addressee=body.addressee,
        postal_code=body.postal_code, address=body.address, email=body.email))


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
    return _pdf(read_value(request, op, lambda uow: documents.invoice_document(uow, tenant_of(uow, op), number)))


@router.get("/invoices/{number}/receipt", summary="The receipt (領収証) of a paid invoice, JSON")
def receipt(request: Request, op: Auth, number: str) -> dict[str, Any]:
    return read(request, op, lambda uow: documents.receipt_document(uow, tenant_of(uow, op), number))  # type: ignore[no-any-return]


@router.get("/invoices/{number}/receipt.pdf", summary="The receipt as a PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def receipt_pdf(request: Request, op: Auth, number: str) -> Response:
    return _pdf(read_value(request, op, lambda uow: documents.receipt_document(uow, tenant_of(uow, op), number)))


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    collection: Annotated[str, Field(pattern=r"^(card|bank_transfer)$")]


class MarkPaidIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reference: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00]*$")] | None = None


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount: Annotated[int, Field(ge=1, le=10**12), INTEGRAL]
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
    refund: bool = True


@router.post("/customers/{customer_id}/collection", summary="Enable bank transfer (請求書払い) or card payment (operators)")
def set_collection(request: Request, op: Auth, customer_id: str, body: CollectionIn) -> Response:
    return write(request, op, body, lambda uow: operations.set_collection(
        uow, tenant_of(uow, op), request.app.state.gateway, op, customer_id, body.collection, request.app.state.clock()),
        permission=None)


@router.post("/customers/{customer_id}/restore_payment",
             summary="支払い情報を復元: settle open invoices whose payment succeeded at the gateway")
def restore_payment(request: Request, op: Auth, customer_id: str) -> Response:
    return write(request, op, None, lambda uow: payments.restore_payment(
        uow, tenant_of(uow, op), request.app.state.gateway, customer_id, request.app.state.clock(), op.actor))


@router.get("/customers/{customer_id}/invoices/{number}/payment",
            summary="The invoice's latest payment at the gateway; while it awaits 3-D Secure, its client secret")
def payment_status(request: Request, op: Auth, customer_id: str, number: str) -> dict[str, Any]:
    return read(request, op, lambda uow: payments.payment_status(  # type: ignore[no-any-return]
        uow, tenant_of(uow, op), request.app.state.gateway, customer_id, number))


@router.post("/invoices/{number}/mark_paid", summary="Record a bank transfer received for an open invoice (operators)")
def mark_paid(request: Request, op: Auth, number: str, body: MarkPaidIn) -> Response:
    return write(request, op, body, lambda uow: operations.mark_paid(
        uow, tenant_of(uow, op), request.app.state.gateway, op, number, request.app.state.clock(), body.reference),
        permission=None)


@router.post("/invoices/{number}/credit_notes", status_code=201,
             summary="Issue a credit note (適格返還請求書): refund a paid invoice or reduce an open one")
def credit_note(request: Request, op: Auth, number: str, body: CreditNoteIn) -> Response:
    return write(request, op, body, lambda uow: operations.issue_credit_note(
        uow, tenant_of(uow, op), request.app.state.gateway, op, number, body.amount, body.reason,
        request.app.state.clock(), refund=body.refund), status=201, permission=None)


@router.get("/credit_notes/{number}/document", summary="The credit note, JSON")
def credit_note_document(request: Request, op: Auth, number: str) -> dict[str, Any]:
    return read(request, op, lambda uow: operations.credit_note_document(uow, tenant_of(uow, op), number))  # type: ignore[no-any-return]


@router.get("/credit_notes/{number}/document.pdf", summary="The credit note as a PDF", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def credit_note_pdf(request: Request, op: Auth, number: str) -> Response:
    return _pdf(read_value(request, op, lambda uow: operations.credit_note_document(uow, tenant_of(uow, op), number)))



@router.get("/customers/{customer_id}/payments",
            summary="The payment log: every attempt at the gateway, purchases refused for a declined card included")
def payment_log(request: Request, op: Auth, customer_id: str) -> dict[str, Any]:
    return read(request, op, lambda uow: {  # type: ignore[no-any-return]
        "data": payments.payment_log(uow, tenant_of(uow, op), customer_id), "next_cursor": None})
