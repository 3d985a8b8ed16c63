"""The NipoPlus and LINE OA procedures end to end in a real browser (Playwright driving Debian's chromium, never a
downloaded one; see test_portal_browser.py). Each step saves a screenshot under
``var/artifacts/portal-browser/<test>/``.

- NipoPlus (seed nipoplus-paid-plan): 組織設定 → 「自動更新有りで申し込み」 with the address filled from 〒 → a card that
  asks for 3-D Secure, completed at the gateway → 「支払い情報を復元」 → 「人数の変更」 with its preview → 「課金を停止」.
- LINE OA (seed line-oa-local-government-plan): the usage bar → upgrade → premium ID → account name and 認証済アカウント
  → the 地方公共団体プラン application, 審査中.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from app_server import AppServer
from sqlalchemy import select
from test_portal_browser import ARTIFACTS, shot

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import portal_link
from kakin.services import access, billing, eligibility, usage
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

START = datetime(2026, 6, 20, 1, 0, tzinfo=UTC)  # June 20th, 10:00 JST


class Server:
    """kakin on a free port: NipoPlus with newco (free plan, no card) and LINE OA with yokohama (communication, a
    card, 150 messages sent this month)."""

    def __init__(self, folder: Path) -> None:

        self.engine = make_engine(f"sqlite:///{folder}/kakin.db")
        migrate(self.engine)
        self.now = START
        self.gateway = CardSimulator()
        with UnitOfWork(self.engine) as uow:
            nipo = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", START)
            account = billing.create_customer(uow, nipo, self.gateway, "newco", "株式会社ニューコ", START)
            assert account.id is not None
            access.add_super_admin(uow, nipo.row, account.id, "boss@newco.example", "新 一郎", START)
            oa = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", START)
            account = billing.create_customer(uow, oa, self.gateway, "yokohama", "横浜しみん", START,
                                              payment_method="pm_card_visa")
            assert account.id is not None
            access.add_super_admin(uow, oa.row, account.id, "koho@city.yokohama.lg.jp", "港 太郎", START)
            usage.consume(uow, oa, "yokohama", "messages", 150, START)
        self.http = AppServer(create_app(self.engine, self.gateway, clock=lambda: self.now))
        self.base = self.http.base

    def link(self, tenant: str, customer: str) -> str:
        return portal_link(self.engine, tenant, customer, self.now, self.base, return_url=f"{self.base}/healthz")[0]

    def stop(self) -> None:
        self.http.stop()
        self.engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("procedures"))
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 800})
    p = context.new_page()
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    p.shots = folder
    yield p
    context.close()


def snap(page: Any, step: str) -> None:
    """The step's screenshot, taken with nothing focused: no focus ring in the picture, and a number field that kept
    the focus through a full-page screenshot swallows the next click in chromium."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    shot(page, step)


def test_nipoplus_sign_up_with_the_address_from_the_postal_code_restore_head_count_and_stop_billing(
        page: Any, server: Server) -> None:
    page.goto(server.link("nipoplus", "newco"))
    page.get_by_role("link", name="組織設定").click()
    page.wait_for_url(f"{server.base}/portal/organization")
    assert "1名 ￥180／月（税込）、5名〜999名" in page.locator("#offer").inner_text()
    snap(page, "1-organization")

    page.get_by_role("link", name="自動更新有りで申し込み").click()
    page.locator("#postal_code").press_sequentially("1000001")
    page.wait_for_function("document.getElementById('address').value !== ''")
    assert page.locator("#postal_code").input_value() == "100-0001"  # the hyphen inserted as typed
    assert page.locator("#address").input_value() == "東京都千代田区千代田"  # from Japan Post's data
    page.locator("#address").press_sequentially("1-1")
    page.locator("#addressee").fill("株式会社ニューコ")
    page.locator("#email").fill("keiri@newco.example")
    page.locator("#seats").fill("10")
    page.locator("#payment-method").select_option("pm_card_authenticationRequired")
    snap(page, "2-sign-up-form")
    page.get_by_role("button", name="申込み開始").click()
    page.wait_for_url("**/portal/organization?flash=signed_up")
    assert page.locator("#incomplete").is_visible()  # the card asked for 3-D Secure
    assert page.locator("#profile-address").inner_text() == "〒100-0001 東京都千代田区千代田1-1"
    snap(page, "3-signed-up-awaiting-3d-secure")

    with UnitOfWork(server.engine, readonly=True) as uow:
        reference = uow.conn.execute(select(tables.payment_attempts.c.reference)).scalars().all()[-1]
    server.gateway.authenticate(reference)  # the customer completes 3-D Secure; kakin is not told
    page.get_by_role("button", name="支払い情報を復元").click()
    page.wait_for_url("**/portal/organization?flash=payment_restored")
    assert page.locator("#incomplete").count() == 0
    assert page.locator("#next-date").inner_text() == "2026年7月20日"
    assert page.locator("#next-amount").inner_text() == "￥1,800"  # 180 × 10, tax included
    snap(page, "4-payment-restored")

    server.now = datetime(2026, 7, 7, 1, tzinfo=UTC)  # July 7th: 13 days to the next payment on July 20th
    page.goto(server.link("nipoplus", "newco"))  # a new session: the last one was idle for over 30 minutes
    page.goto(f"{server.base}/portal/organization")
    page.locator("#new-seats").fill("20")
    page.locator("#preview-seats-button").click()
    page.wait_for_url("**/portal/organization?seats=20")
    assert page.locator("#preview-seats").inner_text() == "10 名 → 20 名"
    assert page.locator("#preview-change").inner_text() == "￥2,580"  # 180 × 13 ÷ 30 × 10 = 780, + 3,600 − 1,800
    assert page.locator("#preview-next").inner_text() == "￥1,800 → ￥4,380"
    snap(page, "5-head-count-preview")
    page.get_by_role("button", name="変更を確定").click()
    page.wait_for_url("**/portal/organization?flash=seats_changed")
    assert page.locator("#seats-now").inner_text() == "20 名"
    assert page.locator("#next-amount").inner_text() == "￥4,380"
    snap(page, "6-head-count-changed")

    page.get_by_role("link", name="課金を停止").click()
    text = page.locator("#confirm-cancel-text").inner_text()
    assert "無料お試し期間" in text and "2026年7月20日" in text
    snap(page, "7-stop-billing-confirmation")
    page.get_by_role("button", name="OK").click()
    page.wait_for_url("**/portal/organization?flash=billing_stopped")
    assert "2026年7月20日 まで無料お試し期間" in page.locator("#stopped").inner_text()
    snap(page, "8-billing-stopped")


