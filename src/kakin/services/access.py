"""API keys and operator roles; customer members and what each may do.

Keys look like ``kk_<prefix>_<secret>``; only the SHA-256 of the whole key is
stored (the key has 192 random bits, so a fast hash is safe), and it is shown
once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.members import MemberRole

# what each role may do: "customer" is acting for a customer's member (whose own role then decides, see
# services/authorization.py); "member" is the role of a portal session, which acts only for its own member
ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset({"read", "write", "review", "manage", "customer"}),
    "billing_admin": frozenset({"read", "write", "customer"}),
    "reviewer": frozenset({"read", "review"}),
    "viewer": frozenset({"read"}),
    "member": frozenset({"customer"}),
}
# the roles an API key or a console operator may be given ("member" belongs to portal sessions only)
OPERATOR_ROLES = ("owner", "billing_admin", "reviewer", "viewer")


@dataclass(frozen=True)
class Operator:
    """Who acts (a principal): an API key (``kind`` "key"), or a portal session (``kind`` "portal", role "member"),
    named ``key_name``; ``member`` is the customer's member it acts for (``mem_…``), and ``customer`` the one customer
    key a portal principal is confined to (None: every customer of the tenant)."""

    tenant: TenantRow
    role: str
    key_name: str
    member: str | None = None
    customer: str | None = None
    kind: str = "key"

    def require(self, permission: str) -> None:
        """Raise RoleForbidden (param ``Authorization``) unless this principal's role has ``permission``."""
        if permission not in ROLES[self.role]:
            raise errors.RoleForbidden(
                f"an API key with role {self.role!r} may not {permission}; use a key with a role that may", param="Authorization")

    @property
    def actor(self) -> str:
        """The name audit records give: ``key:NAME`` or ``portal:mem_…``."""
        return f"{self.kind}:{self.key_name}"

    def acting_for(self, member: str | None) -> Operator:
        """This principal acting for ``member`` of a customer (the ``Kakin-Acting-Member`` header)."""
        return replace(self, member=member)


def portal_principal(tenant: TenantRow, customer_key: str, member_id: str) -> Operator:
    """The principal of a portal session: member ``member_id`` of customer ``customer_key``, and nothing else."""
    return Operator(tenant, "member", member_id, member=member_id, customer=customer_key, kind="portal")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(uow: UnitOfWork, tenant: TenantRow, role: str, name: str, now: datetime) -> str:
    """Create a key and return it; it cannot be recovered later. Raises InvalidValue (``role``) for a role that is not
    one of :data:`OPERATOR_ROLES`."""
    if role not in OPERATOR_ROLES:
        raise errors.InvalidValue(f"role must be one of: {', '.join(OPERATOR_ROLES)}", param="role")
    prefix = "kk_" + secrets.token_hex(6)
    key = f"{prefix}_{secrets.token_urlsafe(24)}"
    uow.api_keys.add(tenant.id, prefix, _hash(key), role, name, now)
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": "operator", "action": "api_key.created",
                "before": None, "after": {"prefix": prefix, "role": role}}])
    return key


def list_api_keys(uow: UnitOfWork, tenant: TenantRow) -> list[dict[str, Any]]:
    """The tenant's keys: prefix, role, name, when created and revoked. Neither keys nor hashes are shown."""
    return uow.api_keys.of_tenant(tenant.id)


def revoke_api_key(uow: UnitOfWork, tenant: TenantRow, prefix: str, now: datetime, actor: str) -> dict[str, object]:
    """Revoke one of the tenant's keys for good. Revoking a revoked key changes nothing and is not an error."""
    found = next((k for k in uow.api_keys.of_tenant(tenant.id) if k["prefix"] == prefix), None)
    if found is None:
        raise errors.NotFound(f"this tenant has no API key {prefix!r}; list the keys to find its prefix", param="prefix")
    if uow.api_keys.revoke(tenant.id, prefix, now):
        uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": actor, "action": "api_key.revoked",
                    "before": {"prefix": prefix, "revoked": False}, "after": {"prefix": prefix, "revoked": True}}])
        found["revoked_at"] = now
    return found


def authenticate(uow: UnitOfWork, key: str | None) -> Operator:
    if not key or not key.startswith("kk_") or key.count("_") < 2:
        raise errors.Unauthenticated("send a valid API key: Authorization: Bearer kk_…", param="Authorization")
    prefix = "_".join(key.split("_", 2)[:2])  # kk_<hex>; the secret part may itself contain "_"
    row = uow.api_keys.by_prefix(prefix)
    if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["secret_hash"], _hash(key)):
        raise errors.Unauthenticated("the API key is not valid (unknown or revoked)", param="Authorization")
    return Operator(uow.tenant_by_id(row["tenant_id"]), row["role"], row["name"])


def add_super_admin(uow: UnitOfWork, tenant: TenantRow, customer_id: int, email: str, name: str, now: datetime) -> str:
    public_id = "mem_" + secrets.token_hex(8)
    uow.members.add(tenant.id, customer_id, public_id, email, name, MemberRole.SUPER_ADMIN.value, now)
    return public_id


def acting_role(uow: UnitOfWork, tenant: TenantRow, customer_id: int, member_id: str | None) -> MemberRole | None:
    """The role of the member a request acts for; None when it names none."""
    if not member_id:
        return None
    row = uow.members.get(tenant.id, customer_id, member_id)
    if row is None:
        raise errors.NotFound(f"no member {member_id!r} in this customer", param="Kakin-Acting-Member")
    return MemberRole(row["role"])
