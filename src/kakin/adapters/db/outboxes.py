"""Claiming outbox rows (mail and webhook deliveries) so that each is worked on by one worker at a time.

A claim is a conditional update in a short transaction: due rows (``pending``
and due, or ``sending`` with an expired lease) become ``sending`` with the
claiming worker's token, one more attempt, and ``next_attempt_at`` set to the
end of the lease. On PostgreSQL the due rows are picked ``FOR UPDATE SKIP
LOCKED``, so concurrent claimers take different rows without waiting; on
SQLite a writing transaction holds the database's write lock, which serializes
claims. The sending happens after the claim is committed, outside any
transaction, and the outcome is recorded only where the token is still the
worker's own: a worker whose lease ran out and whose row was claimed again
changes nothing. ``uow.outboxes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .tables import outbox, webhook_deliveries, webhook_endpoints, webhook_events

OUTBOXES: dict[str, Table] = {"mail": outbox, "webhook": webhook_deliveries}


class OutboxRepository:
    """The mail and webhook outboxes: queueing notices, claiming due rows, recording outcomes, on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def queue_mail(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue notices (outbox rows with the same keys); one whose ``(tenant_id, dedupe_key)`` is already queued is
        skipped (a redone run's notice: once is enough)."""
        if not rows:
            return
        dialect_insert = postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert
        self.conn.execute(dialect_insert(outbox).on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"]), list(rows))

    def claim(self, kind: str, token: str, now: datetime, lease: timedelta, limit: int,
              max_attempts: int) -> list[int]:
        """Claim up to ``limit`` due rows of the ``mail`` or ``webhook`` outbox for ``token``; returns their ids.

        A row whose lease expired after ``max_attempts`` attempts (a worker died on
        it each time) is marked failed instead of being claimed again.
        """
        t = OUTBOXES[kind]
        self.conn.execute(update(t).where(t.c.status == "sending", t.c.next_attempt_at <= now, t.c.attempts >= max_attempts)
                          .values(status="failed", claim=None, next_attempt_at=None,
                                  last_error="the worker sending it stopped before recording the outcome, too many times"))
        due = (select(t.c.id).where(t.c.status.in_(("pending", "sending")), t.c.next_attempt_at <= now)
               .order_by(t.c.next_attempt_at, t.c.id).limit(limit))
        if self.conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = [int(i) for (i,) in self.conn.execute(due)]
        if ids:
            self.conn.execute(update(t).where(t.c.id.in_(ids)).values(
                status="sending", claim=token, attempts=t.c.attempts + 1, next_attempt_at=now + lease))
        return ids

    def claimed_mail(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The claimed notices, in id order."""
        return [dict(r) for r in self.conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id)).mappings()]

    def claimed_deliveries(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The claimed webhook deliveries with their event (payload, public id, type) and endpoint (url, secret)."""
        q = (select(webhook_deliveries, webhook_events.c.payload, webhook_events.c.public_id.label("event_public_id"),
                    webhook_events.c.type, webhook_endpoints.c.url, webhook_endpoints.c.secret)
             .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
             .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
             .where(webhook_deliveries.c.id.in_(ids)).order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id))
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def record(self, kind: str, row_id: int, token: str, **values: Any) -> bool:
        """Record the outcome of a claimed row; False (and nothing changed) if the claim is no longer ``token``'s."""
        t = OUTBOXES[kind]
        done = self.conn.execute(update(t).where(t.c.id == row_id, t.c.status == "sending", t.c.claim == token)
                                 .values(claim=None, **values))
        return bool(done.rowcount)

    def release(self, kind: str, ids: Sequence[int], token: str, now: datetime) -> int:
        """Hand back claimed rows that were not attempted: pending again at once, the attempt not counted."""
        if not ids:
            return 0
        t = OUTBOXES[kind]
        done = self.conn.execute(update(t).where(t.c.id.in_(ids), t.c.status == "sending", t.c.claim == token)
                                 .values(status="pending", claim=None, attempts=t.c.attempts - 1, next_attempt_at=now))
        return int(done.rowcount)
