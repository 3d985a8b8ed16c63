"""Queries of the service layer: API keys, members, idempotency records, eligibility, webhooks, test clocks, customer
columns and pages (domains: ``domain_store``). One repository class each, reached on the unit of work as
``uow.api_keys``, ``uow.members``, ``uow.idempotency``, ``uow.applications``, ``uow.webhooks``, ``uow.test_clocks``,
``uow.customer_records`` and ``uow.listing``."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from .bulk import in_ids
from .tables import (
    api_keys,
    audit_log,
    customers,
    eligibility_applications,
    idempotency_keys,
    members,
    test_clocks,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)


def _payload_value(value: Any) -> Any:
    """What ``json`` cannot encode in an event: instants and dates in ISO 8601 (with their offset), else text."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


class ApiKeyRepository:
    """The tenants' API keys (``api_keys``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, tenant_id: int, prefix: str, secret_hash: str, role: str, name: str, now: datetime) -> None:
        """Store a new key of the tenant: its public prefix and the hash of its secret."""
        self.conn.execute(insert(api_keys).values(tenant_id=tenant_id, prefix=prefix, secret_hash=secret_hash, role=role,
                                                  name=name, created_at=now))

    def of_tenant(self, tenant_id: int) -> list[dict[str, Any]]:
        """The tenant's keys without their hashes, oldest first."""
        cols = [api_keys.c.prefix, api_keys.c.role, api_keys.c.name, api_keys.c.created_at, api_keys.c.revoked_at]
        return [dict(r) for r in self.conn.execute(select(*cols).where(api_keys.c.tenant_id == tenant_id).order_by(
            api_keys.c.id)).mappings()]

    def revoke(self, tenant_id: int, prefix: str, now: datetime) -> bool:
        """Mark one of the tenant's keys revoked; False when the tenant has no such key or it was revoked before."""
        done = self.conn.execute(update(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.prefix == prefix,
                                                        api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
        return bool(done.rowcount)

    def by_prefix(self, prefix: str) -> dict[str, Any] | None:
        """The key with this prefix, any tenant, revoked or not; None if there is none."""
        row = self.conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).mappings().first()
        return dict(row) if row else None


class MemberRepository:
    """Customers' members (``members``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, tenant_id: int, customer_id: int, public_id: str, email: str, name: str, role: str,
            now: datetime) -> None:
        """Store a new member of the customer."""
        self.conn.execute(insert(members).values(tenant_id=tenant_id, customer_id=customer_id, public_id=public_id, email=email,
                                                 name=name, role=role, created_at=now))

    def of_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's members, oldest first."""
        return [dict(r) for r in self.conn.execute(select(members).where(members.c.customer_id == customer_id).order_by(
            members.c.id)).mappings()]

    def get(self, tenant_id: int, customer_id: int, public_id: str) -> dict[str, Any] | None:
        """The tenant's customer's member with this public id; None if there is none."""
        row = self.conn.execute(select(members).where(members.c.tenant_id == tenant_id, members.c.customer_id == customer_id,
                                                      members.c.public_id == public_id)).mappings().first()
        return dict(row) if row else None

    def remove(self, member_row_id: int) -> None:
        """Delete a member and its portal sessions (they end with it)."""
        from .tables import portal_sessions

        self.conn.execute(delete(portal_sessions).where(portal_sessions.c.member_id == member_row_id))
        self.conn.execute(delete(members).where(members.c.id == member_row_id))

    def count_admins(self, customer_id: int) -> int:
        """How many admins (not counting the super admin) the customer has."""
        return int(self.conn.execute(select(func.count()).select_from(members).where(
            members.c.customer_id == customer_id, members.c.role == "admin")).scalar_one())


class IdempotencyRepository:
    """Responses recorded by ``Idempotency-Key`` (``idempotency_keys``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, tenant_id: int, key: str) -> dict[str, Any] | None:
        """The response recorded for the tenant's key; None if there is none."""
        row = self.conn.execute(select(idempotency_keys).where(idempotency_keys.c.tenant_id == tenant_id,
                                                               idempotency_keys.c.key == key)).mappings().first()
        return dict(row) if row else None

    def lock(self, tenant_id: int, key: str) -> None:
        """Hold the tenant's key until this transaction ends, so two requests sent with one key run one after the
        other and the second finds the first's response (never both effects, nor a refusal the first caused). On
        PostgreSQL a transaction-level advisory lock on a 64-bit hash of the tenant and the key, taken before any row
        lock (the store's lock order); SQLite's writing transaction is the only writer already."""
        if self.conn.dialect.name == "postgresql":
            digest = hashlib.sha256(f"idempotency:{tenant_id}:{key}".encode()).digest()
            self.conn.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True))))

    def save(self, tenant_id: int, key: str, request_hash: str, status: int, body: str,
             now: datetime) -> None:
        """Record a request's hash and its response (status, body) under the tenant's key."""
        self.conn.execute(insert(idempotency_keys).values(tenant_id=tenant_id, key=key, request_hash=request_hash,
                                                          status_code=status, response_body=body, created_at=now))

    def purge(self, before: datetime) -> int:
        """Forget the responses recorded before ``before``; returns how many."""
        return int(self.conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before)).rowcount)


