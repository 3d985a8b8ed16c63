"""The API as a newcomer meets it: invoice lists, error statuses, documented headers, vendors, documents, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
REGISTRATION = "T8040001000003"  # 8 = 9 − (Σ Pn × Qn mod 9) for 040001000003: a valid check digit


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Api:
    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.key = client, key
        self.super_admin: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, *, member: str | None = None, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        return self.client.request(method, path, json=body, headers=headers)

    def customer(self, cid: str, name: str, pm: str | None = "pm_card_visa") -> dict[str, Any]:
        r = self.call("POST", "/v1/customers", {"id": cid, "name": name, "payment_method": pm,
                                                "super_admin": {"email": f"admin@{cid}.example", "name": "管理者"}})
        assert r.status_code == 201, r.text
        self.super_admin[cid] = r.json()["super_admin"]["id"]
        return r.json()  # type: ignore[no-any-return]

    def as_admin(self, method: str, path: str, cid: str, body: Any = None) -> Any:
        return self.call(method, path, body, member=self.super_admin[cid])


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
