"""The REST API end to end, on SQLite and PostgreSQL: each vendor's main flows, refusals, idempotency, security."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import run_once
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Api:
    """A client for one tenant, remembering each customer's super admin."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.key = client, key
        self.super_admin: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, *, member: str | None = None, key: str | None = None,
             idem: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        if idem:
            headers["Idempotency-Key"] = idem
        return self.client.request(method, path, json=body, headers=headers)

    def customer(self, cid: str, name: str, pm: str | None = "pm_card_visa", **extra: Any) -> dict[str, Any]:
        r = self.call("POST", "/v1/customers", {"id": cid, "name": name, "payment_method": pm,
                                                "super_admin": {"email": f"admin@{cid}.example", "name": "管理者"}, **extra})
        assert r.status_code == 201, r.text
        self.super_admin[cid] = r.json()["super_admin"]["id"]
        return r.json()  # type: ignore[no-any-return]

    def as_admin(self, method: str, path: str, cid: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, path, body, member=self.super_admin[cid], **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 5, 3, 10, tzinfo=JST))


@pytest.fixture
def gateway() -> CardSimulator:
    return CardSimulator()


@pytest.fixture
def client(engine: Engine, gateway: CardSimulator, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(engine, gateway, clock)) as c:
        yield c


def tenant_key(engine: Engine, code: str, catalog: str, role: str = "owner") -> str:
    with UnitOfWork(engine) as uow:
        row = uow.tenant(code) or create_tenant(uow, code, code, catalog, datetime(2026, 1, 1, tzinfo=JST)).row
        return create_api_key(uow, row, role, f"{role} key", datetime(2026, 1, 1, tzinfo=JST))


def test_nipoplus_sign_up_seats_preview_and_cancel(engine: Engine, client: TestClient, clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10})
    assert r.status_code == 200, r.text
    assert r.json()["subscription"]["status"] == "active"
    invoices = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    assert [(i["total"], i["tax"], i["status"]) for i in invoices] == [(1800, 163, "paid")]  # 180 × 10, tax 1,800 × 10 ÷ 110
    clock.now = datetime(2026, 6, 20, 10, tzinfo=JST)
    assert api.as_admin("POST", "/v1/customers/acme/subscription/seats", "acme", {"seats": 20}).status_code == 200
    clock.now = datetime(2026, 7, 3, 1, tzinfo=JST)
    view = api.call("GET", "/v1/customers/acme").json()
    assert view["subscription"]["seats"] == 20
    r = api.as_admin("POST", "/v1/customers/acme/subscription/cancel", "acme")
    assert r.status_code == 200, r.text
    assert r.json()["subscription"]["status"] == "trialing"  # the paid days left become a trial
    totals = [i["total"] for i in api.call("GET", "/v1/customers/acme/invoices").json()["data"]]
    assert totals == [1800, 1800, 4380]  # June renewal before the change; July 3,600 + 180 × 13 ÷ 30 × 10 = 780


