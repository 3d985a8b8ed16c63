"""The customer portal (``/portal/``): server-rendered pages behind a portal session.

A member reaches it through a one-time link the vendor's backend asked for
(``POST /v1/portal_sessions``); the link sets a session cookie (HttpOnly,
SameSite=Lax, Secure over HTTPS) and the pages show that member's customer
only: another customer's page or document is 404. Every POST form carries a
CSRF token (asgi-csrf, double-submit cookie); a POST without it is 403 and
changes nothing. Pages call the services and hold no billing rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.services import access, authorization, entitlements, portal, upcoming, upgrades
from kakin.services.portal import PortalSession
from kakin.services.presenters import customer_json, invoice_json
from kakin.services.tenancy import Tenant, open_tenant

from . import i18n
from .plumbing import EveryPath, https, render_page

HERE = Path(__file__).parent
COOKIE = "kakin_portal"
Clock = Callable[[], datetime]


@cache
def environment(locale: str) -> Environment:
    """The Jinja2 environment of one language: its catalog installed, Babel's formatters as filters."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["yen"] = lambda amount: i18n.yen(amount, locale)
    env.filters["day"] = lambda value: i18n.day(value, locale)
    env.filters["number"] = lambda value: i18n.number(value, locale)
    env.filters["moment"] = lambda value: i18n.moment(value, locale)
    return env


