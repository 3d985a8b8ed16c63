"""A customer's members: the super admin, admins (up to the plan's limit) and members; listed, added, removed (never
the super admin).

Who may manage members is decided in :mod:`kakin.services.authorization` (admins and the super admin); the roles'
own rules are in :mod:`kakin.domain.members`. Every change is audit-logged under the principal and acting member.
"""

from __future__ import annotations

import secrets
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.members import check_new_role

from . import authorization
from .access import Operator
from .authorization import Clock
from .tenancy import open_tenant


def members_of(uow: UnitOfWork, principal: Operator, key: str, clock: Clock) -> list[dict[str, Any]]:
    """Customer ``key``'s members as ``[{"id": "mem_…", "email", "name", "role"}]``, the super admin first.
    Raises NotFound when ``principal`` may not see the customer."""
    row = authorization.customer_for(uow, principal, key, clock)
    return [{"id": m["public_id"], "email": m["email"], "name": m["name"], "role": m["role"]}
            for m in uow.members.of_customer(row["id"])]


def add_member(uow: UnitOfWork, principal: Operator, key: str, email: str, name: str, role: str,
               clock: Clock) -> dict[str, Any]:
    """Add an admin or a member to customer ``key`` (up to the catalog's admin limit: LINE OA 100); audit-logged.
    Returns ``{"id", "email", "name", "role"}``. Raises what :func:`authorization.authorize` raises, InvalidValue for
    an unknown role, SuperAdminExists, AdminLimitReached, MemberExists (param ``email``).

    The customer is locked before its admins are counted, so admins added at once stop at the limit."""
    row = authorization.customer_for(uow, principal, key, clock)
    uow.lock_customer(row["id"])
    authorization.authorize(uow, principal, row, "add_member")
    tenant = principal.tenant
    limit = open_tenant(uow, tenant.code).catalog.admin_limit
    new_role = check_new_role(role, uow.members.count_admins(row["id"]), limit)
    if any(m["email"].lower() == email.lower() for m in uow.members.of_customer(row["id"])):
        raise errors.MemberExists(f"{email} is already a member of this customer", param="email")
    public_id = "mem_" + secrets.token_hex(8)
    uow.members.add(tenant.id, row["id"], public_id, email, name, new_role.value, row["now"])
    added: dict[str, Any] = {"id": public_id, "email": email, "name": name, "role": new_role.value}
    uow.audit([{"tenant_id": tenant.id, "customer_id": row["id"], "at": row["now"], "actor": principal.actor,
                "action": "member.added", "before": None, "after": added}])
    return added


def remove_member(uow: UnitOfWork, principal: Operator, key: str, member_id: str, clock: Clock) -> dict[str, Any]:
    """Remove admin or member ``member_id`` from customer ``key`` (its portal sessions end); audit-logged. Returns
    ``{"id", "removed": True}``. Raises what :func:`authorization.authorize` raises, NotFound (param ``member_id``),
    SuperAdminExists (the super admin cannot be removed)."""
    row = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, row, "remove_member")
    found = uow.members.get(principal.tenant.id, row["id"], member_id)
    if found is None:
        raise errors.NotFound(f"customer {key!r} has no member {member_id!r}", param="member_id")
    if found["role"] == "super_admin":
        raise errors.SuperAdminExists("the super admin, the member who opened the account, cannot be removed",
                                      param="member_id")
    uow.members.remove(found["id"])
    before = {"id": member_id, "email": found["email"], "name": found["name"], "role": found["role"]}
    uow.audit([{"tenant_id": principal.tenant.id, "customer_id": row["id"], "at": row["now"], "actor": principal.actor,
                "action": "member.removed", "before": before, "after": None}])
    return {"id": member_id, "removed": True}