def test_lineworks_upgrade_with_preview_and_refused_downgrade(engine: Engine, client: TestClient, clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "lineworks", "lineworks"))
    clock.now = datetime(2026, 4, 1, 9, tzinfo=JST)
    api.customer("sakura", "さくら工業株式会社")
    r = api.as_admin("POST", "/v1/customers/sakura/subscription", "sakura",
                     {"plan": "basic", "contract": "monthly", "users": 10, "trial_days": 0})
    assert r.status_code == 200, r.text
    clock.now = datetime(2026, 4, 16, 9, tzinfo=JST)
    preview = api.call("POST", "/v1/customers/sakura/subscription/plan/preview", {"plan": "premium"}).json()
    # April: 15 days × 10 × 600 ÷ 30 = 3,000 basic + 15 days × 10 × 1,200 ÷ 30 = 6,000 premium
    assert preview["effective"] == "immediate" and preview["invoices_now"] == []
    assert [ln["amount"] for ln in preview["next_invoice"]["lines"]] == [3000, 6000]
    assert preview["next_invoice"]["total"] == 9900
    assert preview["next_invoice_without_change"]["total"] == 6600  # 300 user-days × 600 ÷ 30 = 6,000 + tax
    assert api.call("GET", "/v1/customers/sakura/invoices").json()["data"] == []  # the preview committed nothing
    assert api.as_admin("POST", "/v1/customers/sakura/subscription/plan", "sakura", {"plan": "premium"}).status_code == 200
    clock.now = datetime(2026, 5, 2, 9, tzinfo=JST)
    refused = api.as_admin("POST", "/v1/customers/sakura/subscription/plan", "sakura", {"plan": "lite"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "plan_change_not_allowed" and refused.json()["error"]["param"] == "plan"
    totals = [i["total"] for i in api.call("GET", "/v1/customers/sakura/invoices").json()["data"]]
    assert totals == [preview["next_invoice"]["total"]]  # exactly what the preview said


def test_line_oa_quota_upgrade_and_month_start_downgrade(engine: Engine, client: TestClient, clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "line-oa", "line-oa"))
    clock.now = datetime(2026, 3, 10, 12, tzinfo=JST)
    created = api.customer("shop", "青葉ベーカリー")
    assert created["basic_id"] and created["subscription"]["plan"] == "communication"
    assert api.as_admin("POST", "/v1/customers/shop/subscription", "shop", {"plan": "light"}).status_code == 200
    assert api.call("POST", "/v1/customers/shop/usage/messages/consume", {"count": 5000}).status_code == 200
    over = api.call("POST", "/v1/customers/shop/usage/messages/consume", {"count": 1})
    assert over.status_code == 409 and over.json()["error"]["code"] == "quota_exceeded"
    assert over.json()["error"]["remaining"] == 0
    preview = api.call("POST", "/v1/customers/shop/subscription/plan/preview", {"plan": "standard"}).json()
    assert [i["total"] for i in preview["invoices_now"]] == [11000]  # 15,000 − 5,000 = 10,000 + tax at once
    assert api.as_admin("POST", "/v1/customers/shop/subscription/plan", "shop", {"plan": "standard"}).status_code == 200
    down = api.as_admin("POST", "/v1/customers/shop/subscription/plan", "shop", {"plan": "light"}).json()
    assert down["subscription"]["plan"] == "standard"
    assert down["subscription"]["pending_change"]["effective_on"] == "2026-04-01"
    withdrawn = api.as_admin("POST", "/v1/customers/shop/subscription/plan", "shop", {"plan": "standard"}).json()
    assert withdrawn["subscription"]["pending_change"] is None
    totals = [i["total"] for i in api.call("GET", "/v1/customers/shop/invoices").json()["data"]]
    assert totals == [5500, 11000]


def test_a_usage_event_past_a_hard_limit_is_refused_like_a_quota_grant(engine: Engine, client: TestClient,
                                                                        clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "line-oa", "line-oa"))
    clock.now = datetime(2026, 3, 10, 12, tzinfo=JST)
    api.customer("shop", "青葉ベーカリー")
    assert api.as_admin("POST", "/v1/customers/shop/subscription", "shop", {"plan": "light"}).status_code == 200
    sent = {"customer": "shop", "metric": "messages", "quantity": 6000, "timestamp": "2026-03-10T12:00:00+09:00",
            "transaction_id": "blast-1"}
    r = api.call("POST", "/v1/usage_events", {"events": [sent]})
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] == 0 and r.json()["refused"] == 1
    assert r.json()["data"][0]["error"]["code"] == "quota_exceeded" and r.json()["data"][0]["error"]["remaining"] == 5000
    quota = api.call("GET", "/v1/customers/shop/entitlements").json()["quotas"]["messages"]
    assert quota["used"] == 0 and quota["remaining"] == 5000  # light: 6,000 > 5,000 included, nothing counted


