"""Eligibility for the local-government plan (地方公共団体プラン), as automatic checks and review deadlines.

An application names the local government by its 6-digit code (JIS X 0402, the
last digit a check digit), so names shared by several municipalities (府中市,
伊達市) are never ambiguous. The automatic checks:

1. the account's name is the local government's name in an accepted form: the
   prefecture (東京都) or its office (大阪府庁); the municipality (横浜市), with
   its prefecture (福岡県福岡市) or as its office (新宿区役所, 箱根町役場);
2. the account is verified (認証済アカウント);
3. the body is a prefecture or a municipality: Tokyo's 23 special wards count,
   wards of designated cities (札幌市中央区) and other bodies are not in the
   reference set;
4. no other account of that local government has the plan or is applying;
5. the applicant belongs to it: an ``lg.jp`` e-mail domain passes at once, any
   other goes to a reviewer; applications through agencies are refused.

An application that passes waits for a reviewer, due within five business
days (weekends, Japanese holidays and the 12/29–1/3 closure excluded).
Reasons for a refusal are for operators only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from . import errors

ELIGIBILITY_RULE_SETS = frozenset({"jp_local_government"})  # what a catalog's ``eligibility`` may name
WEIGHTS = (6, 5, 4, 3, 2)
OFFICE = {"市": "役所", "区": "役所", "町": "役場", "村": "役場"}  # 新宿区役所, 箱根町役場
REVIEW_BUSINESS_DAYS = 5


def check_digit(first_five: str) -> int:
    """The sixth digit of a local-government code: (11 − Σ digit × weight mod 11) mod 10, weights 6, 5, 4, 3, 2."""
    return (11 - sum(int(d) * w for d, w in zip(first_five, WEIGHTS, strict=True)) % 11) % 10


def valid_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit() and check_digit(code[:5]) == int(code[5])


@dataclass(frozen=True)
class LocalGovernment:
    code: str
    prefecture: str
    municipality: str  # empty for a prefecture

    @property
    def kind(self) -> str:
        if not self.municipality:
            return "prefecture"
        return {"市": "city", "町": "town", "村": "village", "区": "special_ward"}[self.municipality[-1]]

    @property
    def name(self) -> str:
        return self.municipality or self.prefecture

    def accepted_names(self) -> frozenset[str]:
        """The forms of the account name that identify this body."""
        if not self.municipality:
            return frozenset({self.prefecture, self.prefecture + "庁"})
        own = self.municipality
        office = own + OFFICE[own[-1]]
        return frozenset({own, self.prefecture + own, office, self.prefecture + office})


class Registry:
    """The reference set: prefectures and municipalities by code."""

    def __init__(self, bodies: Iterable[LocalGovernment]) -> None:
        self.by_code = {b.code: b for b in bodies}

    def get(self, code: str) -> LocalGovernment | None:
        return self.by_code.get(code)


@dataclass(frozen=True)
class Applicant:
    account_name: str
    code: str
    email: str
    via_agency: bool = False
    account_verified: bool = False
    other_account_has_it: bool = False  # another account of this body has the plan or a pending application


@dataclass
class Checks:
    failures: list[tuple[str, str]] = field(default_factory=list)  # (condition, reason for operators)
    email_needs_review: bool = False  # not an lg.jp address: a reviewer confirms the applicant belongs to the body

    @property
    def passed(self) -> bool:
        return not self.failures


def automatic_checks(registry: Registry, applicant: Applicant) -> Checks:
    checks = Checks()
    body = registry.get(applicant.code) if valid_code(applicant.code) else None
    if body is None:
        why = "not a valid local-government code" if not valid_code(applicant.code) else "not a prefecture or municipality"
        checks.failures.append(("local_government", f"{applicant.code!r}: {why}"))
    elif applicant.account_name.strip() not in body.accepted_names():
        forms = "、".join(sorted(body.accepted_names()))
        checks.failures.append(("name", f"account name {applicant.account_name!r} is not {body.name} in an accepted form ({forms})"))
    if not applicant.account_verified:
        checks.failures.append(("verified", "the account is not verified (認証済アカウント)"))
    if applicant.other_account_has_it:
        checks.failures.append(("one_account", "another account of this local government has the plan or applied for it"))
    if applicant.via_agency:
        checks.failures.append(("agency", "applications through agencies are not accepted"))
    domain = applicant.email.rpartition("@")[2].lower()
    checks.email_needs_review = not (domain == "lg.jp" or domain.endswith(".lg.jp"))
    return checks


def require_account_unlocked(*, verification_requested: bool, verified: bool, applied: bool, what: str,
                             param: str) -> None:
    """Refuse to change ``what`` (the account name or the premium ID) once verification (認証済アカウント) or the
    local-government plan was applied for, whatever the outcome: raises AccountNameLocked with ``param``.

    Source: seed line-oa-local-government-plan Q&A (認証審査申請後にアカウント名の変更はできません。また、プレミアムID
    についても申請後に変更はできません), SPEC 3.3, issue 11 page 8."""
    if verification_requested or verified or applied:
        raise errors.AccountNameLocked(
            f"the {what} can no longer be changed: verification or the local-government plan was applied for",
            param=param)


def is_closed(day: date, is_holiday: Callable[[date], bool]) -> bool:
    """Weekends, Japanese holidays and the year-end closure (12/29–1/3) are not business days."""
    return (day.weekday() >= 5 or is_holiday(day) or (day.month == 12 and day.day >= 29)
            or (day.month == 1 and day.day <= 3))


def review_due(submitted_on: date, is_holiday: Callable[[date], bool], business_days: int = REVIEW_BUSINESS_DAYS) -> date:
    """The business day by which a reviewer should decide: ``business_days`` business days after submission."""
    day, left = submitted_on, business_days
    while left:
        day += timedelta(days=1)
        if not is_closed(day, is_holiday):
            left -= 1
    return day
