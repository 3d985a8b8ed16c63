"""The portal's 基本設定 > ドメイン and メンバー pages (seed lineworks-upgrade-procedure, issue 11 pages 6 and 7).

Each action runs through the services as the session's member (web/forms.py); the services decide who may
(services/authorization.py: domains are the super admin's, members the admins'); the pages only hide buttons.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kakin.domain import errors
from kakin.services import domains, members
from kakin.services.tenancy import open_tenant

from .forms import Done, Form, flash_of, form_post
from .portal import _Context, _render, _with_session


# ------------------------------------------------------------------ 基本設定 > ドメイン
def _local(ctx: _Context, listing: dict[str, Any]) -> dict[str, Any]:
    """The listing's instants in the tenant's time zone, as the page shows them."""
    zone = ctx.tenant.lifecycle.zone
    if listing["primary_locked_until"] is not None:
        listing["primary_locked_until"] = listing["primary_locked_until"].astimezone(zone)
    for d in listing["data"]:
        if d["checked_until"] is not None:
            d["checked_until"] = d["checked_until"].astimezone(zone)
    return listing


def _domains_page(request: Request, ctx: _Context, form: Form) -> Response:
    listing = _local(ctx, domains.domains_of(ctx.uow, ctx.principal, ctx.session.customer_key, ctx.clock))
    shown = form.get("domain") or request.query_params.get("added", "")
    return _render(request, ctx.session.locale, "portal/domains.html", page="domains", head=ctx.header(), form=form,
                   flash=flash_of(request), listing=listing, shown=shown, group=ctx.row["sign_in_group"],
                   can_change=ctx.session.member_role == "super_admin")


async def domains_page(request: Request) -> Response:
    """ドメイン: the customer's domains with 使用状況 (確認待ち / 使用中 / 期限切れ), the TXT record and MX records to
    publish, and (super admin) ドメイン追加, 「ドメインの所有権確認」, 「プライマリドメインに変更」, 「削除」."""
    return await _with_session(request, lambda ctx: _domains_page(request, ctx, Form()))


def _add_domain(ctx: _Context, form: Form) -> Done:
    provided = form.get("provided") == "1"
    added = domains.add_domain(ctx.uow, ctx.principal, ctx.session.customer_key, None if provided else form.get("domain"),
                               ctx.clock, provided=provided)
    return Done(f"/portal/domains?added={quote(added['domain'])}", "domain_verified" if added["verified"] else "domain_added")


def _verify_domain(ctx: _Context, form: Form) -> Done:
    domains.verify_domain(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("domain"), ctx.dns, ctx.clock)
    return Done("/portal/domains", "domain_verified")


def _confirm_page(action: str) -> Any:
    def page(request: Request, ctx: _Context, form: Form) -> Response:
        name = request.path_params["domain"]
        listing = _local(ctx, domains.domains_of(ctx.uow, ctx.principal, ctx.session.customer_key, ctx.clock))
        found = next((d for d in listing["data"] if d["domain"] == name), None)
        if found is None:
            raise errors.NotFound(f"no domain {name!r}", param="domain")
        return _render(request, ctx.session.locale, f"portal/domain_{action}.html", page="domains", head=ctx.header(),
                       form=form, domain=found, listing=listing, can_change=ctx.session.member_role == "super_admin")

    return page


async def primary_page(request: Request) -> Response:
    """「プライマリドメインに変更」: the seed's warnings, then 「ドメイン変更」."""
    return await _with_session(request, lambda ctx: _confirm_page("primary")(request, ctx, Form()))


async def delete_page(request: Request) -> Response:
    """「削除」: what deleting the domain means (a provided domain is never issued again), then 「削除」."""
    return await _with_session(request, lambda ctx: _confirm_page("delete")(request, ctx, Form()))


def _change_primary(ctx: _Context, form: Form) -> Done:
    domains.change_primary(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("domain"), ctx.clock)
    return Done(ctx.session.return_url, None)  # every session of the customer ended, this one too: back to the vendor


def _delete_domain(ctx: _Context, form: Form) -> Done:
    domains.delete_domain(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("domain"), ctx.clock)
    return Done("/portal/domains", "domain_deleted")


# ------------------------------------------------------------------ メンバー
def _members_page(request: Request, ctx: _Context, form: Form) -> Response:
    listed = members.members_of(ctx.uow, ctx.principal, ctx.session.customer_key, ctx.clock)
    limit = open_tenant(ctx.uow, ctx.tenant.row.code).catalog.admin_limit
    return _render(request, ctx.session.locale, "portal/members.html", page="members", head=ctx.header(), form=form,
                   flash=flash_of(request), members=listed, admin_limit=limit, me=ctx.session.member_id,
                   admins=sum(1 for m in listed if m["role"] == "admin"),
                   can_manage=ctx.session.member_role in ("super_admin", "admin"))


async def members_page(request: Request) -> Response:
    """メンバー: the super admin, admins and members with their roles; admins add (admins up to the plan's limit) and
    remove (never the super admin)."""
    return await _with_session(request, lambda ctx: _members_page(request, ctx, Form()))


def _add_member(ctx: _Context, form: Form) -> Done:
    members.add_member(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("email").strip(),
                       form.get("name").strip(), form.get("role", "member"), ctx.clock)
    return Done("/portal/members", "member_added")


def _remove_member(ctx: _Context, form: Form) -> Done:
    members.remove_member(ctx.uow, ctx.principal, ctx.session.customer_key, form.get("member_id"), ctx.clock)
    return Done("/portal/members", "member_removed")


ROUTES: list[Any] = [
    Route("/domains", domains_page, name="domains"),
    Route("/domains", form_post(_domains_page, _add_domain), methods=["POST"]),
    Route("/domains/verify", form_post(_domains_page, _verify_domain), methods=["POST"]),
    Route("/domains/{domain}/primary", primary_page),
    Route("/domains/{domain}/primary", form_post(_confirm_page("primary"), _change_primary), methods=["POST"]),
    Route("/domains/{domain}/delete", delete_page),
    Route("/domains/{domain}/delete", form_post(_confirm_page("delete"), _delete_domain), methods=["POST"]),
    Route("/members", members_page, name="members"),
    Route("/members", form_post(_members_page, _add_member), methods=["POST"]),
    Route("/members/remove", form_post(_members_page, _remove_member), methods=["POST"]),
]
