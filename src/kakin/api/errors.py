"""Every error as ``{"error": {"code", "message", "param"}}`` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from kakin.adapters.db.store import LOCKED, is_lock_timeout, is_unreachable
from kakin.domain import errors
from kakin.domain.errors import KakinError

log = logging.getLogger("kakin.api")

# The HTTP status of each kind of refusal (domain/errors.py): an error's class names its kind, so a new error
# class answers with the right status without a second table of codes to keep in step.
STATUS_OF_KIND = {
    errors.INVALID: 422, errors.CONFLICT: 409, errors.NOT_FOUND: 404, errors.FORBIDDEN: 403,
    errors.UNAUTHENTICATED: 401, errors.PAYMENT_REQUIRED: 402, errors.UNAVAILABLE: 503,
}
# Codes the API itself answers with, before any command runs.
REQUEST_ERRORS = {"invalid_request": 422, "invalid_json": 422, "method_not_allowed": 405, "internal_error": 500}


def status_of(error: type[KakinError] | KakinError) -> int:
    """The HTTP status of an error class (or error): the status of its kind."""
    return STATUS_OF_KIND[error.kind]


def error_codes() -> dict[str, int]:
    """Every error code the API can answer with and its status: one per error class, and the request errors."""
    classes = [cls for cls in errors.every_error_class() if cls is not KakinError]  # the base is never raised itself
    return {**{cls.code: status_of(cls) for cls in classes}, **REQUEST_ERRORS}


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in ((401, "Missing or invalid API key"), (402, "A payment method is required, or the card was declined"),
                                (403, "Not allowed for this key or member"), (404, "Not found"),
                                (409, "Refused by a billing rule or in conflict with the current state"),
                                (422, "Invalid request: the field is named in param"),
                                (503, "A service kakin depends on (DNS, fonts for PDFs) is not available; nothing changed"))
}


def error_response(status: int, code: str, message: str, param: str | None = None,
                   headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "param": param, **extra}}, status_code=status,
                        headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette's own 405 names only the first route
    matching the path, so a path served by two routes (GET and POST /v1/customers) advertised half its methods."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


UNREACHABLE = ("the database cannot be reached; nothing was changed: send the request again in a moment (with the same "
               "Idempotency-Key, it has one effect)")


def install(app: FastAPI) -> None:
    @app.exception_handler(KakinError)
    async def kakin_error(_: Request, exc: KakinError) -> JSONResponse:
        return error_response(status_of(exc), exc.code, exc.message, exc.param, None, **exc.details())

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": "invalid"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        param = ".".join(loc) or None
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            message = f"unknown field {param!r}: remove it"
        elif kind == "missing":
            message = f"{param} is required"
        elif kind == "json_invalid":
            return error_response(422, "invalid_json", "the request body is not valid JSON", None)
        else:
            message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg"))
        return error_response(422, "invalid_request", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI could not decode the body (bytes that are not UTF-8): the same answer as any other bad JSON
            return error_response(422, "invalid_json", "the request body is not valid JSON", None)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow must list every method of the path (RFC 9110), not the first route's
            headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
        codes = {404: "not_found", 405: "method_not_allowed", 401: "invalid_api_key"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                              headers=headers or None)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_unreachable(exc):  # not a bug: the database is down or went away; one line, no traceback
            log.warning("the database could not be reached: %s", str(exc).splitlines()[0][:200])
            unavailable = errors.DatabaseUnavailable(UNREACHABLE)
            return error_response(status_of(unavailable), unavailable.code, unavailable.message, None)
        if is_lock_timeout(exc):  # a lock wait that ran out outside in_transaction (a page's own unit of work)
            busy = errors.DatabaseBusy(LOCKED)
            return error_response(status_of(busy), busy.code, busy.message, None)
        return await crash(request, exc)

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:  # a bug: logged, never shown
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "kakin failed to handle this request; it has been logged")