def test_only_the_super_admin_changes_the_plan_and_admins_manage_members(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    admin = api.as_admin("POST", "/v1/customers/acme/members", "acme", {"email": "a@acme.example", "name": "A", "role": "admin"})
    member = api.as_admin("POST", "/v1/customers/acme/members", "acme", {"email": "m@acme.example", "name": "M"})
    assert admin.status_code == 201 and member.status_code == 201
    for who in (admin.json()["id"], member.json()["id"], None):
        r = api.call("POST", "/v1/customers/acme/subscription", {"plan": "gold", "seats": 10}, member=who)
        assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"
    r = api.call("POST", "/v1/customers/acme/members", {"email": "x@acme.example", "name": "X"}, member=member.json()["id"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    assert api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}).status_code == 200
    seats = api.call("POST", "/v1/customers/acme/subscription/seats", {"seats": 12}, member=admin.json()["id"])
    assert seats.status_code == 200  # admins may change seats
    roles = [m["role"] for m in api.call("GET", "/v1/customers/acme/members").json()["data"]]
    assert roles == ["super_admin", "admin", "member"]


def test_only_the_super_admin_changes_the_billing_profile_and_a_refusal_changes_nothing(
        engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    admin = api.as_admin("POST", "/v1/customers/acme/members", "acme",
                         {"email": "a@acme.example", "name": "A", "role": "admin"}).json()["id"]
    profile = {"addressee": "株式会社アクメ 経理部", "postal_code": "1050011", "address": "東京都港区芝公園"}
    r = api.call("POST", "/v1/customers/acme/billing_profile", profile, member=admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"
    viewer = tenant_key(engine, "nipoplus", "nipoplus", role="viewer")
    r = api.call("POST", "/v1/customers/acme/billing_profile", profile, key=viewer, member=api.super_admin["acme"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    r = api.call("POST", "/v1/customers/acme/billing_profile", profile, key=tenant_key(engine, "other", "nipoplus"))
    assert r.status_code == 404  # another tenant's customer does not exist for this key
    with engine.connect() as conn:
        stored = conn.execute(select(tables.customers.c.addressee).where(tables.customers.c.key == "acme")).scalar_one()
    assert stored is None  # nothing changed by the refusals
    r = api.as_admin("POST", "/v1/customers/acme/billing_profile", "acme", profile)
    assert r.status_code == 200 and r.json()["postal_code"] == "105-0011"


def test_another_tenants_key_sees_nothing_and_a_viewer_cannot_write(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    other = tenant_key(engine, "other", "nipoplus")
    for path in ("/v1/customers/acme", "/v1/customers/acme/invoices", "/v1/customers/acme/members"):
        r = api.call("GET", path, key=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert api.call("GET", "/v1/customers", key=other).json()["data"] == []
    viewer = tenant_key(engine, "nipoplus", "nipoplus", role="viewer")
    assert api.call("GET", "/v1/customers/acme", key=viewer).status_code == 200
    r = api.call("POST", "/v1/customers/acme/subscription", {"plan": "gold", "seats": 10}, key=viewer,
                 member=api.super_admin["acme"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    assert api.call("GET", "/v1/customers", key="kk_000000000000_nope").status_code == 401
    assert api.call("GET", "/v1/customers", key=api.key + "x").status_code == 401


def test_deleting_an_organization_ends_billing_keeps_its_invoices_and_refuses_changes(
        engine: Engine, client: TestClient, clock: Clock, gateway: CardSimulator) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    assert api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}).status_code == 200
    admin = api.as_admin("POST", "/v1/customers/acme/members", "acme",
                         {"email": "a@acme.example", "name": "管理者", "role": "admin"}).json()["id"]
    clock.now = datetime(2026, 5, 20, 10, tzinfo=JST)
    r = api.call("DELETE", "/v1/customers/acme", member=admin)  # an admin may not: only the super admin
    assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"
    r = api.as_admin("DELETE", "/v1/customers/acme", "acme")
    assert r.status_code == 200, r.text
    assert r.json()["deleted_on"] == "2026-05-20" and r.json()["subscription"] is None  # no free plan after it either
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10})
    assert r.status_code == 409 and r.json()["error"]["code"] == "customer_deleted"
    assert api.as_admin("DELETE", "/v1/customers/acme", "acme").json()["error"]["code"] == "customer_deleted"
    clock.now = datetime(2026, 9, 1, tzinfo=JST)
    run_once(engine, gateway, datetime(2026, 9, 1, tzinfo=JST))  # the renewals of June, July and August: none
    invoices = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    assert [(i["total"], i["status"]) for i in invoices] == [(1800, "paid")] and len(gateway.charged) == 1
    assert api.call("GET", f"/v1/invoices/{invoices[0]['number']}/receipt").status_code == 200  # papers stay available
    assert "customer.deleted" in [e["action"] for e in api.call("GET", "/v1/audit_log?limit=100").json()["data"]]


def test_a_deleted_lineworks_organization_pays_for_the_days_it_used(engine: Engine, client: TestClient, clock: Clock,
                                                                      gateway: CardSimulator) -> None:
    api = Api(client, tenant_key(engine, "lineworks", "lineworks"))
    clock.now = datetime(2026, 4, 1, 9, tzinfo=JST)
    api.customer("sakura", "さくら工業株式会社")
    body = {"plan": "basic", "contract": "monthly", "users": 10, "trial_days": 0}
    assert api.as_admin("POST", "/v1/customers/sakura/subscription", "sakura", body).status_code == 200
    clock.now = datetime(2026, 4, 16, 10, tzinfo=JST)
    assert api.as_admin("DELETE", "/v1/customers/sakura", "sakura").status_code == 200
    clock.now = datetime(2026, 5, 1, 1, tzinfo=JST)
    run_once(engine, gateway, clock.now)
    # April 1 … 15: 150 user-days × 600 ÷ 30 = 3,000, tax 300 (the day of deletion is not charged)
    totals = [i["total"] for i in api.call("GET", "/v1/customers/sakura/invoices").json()["data"]]
    assert totals == [3300]


def test_a_payment_awaiting_3d_secure_shows_its_client_secret_until_it_is_restored(
        engine: Engine, client: TestClient, gateway: CardSimulator) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ", pm="pm_card_authenticationRequired")
    api.customer("other", "他社株式会社")
    assert api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}).status_code == 200
    [invoice] = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    path = f"/v1/customers/acme/invoices/{invoice['number']}/payment"
    waiting = api.call("GET", path).json()
    assert waiting["invoice_status"] == "open" and waiting["status"] == "requires_action"
    assert waiting["client_secret"] == f"{waiting['reference']}_secret_sim"
    r = api.call("GET", f"/v1/customers/other/invoices/{invoice['number']}/payment")  # not that customer's invoice
    assert r.status_code == 404 and r.json()["error"]["param"] == "number"
    r = api.call("GET", path, key=tenant_key(engine, "other", "nipoplus"))  # nor another tenant's
    assert r.status_code == 404
    gateway.authenticate(waiting["reference"])  # the customer's browser completes 3-D Secure with the secret
    restored = api.call("POST", "/v1/customers/acme/restore_payment").json()
    assert restored["restored"] == [invoice["number"]]
    done = api.call("GET", path).json()
    assert done["invoice_status"] == "paid" and done["status"] == "succeeded" and done["client_secret"] is None


def test_a_sign_up_with_a_declined_card_is_refused_with_402_and_its_decline_code(
        engine: Engine, client: TestClient, gateway: CardSimulator) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ", pm="pm_card_chargeDeclinedInsufficientFunds")
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}, idem="signup-1")
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert (error["code"], error["decline_code"], error["param"]) == ("card_declined", "insufficient_funds", "payment_method")
    assert api.call("GET", "/v1/customers/acme/invoices").json()["data"] == []  # no invoice, nothing owed
    rights = api.call("GET", "/v1/customers/acme/entitlements").json()
    assert (rights["plan"], rights["features"]["all_features"]) == ("free", False)  # no paid feature
    assert gateway.charged == []
    [attempt] = api.call("GET", "/v1/customers/acme/payments").json()["data"]  # the attempt stays in the payment log
    assert (attempt["invoice"], attempt["amount"], attempt["outcome"], attempt["code"]) == (
        None, 1800, "failed", "insufficient_funds")
    # another card, and the same request again: the sign-up goes through, charged once
    r = api.as_admin("POST", "/v1/customers/acme/payment_method", "acme", {"payment_method": "pm_card_visa"})
    assert r.status_code == 200, r.text
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}, idem="signup-2")
    assert r.status_code == 200, r.text
    assert [(i["total"], i["status"]) for i in api.call("GET", "/v1/customers/acme/invoices").json()["data"]] == [
        (1800, "paid")]  # 180 × 10
    log = api.call("GET", "/v1/customers/acme/payments").json()["data"]
    assert [(a["invoice"] is not None, a["outcome"]) for a in log] == [(False, "failed"), (True, "succeeded")]