def create_portal(engine: Engine, clock: Clock, trust_proxy: bool | None = None, *, gateway: Any = None,
                  dns: Any = None) -> Any:
    """The portal as an ASGI app to mount at ``/portal``. ``trust_proxy`` (default: ``KAKIN_TRUST_PROXY=1``) makes
    ``X-Forwarded-Proto: https`` count as HTTPS for the session cookie's Secure flag; ``gateway`` (a PaymentGateway,
    default the card simulator) and ``dns`` (a TXT resolver) are what the forms' commands use."""
    from kakin.adapters.payments import CardSimulator

    from . import portal_admin, portal_purchase  # the page modules: each has its ROUTES (they import this module)
    from .portal_line_oa import ROUTES as LINE_OA_ROUTES
    from .portal_nipoplus import ROUTES as NIPOPLUS_ROUTES

    app = Starlette(routes=[
        *portal_purchase.ROUTES, *portal_admin.ROUTES,
        *NIPOPLUS_ROUTES, *LINE_OA_ROUTES,
        Route("/", overview, name="overview"),
        Route("/invoices", invoices_page, name="invoices"),
        Route("/open/{token}", open_link),
        Route("/invoices/{number}/document.pdf", invoice_pdf),
        Route("/invoices/{number}/receipt.pdf", receipt_pdf),
        Route("/credit_notes/{number}/document.pdf", credit_note_pdf),
        Route("/locale", switch_locale, methods=["POST"]),
        Route("/sign_out", sign_out, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ])
    app.state.engine = engine
    app.state.clock = clock
    app.state.gateway = gateway if gateway is not None else CardSimulator()
    if dns is None:
        from kakin.adapters.dns import TxtResolver

        dns = TxtResolver.from_env()
    app.state.dns = dns
    app.state.trust_proxy = os.environ.get("KAKIN_TRUST_PROXY") == "1" if trust_proxy is None else trust_proxy
    secret = os.environ.get("KAKIN_PORTAL_SECRET")  # set it to keep CSRF cookies valid across restarts
    return asgi_csrf(app, signing_secret=secret, always_protect=EveryPath(), cookie_path="/portal")


# ------------------------------------------------------------------ plumbing
def _render(request: Request, locale: str, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return render_page(environment(locale), request, locale, template, status, **values)


def _refusal(request: Request, status: int, message: str, locale: str = i18n.DEFAULT) -> HTMLResponse:
    return _render(request, locale, "portal/refused.html", status=status, message=message)


class _Context:
    """What a page needs: the session, its tenant, the customer's stored row and its time (a test clock's, if any)."""

    def __init__(self, uow: UnitOfWork, session: PortalSession, clock: Clock, gateway: Any = None, dns: Any = None) -> None:
        self.uow = uow
        self.gateway, self.dns = gateway, dns  # for commands: the payment gateway, the DNS TXT resolver
        self.session = session
        self.tenant: Tenant = open_tenant(uow, uow.tenant_by_id(session.tenant_id).code)
        self.principal = access.portal_principal(self.tenant.row, session.customer_key, session.member_id)
        self.clock = clock
        self.row = authorization.customer_for(uow, self.principal, session.customer_key, clock)
        self.now: datetime = self.row["now"]

    def header(self) -> dict[str, Any]:
        return {"vendor": self.tenant.row.name, "customer": self.session.customer_name,
                "member": self.session.member_name, "role": self.session.member_role,
                "catalog": self.tenant.catalog.code,
                "domains": bool(self.tenant.catalog.domains.provided_suffix or self.tenant.catalog.domains.mx_records)}


async def _with_session(request: Request, build: Callable[[_Context], Response]) -> Response:
    """Run ``build`` in a transaction with the request's session; without one, a 401 page. A NotFound (another
    customer's document) is a 404 page."""
    state = request.app.state

    def work() -> Response:
        with UnitOfWork(state.engine) as uow:
            session = portal.current(uow, request.cookies.get(COOKIE), state.clock())
            if session is None:
                return _refusal(request, 401, "session_ended")
            try:
                return build(_Context(uow, session, state.clock, state.gateway, state.dns))
            except errors.NotFound:
                return _refusal(request, 404, "not_found", session.locale)

    return await run_in_threadpool(work)


# ------------------------------------------------------------------ entering and leaving
async def open_link(request: Request) -> Response:
    """A one-time link: opens a session (cookie) and goes to the overview; a used, expired or unknown link is 401."""
    state = request.app.state

    def work() -> Response:
        with UnitOfWork(state.engine) as uow:
            opened = portal.open_link(uow, request.path_params["token"], state.clock())
        if opened is None:
            return _refusal(request, 401, "link_invalid")
        response = RedirectResponse("/portal/", status_code=303)
        response.set_cookie(COOKIE, opened[0], httponly=True, samesite="lax", secure=https(request), path="/portal")
        return response

    return await run_in_threadpool(work)


async def sign_out(request: Request) -> Response:
    """End the session and return to the vendor's ``return_url``."""
    await request.form()

    def build(ctx: _Context) -> Response:
        portal.sign_out(ctx.uow, ctx.session, ctx.now)
        response = RedirectResponse(ctx.session.return_url, status_code=303)
        response.delete_cookie(COOKIE, path="/portal", httponly=True, samesite="lax", secure=https(request))
        return response

    return await _with_session(request, build)


async def switch_locale(request: Request) -> Response:
    """Switch the session's language (form field ``locale``) and go back to the page the form was on (``next``)."""
    form = await request.form()
    locale = str(form.get("locale", ""))
    back = str(form.get("next", "/portal/"))
    if not back.startswith("/portal/") or back.startswith("//"):
        back = "/portal/"

    def build(ctx: _Context) -> Response:
        try:
            portal.set_locale(ctx.uow, ctx.session, locale, ctx.now)
        except errors.InvalidValue:
            return _refusal(request, 422, "invalid_locale", ctx.session.locale)
        return RedirectResponse(back, status_code=303)

    return await _with_session(request, build)


# ------------------------------------------------------------------ pages
async def overview(request: Request) -> Response:
    """契約情報: plan, contract, seats and users, status, trial end, the next invoice and what it will bill, changes
    scheduled; LINE OA: this month's messages used of included."""

    def build(ctx: _Context) -> Response:
        key = ctx.session.customer_key
        account = ctx.uow.load_accounts([ctx.row["id"]], summary=True)[0]
        customer = customer_json(account, ctx.row, ctx.tenant.catalog)
        sub = customer["subscription"]
        plans = ctx.tenant.catalog.plans
        plan_name = None
        if sub is not None:
            shown = plans.get(sub["display_plan"]) or plans[sub["plan"]]
            plan_name = shown.name_ja if ctx.session.locale == "ja" else shown.name_en
        pending = sub["pending_change"] if sub else None
        pending_plan = None
        if pending and pending["plan"]:
            p = plans[pending["plan"]]
            pending_plan = p.name_ja if ctx.session.locale == "ja" else p.name_en
        quotas = entitlements.entitlements(ctx.uow, ctx.tenant, key, ctx.now)["quotas"]
        bars = [{"metric": metric, "used": q["used"], "included": q["included"],
                 "percent": min(100, q["used"] * 100 // q["included"]) if q["included"] else 100}
                for metric, q in quotas.items() if q["included"] is not None]
        return _render(request, ctx.session.locale, "portal/overview.html", page="overview", head=ctx.header(),
                       customer=customer, sub=sub, plan_name=plan_name, pending=pending, pending_plan=pending_plan,
                       upcoming=upcoming.upcoming_invoice(ctx.uow, ctx.tenant, key, ctx.now), bars=bars,
                       upgrading=(upgrades.pending(ctx.uow, ctx.row["id"]) or {}).get("status") == "pending")

    return await _with_session(request, build)


async def invoices_page(request: Request) -> Response:
    """請求履歴: the customer's invoices and credit notes with status, and links to their PDFs."""

    def build(ctx: _Context) -> Response:
        rows = ctx.uow.invoices_for(ctx.tenant.row, ctx.row["id"])
        notes = [n for n in ctx.uow.credit_notes_for(ctx.tenant.row) if n["customer"] == ctx.session.customer_key]
        return _render(request, ctx.session.locale, "portal/invoices.html", page="invoices", head=ctx.header(),
                       invoices=[invoice_json(r) for r in reversed(rows)], credit_notes=list(reversed(notes)))

    return await _with_session(request, build)


# ------------------------------------------------------------------ documents (the session's customer only)
def _pdf(doc: dict[str, Any]) -> Response:
    from kakin.adapters.pdf import render_pdf

    return Response(render_pdf(doc), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{doc["number"]}.pdf"', "Cache-Control": "no-store"})


def _own_invoice(ctx: _Context, number: str) -> None:
    if not ctx.uow.invoices_for(ctx.tenant.row, ctx.row["id"], number=number):
        raise errors.NotFound(f"no invoice {number!r}", param="number")


async def invoice_pdf(request: Request) -> Response:
    """The qualified invoice (適格請求書) PDF of one of the customer's invoices."""
    from kakin.services import documents

    def build(ctx: _Context) -> Response:
        number = request.path_params["number"]
        _own_invoice(ctx, number)
        return _pdf(documents.invoice_document(ctx.uow, ctx.tenant, number))

    return await _with_session(request, build)


async def receipt_pdf(request: Request) -> Response:
    """The receipt (領収証) PDF of one of the customer's paid invoices."""
    from kakin.services import documents

    def build(ctx: _Context) -> Response:
        number = request.path_params["number"]
        _own_invoice(ctx, number)
        try:
            return _pdf(documents.receipt_document(ctx.uow, ctx.tenant, number))
        except errors.InvoiceNotPaid:
            raise errors.NotFound(f"invoice {number!r} has no receipt", param="number") from None

    return await _with_session(request, build)


async def credit_note_pdf(request: Request) -> Response:
    """The credit note (適格返還請求書) PDF of one of the customer's credit notes."""
    from kakin.services import operations

    def build(ctx: _Context) -> Response:
        number = request.path_params["number"]
        if not any(n["number"] == number and n["customer"] == ctx.session.customer_key
                   for n in ctx.uow.credit_notes_for(ctx.tenant.row)):
            raise errors.NotFound(f"no credit note {number!r}", param="number")
        return _pdf(operations.credit_note_document(ctx.uow, ctx.tenant, number))

    return await _with_session(request, build)
