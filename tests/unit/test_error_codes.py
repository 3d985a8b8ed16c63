"""Error codes and their HTTP statuses: declared by the error classes, listed in the README."""

from __future__ import annotations

import re
from pathlib import Path

from kakin.api.errors import error_codes, status_of
from kakin.domain import errors

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_codes() -> dict[str, int]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- error codes:", 1)[1].split("<!-- end of error codes -->", 1)[0]
    listed: dict[str, int] = {}
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+) \|$", table, flags=re.M):
        for code in re.findall(r"`([a-z_]+)`", codes):
            assert code not in listed, f"{code} is listed twice in the README"
            listed[code] = int(status)
    return listed


def test_the_readme_lists_every_error_code_with_the_status_its_class_gives() -> None:
    assert readme_codes() == error_codes()


def test_every_error_class_has_its_own_code_and_a_known_kind() -> None:
    classes = errors.every_error_class()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "two error classes share a code"
    assert all(cls.kind in errors.KINDS for cls in classes)


def test_refusals_about_an_invoice_state_are_conflicts() -> None:
    assert [status_of(cls) for cls in (errors.InvoiceNotOpen, errors.RefundFailed, errors.InvoiceNotPaid)] == [409, 409, 409]


def test_a_subclass_answers_with_the_status_of_its_kind_whatever_its_code() -> None:
    assert status_of(errors.CustomerExists("x")) == 409  # raised as a bare KakinError before, with a code from a table
    assert status_of(errors.SuperAdminExists("x")) == 409
    assert status_of(errors.CardDeclined("x", decline_code="expired_card")) == 402
    assert errors.CardDeclined("x", decline_code="expired_card").as_dict()["decline_code"] == "expired_card"
