"""The local-government plan's automatic checks, the reference set and review deadlines (SPEC 3.4)."""

from __future__ import annotations

from collections import Counter
from datetime import date

import jpholiday
import pytest

from kakin.adapters.reference_data import local_governments
from kakin.domain import errors
from kakin.domain.eligibility import (
    Applicant,
    automatic_checks,
    check_digit,
    require_account_unlocked,
    review_due,
    valid_code,
)

REGISTRY = local_governments()


def holiday(day: date) -> bool:
    return bool(jpholiday.is_holiday(day))


def test_the_reference_set_is_47_prefectures_and_1741_municipalities_with_valid_check_digits() -> None:
    kinds = Counter(b.kind for b in REGISTRY.by_code.values())
    assert kinds == {"prefecture": 47, "city": 792, "town": 743, "village": 183, "special_ward": 23}
    assert all(valid_code(code) for code in REGISTRY.by_code)
    wards = {b.municipality for b in REGISTRY.by_code.values() if b.kind == "special_ward"}
    assert {b.prefecture for b in REGISTRY.by_code.values() if b.kind == "special_ward"} == {"東京都"}
    assert {"千代田区", "中央区", "新宿区", "江戸川区"} <= wards


@pytest.mark.parametrize(("code", "digit"), [("13206", 3), ("01213", 1), ("34208", 4), ("14100", 3), ("27000", 8)])
def test_the_check_digit_of_a_local_government_code(code: str, digit: int) -> None:
    assert check_digit(code) == digit
    assert valid_code(code + str(digit)) and not valid_code(code + str((digit + 1) % 10))


def checks(name: str, code: str, email: str = "taro@city.example.lg.jp", **kw: bool) -> list[str]:
    applicant = Applicant(account_name=name, code=code, email=email, account_verified=kw.pop("verified", True), **kw)
    return [c for c, _ in automatic_checks(REGISTRY, applicant).failures]


@pytest.mark.parametrize(("name", "code"), [
    ("東京都", "130001"), ("東京都庁", "130001"), ("大阪府庁", "270008"), ("北海道庁", "010006"),
    ("横浜市", "141003"), ("中央区", "131024"), ("福岡県福岡市", "401307"), ("東京都御蔵島村", "133825"),
    ("新宿区役所", "131041"), ("箱根町役場", "143821"), ("横浜市役所", "141003"), ("神奈川県箱根町役場", "143821"),
])
def test_accepted_forms_of_a_local_governments_name(name: str, code: str) -> None:
    assert checks(name, code) == []


@pytest.mark.parametrize(("name", "code", "failed"), [
    ("横浜", "141003", "name"),  # not a form of 横浜市
    ("横浜市役場", "141003", "name"),  # a city has a 市役所
    ("神奈川県", "141003", "name"),  # the prefecture is another body
    ("東京都府中市", "342084", "name"),  # 府中市 of Hiroshima is not Tokyo's: the code decides
    ("札幌市中央区", "011011", "local_government"),  # a ward of a designated city is not in the reference set
    ("札幌市", "011003", "local_government"),  # a wrong check digit
    ("横浜市", "14100", "local_government"),
])
def test_names_codes_and_bodies_that_are_refused(name: str, code: str, failed: str) -> None:
    assert checks(name, code) == [failed]


def test_a_name_shared_by_two_municipalities_is_resolved_by_the_code() -> None:
    assert checks("府中市", "132063") == [] and checks("府中市", "342084") == []
    assert checks("東京都府中市", "132063") == [] and checks("広島県府中市", "342084") == []


def test_verification_one_account_per_body_agencies_and_the_applicants_e_mail() -> None:
    assert checks("横浜市", "141003", verified=False) == ["verified"]
    assert checks("横浜市", "141003", other_account_has_it=True) == ["one_account"]
    assert checks("横浜市", "141003", via_agency=True) == ["agency"]
    lg = automatic_checks(REGISTRY, Applicant("横浜市", "141003", "taro@city.yokohama.lg.jp", account_verified=True))
    other = automatic_checks(REGISTRY, Applicant("横浜市", "141003", "taro@example.com", account_verified=True))
    assert lg.passed and not lg.email_needs_review
    assert other.passed and other.email_needs_review  # passes the automatic checks; a reviewer confirms the address
    fake = automatic_checks(REGISTRY, Applicant("横浜市", "141003", "taro@lg.jp.example.com", account_verified=True))
    assert fake.email_needs_review


@pytest.mark.parametrize(("submitted", "due"), [
    (date(2026, 11, 16), date(2026, 11, 24)),  # Mon → Nov 23 (勤労感謝の日) and the weekend are skipped
    (date(2026, 12, 25), date(2027, 1, 7)),  # the 12/29–1/3 closure
    (date(2026, 4, 30), date(2026, 5, 12)),  # Golden Week: May 3–6 (May 6 a substitute holiday)
])
def test_a_review_is_due_five_business_days_after_the_application(submitted: date, due: date) -> None:
    assert review_due(submitted, holiday) == due


@pytest.mark.parametrize("requested, verified, applied", [(True, False, False), (False, True, False), (False, False, True)])
def test_the_account_name_is_fixed_once_verification_or_the_plan_is_applied_for(
        requested: bool, verified: bool, applied: bool) -> None:
    with pytest.raises(errors.AccountNameLocked) as locked:
        require_account_unlocked(verification_requested=requested, verified=verified, applied=applied,
                                 what="account name", param="name")
    assert locked.value.code == "account_name_locked" and locked.value.param == "name"


def test_the_account_name_may_change_while_nothing_was_applied_for() -> None:
    require_account_unlocked(verification_requested=False, verified=False, applied=False, what="premium ID",
                             param="premium_id")
