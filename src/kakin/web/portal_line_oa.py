"""The portal's LINE Official Account pages (seed line-oa-local-government-plan): 料金プラン (plan change: upgrades at
once, downgrades on the 1st, said before confirming) and アカウント設定 (account name, 認証済アカウント, premium ID,
the 地方公共団体プラン application and its status). This month's messages used of included is the overview's bar.

Every action runs through the services as the session's member (web/forms.py); the page only hides the buttons the
member could not use. Amounts come from the services (previews, the catalog's prices), never computed here.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kakin.api.errors import status_of
from kakin.domain import errors
from kakin.services import authorization, eligibility, official_account, upcoming
from kakin.services.presenters import customer_json

from .forms import Done, Form, flash_of, form_post
from .portal import _Context, _render, _with_session

PLAN_PAGE, ACCOUNT_PAGE = "/portal/oa/plan", "/portal/oa/account"
STATUS = {"pending": "reviewing", "approved": "applied", "refused": "refused"}  # 審査中 / 適用 / 不可
CATALOGS = frozenset({"line-oa"})  # the vendors whose customers see these pages (base.html shows their tabs)


def _line_oa(ctx: _Context) -> None:
    if ctx.tenant.catalog.code not in CATALOGS:
        raise errors.NotFound("this vendor has no LINE Official Account pages", param="path")


def _customer(ctx: _Context) -> dict[str, Any]:
    account = ctx.uow.load_accounts([ctx.row["id"]], summary=True)[0]
    return customer_json(account, ctx.row, ctx.tenant.catalog)


def _name(ctx: _Context, plan: str | None) -> str | None:
    if plan is None:
        return None
    p = ctx.tenant.catalog.plans[plan]
    return p.name_ja if ctx.session.locale == "ja" else p.name_en


# ------------------------------------------------------------------ 料金プラン
def _plan_page(request: Request, ctx: _Context, form: Form) -> Response:
    _line_oa(ctx)
    customer = _customer(ctx)
    sub = customer["subscription"]
    choices = official_account.plan_choices(ctx.tenant, sub["plan"] if sub else None, sub["contract"] if sub else None)
    wanted = form.get("plan", request.query_params.get("plan", ""))
    preview, status = None, 200
    if wanted and form.error is None and any(c["plan"] == wanted and c["change"] not in (None, "current")
                                             for c in choices):
        try:
            preview = upcoming.preview_change_plan(ctx.uow, ctx.tenant, ctx.session.customer_key, ctx.now, wanted)
        except errors.KakinError as error:
            form, status = Form({"plan": wanted}, error), status_of(error)
    response = _render(request, ctx.session.locale, "portal/line_oa_plan.html", page="oa_plan", head=ctx.header(),
                       form=form, flash=flash_of(request), sub=sub, plan_name=_name(ctx, sub["display_plan"] if sub else None),
                       pending_name=_name(ctx, (sub["pending_change"] or {}).get("plan") if sub else None),
                       choices=choices, wanted=wanted, wanted_name=_name(ctx, wanted) if preview else None,
                       preview=preview, can_change=ctx.session.member_role == "super_admin")
    response.status_code = status if status != 200 else response.status_code
    return response


async def plan_page(request: Request) -> Response:
    """料金プラン: the plans with their monthly fee and messages included, the changes the catalog allows; ``?plan=``
    previews one (what is billed now, or from the 1st of next month) before it is confirmed."""
    return await _with_session(request, lambda ctx: _plan_page(request, ctx, Form()))


def _change_plan(ctx: _Context, form: Form) -> Done:
    authorization.perform(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock, "change_plan",
                          plan=form.get("plan"))
    return Done(PLAN_PAGE, "plan_changed")


# ------------------------------------------------------------------ アカウント設定
def _account_page(request: Request, ctx: _Context, form: Form) -> Response:
    _line_oa(ctx)
    query = request.query_params
    customer = _customer(ctx)
    sub = customer["subscription"]
    state = official_account.account_state(ctx.uow, ctx.tenant.row, ctx.row)
    premium = next((a for a in customer["addons"] if a["addon"] == official_account.ADDON), None)
    typed_id = form.get("premium_id", query.get("premium_id", ""))
    check = (official_account.premium_id_check(ctx.uow, ctx.tenant, typed_id)
             if typed_id and "premium_id" not in form.values and premium is None else None)
    prefecture = form.get("prefecture", query.get("prefecture", ""))
    applications = ctx.uow.applications.find(ctx.tenant.row.id, customer_id=ctx.row["id"])
    latest = max(applications, key=lambda a: (a["submitted_at"], a["id"]), default=None)
    return _render(request, ctx.session.locale, "portal/line_oa_account.html", page="oa_account", head=ctx.header(),
                   form=form, flash=flash_of(request), customer=customer, state=state, premium=premium,
                   typed_id=typed_id, check=check, plan_name=_name(ctx, sub["display_plan"] if sub else None),
                   prices=official_account.premium_id_prices(ctx.tenant, sub["plan"] if sub else None),
                   choices=eligibility.local_government_choices(prefecture), prefecture=prefecture,
                   application=None if latest is None else {"status": STATUS[latest["status"]],
                                                            "submitted_at": latest["submitted_at"]},
                   eligible_plan=next((p.code for p in ctx.tenant.catalog.plans.values() if p.eligibility), None),
                   can_change=ctx.session.member_role == "super_admin", member_email=ctx.session.member_email)


async def account_page(request: Request) -> Response:
    """アカウント設定: account name (fixed once verification or the plan is applied for), 認証済アカウント, premium ID
    (format help; ``?premium_id=`` checks availability; monthly or annual price) and the 地方公共団体プラン
    application (prefecture, then ``?prefecture=CODE``'s municipalities) with its status, never the reason."""
    return await _with_session(request, lambda ctx: _account_page(request, ctx, Form()))


def _rename(ctx: _Context, form: Form) -> Done:
    eligibility.rename_account(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("name"), ctx.clock)
    return Done(ACCOUNT_PAGE, "account_renamed")


def _request_verification(ctx: _Context, form: Form) -> Done:
    eligibility.request_verification(ctx.uow, ctx.principal, ctx.session.customer_key, ctx.clock)
    return Done(ACCOUNT_PAGE, "verification_requested")


def _buy_premium_id(ctx: _Context, form: Form) -> Done:
    authorization.perform(ctx.uow, ctx.principal, ctx.gateway, ctx.session.customer_key, ctx.clock, "set_premium_id",
                          premium_id=form.get("premium_id").strip(), billing=form.get("billing", "monthly"))
    return Done(ACCOUNT_PAGE, "premium_id_bought")


def _apply(ctx: _Context, form: Form) -> Done:
    plan = next((p.code for p in ctx.tenant.catalog.plans.values() if p.eligibility), "")
    eligibility.apply(ctx.uow, ctx.principal, ctx.session.customer_key, plan, form.get("local_government_code"),
                      form.get("applicant_email").strip(), False, ctx.clock)
    return Done(ACCOUNT_PAGE, "application_sent")


ROUTES: list[Any] = [
    Route("/oa/plan", plan_page, name="oa_plan"),
    Route("/oa/plan", form_post(_plan_page, _change_plan), methods=["POST"]),
    Route("/oa/account", account_page, name="oa_account"),
    Route("/oa/account/name", form_post(_account_page, _rename), methods=["POST"]),
    Route("/oa/account/verification", form_post(_account_page, _request_verification), methods=["POST"]),
    Route("/oa/account/premium_id", form_post(_account_page, _buy_premium_id), methods=["POST"]),
    Route("/oa/account/local_government", form_post(_account_page, _apply), methods=["POST"]),
]
