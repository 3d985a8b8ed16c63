"""The console's pages (GET): each reads through the services as the signed-in operator and renders a template."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.services import console_reads, documents, domains, eligibility, operations, operators, payments, price_page, webhooks
from kakin.services.presenters import customer_json, invoice_json
from kakin.services.tenancy import tenant_view

from .. import i18n
from ..catalogs import error_message, translations
from ..plumbing import https
from . import COOKIE, Desk, render, signed_in

PAGE = 50  # customers and documents per page


def static_files(folder: Any) -> StaticFiles:
    """The stylesheet and icons, served by kakin (no CDN)."""
    return StaticFiles(directory=folder)


def _page(request: Request, desk: Desk, template: str, page: str, **values: Any) -> Response:
    return render(request, desk.locale, template, page=page, head=desk.head(), can=desk.can,
                  done=request.query_params.get("done"), zone=desk.tenant.lifecycle.zone, **values)


# ------------------------------------------------------------------ signing in
async def login(request: Request) -> Response:
    """The sign-in form (``email``, ``password``); a POST checks them and opens a session. A wrong e-mail or password
    is 401 without saying which; a locked operator is 429 with Retry-After."""
    state = request.app.state
    locale = request.query_params.get("lang", i18n.DEFAULT)
    locale = locale if locale in i18n.LOCALES else i18n.DEFAULT
    if request.method == "GET":
        return render(request, locale, "console/login.html", head=None, email="", refused=None)
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    locale = str(form.get("locale", locale))
    locale = locale if locale in i18n.LOCALES else i18n.DEFAULT

    def work() -> Response:
        with UnitOfWork(state.engine) as uow:
            outcome = operators.sign_in(uow, email, password, state.clock(), locale)
        if outcome.token is None:
            locked = outcome.refused == "operator_locked"
            page = render(request, locale, "console/login.html", status=429 if locked else 401, head=None,
                          email=email, refused=error_message(str(outcome.refused), locale, str(outcome.refused)))
            if locked and outcome.locked_until is not None:
                page.headers["Retry-After"] = str(max(1, int((outcome.locked_until - state.clock()).total_seconds())))
            return page
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(COOKIE, outcome.token, httponly=True, samesite="strict", secure=https(request),
                            path="/console")
        return response

    return await run_in_threadpool(work)


# ------------------------------------------------------------------ dashboard
async def dashboard(request: Request) -> Response:
    """MRR and ARR, active customers per plan, new and churned this month, invoiced per month (12 months), LINE OA
    messages per month, open and overdue amounts (the figures: ``services.analytics``)."""
    from kakin.services import analytics

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        today = desk.tenant.lifecycle.today(desk.clock())
        figures = analytics.dashboard(desk.uow, desk.tenant, today)
        return _page(request, desk, "console/dashboard.html", "dashboard", d=figures, plan_names=_plan_names(desk),
                     invoiced_chart=_chart(desk, figures.invoiced_by_month, "Invoiced per month (tax excluded)", "yen"),
                     messages_chart=_chart(desk, figures.messages_by_month, "LINE OA messages per month", "messages"))

    return await signed_in(request, build)


def _chart(desk: Desk, series: list[tuple[str, int]], title: str, unit: str) -> Markup:
    """A server-side SVG bar chart (``kakin.web.charts``) titled in the operator's language."""
    from kakin.web import charts

    gettext = translations("console", desk.locale).gettext
    return Markup(charts.bar_chart(series, title=str(gettext(title)), unit=str(gettext(unit))))


# ------------------------------------------------------------------ customers
async def customers(request: Request) -> Response:
    """Search by name, e-mail, customer id, member or domain (``q``); filters ``plan`` and ``status``."""
    from kakin.services import search

    q = request.query_params

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        after = q.get("after") or None
        if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 18):
            raise errors.InvalidValue("after must be the row_id of a customer this search returned", param="after")
        found = search.search_customers(desk.uow, desk.tenant, q.get("q") or None, q.get("plan") or None,
                                        q.get("status") or None, PAGE, int(after) if after else None)
        return _page(request, desk, "console/customers.html", "customers", found=found, q=q.get("q", ""),
                     plan=q.get("plan", ""), status_filter=q.get("status", ""), plans=_plan_names(desk),
                     next_after=found[-1]["row_id"] if len(found) == PAGE else None)

    return await signed_in(request, build)


def _plan_names(desk: Desk) -> dict[str, str]:
    return {code: (p.name_ja if desk.locale == "ja" else p.name_en)
            for code, p in sorted(desk.tenant.catalog.plans.items(), key=lambda kv: kv[1].rank)}


async def customer(request: Request) -> Response:
    """One customer: subscriptions and scheduled changes, timeline, invoices and credit notes, payments with decline
    codes, credit balance, members, domains, applications; the actions the operator's role allows."""
    key = request.path_params["key"]

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        uow, tenant = desk.uow, desk.tenant
        row = uow.customer_row(tenant.row, key)
        if row is None:
            raise errors.NotFound(f"no customer {key!r}", param="customer")
        if row["test_clock_id"]:
            row["test_clock_public_id"] = uow.test_clocks.by_id(row["test_clock_id"])["public_id"]
        account = uow.load_accounts([row["id"]], summary=True)[0]
        now = desk.now_of(key)
        today = tenant.lifecycle.today(now)
        return _page(
            request, desk, "console/customer.html", "customers", c=customer_json(account, row, tenant.catalog), row=row,
            plans=_plan_names(desk), timeline=console_reads.timeline(uow, tenant, desk.op, row["id"]),
            invoices=[invoice_json(r) for r in reversed(uow.invoices_for(tenant.row, row["id"]))],
            credit_notes=list(reversed(uow.credit_notes_for(tenant.row, row["id"]))),
            payments=list(reversed(payments.payment_log(uow, tenant, key))),
            members=uow.members.of_customer(row["id"]),
            domains=[{"domain": d["domain"], "status": domains.status(d, now)}
                     for d in uow.domains.of_customer(row["id"])],
            applications=[eligibility.operator_view(a, today) for a in
                          uow.applications.find(tenant.row.id, customer_id=row["id"])]
            if desk.can["review"] else [eligibility.applicant_view(a) for a in
                                        uow.applications.find(tenant.row.id, customer_id=row["id"])])

    return await signed_in(request, build)


