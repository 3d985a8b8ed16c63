"""Webhook endpoints and delivery.

Each event is POSTed as JSON with the header
``Kakin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
Failed deliveries are retried with exponential backoff (30 s, 1 min, 2 min, …,
capped at 6 h) up to 12 attempts; every attempt's outcome is kept. Deliveries
are claimed before they are sent and sent outside any transaction
(``services.delivery``); HTTP goes through the :class:`Poster` port.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlparse

from kakin.adapters.db import Engine
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors

from .delivery import work_outbox
from .operators import ActingOperator

MAX_ATTEMPTS = 12
CLAIM_CHUNK = 10  # deliveries claimed at a time
LEASE = timedelta(minutes=5)  # a claimed delivery whose worker died is sent again after this (10 posts × 10 s timeout < 2.5 min)
SIGNATURE_HEADER = "Kakin-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: datetime, tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def backoff(attempts: int) -> timedelta:
    delay: timedelta = timedelta(seconds=30) * 2 ** max(0, attempts - 1)
    return min(delay, timedelta(hours=6))


def create_endpoint(uow: UnitOfWork, op: ActingOperator, url: str, events: list[str], now: datetime) -> dict[str, Any]:
    """Add an endpoint to ``op``'s tenant receiving ``events`` (every event when empty); returns it with its signing
    secret, shown this once. ``op`` needs ``manage`` (RoleForbidden); InvalidValue for a URL that is not http(s).
    Audit-logged under ``op`` (without the secret)."""
    op.require("manage")
    tenant = op.tenant
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise errors.InvalidValue("url must be an http(s) URL", param="url")
    public_id = "we_" + secrets.token_hex(8)
    secret = "whsec_" + secrets.token_urlsafe(24)
    uow.webhooks.add_endpoint(tenant.id, public_id, url, secret, events or ["*"], now)
    uow.audit([{"tenant_id": tenant.id, "customer_id": None, "at": now, "actor": op.actor,
                "action": "webhook_endpoint.created", "before": None,
                "after": {"id": public_id, "url": url, "events": events or ["*"]}}])
    return {"id": public_id, "url": url, "events": events or ["*"], "secret": secret}


def endpoints(uow: UnitOfWork, op: ActingOperator) -> list[dict[str, Any]]:
    """``op``'s tenant's endpoints (id, url, events, enabled), never their secrets; ``op`` needs ``read``."""
    op.require("read")
    return [{"id": e["public_id"], "url": e["url"], "events": e["events"], "enabled": e["enabled"]}
            for e in uow.webhooks.endpoints_of(op.tenant.id)]


def deliveries(uow: UnitOfWork, op: ActingOperator, endpoint_id: str) -> list[dict[str, Any]]:
    """The delivery log of one of ``op``'s tenant's endpoints, oldest first: id (``whd_…``), event, type, status,
    attempts, the receiver's last status code and error, next attempt, delivered_at. ``op`` needs ``read``."""
    op.require("read")
    return [{"id": delivery_id(d["id"]), "event": d["event"], "type": d["type"], "status": d["status"],
             "attempts": d["attempts"], "last_status_code": d["last_status_code"], "last_error": d["last_error"],
             "next_attempt_at": d["next_attempt_at"], "delivered_at": d["delivered_at"]}
            for d in uow.webhooks.deliveries_of(op.tenant.id, endpoint_id)]


def resend(uow: UnitOfWork, op: ActingOperator, delivery: str, now: datetime) -> dict[str, Any]:
    """Send a delivered or failed delivery (``whd_…``) again at the worker's next pass; one still pending is left as
    it is. ``op`` needs ``manage`` (RoleForbidden); NotFound for another tenant's or an unknown delivery.
    Audit-logged under ``op``."""
    op.require("manage")
    number = delivery.removeprefix("whd_")
    row = uow.webhooks.resend(op.tenant.id, int(number), now) if re.fullmatch(r"[0-9]{1,18}", number) else None
    if row is None:
        raise errors.NotFound(f"no webhook delivery {delivery!r}", param="delivery")
    if row["status"] in ("delivered", "failed"):
        uow.audit([{"tenant_id": op.tenant.id, "customer_id": None, "at": now, "actor": op.actor,
                    "action": "webhook_delivery.resent", "before": {"delivery": delivery, "status": row["status"]},
                    "after": {"delivery": delivery, "status": "pending"}}])
    return {"id": delivery, "event": row["event"], "type": row["type"], "status": "pending"
            if row["status"] in ("delivered", "failed") else row["status"]}


class Poster(Protocol):
    """The port to the receivers (``adapters.webhooks_http.http_post``): POST a body, return the HTTP status, or raise."""

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def delivery_id(delivery: int) -> str:
    """The ``Kakin-Delivery-Id`` of a delivery row (one event to one endpoint): the same on every attempt."""
    return f"whd_{delivery}"


def deliver_due(engine: Engine, now: datetime, post: Poster, limit: int = 100, chunk: int = CLAIM_CHUNK,
                lease: timedelta = LEASE) -> int:
    """Deliver up to ``limit`` due webhooks; returns the number of attempts made.

    Each delivery is claimed, POSTed with no transaction open, and its outcome
    recorded in a short transaction of its own (``services.delivery``). Every
    attempt carries the event's ``Kakin-Event-Id`` and the delivery's
    ``Kakin-Delivery-Id``, both stable, so a receiver can drop a repeat.
    """
    def attempt(d: dict[str, Any]) -> dict[str, Any]:
        body = d["payload"].encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(d["secret"], int(now.timestamp()), body),
                   "Kakin-Event-Id": d["event_public_id"], "Kakin-Event-Type": d["type"],
                   "Kakin-Delivery-Id": delivery_id(d["id"])}
        try:
            status, error = post(d["url"], body, headers), None
        except Exception as exc:  # the receiver is down or slow: retried later
            status, error = None, f"{type(exc).__name__}: {exc}"[:500]
        if status is not None and 200 <= status < 300:
            return {"status": "delivered", "last_status_code": status, "last_error": None, "delivered_at": now,
                    "next_attempt_at": None}
        done = d["attempts"] >= MAX_ATTEMPTS
        return {"status": "failed" if done else "pending", "last_status_code": status, "last_error": error or f"HTTP {status}",
                "next_attempt_at": None if done else now + backoff(d["attempts"])}

    return len(work_outbox(engine, "webhook", now, lambda uow, ids: uow.outboxes.claimed_deliveries(ids), attempt,
                           limit=limit, chunk=chunk, lease=lease, max_attempts=MAX_ATTEMPTS))
