"""Applications for eligibility-gated plans (the local-government plan) and their review by operators."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from kakin.adapters.db.store import UnitOfWork
from kakin.services import eligibility

from .app import Auth, read, tenant_of, write
from .routes_customers import ActingMember, _customer
from .schemas import AccountNameIn, EligibilityApplicationIn, RefusalIn

router = APIRouter(prefix="/v1", tags=["eligibility"])


@router.post("/customers/{customer_id}/eligibility_applications", status_code=201,
             summary="Apply for an eligibility-gated plan (super admin); the automatic checks run at once")
def apply(request: Request, op: Auth, customer_id: str, body: EligibilityApplicationIn, member: ActingMember = None) -> Response:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        return eligibility.apply(uow, op.acting_for(member), customer_id, body.plan, body.local_government_code,
                                 body.applicant_email, body.via_agency, request.app.state.clock)

    return write(request, op, body, work, status=201)


@router.get("/customers/{customer_id}/eligibility_applications",
            summary="The customer's applications and their status (never the reasons of a refusal)")
def applications_of(request: Request, op: Auth, customer_id: str) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        found = uow.applications.find(op.tenant.id, customer_id=row["id"])
        return {"data": [eligibility.applicant_view(a) for a in found], "next_cursor": None}

    shown: dict[str, Any] = read(request, op, work)
    return shown


@router.get("/eligibility_applications", summary="The review queue (reviewers): reasons, due dates, overdue flags")
def review_queue(request: Request, op: Auth,
                 status: Annotated[Literal["pending", "approved", "refused"] | None, Query()] = None) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        return {"data": eligibility.review_queue(uow, tenant_of(uow, op), op, request.app.state.clock(), status),
                "next_cursor": None}

    shown: dict[str, Any] = read(request, op, work)
    return shown


@router.post("/eligibility_applications/{application_id}/approve", summary="Approve (reviewers): the plan is granted")
def approve(request: Request, op: Auth, application_id: str) -> Response:
    return write(request, op, None, lambda uow: eligibility.decide(
        uow, tenant_of(uow, op), request.app.state.gateway, op, application_id, True, None, request.app.state.clock()),
        permission=None)


@router.post("/eligibility_applications/{application_id}/refuse",
             summary="Refuse (reviewers); the reason is kept for operators and never shown to the applicant")
def refuse(request: Request, op: Auth, application_id: str, body: RefusalIn) -> Response:
    return write(request, op, body, lambda uow: eligibility.decide(
        uow, tenant_of(uow, op), request.app.state.gateway, op, application_id, False, body.reason,
        request.app.state.clock()), permission=None)


@router.post("/customers/{customer_id}/verified_account", summary="Mark the account verified, 認証済アカウント (reviewers)")
def verify_account(request: Request, op: Auth, customer_id: str) -> Response:
    return write(request, op, None, lambda uow: eligibility.verify_account(
        uow, tenant_of(uow, op), op, customer_id, request.app.state.clock()), permission=None)


@router.post("/customers/{customer_id}/account_name",
             summary="Change the account name (super admin); 409 account_name_locked once verification or the plan "
                     "was applied for")
def rename_account(request: Request, op: Auth, customer_id: str, body: AccountNameIn,
                   member: ActingMember = None) -> Response:
    return write(request, op, body, lambda uow: eligibility.rename_account(
        uow, op.acting_for(member), customer_id, body.name, request.app.state.clock))


@router.post("/customers/{customer_id}/verification_request",
             summary="Apply for 認証済アカウント (super admin); the account name and premium ID are fixed from then on")
def request_verification(request: Request, op: Auth, customer_id: str, member: ActingMember = None) -> Response:
    return write(request, op, None, lambda uow: eligibility.request_verification(
        uow, op.acting_for(member), customer_id, request.app.state.clock))
