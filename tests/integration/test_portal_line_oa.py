"""The portal's LINE Official Account pages over plain HTTP, on SQLite and PostgreSQL: plan change (upgrades now,
downgrades on the 1st, said before confirming), premium ID (format, availability, price), the account name's lock,
認証済アカウント and the 地方公共団体プラン application with its status, never its reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from test_account_name_lock import LineOA


class Site(LineOA):
    def sign_in(self, member: str | None = None) -> None:
        r = self.api("POST", "/v1/portal_sessions", {"customer": "yokohama", "member": member or self.admin,
                                                      "return_url": "https://oa.example/"})
        assert r.status_code == 201, r.text
        assert self.client.get(r.json()["url"].removeprefix("http://testserver"), follow_redirects=False).status_code == 303

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> Any:
        self.client.get("/portal/")
        token = {"csrftoken": self.client.cookies.get("csrftoken") or ""} if csrf else {}
        return self.client.post(path, data={**data, **token}, follow_redirects=False)

    def customer(self) -> dict[str, Any]:
        return self.api("GET", "/v1/customers/yokohama").json()  # type: ignore[no-any-return]

    def member(self, role: str) -> str:
        r = self.api("POST", "/v1/customers/yokohama/members", {"email": f"{role}@city.yokohama.lg.jp", "name": role,
                                                                "role": role}, member=self.admin)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture
def site(engine: Engine) -> Iterator[Site]:
    s = Site(engine)
    s.sign_in()
    yield s


def flat(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def test_the_plan_page_lists_the_plans_and_offers_only_the_changes_the_catalog_allows(site: Site) -> None:
    page = flat(site.client.get("/portal/oa/plan").text)
    assert 'id="current-plan">コミュニケーションプラン<' in page
    assert 'id="choose-light"' in page and 'id="choose-standard"' in page and 'id="choose-communication"' not in page
    assert "地方公共団体プラン" not in page.split('id="plans"')[1].split("</table>")[0]  # applied for, not chosen
    assert "￥15,000" in page and "30,000 通" in page


def test_an_upgrade_says_what_is_charged_now_before_it_is_confirmed(site: Site) -> None:
    page = flat(site.client.get("/portal/oa/plan?plan=standard").text)
    assert "変更はすぐに適用されます。" in page
    assert 'id="preview-now" class="amount">￥16,500<' in page  # 15,000 − 0 now, + 10% tax
    assert site.customer()["subscription"]["plan"] == "communication"  # the preview changed nothing
    r = site.post("/portal/oa/plan", {"plan": "standard"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/oa/plan?flash=plan_changed"
    assert site.customer()["subscription"]["plan"] == "standard"


def test_a_downgrade_says_it_takes_effect_on_the_first_before_it_is_confirmed(site: Site) -> None:
    assert site.post("/portal/oa/plan", {"plan": "standard"}).status_code == 303
    page = flat(site.client.get("/portal/oa/plan?plan=light").text)
    assert "変更は 2026年6月1日 に適用されます。それまでは現在のプランとメッセージ通数のままです。" in page
    assert site.post("/portal/oa/plan", {"plan": "light"}).status_code == 303
    sub = site.customer()["subscription"]
    assert sub["plan"] == "standard" and sub["pending_change"]["plan"] == "light"
    assert 'id="pending-plan">2026年6月1日 から：ライトプラン<' in flat(site.client.get("/portal/oa/plan").text)


def test_an_admin_sees_no_plan_buttons_and_a_forged_post_is_refused(site: Site) -> None:
    site.sign_in(site.member("admin"))
    page = site.client.get("/portal/oa/plan?plan=standard").text
    assert 'id="choose-standard"' not in page and 'id="confirm-plan"' not in page and 'id="super-admin-only"' in page
    r = site.post("/portal/oa/plan", {"plan": "standard"})
    assert r.status_code == 403 and 'data-code="super_admin_required"' in r.text
    assert site.customer()["subscription"]["plan"] == "communication"


def test_the_premium_id_form_explains_the_format_checks_availability_and_shows_both_prices(site: Site) -> None:
    page = flat(site.client.get("/portal/oa/account").text)
    assert "@＋4〜18文字（半角英小文字a–z、数字0–9、「_」と「-」。大文字は使えません）" in page
    assert 'id="premium-id-prices">月額 ￥100 / 年額 ￥1,200 （税別）<' in page
    assert "@yokohama は取得できます。" in site.client.get("/portal/oa/account?premium_id=@yokohama").text
    assert "@Yokohama は上の形式に合っていません。" in site.client.get("/portal/oa/account?premium_id=@Yokohama").text


def test_buying_a_premium_id_yearly_charges_1320_yen_and_a_taken_one_is_refused_next_to_the_field(site: Site) -> None:
    r = site.post("/portal/oa/account/premium_id", {"premium_id": "@yokohama", "billing": "annual"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/oa/account?flash=premium_id_bought"
    assert site.customer()["addons"][0]["value"] == "@yokohama"
    assert site.api("GET", "/v1/customers/yokohama/invoices").json()["data"][-1]["total"] == 1320  # 1,200 + 10% tax
    r = site.api("POST", "/v1/customers", {"id": "kawasaki", "name": "川崎", "payment_method": "pm_card_visa",
                                           "super_admin": {"email": "k@kawasaki.example", "name": "川"}})
    r = site.api("POST", "/v1/portal_sessions", {"customer": "kawasaki", "member": r.json()["super_admin"]["id"],
                                                  "return_url": "https://oa.example/"})
    site.client.get(r.json()["url"].removeprefix("http://testserver"))
    assert "@yokohama はすでに使われています。" in site.client.get("/portal/oa/account?premium_id=@yokohama").text
    r = site.post("/portal/oa/account/premium_id", {"premium_id": "@yokohama", "billing": "monthly"})
    assert r.status_code == 409 and 'id="error-premium_id" role="alert" data-code="premium_id_taken"' in r.text


def test_an_invalid_premium_id_is_refused_next_to_the_field_with_what_was_typed(site: Site) -> None:
    r = site.post("/portal/oa/account/premium_id", {"premium_id": "@ab", "billing": "monthly"})
    assert r.status_code == 422
    assert 'id="error-premium_id" role="alert" data-code="invalid_premium_id"' in r.text
    assert 'value="@ab"' in r.text
    assert site.customer()["addons"] == []


def test_the_account_name_is_changed_until_verification_is_applied_for_then_locked(site: Site) -> None:
    r = site.post("/portal/oa/account/name", {"name": "横浜市"})
    assert r.status_code == 303 and site.customer()["name"] == "横浜市"
    r = site.post("/portal/oa/account/verification", {})
    assert r.headers["location"] == "/portal/oa/account?flash=verification_requested"
    page = flat(site.client.get("/portal/oa/account").text)
    assert 'id="verification"><span class="status status-open">審査中<' in page
    assert 'id="name-locked"' in page and 'id="rename"' not in page and 'id="check-premium-id"' not in page
    r = site.post("/portal/oa/account/name", {"name": "横浜市役所"})  # the form is gone; a forged POST
    assert r.status_code == 409 and 'data-code="account_name_locked"' in r.text
    assert "アカウント名とプレミアムIDは変更できません" in r.text
    r = site.post("/portal/oa/account/premium_id", {"premium_id": "@yokohama", "billing": "monthly"})
    assert r.status_code == 409 and 'id="error-premium_id" role="alert" data-code="account_name_locked"' in r.text
    assert site.customer()["name"] == "横浜市" and site.customer()["addons"] == []


def test_the_local_government_is_chosen_by_prefecture_then_municipality_with_its_code(site: Site) -> None:
    page = site.client.get("/portal/oa/account").text
    assert '<option value="140007" >神奈川県</option>' in page and 'name="local_government_code"' not in page
    page = site.client.get("/portal/oa/account?prefecture=140007").text
    assert '<option value="141003" >横浜市（141003）</option>' in page
    assert '<option value="140007" >神奈川県（140007）</option>' in page  # the prefecture itself may apply


def test_an_application_is_under_review_then_applied_and_a_refusal_never_says_why(site: Site) -> None:
    site.post("/portal/oa/account/name", {"name": "横浜市"})
    assert site.api("POST", "/v1/customers/yokohama/verified_account", key=site.reviewer).status_code == 200
    r = site.post("/portal/oa/account/local_government", {"prefecture": "140007", "local_government_code": "141003",
                                                         "applicant_email": "koho@city.yokohama.lg.jp"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/oa/account?flash=application_sent"
    page = flat(site.client.get("/portal/oa/account").text)
    assert 'class="status status-open">審査中<' in page and 'id="apply-local-government"' not in page
    [pending] = site.api("GET", "/v1/eligibility_applications?status=pending", key=site.reviewer).json()["data"]
    r = site.api("POST", f"/v1/eligibility_applications/{pending['id']}/refuse", {"reason": "職員でない申込者"},
                 key=site.reviewer)
    assert r.status_code == 200
    page = flat(site.client.get("/portal/oa/account").text)
    assert 'class="status status-canceled">不可<' in page and "職員でない申込者" not in page
    assert "理由は開示していません" in page
    site.post("/portal/oa/account/local_government", {"prefecture": "140007", "local_government_code": "141003",
                                                     "applicant_email": "koho@city.yokohama.lg.jp"})
    [pending] = site.api("GET", "/v1/eligibility_applications?status=pending", key=site.reviewer).json()["data"]
    site.api("POST", f"/v1/eligibility_applications/{pending['id']}/approve", key=site.reviewer)
    page = flat(site.client.get("/portal/oa/account").text)
    assert 'class="status status-active">適用<' in page


def test_an_application_without_a_municipality_is_refused_next_to_the_field_and_records_nothing(site: Site) -> None:
    r = site.post("/portal/oa/account/local_government", {"prefecture": "140007", "local_government_code": "",
                                                         "applicant_email": "koho@city.yokohama.lg.jp"})
    assert r.status_code == 422 and 'id="error-local_government_code"' in r.text
    assert 'value="koho@city.yokohama.lg.jp"' in r.text
    assert site.api("GET", "/v1/customers/yokohama/eligibility_applications").json()["data"] == []


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(site: Site) -> None:
    assert site.post("/portal/oa/account/name", {"name": "横浜市"}, csrf=False).status_code == 403
    assert site.post("/portal/oa/plan", {"plan": "standard"}, csrf=False).status_code == 403
    assert site.customer()["name"] == "横浜しみん" and site.customer()["subscription"]["plan"] == "communication"
    assert site.post("/portal/oa/account/name", {"name": "横浜市"}).status_code == 303  # with the token it is done
    assert site.customer()["name"] == "横浜市"
