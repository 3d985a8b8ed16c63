"""The portal's 購入/請求 pages of the LINE WORKS procedures (seed lineworks-upgrade-procedure): 決済方法の管理 and
商品の契約/変更. Each action runs through the services as the session's member (web/forms.py); the services decide
who may (services/authorization.py) — the pages only hide the buttons a member could not use.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kakin.services import authorization

from . import cards
from .forms import Done, Form, flash_of, form_post
from .portal import _Context, _render, _with_session


def _back(form: Form, default: str) -> str:
    """The form's ``next`` (a page of the portal to return to), else ``default``."""
    to = form.get("next")
    return to if to.startswith("/portal/") and not to.startswith("//") and "\\" not in to else default


# ------------------------------------------------------------------ 決済方法の管理
def _payment_page(request: Request, ctx: _Context, form: Form) -> Response:
    row = ctx.row
    return _render(request, ctx.session.locale, "portal/payment.html", page="payment", head=ctx.header(),
                   card_on_file=cards.card_on_file(ctx.gateway, row["payment_method"]), card=cards.card_entry(ctx.gateway),
                   bank_transfer=row["collection"] == "bank_transfer", form=form, flash=flash_of(request),
                   can_change=ctx.session.member_role == "super_admin", next=form.get("next", request.query_params.get("next", "")))


async def payment_page(request: Request) -> Response:
    """決済方法の管理: the card on file (brand and last four digits only), the card entry (Stripe Elements or the
    simulator's test cards), and bank transfer (請求書払い) when the vendor's operators enabled it."""
    return await _with_session(request, lambda ctx: _payment_page(request, ctx, Form()))


def _set_payment_method(ctx: _Context, form: Form) -> Done:
    authorization.perform(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock,
                          "set_payment_method", payment_method=form.get("payment_method"))
    return Done(_back(form, "/portal/payment"), "payment_method_saved")


ROUTES: list[Any] = [
    Route("/payment", payment_page, name="payment"),
    Route("/payment", form_post(_payment_page, _set_payment_method), methods=["POST"]),
]
