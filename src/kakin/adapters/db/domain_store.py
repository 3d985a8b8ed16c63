"""Queries of customers' domains (services/domains.py) and of plan changes the worker completes (services/upgrades.py):
``uow.domains`` and ``uow.plan_change_jobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .tables import customers, domain_verifications, plan_change_jobs

DV = domain_verifications


class DomainRepository:
    """Customers' domains (``domain_verifications``; services/domains.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def owner_in_use(self, tenant_id: int, domain: str) -> str | None:
        """The key of the tenant's customer using ``domain`` (verified and not deleted), if one is."""
        return self.conn.execute(select(customers.c.key).join(DV, DV.c.customer_id == customers.c.id).where(
            DV.c.tenant_id == tenant_id, DV.c.verified_domain == domain)).scalar()

    def retired(self, tenant_id: int, domain: str) -> bool:
        """Whether ``domain`` is a vendor-provided domain some customer of the tenant deleted (never issued again)."""
        return self.conn.execute(select(DV.c.id).where(DV.c.tenant_id == tenant_id, DV.c.domain == domain, DV.c.provided,
                                                       DV.c.deleted_at.is_not(None)).limit(1)).first() is not None

    def get(self, customer_id: int, name: str) -> dict[str, Any] | None:
        """The customer's row of domain ``name`` (a deleted provided domain included), or None."""
        row = self.conn.execute(select(DV).where(DV.c.customer_id == customer_id, DV.c.domain == name)).mappings().first()
        return dict(row) if row else None

    def of_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's domains, not deleted, in the order they were added."""
        return [dict(r) for r in self.conn.execute(select(DV).where(DV.c.customer_id == customer_id, DV.c.deleted_at.is_(None))
                                                   .order_by(DV.c.id)).mappings()]

    def add(self, tenant_id: int, customer_id: int, name: str, token: str, now: datetime, *,
            provided: bool = False) -> None:
        """A domain added to the customer, pending, its token to publish and its first check due ``now``."""
        self.conn.execute(insert(DV).values(tenant_id=tenant_id, customer_id=customer_id, domain=name, token=token,
                                            created_at=now, provided=provided, next_check_at=now))

    def restart(self, row_id: int, now: datetime) -> None:
        """A pending domain added again: its 24 hours of checks start over."""
        self.conn.execute(update(DV).where(DV.c.id == row_id).values(created_at=now, next_check_at=now))

    def set_in_use(self, row_id: int, customer_id: int, name: str, now: datetime, *, primary: bool) -> bool:
        """Mark the domain verified and in use (and the customer's primary domain if ``primary``); False, with nothing
        changed, when another customer of the tenant uses it (two verifying it at once: one loses cleanly)."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(update(DV).where(DV.c.id == row_id).values(verified_domain=name, verified_at=now,
                                                                             next_check_at=None))
                if primary:
                    self.conn.execute(update(customers).where(customers.c.id == customer_id).values(verified_domain=name))
        except IntegrityError:
            return False
        return True

    def set_primary(self, customer_id: int, name: str, now: datetime) -> None:
        """Make ``name`` the customer's primary domain; the change's instant starts its lock."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id).values(verified_domain=name,
                                                                                        primary_domain_changed_at=now))

    def remove(self, row: dict[str, Any], now: datetime) -> None:
        """Delete a domain: a provided one stays as a deleted row (never issued again), another goes."""
        if row["provided"]:
            self.conn.execute(update(DV).where(DV.c.id == row["id"]).values(deleted_at=now, verified_domain=None))
        else:
            self.conn.execute(delete(DV).where(DV.c.id == row["id"]))

    def pending_checks(self, now: datetime, since: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending domains due for a TXT look-up (``next_check_at`` ≤ now) added after ``since``, with their tenant and
        customer key. Looked up outside any transaction: two workers may look one up twice, which is harmless."""
        query = (select(DV, customers.c.key.label("customer_key")).join(customers, customers.c.id == DV.c.customer_id)
                 .where(DV.c.verified_at.is_(None), DV.c.deleted_at.is_(None), DV.c.next_check_at <= now,
                        DV.c.created_at > since).order_by(DV.c.next_check_at).limit(limit))
        return [dict(r) for r in self.conn.execute(query).mappings()]

    def check_again_at(self, row_id: int, at: datetime) -> None:
        """Look the pending domain up again at ``at``."""
        self.conn.execute(update(DV).where(DV.c.id == row_id).values(next_check_at=at))



class PlanChangeJobRepository:
    """Plan changes the worker completes (``plan_change_jobs``; services/upgrades.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, row: dict[str, Any]) -> int:
        """Queue a plan change for the worker (``pending``); its row id."""
        return int(self.conn.execute(insert(plan_change_jobs).values(**row, status="pending").returning(plan_change_jobs.c.id))
                   .scalar_one())

    def latest_of(self, customer_id: int) -> dict[str, Any] | None:
        """The customer's latest plan-change job, or None."""
        row = self.conn.execute(select(plan_change_jobs).where(plan_change_jobs.c.customer_id == customer_id)
                                .order_by(plan_change_jobs.c.id.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def due(self, limit: int) -> list[dict[str, Any]]:
        """Pending jobs, oldest first, with the customer's key and tenant; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL."""
        query = (select(plan_change_jobs, customers.c.key.label("customer_key"))
                 .join(customers, customers.c.id == plan_change_jobs.c.customer_id)
                 .where(plan_change_jobs.c.status == "pending").order_by(plan_change_jobs.c.id).limit(limit))
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=plan_change_jobs)
        return [dict(r) for r in self.conn.execute(query).mappings()]

    def finish(self, job_id: int, status: str, now: datetime, error_code: str | None = None) -> None:
        """Mark a pending job ``completed`` or ``failed`` (with the refusal's code); one finished already is left alone."""
        self.conn.execute(update(plan_change_jobs).where(plan_change_jobs.c.id == job_id, plan_change_jobs.c.status == "pending")
                          .values(status=status, finished_at=now, error_code=error_code))