def test_a_revoked_key_stops_working_at_once_and_only_an_owner_revokes(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    doomed = tenant_key(engine, "nipoplus", "nipoplus", role="billing_admin")
    prefix = "_".join(doomed.split("_", 2)[:2])
    assert api.call("GET", "/v1/customers", key=doomed).status_code == 200  # now authenticated, and cached
    for role in ("billing_admin", "viewer", "reviewer"):  # only a key that may manage revokes keys
        r = api.call("POST", f"/v1/api_keys/{prefix}/revoke", key=tenant_key(engine, "nipoplus", "nipoplus", role=role))
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_forbidden"
    other = tenant_key(engine, "other", "nipoplus")
    r = api.call("POST", f"/v1/api_keys/{prefix}/revoke", key=other)  # another tenant's key cannot even see it
    assert r.status_code == 404 and r.json()["error"]["param"] == "prefix"
    assert api.call("GET", "/v1/customers", key=doomed).status_code == 200
    listed = api.call("GET", "/v1/api_keys").json()["data"]
    assert [k["role"] for k in listed] == ["owner", "billing_admin", "billing_admin", "viewer", "reviewer"]
    assert all(set(k) == {"prefix", "role", "name", "created_at", "revoked_at"} for k in listed)  # no key, no hash
    r = api.call("POST", f"/v1/api_keys/{prefix}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = api.call("GET", "/v1/customers", key=doomed)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # at once, despite the cache
    assert api.call("POST", f"/v1/api_keys/{prefix}/revoke").status_code == 200  # again: nothing changes
    actions = [e["action"] for e in api.call("GET", "/v1/audit_log?limit=100").json()["data"]]
    assert actions.count("api_key.revoked") == 1
    assert api.call("POST", "/v1/api_keys/not-a-prefix/revoke").status_code == 422


def test_api_keys_are_not_recoverable_from_the_database(engine: Engine) -> None:
    key = tenant_key(engine, "nipoplus", "nipoplus")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT prefix, secret_hash, role FROM api_keys")).all()
        dump = " ".join(str(v) for t in ("api_keys", "audit_log") for row in conn.execute(text(f"SELECT * FROM {t}")) for v in row)
    assert len(rows) == 1 and rows[0].secret_hash != key and len(rows[0].secret_hash) == 64
    assert key not in dump and key.split("_", 2)[2] not in dump


def test_a_retried_request_with_the_same_idempotency_key_charges_once(engine: Engine, client: TestClient,
                                                                      gateway: CardSimulator) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    body = {"plan": "gold", "seats": 10}
    first = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", body, idem="sub-1")
    again = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", body, idem="sub-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert len(gateway.charged) == 1
    assert len(api.call("GET", "/v1/customers/acme/invoices").json()["data"]) == 1
    other = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 11}, idem="sub-1")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # the worker forgets responses after 24 hours, not before
    now = datetime.now(UTC)
    assert run_once(engine, gateway, now + timedelta(hours=23))["idempotency records purged"] == 0
    assert api.as_admin("POST", "/v1/customers/acme/subscription", "acme", body, idem="sub-1").json() == first.json()
    assert run_once(engine, gateway, now + timedelta(hours=25))["idempotency records purged"] >= 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE key = 'sub-1'")).scalar_one() == 0


