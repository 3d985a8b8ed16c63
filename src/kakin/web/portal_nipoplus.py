"""The portal's 組織設定 page of the NipoPlus procedure (seed nipoplus-paid-plan): 「自動更新有りで申し込み」 with the
postal code, address, addressee, billing e-mail, head count and card, then サブスクリプション情報 with 次回支払日,
「人数の変更」 (previewed before it is confirmed), 「課金を停止」 (confirmed first) and 「支払い情報を復元」.

Every action runs through the services as the session's member (web/forms.py, services/organization.py); the page
only hides the buttons the member could not use, and computes no amount: the preview comes from the services.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kakin.api.errors import status_of
from kakin.domain import errors
from kakin.services import authorization, organization, upcoming
from kakin.services.presenters import customer_json

from . import cards
from .forms import Done, Form, flash_of, form_post
from .portal import _Context, _render, _with_session

PAGE = "/portal/organization"
CATALOGS = frozenset({"nipoplus"})  # the vendors whose customers sign up here (base.html shows the tab)


def _seats(text: str) -> int:
    """The head count typed in the form; anything but a whole number is refused next to the field."""
    try:
        return int(text.strip())
    except ValueError:
        raise errors.InvalidValue("write the number of users as a whole number (5–999)", param="seats") from None


def _page(request: Request, ctx: _Context, form: Form) -> Response:
    if ctx.tenant.catalog.code not in CATALOGS:
        raise errors.NotFound("this vendor has no 組織設定 page", param="path")
    key, role, catalog = ctx.session.customer_key, ctx.session.member_role, ctx.tenant.catalog
    account = ctx.uow.load_accounts([ctx.row["id"]], summary=True)[0]
    customer = customer_json(account, ctx.row, catalog)
    sub = customer["subscription"]
    paid = sub is not None and not catalog.plans[sub["plan"]].is_free and sub["status"] != "canceled"
    offer = next((p for p in sorted(catalog.plans.values(), key=lambda p: p.rank)
                  if not p.is_free and not p.eligibility), None)
    price = offer.prices.get(catalog.default_contract) if offer else None
    query = request.query_params
    preview, seats_typed = None, form.get("seats", query.get("seats", ""))
    preview_error = None
    if paid and query.get("seats") is not None and form.error is None:
        try:
            preview = organization.preview_seats(ctx.uow, ctx.principal, key, ctx.clock, _seats(query["seats"]))
        except errors.KakinError as error:  # shown next to the field, with what was typed
            form, preview_error = Form({"seats": query["seats"]}, error), status_of(error)
    profile = organization.billing_profile(ctx.uow, ctx.principal, key, ctx.clock)
    shown = catalog.plans[sub["display_plan"]] if sub else None
    response = _render(
        request, ctx.session.locale, "portal/organization.html", page="organization", head=ctx.header(),
        form=form, flash=flash_of(request), customer=customer, sub=sub, paid=paid,
        plan_name=None if shown is None else shown.name_ja if ctx.session.locale == "ja" else shown.name_en,
        offer=offer, price=price, tax_inclusive=catalog.tax_inclusive, profile=profile,
        upcoming=upcoming.upcoming_invoice(ctx.uow, ctx.tenant, key, ctx.now) if paid else None,
        preview=preview, seats_typed=seats_typed, card=cards.card_entry(ctx.gateway),
        card_on_file=cards.card_on_file(ctx.gateway, ctx.row["payment_method"]),
        applying=query.get("apply") == "1" or (form.error is not None and "postal_code" in form.values),
        confirm_cancel=query.get("confirm") == "cancel",
        can_purchase=role == "super_admin", can_change_seats=role in ("super_admin", "admin"),
        member_email=ctx.session.member_email)
    if preview_error is not None:
        response.status_code = preview_error
    return response


async def organization_page(request: Request) -> Response:
    """組織設定: the sign-up form while the customer has no paid plan, else サブスクリプション情報; ``?apply=1`` opens
    the form, ``?seats=N`` previews a head-count change, ``?confirm=cancel`` asks before billing stops."""
    return await _with_session(request, lambda ctx: _page(request, ctx, Form()))


async def postal_lookup(request: Request) -> Response:
    """``GET /portal/postal/{code}``: the address of a postal code as JSON ``{"postal_code", "address"}`` for the
    form's script, or ``{"error": {"code", "message", "param"}}`` (422 invalid_postal_code). Needs a session."""

    def build(ctx: _Context) -> Response:
        try:
            return JSONResponse(organization.postal_address(request.path_params["code"]))
        except errors.KakinError as error:
            return JSONResponse({"error": error.as_dict()}, status_code=status_of(error))

    return await _with_session(request, build)


def _sign_up(ctx: _Context, form: Form) -> Done:
    organization.sign_up(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock,
                         plan=form.get("plan"), seats=_seats(form.get("seats")),
                         payment_method=form.get("payment_method"), postal_code=form.get("postal_code"),
                         address=form.get("address"), addressee=form.get("addressee"), email=form.get("email"))
    return Done(PAGE, "signed_up")


def _change_seats(ctx: _Context, form: Form) -> Done:
    authorization.perform(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock, "set_seats",
                          seats=_seats(form.get("seats")))
    return Done(PAGE, "seats_changed")


def _cancel(ctx: _Context, form: Form) -> Done:
    authorization.perform(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock, "cancel")
    return Done(PAGE, "billing_stopped")


def _restore(ctx: _Context, form: Form) -> Done:
    result = organization.restore_payment(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock)
    return Done(PAGE, "payment_restored" if result["restored"] else "nothing_to_restore")


ROUTES: list[Any] = [
    Route("/organization", organization_page, name="organization"),
    Route("/organization/sign_up", form_post(_page, _sign_up), methods=["POST"]),
    Route("/organization/seats", form_post(_page, _change_seats), methods=["POST"]),
    Route("/organization/cancel", form_post(_page, _cancel), methods=["POST"]),
    Route("/organization/restore", form_post(_page, _restore), methods=["POST"]),
    Route("/postal/{code}", postal_lookup, name="postal"),
]
