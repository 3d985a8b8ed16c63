"""The FastAPI application: authentication, transactions with Idempotency-Key, pagination."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

import kakin
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.dns import TxtResolver
from kakin.adapters.payments import CardSimulator, PaymentGateway
from kakin.domain import errors
from kakin.domain.calendar import instant_text
from kakin.services.access import Operator, authenticate
from kakin.services.tenancy import Tenant, open_tenant

from . import docs as api_docs
from . import errors as api_errors

Clock = Callable[[], datetime]
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kk_…`")


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(engine: Engine, gateway: PaymentGateway | None = None, clock: Clock = utc_now,
               dns: TxtResolver | None = None) -> FastAPI:
    app = FastAPI(
        title="kakin",
        version=kakin.__version__,
        description="Subscription billing for Japanese B2B SaaS vendors. Every error is "
                    '`{"error": {"code", "message", "param"}}`; every POST accepts an `Idempotency-Key` header.',
        responses=api_errors.ERROR_RESPONSES,
        docs_url=None, redoc_url=None,  # served by api/docs.py with local assets
    )
    app.state.engine = engine
    app.state.gateway = gateway or CardSimulator()
    app.state.clock = clock
    app.state.dns = dns or TxtResolver.from_env()
    app.state.key_cache = {}
    app.state.key_epoch = 0
    api_errors.install(app)
    api_docs.install(app)

    @app.middleware("http")
    async def refuse_nul_in_path(request: Request, call_next: Callable[[Request], Any]) -> Any:
        # No id contains U+0000, and PostgreSQL cannot even compare text with it: answer 404 before any query.
        if "\x00" in request.url.path or "%00" in request.url.path:
            return api_errors.error_response(404, "not_found", "no such resource")
        return await call_next(request)
    from kakin.web.console import create_console
    from kakin.web.portal import create_portal

    from . import (
        routes_admin,
        routes_customers,
        routes_documents,
        routes_eligibility,
        routes_gateway,
        routes_ops,
        routes_portal,
        routes_reports,
        routes_usage,
    )

    app.include_router(routes_customers.router)
    app.include_router(routes_usage.router)
    app.include_router(routes_documents.router)
    app.include_router(routes_gateway.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_eligibility.router)
    app.include_router(routes_portal.router)
    app.include_router(routes_reports.router)
    app.mount("/portal", create_portal(engine, clock, gateway=app.state.gateway, dns=app.state.dns))  # the customer portal (web/portal.py)
    app.mount("/console", create_console(engine, clock, app.state.gateway))  # the operator console (web/console/)
    routes_ops.install(app, engine, clock)
    return app


KEY_CACHE_SECONDS = 10.0  # revoked through another process, a key stops working within this time (at once in this one)


def operator(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Operator:
    key = credentials.credentials if credentials else None
    cache: dict[str, tuple[Operator, float]] = request.app.state.key_cache
    digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
    hit = cache.get(digest)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    epoch = request.app.state.key_epoch
    with UnitOfWork(request.app.state.engine, readonly=True) as uow:
        found = authenticate(uow, key)
    if len(cache) > 10_000:
        cache.clear()
    if epoch == request.app.state.key_epoch:  # not if a key was revoked while this one was being checked
        cache[digest] = (found, time.monotonic() + KEY_CACHE_SECONDS)  # keyed by the hash: the key itself is not kept
    return found


def forget_keys(request: Request) -> None:
    """Drop every cached authentication, after a key was revoked."""
    request.app.state.key_epoch += 1
    request.app.state.key_cache.clear()


Auth = Annotated[Operator, Depends(operator)]


def tenant_of(uow: UnitOfWork, op: Operator) -> Tenant:
    return open_tenant(uow, op.tenant.code)


def write(request: Request, op: Operator, body: BaseModel | None, fn: Callable[[UnitOfWork], Any], status: int = 200,
          permission: str | None = "write") -> Response:
    """Run a write in one transaction (run again after a deadlock: :func:`~kakin.adapters.db.store.in_transaction`). With an Idempotency-Key, the first response is stored in that same
    transaction and replayed for the same key and body; the same key with another body is refused (409). Requests
    with one key are run one at a time (:meth:`IdempotencyRepository.lock`): one sent again while the first is in
    flight waits for it and replays its response.
    ``permission=None``: the service called checks the operator's role itself."""
    if permission is not None:
        op.require(permission)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise errors.InvalidValue("Idempotency-Key must be 1–255 characters", param="Idempotency-Key")
    digest = "" if key is None else hashlib.sha256(
        f"{request.method} {request.url.path}\n".encode()
        + json.dumps(body.model_dump(mode="json") if body else None, sort_keys=True).encode()
    ).hexdigest()
    engine = request.app.state.engine

    def attempt(uow: UnitOfWork) -> Response:
        if key is not None:
            uow.idempotency.lock(op.tenant.id, key)  # a request with the same key in flight finishes first
            replay = _replay(uow, op, key, digest)
            if replay is not None:
                return replay
        content = json.dumps(fn(uow), ensure_ascii=False, default=json_default(op))
        if key is not None:
            uow.idempotency.save(op.tenant.id, key, digest, status, content, utc_now())
        return Response(content, status_code=status, media_type="application/json")

    try:  # a deadlock runs the whole request again; a lock wait that runs out is 503 database_busy
        return in_transaction(engine, attempt)
    except IntegrityError:
        if key is None:
            raise
        with UnitOfWork(engine) as uow:  # a concurrent request with the same key won; answer as it did
            replay = _replay(uow, op, key, digest)
            if replay is None:
                raise
            return replay


def json_default(op: Operator) -> Callable[[Any], Any]:
    """The JSON encoding of what ``json`` cannot encode: instants in ISO 8601 in the tenant's zone with its offset
    (``2026-05-03T10:00:00+09:00``), dates in ISO 8601, anything else as FastAPI would encode it."""
    zone = ZoneInfo(op.tenant.timezone)

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return instant_text(value, zone)
        if isinstance(value, date):
            return value.isoformat()
        return jsonable_encoder(value)

    return default


def _replay(uow: UnitOfWork, op: Operator, key: str, digest: str) -> Response | None:
    record = uow.idempotency.get(op.tenant.id, key)
    if record is None:
        return None
    if record["request_hash"] != digest:
        raise errors.IdempotencyKeyReused(
            "this Idempotency-Key was used with another request; use a new key for a new request", param="Idempotency-Key")
    return Response(record["response_body"], status_code=record["status_code"], media_type="application/json",
                    headers={"Idempotent-Replayed": "true"})


def read_value(request: Request, op: Operator, fn: Callable[[UnitOfWork], Any]) -> Any:
    op.require("read")
    with UnitOfWork(request.app.state.engine, readonly=True) as uow:
        return fn(uow)


def read(request: Request, op: Operator, fn: Callable[[UnitOfWork], Any]) -> Any:
    """Run a read in a read-only transaction; a JSON result is encoded here (FastAPI's generic encoder is slow)."""
    result = read_value(request, op, fn)
    if isinstance(result, dict):
        return Response(json.dumps(result, ensure_ascii=False, default=json_default(op)), media_type="application/json")
    return result


# ------------------------------------------------------------------ pagination
def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        match = re.fullmatch(r"id:([0-9]{1,18})", base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if match is None:
            raise ValueError
        return int(match.group(1))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidCursor("cursor is not one this API returned", param="cursor") from None


def paged(rows: list[dict[str, Any]], limit: int, render: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return {"data": [render(r) for r in rows], "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None}

