"""Applying for the LINE OA local-government plan and reviewing it, through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import run_once
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")


class World:
    def __init__(self, engine: Engine) -> None:
        self.now = datetime(2026, 11, 16, 10, tzinfo=JST)  # a Monday
        self.gateway = CardSimulator()
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", self.now)
            self.keys = {role: create_api_key(uow, tenant.row, role, role, self.now)
                         for role in ("owner", "billing_admin", "reviewer")}
        self.client = TestClient(create_app(engine, self.gateway, lambda: self.now))
        self.admins: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, role: str = "owner", member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        if member:
            headers["Kakin-Acting-Member"] = self.admins[member]
        return self.client.request(method, path, json=body, headers=headers)

    def customer(self, cid: str, name: str) -> None:
        r = self.call("POST", "/v1/customers", {"id": cid, "name": name, "payment_method": "pm_card_visa",
                                                "super_admin": {"email": f"admin@{cid}.example", "name": "管理者"}})
        assert r.status_code == 201, r.text
        self.admins[cid] = r.json()["super_admin"]["id"]

    def apply(self, cid: str, code: str, email: str, **extra: Any) -> Any:
        body = {"plan": "local_government", "local_government_code": code, "applicant_email": email, **extra}
        return self.call("POST", f"/v1/customers/{cid}/eligibility_applications", body, member=cid)


def outbox(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT kind, to_address, body FROM outbox ORDER BY id"))]


def test_a_verified_city_applies_is_approved_and_moves_to_the_plan_when_its_paid_month_ends(engine: Engine) -> None:
    w = World(engine)
    with w.client:
        w.customer("yokohama", "横浜市")
        assert w.call("POST", "/v1/customers/yokohama/subscription", {"plan": "standard"}, member="yokohama").status_code == 200
        r = w.call("POST", "/v1/customers/yokohama/subscription", {"plan": "local_government"}, member="yokohama")
        assert r.status_code == 403 and r.json()["error"]["code"] == "eligibility_required"
        assert w.call("POST", "/v1/customers/yokohama/verified_account", role="billing_admin").status_code == 403
        assert w.call("POST", "/v1/customers/yokohama/verified_account", role="reviewer").status_code == 200

        r = w.apply("yokohama", "141003", "koho@city.yokohama.lg.jp")
        assert r.status_code == 201, r.text
        application = r.json()
        assert application["status"] == "pending" and "reasons" not in application
        [queued] = w.call("GET", "/v1/eligibility_applications?status=pending", role="reviewer").json()["data"]
        assert queued["local_government"] == "神奈川県横浜市" and queued["reasons"] == []
        assert queued["review_due"] == "2026-11-24" and not queued["overdue"] and not queued["email_needs_review"]
        r = w.apply("yokohama", "141003", "koho@city.yokohama.lg.jp")  # one application at a time
        assert r.status_code == 409 and r.json()["error"]["code"] == "application_pending"

        path = f"/v1/eligibility_applications/{application['id']}/approve"
        assert w.call("POST", path, role="billing_admin").json()["error"]["code"] == "role_forbidden"
        w.now = datetime(2026, 11, 25, 10, tzinfo=JST)
        overdue = w.call("GET", "/v1/eligibility_applications", role="reviewer").json()["data"][0]
        assert overdue["overdue"]  # past its five business days
        r = w.call("POST", path, role="reviewer")
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
        view = w.call("GET", "/v1/customers/yokohama").json()
        assert view["subscription"]["plan"] == "standard"  # the paid month runs to its end
        assert view["subscription"]["pending_change"]["plan"] == "local_government"
        assert view["subscription"]["pending_change"]["effective_on"] == "2026-12-01"
        assert w.call("POST", path, role="reviewer").json()["error"]["code"] == "application_decided"

        w.now = datetime(2026, 12, 1, 1, tzinfo=JST)
        run_once(engine, w.gateway, w.now)
        view = w.call("GET", "/v1/customers/yokohama").json()
        assert view["subscription"]["plan"] == "local_government"
        assert view["subscription"]["display_plan"] == "standard"  # shown as standard, billed nothing
        totals = [i["total"] for i in w.call("GET", "/v1/customers/yokohama/invoices").json()["data"]]
        assert totals == [16500]  # November's standard fee only: from December nothing is billed
        kinds = [k for k, to, _ in outbox(engine) if to == "koho@city.yokohama.lg.jp"]
        assert kinds == ["eligibility.received", "eligibility.approved"]


def test_a_refusal_is_explained_to_operators_only_and_the_applicant_may_apply_again(engine: Engine) -> None:
    w = World(engine)
    with w.client:
        w.customer("sapporo-chuo", "札幌市中央区")
        w.customer("fuchu", "府中市")
        r = w.apply("sapporo-chuo", "011011", "a@city.sapporo.lg.jp")  # a designated city's ward: refused at once
        assert r.status_code == 201 and r.json()["status"] == "refused"
        r = w.apply("fuchu", "132063", "b@example.com", via_agency=True)  # not verified, and through an agency
        assert r.status_code == 201 and r.json()["status"] == "refused"
        queue = w.call("GET", "/v1/eligibility_applications?status=refused", role="reviewer").json()["data"]
        assert [[x["check"] for x in a["reasons"]] for a in queue] == [["local_government", "verified"], ["verified", "agency"]]
        mine = w.call("GET", "/v1/customers/fuchu/eligibility_applications").json()["data"]
        assert [a["status"] for a in mine] == ["refused"] and "reasons" not in mine[0]
        refused_mail = [body for kind, to, body in outbox(engine) if to == "b@example.com"]
        assert len(refused_mail) == 1 and "agency" not in refused_mail[0] and "代理" not in refused_mail[0]

        w.call("POST", "/v1/customers/fuchu/verified_account", role="reviewer")
        r = w.apply("fuchu", "132063", "b@example.com")  # again, verified, by itself: waits for a reviewer
        assert r.status_code == 201 and r.json()["status"] == "pending"
        [pending] = w.call("GET", "/v1/eligibility_applications?status=pending", role="reviewer").json()["data"]
        assert pending["email_needs_review"]  # not an lg.jp address: the reviewer checks the applicant
        refuse = f"/v1/eligibility_applications/{pending['id']}/refuse"
        assert w.call("POST", refuse, {"reason": " "}, role="reviewer").status_code == 422
        r = w.call("POST", refuse, {"reason": "申請者が府中市の職員であることを確認できない"}, role="reviewer")
        assert r.status_code == 200 and r.json()["reasons"][-1]["check"] == "review"
        bodies = [body for kind, to, body in outbox(engine) if kind == "eligibility.refused"]
        assert all("職員" not in body for body in bodies)  # the reviewer's reason never reaches the applicant
        view = w.call("GET", "/v1/customers/fuchu").json()
        assert view["subscription"]["plan"] == "communication"


def test_one_account_per_local_government(engine: Engine) -> None:
    w = World(engine)
    with w.client:
        for cid, name in (("shinjuku", "新宿区"), ("shinjuku-office", "新宿区役所")):
            w.customer(cid, name)
            w.call("POST", f"/v1/customers/{cid}/verified_account", role="reviewer")
        first = w.apply("shinjuku", "131041", "a@city.shinjuku.lg.jp").json()
        assert first["status"] == "pending"
        w.call("POST", f"/v1/eligibility_applications/{first['id']}/approve", role="reviewer")
        assert w.call("GET", "/v1/customers/shinjuku").json()["subscription"]["plan"] == "local_government"  # at once
        second = w.apply("shinjuku-office", "131041", "b@city.shinjuku.lg.jp").json()
        assert second["status"] == "refused"  # the plan does not move to another account of the same ward
