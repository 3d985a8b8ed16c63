"""The customer portal over plain HTTP, on SQLite and PostgreSQL: sessions, refusals, CSRF, the pages' content."""

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
from kakin.services import portal
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

START = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)  # 10:00 JST


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Portal:
    """A NipoPlus tenant with two customers (acme: GOLD, 10 seats, one invoice; other: GOLD, 5 seats)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch, trust_proxy: bool = False) -> None:
        if trust_proxy:
            monkeypatch.setenv("KAKIN_TRUST_PROXY", "1")
        self.engine, self.clock = engine, Clock(START)
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", START)
            self.key = create_api_key(uow, tenant.row, "owner", "test", START)
            self.viewer = create_api_key(uow, tenant.row, "viewer", "test", START)
        self.client = TestClient(create_app(engine, CardSimulator(), clock=self.clock))
        self.admin: dict[str, str] = {}
        for cid, seats in (("acme", 10), ("other", 5)):
            r = self.api("POST", "/v1/customers", {"id": cid, "name": f"{cid} 株式会社", "payment_method": "pm_card_visa",
                                                   "super_admin": {"email": f"admin@{cid}.example", "name": "山田 花子"}})
            assert r.status_code == 201, r.text
            self.admin[cid] = r.json()["super_admin"]["id"]
            r = self.api("POST", f"/v1/customers/{cid}/subscription", {"plan": "gold", "seats": seats},
                         member=self.admin[cid])
            assert r.status_code == 200, r.text

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None, member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        return self.client.request(method, path, json=body, headers=headers)

    def link(self, cid: str = "acme", locale: str = "ja") -> str:
        r = self.api("POST", "/v1/portal_sessions", {"customer": cid, "member": self.admin[cid], "locale": locale,
                                                      "return_url": "https://app.example/settings"})
        assert r.status_code == 201, r.text
        return str(r.json()["url"]).removeprefix("http://testserver")

    def open(self, cid: str = "acme", locale: str = "ja") -> Any:
        return self.client.get(self.link(cid, locale), follow_redirects=False)


@pytest.fixture
def site(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Portal]:
    yield Portal(engine, monkeypatch)


def test_a_portal_session_is_a_one_time_link_under_portal_valid_five_minutes(site: Portal) -> None:
    r = site.api("POST", "/v1/portal_sessions", {"customer": "acme", "member": site.admin["acme"], "locale": "en",
                                                  "return_url": "https://app.example/settings"})
    assert r.status_code == 201
    assert re.fullmatch(r"http://testserver/portal/open/[A-Za-z0-9_-]{43}", r.json()["url"])
    assert r.json()["expires_at"] == "2026-05-03T10:05:00+09:00"  # 10:00 JST + 5 minutes


def test_a_member_of_another_customer_gets_no_portal_session(site: Portal) -> None:
    r = site.api("POST", "/v1/portal_sessions", {"customer": "acme", "member": site.admin["other"], "locale": "ja",
                                                  "return_url": "https://app.example/"})
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "member"


def test_a_read_only_key_cannot_open_portal_sessions(site: Portal) -> None:
    r = site.api("POST", "/v1/portal_sessions", {"customer": "acme", "member": site.admin["acme"], "locale": "ja",
                                                  "return_url": "https://app.example/"}, key=site.viewer)
    assert r.status_code == 403


def test_the_link_opens_a_session_whose_cookie_is_httponly_and_samesite_lax(site: Portal) -> None:
    r = site.open()
    assert r.status_code == 303 and r.headers["location"] == "/portal/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("kakin_portal=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP, no trusted proxy


def test_the_cookie_is_secure_behind_a_trusted_proxy_that_says_https(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Portal(engine, monkeypatch, trust_proxy=True)
    r = site.client.get(site.link(), follow_redirects=False, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in r.headers["set-cookie"]


def test_a_used_link_is_refused(site: Portal) -> None:
    link = site.link()
    assert site.client.get(link, follow_redirects=False).status_code == 303
    r = site.client.get(link, follow_redirects=False)
    assert r.status_code == 401
    assert "使用済み" in r.text


def test_a_link_older_than_five_minutes_is_refused(site: Portal) -> None:
    link = site.link()
    site.clock.now = START + timedelta(minutes=5)
    assert site.client.get(link, follow_redirects=False).status_code == 401


def test_a_session_idle_for_more_than_thirty_minutes_ends(site: Portal) -> None:
    site.open()
    site.clock.now = START + timedelta(minutes=30)
    assert site.client.get("/portal/").status_code == 200  # 30 minutes idle: still open, and the clock restarts
    site.clock.now = START + timedelta(minutes=60, seconds=1)
    assert site.client.get("/portal/").status_code == 401
    site.clock.now = START + timedelta(minutes=61)
    assert site.client.get("/portal/").status_code == 401  # ended for good


def test_revoking_a_customers_sessions_signs_its_members_out(site: Portal) -> None:
    site.open()
    unused = site.link()
    with UnitOfWork(site.engine) as uow:
        row = uow.customer_row(uow.tenant("nipoplus"), "acme")  # type: ignore[arg-type]
        assert row is not None
        assert portal.revoke_customer_sessions(uow, row["id"], START) == 2  # the open session and the unused link
    assert site.client.get("/portal/").status_code == 401
    assert site.client.get(unused, follow_redirects=False).status_code == 401


def test_the_overview_shows_plan_seats_and_the_next_invoice_in_japanese(site: Portal) -> None:
    site.open()
    page = site.client.get("/portal/").text
    assert 'id="plan">GOLD PLAN<' in page
    assert 'id="seats">10 名<' in page
    assert 'id="next-date">2026年6月3日<' in page
    assert 'id="next-amount" class="amount">￥1,800<' in page  # 180 yen × 10 seats, tax included
    assert "株式会社アクメ" not in page and "acme 株式会社" in page and "山田 花子" in page and "最高管理者" in page


def test_the_upcoming_invoice_is_what_the_next_renewal_bills(site: Portal) -> None:
    r = site.api("GET", "/v1/customers/acme/upcoming_invoice")
    assert r.status_code == 200
    upcoming = r.json()["upcoming_invoice"]
    assert upcoming["issued_on"] == "2026-06-03"
    assert upcoming["total"] == 1800  # 180 × 10 seats, tax included
    assert upcoming["tax"] == 163  # floor(1800 × 10/110)


def test_the_language_switch_is_a_csrf_protected_post_that_keeps_the_page(site: Portal) -> None:
    site.open()
    site.client.get("/portal/members")
    token = site.client.cookies.get("csrftoken")
    r = site.client.post("/portal/locale", data={"csrftoken": token, "locale": "en", "next": "/portal/members"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/members"
    page = site.client.get("/portal/").text
    assert '<html lang="en">' in page and 'id="next-amount" class="amount">¥1,800<' in page and "Super admin" in page


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(site: Portal) -> None:
    site.open()
    site.client.get("/portal/")
    assert site.client.post("/portal/sign_out").status_code == 403
    assert site.client.post("/portal/locale", data={"locale": "en"}).status_code == 403
    page = site.client.get("/portal/")
    assert page.status_code == 200 and '<html lang="ja">' in page.text  # still signed in, still Japanese


def test_signing_out_ends_the_session_and_returns_to_the_vendor(site: Portal) -> None:
    site.open()
    site.client.get("/portal/")
    r = site.client.post("/portal/sign_out", data={"csrftoken": site.client.cookies.get("csrftoken")},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "https://app.example/settings"
    assert site.client.get("/portal/").status_code == 401


def test_another_customers_invoice_document_is_404(site: Portal) -> None:
    theirs = site.api("GET", "/v1/customers/other/invoices").json()["data"][0]["number"]
    site.open()
    assert site.client.get(f"/portal/invoices/{theirs}/document.pdf").status_code == 404
    assert site.client.get(f"/portal/invoices/{theirs}/receipt.pdf").status_code == 404
    page = site.client.get("/portal/invoices").text
    assert theirs not in page


def test_the_billing_history_lists_the_customers_invoices_with_pdf_links(site: Portal) -> None:
    mine = site.api("GET", "/v1/customers/acme/invoices").json()["data"][0]
    site.open()
    page = site.client.get("/portal/invoices").text
    assert f'href="/portal/invoices/{mine["number"]}/document.pdf"' in page
    assert f'href="/portal/invoices/{mine["number"]}/receipt.pdf"' in page  # paid at sign-up
    assert "￥1,800" in page and "支払済み" in page  # 180 × 10


def test_without_a_session_the_pages_are_401(site: Portal) -> None:
    assert site.client.get("/portal/").status_code == 401
    assert site.client.get("/portal/invoices").status_code == 401


def test_a_line_oa_customer_sees_this_months_messages_used_of_included_as_a_bar(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", START)
        key = create_api_key(uow, tenant.row, "owner", "test", START)
    client = TestClient(create_app(engine, CardSimulator(), clock=Clock(START)))
    auth = {"Authorization": f"Bearer {key}"}
    r = client.post("/v1/customers", headers=auth, json={"id": "shop", "name": "青葉ベーカリー", "payment_method": "pm_card_visa",
                                                         "super_admin": {"email": "shop@aoba.example", "name": "青葉"}})
    admin = r.json()["super_admin"]["id"]
    assert client.post("/v1/customers/shop/subscription", headers={**auth, "Kakin-Acting-Member": admin},
                       json={"plan": "light"}).status_code == 200
    assert client.post("/v1/customers/shop/usage/messages/consume", headers=auth, json={"count": 1250}).status_code == 200
    r = client.post("/v1/portal_sessions", headers=auth, json={"customer": "shop", "member": admin, "locale": "ja",
                                                               "return_url": "https://oa.example/"})
    client.get(r.json()["url"].removeprefix("http://testserver"))
    page = client.get("/portal/").text
    assert "今月のメッセージ通数" in page
    assert 'aria-valuemax="5000" aria-valuenow="1250"><span style="width: 25%">' in page  # 1,250 × 100 ÷ 5,000
    assert "5,000 通中 1,250 通を送信済み" in page


@pytest.mark.parametrize("url", ["http://[", "http://example.com:port/", "javascript://x/%0Aalert(1)", "ftp://example.com/"])
def test_a_return_url_that_is_not_an_http_url_is_refused_with_422(site: Portal, url: str) -> None:
    r = site.api("POST", "/v1/portal_sessions", {"customer": "acme", "member": site.admin["acme"], "return_url": url})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "return_url"


def test_a_downgrade_on_the_first_shows_as_a_scheduled_change(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", START)
        key = create_api_key(uow, tenant.row, "owner", "test", START)
    client = TestClient(create_app(engine, CardSimulator(), clock=Clock(START)))
    auth = {"Authorization": f"Bearer {key}"}
    r = client.post("/v1/customers", headers=auth, json={"id": "shop", "name": "青葉ベーカリー", "payment_method": "pm_card_visa",
                                                         "super_admin": {"email": "shop@aoba.example", "name": "青葉"}})
    acting = {**auth, "Kakin-Acting-Member": r.json()["super_admin"]["id"]}
    assert client.post("/v1/customers/shop/subscription", headers=acting, json={"plan": "standard"}).status_code == 200
    assert client.post("/v1/customers/shop/subscription/plan", headers=acting, json={"plan": "light"}).status_code == 200
    r = client.post("/v1/portal_sessions", headers=auth, json={"customer": "shop", "member": r.json()["super_admin"]["id"],
                                                               "return_url": "https://oa.example/"})
    client.get(r.json()["url"].removeprefix("http://testserver"))
    page = re.sub(r"\s+", " ", client.get("/portal/").text)
    assert "予定されている変更" in page
    assert '<p id="pending">2026年6月1日: プランが ライトプラン に変わります </p>' in page
    assert 'id="next-amount" class="amount">￥5,500<' in page  # light's 5,000 yen on June 1st + 10% tax


def test_the_customers_credit_notes_are_listed_and_another_customers_are_404(site: Portal) -> None:
    mine = site.api("GET", "/v1/customers/acme/invoices").json()["data"][0]["number"]
    theirs = site.api("GET", "/v1/customers/other/invoices").json()["data"][0]["number"]
    mine_note = site.api("POST", f"/v1/invoices/{mine}/credit_notes", {"amount": 180, "reason": "一名分の返金"}).json()
    their_note = site.api("POST", f"/v1/invoices/{theirs}/credit_notes", {"amount": 180, "reason": "一名分の返金"}).json()
    site.open()
    page = site.client.get("/portal/invoices").text
    assert f'href="/portal/credit_notes/{mine_note["number"]}/document.pdf"' in page
    assert their_note["number"] not in page
    assert site.client.get(f"/portal/credit_notes/{their_note['number']}/document.pdf").status_code == 404
