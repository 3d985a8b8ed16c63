"""Customers, their members, subscription, usage, invoices and credit."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.services import access, authorization, billing, domains, members, upcoming, upgrades
from kakin.services.presenters import customer_json as view
from kakin.services.presenters import invoice_json

from .app import Auth, decode_cursor, paged, read, tenant_of, write
from .schemas import CustomerIn, DomainIn, MemberIn, PaymentMethodIn, PlanChangeIn, PremiumIdIn, SeatsIn, SubscribeIn, UsersIn

router = APIRouter(prefix="/v1", tags=["customers"])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
CustomerId = Annotated[str, "the customer's id"]
ActingMember = Annotated[str | None, Header(
    alias="Kakin-Acting-Member", max_length=40,
    description="The member (`mem_…`) the request acts for. Plan, contract, payment method, domains and deleting the "
                "organization need the customer's super admin (403 super_admin_required); seats, registered users and "
                "members need an admin (403 admin_required).")]


def _customer(request: Request, uow: UnitOfWork, op: access.Operator, customer_id: str) -> dict[str, Any]:
    return authorization.customer_for(uow, op, customer_id, request.app.state.clock)


def _command(request: Request, op: Auth, customer_id: str, action: str, member: str | None, **arguments: Any) -> Any:
    """The billing command ``action`` run by the services for ``op`` acting for ``member``; shows the customer."""

    def work(uow: UnitOfWork) -> dict[str, Any]:
        account, row, tenant = authorization.perform(uow, op.acting_for(member), request.app.state.gateway, customer_id,
                                                     request.app.state.clock, action, **arguments)
        return view(account, row, tenant.catalog)

    return work


@router.post("/customers", status_code=201, summary="Create a customer with its super admin")
def create_customer(request: Request, op: Auth, body: CustomerIn) -> Response:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        tenant = tenant_of(uow, op)
        now = request.app.state.clock()
        clock_id = None
        if body.test_clock:
            clock = uow.test_clocks.get(op.tenant.id, body.test_clock)
            if clock is None:
                raise errors.NotFound(f"no test clock {body.test_clock!r}", param="test_clock")
            clock_id, now = clock["id"], clock["frozen_time"]
        key = body.id or "cus_" + secrets.token_hex(8)
        account = billing.create_customer(uow, tenant, request.app.state.gateway, key, body.name, now,
                                          payment_method=body.payment_method, members=body.users, actor=op.actor,
                                          test_clock_id=clock_id, sign_in_group=body.sign_in_group)
        assert account.id is not None
        member_id = access.add_super_admin(uow, op.tenant, account.id, body.super_admin.email, body.super_admin.name, now)
        out = view(account, {"test_clock_public_id": body.test_clock}, tenant.catalog)
        out["super_admin"] = {"id": member_id, "email": body.super_admin.email, "name": body.super_admin.name}
        return out

    return write(request, op, body, work, status=201)


@router.get("/customers", summary="List customers (cursor pagination)")
def list_customers(request: Request, op: Auth, limit: Limit = 20, cursor: Cursor = None) -> dict[str, Any]:
    after = decode_cursor(cursor)

    def work(uow: UnitOfWork) -> dict[str, Any]:
        rows = uow.listing.page("customers", op.tenant.id, after, limit)
        accounts = {a.id: a for a in uow.load_accounts([r["id"] for r in rows[:limit]], summary=True)}
        catalog = tenant_of(uow, op).catalog
        return paged(rows, limit, lambda r: view(accounts[r["id"]], r, catalog))

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/customers/{customer_id}", summary="A customer with its subscription")
def get_customer(request: Request, op: Auth, customer_id: CustomerId) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return {**view(uow.load_accounts([row["id"]], summary=True)[0], row, tenant_of(uow, op).catalog),
                "upgrade": upgrades.pending(uow, row["id"])}

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/customers/{customer_id}/members", summary="The customer's super admin, admins and members")
def list_members(request: Request, op: Auth, customer_id: CustomerId) -> dict[str, Any]:
    return read(request, op, lambda uow: {  # type: ignore[no-any-return]
        "data": members.members_of(uow, op, customer_id, request.app.state.clock), "next_cursor": None})


@router.post("/customers/{customer_id}/members", status_code=201, summary="Add an admin or a member (admins only)")
def add_member(request: Request, op: Auth, customer_id: CustomerId, body: MemberIn, member: ActingMember = None) -> Response:
    return write(request, op, body, lambda uow: members.add_member(
        uow, op.acting_for(member), customer_id, body.email, body.name, body.role, request.app.state.clock), status=201)


@router.delete("/customers/{customer_id}/members/{member_id}", summary="Remove an admin or a member (admins only)")
def remove_member(request: Request, op: Auth, customer_id: CustomerId, member_id: str, member: ActingMember = None) -> Response:
    return write(request, op, None, lambda uow: members.remove_member(
        uow, op.acting_for(member), customer_id, member_id, request.app.state.clock))


@router.post("/customers/{customer_id}/subscription", summary="Subscribe to a plan (super admin)")
def subscribe(request: Request, op: Auth, customer_id: CustomerId, body: SubscribeIn, member: ActingMember = None) -> Response:
    return write(request, op, body, _command(request, op, customer_id, "subscribe", member, plan=body.plan,
                                             contract=body.contract, seats=body.seats, members=body.users,
                                             trial_days=body.trial_days))


@router.post("/customers/{customer_id}/subscription/seats", summary="Change contracted seats or licenses (admins)")
def set_seats(request: Request, op: Auth, customer_id: CustomerId, body: SeatsIn, member: ActingMember = None) -> Response:
    return write(request, op, body, _command(request, op, customer_id, "set_seats", member, seats=body.seats))


@router.post("/customers/{customer_id}/subscription/users", summary="Set the number of registered users (admins)")
def set_users(request: Request, op: Auth, customer_id: CustomerId, body: UsersIn, member: ActingMember = None) -> Response:
    return write(request, op, body, _command(request, op, customer_id, "set_members", member, members=body.users))


@router.post("/customers/{customer_id}/subscription/plan/preview",
             summary="What a plan change will bill, before anything is committed")
def preview_plan_change(request: Request, op: Auth, customer_id: CustomerId, body: PlanChangeIn) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return upcoming.preview_change_plan(uow, tenant_of(uow, op), customer_id, row["now"], body.plan,
                                           contract=body.contract, seats=body.seats)

    return read(request, op, work)  # type: ignore[no-any-return]


@router.post("/customers/{customer_id}/subscription/plan",
             summary="Change the plan or the contract type (super admin); LINE WORKS lite → paid is completed by the worker")
def change_plan(request: Request, op: Auth, customer_id: CustomerId, body: PlanChangeIn, member: ActingMember = None) -> Response:
    """A change the worker completes (the catalog rule is ``needs_verified_domain``) is checked in full, then answered
    with the customer still on its plan and ``upgrade: {"id", "status": "pending", "plan", "contract", …}``; the
    customer's ``upgrade`` and its entitlements show it (``restricted``) until the worker has made the change."""

    def work(uow: UnitOfWork) -> dict[str, Any]:
        account, row, tenant, job = upgrades.change_plan(uow, op.acting_for(member), request.app.state.gateway,
                                                         customer_id, request.app.state.clock, body.plan,
                                                         contract=body.contract, seats=body.seats)
        return {**view(account, row, tenant.catalog), "upgrade": job}

    return write(request, op, body, work)


