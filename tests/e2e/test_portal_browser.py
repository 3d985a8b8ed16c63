"""The customer portal in a real browser: Playwright driving Debian's chromium (never a downloaded browser).

``kakin``'s app runs under uvicorn in a thread on 127.0.0.1 with a temporary
SQLite database and a clock the tests hold. Each step saves a screenshot under
``var/artifacts/portal-browser/<test>/`` (ignored by git). The browser is
conftest.py's (skipped without ``/usr/bin/chromium``, except in CI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_server import AppServer

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import portal_link
from kakin.services import access, billing
from kakin.services.tenancy import create_tenant

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "portal-browser"
START = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)  # 10:00 JST


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Server:
    """kakin on a free port, a NipoPlus tenant with acme (GOLD, 10 seats, paid at sign-up) and other (5 seats)."""

    def __init__(self, folder: Path) -> None:

        self.engine = make_engine(f"sqlite:///{folder}/kakin.db")
        migrate(self.engine)
        self.clock = Clock(START)
        gateway = CardSimulator()
        with UnitOfWork(self.engine) as uow:
            tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", START)
            for cid, name, seats in (("acme", "株式会社アクメ", 10), ("other", "ベータ合同会社", 5)):
                account = billing.create_customer(uow, tenant, gateway, cid, name, START, payment_method="pm_card_visa")
                assert account.id is not None
                access.add_super_admin(uow, tenant.row, account.id, f"admin@{cid}.example", "山田 花子", START)
                billing.subscribe(uow, tenant, gateway, cid, START, "gold", seats=seats)
            self.other_invoice = uow.invoices_for(tenant.row, account.id)[0]["number"]
        self.http = AppServer(create_app(self.engine, gateway, clock=self.clock))
        self.base = self.http.base

    def link(self, customer: str = "acme", locale: str = "ja") -> str:
        return portal_link(self.engine, "nipoplus", customer, self.clock(), self.base, locale=locale,
                           return_url=f"{self.base}/healthz")[0]

    def stop(self) -> None:
        self.http.stop()
        self.engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("portal"))
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    server.clock.now = START
    context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 800})
    p = context.new_page()
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    p.shots = folder  # where shot() saves
    yield p
    context.close()


def shot(page: Any, step: str) -> None:
    page.screenshot(path=str(page.shots / f"{step}.png"), full_page=True)


def test_the_overview_shows_plan_seats_and_the_next_amount_in_japanese_then_english(page: Any, server: Server) -> None:
    page.goto(server.link())
    assert page.url == f"{server.base}/portal/"
    assert page.locator("#plan").inner_text() == "GOLD PLAN"
    assert page.locator("#seats").inner_text() == "10 名"
    assert page.locator("#next-date").inner_text() == "2026年6月3日"
    assert page.locator("#next-amount").inner_text() == "￥1,800"  # 180 yen × 10 seats, tax included
    assert page.locator("#next-tax").inner_text() == "￥163"  # floor(1800 × 10/110)
    assert page.locator("h1").inner_text() == "契約情報"
    shot(page, "1-overview-ja")
    page.get_by_role("button", name="English").click()
    page.wait_for_url(f"{server.base}/portal/")
    assert page.locator("h1").inner_text() == "Contract"
    assert page.locator("#next-date").inner_text() == "June 3, 2026"
    assert page.locator("#next-amount").inner_text() == "¥1,800"
    shot(page, "2-overview-en")


def test_the_billing_history_links_a_qualified_invoice_pdf_that_downloads(page: Any, server: Server) -> None:
    page.goto(server.link())
    page.get_by_role("link", name="請求履歴").click()
    page.wait_for_url(f"{server.base}/portal/invoices")
    rows = page.locator("#invoices tbody tr")
    assert rows.count() == 1
    assert "￥1,800" in rows.first.inner_text() and "支払済み" in rows.first.inner_text()  # 180 × 10, paid at sign-up
    shot(page, "1-invoices")
    href = page.get_by_role("link", name="適格請求書（PDF）").get_attribute("href")
    assert re.fullmatch(r"/portal/invoices/NIPOPLUS-\d+/document\.pdf", href)
    pdf = page.context.request.get(server.base + href)  # the browser's cookies: the portal session, no API key
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")


def test_the_members_page_lists_the_super_admin(page: Any, server: Server) -> None:
    page.goto(server.link())
    page.get_by_role("link", name="メンバー").click()
    page.wait_for_url(f"{server.base}/portal/members")
    cells = page.locator("#members tbody tr").first.inner_text().split("\t")
    assert cells == ["山田 花子", "admin@acme.example", "最高管理者", ""]  # the super admin has no 「削除」 button
    assert "株式会社アクメ" in page.locator("header").inner_text()
    shot(page, "1-members")


def test_a_reused_link_is_refused(page: Any, server: Server) -> None:
    link = server.link()
    page.goto(link)
    fresh = page.context.browser.new_context()
    try:
        other = fresh.new_page()
        response = other.goto(link)
        assert response.status == 401
        assert "使用済み" in other.locator("main").inner_text()
        other.screenshot(path=str(page.shots / "1-reused-link.png"), full_page=True)
    finally:
        fresh.close()


def test_an_expired_link_is_refused(page: Any, server: Server) -> None:
    link = server.link()
    server.clock.now = START + timedelta(minutes=5, seconds=1)
    response = page.goto(link)
    assert response.status == 401
    shot(page, "1-expired-link")


def test_another_customers_invoice_document_is_404(page: Any, server: Server) -> None:
    page.goto(server.link())
    response = page.goto(f"{server.base}/portal/invoices/{server.other_invoice}/document.pdf")
    assert response.status == 404
    shot(page, "1-another-customers-invoice")


def test_a_post_without_the_csrf_token_is_403_and_leaves_the_session_open(page: Any, server: Server) -> None:
    page.goto(server.link())
    status = page.evaluate("fetch('/portal/sign_out', {method: 'POST'}).then(r => r.status)")
    assert status == 403
    assert page.goto(f"{server.base}/portal/").status == 200
    shot(page, "1-still-signed-in")
    page.get_by_role("button", name="ログアウト").click()  # with the token: signs out, back to the vendor
    page.wait_for_url(f"{server.base}/healthz")
    assert page.goto(f"{server.base}/portal/").status == 401


def test_the_session_cookie_is_httponly_and_samesite_lax(page: Any, server: Server) -> None:
    page.goto(server.link())
    cookie = next(c for c in page.context.cookies() if c["name"] == "kakin_portal")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["path"] == "/portal"
    assert page.evaluate("document.cookie").find("kakin_portal") == -1  # scripts cannot read it
