"""The console's actions (POST forms): each calls one service as the signed-in operator, which refuses what the
operator's role may not do; on success the browser goes back to the page the form was on (``next``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kakin.domain import errors
from kakin.services import eligibility, operations, operators, payments, tenancy, webhooks

from ..plumbing import https
from . import COOKIE, Desk, local_path, render, signed_in


def _text(form: FormData, name: str, limit: int = 500) -> str:
    value = str(form.get(name, "")).strip()
    if len(value) > limit or "\x00" in value:
        raise errors.InvalidValue(f"{name} is at most {limit} characters", param=name)
    return value


def _yen(form: FormData, name: str) -> int:
    value = _text(form, name, 20).replace(",", "")
    if not value.isascii() or not value.isdigit() or len(value) > 13:
        raise errors.InvalidValue(f"{name} must be a whole number of yen, at least 1", param=name)
    return int(value)


async def _act(request: Request, default: str, work: Callable[[Desk, FormData], Any], done: str) -> Response:
    """Read the form, run ``work`` for the signed-in operator in one transaction, go back to ``next`` (a console
    path) or ``default`` with ``done`` in the query (the page says it was done)."""
    form = await request.form()
    back = local_path(str(form.get("next", "")), default) or default

    def build(desk: Desk) -> Response:
        work(desk, form)
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}done={done}", status_code=303)

    return await signed_in(request, build)


# ------------------------------------------------------------------ customers and invoices
async def collection(request: Request) -> Response:
    """Switch a customer to bank transfer (請求書払い) or back to card (``collection``)."""
    key = request.path_params["key"]
    return await _act(request, f"/console/customers/{key}", lambda d, f: operations.set_collection(
        d.uow, d.tenant, d.gateway, d.op, key, _text(f, "collection", 20), d.now_of(key)), "collection")


async def verify_account(request: Request) -> Response:
    """Mark the customer's account verified (認証済アカウント)."""
    key = request.path_params["key"]
    return await _act(request, f"/console/customers/{key}", lambda d, f: eligibility.verify_account(
        d.uow, d.tenant, d.op, key, d.now_of(key)), "verified")


def _invoice_customer(desk: Desk, number: str) -> str:
    found = desk.uow.invoices_for(desk.tenant.row, number=number)
    if not found:
        raise errors.NotFound(f"no invoice {number!r}", param="number")
    return str(found[0]["customer"])


async def mark_paid(request: Request) -> Response:
    """Record a bank transfer received for an open invoice (``reference``: the transfer's reference, optional)."""
    number = request.path_params["number"]

    def work(d: Desk, f: FormData) -> Any:
        key = _invoice_customer(d, number)
        return operations.mark_paid(d.uow, d.tenant, d.gateway, d.op, number, d.now_of(key),
                                    _text(f, "reference", 120) or None)

    return await _act(request, "/console/dunning", work, "mark_paid")


async def credit_note(request: Request) -> Response:
    """Issue a credit note (``amount`` in the invoice's price basis, ``reason``; ``settlement=credit`` keeps a paid
    invoice's money as the customer's credit instead of refunding it)."""
    number = request.path_params["number"]

    def work(d: Desk, f: FormData) -> Any:
        key = _invoice_customer(d, number)
        return operations.issue_credit_note(d.uow, d.tenant, d.gateway, d.op, number, _yen(f, "amount"),
                                            _text(f, "reason"), d.now_of(key), refund=f.get("settlement") != "credit")

    return await _act(request, "/console/invoices", work, "credit_note")


async def retry(request: Request) -> Response:
    """Charge a past-due invoice now."""
    number = request.path_params["number"]
    return await _act(request, "/console/dunning", lambda d, f: payments.retry_now(
        d.uow, d.tenant, d.gateway, d.op, number, d.now_of(_invoice_customer(d, number))), "retry")


async def write_off(request: Request) -> Response:
    """Write a past-due invoice off."""
    number = request.path_params["number"]
    return await _act(request, "/console/dunning", lambda d, f: payments.write_off(
        d.uow, d.tenant, d.gateway, d.op, number, d.now_of(_invoice_customer(d, number))), "write_off")


# ------------------------------------------------------------------ review queue, webhooks, settings
async def approve(request: Request) -> Response:
    """Approve an application: the plan is granted (at once, or on the 1st for a customer on a paid plan)."""
    public_id = request.path_params["application"]
    return await _act(request, "/console/review", lambda d, f: eligibility.decide(
        d.uow, d.tenant, d.gateway, d.op, public_id, True, None, d.clock()), "approved")


async def refuse(request: Request) -> Response:
    """Refuse an application with an internal ``reason`` (operators see it; the applicant never does)."""
    public_id = request.path_params["application"]
    return await _act(request, "/console/review", lambda d, f: eligibility.decide(
        d.uow, d.tenant, d.gateway, d.op, public_id, False, _text(f, "reason"), d.clock()), "refused")


async def resend(request: Request) -> Response:
    """Send a webhook delivery again at the worker's next pass."""
    delivery = request.path_params["delivery"]
    return await _act(request, "/console/webhooks", lambda d, f: webhooks.resend(d.uow, d.op, delivery, d.clock()),
                      "resent")


async def settings(request: Request) -> Response:
    """Change the issuer: ``name``, ``registration_number`` (T + 13 digits, checked; empty leaves it), ``address``.
    A refusal shows the form again with what was typed and the message next to its field."""
    form = await request.form()

    def build(desk: Desk) -> Response:
        typed = {k: _text(form, k) for k in ("name", "registration_number", "address")}
        try:
            with desk.uow.keeping_earlier_work():  # a refusal undoes the change (and keeps the session's touch)
                tenancy.update_tenant(desk.uow, desk.op, desk.clock(), name=typed["name"] or None,
                                      registration_number=typed["registration_number"] or None,
                                      address=typed["address"] or None)
        except errors.InvalidValue as exc:
            from ..catalogs import error_message

            return render(request, desk.locale, "console/settings.html", status=422, page="settings", head=desk.head(),
                          can=desk.can, done=None, t=tenancy.tenant_view(desk.tenant), form=typed,
                          error={"param": exc.param, "message": error_message(exc.code, desk.locale, exc.message)})
        return RedirectResponse("/console/settings?done=settings", status_code=303)

    return await signed_in(request, build)


# ------------------------------------------------------------------ the session
async def switch_locale(request: Request) -> Response:
    """Switch the session's language (``locale``) and go back to the page the form was on (``next``)."""
    form = await request.form()
    back = local_path(str(form.get("next", "")), "/console/") or "/console/"

    def build(desk: Desk) -> Response:
        operators.set_locale(desk.uow, desk.op, _text(form, "locale", 8), desk.clock())
        return RedirectResponse(back, status_code=303)

    return await signed_in(request, build)


def _signed_out(request: Request) -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=https(request))
    return response


async def sign_out(request: Request) -> Response:
    """End this session."""
    await request.form()

    def build(desk: Desk) -> Response:
        operators.sign_out(desk.uow, desk.op, desk.clock())
        return _signed_out(request)

    return await signed_in(request, build)


async def sign_out_everywhere(request: Request) -> Response:
    """End every session of the operator (every browser it is signed in on)."""
    await request.form()

    def build(desk: Desk) -> Response:
        operators.sign_out(desk.uow, desk.op, desk.clock(), everywhere=True)
        return _signed_out(request)

    return await signed_in(request, build)