def test_bad_requests_name_the_field_and_change_nothing(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    cases = [({"plan": "gold", "seats": "10"}, "seats"), ({"plan": "gold", "seats": 10, "colour": 1}, "colour"),
             ({"seats": 10}, "plan"), ({"plan": "gold", "seats": -1}, "seats")]
    for body, param in cases:
        r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 4})
    assert r.status_code == 422 and r.json()["error"]["code"] == "seats_out_of_range"
    r = api.client.post("/v1/customers/acme/subscription", content=b"{not json",
                        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"
    assert api.call("GET", "/v1/nowhere").json()["error"]["code"] == "not_found"
    assert api.call("GET", "/v1/customers/acme/invoices").json()["data"] == []
    assert api.call("GET", "/v1/customers/acme").json()["subscription"]["plan"] == "free"


def test_lists_paginate_with_cursors(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    for i in range(5):
        api.customer(f"c{i}", f"顧客{i}")
    seen, cursor = [], None
    while True:
        page = api.call("GET", "/v1/customers?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i}" for i in range(5)]
    assert api.call("GET", "/v1/customers?cursor=garbage").json()["error"]["code"] == "invalid_cursor"


def test_a_test_clock_bills_its_customers_as_it_advances(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    clock = api.call("POST", "/v1/test_clocks", {"name": "leap year", "frozen_time": "2024-01-31T10:00:00+09:00"}).json()
    api.customer("leap", "うるう株式会社", test_clock=clock["id"])
    assert api.as_admin("POST", "/v1/customers/leap/subscription", "leap", {"plan": "gold", "seats": 5}).status_code == 200
    r = api.call("POST", f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2024-04-30T12:00:00+09:00"})
    assert r.status_code == 200, r.text
    issued = [i["issued_on"] for i in api.call("GET", "/v1/customers/leap/invoices").json()["data"]]
    assert issued == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]
    back = api.call("POST", f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2024-01-01T00:00:00+09:00"})
    assert back.status_code == 422 and back.json()["error"]["param"] == "frozen_time"


def test_a_pdf_without_a_japanese_font_is_refused_naming_the_package(engine: Engine, client: TestClient,
                                                                     tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    assert api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10}).status_code == 200
    number = api.call("GET", "/v1/customers/acme/invoices").json()["data"][0]["number"]
    conf = tmp_path / "fonts.conf"
    conf.write_text("<?xml version='1.0'?>\n<fontconfig></fontconfig>\n", encoding="utf-8")
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))  # a fontconfig that knows no fonts at all
    r = api.call("GET", f"/v1/invoices/{number}/document.pdf")
    assert r.status_code == 503 and r.json()["error"]["code"] == "fonts_missing"
    assert "fonts-noto-cjk" in r.json()["error"]["message"]
    assert api.call("GET", f"/v1/invoices/{number}/document").status_code == 200  # the JSON document still answers


ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}$"


