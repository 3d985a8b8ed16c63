"""The operator console (``/console/``): the vendor's staff sign in with e-mail and password and work on customers,
invoices, dunning, the eligibility review queue, the catalog, webhooks and the issuer settings.

Server-rendered pages (Jinja2, Babel catalogs ``console`` and the shared ``errors``; Japanese by default, English
by switch) that call the services with the signed-in operator (:class:`kakin.services.operators.ConsoleOperator`):
the services refuse what the operator's role may not do, and audit-log what it does under ``operator:<email>``.
The session cookie is HttpOnly, SameSite=Strict, Secure over HTTPS; every POST carries a CSRF token (asgi-csrf,
double-submit cookie): without it, 403 and nothing changes. Every asset is served by kakin.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors
from kakin.services import operators
from kakin.services.access import ROLES
from kakin.services.operators import ConsoleOperator
from kakin.services.tenancy import Tenant, open_tenant

from .. import i18n
from ..catalogs import error_message, translations
from ..plumbing import EveryPath, render_page

WEB = Path(__file__).resolve().parent.parent
COOKIE = "kakin_console"
Clock = Callable[[], datetime]


@cache
def environment(locale: str) -> Environment:
    """The Jinja2 environment of one language: the ``console`` catalog, Babel's formatters as filters."""
    env = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations("console", locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["yen"] = lambda amount: "" if amount is None else i18n.yen(amount, locale)
    env.filters["day"] = lambda value: i18n.day(value, locale)
    env.filters["number"] = lambda value: i18n.number(value, locale)
    env.filters["instant"] = lambda value, zone: "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return env


def create_console(engine: Engine, clock: Clock, gateway: PaymentGateway, trust_proxy: bool | None = None) -> Any:
    """The console as an ASGI app to mount at ``/console``. ``trust_proxy`` (default: ``KAKIN_TRUST_PROXY=1``) makes
    ``X-Forwarded-Proto: https`` count as HTTPS for the session cookie's Secure flag."""
    from . import actions, pages

    app = Starlette(routes=[
        Route("/", pages.dashboard),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/customers", pages.customers),
        Route("/customers/{key}", pages.customer),
        Route("/invoices", pages.invoices),
        Route("/invoices.csv", pages.invoices_csv),
        Route("/invoices/{number}/document.pdf", pages.invoice_pdf),
        Route("/credit_notes/{number}/document.pdf", pages.credit_note_pdf),
        Route("/dunning", pages.dunning),
        Route("/review", pages.review),
        Route("/catalog", pages.catalog),
        Route("/webhooks", pages.webhooks_page),
        Route("/settings", pages.settings),
        Route("/settings", actions.settings, methods=["POST"]),
        Route("/customers/{key}/collection", actions.collection, methods=["POST"]),
        Route("/customers/{key}/verified_account", actions.verify_account, methods=["POST"]),
        Route("/invoices/{number}/mark_paid", actions.mark_paid, methods=["POST"]),
        Route("/invoices/{number}/credit_notes", actions.credit_note, methods=["POST"]),
        Route("/invoices/{number}/retry", actions.retry, methods=["POST"]),
        Route("/invoices/{number}/write_off", actions.write_off, methods=["POST"]),
        Route("/review/{application}/approve", actions.approve, methods=["POST"]),
        Route("/review/{application}/refuse", actions.refuse, methods=["POST"]),
        Route("/webhooks/deliveries/{delivery}/resend", actions.resend, methods=["POST"]),
        Route("/locale", actions.switch_locale, methods=["POST"]),
        Route("/sign_out", actions.sign_out, methods=["POST"]),
        Route("/sign_out_everywhere", actions.sign_out_everywhere, methods=["POST"]),
        Mount("/static", pages.static_files(WEB / "static"), name="static"),
    ])
    app.state.engine = engine
    app.state.clock = clock
    app.state.gateway = gateway
    app.state.trust_proxy = os.environ.get("KAKIN_TRUST_PROXY") == "1" if trust_proxy is None else trust_proxy
    secret = os.environ.get("KAKIN_CONSOLE_SECRET")  # set it to keep CSRF cookies valid across restarts
    return asgi_csrf(app, signing_secret=secret, always_protect=EveryPath(), cookie_path="/console",
                     cookie_samesite="Strict")


# ------------------------------------------------------------------ plumbing shared by pages and actions
def render(request: Request, locale: str, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render a console template with the CSRF token, the path and ``values``; never cached."""
    return render_page(environment(locale), request, locale, template, status, **values)


class Desk:
    """What a signed-in request works with: the operator, its tenant (catalog included), the unit of work, the
    clock, and what the operator's role may do (``can``: permission → bool, for showing buttons only)."""

    def __init__(self, uow: UnitOfWork, op: ConsoleOperator, clock: Clock, gateway: PaymentGateway) -> None:
        self.uow = uow
        self.op = op
        self.clock = clock
        self.gateway = gateway
        self.tenant: Tenant = open_tenant(uow, op.tenant.code)
        self.can = {p: p in ROLES[op.role] for p in ("read", "write", "review", "manage")}

    @property
    def locale(self) -> str:
        return self.op.locale

    def now_of(self, customer_key: str | None = None) -> datetime:
        """The time a customer lives at: its test clock's, if it has one; else the real clock's."""
        if customer_key is not None:
            row = self.uow.customer_row(self.tenant.row, customer_key)
            if row is not None and row["test_clock_id"]:
                return self.uow.test_clocks.by_id(row["test_clock_id"])["frozen_time"]  # type: ignore[no-any-return]
        return self.clock()

    def head(self) -> dict[str, Any]:
        return {"vendor": self.tenant.row.name, "email": self.op.email, "role": self.op.role}


def refusal(request: Request, status: int, code: str, message: str, locale: str, head: dict[str, Any] | None = None,
            back: str | None = None) -> HTMLResponse:
    """A page that says why nothing was done: the error code's message in the page's language."""
    return render(request, locale, "console/refused.html", status=status, code=code,
                  message=error_message(code, locale, message), head=head, back=back)


def local_path(url: str | None, default: str | None) -> str | None:
    """The path (and query) of ``url`` when it is a console page; else ``default``: redirects never leave the console."""
    if not url:
        return default
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if parts.path.startswith("/console/") and not path.startswith("//") else default


def _status(exc: errors.KakinError) -> int:
    from kakin.api.errors import status_of

    return status_of(type(exc))


async def signed_in(request: Request, build: Callable[[Desk], Response]) -> Response:
    """Run ``build`` in one transaction for the request's operator. Without a session: a page goes to the sign-in
    form, a POST is 401. A KakinError rolls the transaction back and shows its message with its status (403 for a
    role refusal, 404 for another tenant's or an unknown resource)."""
    state = request.app.state

    def work() -> Response:
        seen: dict[str, Any] = {"locale": i18n.DEFAULT, "head": None}

        def attempt(uow: UnitOfWork) -> Response:
            op = operators.current(uow, request.cookies.get(COOKIE), state.clock())
            if op is None:
                if request.method == "GET":
                    return RedirectResponse("/console/login", status_code=303)
                return refusal(request, 401, "session_ended", "sign in again", seen["locale"])
            desk = Desk(uow, op, state.clock, state.gateway)
            seen["locale"], seen["head"] = desk.locale, desk.head()
            return build(desk)

        try:  # a deadlock runs it again; a charge (retry now) is made with no transaction open
            return in_transaction(state.engine, attempt)
        except errors.KakinError as exc:
            return refusal(request, _status(exc), exc.code, exc.message, seen["locale"], seen["head"],
                           back=local_path(request.headers.get("referer"), None))

    return await run_in_threadpool(work)