# ------------------------------------------------------------------ invoices and credit notes
def _query(request: Request) -> Any:
    """The document search of the query string: issue dates, amounts, counterparty, kind (電子帳簿保存法)."""
    from kakin.services.search import DocumentQuery

    q = request.query_params

    def day(name: str) -> date | None:
        value = q.get(name) or None
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise errors.InvalidValue(f"{name} must be a date such as 2026-05-01", param=name) from None

    def amount(name: str) -> int | None:
        value = (q.get(name) or "").replace(",", "").strip()
        if not value:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 13:
            raise errors.InvalidValue(f"{name} must be a whole number of yen", param=name)
        return int(value)

    return DocumentQuery(issued_from=day("issued_from"), issued_to=day("issued_to"), amount_min=amount("amount_min"),
                         amount_max=amount("amount_max"), counterparty=q.get("counterparty") or None,
                         kind=q.get("kind") or None, after=q.get("after") or None)


async def invoices(request: Request) -> Response:
    """Invoices and credit notes searched by issue-date range, amount range and counterparty, alone or combined."""
    from kakin.services import search

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        query = _query(request)
        found = search.search_documents(desk.uow, desk.tenant, query)
        return _page(request, desk, "console/invoices.html", "invoices", found=found, q=request.query_params,
                     csv_query=urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "after"]),
                     next_after=found[-1]["cursor"] if len(found) == query.limit else None)

    return await signed_in(request, build)


async def invoices_csv(request: Request) -> Response:
    """The same search as CSV (UTF-8 with a byte order mark), every match."""
    from kakin.services import search

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        chunks = list(search.documents_csv(desk.uow, desk.tenant, _query(request)))
        return StreamingResponse(iter(chunks), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="documents.csv"', "Cache-Control": "no-store"})

    return await signed_in(request, build)


def _pdf(doc: dict[str, Any]) -> Response:
    from kakin.adapters.pdf import render_pdf

    return Response(render_pdf(doc), media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{doc["number"]}.pdf"', "Cache-Control": "no-store"})


async def invoice_pdf(request: Request) -> Response:
    """The qualified invoice (適格請求書) PDF; another tenant's invoice is 404."""
    return await signed_in(request, lambda desk: _pdf(documents.invoice_document(
        desk.uow, desk.tenant, request.path_params["number"])))


async def credit_note_pdf(request: Request) -> Response:
    """The credit note (適格返還請求書) PDF; another tenant's is 404."""
    return await signed_in(request, lambda desk: _pdf(operations.credit_note_document(
        desk.uow, desk.tenant, request.path_params["number"])))


# ------------------------------------------------------------------ dunning, review, catalog, webhooks, settings
async def dunning(request: Request) -> Response:
    """Every past-due invoice with its next retry, attempts and last decline code."""

    def build(desk: Desk) -> Response:
        rows = console_reads.past_due(desk.uow, desk.tenant, desk.op, desk.clock())
        return _page(request, desk, "console/dunning.html", "dunning", rows=rows)

    return await signed_in(request, build)


async def review(request: Request) -> Response:
    """The review queue (地方公共団体プラン): pending applications first, with received and due dates, overdue flags,
    the automatic checks, the non-lg.jp flag and the account's verified state. Reviewers and owners only."""
    status = request.query_params.get("status") or "pending"

    def build(desk: Desk) -> Response:
        if status not in ("pending", "approved", "refused"):
            raise errors.InvalidValue("status must be pending, approved or refused", param="status")
        now = desk.clock()
        apps = eligibility.review_queue(desk.uow, desk.tenant, desk.op, now, status)
        rows = {key: desk.uow.customer_row(desk.tenant.row, key) for key in {a["customer"] for a in apps}}
        verified = {key: bool(r and r["verified_at"]) for key, r in rows.items()}
        names = {key: r["name"] if r else key for key, r in rows.items()}
        return _page(request, desk, "console/review.html", "review", apps=apps, showing=status, verified=verified,
                     names=names)

    return await signed_in(request, build)


async def catalog(request: Request) -> Response:
    """The price page as customers see it, and the catalog's rules."""

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        return _page(request, desk, "console/catalog.html", "catalog", cat=price_page.price_page(desk.tenant.catalog),
                     rules=price_page.rules(desk.tenant.catalog))

    return await signed_in(request, build)


async def webhooks_page(request: Request) -> Response:
    """Endpoints and each one's deliveries with status and the receiver's response; resend (owners)."""

    def build(desk: Desk) -> Response:
        found = webhooks.endpoints(desk.uow, desk.op)
        for e in found:
            e["deliveries"] = list(reversed(webhooks.deliveries(desk.uow, desk.op, e["id"])))[:50]
        return _page(request, desk, "console/webhooks.html", "webhooks", endpoints=found)

    return await signed_in(request, build)


async def settings(request: Request) -> Response:
    """The issuer printed on qualified invoices: name, registration number (T + 13 digits), address."""

    def build(desk: Desk) -> Response:
        desk.op.require("read")
        return _page(request, desk, "console/settings.html", "settings", t=tenant_view(desk.tenant), form=None)

    return await signed_in(request, build)