@router.post("/customers/{customer_id}/subscription/cancel", summary="Cancel under the catalog's rules (super admin)")
def cancel(request: Request, op: Auth, customer_id: CustomerId, member: ActingMember = None) -> Response:
    return write(request, op, None, _command(request, op, customer_id, "cancel", member))


@router.post("/customers/{customer_id}/domains", status_code=201,
             summary="Register a domain to verify (super admin); returns the DNS TXT record to publish")
def add_domain(request: Request, op: Auth, customer_id: CustomerId, body: DomainIn, member: ActingMember = None) -> Response:
    return write(request, op, body, lambda uow: domains.add_domain(
        uow, op.acting_for(member), customer_id, body.domain, request.app.state.clock, provided=body.provided), status=201)


@router.get("/customers/{customer_id}/domains",
            summary="The customer's domains with status (pending, in_use, expired), the primary domain and its lock")
def list_domains(request: Request, op: Auth, customer_id: CustomerId) -> dict[str, Any]:
    return read(request, op, lambda uow: {  # type: ignore[no-any-return]
        **domains.domains_of(uow, op, customer_id, request.app.state.clock), "next_cursor": None})


@router.post("/customers/{customer_id}/domains/{domain}/primary",
             summary="Make a domain in use the primary domain (super admin): members' portal sessions end, "
                     "customer.primary_domain.changed is sent, and it cannot change again for 24 hours")
