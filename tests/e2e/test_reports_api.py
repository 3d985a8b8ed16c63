"""The reports over HTTP: /v1/dashboard, /v1/search/customers, /v1/documents and /v1/documents.csv (read permission)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services import billing
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGN_UP = datetime(2026, 5, 3, 10, tzinfo=JST)
LATER = datetime(2026, 5, 20, 12, tzinfo=JST)


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """NipoPlus: acme (株式会社アクメ, gold 10 users → 1,800 on May 3) and beta (ベータ, gold 5 → 900 on May 4);
    another tenant with its own acme and invoice. Keys: a viewer of each tenant."""
    gateway = CardSimulator()
    keys = {}
    with UnitOfWork(engine) as uow:
        for code in ("t", "u"):
            tenant = create_tenant(uow, code, code, "nipoplus", SIGN_UP)
            billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", SIGN_UP, payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, "acme", SIGN_UP, "gold", seats=10)
            keys[code] = create_api_key(uow, tenant.row, "viewer", "console", SIGN_UP)
    with UnitOfWork(engine) as uow:
        t = open_tenant(uow, "t")
        billing.create_customer(uow, t, gateway, "beta", "ベータ", SIGN_UP, payment_method="pm_card_visa")
        billing.subscribe(uow, t, gateway, "beta", datetime(2026, 5, 4, 10, tzinfo=JST), "gold", seats=5)
    test_client = TestClient(create_app(engine, gateway, clock=lambda: LATER))
    test_client.headers["Authorization"] = f"Bearer {keys['t']}"
    test_client.other_key = keys["u"]  # type: ignore[attr-defined]
    return test_client


def test_the_dashboard_answers_the_services_figures_for_the_tenants_date(client: TestClient) -> None:
    board = client.get("/v1/dashboard").json()
    assert board["today"] == "2026-05-20"  # the clock, in the tenant's zone
    assert board["mrr"] == 2454  # (1,800 + 900) ÷ 1.1 = 2,454.54… → 2,454
    assert board["arr"] == 29448  # 12 × 2,454
    assert board["active_by_plan"] == {"gold": 2}
    assert board["new_this_month"] == 2
    # 1,800 − floor(1,800 × 10 ÷ 110) = 1,637; 900 − floor(900 × 10 ÷ 110) = 819 → 2,456
    assert board["invoiced_by_month"][-1] == {"month": "2026-05", "amount": 2456}
    assert len(board["invoiced_by_month"]) == 12 and board["invoiced_by_month"][0]["month"] == "2025-06"
    assert client.get("/v1/dashboard", params={"today": "2026-06-01"}).json()["invoiced_by_month"][-2:] == [
        {"month": "2026-05", "amount": 2456}, {"month": "2026-06", "amount": 0}]


def test_customers_are_searched_and_paged_over_http(client: TestClient) -> None:
    r = client.get("/v1/search/customers", params={"text": "アクメ"})
    assert r.status_code == 200
    assert [(c["id"], c["plan"], c["status"]) for c in r.json()["data"]] == [("acme", "gold", "active")]
    first = client.get("/v1/search/customers", params={"plan": "gold", "limit": 1}).json()
    assert [c["id"] for c in first["data"]] == ["acme"] and first["next_cursor"]
    rest = client.get("/v1/search/customers", params={"plan": "gold", "limit": 1, "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["data"]] == ["beta"]


def test_documents_are_searched_over_http_and_exported_as_csv(client: TestClient) -> None:
    r = client.get("/v1/documents", params={"amount_max": 1000, "issued_from": "2026-05-01", "counterparty": "ベータ"})
    assert r.status_code == 200
    assert [(d["kind"], d["customer"], d["issued_on"], d["total"], d["tax"], d["status"]) for d in r.json()["data"]] == [
        ("invoice", "beta", "2026-05-04", 900, 81, "paid")]  # floor(900 × 10 ÷ 110) = 81
    csv = client.get("/v1/documents.csv", params={"issued_to": "2026-05-31"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.content.startswith(b"\xef\xbb\xbfnumber,kind,issued_on,counterparty,customer,total,tax,status\r\n")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert [line.split(",")[4] for line in lines[1:]] == ["beta", "acme"]  # newest first; the other tenant's acme absent


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/v1/documents", {"issued_from": "2026-06-01", "issued_to": "2026-05-01"}, "issued_to"),
    ("/v1/documents.csv", {"issued_from": "2026-06-01", "issued_to": "2026-05-01"}, "issued_to"),
    ("/v1/documents", {"amount_min": 5, "amount_max": 1}, "amount_max"),
    ("/v1/documents", {"kind": "receipt"}, "kind"),
    ("/v1/search/customers", {"status": "zombie"}, "status"),
])
def test_a_bad_search_is_422_naming_the_field(client: TestClient, path: str, params: dict[str, object], param: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_value" and r.json()["error"]["param"] == param


def test_reports_need_a_key_and_show_only_the_keys_tenant(client: TestClient) -> None:
    assert client.get("/v1/dashboard", headers={"Authorization": ""}).status_code == 401
    other = {"Authorization": f"Bearer {client.other_key}"}  # type: ignore[attr-defined]
    assert client.get("/v1/dashboard", headers=other).json()["active_by_plan"] == {"gold": 1}
    assert [c["id"] for c in client.get("/v1/search/customers", headers=other).json()["data"]] == ["acme"]
    assert [d["customer"] for d in client.get("/v1/documents", headers=other).json()["data"]] == ["acme"]


@pytest.mark.parametrize(("params", "param"), [({"today": "2026-02-30"}, "today"), ({"issued_from": "2026-13-01"}, "issued_from")])
def test_an_impossible_date_is_refused_naming_the_field(client: TestClient, params: dict[str, str], param: str) -> None:
    path = "/v1/dashboard" if "today" in params else "/v1/documents"
    r = client.get(path, params=params)
    assert r.status_code == 422 and r.json()["error"]["param"] == param