def test_line_oa_usage_bar_upgrade_premium_id_and_local_government_application(page: Any, server: Server) -> None:
    server.now = START
    page.goto(server.link("line-oa", "yokohama"))
    bar = page.get_by_role("progressbar")
    assert bar.get_attribute("aria-valuenow") == "150" and bar.get_attribute("aria-valuemax") == "200"
    assert "200 通中 150 通を送信済み" in page.locator(".usage").inner_text()
    snap(page, "1-usage-bar")

    page.get_by_role("link", name="料金プラン").click()
    page.locator("#choose-standard").click()
    assert page.locator("#preview-now").inner_text() == "￥16,500"  # 15,000 − 0 now, + 10% tax
    assert page.locator("#preview-when").inner_text() == "変更はすぐに適用されます。"
    snap(page, "2-upgrade-preview")
    page.get_by_role("button", name="変更を確定").click()
    page.wait_for_url("**/portal/oa/plan?flash=plan_changed")
    assert page.locator("#current-plan").inner_text() == "スタンダードプラン"
    page.get_by_role("link", name="契約情報", exact=True).click()
    assert page.get_by_role("progressbar").get_attribute("aria-valuemax") == "30000"
    snap(page, "3-upgraded-usage-bar")

    page.get_by_role("link", name="アカウント設定").click()
    assert "@＋4〜18文字" in page.locator("#premium-id-format").inner_text()
    page.locator("#premium_id").fill("@yokohama-city")
    page.get_by_role("button", name="空き状況を確認").click()
    assert page.locator("#premium-id-availability").inner_text() == "@yokohama-city は取得できます。"
    page.get_by_label("年額 ￥1,200").check()
    snap(page, "4-premium-id-available")
    page.get_by_role("button", name="@yokohama-city を購入する").click()
    page.wait_for_url("**/portal/oa/account?flash=premium_id_bought")
    assert page.locator("#account-id").inner_text() == "@yokohama-city"
    snap(page, "5-premium-id-bought")

    page.locator("#name").fill("横浜市")
    page.get_by_role("button", name="アカウント名を変更").click()
    page.wait_for_url("**/portal/oa/account?flash=account_renamed")
    page.get_by_role("button", name="認証済アカウントを申請").click()
    page.wait_for_url("**/portal/oa/account?flash=verification_requested")
    assert page.locator("#verification").inner_text() == "審査中"
    assert page.locator("#name").count() == 0  # the account name is fixed from now on
    snap(page, "6-verification-requested")
    with UnitOfWork(server.engine) as uow:  # the vendor's reviewer grants 認証済アカウント
        oa = open_tenant(uow, "line-oa")
        eligibility.verify_account(uow, oa, CommandLine(oa.row), "yokohama", server.now)

    page.reload()
    assert page.locator("#verification").inner_text() == "認証済"
    page.locator("#prefecture").select_option(label="神奈川県")  # the form reloads with its municipalities
    page.wait_for_url("**/portal/oa/account?prefecture=140007*")
    page.locator("#local_government_code").select_option("141003")
    assert page.locator("#applicant_email").input_value() == "koho@city.yokohama.lg.jp"
    snap(page, "7-local-government-application")
    page.get_by_role("button", name="申し込む").click()
    page.wait_for_url("**/portal/oa/account?flash=application_sent")
    assert "審査中" in page.locator("#application-status").inner_text()
    snap(page, "8-application-under-review")