class ApplicationRepository:
    """Eligibility applications (``eligibility_applications``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, row: dict[str, Any]) -> None:
        """Store a new application (a row of ``eligibility_applications``)."""
        self.conn.execute(insert(eligibility_applications).values(**row))

    def get(self, tenant_id: int, public_id: str) -> dict[str, Any] | None:
        """The tenant's application with this public id, with its customer's key; None if there is none."""
        row = self.conn.execute(select(eligibility_applications, customers.c.key.label("customer")).join(
            customers, customers.c.id == eligibility_applications.c.customer_id).where(
            eligibility_applications.c.tenant_id == tenant_id,
            eligibility_applications.c.public_id == public_id)).mappings().first()
        return dict(row) if row else None

    def find(self, tenant_id: int, *, customer_id: int | None = None, status: str | None = None,
             code: str | None = None) -> list[dict[str, Any]]:
        """The tenant's applications, oldest first, with their customer's key; narrowed to a customer, a status or a
        code when given."""
        q = select(eligibility_applications, customers.c.key.label("customer")).join(
            customers, customers.c.id == eligibility_applications.c.customer_id).where(
            eligibility_applications.c.tenant_id == tenant_id)
        if customer_id is not None:
            q = q.where(eligibility_applications.c.customer_id == customer_id)
        if status is not None:
            q = q.where(eligibility_applications.c.status == status)
        if code is not None:
            q = q.where(eligibility_applications.c.code == code)
        return [dict(r) for r in self.conn.execute(q.order_by(eligibility_applications.c.id)).mappings()]

    def decide(self, application_id: int, status: str, reasons: str, now: datetime, by: str) -> None:
        """Record the decision on an application: its status, the reasons (JSON), when and by whom."""
        self.conn.execute(update(eligibility_applications).where(eligibility_applications.c.id == application_id).values(
            status=status, reasons=reasons, decided_at=now, decided_by=by))


class WebhookRepository:
    """Webhook endpoints, events and deliveries as the API manages them (claiming and recording deliveries:
    ``outboxes``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_endpoint(self, tenant_id: int, public_id: str, url: str, secret: str, events: list[str],
                     now: datetime) -> None:
        """Store a new, enabled endpoint of the tenant receiving ``events`` (``["*"]``: all)."""
        self.conn.execute(insert(webhook_endpoints).values(tenant_id=tenant_id, public_id=public_id, url=url, secret=secret,
                                                           events=json.dumps(events), enabled=True, created_at=now))

    def endpoints_of(self, tenant_id: int) -> list[dict[str, Any]]:
        """The tenant's endpoints, oldest first, their ``events`` decoded."""
        rows = self.conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.tenant_id == tenant_id).order_by(
            webhook_endpoints.c.id)).mappings()
        return [{**dict(r), "events": json.loads(r["events"])} for r in rows]

    def record_events(self, tenant_id: int, events: list[dict[str, Any]], now: datetime,
                      endpoints: list[dict[str, Any]]) -> None:
        """Store events and queue a delivery to each of these (enabled) endpoints that subscribes to their type."""
        if not events or not endpoints:
            return
        for event in events:
            event_id = self.conn.execute(insert(webhook_events).values(
                tenant_id=tenant_id, public_id=event["id"], type=event["type"], customer_key=event.get("customer"),
                payload=json.dumps(event, ensure_ascii=False, sort_keys=True, default=_payload_value), created_at=now,
            ).returning(webhook_events.c.id)).scalar_one()
            rows = [{"event_id": event_id, "endpoint_id": e["id"], "status": "pending", "attempts": 0, "next_attempt_at": now}
                    for e in endpoints if "*" in e["events"] or event["type"] in e["events"]]
            if rows:
                self.conn.execute(insert(webhook_deliveries), rows)

    def deliveries_of(self, tenant_id: int, endpoint_public_id: str) -> list[dict[str, Any]]:
        """The deliveries to one of the tenant's endpoints, oldest first, with their event's public id and type."""
        q = (select(webhook_deliveries, webhook_events.c.public_id.label("event"), webhook_events.c.type)
             .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
             .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
             .where(webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.public_id == endpoint_public_id)
             .order_by(webhook_deliveries.c.id))
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def resend(self, tenant_id: int, delivery: int, now: datetime) -> dict[str, Any] | None:
        """Queue a delivered or failed delivery of the tenant's again, due ``now``; returns it as it was, or None when the
        tenant has no such delivery. One pending or being sent is left as it is."""
        q = (select(webhook_deliveries, webhook_events.c.public_id.label("event"), webhook_events.c.type)
             .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
             .where(webhook_deliveries.c.id == delivery, webhook_events.c.tenant_id == tenant_id))
        row = self.conn.execute(q).mappings().first()
        if row is None:
            return None
        if row["status"] in ("delivered", "failed"):
            self.conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery).values(
                status="pending", next_attempt_at=now, claim=None))
        return dict(row)


