"""Who may do what inside a customer: the super admin, admins and members.

- Exactly one super admin (最高管理者), the member who opened the account.
- Only the super admin changes the plan, the contract type or the payment method.
- Admins (up to the catalog's limit) and the super admin manage members and seats.
- Members change nothing billing-related.
"""

from __future__ import annotations

from enum import StrEnum

from . import errors


class MemberRole(StrEnum):
    SUPER_ADMIN = "super_admin"
    ADMIN = "admin"
    MEMBER = "member"


def require_super_admin(role: MemberRole | None, what: str) -> None:
    if role is not MemberRole.SUPER_ADMIN:
        raise errors.SuperAdminRequired(
            f"only the customer's super admin may {what}: act as the super admin (Kakin-Acting-Member header)",
            param="Kakin-Acting-Member",
        )


def require_admin(role: MemberRole | None, what: str) -> None:
    if role not in (MemberRole.SUPER_ADMIN, MemberRole.ADMIN):
        raise errors.AdminRequired(
            f"only the customer's admins may {what}: act as an admin or the super admin (Kakin-Acting-Member header)",
            param="Kakin-Acting-Member",
        )


def check_new_role(role: str, admins: int, limit: int | None) -> MemberRole:
    try:
        new = MemberRole(role)
    except ValueError:
        raise errors.InvalidValue("role must be admin or member", param="role") from None
    if new is MemberRole.SUPER_ADMIN:
        raise errors.SuperAdminExists("a customer has exactly one super admin, the member who opened the account",
                                      param="role")
    if new is MemberRole.ADMIN and limit is not None and admins >= limit:
        raise errors.AdminLimitReached(f"this plan allows at most {limit} admins", param="role")
    return new
