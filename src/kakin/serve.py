"""``kakin serve`` and ``kakin worker``: the service on the real clock.

``serve`` brings the database up to date, makes sure the three reference
tenants exist with a few demo customers, prints a fresh owner API key for each
(keys are stored hashed, so a key can only be shown when it is made) and
serves the API. ``worker`` (``kakin.worker``) does what is due, again and again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.payments import PaymentGateway
from kakin.services import access, billing, due_work
from kakin.services.tenancy import create_tenant

DEMO: dict[str, list[dict[str, Any]]] = {
    "nipoplus": [
        {"id": "acme", "name": "株式会社アクメ", "admin": "owner@acme.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "gold", "seats": 10}},
        {"id": "beta", "name": "ベータ合同会社", "admin": "boss@beta.example", "pm": None, "subscribe": None},
    ],
    "lineworks": [
        {"id": "sakura", "name": "さくら工業株式会社", "admin": "it@sakura.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "basic", "contract": "monthly", "members": 15}},
    ],
    "line-oa": [
        {"id": "shop", "name": "青葉ベーカリー", "admin": "shop@aoba.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "standard"}},
        {"id": "cafe", "name": "喫茶みどり", "admin": "cafe@midori.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "light"}},
    ],
}
NAMES = {"nipoplus": "NipoPlus", "lineworks": "LINE WORKS", "line-oa": "LINE公式アカウント"}


def ensure_reference_tenants(engine: Engine, gateway: PaymentGateway, now: datetime) -> list[tuple[str, str]]:
    """Create missing reference tenants with demo customers; return (tenant, new owner key) pairs."""
    keys = []
    for code, customers in DEMO.items():
        with UnitOfWork(engine) as uow:
            row = uow.tenant(code)
            if row is None:
                tenant = create_tenant(uow, code, NAMES[code], code, now)
                for c in customers:
                    account = billing.create_customer(uow, tenant, gateway, c["id"], c["name"], now, payment_method=c["pm"])
                    assert account.id is not None
                    access.add_super_admin(uow, tenant.row, account.id, c["admin"], c["name"], now)
                    if c["subscribe"]:
                        s = dict(c["subscribe"])
                        billing.subscribe(uow, tenant, gateway, c["id"], now, s.pop("plan"), **s)
                row = tenant.row
            keys.append((code, access.create_api_key(uow, row, "owner", f"serve {now:%Y-%m-%d %H:%M}", now)))
    return keys


def demo_operator(code: str) -> str:
    """The e-mail of a reference tenant's demo console owner: ``owner@<code>.demo.kakin``."""
    return f"owner@{code}.demo.kakin"


def demo_console_sign_ins(engine: Engine, now: datetime, password: str | None = None) -> list[tuple[str, str, str]]:
    """For each reference tenant, its demo console owner (created when missing) with a password: ``password``
    (``KAKIN_DEMO_CONSOLE_PASSWORD``) or a new random one each start, which ends the owner's older sessions.
    Returns (tenant, e-mail, password) triples to print once. A tenant of that code without the demo customers (a
    database kakin did not seed: a vendor's own) gets no demo owner."""
    from kakin.services import operators

    out = []
    for code, customers in DEMO.items():
        with UnitOfWork(engine) as uow:
            row = uow.tenant(code)
            assert row is not None
            if uow.customer_row(row, customers[0]["id"]) is None:
                continue
            email = demo_operator(code)
            if any(o["email"] == email for o in operators.list_operators(uow, row)):
                given = operators.set_password(uow, row, email, now, password)
            else:
                given = operators.create_operator(uow, row, email, "owner", now, password)
        out.append((code, email, given))
    return out


def run_once(engine: Engine, gateway: PaymentGateway, now: datetime) -> dict[str, int]:
    """One pass of due work (``services.due_work.run_pass``) with SMTP and HTTP from the environment."""
    from kakin.adapters.webhooks_http import http_post

    return due_work.run_pass(engine, gateway, SmtpMailer.from_env(), http_post, now)


def portal_link(engine: Engine, tenant_code: str, customer: str, now: datetime, base_url: str, *, member: str | None = None,
                locale: str = "ja", return_url: str | None = None) -> tuple[str, datetime]:
    """A fresh one-time portal link (valid ``portal.LINK_MINUTES``) for ``member`` of ``customer``, by default its
    super admin; returns (url, expires_at). Raises NotFound for an unknown tenant, customer or member."""
    from kakin.domain import errors
    from kakin.services import portal

    base = base_url.rstrip("/")
    with UnitOfWork(engine) as uow:
        tenant = uow.tenant(tenant_code)
        if tenant is None:
            raise errors.NotFound(f"no tenant {tenant_code!r}", param="tenant")
        if member is None:
            row = uow.customer_row(tenant, customer)
            if row is None:
                raise errors.NotFound(f"no customer {customer!r}", param="customer")
            member = next((m["public_id"] for m in uow.members.of_customer(row["id"])
                           if m["role"] == "super_admin"), None)
            if member is None:
                raise errors.NotFound(f"customer {customer!r} has no super admin; name a member", param="member")
        token, expires_at = portal.create_link(uow, tenant, customer, member, locale, return_url or f"{base}/docs", now)
    return f"{base}/portal/open/{token}", expires_at


def demo_portal_links(engine: Engine, now: datetime, base_url: str) -> list[tuple[str, str, str]]:
    """One portal link per reference tenant, for its first demo customer's super admin: (tenant, customer, url). A
    tenant of that code without the demo customer (a database kakin did not seed: a vendor's own) gets none."""
    from kakin.domain import errors

    links = []
    for code, customers in DEMO.items():
        try:
            links.append((code, customers[0]["id"], portal_link(engine, code, customers[0]["id"], now, base_url)[0]))
        except errors.NotFound:
            continue
    return links
