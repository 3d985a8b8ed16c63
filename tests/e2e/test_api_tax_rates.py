"""Two tax rates through the REST API: the price page says each price's rate, an invoice gives tax per rate."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
CATALOG = Path(__file__).resolve().parent.parent / "catalogs" / "gyokai-nippo.toml"


def test_a_reduced_rate_price_is_shown_and_invoiced_at_its_own_rate(engine: Engine) -> None:
    now = datetime(2025, 4, 10, 9, tzinfo=JST)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nippo", "業界日報株式会社", str(CATALOG), now)
        key = create_api_key(uow, tenant.row, "owner", "owner", now)
    client = TestClient(create_app(engine, CardSimulator(), lambda: now))

    def call(method: str, path: str, body: Any = None, member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key}", **({"Kakin-Acting-Member": member} if member else {})}
        return client.request(method, path, json=body, headers=headers)

    with client:
        plans = {p["code"]: p for p in call("GET", "/v1/catalog").json()["plans"]}
        assert plans["print"]["prices"]["monthly"]["tax_rate"] == "8%"
        assert plans["print"]["usage"]["messages"]["tax_rate"] == "10%"
        r = call("POST", "/v1/customers", {"id": "desk", "name": "株式会社素材商事", "payment_method": "pm_card_visa",
                                           "super_admin": {"email": "admin@desk.example", "name": "管理者"}})
        assert r.status_code == 201, r.text
        admin = r.json()["super_admin"]["id"]
        r = call("POST", "/v1/customers/desk/subscription", {"plan": "print", "seats": 3}, member=admin)
        assert r.status_code == 200, r.text
        (invoice,) = call("GET", "/v1/customers/desk/invoices").json()["data"]
    # 4,400 × 3 = 13,200 at 8%: tax 13,200 × 8 ÷ 100 = 1,056, total 14,256
    assert invoice["taxes"] == [{"rate": "8%", "total": 13200, "tax": 1056, "reduced": True}]
    assert [ln["tax_rate"] for ln in invoice["lines"]] == ["8%"]
    assert (invoice["tax"], invoice["total"]) == (1056, 14256)
