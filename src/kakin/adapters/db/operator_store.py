"""Operators of the console and their sessions, and what the console reads beyond the API's queries: SQL only
(the rules are in services/operators.py). ``uow.operators`` and ``uow.console_reads``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from .portal_store import touch_session
from .tables import audit_log, console_sessions, customers, invoices, operators, payment_attempts, tenants


class OperatorRepository:
    """Operators of the console and their sessions (services/operators.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, values: dict[str, Any]) -> None:
        """Store a new operator (tenant, lower-cased e-mail, Argon2 hash, role, created_at)."""
        self.conn.execute(operators.insert().values(**values))

    def by_email(self, email: str, *, lock: bool = False) -> dict[str, Any] | None:
        """The operator with this (lower-cased) e-mail, any tenant, with its tenant's code; None if there is none.

        With ``lock``, the operator's row (not its tenant's) stays locked until commit on PostgreSQL (``SELECT … FOR
        UPDATE``; a SQLite writer holds the whole database already): a sign-in counts its failed attempt after the one
        before it committed (the store's lock order: operator rows)."""
        q = select(operators, tenants.c.code.label("tenant_code")).join(
            tenants, tenants.c.id == operators.c.tenant_id).where(operators.c.email == email)
        if lock and self.conn.dialect.name == "postgresql":
            q = q.with_for_update(of=operators, key_share=True)
        row = self.conn.execute(q).mappings().first()
        return dict(row) if row else None

    def of_tenant(self, tenant_id: int) -> list[dict[str, Any]]:
        """The tenant's operators, oldest first (never their hashes)."""
        rows = self.conn.execute(select(operators.c.id, operators.c.email, operators.c.role, operators.c.failed_attempts,
                                        operators.c.locked_until, operators.c.disabled_at, operators.c.created_at,
                                        operators.c.last_sign_in_at).where(operators.c.tenant_id == tenant_id)
                                 .order_by(operators.c.id)).mappings()
        return [dict(r) for r in rows]

    def update(self, operator_id: int, values: dict[str, Any]) -> None:
        """Change an operator's row (failed attempts, lockout, last sign-in, disabled_at, password hash)."""
        self.conn.execute(update(operators).where(operators.c.id == operator_id).values(**values))

    def add_session(self, operator_id: int, session_hash: str, locale: str, now: datetime) -> None:
        """Store a new console session (the SHA-256 of its cookie token)."""
        self.conn.execute(console_sessions.insert().values(operator_id=operator_id, session_hash=session_hash, locale=locale,
                                                           created_at=now, last_seen_at=now))

    def session(self, session_hash: str) -> dict[str, Any] | None:
        """The session of a cookie hash with its operator (e-mail, role, disabled_at, tenant_id)."""
        row = self.conn.execute(select(
            console_sessions, operators.c.email, operators.c.role, operators.c.disabled_at, operators.c.tenant_id,
        ).join(operators, operators.c.id == console_sessions.c.operator_id).where(
            console_sessions.c.session_hash == session_hash)).mappings().first()
        return dict(row) if row else None

    def touch(self, session_id: int, now: datetime, locale: str | None = None) -> None:
        """Restart a session's idle clock at ``now``; with ``locale``, also switch its language."""
        touch_session(self.conn, console_sessions, session_id, now, locale)

    def end_sessions(self, now: datetime, *, session_id: int | None = None,
                     operator_id: int | None = None) -> int:
        """End one session, or every open session of an operator; returns how many ended."""
        q = update(console_sessions).where(console_sessions.c.ended_at.is_(None))
        if session_id is not None:
            q = q.where(console_sessions.c.id == session_id)
        if operator_id is not None:
            q = q.where(console_sessions.c.operator_id == operator_id)
        return int(self.conn.execute(q.values(ended_at=now)).rowcount)


class ConsoleReadRepository:
    """What the console reads beyond the API's queries (services/console_reads.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def past_due_invoices(self, tenant_id: int, today: date, limit: int) -> list[dict[str, Any]]:
        """The tenant's open invoices with a failed attempt or a bank-transfer due date before ``today``, oldest first,
        with the customer (key, name, collection) and the decline code of the last failed attempt."""
        last_failed = (select(payment_attempts.c.invoice_id, func.max(payment_attempts.c.id).label("last_id"))
                       .where(payment_attempts.c.outcome == "failed").group_by(payment_attempts.c.invoice_id).subquery())
        q = (select(invoices.c.number, invoices.c.issued_on, invoices.c.total, invoices.c.attempts, invoices.c.next_retry_at,
                    invoices.c.first_failed_at, invoices.c.due_on, customers.c.key.label("customer"),
                    customers.c.name.label("customer_name"), customers.c.collection, payment_attempts.c.code.label("last_code"))
             .join(customers, customers.c.id == invoices.c.customer_id)
             .outerjoin(last_failed, last_failed.c.invoice_id == invoices.c.id)
             .outerjoin(payment_attempts, payment_attempts.c.id == last_failed.c.last_id)
             .where(invoices.c.tenant_id == tenant_id, invoices.c.status == "open",
                    or_(invoices.c.attempts > 0, invoices.c.due_on < today))
             .order_by(invoices.c.id).limit(limit))
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def customer_timeline(self, customer_id: int, limit: int) -> list[dict[str, Any]]:
        """The customer's audit records, newest first (at most ``limit``)."""
        q = select(audit_log).where(audit_log.c.customer_id == customer_id).order_by(audit_log.c.id.desc()).limit(limit)
        return [dict(r) for r in self.conn.execute(q).mappings()]
