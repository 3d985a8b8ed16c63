"""What an operator watches, read from the database (so it is the same whichever process answers, for N workers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, text

from .tables import customers, invoices, outbox, payment_attempts, webhook_deliveries, webhook_events


@dataclass(frozen=True)
class Backlog:
    """How many items wait, and how long the oldest has waited (seconds; 0 when none)."""

    count: int
    oldest_age_seconds: float


def ping(conn: Connection) -> None:
    """A round trip to the database; raises if it cannot be reached."""
    conn.execute(text("SELECT 1")).scalar_one()


def _age(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


def due_backlog(conn: Connection, now: datetime) -> Backlog:
    """Accounts on the real clock with work due by ``now`` (renewals, closes, retries…), the oldest by its due time."""
    n, oldest = conn.execute(select(func.count(), func.min(customers.c.next_due_at)).where(
        customers.c.next_due_at <= now, customers.c.test_clock_id.is_(None))).one()
    return Backlog(int(n), _age(now, oldest))


def outbox_backlog(conn: Connection, now: datetime) -> dict[str, Backlog]:
    """Undelivered mail and webhook deliveries (pending, in backoff or claimed), the oldest by when it was queued."""
    n, oldest = conn.execute(select(func.count(), func.min(outbox.c.created_at)).where(
        outbox.c.status.in_(("pending", "sending")))).one()
    w, w_oldest = conn.execute(select(func.count(), func.min(webhook_events.c.created_at))
                               .select_from(webhook_deliveries.join(webhook_events))
                               .where(webhook_deliveries.c.status.in_(("pending", "sending")))).one()
    return {"mail": Backlog(int(n), _age(now, oldest)), "webhook": Backlog(int(w), _age(now, w_oldest))}


def charges_by_outcome(conn: Connection) -> dict[str, int]:
    """Card charges made so far, by outcome (succeeded, failed)."""
    return {str(o): int(n) for o, n in conn.execute(
        select(payment_attempts.c.outcome, func.count()).group_by(payment_attempts.c.outcome))}


def scheduled_invoices(conn: Connection) -> int:
    """Invoices issued by the due-work run for a period (renewals and month closes: those with a billing key)."""
    return int(conn.execute(select(func.count()).select_from(invoices).where(invoices.c.billing_key.is_not(None))).scalar_one())