class TestClockRepository:
    """Test clocks (``test_clocks``), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, tenant_id: int, public_id: str, name: str, frozen: datetime, now: datetime) -> None:
        """Store a new test clock of the tenant, frozen at ``frozen``."""
        self.conn.execute(insert(test_clocks).values(tenant_id=tenant_id, public_id=public_id, name=name, frozen_time=frozen,
                                                     created_at=now))

    def get(self, tenant_id: int, public_id: str) -> dict[str, Any] | None:
        """The tenant's test clock with this public id; None if there is none."""
        row = self.conn.execute(select(test_clocks).where(test_clocks.c.tenant_id == tenant_id,
                                                          test_clocks.c.public_id == public_id)).mappings().first()
        return dict(row) if row else None

    def by_id(self, clock_id: int) -> dict[str, Any]:
        """The test clock with this row id (it must exist)."""
        return dict(self.conn.execute(select(test_clocks).where(test_clocks.c.id == clock_id)).mappings().one())

    def set_time(self, clock_id: int, frozen: datetime) -> None:
        """Move the clock to ``frozen``."""
        self.conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id).values(frozen_time=frozen))

    def attach(self, customer_id: int, clock_id: int) -> None:
        """Put the customer on the clock."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id).values(test_clock_id=clock_id))


class CustomerRecordRepository:
    """What services write on customers beyond the account store, and where their notices go, on one
    connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def set_verified(self, customer_id: int, now: datetime) -> None:
        """Mark the customer's account verified (認証済アカウント) at ``now``, unless it is already."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id, customers.c.verified_at.is_(None)).values(
            verified_at=now))

    def set_billing_profile(self, customer_id: int, values: dict[str, Any]) -> None:
        """Write the customer's ``addressee``, ``postal_code``, ``address`` and ``billing_email`` (those keys of ``values``)."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id).values(**values))

    def set_name(self, customer_id: int, name: str) -> None:
        """Rename the customer (its account name)."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id).values(name=name))

    def request_verification(self, customer_id: int, now: datetime) -> None:
        """Record that the customer applied for 認証済アカウント at ``now``."""
        self.conn.execute(update(customers).where(customers.c.id == customer_id).values(verification_requested_at=now))

    def notice_addresses(self, customer_ids: list[int]) -> dict[int, str]:
        """Where each customer's notices go: its billing e-mail, else its super admin's address (customers with
        neither are left out)."""
        out = {int(c): e for c, e in self.conn.execute(select(customers.c.id, customers.c.billing_email).where(
            in_ids(self.conn, customers.c.id, customer_ids), customers.c.billing_email.is_not(None))).all()}
        for c, e in self.conn.execute(select(members.c.customer_id, members.c.email).where(
                in_ids(self.conn, members.c.customer_id, customer_ids), members.c.role == "super_admin")).all():
            out.setdefault(int(c), e)
        return out

    def keys(self, ids: set[int]) -> dict[int, str]:
        """The key (the id the API shows) of each of these customers."""
        if not ids:
            return {}
        return {int(i): k for i, k in self.conn.execute(select(customers.c.id, customers.c.key).where(
            customers.c.id.in_(ids))).all()}


_PAGED = {"customers": customers, "audit_log": audit_log}


class ListingRepository:
    """Pages of a tenant's rows for the API's cursor pagination, on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def page(self, kind: str, tenant_id: int, after: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit + 1`` of the tenant's ``customers`` or ``audit_log`` rows after row id ``after``, in id order
        (one more than the page tells whether another follows)."""
        table = _PAGED[kind]
        q = select(table).where(table.c.tenant_id == tenant_id)
        if after is not None:
            q = q.where(table.c.id > after)
        return [dict(r) for r in self.conn.execute(q.order_by(table.c.id).limit(limit + 1)).mappings()]

