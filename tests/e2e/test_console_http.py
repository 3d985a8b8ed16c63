"""The operator console over plain HTTP, on SQLite and PostgreSQL: sign-in through the form, the lockout, CSRF,
role refusals (nothing changes), tenant isolation, and the pages' content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services import due_run, operators
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

START = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)  # 10:00 JST
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Console:
    """Two NipoPlus tenants: ``nipoplus`` with acme (GOLD, 10 seats, one paid invoice) and an operator of each role
    (``<role>@nipoplus.example``); ``rival`` with its own customer and owner ``owner@rival.example``."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.clock, self.gateway = engine, Clock(START), CardSimulator()
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", START)
            self.key = create_api_key(uow, tenant.row, "owner", "test", START)
            for role in ("owner", "billing_admin", "reviewer", "viewer"):
                operators.create_operator(uow, tenant.row, f"{role}@nipoplus.example", role, START, PASSWORD)
            rival = create_tenant(uow, "rival", "Rival", "nipoplus", START)
            self.rival_key = create_api_key(uow, rival.row, "owner", "test", START)
            operators.create_operator(uow, rival.row, "owner@rival.example", "owner", START, PASSWORD)
        self.client = TestClient(create_app(engine, self.gateway, clock=self.clock), base_url="http://testserver")
        for key, cid in ((self.key, "acme"), (self.rival_key, "zeta")):
            r = self.api("POST", "/v1/customers", {"id": cid, "name": f"{cid} 株式会社", "payment_method": "pm_card_visa",
                                                   "super_admin": {"email": f"admin@{cid}.example", "name": "山田 花子"}},
                         key=key)
            assert r.status_code == 201, r.text
            r = self.api("POST", f"/v1/customers/{cid}/subscription", {"plan": "gold", "seats": 10}, key=key,
                         member=r.json()["super_admin"]["id"])
            assert r.status_code == 200, r.text
        self.rival_invoice = self.api("GET", "/v1/invoices", key=self.rival_key).json()["data"][0]["number"]
        self.invoice = self.api("GET", "/v1/invoices").json()["data"][0]["number"]

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None, member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        return self.client.request(method, path, json=body, headers=headers)

    def token(self, path: str = "/console/login") -> str:
        page = self.client.get(path)
        found = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def sign_in(self, email: str, password: str = PASSWORD) -> Any:
        return self.client.post("/console/login", data={"email": email, "password": password,
                                                        "csrftoken": self.token()}, follow_redirects=False)

    def post(self, path: str, data: dict[str, str] | None = None, page: str = "/console/") -> Any:
        return self.client.post(path, data={**(data or {}), "csrftoken": self.token(page)}, follow_redirects=False)


@pytest.fixture
def console(engine: Engine) -> Iterator[Console]:
    c = Console(engine)
    with c.client:
        yield c


def test_an_operator_signs_in_through_the_form_and_sees_the_dashboard(console: Console) -> None:
    r = console.sign_in("owner@nipoplus.example")
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cookie = r.headers["set-cookie"]
    assert "kakin_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = console.client.get("/console/")
    assert page.status_code == 200 and "ダッシュボード" in page.text and "owner@nipoplus.example" in page.text


