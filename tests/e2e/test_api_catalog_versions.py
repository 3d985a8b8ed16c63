"""Catalog versions through the API: publishing (owner only), the versions list, the price page of the version in
force or of version N, and the version on each invoice line (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_api import Api, Clock
from test_api_interfaces import gold_customer, tenant_key

from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import run_once

JST = ZoneInfo("Asia/Tokyo")
CATALOGS = Path(__file__).resolve().parents[1] / "scenarios" / "catalogs"


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 5, 3, 10, tzinfo=JST))


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(engine, CardSimulator(), clock)) as c:
        yield c


def version_body(file: str, **extra: object) -> dict[str, object]:
    return {"content": (CATALOGS / file).read_text(encoding="utf-8"), "source": file,
            "effective": "2026-06-01T00:00:00+09:00", "existing": "next_period", **extra}


def test_only_an_owner_publishes_a_catalog_version(engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    admin = tenant_key(engine, "nipoplus", "nipoplus", role="billing_admin")
    refused = api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold-200.toml"), key=admin)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_forbidden"
    r = api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold-200.toml"))
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["changes"]) == (2, ["~ plans.gold.prices.monthly.unit_amount: 180 → 200"])


def test_the_price_page_shows_the_version_in_force_and_any_version_asked_for(engine: Engine, client: TestClient,
                                                                               clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    assert api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold-200.toml")).status_code == 201

    def gold(page: dict) -> int:  # type: ignore[type-arg]
        return next(p for p in page["plans"] if p["code"] == "gold")["prices"]["monthly"]["unit_amount"]  # type: ignore[no-any-return]

    page = api.call("GET", "/v1/catalog").json()
    assert (page["version"], gold(page)) == (1, 180)  # May 3: version 2 takes effect on Jun 1
    clock.now = datetime(2026, 6, 1, tzinfo=JST)
    page = api.call("GET", "/v1/catalog").json()
    assert (page["version"], gold(page)) == (2, 200)
    assert gold(api.call("GET", "/v1/catalog?version=1").json()) == 180
    missing = api.call("GET", "/v1/catalog?version=9")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "version"
    listed = api.call("GET", "/v1/catalog/versions").json()["data"]
    assert [(v["version"], v["existing"], v["effective_at"], v["in_force"]) for v in listed] == [
        (1, "next_period", "2026-01-01T00:00:00+09:00", False), (2, "next_period", "2026-06-01T00:00:00+09:00", True)]


def test_a_publish_dropping_a_plan_with_subscribers_is_409_and_a_dry_run_publishes_nothing(
        engine: Engine, client: TestClient) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)
    refused = api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold2-unmoved.toml"))
    assert refused.status_code == 409
    assert {k: refused.json()["error"][k] for k in ("code", "param", "plans")} == {
        "code": "plan_has_subscribers", "param": "plan_moves", "plans": {"gold": 1}}
    dry = api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold2-moved.toml", dry_run=True))
    assert dry.status_code == 200 and dry.json()["dry_run"] is True and dry.json()["subscribers"] == {"gold": 1}
    assert [v["version"] for v in api.call("GET", "/v1/catalog/versions").json()["data"]] == [1]


def test_each_invoice_line_shows_the_catalog_version_that_priced_it(engine: Engine, client: TestClient,
                                                                    clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)  # May 3: 10 × 180 at version 1
    assert api.call("POST", "/v1/catalog/versions", version_body("nipoplus-gold-200.toml")).status_code == 201
    clock.now = datetime(2026, 6, 3, 12, tzinfo=JST)
    run_once(engine, CardSimulator(), clock.now + timedelta(seconds=1))
    invoices = api.call("GET", "/v1/customers/acme/invoices").json()["data"]
    # Jun 3 is the first renewal after Jun 1: 10 × 200 at version 2
    assert [(i["total"], [(ln["amount"], ln["catalog_version"]) for ln in i["lines"]]) for i in invoices] == [
        (1800, [(1800, 1)]), (2000, [(2000, 2)])]


def test_a_customer_on_a_plan_the_version_in_force_dropped_is_shown_the_plan_it_moves_to(
        engine: Engine, client: TestClient, clock: Clock) -> None:
    api = Api(client, tenant_key(engine, "nipoplus", "nipoplus"))
    gold_customer(api)  # anchor May 3
    body = version_body("nipoplus-gold2-moved.toml", effective="2026-05-20T00:00:00+09:00")
    assert api.call("POST", "/v1/catalog/versions", body).status_code == 201
    clock.now = datetime(2026, 5, 25, tzinfo=JST)  # version 2 in force; acme moves at its Jun 3 renewal
    shown = api.call("GET", "/v1/customers/acme")
    assert shown.status_code == 200, shown.text
    sub = shown.json()["subscription"]
    assert (sub["plan"], sub["display_plan"], sub["catalog_version"]) == ("gold", "gold2", 1)
