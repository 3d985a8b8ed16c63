"""The portal's NipoPlus 組織設定 over plain HTTP, on SQLite and PostgreSQL: sign-up with the address from the postal
code, the head-count change previewed before it is confirmed, 課金を停止, 支払い情報を復元; refusals shown next to
their field with what was typed kept, roles refused by the services, CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from test_portal import Portal

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork

FORM = {"plan": "gold", "postal_code": "1000001", "address": "", "addressee": "株式会社ニューコ",
        "email": "keiri@newco.example", "seats": "10", "payment_method": "pm_card_visa"}


class Org(Portal):
    """The NipoPlus tenant of test_portal (acme: GOLD, 10 seats since May 3rd; other: 5 seats) and newco, on the free
    plan without a card, with its super admin, an admin and a plain member."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(engine, monkeypatch)
        r = self.api("POST", "/v1/customers", {"id": "newco", "name": "ニューコ", "super_admin": {
            "email": "boss@newco.example", "name": "新 一郎"}})
        assert r.status_code == 201, r.text
        self.admin["newco"] = r.json()["super_admin"]["id"]
        self.role: dict[str, str] = {}
        for role in ("admin", "member"):
            r = self.api("POST", "/v1/customers/newco/members", {"email": f"{role}@newco.example", "name": role,
                                                                 "role": role}, member=self.admin["newco"])
            assert r.status_code == 201, r.text
            self.role[role] = r.json()["id"]

    def sign_in(self, cid: str = "newco", member: str | None = None) -> None:
        r = self.api("POST", "/v1/portal_sessions", {"customer": cid, "member": member or self.admin[cid], "locale": "ja",
                                                      "return_url": "https://app.example/settings"})
        assert r.status_code == 201, r.text
        assert self.client.get(r.json()["url"].removeprefix("http://testserver"), follow_redirects=False).status_code == 303

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> Any:
        self.client.get("/portal/")  # the CSRF cookie
        token = {"csrftoken": self.client.cookies.get("csrftoken") or ""} if csrf else {}
        return self.client.post(path, data={**data, **token}, follow_redirects=False)

    def customer(self, cid: str = "newco") -> dict[str, Any]:
        return self.api("GET", f"/v1/customers/{cid}").json()  # type: ignore[no-any-return]

    def profile(self, cid: str = "newco") -> tuple[Any, ...]:
        c = tables.customers.c
        with UnitOfWork(self.engine, readonly=True) as uow:
            return tuple(uow.conn.execute(select(c.addressee, c.postal_code, c.address, c.billing_email, c.payment_method)
                                          .where(c.key == cid)).one())


