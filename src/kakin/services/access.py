"""API keys and operator roles; customer members and what each may do.

Keys look like ``kk_<prefix>_<secret>``; only the SHA-256 of the whole key is
stored (the key has 192 random bits, so a fast hash is safe), and it is shown
once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from kakin.adapters.db import service_store
from kakin.adapters.db.store import TenantRow, UnitOfWork
from kakin.domain import errors
from kakin.domain.members import MemberRole, check_new_role

# what each operator role may do
ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset({"read", "write", "review", "manage"}),
    "billing_admin": frozenset({"read", "write"}),
    "reviewer": frozenset({"read", "review"}),
    "viewer": frozenset({"read"}),
}


@dataclass(frozen=True)
class Operator:
    tenant: TenantRow
    role: str
    key_name: str

    def require(self, permission: str) -> None:
        if permission not in ROLES[self.role]:
            raise errors.RoleForbidden(
                f"an API key with role {self.role!r} may not {permission}; use a key with a role that may", param="Authorization")

    @property
    def actor(self) -> str:
        return f"key:{self.key_name}"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(uow: UnitOfWork, tenant: TenantRow, role: str, name: str, now: datetime) -> str:
    """Create a key and return it; it cannot be recovered later."""
    if role not in ROLES:
        raise errors.InvalidValue(f"role must be one of: {', '.join(ROLES)}", param="role")
    prefix = "kk_" + secrets.token_hex(6)
    key = f"{prefix}_{secrets.token_urlsafe(24)}"
    service_store.add_api_key(uow.conn, tenant.id, prefix, _hash(key), role, name, now)
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": "operator", "action": "api_key.created",
                "before": None, "after": {"prefix": prefix, "role": role}}])
    return key


def list_api_keys(uow: UnitOfWork, tenant: TenantRow) -> list[dict[str, object]]:
    """The tenant's keys: prefix, role, name, when created and revoked. Neither keys nor hashes are shown."""
    return service_store.api_keys_of(uow.conn, tenant.id)


def revoke_api_key(uow: UnitOfWork, tenant: TenantRow, prefix: str, now: datetime, actor: str) -> dict[str, object]:
    """Revoke one of the tenant's keys for good. Revoking a revoked key changes nothing and is not an error."""
    found = next((k for k in service_store.api_keys_of(uow.conn, tenant.id) if k["prefix"] == prefix), None)
    if found is None:
        raise errors.NotFound(f"this tenant has no API key {prefix!r}; list the keys to find its prefix", param="prefix")
    if service_store.revoke_api_key(uow.conn, tenant.id, prefix, now):
        uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": actor, "action": "api_key.revoked",
                    "before": {"prefix": prefix, "revoked": False}, "after": {"prefix": prefix, "revoked": True}}])
        found["revoked_at"] = now
    return found


def authenticate(uow: UnitOfWork, key: str | None) -> Operator:
    if not key or not key.startswith("kk_") or key.count("_") < 2:
        raise errors.Unauthenticated("send a valid API key: Authorization: Bearer kk_…", param="Authorization")
    prefix = "_".join(key.split("_", 2)[:2])  # kk_<hex>; the secret part may itself contain "_"
    row = service_store.api_key_by_prefix(uow.conn, prefix)
    if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["secret_hash"], _hash(key)):
        raise errors.Unauthenticated("the API key is not valid (unknown or revoked)", param="Authorization")
    return Operator(service_store.tenant_by_id(uow.conn, row["tenant_id"]), row["role"], row["name"])


def add_member(uow: UnitOfWork, tenant: TenantRow, admin_limit: int | None, customer_id: int, email: str, name: str,
               role: str, now: datetime, actor: str = "system") -> dict[str, object]:
    """Add an admin or a member to a customer (up to the catalog's admin limit); audit-logged.
    Raises InvalidValue for an unknown role, SuperAdminExists, AdminLimitReached, MemberExists."""
    new_role = check_new_role(role, service_store.count_admins(uow.conn, customer_id), admin_limit)
    if any(m["email"].lower() == email.lower() for m in service_store.members_of(uow.conn, customer_id)):
        raise errors.MemberExists(f"{email} is already a member of this customer", param="email")
    public_id = "mem_" + secrets.token_hex(8)
    service_store.add_member(uow.conn, tenant.id, customer_id, public_id, email, name, new_role.value, now)
    added: dict[str, object] = {"id": public_id, "email": email, "name": name, "role": new_role.value}
    uow.audit([{"tenant_id": tenant.id, "customer_id": customer_id, "at": now, "actor": actor, "action": "member.added",
                "before": None, "after": added}])
    return added


def add_super_admin(uow: UnitOfWork, tenant: TenantRow, customer_id: int, email: str, name: str, now: datetime) -> str:
    public_id = "mem_" + secrets.token_hex(8)
    service_store.add_member(uow.conn, tenant.id, customer_id, public_id, email, name, MemberRole.SUPER_ADMIN.value, now)
    return public_id


def acting_role(uow: UnitOfWork, tenant: TenantRow, customer_id: int, member_id: str | None) -> MemberRole | None:
    """The role of the member a request acts for; None when it names none."""
    if not member_id:
        return None
    row = service_store.member(uow.conn, tenant.id, customer_id, member_id)
    if row is None:
        raise errors.NotFound(f"no member {member_id!r} in this customer", param="Kakin-Acting-Member")
    return MemberRole(row["role"])
