"""The vendor's operators: console accounts, sign-in with a lockout, console sessions, and who acts in a service.

An operator belongs to one tenant and has one of the API keys' roles
(:data:`kakin.services.access.ROLES`). Passwords are stored as Argon2id hashes
(``argon2-cffi``); a session cookie is a random token of which only the
SHA-256 is stored, so a copy of the database opens nothing and every session
can be revoked. Sign-in rules (issue 12): ``MAX_FAILURES`` wrong passwords in
a row lock the operator out for ``LOCKOUT`` (even the right password is refused
meanwhile); a session ends after ``IDLE_MINUTES`` without a request, on
sign-out, on sign-out everywhere, and when its operator is disabled.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors

from .access import OPERATOR_ROLES, ROLES

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_MINUTES = 30
MIN_PASSWORD = 12
LOCALES = ("ja", "en")
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("an unknown operator still costs one verification")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ActingOperator(Protocol):
    """Who performs an operator action in a service: an API key (:class:`kakin.services.access.Operator`), a console
    operator or the command line. ``require`` raises RoleForbidden; ``actor`` is the audit log's name for it."""

    @property
    def tenant(self) -> TenantRow: ...

    @property
    def role(self) -> str: ...

    @property
    def actor(self) -> str: ...

    def require(self, permission: str) -> None: ...


@dataclass(frozen=True)
class ConsoleOperator:
    """An operator signed in to the console: audit actor ``operator:<email>``."""

    tenant: TenantRow
    role: str
    email: str
    operator_id: int = 0
    session_id: int = 0
    locale: str = "ja"

    def require(self, permission: str) -> None:
        """Raise RoleForbidden unless the operator's role has ``permission`` (read, write, review, manage)."""
        if permission not in ROLES[self.role]:
            raise errors.RoleForbidden(f"an operator with role {self.role!r} may not {permission}; ask an owner",
                                       param="role")

    @property
    def actor(self) -> str:
        return f"operator:{self.email}"


@dataclass(frozen=True)
class CommandLine:
    """The ``kakin`` command run on the server: an owner, audit actor ``operator`` (as before the console)."""

    tenant: TenantRow
    role: str = "owner"
    actor: str = "operator"

    def require(self, permission: str) -> None:
        """The command line may do everything an owner may."""
        if permission not in ROLES[self.role]:
            raise errors.RoleForbidden(f"role {self.role!r} may not {permission}", param="role")


def acting_in(op: ActingOperator, tenant: TenantRow, permission: str) -> None:
    """Refuse unless ``op`` may ``permission`` in ``tenant``: RoleForbidden for the role; NotFound when ``op`` belongs
    to another tenant (what it asked for does not exist for it). Every operator action in the services starts here."""
    if op.tenant.id != tenant.id:
        raise errors.NotFound("no such resource for this tenant", param="tenant")
    op.require(permission)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_operator(uow: UnitOfWork, tenant: TenantRow, email: str, role: str, now: datetime,
                    password: str | None = None) -> str:
    """Create an operator and return its password: the one given, or a new random one (shown once, never stored).

    Raises InvalidValue for a malformed e-mail (``param`` email), an unknown role (role) or a password shorter than
    ``MIN_PASSWORD`` characters (password); OperatorExists when the e-mail is taken (in any tenant). Audit-logged.
    """
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise errors.InvalidValue("give the operator's e-mail address, such as sato@vendor.example", param="email")
    if role not in OPERATOR_ROLES:
        raise errors.InvalidValue(f"role must be one of: {', '.join(OPERATOR_ROLES)}", param="role")
    if password is None:
        password = secrets.token_urlsafe(15)
    if len(password) < MIN_PASSWORD:
        raise errors.InvalidValue(f"a password has at least {MIN_PASSWORD} characters", param="password")
    if uow.operators.by_email(email) is not None:
        raise errors.OperatorExists(f"an operator {email} already exists; choose another e-mail", param="email")
    uow.operators.add({"tenant_id": tenant.id, "email": email, "role": role, "created_at": now,
                       "password_hash": _hasher.hash(password)})
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": "operator", "action": "operator.created",
                "before": None, "after": {"email": email, "role": role}}])
    return password


def set_password(uow: UnitOfWork, tenant: TenantRow, email: str, now: datetime, password: str | None = None) -> str:
    """Give an operator a new password (the one given, or a new random one) and return it; its lockout is lifted and
    its open sessions end. Raises NotFound when the tenant has no such operator, InvalidValue for a short password."""
    if password is None:
        password = secrets.token_urlsafe(15)
    if len(password) < MIN_PASSWORD:
        raise errors.InvalidValue(f"a password has at least {MIN_PASSWORD} characters", param="password")
    row = uow.operators.by_email(email.strip().lower())
    if row is None or row["tenant_id"] != tenant.id:
        raise errors.NotFound(f"tenant {tenant.code} has no operator {email!r}", param="email")
    uow.operators.update(row["id"], {"password_hash": _hasher.hash(password), "failed_attempts": 0,
                                     "locked_until": None})
    uow.operators.end_sessions(now, operator_id=row["id"])
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": "operator",
                "action": "operator.password_set", "before": None, "after": {"email": row["email"]}}])
    return password


