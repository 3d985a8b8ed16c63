"""Webhook endpoints and delivery.

Each event is POSTed as JSON with the header
``Kakin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
Failed deliveries are retried with exponential backoff (30 s, 1 min, 2 min, …,
capped at 6 h) up to 12 attempts; every attempt's outcome is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
from sqlalchemy import Engine

from kakin.adapters.db import service_store
from kakin.adapters.db.store import TenantRow, UnitOfWork
from kakin.domain import errors

MAX_ATTEMPTS = 12
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


def create_endpoint(uow: UnitOfWork, tenant: TenantRow, url: str, events: list[str], now: datetime) -> dict[str, Any]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise errors.InvalidValue("url must be an http(s) URL", param="url")
    public_id = "we_" + secrets.token_hex(8)
    secret = "whsec_" + secrets.token_urlsafe(24)
    service_store.add_webhook_endpoint(uow.conn, tenant.id, public_id, url, secret, events or ["*"], now)
    return {"id": public_id, "url": url, "events": events or ["*"], "secret": secret}


Poster = Callable[[str, bytes, dict[str, str]], int]


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(url, content=body, headers=headers, timeout=10.0).status_code


def deliver_due(engine: Engine, now: datetime, post: Poster = http_post, limit: int = 100) -> int:
    """Deliver what is due; returns the number of attempts made."""
    made = 0
    with UnitOfWork(engine) as uow:
        for d in service_store.due_deliveries(uow.conn, now, limit):
            body = d["payload"].encode()
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(d["secret"], int(now.timestamp()), body),
                       "Kakin-Event-Id": d["event_public_id"], "Kakin-Event-Type": d["type"]}
            attempts = d["attempts"] + 1
            made += 1
            try:
                status, error = post(d["url"], body, headers), None
            except Exception as exc:  # the receiver is down or slow: retried later
                status, error = None, f"{type(exc).__name__}: {exc}"[:500]
            if status is not None and 200 <= status < 300:
                service_store.update_delivery(uow.conn, d["id"], status="delivered", attempts=attempts, last_status_code=status,
                                              last_error=None, delivered_at=now, next_attempt_at=None)
            else:
                done = attempts >= MAX_ATTEMPTS
                service_store.update_delivery(
                    uow.conn, d["id"], status="failed" if done else "pending", attempts=attempts, last_status_code=status,
                    last_error=error or f"HTTP {status}", next_attempt_at=None if done else now + backoff(attempts))
    return made
