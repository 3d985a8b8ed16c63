"""Customer portal sessions: one-time links, sessions with an idle expiry, revocation.

The vendor's backend asks for a link for one member of one customer
(``POST /v1/portal_sessions``); the link opens a session once, within
``LINK_MINUTES``; the session lasts while it is used at least every
``IDLE_MINUTES``. Tokens are random (256 bits) and only their SHA-256 is
stored, as for API keys, so a copy of the database opens nothing.
Rules: issue 11 (SPEC has no portal yet).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors

LINK_MINUTES = 5
IDLE_MINUTES = 30
LOCALES = ("ja", "en")


@dataclass(frozen=True)
class PortalSession:
    """An open session: who it is for, in which language, and where signing out returns to."""

    id: int
    tenant_id: int
    customer_id: int
    customer_key: str
    customer_name: str
    member_id: str
    member_name: str
    member_email: str
    member_role: str
    locale: str
    return_url: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(uow: UnitOfWork, tenant: TenantRow, customer_key: str, member_id: str, locale: str, return_url: str,
                now: datetime) -> tuple[str, datetime]:
    """Make a one-time link token for ``member_id`` of customer ``customer_key``; returns (token, expires_at).

    The token goes in the URL ``/portal/open/<token>``; it is shown once. Raises NotFound when the customer does not
    exist or the member is not one of its members (``param`` names which), InvalidValue for a locale other than
    ``ja``/``en`` or a return_url that is not an absolute http(s) URL.
    """
    if locale not in LOCALES:
        raise errors.InvalidValue(f"locale must be one of: {', '.join(LOCALES)}", param="locale")
    try:
        parts = urlsplit(return_url)
        host = parts.hostname if parts.port is None or parts.port > 0 else None
    except ValueError:  # an unbalanced "[" in the host, a port that is not a number
        host = None
    if host is None or parts.scheme not in ("http", "https") or len(return_url) > 2000:
        raise errors.InvalidValue("return_url must be an absolute http(s) URL of at most 2,000 characters",
                                  param="return_url")
    customer = uow.customer_row(tenant, customer_key)
    if customer is None:
        raise errors.NotFound(f"no customer {customer_key!r}", param="customer")
    member = uow.members.get(tenant.id, customer["id"], member_id)
    if member is None:
        raise errors.NotFound(f"customer {customer_key!r} has no member {member_id!r}", param="member")
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(minutes=LINK_MINUTES)
    uow.portal_sessions.add_link({
        "tenant_id": tenant.id, "customer_id": customer["id"], "member_id": member["id"], "link_hash": _hash(token),
        "link_expires_at": expires_at, "locale": locale, "return_url": return_url, "created_at": now})
    return token, expires_at


def open_link(uow: UnitOfWork, token: str, now: datetime) -> tuple[str, PortalSession] | None:
    """Open the session a link token stands for: returns (session token for the cookie, session), or None when the
    link is unknown, expired, already used or revoked (the caller refuses without saying which)."""
    session_token = secrets.token_urlsafe(32)
    row = uow.portal_sessions.open_link(_hash(token), _hash(session_token), now)
    return None if row is None else (session_token, _session(row))


def current(uow: UnitOfWork, session_token: str | None, now: datetime) -> PortalSession | None:
    """The open session of a cookie, its idle clock restarted; None when there is none, it ended, or it was idle for
    more than ``IDLE_MINUTES`` (then it is ended for good)."""
    if not session_token:
        return None
    row = uow.portal_sessions.session(_hash(session_token))
    if row is None or row["ended_at"] is not None:
        return None
    if now - row["last_seen_at"] > timedelta(minutes=IDLE_MINUTES):
        uow.portal_sessions.end(now, session_id=row["id"])
        return None
    uow.portal_sessions.touch(row["id"], now)
    return _session(row)


def set_locale(uow: UnitOfWork, session: PortalSession, locale: str, now: datetime) -> None:
    """Switch the session's language; an unknown locale raises InvalidValue."""
    if locale not in LOCALES:
        raise errors.InvalidValue(f"locale must be one of: {', '.join(LOCALES)}", param="locale")
    uow.portal_sessions.touch(session.id, now, locale=locale)


def sign_out(uow: UnitOfWork, session: PortalSession, now: datetime) -> None:
    """End the session; its cookie opens nothing afterwards."""
    uow.portal_sessions.end(now, session_id=session.id)


def revoke_customer_sessions(uow: UnitOfWork, customer_id: int, now: datetime) -> int:
    """End every session and unused link of customer ``customer_id`` (the row id; its primary domain changed, say) at
    ``now`` (an aware instant); returns how many ended."""
    return uow.portal_sessions.end(now, customer_id=customer_id)


def _session(row: dict[str, object]) -> PortalSession:
    return PortalSession(
        id=int(row["id"]), tenant_id=int(row["tenant_id"]), customer_id=int(row["customer_id"]),  # type: ignore[call-overload]
        customer_key=str(row["customer_key"]), customer_name=str(row["customer_name"]),
        member_id=str(row["member_public_id"]), member_name=str(row["member_name"]), member_email=str(row["member_email"]),
        member_role=str(row["member_role"]), locale=str(row["locale"]), return_url=str(row["return_url"]))
