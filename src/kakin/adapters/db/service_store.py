"""Queries of the service layer: API keys, members, idempotency records, eligibility, webhooks, test clocks (domains:
``domain_store``)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .bulk import in_ids
from .store import TenantRow
from .tables import (
    api_keys,
    audit_log,
    customers,
    eligibility_applications,
    idempotency_keys,
    members,
    tenants,
    test_clocks,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)


def tenant_by_id(conn: Connection, tenant_id: int) -> TenantRow:
    return TenantRow.of(conn.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one())


# ------------------------------------------------------------------ API keys
def add_api_key(conn: Connection, tenant_id: int, prefix: str, secret_hash: str, role: str, name: str, now: datetime) -> None:
    conn.execute(insert(api_keys).values(tenant_id=tenant_id, prefix=prefix, secret_hash=secret_hash, role=role, name=name,
                                         created_at=now))


def api_keys_of(conn: Connection, tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's keys without their hashes, oldest first."""
    cols = [api_keys.c.prefix, api_keys.c.role, api_keys.c.name, api_keys.c.created_at, api_keys.c.revoked_at]
    return [dict(r) for r in conn.execute(select(*cols).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.id)).mappings()]


def revoke_api_key(conn: Connection, tenant_id: int, prefix: str, now: datetime) -> bool:
    """Mark one of the tenant's keys revoked; False when the tenant has no such key or it was revoked before."""
    done = conn.execute(update(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.prefix == prefix,
                                               api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
    return bool(done.rowcount)


def api_key_by_prefix(conn: Connection, prefix: str) -> dict[str, Any] | None:
    row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).mappings().first()
    return dict(row) if row else None


# ------------------------------------------------------------------ members
def add_member(conn: Connection, tenant_id: int, customer_id: int, public_id: str, email: str, name: str, role: str,
               now: datetime) -> None:
    conn.execute(insert(members).values(tenant_id=tenant_id, customer_id=customer_id, public_id=public_id, email=email,
                                        name=name, role=role, created_at=now))


def members_of(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(members).where(members.c.customer_id == customer_id).order_by(members.c.id)).mappings()]


def member(conn: Connection, tenant_id: int, customer_id: int, public_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(members).where(members.c.tenant_id == tenant_id, members.c.customer_id == customer_id,
                                             members.c.public_id == public_id)).mappings().first()
    return dict(row) if row else None


def remove_member(conn: Connection, member_row_id: int) -> None:
    """Delete a member and its portal sessions (they end with it)."""
    from .tables import portal_sessions

    conn.execute(delete(portal_sessions).where(portal_sessions.c.member_id == member_row_id))
    conn.execute(delete(members).where(members.c.id == member_row_id))


def count_admins(conn: Connection, customer_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(members).where(
        members.c.customer_id == customer_id, members.c.role == "admin")).scalar_one())


# ----------------------------------------------------------- idempotency
def idempotency_record(conn: Connection, tenant_id: int, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(idempotency_keys).where(idempotency_keys.c.tenant_id == tenant_id,
                                                      idempotency_keys.c.key == key)).mappings().first()
    return dict(row) if row else None


def save_idempotency_record(conn: Connection, tenant_id: int, key: str, request_hash: str, status: int, body: str,
                            now: datetime) -> None:
    conn.execute(insert(idempotency_keys).values(tenant_id=tenant_id, key=key, request_hash=request_hash, status_code=status,
                                                 response_body=body, created_at=now))


def purge_idempotency_records(conn: Connection, before: datetime) -> int:
    """Forget the responses recorded before ``before``; returns how many."""
    return int(conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before)).rowcount)


# ------------------------------------------------------------------ eligibility
def add_application(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(eligibility_applications).values(**row))


def application(conn: Connection, tenant_id: int, public_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(eligibility_applications, customers.c.key.label("customer")).join(
        customers, customers.c.id == eligibility_applications.c.customer_id).where(
        eligibility_applications.c.tenant_id == tenant_id, eligibility_applications.c.public_id == public_id)).mappings().first()
    return dict(row) if row else None


def applications(conn: Connection, tenant_id: int, *, customer_id: int | None = None, status: str | None = None,
                 code: str | None = None) -> list[dict[str, Any]]:
    q = select(eligibility_applications, customers.c.key.label("customer")).join(
        customers, customers.c.id == eligibility_applications.c.customer_id).where(
        eligibility_applications.c.tenant_id == tenant_id)
    if customer_id is not None:
        q = q.where(eligibility_applications.c.customer_id == customer_id)
    if status is not None:
        q = q.where(eligibility_applications.c.status == status)
    if code is not None:
        q = q.where(eligibility_applications.c.code == code)
    return [dict(r) for r in conn.execute(q.order_by(eligibility_applications.c.id)).mappings()]


def decide_application(conn: Connection, application_id: int, status: str, reasons: str, now: datetime, by: str) -> None:
    conn.execute(update(eligibility_applications).where(eligibility_applications.c.id == application_id).values(
        status=status, reasons=reasons, decided_at=now, decided_by=by))


def set_account_verified(conn: Connection, customer_id: int, now: datetime) -> None:
    conn.execute(update(customers).where(customers.c.id == customer_id, customers.c.verified_at.is_(None)).values(
        verified_at=now))


# ------------------------------------------------------------------ webhooks
def add_webhook_endpoint(conn: Connection, tenant_id: int, public_id: str, url: str, secret: str, events: list[str],
                         now: datetime) -> None:
    conn.execute(insert(webhook_endpoints).values(tenant_id=tenant_id, public_id=public_id, url=url, secret=secret,
                                                  events=json.dumps(events), enabled=True, created_at=now))


