"""LINE OA: once verification or the local-government plan is applied for, the account name and the premium ID are
fixed (409 account_name_locked), through the API as through the portal (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.domain import errors
from kakin.services import access, eligibility
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

START = datetime(2026, 5, 13, 1, 0, tzinfo=UTC)  # Wednesday 10:00 JST


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class LineOA:
    """A LINE OA tenant with one account, 横浜市, on the communication plan with a card."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", START)
            self.key = create_api_key(uow, tenant.row, "owner", "test", START)
            self.reviewer = create_api_key(uow, tenant.row, "reviewer", "review", START)
        self.clock = Clock(START)
        self.client = TestClient(create_app(engine, CardSimulator(), clock=self.clock))
        r = self.api("POST", "/v1/customers", {"id": "yokohama", "name": "横浜しみん", "payment_method": "pm_card_visa",
                                                "super_admin": {"email": "koho@city.yokohama.lg.jp", "name": "港 太郎"}})
        assert r.status_code == 201, r.text
        self.admin = r.json()["super_admin"]["id"]
        assert r.json()["subscription"]["plan"] == "communication"  # where every account starts

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None, member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        return self.client.request(method, path, json=body, headers=headers)

    def rename(self, name: str) -> Any:
        return self.api("POST", "/v1/customers/yokohama/account_name", {"name": name}, member=self.admin)

    def name(self) -> str:
        return str(self.api("GET", "/v1/customers/yokohama").json()["name"])


@pytest.fixture
def oa(engine: Engine) -> Iterator[LineOA]:
    yield LineOA(engine)


def test_the_super_admin_renames_the_account_while_nothing_was_applied_for(oa: LineOA) -> None:
    r = oa.rename("横浜市")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "横浜市", "verification": "unverified", "applied": False, "locked": False}
    assert oa.name() == "横浜市"
    assert oa.api("GET", "/v1/audit_log").json()["data"][-1]["action"] == "customer.renamed"


def test_renaming_needs_the_super_admin(oa: LineOA) -> None:
    r = oa.api("POST", "/v1/customers/yokohama/account_name", {"name": "横浜市"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"
    assert oa.name() == "横浜しみん"


def test_after_applying_for_verification_the_name_and_the_premium_id_are_locked(oa: LineOA) -> None:
    r = oa.api("POST", "/v1/customers/yokohama/verification_request", member=oa.admin)
    assert r.status_code == 200 and r.json()["verification"] == "requested" and r.json()["locked"] is True
    r = oa.rename("横浜市")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "account_name_locked" and r.json()["error"]["param"] == "name"
    assert oa.name() == "横浜しみん"  # unchanged
    r = oa.api("POST", "/v1/customers/yokohama/premium_id", {"premium_id": "@yokohama"}, member=oa.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_name_locked"
    assert r.json()["error"]["param"] == "premium_id"
    assert oa.api("GET", "/v1/customers/yokohama").json()["addons"] == []


def test_a_verified_account_cannot_be_renamed(oa: LineOA) -> None:
    assert oa.api("POST", "/v1/customers/yokohama/verified_account", key=oa.reviewer).status_code == 200
    assert oa.rename("横浜市").json()["error"]["code"] == "account_name_locked"


def test_after_applying_for_the_local_government_plan_the_name_is_locked_even_when_refused(oa: LineOA) -> None:
    r = oa.api("POST", "/v1/customers/yokohama/eligibility_applications",
               {"plan": "local_government", "local_government_code": "141003", "applicant_email": "koho@city.yokohama.lg.jp"},
               member=oa.admin)
    assert r.status_code == 201 and r.json()["status"] == "refused"  # not verified, not named 横浜市
    r = oa.rename("横浜市")
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_name_locked"


def test_an_application_without_a_local_government_is_refused_and_records_nothing(oa: LineOA) -> None:
    with UnitOfWork(oa.engine) as uow:
        tenant = uow.tenant("line-oa")
        assert tenant is not None
        principal = access.portal_principal(tenant, "yokohama", oa.admin)
        with pytest.raises(errors.InvalidValue) as refused:
            eligibility.apply(uow, principal, "yokohama", "local_government", "", "koho@city.yokohama.lg.jp", False,
                              oa.clock)
    assert refused.value.param == "local_government_code"
    assert oa.api("GET", "/v1/customers/yokohama/eligibility_applications").json()["data"] == []
