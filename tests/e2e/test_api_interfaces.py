"""The API as a newcomer meets it: invoice lists, error statuses, documented headers, vendors, documents, audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_api import Api, Clock

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
REGISTRATION = "T1040001000003"  # 1 = 9 − (Σ Pn × Qn mod 9) for 040001000003: a valid check digit


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 5, 3, 10, tzinfo=JST))


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(engine, CardSimulator(), clock)) as c:
        yield c


def tenant_key(engine: Engine, code: str, catalog: str, role: str = "owner") -> str:
    with UnitOfWork(engine) as uow:
        row = uow.tenant(code) or create_tenant(uow, code, code, catalog, datetime(2026, 1, 1, tzinfo=JST)).row
        return create_api_key(uow, row, role, f"{role} key", datetime(2026, 1, 1, tzinfo=JST))


def gold_customer(api: Api, cid: str = "acme", seats: int = 10) -> None:
    api.customer(cid, "株式会社アクメ")
    r = api.as_admin("POST", f"/v1/customers/{cid}/subscription", cid, {"plan": "gold", "seats": seats})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ invoice lists (item 12)
def test_the_invoice_list_shows_each_invoice_with_the_lines_its_detail_shows(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api, "acme", 10)
    gold_customer(api, "beta", 20)
    listed = api.call("GET", "/v1/invoices?limit=1").json()
    assert listed["next_cursor"] is not None
    rest = api.call("GET", f"/v1/invoices?cursor={listed['next_cursor']}").json()
    invoices = listed["data"] + rest["data"]
    assert [i["customer"] for i in invoices] == ["acme", "beta"]
    for invoice in invoices:
        assert invoice == api.call("GET", f"/v1/invoices/{invoice['number']}").json()
    assert [ln["amount"] for ln in invoices[1]["lines"]] == [3600]  # 180 × 20 seats


# ------------------------------------------------------------------ statuses by class (item 15)
def test_refusals_about_an_invoices_state_answer_409(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)
    [invoice] = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    assert invoice["status"] == "paid"
    r = api.call("POST", f"/v1/invoices/{invoice['number']}/mark_paid", {})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invoice_not_open")
    api.customer("beta", "ベータ合同会社")
    assert api.call("POST", "/v1/customers/beta/collection", {"collection": "bank_transfer"}).status_code == 200
    r = api.as_admin("POST", "/v1/customers/beta/subscription", "beta", {"plan": "gold", "seats": 5})
    [open_invoice] = api.call("GET", "/v1/customers/beta/invoices").json()["data"]
    assert open_invoice["status"] == "open", r.text  # payable by bank transfer until its due date
    r = api.call("GET", f"/v1/invoices/{open_invoice['number']}/receipt")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invoice_not_paid")


# ------------------------------------------------------------------ vendors can be edited (item 10)
def test_an_owner_sets_the_vendors_registration_number_and_address(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    assert api.call("GET", "/v1/tenant").json()["registration_number"] is None
    r = api.call("PATCH", "/v1/tenant", {"registration_number": REGISTRATION, "address": "東京都港区芝公園4-2-8"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["registration_number"], r.json()["qualified_invoices"]) == ("nipoplus", REGISTRATION, True)
    log = api.call("GET", "/v1/audit_log?limit=100").json()["data"]
    [entry] = [e for e in log if e["action"] == "tenant.updated"]
    assert (entry["before"]["registration_number"], entry["after"]["registration_number"]) == (None, REGISTRATION)
    assert api.call("PATCH", "/v1/tenant", {"registration_number": REGISTRATION}).status_code == 200  # changes nothing
    assert [e["action"] for e in api.call("GET", "/v1/audit_log?limit=100").json()["data"]].count("tenant.updated") == 1


def test_a_registration_number_with_a_wrong_check_digit_is_refused_and_changes_nothing(engine: Engine,
                                                                                      client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    r = api.call("PATCH", "/v1/tenant", {"name": "NipoPlus株式会社", "registration_number": "T8040001000003"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["param"]) == (
        422, "invalid_registration_number", "registration_number")
    assert api.call("GET", "/v1/tenant").json()["name"] == "nipoplus"


def test_only_an_owner_key_may_edit_the_vendor(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus", role="billing_admin"))
    r = api.call("PATCH", "/v1/tenant", {"name": "other"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "role_forbidden")


# ------------------------------------------------------------------ a finalized invoice never changes (item 4)
def test_a_later_billing_profile_or_vendor_change_leaves_earlier_documents_as_they_were(
        engine: Engine, client: TestClient, clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)
    [first] = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    before = {path: api.call("GET", f"/v1/invoices/{first['number']}/{path}").json() for path in ("document", "receipt")}
    note = api.call("POST", f"/v1/invoices/{first['number']}/credit_notes", {"amount": 180, "reason": "値引き"}).json()
    note_before = api.call("GET", f"/v1/credit_notes/{note['number']}/document").json()
    assert before["document"]["recipient"]["name"] == "株式会社アクメ"
    assert api.as_admin("POST", "/v1/customers/acme/billing_profile", "acme",
                        {"addressee": "株式会社アクメ 経理部", "postal_code": "1050011", "address": "東京都港区芝公園"}).status_code == 200
    for change in ("billing profile", "vendor"):
        for path, doc in before.items():
            assert api.call("GET", f"/v1/invoices/{first['number']}/{path}").json() == doc, (change, path)
        assert api.call("GET", f"/v1/credit_notes/{note['number']}/document").json() == note_before, change
        if change == "billing profile":
            r = api.call("PATCH", "/v1/tenant", {"name": "NipoPlus株式会社", "registration_number": REGISTRATION})
            assert r.status_code == 200, r.text
    clock.now = datetime(2026, 6, 3, 10, tzinfo=JST)  # the renewal is finalized with the new parties
    assert api.as_admin("POST", "/v1/customers/acme/subscription/seats", "acme", {"seats": 11}).status_code == 200
    renewal = api.call("GET", "/v1/customers/acme/invoices").json()["data"][1]
    later = api.call("GET", f"/v1/invoices/{renewal['number']}/document").json()
    assert later["recipient"] == {"name": "株式会社アクメ 経理部", "postal_code": "105-0011", "address": "東京都港区芝公園"}
    assert (later["issuer"]["name"], later["issuer"]["registration_number"]) == ("NipoPlus株式会社", REGISTRATION)


# ------------------------------------------------------------------ audit records (item 14)
def test_an_audit_record_names_the_customer_and_the_acting_member(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)
    log = api.call("GET", "/v1/audit_log?limit=100").json()["data"]
    entry = next(e for e in log if e["action"] == "subscription.subscribe")
    assert (entry["actor"], entry["member"], entry["customer"]) == ("key:owner key", api.super_admin["acme"], "acme")
    r = api.as_admin("POST", "/v1/customers/acme/members", "acme", {"email": "it@acme.example", "name": "情シス", "role": "admin"})
    assert r.status_code == 201, r.text
    log = api.call("GET", "/v1/audit_log?limit=100").json()["data"]
    [added] = [e for e in log if e["action"] == "member.added"]
    assert (added["member"], added["customer"], added["after"]["email"]) == (api.super_admin["acme"], "acme", "it@acme.example")


def test_a_second_cancel_changes_nothing_and_writes_no_audit_record(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)
    first = api.as_admin("POST", "/v1/customers/acme/subscription/cancel", "acme")
    second = api.as_admin("POST", "/v1/customers/acme/subscription/cancel", "acme")
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    actions = [e["action"] for e in api.call("GET", "/v1/audit_log?limit=100").json()["data"]]
    assert actions.count("subscription.cancel") == 1


# ------------------------------------------------------------------ OpenAPI and offline docs (item 13)
ACTING = [("post", "/v1/customers/{customer_id}/subscription"), ("post", "/v1/customers/{customer_id}/subscription/seats"),
          ("post", "/v1/customers/{customer_id}/subscription/users"), ("post", "/v1/customers/{customer_id}/subscription/plan"),
          ("post", "/v1/customers/{customer_id}/subscription/cancel"), ("post", "/v1/customers/{customer_id}/payment_method"),
          ("post", "/v1/customers/{customer_id}/premium_id"), ("post", "/v1/customers/{customer_id}/members"),
          ("post", "/v1/customers/{customer_id}/domains"), ("post", "/v1/customers/{customer_id}/domains/{domain}/verify"),
          ("delete", "/v1/customers/{customer_id}"), ("post", "/v1/customers/{customer_id}/eligibility_applications"),
          ("post", "/v1/customers/{customer_id}/domains/{domain}/primary"), ("delete", "/v1/customers/{customer_id}/domains/{domain}"),
          ("delete", "/v1/customers/{customer_id}/members/{member_id}"),
          ("post", "/v1/customers/{customer_id}/account_name"), ("post", "/v1/customers/{customer_id}/verification_request"),
          ("post", "/v1/customers/{customer_id}/billing_profile")]


def test_every_operation_that_needs_an_acting_member_declares_the_header(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in ACTING:
        headers = [p["name"] for p in paths[path][method].get("parameters", []) if p["in"] == "header"]
        assert headers == ["Kakin-Acting-Member"], (method, path)
    declaring = {(m, p) for p, ops in paths.items() for m, op in ops.items()
                 if any(x["name"] == "Kakin-Acting-Member" for x in op.get("parameters", []))}
    assert declaring == set(ACTING)


def test_the_docs_pages_load_their_assets_from_kakin_itself(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/") for a in assets), (page, assets)
        assert "http" not in " ".join(re.findall(r"<(?:script|link)[^>]*>", html)), page
        for asset in assets:
            r = client.get(asset)
            assert r.status_code == 200 and len(r.content) > 100, asset
