"""The LINE WORKS procedures in a real browser (seed lineworks-upgrade-procedure), end to end: a trial → 決済方法の管理
→ a domain verified on the loopback DNS server → 商品の契約/変更 STEP 1–4 (lite → basic, completed by the worker) →
「プライマリドメインに変更」 → every member's session is gone. Playwright drives Debian's chromium (the browser fixture
of test_portal_browser.py); a screenshot per step under ``var/artifacts/portal-browser/<test>/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from app_server import AppServer
from test_portal_browser import ARTIFACTS, Clock

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.dns import TxtResolver
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import portal_link
from kakin.services import access, billing, due_work
from kakin.services.tenancy import create_tenant

START = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)  # 10:00 JST


class Works:
    """kakin on a free port with a LINE WORKS tenant: sakura signs in as id@sakura-kogyo, lite monthly in its 30-day
    trial, 5 users, no card; 山田 (super admin) and 佐藤 (admin). DNS answers from the loopback server."""

    def __init__(self, folder: Path, nameserver: str) -> None:

        self.engine = make_engine(f"sqlite:///{folder}/kakin.db")
        migrate(self.engine)
        self.clock, self.gateway, self.nameserver = Clock(START), CardSimulator(), nameserver
        with UnitOfWork(self.engine) as uow:
            tenant = create_tenant(uow, "lineworks", "LINE WORKS", "lineworks", START)
            account = billing.create_customer(uow, tenant, self.gateway, "sakura", "さくら工業株式会社", START, members=5,
                                              sign_in_group="sakura-kogyo")
            assert account.id is not None
            access.add_super_admin(uow, tenant.row, account.id, "yamada@sakura.example", "山田 花子", START)
            billing.subscribe(uow, tenant, self.gateway, "sakura", START, "lite", contract="monthly")
        from kakin.services import members

        with UnitOfWork(self.engine) as uow:
            owner = access.Operator(uow.tenant("lineworks"), "owner", "test")  # type: ignore[arg-type]
            boss = members.members_of(uow, owner, "sakura", self.clock)[0]["id"]
            self.admin = members.add_member(uow, owner.acting_for(boss), "sakura", "sato@sakura.example", "佐藤 次郎",
                                            "admin", self.clock)["id"]
        app = create_app(self.engine, self.gateway, clock=self.clock, dns=TxtResolver(nameserver, timeout=1.0))
        self.http = AppServer(app)
        self.base = self.http.base

    def link(self, member: str | None = None) -> str:
        return portal_link(self.engine, "lineworks", "sakura", self.clock(), self.base, member=member,
                           return_url=f"{self.base}/healthz")[0]

    def run_worker(self) -> dict[str, int]:
        """One pass of ``kakin worker`` at the clock's time."""

        class NoMail:
            def send(self, *args: Any, **kwargs: Any) -> None:
                return None

        return due_work.run_pass(self.engine, self.gateway, NoMail(), lambda *a, **k: (200, ""), self.clock(),  # type: ignore[arg-type]
                                 dns=TxtResolver(self.nameserver, timeout=1.0))

    def stop(self) -> None:
        self.http.stop()
        self.engine.dispose()


@pytest.fixture
def works(tmp_path: Path, dns_zone: Any) -> Iterator[Works]:
    w = Works(tmp_path, dns_zone.nameserver)
    yield w
    w.stop()