def test_a_test_clock_answers_in_the_offset_asked_and_otherwise_in_the_tenants_zone(engine: Engine,
                                                                                    client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    created = api.call("POST", "/v1/test_clocks", {"name": "jst", "frozen_time": "2024-01-31T10:00:00+09:00"}).json()
    assert created["frozen_time"] == "2024-01-31T10:00:00+09:00"
    assert api.call("GET", f"/v1/test_clocks/{created['id']}").json()["frozen_time"] == "2024-01-31T10:00:00+09:00"
    utc = api.call("POST", "/v1/test_clocks", {"name": "utc", "frozen_time": "2024-01-31T01:00:00Z"}).json()
    assert utc["frozen_time"] == "2024-01-31T01:00:00+00:00"  # as asked
    moved = api.call("POST", f"/v1/test_clocks/{utc['id']}/advance", {"frozen_time": "2024-02-01T01:00:00Z"}).json()
    assert moved["frozen_time"] == "2024-02-01T01:00:00+00:00"
    assert api.call("GET", f"/v1/test_clocks/{utc['id']}").json()["frozen_time"] == "2024-02-01T10:00:00+09:00"  # tenant's zone


def test_instants_in_responses_and_the_audit_log_are_iso_8601_with_the_tenants_offset(engine: Engine,
                                                                                      client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    entries = api.call("GET", "/v1/audit_log?limit=100").json()["data"]
    keys = api.call("GET", "/v1/api_keys").json()["data"]
    instants = [e["at"] for e in entries] + [k["created_at"] for k in keys]
    assert instants and all(re.match(ISO_INSTANT, t) and t.endswith("+09:00") for t in instants), instants


def test_the_audit_log_shows_who_changed_what(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10})
    log = api.call("GET", "/v1/audit_log?limit=100").json()["data"]
    entry = next(e for e in log if e["action"] == "subscription.subscribe")
    assert entry["actor"] == "key:owner key"
    assert entry["before"]["plan"] == "free" and entry["after"]["plan"] == "gold"


def test_the_catalog_shows_monthly_and_annual_prices_side_by_side(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "lineworks", "lineworks"))
    plans = {p["code"]: p for p in api.call("GET", "/v1/catalog").json()["plans"]}
    assert {c: plans["basic"]["prices"][c]["unit_amount"] for c in ("annual", "monthly")} == {"annual": 500, "monthly": 600}
    assert [p for p in plans] == ["lite", "basic", "premium"]


def test_inputs_found_by_fuzzing_get_clean_answers(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    api.customer("acme", "株式会社アクメ")
    import base64

    huge = base64.urlsafe_b64encode(b"id:99999999999999999999").decode().rstrip("=")
    for path in ("/v1/customers", "/v1/invoices", "/v1/audit_log"):
        r = api.call("GET", f"{path}?cursor={huge}")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor", path
    for path in ("/v1/customers/a%00b", "/v1/invoices/a%00b/document", "/v1/customers/a%00b/entitlements"):
        r = api.call("GET", path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    r = api.as_admin("POST", "/v1/customers/acme/subscription", "acme", {"plan": "gold", "seats": 10.0})
    assert r.status_code == 200 and r.json()["subscription"]["seats"] == 10  # 10.0 is an integer in JSON
    r = api.as_admin("POST", "/v1/customers/acme/subscription/seats", "acme", {"seats": 10.5})
    assert r.status_code == 422 and r.json()["error"]["param"] == "seats"