def list_operators(uow: UnitOfWork, tenant: TenantRow) -> list[dict[str, Any]]:
    """The tenant's operators: email, role, failed_attempts, locked_until, disabled_at, created_at, last_sign_in_at."""
    return [{k: v for k, v in r.items() if k != "id"} for r in uow.operators.of_tenant(tenant.id)]


def disable_operator(uow: UnitOfWork, tenant: TenantRow, email: str, now: datetime, actor: str = "operator") -> bool:
    """Disable an operator for good: it cannot sign in and its sessions end now. Returns False when it already was.
    Raises NotFound when the tenant has no such operator."""
    row = uow.operators.by_email(email.strip().lower())
    if row is None or row["tenant_id"] != tenant.id:
        raise errors.NotFound(f"tenant {tenant.code} has no operator {email!r}", param="email")
    if row["disabled_at"] is not None:
        return False
    uow.operators.update(row["id"], {"disabled_at": now})
    uow.operators.end_sessions(now, operator_id=row["id"])
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": actor, "action": "operator.disabled",
                "before": {"email": row["email"], "disabled": False}, "after": {"email": row["email"], "disabled": True}}])
    return True


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: ``token`` (for the cookie) and ``operator`` on success; otherwise ``refused``:
    ``sign_in_failed`` (unknown e-mail, wrong password or disabled: the page does not say which) or
    ``operator_locked`` (until ``locked_until``)."""

    token: str | None = None
    operator: ConsoleOperator | None = None
    refused: str | None = None
    locked_until: datetime | None = None


def sign_in(uow: UnitOfWork, email: str, password: str, now: datetime, locale: str = "ja") -> SignIn:
    """Check an e-mail and password and open a session. A refusal is a result, not an exception: the failed
    attempt it counts must be committed. The ``MAX_FAILURES``-th wrong password in a row locks the operator for
    ``LOCKOUT`` (audit-logged); a success resets the count.

    The operator's row is locked before its count is read and until commit, so attempts sent at once are counted one
    after the other (the password is verified under the lock: it serializes the guesses of one operator only)."""
    row = uow.operators.by_email(email.strip().lower(), lock=True)
    if row is None or row["disabled_at"] is not None:
        try:
            _hasher.verify(_DUMMY, password)  # the same work as for a known operator
        except VerificationError:
            pass
        return SignIn(refused="sign_in_failed")
    if row["locked_until"] is not None and row["locked_until"] > now:
        return SignIn(refused="operator_locked", locked_until=row["locked_until"])
    try:
        ok: bool = _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        failures = row["failed_attempts"] + 1
        if failures >= MAX_FAILURES:
            until = now + LOCKOUT
            uow.operators.update(row["id"], {"failed_attempts": 0, "locked_until": until})
            uow.audit([{"tenant_id": row["tenant_id"], "customer_id": None, "at": now, "actor": "console",
                        "action": "operator.locked", "before": {"email": row["email"]},
                        "after": {"email": row["email"], "locked_until": until.isoformat()}}])
            return SignIn(refused="operator_locked", locked_until=until)
        uow.operators.update(row["id"], {"failed_attempts": failures})
        return SignIn(refused="sign_in_failed")
    values: dict[str, Any] = {"failed_attempts": 0, "locked_until": None, "last_sign_in_at": now}
    if _hasher.check_needs_rehash(row["password_hash"]):
        values["password_hash"] = _hasher.hash(password)
    uow.operators.update(row["id"], values)
    token = secrets.token_urlsafe(32)
    locale = locale if locale in LOCALES else LOCALES[0]
    uow.operators.add_session(row["id"], _sha(token), locale, now)
    found = uow.operators.session(_sha(token))
    assert found is not None
    return SignIn(token=token, operator=_operator(uow, found))


def current(uow: UnitOfWork, token: str | None, now: datetime) -> ConsoleOperator | None:
    """The operator of a session cookie, its idle clock restarted; None when there is no such open session, its
    operator was disabled, or it was idle more than ``IDLE_MINUTES`` (then it is ended for good)."""
    if not token:
        return None
    row = uow.operators.session(_sha(token))
    if row is None or row["ended_at"] is not None:
        return None
    if row["disabled_at"] is not None or now - row["last_seen_at"] > timedelta(minutes=IDLE_MINUTES):
        uow.operators.end_sessions(now, session_id=row["id"])
        return None
    uow.operators.touch(row["id"], now)
    return _operator(uow, row)


def set_locale(uow: UnitOfWork, op: ConsoleOperator, locale: str, now: datetime) -> None:
    """Switch the session's language; an unknown locale raises InvalidValue."""
    if locale not in LOCALES:
        raise errors.InvalidValue(f"locale must be one of: {', '.join(LOCALES)}", param="locale")
    uow.operators.touch(op.session_id, now, locale=locale)


def sign_out(uow: UnitOfWork, op: ConsoleOperator, now: datetime, everywhere: bool = False) -> int:
    """End this session, or with ``everywhere`` every open session of the operator; returns how many ended."""
    if everywhere:
        return uow.operators.end_sessions(now, operator_id=op.operator_id)
    return uow.operators.end_sessions(now, session_id=op.session_id)


def _operator(uow: UnitOfWork, row: dict[str, Any]) -> ConsoleOperator:
    return ConsoleOperator(tenant=uow.tenant_by_id(row["tenant_id"]), role=row["role"],
                           email=row["email"], operator_id=row["operator_id"], session_id=row["id"],
                           locale=row["locale"])
