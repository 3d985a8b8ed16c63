"""The customer portal's sessions: SQL only (the rules are in services/portal.py). ``uow.portal_sessions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, update

from .tables import customers, members, portal_sessions


def touch_session(conn: Connection, table: Table, session_id: int, now: datetime, locale: str | None) -> None:
    """Restart a signed-in session's idle clock at ``now`` (a portal or a console session: ``table``); with
    ``locale``, also switch its language."""
    values: dict[str, Any] = {"last_seen_at": now}
    if locale is not None:
        values["locale"] = locale
    conn.execute(update(table).where(table.c.id == session_id).values(**values))


class PortalSessionRepository:
    """The customer portal's links and sessions (``portal_sessions``; services/portal.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_link(self, values: dict[str, Any]) -> None:
        """Store a new, unopened link (its hash, expiry, member, locale, return_url)."""
        self.conn.execute(portal_sessions.insert().values(**values))

    def open_link(self, link_hash: str, session_hash: str, now: datetime) -> dict[str, Any] | None:
        """Turn an unused, unexpired link into a session by a conditional update (two tabs cannot both open it)."""
        done = self.conn.execute(update(portal_sessions).where(
            portal_sessions.c.link_hash == link_hash, portal_sessions.c.session_hash.is_(None),
            portal_sessions.c.ended_at.is_(None), portal_sessions.c.link_expires_at > now,
        ).values(session_hash=session_hash, opened_at=now, last_seen_at=now))
        return self.session(session_hash) if done.rowcount == 1 else None

    def session(self, session_hash: str) -> dict[str, Any] | None:
        """The session with its tenant, customer key and member (public id, name, e-mail, role)."""
        row = self.conn.execute(select(
            portal_sessions, customers.c.key.label("customer_key"), customers.c.name.label("customer_name"),
            members.c.public_id.label("member_public_id"), members.c.name.label("member_name"),
            members.c.email.label("member_email"), members.c.role.label("member_role"),
        ).join(customers, customers.c.id == portal_sessions.c.customer_id).join(
            members, members.c.id == portal_sessions.c.member_id).where(
            portal_sessions.c.session_hash == session_hash)).mappings().first()
        return dict(row) if row else None

    def touch(self, session_id: int, now: datetime, locale: str | None = None) -> None:
        """Restart a session's idle clock at ``now``; with ``locale``, also switch its language."""
        touch_session(self.conn, portal_sessions, session_id, now, locale)

    def end(self, now: datetime, *, session_id: int | None = None, customer_id: int | None = None) -> int:
        """End one session or every open session (and unused link) of a customer; returns how many rows ended."""
        q = update(portal_sessions).where(portal_sessions.c.ended_at.is_(None))
        if session_id is not None:
            q = q.where(portal_sessions.c.id == session_id)
        if customer_id is not None:
            q = q.where(portal_sessions.c.customer_id == customer_id)
        return int(self.conn.execute(q.values(ended_at=now)).rowcount)
