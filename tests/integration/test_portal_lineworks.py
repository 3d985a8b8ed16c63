"""The portal's LINE WORKS procedures over plain HTTP, on SQLite and PostgreSQL: 決済方法の管理, 商品の契約/変更,
基本設定 > ドメイン and members; every action through the services as the session's member, every refusal shown in
the page's language next to its field, CSRF on every form, another customer's things 404."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
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


def test_bank_transfer_is_shown_once_the_vendors_operators_enabled_it(works: Works) -> None:
    works.sign_in()
    assert 'id="bank-transfer"' not in works.client.get("/portal/payment").text
    assert works.api("POST", "/v1/customers/sakura/collection", {"collection": "bank_transfer"}).status_code == 200
    page = works.client.get("/portal/payment").text
    assert '<p id="bank-transfer">請求書払い（銀行振込）が有効です。' in page


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
    assert "カードは登録されていません。" in works.client.get("/portal/payment").text


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


def verified_domain(works: Works, zone: Any, name: str = "sakura-kogyo.co.jp", cid: str = "sakura") -> None:
    """Add ``name`` for ``cid`` through the API and publish its TXT record on the loopback DNS server, verified."""
    r = works.api("POST", f"/v1/customers/{cid}/domains", {"domain": name}, member=works.boss[cid])
    assert r.status_code == 201, r.text
    zone.txt[name] = [r.json()["txt_record"]["value"]]
    r = works.api("POST", f"/v1/customers/{cid}/domains/{name}/verify", member=works.boss[cid])
    assert r.status_code == 200, r.text


def run_worker(works: Works, zone: Any, now: datetime | None = None) -> dict[str, int]:
    from kakin.services import due_work

    class NoMail:
        def send(self, *args: Any, **kwargs: Any) -> None:
            return None

    return due_work.run_pass(works.engine, CardSimulator(), NoMail(), lambda *a, **k: (200, ""), now or works.clock(),  # type: ignore[arg-type]
                             dns=TxtResolver(zone.nameserver, timeout=1.0))


# ------------------------------------------------------------------ 商品の契約/変更, STEP 1–4
def test_step_1_offers_the_switch_to_a_paid_plan_and_asks_for_a_card_and_a_domain_first(works: Works) -> None:
    works.sign_in()
    page = text_of(works.client.get("/portal/plans").text)
    assert '<td id="current-plan">ライト</td><td>月額契約</td>' in page
    assert '<a class="button" id="switch" href="/portal/plans?step=2">有償プランへ切替</a>' in page
    assert 'id="needs-card">先に「決済方法の管理」から決済情報と決済方法をご入力ください。 <a href="/portal/payment?next=/portal/plans">' in page
    assert 'id="needs-domain">' in page and '<a href="/portal/domains">ドメイン</a>' in page


def test_step_2_offers_only_the_changes_the_catalog_allows_with_monthly_and_annual_prices_side_by_side(works: Works) -> None:
    works.sign_in()
    page = text_of(works.client.get("/portal/plans?step=2").text)
    rows = dict(re.findall(r'<tr id="choice-(\w+)">(.*?)</tr>', page))
    assert list(rows) == ["lite", "basic", "premium"]  # lite: only its annual contract (monthly → annual)
    assert "￥600／ユーザー／月" in rows["basic"] and "￥500／ユーザー／月" in rows["basic"]
    assert "￥1,200／ユーザー／月" in rows["premium"] and "￥1,000／ユーザー／月" in rows["premium"]
    assert "step=3&amp;plan=lite&amp;contract=monthly" not in rows["lite"] and "plan=lite&amp;contract=annual" in rows["lite"]
    assert rows["basic"].count("選択する") == 2 and "(税別)" in page


def test_step_3_shows_the_selection_and_what_the_preview_bills_when(works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    works.sign_in()
    works.post("/portal/payment", {"payment_method": "pm_card_visa"})
    page = text_of(works.client.get("/portal/plans?step=3&plan=basic&contract=monthly").text)
    assert '<dd id="chosen-plan">ベーシック</dd>' in page and '<dd id="chosen-price">￥600／ユーザー／月 （税別）</dd>' in page
    assert '<dd id="effective">アップグレード完了時（約10分）</dd>' in page
    # in the trial until May 1st; May at basic: 5 users × 600 yen × 31/31 days = 3,000 + 10% tax 300, billed June 1st
    assert '<dd class="billed-on">2026年6月1日</dd>' in page and '<dd class="amount">￥3,300</dd>' in page
    assert "変更しない場合: 2026年6月1日 に ￥1,980" in page  # lite: 5 × 360 = 1,800 + 180
    assert '<a class="button" id="next" href="/portal/plans?step=4&amp;plan=basic&amp;contract=monthly">次へ</a>' in page


def test_step_3_without_a_domain_says_so_with_a_link_to_the_domains(works: Works) -> None:
    works.sign_in()
    works.post("/portal/payment", {"payment_method": "pm_card_visa"})
    page = works.client.get("/portal/plans?step=3&plan=basic&contract=monthly").text
    assert 'data-code="domain_verification_required">このアップグレードの前に、ドメインを追加して所有権を確認してください。' in page
    assert 'id="add-product"' not in page


def test_step_4_adds_the_product_and_the_customer_is_upgrading_until_the_worker_completes_it(works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    works.sign_in()
    works.post("/portal/payment", {"payment_method": "pm_card_visa"})
    r = works.post("/portal/plans", {"plan": "basic", "contract": "monthly", "step": "4"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/plans?flash=upgrade_started"
    page = works.client.get(r.headers["location"]).text
    assert "アップグレード中" in page and 'id="switch"' not in page
    rights = works.api("GET", "/v1/customers/sakura/entitlements").json()
    assert rights["restricted"] is True and rights["upgrade"]["plan"] == "basic" and rights["plan"] == "lite"
    assert not any(rights["features"].values())
    again = works.post("/portal/plans", {"plan": "premium", "contract": "monthly", "step": "4"})
    assert again.status_code == 409 and 'data-code="upgrade_in_progress"' in again.text
    assert run_worker(works, dns_zone)["plan changes completed"] == 1
    customer = works.customer()
    assert customer["subscription"]["plan"] == "basic" and customer["upgrade"] is None
    assert works.api("GET", "/v1/customers/sakura/entitlements").json()["restricted"] is False
    assert works.client.get("/portal/plans").status_code == 401  # IDs became id@domain: everyone signs in again


def test_basic_to_premium_is_immediate_and_keeps_the_session(works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    works.api("POST", "/v1/customers/sakura/payment_method", {"payment_method": "pm_card_visa"}, member=works.boss["sakura"])
    works.api("POST", "/v1/customers/sakura/subscription/plan", {"plan": "basic"}, member=works.boss["sakura"])
    run_worker(works, dns_zone)
    works.sign_in()
    r = works.post("/portal/plans", {"plan": "premium", "contract": "monthly", "step": "4"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/plans?flash=plan_changed"
    assert "プランを変更しました。" in works.client.get(r.headers["location"]).text
    assert works.customer()["subscription"]["plan"] == "premium"


def test_an_admin_who_is_not_the_super_admin_sees_no_purchase_buttons_and_a_forged_post_is_refused(
        works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    works.sign_in(works.admin)
    page = works.client.get("/portal/plans").text
    assert 'id="switch"' not in page and "有償プランへのアップグレードは、最高管理者のみ" in page
    assert 'id="add-product"' not in works.client.get("/portal/plans?step=4&plan=basic&contract=monthly").text
    r = works.post("/portal/plans", {"plan": "basic", "contract": "monthly", "step": "4"})
    assert r.status_code == 403 and 'data-code="super_admin_required"' in r.text
    assert works.customer()["upgrade"] is None


def test_a_purchase_posted_without_the_csrf_token_is_403_and_changes_nothing(works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    works.sign_in()
    r = works.post("/portal/plans", {"plan": "basic", "contract": "monthly"}, csrf=False)
    assert r.status_code == 403
    assert works.customer()["upgrade"] is None and works.customer()["subscription"]["plan"] == "lite"


# ------------------------------------------------------------------ 基本設定 > ドメイン
def test_adding_a_domain_shows_the_exact_txt_record_and_the_catalogs_mx_records_while_it_awaits_confirmation(
        works: Works) -> None:
    works.sign_in()
    r = works.post("/portal/domains", {"domain": "Sakura-Kogyo.CO.JP"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/domains?added=sakura-kogyo.co.jp&flash=domain_added"
    page = text_of(works.client.get(r.headers["location"]).text)
    value = works.api("GET", "/v1/customers/sakura/domains").json()["data"][0]["txt_record"]["value"]
    assert value.startswith("kakin-domain-verification=")
    assert f'<td>sakura-kogyo.co.jp</td><td>TXT</td><td><code class="txt-value">{value}</code></td>' in page
    assert '<td>sakura-kogyo.co.jp</td><td>MX</td><td class="num">10</td><td><code>mx1.worksmobile.com</code></td>' in page
    assert '<td class="num">20</td><td><code>mx2.worksmobile.com</code></td>' in page
    assert '<span class="status status-pending">確認待ち</span>' in page
    assert "2026年4月2日 10:00までは自動でも確認します。" in page  # added at 10:00 JST, checked for 24 hours


def test_a_bad_domain_is_refused_next_to_its_field_and_the_form_keeps_what_was_typed(works: Works) -> None:
    works.sign_in(locale="en")
    r = works.post("/portal/domains", {"domain": "exa mple.jp"})
    assert r.status_code == 422
    assert '<p class="error" id="error-domain" role="alert" data-code="invalid_value">Check what you entered.' in r.text
    assert 'name="domain" value="exa mple.jp"' in r.text
    assert works.api("GET", "/v1/customers/sakura/domains").json()["data"] == []


def test_confirming_ownership_on_the_loopback_dns_puts_the_domain_in_use_as_the_primary_domain(
        works: Works, dns_zone: Any) -> None:
    works.sign_in()
    works.post("/portal/domains", {"domain": "sakura-kogyo.co.jp"})
    r = works.post("/portal/domains/verify", {"domain": "sakura-kogyo.co.jp"})  # not published yet
    assert r.status_code == 409 and 'data-code="domain_not_verified"' in r.text
    value = works.api("GET", "/v1/customers/sakura/domains").json()["data"][0]["txt_record"]["value"]
    dns_zone.txt["sakura-kogyo.co.jp"] = [value]
    r = works.post("/portal/domains/verify", {"domain": "sakura-kogyo.co.jp"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/domains?flash=domain_verified"
    page = text_of(works.client.get(r.headers["location"]).text)
    assert ('<span class="domain-name">sakura-kogyo.co.jp</span> <strong class="primary-mark">(基本)</strong></td> '
            '<td><span class="status status-in_use">使用中</span></td>') in page
    assert works.customer()["verified_domain"] == "sakura-kogyo.co.jp"


def test_the_worker_rechecks_a_pending_domain_for_24_hours_then_it_has_expired(works: Works, dns_zone: Any) -> None:
    for name in ("early.example", "late.example"):
        works.api("POST", "/v1/customers/sakura/domains", {"domain": name}, member=works.boss["sakura"])
    assert run_worker(works, dns_zone, START)["domain checks"] == 2  # nothing published: looked up again in 10 minutes
    assert run_worker(works, dns_zone, START + timedelta(minutes=5))["domain checks"] == 0
    listed = works.api("GET", "/v1/customers/sakura/domains").json()["data"]
    dns_zone.txt["early.example"] = [listed[0]["txt_record"]["value"]]
    assert run_worker(works, dns_zone, START + timedelta(minutes=10))["domain checks"] == 2
    works.clock.now = START + timedelta(hours=24)
    listed = works.api("GET", "/v1/customers/sakura/domains").json()["data"]
    assert [(d["domain"], d["status"]) for d in listed] == [("early.example", "in_use"), ("late.example", "expired")]
    dns_zone.queries.clear()
    assert run_worker(works, dns_zone, START + timedelta(hours=24))["domain checks"] == 0
    assert dns_zone.queries == []  # 24 hours on, an expired domain is no longer looked up
    audit = works.api("GET", "/v1/audit_log?limit=100").json()["data"]
    assert [e["actor"] for e in audit if e["action"] == "domain.verified"] == ["worker"]


def test_changing_the_primary_domain_signs_every_member_out_tells_the_vendor_and_holds_for_24_hours(
        works: Works, dns_zone: Any, engine: Engine) -> None:
    hook = works.api("POST", "/v1/webhook_endpoints", {"url": "https://works.example/hooks",
                                                       "events": ["customer.primary_domain.changed"]}).json()
    verified_domain(works, dns_zone, "old.example")
    verified_domain(works, dns_zone, "new.example")
    admin = Works.__new__(Works)  # the admin's browser: a second client on the same app
    admin.__dict__.update(works.__dict__, client=TestClient(works.client.app))
    admin.sign_in(works.admin)
    works.sign_in()
    page = text_of(works.client.get("/portal/domains/new.example/primary").text)
    assert "元のドメインはサブメールドメインになり、24時間は再変更できません。" in page
    assert "設定したカスタムURLの情報がリセットされます" in page and "「ドメイン変更」ボタンを押す前に" in page
    r = works.post("/portal/domains/new.example/primary", {"domain": "new.example"})
    assert r.status_code == 303 and r.headers["location"] == "https://works.example/admin"  # signed out: back to the vendor
    assert works.client.get("/portal/").status_code == 401 and admin.client.get("/portal/").status_code == 401
    assert works.customer()["verified_domain"] == "new.example"
    deliveries = works.api("GET", f"/v1/webhook_endpoints/{hook['id']}/deliveries").json()["data"]
    assert [d["type"] for d in deliveries] == ["customer.primary_domain.changed"]
    works.clock.now = START + timedelta(hours=23, minutes=59)
    works.sign_in()
    page = text_of(works.client.get("/portal/domains").text)
    assert "2026年4月2日 10:00まで再変更できません。" in page
    r = works.post("/portal/domains/old.example/primary", {"domain": "old.example"})
    assert r.status_code == 409 and 'data-code="primary_domain_locked"' in r.text
    r = works.api("POST", "/v1/customers/sakura/domains/old.example/primary", member=works.boss["sakura"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "primary_domain_locked"
    works.clock.now = START + timedelta(hours=24)
    r = works.api("POST", "/v1/customers/sakura/domains/old.example/primary", member=works.boss["sakura"])
    assert r.status_code == 200 and r.json()["primary"] is True


def test_the_provided_domain_can_be_deleted_and_is_never_issued_again(works: Works, dns_zone: Any) -> None:
    works.sign_in()
    page = works.client.get("/portal/domains").text
    assert "サービスが提供するドメイン sakura-kogyo.by-works.com を使用できます" in page
    r = works.post("/portal/domains", {"provided": "1"})
    assert r.headers["location"] == "/portal/domains?added=sakura-kogyo.by-works.com&flash=domain_verified"
    assert works.customer()["verified_domain"] == "sakura-kogyo.by-works.com"  # in use at once, the primary domain
    r = works.post("/portal/domains/sakura-kogyo.by-works.com/delete", {"domain": "sakura-kogyo.by-works.com"})
    assert r.status_code == 409 and 'data-code="domain_is_primary"' in r.text
    verified_domain(works, dns_zone)
    works.api("POST", "/v1/customers/sakura/domains/sakura-kogyo.co.jp/primary", member=works.boss["sakura"])
    works.sign_in()
    assert "一度削除すると、再びご利用いただくことはできません。" in works.client.get(
        "/portal/domains/sakura-kogyo.by-works.com/delete").text
    r = works.post("/portal/domains/sakura-kogyo.by-works.com/delete", {"domain": "sakura-kogyo.by-works.com"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/domains?flash=domain_deleted"
    assert "sakura-kogyo.by-works.com" not in works.client.get("/portal/domains").text  # gone, and no longer offered
    r = works.api("POST", "/v1/customers/sakura/domains", {"provided": True}, member=works.boss["sakura"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "domain_taken"
    r = works.api("POST", "/v1/customers/ume/domains", {"domain": "sakura-kogyo.by-works.com"}, member=works.boss["ume"])
    assert r.status_code == 422 and r.json()["error"]["param"] == "domain"  # the vendor's suffix is not anyone's own


def test_another_customers_domain_is_404_in_the_portal(works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone, "ume.example", cid="ume")
    works.sign_in()
    assert works.client.get("/portal/domains/ume.example/primary").status_code == 404
    assert works.post("/portal/domains/ume.example/delete", {"domain": "ume.example"}).status_code == 404
    assert works.post("/portal/domains/verify", {"domain": "ume.example"}).status_code == 404
    assert works.api("GET", "/v1/customers/ume/domains").json()["data"][0]["status"] == "in_use"


def test_an_admin_sees_no_domain_buttons_and_a_forged_post_is_refused(works: Works) -> None:
    works.sign_in(works.admin)
    page = works.client.get("/portal/domains").text
    assert 'id="add-domain"' not in page and "ドメインの設定は最高管理者のみが実施できます。" in page
    r = works.post("/portal/domains", {"domain": "sakura.example"})
    assert r.status_code == 403 and 'data-code="super_admin_required"' in r.text
    assert works.api("GET", "/v1/customers/sakura/domains").json()["data"] == []


# ------------------------------------------------------------------ メンバー
def test_an_admin_adds_an_admin_and_removes_a_member_whose_session_then_ends(works: Works) -> None:
    r = works.api("POST", "/v1/customers/sakura/members", {"email": "ito@sakura.example", "name": "伊藤", "role": "member"},
                  member=works.boss["sakura"])
    member = r.json()["id"]
    theirs = Works.__new__(Works)
    theirs.__dict__.update(works.__dict__, client=TestClient(works.client.app))
    theirs.sign_in(member)
    works.sign_in(works.admin)
    r = works.post("/portal/members", {"email": "kato@sakura.example", "name": "加藤", "role": "admin"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/members?flash=member_added"
    r = works.post("/portal/members/remove", {"member_id": member})
    assert r.status_code == 303
    page = works.client.get(r.headers["location"]).text
    assert "メンバーを削除しました。" in page and "加藤" in page and "伊藤" not in page
    assert theirs.client.get("/portal/").status_code == 401
    roles = [(m["name"], m["role"]) for m in works.api("GET", "/v1/customers/sakura/members").json()["data"]]
    assert roles == [("山田 花子", "super_admin"), ("佐藤 次郎", "admin"), ("加藤", "admin")]


def test_the_super_admin_cannot_be_removed_and_a_member_cannot_remove_anyone(works: Works) -> None:
    works.sign_in(works.admin)
    assert 'value="{}"'.format(works.boss["sakura"]) not in works.client.get("/portal/members").text  # no button
    r = works.post("/portal/members/remove", {"member_id": works.boss["sakura"]})
    assert r.status_code == 409 and 'data-code="super_admin_exists">最高管理者は追加・削除できません。' in r.text
    r = works.api("POST", "/v1/customers/sakura/members", {"email": "ito@sakura.example", "name": "伊藤"},
                  member=works.boss["sakura"])
    works.sign_in(r.json()["id"])
    assert 'id="add-member"' not in works.client.get("/portal/members").text
    r = works.post("/portal/members/remove", {"member_id": works.admin})
    assert r.status_code == 403 and 'data-code="admin_required"' in r.text
    r = works.api("DELETE", f"/v1/customers/sakura/members/{works.boss['sakura']}", member=works.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "super_admin_exists"
    assert len(works.api("GET", "/v1/customers/sakura/members").json()["data"]) == 3


def test_a_member_is_removed_through_the_api_by_an_admin(works: Works) -> None:
    r = works.api("DELETE", f"/v1/customers/sakura/members/{works.admin}", member=works.boss["sakura"])
    assert r.status_code == 200 and r.json() == {"id": works.admin, "removed": True}
    assert works.api("DELETE", f"/v1/customers/sakura/members/{works.admin}", member=works.boss["sakura"]).status_code == 404
    actions = [e["action"] for e in works.api("GET", "/v1/audit_log?limit=100").json()["data"]]
    assert "member.removed" in actions


def test_an_upgrade_refused_by_the_time_the_worker_runs_ends_failed_with_its_code_and_changes_nothing(
        works: Works, dns_zone: Any) -> None:
    verified_domain(works, dns_zone)
    r = works.api("POST", "/v1/customers/sakura/subscription/plan", {"plan": "basic"}, member=works.boss["sakura"])
    assert r.status_code == 200 and r.json()["upgrade"]["status"] == "pending"  # in the trial: no card needed yet
    works.clock.now = datetime(2026, 5, 1, 10, tzinfo=JST)  # the trial ended at midnight without a card: suspended
    assert run_worker(works, dns_zone)["plan changes completed"] == 1
    customer = works.customer()
    assert customer["subscription"]["plan"] == "lite" and customer["subscription"]["status"] == "suspended"
    assert customer["upgrade"]["status"] == "failed" and customer["upgrade"]["error_code"] == "payment_method_required"
    works.sign_in()
    page = works.client.get("/portal/plans").text
    assert "アップグレードを完了できませんでした。 先に決済方法を登録してください。" in page