def webhook_endpoints_of(conn: Connection, tenant_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.tenant_id == tenant_id).order_by(
        webhook_endpoints.c.id)).mappings()
    return [{**dict(r), "events": json.loads(r["events"])} for r in rows]


def _payload_value(value: Any) -> Any:
    """What ``json`` cannot encode in an event: instants and dates in ISO 8601 (with their offset), else text."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def record_webhook_events(conn: Connection, tenant_id: int, events: list[dict[str, Any]], now: datetime,
                          endpoints: list[dict[str, Any]]) -> None:
    """Store events and queue a delivery to each of these (enabled) endpoints that subscribes to their type."""
    if not events or not endpoints:
        return
    for event in events:
        event_id = conn.execute(insert(webhook_events).values(
            tenant_id=tenant_id, public_id=event["id"], type=event["type"], customer_key=event.get("customer"),
            payload=json.dumps(event, ensure_ascii=False, sort_keys=True, default=_payload_value), created_at=now,
        ).returning(webhook_events.c.id)).scalar_one()
        rows = [{"event_id": event_id, "endpoint_id": e["id"], "status": "pending", "attempts": 0, "next_attempt_at": now}
                for e in endpoints if "*" in e["events"] or event["type"] in e["events"]]
        if rows:
            conn.execute(insert(webhook_deliveries), rows)


def deliveries_of(conn: Connection, tenant_id: int, endpoint_public_id: str) -> list[dict[str, Any]]:
    q = (select(webhook_deliveries, webhook_events.c.public_id.label("event"), webhook_events.c.type)
         .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
         .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
         .where(webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.public_id == endpoint_public_id)
         .order_by(webhook_deliveries.c.id))
    return [dict(r) for r in conn.execute(q).mappings()]


def resend_delivery(conn: Connection, tenant_id: int, delivery: int, now: datetime) -> dict[str, Any] | None:
    """Queue a delivered or failed delivery of the tenant's again, due ``now``; returns it as it was, or None when the
    tenant has no such delivery. One pending or being sent is left as it is."""
    q = (select(webhook_deliveries, webhook_events.c.public_id.label("event"), webhook_events.c.type)
         .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
         .where(webhook_deliveries.c.id == delivery, webhook_events.c.tenant_id == tenant_id))
    row = conn.execute(q).mappings().first()
    if row is None:
        return None
    if row["status"] in ("delivered", "failed"):
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery).values(
            status="pending", next_attempt_at=now, claim=None))
    return dict(row)


# ---------------------------------------------------------------- test clocks
def add_test_clock(conn: Connection, tenant_id: int, public_id: str, name: str, frozen: datetime, now: datetime) -> None:
    conn.execute(insert(test_clocks).values(tenant_id=tenant_id, public_id=public_id, name=name, frozen_time=frozen,
                                            created_at=now))


def test_clock(conn: Connection, tenant_id: int, public_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(test_clocks).where(test_clocks.c.tenant_id == tenant_id,
                                                 test_clocks.c.public_id == public_id)).mappings().first()
    return dict(row) if row else None


def test_clock_by_id(conn: Connection, clock_id: int) -> dict[str, Any]:
    return dict(conn.execute(select(test_clocks).where(test_clocks.c.id == clock_id)).mappings().one())


def set_test_clock_time(conn: Connection, clock_id: int, frozen: datetime) -> None:
    conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id).values(frozen_time=frozen))


def attach_test_clock(conn: Connection, customer_id: int, clock_id: int) -> None:
    conn.execute(update(customers).where(customers.c.id == customer_id).values(test_clock_id=clock_id))


# ------------------------------------------------------------------ customers
def set_billing_profile(conn: Connection, customer_id: int, values: dict[str, Any]) -> None:
    """Write the customer's ``addressee``, ``postal_code``, ``address`` and ``billing_email`` (those keys of ``values``)."""
    conn.execute(update(customers).where(customers.c.id == customer_id).values(**values))


def set_customer_name(conn: Connection, customer_id: int, name: str) -> None:
    """Rename the customer (its account name)."""
    conn.execute(update(customers).where(customers.c.id == customer_id).values(name=name))


def request_verification(conn: Connection, customer_id: int, now: datetime) -> None:
    """Record that the customer applied for 認証済アカウント at ``now``."""
    conn.execute(update(customers).where(customers.c.id == customer_id).values(verification_requested_at=now))


def notice_addresses(conn: Connection, customer_ids: list[int]) -> dict[int, str]:
    """Where each customer's notices go: its billing e-mail, else its super admin's address (customers with
    neither are left out)."""
    out = {int(c): e for c, e in conn.execute(select(customers.c.id, customers.c.billing_email).where(
        in_ids(conn, customers.c.id, customer_ids), customers.c.billing_email.is_not(None)))}
    for c, e in conn.execute(select(members.c.customer_id, members.c.email).where(
            in_ids(conn, members.c.customer_id, customer_ids), members.c.role == "super_admin")):
        out.setdefault(int(c), e)
    return out


# ------------------------------------------------------------------ listing
def customer_keys(conn: Connection, ids: set[int]) -> dict[int, str]:
    """The key (the id the API shows) of each of these customers."""
    if not ids:
        return {}
    return {int(i): k for i, k in conn.execute(select(customers.c.id, customers.c.key).where(customers.c.id.in_(ids))).all()}


def page(conn: Connection, table: Any, tenant_id: int, after: int | None, limit: int, *where: Any) -> list[dict[str, Any]]:
    q = select(table).where(table.c.tenant_id == tenant_id, *where)
    if after is not None:
        q = q.where(table.c.id > after)
    return [dict(r) for r in conn.execute(q.order_by(table.c.id).limit(limit + 1)).mappings()]


__all__ = ["IntegrityError", "audit_log", "customers", "page"]