@pytest.fixture
def org(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    yield Org(engine, monkeypatch)


def flat(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def test_the_postal_code_endpoint_gives_the_address_of_a_session_and_refuses_a_wrong_code(org: Org) -> None:
    assert org.client.get("/portal/postal/1000001").status_code == 401  # no session
    org.sign_in()
    r = org.client.get("/portal/postal/1000001")
    assert r.status_code == 200 and r.json() == {"postal_code": "100-0001", "address": "東京都千代田区千代田"}
    r = org.client.get("/portal/postal/9999999")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_postal_code"
    assert org.client.get("/portal/postal/12345").json()["error"]["param"] == "postal_code"


def test_the_sign_up_form_has_the_seeds_fields_for_the_super_admin(org: Org) -> None:
    org.sign_in()
    page = org.client.get("/portal/organization").text
    assert "自動更新有りで申し込み" in page and "1名 ￥180／月（税込）、5名〜999名" in page
    page = org.client.get("/portal/organization?apply=1").text
    for field in ("postal_code", "address", "addressee", "email", "seats", "payment_method"):
        assert f'name="{field}"' in page
    assert "申込み開始" in page and "/portal/static/postal.js" in page


def test_signing_up_fills_the_address_from_the_postal_code_and_starts_gold(org: Org) -> None:
    org.sign_in()
    r = org.post("/portal/organization/sign_up", FORM)
    assert r.status_code == 303 and r.headers["location"] == "/portal/organization?flash=signed_up"
    assert org.profile() == ("株式会社ニューコ", "100-0001", "東京都千代田区千代田", "keiri@newco.example", "pm_card_visa")
    sub = org.customer()["subscription"]
    assert (sub["plan"], sub["seats"], sub["status"]) == ("gold", 10, "active")
    assert org.api("GET", "/v1/customers/newco/invoices").json()["data"][0]["total"] == 1800  # 180 × 10, tax included
    page = flat(org.client.get(r.headers["location"]).text)
    assert "有料プランのご利用を開始しました。" in page
    assert 'id="next-date">2026年6月3日<' in page and 'id="next-amount" class="amount">￥1,800<' in page
    assert "〒100-0001 東京都千代田区千代田" in page


def test_a_typed_address_is_kept_as_typed(org: Org) -> None:
    org.sign_in()
    assert org.post("/portal/organization/sign_up", {**FORM, "address": "東京都千代田区千代田1-1 皇居ビル3F"}).status_code == 303
    assert org.profile()[2] == "東京都千代田区千代田1-1 皇居ビル3F"


def test_a_wrong_postal_code_is_shown_next_to_its_field_with_what_was_typed_and_changes_nothing(org: Org) -> None:
    org.sign_in()
    r = org.post("/portal/organization/sign_up", {**FORM, "postal_code": "9999999", "addressee": "ニューコ経理部"})
    assert r.status_code == 422
    page = r.text
    assert 'id="error-postal_code" role="alert" data-code="invalid_postal_code"' in page
    assert "郵便番号7桁を入力してください" in page
    assert 'value="9999999"' in page and 'value="ニューコ経理部"' in page and 'value="keiri@newco.example"' in page
    assert org.profile() == (None, None, None, None, None)  # nothing written, no card
    assert org.customer()["subscription"]["plan"] == "free"


@pytest.mark.parametrize("seats", ["4", "1000"])
def test_seats_outside_five_to_999_are_refused_next_to_the_field_and_change_nothing(org: Org, seats: str) -> None:
    org.sign_in()
    r = org.post("/portal/organization/sign_up", {**FORM, "seats": seats})
    assert r.status_code == 422
    assert 'id="error-seats" role="alert" data-code="seats_out_of_range"' in r.text
    assert f'name="seats" min="5" max="999" value="{seats}"' in r.text
    assert org.profile() == (None, None, None, None, None)
    assert org.customer()["subscription"]["plan"] == "free"


def test_a_head_count_change_is_previewed_then_confirmed_as_the_seed_computes_it(org: Org) -> None:
    org.clock.now = datetime(2026, 6, 20, 1, tzinfo=UTC)  # June 20th: 13 days to July 3rd
    org.sign_in("acme")
    page = flat(org.client.get("/portal/organization?seats=20").text)
    assert 'id="preview-seats">10 名 → 20 名<' in page
    assert 'id="preview-next">￥1,800 → <span class="amount">￥4,380</span>' in page  # 780 + 3,600
    assert 'id="preview-change" class="amount">￥2,580<' in page  # 4,380 − 1,800
    assert "180 × 13 ÷ 30 × 10 = 780" in page
    assert org.customer("acme")["subscription"]["seats"] == 10  # a preview changes nothing
    r = org.post("/portal/organization/seats", {"seats": "20"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/organization?flash=seats_changed"
    assert org.customer("acme")["subscription"]["seats"] == 20
    assert org.api("GET", "/v1/customers/acme/upcoming_invoice").json()["upcoming_invoice"]["total"] == 4380


def test_a_decrease_previews_what_it_takes_from_the_next_payment(org: Org) -> None:
    org.clock.now = datetime(2026, 6, 20, 1, tzinfo=UTC)
    org.sign_in("acme")
    page = flat(org.client.get("/portal/organization?seats=5").text)
    assert "次回のお支払いから相殺" in page
    assert 'id="preview-change" class="amount">￥1,290<' in page  # 1,800 − (900 − 390): 180 × 13 ÷ 30 × 5 = 390 credited


def test_a_head_count_outside_the_range_is_refused_in_the_preview_with_what_was_typed(org: Org) -> None:
    org.sign_in("acme")
    r = org.client.get("/portal/organization?seats=1000")
    assert r.status_code == 422
    assert 'id="error-seats" role="alert" data-code="seats_out_of_range"' in r.text and 'value="1000"' in r.text


def test_stopping_billing_is_confirmed_first_and_says_the_paid_days_become_a_free_trial(org: Org) -> None:
    org.sign_in("acme")
    page = flat(org.client.get("/portal/organization?confirm=cancel").text)
    assert "お支払い済みの残り期間（2026年6月3日 まで）は無料お試し期間となり、その後は無料プランになります。" in page
    assert org.customer("acme")["subscription"]["pending_change"] is None  # asking changes nothing
    r = org.post("/portal/organization/cancel", {})
    assert r.status_code == 303 and r.headers["location"] == "/portal/organization?flash=billing_stopped"
    sub = org.customer("acme")["subscription"]
    assert sub["pending_change"]["cancel"] is True and sub["status"] == "trialing"
    page = flat(org.client.get("/portal/organization").text)
    assert 'id="stopped"' in page and "課金を停止" in page and 'id="stop-billing"' not in page


def test_restoring_payment_settles_a_sign_up_that_waited_for_3d_secure(org: Org) -> None:
    org.sign_in()
    assert org.post("/portal/organization/sign_up", {**FORM, "payment_method": "pm_card_authenticationRequired"}
                    ).status_code == 303
    assert org.customer()["subscription"]["status"] == "incomplete"
    assert 'id="incomplete"' in org.client.get("/portal/organization").text
    r = org.post("/portal/organization/restore", {})
    assert r.headers["location"] == "/portal/organization?flash=nothing_to_restore"  # not authenticated yet
    with UnitOfWork(org.engine, readonly=True) as uow:
        reference = uow.conn.execute(select(tables.payment_attempts.c.reference)).scalars().all()[-1]
    org.client.app.state.gateway.authenticate(reference)  # type: ignore[attr-defined]  # done in the browser
    r = org.post("/portal/organization/restore", {})
    assert r.headers["location"] == "/portal/organization?flash=payment_restored"
    assert org.customer()["subscription"]["status"] == "active"


def test_a_member_who_is_not_the_super_admin_sees_no_purchase_buttons_and_a_forged_post_is_refused(org: Org) -> None:
    org.sign_in(member=org.role["admin"])
    page = org.client.get("/portal/organization?apply=1").text
    assert "申込み開始" not in page and 'id="apply"' not in page and 'id="super-admin-only"' in page
    r = org.post("/portal/organization/sign_up", FORM)
    assert r.status_code == 403 and 'data-code="super_admin_required"' in r.text
    assert org.profile() == (None, None, None, None, None)
    assert org.customer()["subscription"]["plan"] == "free"


def test_a_plain_member_sees_no_head_count_or_billing_buttons_and_cannot_post_them(org: Org) -> None:
    r = org.api("POST", "/v1/customers/acme/members", {"email": "m@acme.example", "name": "m", "role": "member"},
                member=org.admin["acme"])
    org.sign_in("acme", r.json()["id"])
    page = org.client.get("/portal/organization").text
    for button in ('id="preview-seats-button"', 'id="stop-billing"', 'id="restore"'):
        assert button not in page
    assert org.post("/portal/organization/seats", {"seats": "20"}).status_code == 403
    assert org.post("/portal/organization/cancel", {}).status_code == 403
    sub = org.customer("acme")["subscription"]
    assert sub["seats"] == 10 and sub["pending_change"] is None


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(org: Org) -> None:
    org.sign_in("acme")
    assert org.post("/portal/organization/cancel", {}, csrf=False).status_code == 403
    assert org.post("/portal/organization/seats", {"seats": "20"}, csrf=False).status_code == 403
    sub = org.customer("acme")["subscription"]
    assert sub["seats"] == 10 and sub["pending_change"] is None
    assert org.post("/portal/organization/seats", {"seats": "20"}).status_code == 303  # with the token it is done
    assert org.customer("acme")["subscription"]["seats"] == 20


def test_only_nipoplus_customers_have_the_organization_page_and_its_tab(org: Org, engine: Engine) -> None:
    org.sign_in()
    assert 'href="/portal/organization"' in org.client.get("/portal/").text
    from test_account_name_lock import LineOA

    oa = LineOA(engine)
    r = oa.api("POST", "/v1/portal_sessions", {"customer": "yokohama", "member": oa.admin,
                                                "return_url": "https://oa.example/"})
    oa.client.get(r.json()["url"].removeprefix("http://testserver"))
    assert 'href="/portal/organization"' not in oa.client.get("/portal/").text
    assert oa.client.get("/portal/organization").status_code == 404
