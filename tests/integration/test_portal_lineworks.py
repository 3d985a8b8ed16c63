"""The portal's LINE WORKS procedures over plain HTTP, on SQLite and PostgreSQL: 決済方法の管理, 商品の契約/変更,
基本設定 > ドメイン and members; every action through the services as the session's member, every refusal shown in
the page's language next to its field, CSRF on every form, another customer's things 404."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.dns import TxtResolver
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
START = datetime(2026, 4, 1, 10, tzinfo=JST)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Works:
    """A LINE WORKS tenant: sakura (members sign in as id@sakura-kogyo; lite monthly in its 30-day trial, 5 users, no
    card; super admin 山田 and admin 佐藤) and ume (lite, card on file unless a gateway other than the simulator is
    given)."""

    def __init__(self, engine: Engine, nameserver: str, gateway: Any = None) -> None:
        self.engine, self.clock = engine, Clock(START)
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, "lineworks", "LINE WORKS", "lineworks", START)
            self.key = create_api_key(uow, tenant.row, "owner", "test", START)
        self.client = TestClient(create_app(engine, gateway or CardSimulator(), clock=self.clock,
                                            dns=TxtResolver(nameserver, timeout=1.0)))
        self.boss: dict[str, str] = {}
        for cid, group, card in (("sakura", "sakura-kogyo", None), ("ume", "ume-group", None if gateway else "pm_card_visa")):
            r = self.api("POST", "/v1/customers", {"id": cid, "name": f"{cid}工業", "users": 5, "sign_in_group": group,
                                                   "payment_method": card,
                                                   "super_admin": {"email": f"boss@{cid}.example", "name": "山田 花子"}})
            assert r.status_code == 201, r.text
            self.boss[cid] = r.json()["super_admin"]["id"]
            r = self.api("POST", f"/v1/customers/{cid}/subscription", {"plan": "lite", "contract": "monthly"}, member=self.boss[cid])
            assert r.status_code == 200, r.text
        r = self.api("POST", "/v1/customers/sakura/members", {"email": "sato@sakura.example", "name": "佐藤 次郎",
                                                              "role": "admin"}, member=self.boss["sakura"])
        assert r.status_code == 201, r.text
        self.admin = r.json()["id"]

    def api(self, method: str, path: str, body: Any = None, *, member: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if member:
            headers["Kakin-Acting-Member"] = member
        return self.client.request(method, path, json=body, headers=headers)

    def sign_in(self, member: str | None = None, cid: str = "sakura", locale: str = "ja") -> None:
        r = self.api("POST", "/v1/portal_sessions", {"customer": cid, "member": member or self.boss[cid], "locale": locale,
                                                      "return_url": "https://works.example/admin"})
        assert r.status_code == 201, r.text
        assert self.client.get(r.json()["url"].removeprefix("http://testserver"), follow_redirects=False).status_code == 303

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> Any:
        self.client.get("/portal/")  # the CSRF cookie
        token = {"csrftoken": self.client.cookies.get("csrftoken") or ""} if csrf else {}
        return self.client.post(path, data={**data, **token}, follow_redirects=False)

    def customer(self, cid: str = "sakura") -> dict[str, Any]:
        return self.api("GET", f"/v1/customers/{cid}").json()  # type: ignore[no-any-return]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", html)


@pytest.fixture
def works(engine: Engine, dns_zone: Any) -> Works:
    return Works(engine, dns_zone.nameserver)


# ------------------------------------------------------------------ 決済方法の管理 and the form plumbing
def test_the_payment_page_offers_the_simulators_test_cards_when_no_card_is_registered(works: Works) -> None:
    works.sign_in()
    page = text_of(works.client.get("/portal/payment").text)
    assert "決済方法の管理" in page and "カードは登録されていません。" in page
    assert '<option value="pm_card_visa" >Visa •••• 4242 — 決済成功</option>' in page
    assert "Visa •••• 0002 — 拒否（card_declined）" in page and "3Dセキュア認証が必要" in page


def test_registering_a_card_redirects_with_a_flash_and_shows_only_its_brand_and_last_four_digits(works: Works) -> None:
    works.sign_in()
    r = works.post("/portal/payment", {"payment_method": "pm_card_jcb"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/payment?flash=payment_method_saved"
    page = text_of(works.client.get(r.headers["location"]).text)
    assert "決済方法を保存しました。" in page
    assert '<p id="card-on-file"><span class="brand">JCB</span> •••• <span class="last4">0505</span></p>' in page
    assert works.customer()["has_payment_method"] is True


def test_an_unknown_card_is_refused_next_to_its_field_in_the_pages_language_and_changes_nothing(works: Works) -> None:
    works.sign_in(locale="en")
    r = works.post("/portal/payment", {"payment_method": "pm_made_up"})
    assert r.status_code == 422
    page = text_of(r.text)
    assert ('<p class="error" id="error-payment_method" role="alert" data-code="payment_method_unknown">This card cannot '
            'be used. Enter the card again or use another one. <span class="code">(payment_method_unknown)</span></p>') in page
    assert works.customer()["has_payment_method"] is False


def test_an_admin_who_is_not_the_super_admin_sees_no_card_form_and_a_forged_post_is_refused(works: Works) -> None:
    works.sign_in(works.admin)
    page = works.client.get("/portal/payment").text
    assert 'id="payment-form"' not in page and "決済方法の変更は最高管理者のみが実施できます。" in page
    r = works.post("/portal/payment", {"payment_method": "pm_card_visa"})
    assert r.status_code == 403
    assert 'data-code="super_admin_required">この操作は最高管理者のみが実施できます。' in r.text
    assert works.customer()["has_payment_method"] is False


def test_a_card_form_posted_without_the_csrf_token_is_403_and_registers_nothing(works: Works) -> None:
    works.sign_in()
    r = works.post("/portal/payment", {"payment_method": "pm_card_visa"}, csrf=False)
    assert r.status_code == 403
    assert works.customer()["has_payment_method"] is False


def test_with_stripe_configured_the_card_entry_is_stripe_elements_loaded_from_js_stripe_com(
        engine: Engine, dns_zone: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kakin.adapters.stripe_gateway import StripeGateway

    monkeypatch.setenv("KAKIN_STRIPE_PUBLISHABLE_KEY", "pk_test_kakin")
    works = Works(engine, dns_zone.nameserver, gateway=StripeGateway("sk_test_kakin", api_base="http://127.0.0.1:9"))
    works.sign_in()  # sakura has no card yet: the page asks Stripe nothing
    page = works.client.get("/portal/payment").text
    assert '<div id="card-element" class="stripe-element" data-publishable-key="pk_test_kakin" data-locale="ja"></div>' in page
    assert '<script src="https://js.stripe.com/v3/"></script>' in page
    assert '<input type="hidden" name="payment_method" id="payment-method" value="">' in page
    assert "<select" not in page  # no test cards: only a PaymentMethod id from Stripe.js reaches kakin
