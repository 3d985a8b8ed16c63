"""The portal's 購入/請求 pages of the LINE WORKS procedures (seed lineworks-upgrade-procedure): 決済方法の管理 and
商品の契約/変更. Each action runs through the services as the session's member (web/forms.py); the services decide
who may (services/authorization.py) — the pages only hide the buttons a member could not use.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kakin.domain import errors
from kakin.domain.catalog import When
from kakin.services import authorization, upcoming, upgrades

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


# ------------------------------------------------------------------ 商品の契約/変更 (STEP 1–4)
def _choices(ctx: _Context, sub: Any) -> list[dict[str, Any]]:
    """The catalog's plans a change may go to from the customer's plan and contract, each with its monthly and annual
    per-user prices (tax excluded) and which of them the catalog allows (``[[plan_changes]]``)."""
    catalog = ctx.tenant.catalog
    rows = []
    for plan in sorted(catalog.plans.values(), key=lambda p: p.rank):
        allowed = {c: (plan.code != sub.plan or c != sub.contract)
                   and catalog.change_policy(sub.plan, sub.contract, plan.code, c) is not When.REFUSED
                   for c in plan.prices}
        if any(allowed.values()):
            rule = next((catalog.change_rule(sub.plan, sub.contract, plan.code, c) for c in plan.prices if allowed[c]), None)
            rows.append({"code": plan.code, "name": plan.name_ja if ctx.session.locale == "ja" else plan.name_en,
                         "prices": {c: p.unit_amount for c, p in plan.prices.items()}, "allowed": allowed,
                         "needs_domain": bool(rule and rule.needs_verified_domain)})
    return rows


def _plans_page(request: Request, ctx: _Context, form: Form) -> Response:
    query = request.query_params
    step = form.get("step") or query.get("step", "1")
    step = step if step in ("1", "2", "3", "4") else "1"
    plan, contract = form.get("plan") or query.get("plan", ""), form.get("contract") or query.get("contract", "")
    account = ctx.uow.load_accounts([ctx.row["id"]], summary=True)[0]
    sub = account.plan_subscription
    catalog = ctx.tenant.catalog
    values: dict[str, Any] = {"step": step, "sub": sub, "form": form, "flash": flash_of(request),
                              "upgrade": upgrades.pending(ctx.uow, ctx.row["id"]), "can_buy": ctx.session.member_role == "super_admin",
                              "can_pay": account.can_pay, "choices": [], "chosen": None, "preview": None, "error": None}
    if values["upgrade"] is not None:
        target = catalog.plans[values["upgrade"]["plan"]]
        values["upgrade_plan"] = target.name_ja if ctx.session.locale == "ja" else target.name_en
    if sub is not None:
        current = catalog.plans[sub.plan]
        values["current_name"] = current.name_ja if ctx.session.locale == "ja" else current.name_en
        values["lowest"] = current.rank == min(p.rank for p in catalog.plans.values())
        values["choices"] = _choices(ctx, sub)
        values["needs_domain"] = bool(ctx.row["sign_in_group"] and not ctx.row["verified_domain"]
                                      and any(c["needs_domain"] for c in values["choices"]))
    chosen = next((c for c in values["choices"] if c["code"] == plan and c["allowed"].get(contract)), None)
    if step in ("3", "4") and chosen is None:
        values["step"] = "2"
    elif step in ("3", "4") and sub is not None and chosen is not None:
        values["chosen"] = {**chosen, "contract": contract, "unit": chosen["prices"][contract],
                            "background": upgrades.runs_in_background(ctx.tenant, account, plan, contract)}
        try:
            values["preview"] = upcoming.preview_change_plan(ctx.uow, ctx.tenant, ctx.session.customer_key, ctx.now, plan,
                                                             contract=contract)
        except errors.KakinError as refusal:  # shown with what to do: register a card, verify a domain, …
            values["error"] = refusal.code
    return _render(request, ctx.session.locale, "portal/plans.html", page="plans", head=ctx.header(), **values)


async def plans_page(request: Request) -> Response:
    """商品の契約/変更 (seed lineworks-upgrade-procedure): STEP 1 the current product and 「有償プランへ切替」; STEP 2 the
    plans the catalog allows, monthly and annual prices side by side (per user, tax excluded), 「選択する」; STEP 3 the
    selection and what it bills when (the preview), 「次へ」; STEP 4 the contract to confirm and 「追加する」. A card
    (or bank transfer) must exist first; lite → paid for a group sign-in needs a domain in use."""
    return await _with_session(request, lambda ctx: _plans_page(request, ctx, Form()))


def _change_plan(ctx: _Context, form: Form) -> Done:
    _, _, _, job = upgrades.change_plan(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock,
                                        form.get("plan"), contract=form.get("contract") or None)
    return Done("/portal/plans", "upgrade_started" if job else "plan_changed")


ROUTES: list[Any] = [
    Route("/plans", plans_page, name="plans"),
    Route("/plans", form_post(_plans_page, _change_plan), methods=["POST"]),
    Route("/payment", payment_page, name="payment"),
    Route("/payment", form_post(_payment_page, _set_payment_method), methods=["POST"]),
]