def change_primary_domain(request: Request, op: Auth, customer_id: CustomerId, domain: str,
                          member: ActingMember = None) -> Response:
    return write(request, op, None, lambda uow: domains.change_primary(
        uow, op.acting_for(member), customer_id, domain, request.app.state.clock))


@router.delete("/customers/{customer_id}/domains/{domain}",
               summary="Delete a domain that is not the primary one (super admin); a provided one is never issued again")
def delete_domain(request: Request, op: Auth, customer_id: CustomerId, domain: str, member: ActingMember = None) -> Response:
    return write(request, op, None, lambda uow: domains.delete_domain(
        uow, op.acting_for(member), customer_id, domain, request.app.state.clock))


@router.post("/customers/{customer_id}/domains/{domain}/verify",
             summary="Check the domain's TXT record (super admin); verified, it allows the plan changes that need it")
def verify_domain(request: Request, op: Auth, customer_id: CustomerId, domain: str, member: ActingMember = None) -> Response:
    return write(request, op, None, lambda uow: domains.verify_domain(
        uow, op.acting_for(member), customer_id, domain, request.app.state.dns, request.app.state.clock))


@router.delete("/customers/{customer_id}",
               summary="退会: delete the organization (super admin); subscriptions end, invoices and receipts stay")
def delete_customer(request: Request, op: Auth, customer_id: CustomerId, member: ActingMember = None) -> Response:
    return write(request, op, None, _command(request, op, customer_id, "delete_customer", member))


@router.post("/customers/{customer_id}/payment_method", summary="Replace the payment method (super admin)")
def set_payment_method(request: Request, op: Auth, customer_id: CustomerId, body: PaymentMethodIn, member: ActingMember = None) -> Response:
    return write(request, op, body, _command(request, op, customer_id, "set_payment_method", member,
                                             payment_method=body.payment_method))


@router.post("/customers/{customer_id}/premium_id", summary="Take a premium ID (super admin)")
def set_premium_id(request: Request, op: Auth, customer_id: CustomerId, body: PremiumIdIn, member: ActingMember = None) -> Response:
    return write(request, op, body, _command(request, op, customer_id, "set_premium_id", member,
                                             premium_id=body.premium_id, billing=body.billing))


@router.get("/customers/{customer_id}/invoices", summary="A customer's invoices with their lines")
def customer_invoices(request: Request, op: Auth, customer_id: CustomerId) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return {"data": [invoice_json(r) for r in uow.invoices_for(op.tenant, row["id"])], "next_cursor": None}

    return read(request, op, work)  # type: ignore[no-any-return]


@router.get("/customers/{customer_id}/credit", summary="The customer's credit balance (yen, carried to later invoices)")
def credit(request: Request, op: Auth, customer_id: CustomerId) -> dict[str, Any]:
    def work(uow: UnitOfWork) -> dict[str, Any]:
        row = _customer(request, uow, op, customer_id)
        return {"customer": customer_id, "credit": row["credit"], "currency": "JPY"}

    return read(request, op, work)  # type: ignore[no-any-return]
