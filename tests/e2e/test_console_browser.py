"""The operator console in a real browser: Playwright driving Debian's chromium (never a downloaded browser).

kakin runs under uvicorn in a thread with a temporary SQLite database and a clock the tests hold. Each step
saves a screenshot under ``var/artifacts/console-browser/<test>/`` (ignored by git). Without ``/usr/bin/chromium``
the tests are skipped with the reason, except in CI (``CI=true``), where that fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from app_server import AppServer

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import portal_link
from kakin.services import access, billing, due_run, eligibility, operations, operators
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "console-browser"
JST = ZoneInfo("Asia/Tokyo")
MAY = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)  # 10:00 JST: NipoPlus sign-ups
NOVEMBER = datetime(2026, 11, 16, 10, tzinfo=JST)  # a Monday: LINE OA applications
PASSWORD = "correct horse battery"
REFUSAL = "議会の承認書類が未提出"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Server:
    """kakin on a free port with three tenants.

    - ``line-oa``: 横浜市 (yokohama) and 川崎市 (kawasaki), verified accounts, each applying for the local-government
      plan on Monday 2026-11-16 (川崎市 from a non-lg.jp address); operator ``reviewer@line-oa.example``.
    - ``nipoplus``: acme (GOLD, 10 seats, paid 2026-05-03) whose card then declines: the June renewal fails and
      the invoice is past due; operators ``billing_admin@`` and ``viewer@nipoplus.example``.
    - ``dash`` (NipoPlus catalog), the dashboard's seeded month, May 2026: a1 GOLD 10 seats and a2 GOLD 5 seats by
      card (paid), a3 GOLD 5 seats by bank transfer (open, due 2026-06-02); operator ``owner@dash.example``.
    """

    def __init__(self, folder: Path) -> None:

        self.engine = make_engine(f"sqlite:///{folder}/kakin.db")
        migrate(self.engine)
        self.clock = Clock(MAY)
        gateway = CardSimulator()
        with UnitOfWork(self.engine) as uow:
            oa = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", NOVEMBER)
            operators.create_operator(uow, oa.row, "reviewer@line-oa.example", "reviewer", NOVEMBER, PASSWORD)
            self.applications = {}
            for cid, name, code, email in (("yokohama", "横浜市", "141003", "koho@city.yokohama.lg.jp"),
                                           ("kawasaki", "川崎市", "141305", "kawasaki.koho@example.com")):
                account = billing.create_customer(uow, oa, gateway, cid, name, NOVEMBER, payment_method="pm_card_visa")
                assert account.id is not None
                super_admin = access.add_super_admin(uow, oa.row, account.id, f"admin@{cid}.example", "管理者", NOVEMBER)
                eligibility.verify_account(uow, oa, CommandLine(oa.row), cid, NOVEMBER)
                principal = access.Operator(oa.row, "owner", "test").acting_for(super_admin)
                applied = eligibility.apply(uow, principal, cid, "local_government", code, email, False, lambda: NOVEMBER)
                assert applied["status"] == "pending"
                self.applications[cid] = applied["id"]
            self.line_oa_key = access.create_api_key(uow, oa.row, "owner", "test", NOVEMBER)

            nipo = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", MAY)
            for role in ("billing_admin", "viewer"):
                operators.create_operator(uow, nipo.row, f"{role}@nipoplus.example", role, MAY, PASSWORD)
            account = billing.create_customer(uow, nipo, gateway, "acme", "株式会社アクメ", MAY, payment_method="pm_card_visa")
            assert account.id is not None
            access.add_super_admin(uow, nipo.row, account.id, "admin@acme.example", "山田 花子", MAY)
            billing.subscribe(uow, nipo, gateway, "acme", MAY, "gold", seats=10)
            billing.set_payment_method(uow, nipo, gateway, "acme", MAY, "pm_card_chargeDeclined")

            dash = create_tenant(uow, "dash", "ダッシュ株式会社", "nipoplus", MAY)
            operators.create_operator(uow, dash.row, "owner@dash.example", "owner", MAY, PASSWORD)
            for cid, seats in (("a1", 10), ("a2", 5), ("a3", 5)):
                billing.create_customer(uow, dash, gateway, cid, f"{cid} 株式会社", MAY, payment_method="pm_card_visa")
                if cid == "a3":
                    operations.set_collection(uow, dash, gateway, CommandLine(dash.row), cid, "bank_transfer", MAY)
                billing.subscribe(uow, dash, gateway, cid, MAY, "gold", seats=seats)
        due_run.run_due(lambda: UnitOfWork(self.engine), "nipoplus", gateway, datetime(2026, 6, 3, 2, tzinfo=UTC))
        with UnitOfWork(self.engine) as uow:
            row = uow.tenant("nipoplus")
            assert row is not None
            (self.past_due,) = [r["number"] for r in uow.invoices_for(row) if r["status"] == "open"]
        self.http = AppServer(create_app(self.engine, gateway, clock=self.clock))
        self.base = self.http.base

    def stop(self) -> None:
        self.http.stop()
        self.engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("console"))
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    p = context.new_page()
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    p.shots = folder
    yield p
    context.close()


def shot(page: Any, step: str) -> None:
    page.screenshot(path=str(page.shots / f"{step}.png"), full_page=True)


def sign_in(page: Any, server: Server, email: str) -> None:
    page.goto(f"{server.base}/console/login")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"{server.base}/console/")


def test_a_reviewer_approves_yokohama_and_refuses_kawasaki_whose_reason_the_customer_never_sees(
        page: Any, server: Server) -> None:
    server.clock.now = NOVEMBER + timedelta(days=1)
    sign_in(page, server, "reviewer@line-oa.example")
    shot(page, "1-dashboard")
    page.get_by_role("link", name="審査キュー").click()
    yokohama = page.locator(f"#app-{server.applications['yokohama']}")
    kawasaki = page.locator(f"#app-{server.applications['kawasaki']}")
    assert "神奈川県横浜市" in yokohama.inner_text() and "2026年11月24日" in yokohama.inner_text()  # 5 business days
    assert "lg.jp 以外のアドレス" in kawasaki.inner_text() and "lg.jp 以外" not in yokohama.inner_text()
    assert yokohama.locator(".tag.danger").count() == 0  # not overdue yet
    shot(page, "2-review-queue")
    yokohama.get_by_role("button", name="承認").click()
    page.wait_for_url("**/console/review?done=approved")
    assert page.locator(f"#app-{server.applications['yokohama']}").count() == 0  # no longer pending
    kawasaki = page.locator(f"#app-{server.applications['kawasaki']}")
    kawasaki.get_by_placeholder("理由（お客様には表示されません）").fill(REFUSAL)
    shot(page, "3-refusal-typed")
    kawasaki.get_by_role("button", name="却下").click()
    page.wait_for_url("**/console/review?done=refused")
    page.get_by_role("link", name="不可").click()
    refused = page.locator(f"#app-{server.applications['kawasaki']}")
    assert REFUSAL in refused.inner_text() and "operator:reviewer@line-oa.example" in refused.inner_text()
    shot(page, "4-refused-with-reason")

    headers = {"Authorization": f"Bearer {server.line_oa_key}"}
    for cid, status in (("yokohama", "approved"), ("kawasaki", "refused")):
        seen = httpx.get(f"{server.base}/v1/customers/{cid}/eligibility_applications", headers=headers)
        (application,) = seen.json()["data"]
        assert application["status"] == status and REFUSAL not in seen.text and "reason" not in seen.text
    portal = page.context.new_page()
    portal.goto(portal_link(server.engine, "line-oa", "kawasaki", server.clock(), server.base)[0])
    for path in ("/portal/", "/portal/invoices", "/portal/members"):
        portal.goto(server.base + path)
        assert REFUSAL not in portal.content()
    portal.screenshot(path=str(page.shots / "5-customer-portal.png"), full_page=True)


def test_a_billing_admin_switches_a_past_due_customer_to_bank_transfer_and_records_the_transfer(
        page: Any, server: Server) -> None:
    server.clock.now = datetime(2026, 6, 4, 1, tzinfo=UTC)
    sign_in(page, server, "billing_admin@nipoplus.example")
    page.get_by_role("link", name="督促").click()
    row = page.locator(f"#due-{server.past_due}")
    assert "株式会社アクメ" in row.inner_text() and "card_declined" in row.inner_text()
    assert "￥1,800" in row.inner_text()  # 180 yen × 10 seats, tax included
    shot(page, "1-dunning")
    row.get_by_role("button", name="請求書払いに切り替え").click()
    page.wait_for_url("**/console/dunning?done=collection")
    assert "請求書払い" in page.locator(f"#due-{server.past_due}").inner_text()
    shot(page, "2-switched")
    page.locator(f"#due-{server.past_due}").get_by_role("link", name="株式会社アクメ").click()
    assert page.locator("#collection").inner_text() == "請求書払い"
    invoice = page.locator(f"#invoice-{server.past_due}")
    invoice.get_by_label("振込の参照番号").fill("振込 0604")
    shot(page, "3-customer")
    invoice.get_by_role("button", name="入金を記録").click()
    page.wait_for_url("**/console/customers/acme?done=mark_paid")
    assert "支払済み" in page.locator(f"#invoice-{server.past_due}").inner_text()
    assert "invoice.mark_paid" in page.locator("#timeline").inner_text()
    assert "operator:billing_admin@nipoplus.example" in page.locator("#timeline").inner_text()
    shot(page, "4-paid")
    page.get_by_role("link", name="督促").click()
    assert page.locator(f"#due-{server.past_due}").count() == 0


def test_a_viewer_sees_no_action_button_and_a_forged_post_is_refused(page: Any, server: Server) -> None:
    server.clock.now = datetime(2026, 6, 4, 2, tzinfo=UTC)
    sign_in(page, server, "viewer@nipoplus.example")
    for path in ("/console/customers/acme", "/console/dunning", "/console/settings", "/console/webhooks"):
        page.goto(server.base + path)
        assert page.locator("main form[method=post]").count() == 0, path
        shot(page, "1-" + path.strip("/").replace("/", "-"))
    token = page.locator("header input[name=csrftoken]").first.get_attribute("value")  # a real token, of the viewer
    page.goto(f"{server.base}/console/customers/acme")
    before = page.locator("#collection").inner_text()  # card, or bank transfer if the billing admin's test ran first
    other = "card" if before == "請求書払い" else "bank_transfer"  # the forged POST asks for the other one
    status = page.evaluate("""([token, other]) => fetch('/console/customers/acme/collection', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: new URLSearchParams({csrftoken: token, collection: other})}).then(r => r.status)""", [token, other])
    assert status == 403
    page.goto(f"{server.base}/console/customers/acme")
    assert page.locator("#collection").inner_text() == before  # nothing changed
    page.set_content(page.evaluate("""([token]) => fetch('/console/customers/acme/collection', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: new URLSearchParams({csrftoken: token, collection: 'card'})}).then(r => r.text())""", [token]))
    shot(page, "2-forged-post-refused")


def test_the_dashboard_shows_the_hand_computed_figures_of_the_seeded_month(page: Any, server: Server) -> None:
    server.clock.now = datetime(2026, 5, 20, 3, tzinfo=UTC)
    sign_in(page, server, "owner@dash.example")
    # MRR before tax, floored once: (1,800 + 900 + 900) × 100/110 = 3,272.7… → 3,272 (a1 10 seats, a2 and a3 5 seats,
    # 180 yen per seat tax included); ARR = 12 × 3,272 = 39,264.
    assert page.locator("#mrr").inner_text() == "￥3,272"
    assert page.locator("#arr").inner_text() == "￥39,264"
    assert page.locator("#new").inner_text() == "3"
    assert page.locator("#churned").inner_text() == "0"
    assert page.locator("[data-plan=gold]").inner_text() == "3"
    # invoiced in May before tax: 1,800 − floor(1,800 × 10/110) = 1,800 − 163 = 1,637; 900 − 81 = 819, twice: 3,275
    assert page.locator("#invoiced tr").last.text_content() == "2026-05￥3,275"
    assert page.locator("#open").inner_text() == "￥900"  # a3's bank transfer, due 2026-06-02
    assert page.locator("#overdue").inner_text() == "￥0"
    assert page.locator("#invoiced-chart svg").count() == 1
    shot(page, "1-dashboard-ja")
    page.get_by_role("button", name="English").click()
    page.wait_for_url(f"{server.base}/console/")
    assert page.locator("h1").inner_text().startswith("Dashboard") and page.locator("#mrr").inner_text() == "¥3,272"
    shot(page, "2-dashboard-en")


def test_an_owner_walks_every_page_in_english_and_signs_out_everywhere(page: Any, server: Server) -> None:
    server.clock.now = datetime(2026, 5, 20, 3, tzinfo=UTC)
    page.goto(f"{server.base}/console/login?lang=en")
    page.get_by_label("E-mail").fill("owner@dash.example")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("#refused").inner_text() == "The e-mail address or the password is not right."
    assert page.get_by_label("E-mail").input_value() == "owner@dash.example"  # the form keeps what was typed
    shot(page, "1-login-refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base}/console/")
    assert page.locator("h1").inner_text().startswith("Dashboard")
    cookie = next(c for c in page.context.cookies() if c["name"] == "kakin_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Plan").select_option("gold")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#customers tbody tr").count() == 3
    shot(page, "2-customers")
    page.get_by_role("link", name="Invoices").click()
    page.get_by_label("Amount from (yen)").fill("1000")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#documents tbody tr").count() == 1  # only a1's 1,800; a2's and a3's are 900
    shot(page, "3-invoices")
    page.get_by_role("link", name="Catalog").click()
    assert "GOLD\n¥180 / user / month" in page.locator("#plans").inner_text()  # tax included
    shot(page, "4-catalog")
    page.get_by_role("link", name="Settings").click()
    shot(page, "5-settings")
    page.get_by_role("button", name="Sign out everywhere").click()
    page.wait_for_url(f"{server.base}/console/login")
    page.goto(f"{server.base}/console/customers")
    assert page.url == f"{server.base}/console/login"