def test_every_page_answers_for_a_viewer(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    for path in ("/console/", "/console/customers", "/console/customers/acme", "/console/invoices", "/console/dunning",
                 "/console/catalog", "/console/webhooks", "/console/settings"):
        r = console.client.get(path)
        assert r.status_code == 200, (path, r.text[-2000:])
        assert "<button type=\"submit\">" not in r.text.split("</header>", 1)[1] or path in (
            "/console/customers", "/console/invoices"), path  # a viewer sees only the search buttons


def test_a_wrong_password_is_401_without_saying_whether_the_email_exists(console: Console) -> None:
    wrong = console.sign_in("owner@nipoplus.example", "not the password")
    unknown = console.sign_in("nobody@nipoplus.example", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません" in wrong.text
    assert re.sub(r'value="[^"]*"', "", wrong.text) == re.sub(r'value="[^"]*"', "", unknown.text)
    assert "kakin_console" not in wrong.headers.get("set-cookie", "")
    assert console.client.get("/console/", follow_redirects=False).headers["location"] == "/console/login"


def test_five_wrong_passwords_lock_the_operator_for_fifteen_minutes_even_with_the_right_one(console: Console) -> None:
    for _ in range(4):
        assert console.sign_in("billing_admin@nipoplus.example", "guess guess guess").status_code == 401
    fifth = console.sign_in("billing_admin@nipoplus.example", "guess guess guess")
    assert fifth.status_code == 429 and fifth.headers["retry-after"] == "900"  # 15 min × 60 s
    right = console.sign_in("billing_admin@nipoplus.example")
    assert right.status_code == 429 and "15分後" in right.text
    console.clock.now = START + timedelta(minutes=15, seconds=1)
    assert console.sign_in("billing_admin@nipoplus.example").status_code == 303
    locked = [r for r in console.api("GET", "/v1/audit_log").json()["data"] if r["action"] == "operator.locked"]
    assert [r["after"]["email"] for r in locked] == ["billing_admin@nipoplus.example"]


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(console: Console) -> None:
    console.sign_in("billing_admin@nipoplus.example")
    r = console.client.post("/console/customers/acme/collection", data={"collection": "bank_transfer"})
    assert r.status_code == 403
    assert "bank_transfer" not in console.client.get("/console/customers/acme").text.split('id="collection"')[1][:80]
    assert not [a for a in console.api("GET", "/v1/audit_log").json()["data"] if a["action"] == "customer.collection"]
    assert console.client.post("/console/login", data={"email": "owner@nipoplus.example", "password": PASSWORD}
                               ).status_code == 403  # the sign-in form too


def test_a_viewer_sees_no_action_button_and_a_forged_post_is_refused_with_nothing_changed(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    page = console.client.get("/console/customers/acme").text
    assert "/collection" not in page and "/mark_paid" not in page and "/credit_notes\"" not in page
    forged = console.post("/console/customers/acme/collection", {"collection": "bank_transfer"})
    assert forged.status_code == 403 and "role_forbidden" in forged.text and "あなたの役割では行えません" in forged.text
    forged = console.post(f"/console/invoices/{console.invoice}/credit_notes", {"amount": "100", "reason": "x"})
    assert forged.status_code == 403
    assert console.api("GET", "/v1/customers/acme").json()["credit"] == 0
    assert not [a for a in console.api("GET", "/v1/audit_log").json()["data"]
                if a["action"] in ("customer.collection", "invoice.credit_note")]


def test_a_reviewer_may_review_but_not_switch_a_customer_to_bank_transfer(console: Console) -> None:
    console.sign_in("reviewer@nipoplus.example")
    assert console.client.get("/console/review").status_code == 200
    assert console.post("/console/customers/acme/collection", {"collection": "bank_transfer"}).status_code == 403
    done = console.post("/console/customers/acme/verified_account", {"next": "/console/customers/acme"})
    assert done.status_code == 303 and done.headers["location"] == "/console/customers/acme?done=verified"
    (record,) = [a for a in console.api("GET", "/v1/audit_log").json()["data"] if a["action"] == "customer.verified"]
    assert record["actor"] == "operator:reviewer@nipoplus.example"


def test_a_billing_admin_switches_to_bank_transfer_under_its_own_name_in_the_audit_log(console: Console) -> None:
    console.sign_in("billing_admin@nipoplus.example")
    r = console.post("/console/customers/acme/collection", {"collection": "bank_transfer",
                                                            "next": "/console/customers/acme"})
    assert r.status_code == 303
    assert "請求書払い" in console.client.get("/console/customers/acme").text.split('id="collection"')[1][:80]
    (record,) = [a for a in console.api("GET", "/v1/audit_log").json()["data"] if a["action"] == "customer.collection"]
    assert record["actor"] == "operator:billing_admin@nipoplus.example"
    assert console.client.get("/console/review").status_code == 403  # no review permission


def test_an_operator_of_another_tenant_gets_404_for_this_tenants_customer_and_invoice(console: Console) -> None:
    console.sign_in("owner@rival.example")
    assert console.client.get("/console/customers/acme").status_code == 404
    assert console.client.get(f"/console/invoices/{console.invoice}/document.pdf").status_code == 404
    assert console.client.get("/console/customers/zeta").status_code == 200
    r = console.post(f"/console/invoices/{console.invoice}/credit_notes", {"amount": "100", "reason": "x"})
    assert r.status_code == 404
    assert console.api("GET", "/v1/customers/acme").json()["credit"] == 0


def test_sign_out_everywhere_ends_the_operators_other_sessions(console: Console) -> None:
    console.sign_in("owner@nipoplus.example")
    other = TestClient(console.client.app, base_url="http://testserver")
    page = other.get("/console/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert other.post("/console/login", data={"email": "owner@nipoplus.example", "password": PASSWORD,
                                               "csrftoken": token}, follow_redirects=False).status_code == 303
    assert other.get("/console/", follow_redirects=False).status_code == 200
    assert console.post("/console/sign_out_everywhere").headers["location"] == "/console/login"
    assert other.get("/console/", follow_redirects=False).status_code == 303  # back to the sign-in form
    assert console.client.get("/console/", follow_redirects=False).status_code == 303


def test_a_disabled_operator_cannot_sign_in_and_its_session_ends(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    with UnitOfWork(console.engine) as uow:
        tenant = uow.tenant("nipoplus")
        assert tenant is not None
        operators.disable_operator(uow, tenant, "viewer@nipoplus.example", START)
    assert console.client.get("/console/", follow_redirects=False).status_code == 303
    assert console.sign_in("viewer@nipoplus.example").status_code == 401


def test_a_session_idle_for_more_than_thirty_minutes_ends(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    console.clock.now = START + timedelta(minutes=29)
    assert console.client.get("/console/", follow_redirects=False).status_code == 200
    console.clock.now = START + timedelta(minutes=59, seconds=1)  # 30 min after the last request
    assert console.client.get("/console/", follow_redirects=False).status_code == 303


def test_a_wrong_registration_number_is_shown_next_to_its_field_with_what_was_typed(console: Console) -> None:
    console.sign_in("owner@nipoplus.example")
    r = console.post("/console/settings", {"name": "NipoPlus株式会社", "registration_number": "T1000012050002",
                                           "address": "東京都千代田区1-1"}, page="/console/settings")
    assert r.status_code == 422
    assert 'id="error-registration_number"' in r.text and "チェックディジット" in r.text
    assert 'value="T1000012050002"' in r.text and 'value="NipoPlus株式会社"' in r.text
    assert console.api("GET", "/v1/tenant").json()["name"] == "NipoPlus"  # nothing changed
    ok = console.post("/console/settings", {"name": "NipoPlus株式会社", "registration_number": "T7000012050002",
                                            "address": "東京都千代田区1-1"}, page="/console/settings")
    assert ok.status_code == 303
    assert console.api("GET", "/v1/tenant").json()["registration_number"] == "T7000012050002"


def test_a_billing_admin_may_not_change_the_issuer(console: Console) -> None:
    console.sign_in("billing_admin@nipoplus.example")
    assert 'id="settings-form"' not in console.client.get("/console/settings").text
    r = console.post("/console/settings", {"name": "X", "registration_number": "", "address": ""},
                     page="/console/settings")
    assert r.status_code == 403
    assert console.api("GET", "/v1/tenant").json()["name"] == "NipoPlus"


def test_the_language_switch_shows_the_pages_in_english(console: Console) -> None:
    console.sign_in("owner@nipoplus.example")
    r = console.post("/console/locale", {"locale": "en", "next": "/console/catalog"}, page="/console/catalog")
    assert r.headers["location"] == "/console/catalog"
    page = console.client.get("/console/catalog").text
    assert "Price page" in page and "GOLD" in page and "料金ページ" not in page


def test_the_customer_search_finds_by_name_and_member_email_and_filters_by_plan(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    found = console.client.get("/console/customers", params={"q": "admin@acme.example"}).text
    assert 'href="/console/customers/acme"' in found
    assert "No customer" not in found and "該当する顧客はありません" not in found
    none = console.client.get("/console/customers", params={"q": "zeta"}).text  # another tenant's customer
    assert "該当する顧客はありません" in none
    assert console.client.get("/console/customers", params={"plan": "nope"}).status_code == 422


def test_the_invoice_search_combines_dates_and_amounts_and_exports_csv(console: Console) -> None:
    console.sign_in("viewer@nipoplus.example")
    hit = console.client.get("/console/invoices", params={"issued_from": "2026-05-01", "issued_to": "2026-05-31",
                                                           "amount_min": "1800", "amount_max": "1800"}).text
    assert console.invoice in hit  # 180 yen × 10 seats = 1,800, issued 2026-05-03
    miss = console.client.get("/console/invoices", params={"issued_from": "2026-05-01", "amount_min": "1801"}).text
    assert console.invoice not in miss
    csv = console.client.get("/console/invoices.csv", params={"counterparty": "acme"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith("\ufeff".encode()) and console.invoice in csv.text
    bad = console.client.get("/console/invoices", params={"amount_min": "abc"})
    assert bad.status_code == 422 and "invalid_value" in bad.text


def test_the_dashboard_charts_are_svg_drawn_by_kakin_and_no_page_loads_anything_from_elsewhere(console: Console) -> None:
    console.sign_in("owner@nipoplus.example")
    page = console.client.get("/console/").text
    assert "<svg" in page and "<script" not in page
    assert re.findall(r'(?:src|href)="(https?:)?//', page) == []
    css = console.client.get("/console/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_a_bank_transfer_customers_open_invoice_offers_no_card_retry_and_a_forged_one_is_refused(console: Console) -> None:
    console.sign_in("billing_admin@nipoplus.example")
    assert console.post("/console/customers/acme/collection", {"collection": "bank_transfer"}).status_code == 303
    # the June renewal: an invoice payable by transfer until its due date
    due_run.run_due(lambda: UnitOfWork(console.engine), "nipoplus", console.gateway, START + timedelta(days=31))
    console.clock.now = START + timedelta(days=31)
    console.sign_in("billing_admin@nipoplus.example")  # the earlier session ended: idle for a month
    (open_invoice,) = [i for i in console.api("GET", "/v1/invoices").json()["data"] if i["status"] == "open"]
    page = console.client.get("/console/customers/acme").text
    row = page.split(f'id="invoice-{open_invoice["number"]}"')[1].split("</tr>")[0]
    assert "/mark_paid" in row and "/retry" not in row  # record the transfer, never charge a card
    charged = len(console.gateway.charged)
    refused = console.post(f"/console/invoices/{open_invoice['number']}/retry", page="/console/customers/acme")
    assert refused.status_code == 409 and "record the transfer" in refused.text
    assert console.api("GET", f"/v1/invoices/{open_invoice['number']}").json()["status"] == "open"
    assert len(console.gateway.charged) == charged
    assert not [a for a in console.api("GET", "/v1/audit_log").json()["data"] if a["action"] == "invoice.retry_now"]