def test_trial_card_domain_upgrade_lite_to_basic_then_the_primary_domain_change_signs_everyone_out(
        browser: Any, works: Works, dns_zone: Any, request: pytest.FixtureRequest) -> None:
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 800})
    page = context.new_page()

    def shot(step: str) -> None:
        page.screenshot(path=str(folder / f"{step}.png"), full_page=True)

    def wait(path: str) -> None:
        page.wait_for_url(lambda url: url.startswith(works.base + path))

    # the trial, on lite
    page.goto(works.link())
    assert page.locator("#status").inner_text() == "トライアル中" and page.locator("#plan").inner_text() == "ライト"
    shot("01-trial-overview")

    # STEP 1 asks for a payment method and a domain first
    page.get_by_role("link", name="商品の契約/変更").click()
    wait("/portal/plans")
    assert page.locator("#needs-card").is_visible() and page.locator("#needs-domain").is_visible()
    shot("02-step1-needs-card-and-domain")

    # 決済方法の管理: a test card from the simulator's picker; back to STEP 1
    page.locator("#needs-card a").click()
    wait("/portal/payment")
    page.locator("#payment-method").select_option("pm_card_visa")
    shot("03-payment-method-form")
    page.get_by_role("button", name="保存").click()
    wait("/portal/plans?flash=payment_method_saved")
    assert page.locator("#flash").inner_text() == "決済方法を保存しました。"
    assert page.locator("#needs-card").count() == 0
    page.get_by_role("link", name="決済方法の管理").click()
    assert page.locator("#card-on-file").inner_text() == "Visa •••• 4242"
    shot("04-card-on-file")

    # 基本設定 > ドメイン: add the domain, publish the exact TXT record on the loopback DNS server, confirm ownership
    page.locator("nav.tabs").get_by_role("link", name="ドメイン").click()
    wait("/portal/domains")
    page.locator("#domain").fill("sakura-kogyo.co.jp")
    page.get_by_role("button", name="完了").click()
    wait("/portal/domains?added=")
    txt = page.locator("#instructions-sakura-kogyo\\.co\\.jp .txt-value").inner_text()
    assert txt.startswith("kakin-domain-verification=") and page.get_by_text("mx1.worksmobile.com").is_visible()
    assert page.locator("#domain-sakura-kogyo\\.co\\.jp .status").inner_text() == "確認待ち"
    shot("05-domain-added-awaiting-confirmation")
    dns_zone.txt["sakura-kogyo.co.jp"] = [txt]
    page.get_by_role("button", name="ドメインの所有権確認").click()
    wait("/portal/domains?flash=domain_verified")
    assert page.locator("#domain-sakura-kogyo\\.co\\.jp .status").inner_text() == "使用中"
    assert page.locator("#domain-sakura-kogyo\\.co\\.jp .primary-mark").inner_text() == "(基本)"
    shot("06-domain-in-use")

    # 商品の契約/変更 STEP 1–4: lite → basic, monthly
    page.get_by_role("link", name="商品の契約/変更").click()
    page.get_by_role("link", name="有償プランへ切替").click()
    wait("/portal/plans?step=2")
    assert "￥600／ユーザー／月" in page.locator("#choice-basic").inner_text()
    assert "￥500／ユーザー／月" in page.locator("#choice-basic").inner_text()
    shot("07-step2-plans")
    page.locator("#choice-basic a.select").first.click()
    wait("/portal/plans?step=3")
    assert page.locator("#chosen-plan").inner_text() == "ベーシック"
    # in the trial until May 1st; May at basic: 5 users × 600 yen = 3,000 + 10% tax 300, billed June 1st
    assert page.locator("#billed-when .amount").first.inner_text() == "￥3,300"
    shot("08-step3-selection-and-amounts")
    page.get_by_role("link", name="次へ").click()
    wait("/portal/plans?step=4")
    shot("09-step4-confirm")
    page.get_by_role("button", name="追加する").click()
    wait("/portal/plans?flash=upgrade_started")
    assert page.locator("#upgrading h2").inner_text() == "アップグレード中"
    shot("10-upgrading")
    page.get_by_role("link", name="契約情報").click()
    assert page.locator("#upgrading-link").inner_text() == "アップグレード中" and page.locator("#plan").inner_text() == "ライト"
    shot("10b-overview-while-upgrading")

    # the worker completes it; members' IDs became id@sakura-kogyo.co.jp, so they sign in again
    assert works.run_worker()["plan changes completed"] == 1
    assert page.goto(f"{works.base}/portal/").status == 401
    page.goto(works.link())
    assert page.locator("#plan").inner_text() == "ベーシック"
    shot("11-basic-after-the-upgrade")

    # a second domain of its own, verified, made primary
    admin = browser.new_context(locale="ja-JP").new_page()
    admin.goto(works.link(works.admin))
    assert admin.locator("#plan").inner_text() == "ベーシック"
    page.locator("nav.tabs").get_by_role("link", name="ドメイン").click()
    page.locator("#domain").fill("sakura.co.jp")
    page.get_by_role("button", name="完了").click()
    wait("/portal/domains?added=")
    dns_zone.txt["sakura.co.jp"] = [page.locator("#instructions-sakura\\.co\\.jp .txt-value").inner_text()]
    page.locator("#domain-sakura\\.co\\.jp").get_by_role("button", name="ドメインの所有権確認").click()
    wait("/portal/domains?flash=domain_verified")
    shot("12-two-domains-in-use")
    page.locator("#domain-sakura\\.co\\.jp").get_by_role("link", name="プライマリドメインに変更").click()
    wait("/portal/domains/sakura.co.jp/primary")
    assert "24時間は再変更できません" in page.locator("#primary-warnings").inner_text()
    shot("13-primary-domain-warnings")
    page.get_by_role("button", name="ドメイン変更").click()
    page.wait_for_url(f"{works.base}/healthz")  # signed out: back to the vendor's product

    # every member's session is gone
    response = page.goto(f"{works.base}/portal/domains")
    assert response.status == 401 and "セッション" in page.locator("main").inner_text()
    shot("14-signed-out")
    assert admin.reload().status == 401
    admin.context.close()
    page.goto(works.link())
    page.locator("nav.tabs").get_by_role("link", name="ドメイン").click()
    assert page.locator("#domain-sakura\\.co\\.jp .primary-mark").inner_text() == "(基本)"
    assert page.locator("#primary-lock").is_visible()
    shot("15-new-primary-domain-locked-for-24-hours")
    context.close()
