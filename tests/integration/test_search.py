"""The console's searches: customers by name, e-mail, ids and domain; invoices and credit notes by issue date,
amount and counterparty (電子帳簿保存法), each alone and combined, with CSV export; bad input and other tenants."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import KakinError
from kakin.services import access, billing, documents, domains, due_run, members, operations
from kakin.services.operators import CommandLine
from kakin.services.search import DocumentQuery, documents_csv, search_customers, search_documents
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=JST)


@pytest.fixture
def seeded(engine: Engine) -> dict[str, str]:
    """NipoPlus (180 yen a user a month, tax included, charged at sign-up and on the same day monthly):

    - acme (株式会社アクメ, addressee アクメ経理部): gold, 10 users from May 3 → 1,800 on May 3 and June 3;
      a credit note of 900 against the May invoice on May 20.
    - beta (有限会社ベータ): free plan; registered the domain beta-group.jp.
    - gamma (ガンマ商事): gold, 20 users from May 10 → 3,600 on May 10; cancelled May 15 (the paid days left become a
      trial, to June 10).
    - gone (=HYPERLINK("x") 合同会社): deleted its organization on May 4.
    Another tenant has a customer acme named 株式会社アクメ too, with a 1,800 invoice of its own on May 3.
    Returns the member ids (acme's super admin and its member).
    """
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "カキン", "nipoplus", at(5, 1))
        other = create_tenant(uow, "u", "Other", "nipoplus", at(5, 1))
        for t in (other, tenant):
            acme = billing.create_customer(uow, t, gateway, "acme", "株式会社アクメ", at(5, 3), payment_method="pm_card_visa")
            boss = access.add_super_admin(uow, t.row, acme.id or 0, "tanaka@acme.co.jp", "田中", at(5, 3))
        member = members.add_member(uow, access.Operator(tenant.row, "owner", "test").acting_for(boss), "acme",
                                    "Sato@Acme.co.jp", "佐藤", "member", lambda: at(5, 3))["id"]
        documents.set_billing_profile(uow, tenant.row, "acme", addressee="アクメ経理部", postal_code=None, address=None,
                                      email=None, now=at(5, 3), actor="operator")
        for t in (tenant, other):
            billing.subscribe(uow, t, gateway, "acme", at(5, 3), "gold", seats=10)
        beta = billing.create_customer(uow, tenant, gateway, "beta", "有限会社ベータ", at(5, 4))
        beta_admin = access.add_super_admin(uow, tenant.row, beta.id or 0, "info@beta.example", "鈴木", at(5, 4))
        domains.add_domain(uow, access.Operator(tenant.row, "owner", "test").acting_for(beta_admin), "beta",
                           "beta-group.jp", lambda: at(5, 4))
        billing.create_customer(uow, tenant, gateway, "gone", '=HYPERLINK("x") 合同会社', at(5, 4))
        billing.delete_customer(uow, tenant, gateway, "gone", at(5, 4))
        billing.create_customer(uow, tenant, gateway, "gamma", "ガンマ商事", at(5, 10), payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "gamma", at(5, 10), "gold", seats=20)
        billing.cancel(uow, tenant, gateway, "gamma", at(5, 15))
        may_acme = next(i for i in uow.invoices_for(tenant.row) if i["customer"] == "acme")
        operations.issue_credit_note(uow, tenant, gateway, CommandLine(tenant.row), str(may_acme["number"]), 900, "返金", at(5, 20))
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, at(6, 3, 12))
    due_run.run_due(lambda: UnitOfWork(engine), "u", gateway, at(5, 31))
    return {"boss": boss, "member": member}


def customers(engine: Engine, text: str | None = None, plan: str | None = None, status: str | None = None,
              limit: int = 100, after: int | None = None, tenant: str = "t") -> list[dict[str, Any]]:
    with UnitOfWork(engine, readonly=True) as uow:
        return search_customers(uow, open_tenant(uow, tenant).row, text, plan, status, limit, after)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def docs(engine: Engine, **query: Any) -> list[dict[str, Any]]:
    with UnitOfWork(engine, readonly=True) as uow:
        return search_documents(uow, open_tenant(uow, "t").row, DocumentQuery(**query))


def found(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [(r["kind"], r["customer"], r["issued_on"].isoformat(), r["total"]) for r in rows]


@pytest.fixture
def bare(engine: Engine) -> None:
    """A tenant with no customers: bad input is refused before any query."""
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "t", "カキン", "nipoplus", at(5, 1))


def refusal(engine: Engine, fn: Any) -> tuple[str, str | None]:
    with UnitOfWork(engine, readonly=True) as uow, pytest.raises(KakinError) as caught:
        fn(uow, open_tenant(uow, "t").row)
    return caught.value.code, caught.value.param


# ------------------------------------------------------------------ customers
def test_customers_are_found_by_a_fragment_of_their_name_in_this_tenant_only(engine: Engine, seeded: dict[str, str]) -> None:
    assert ids(customers(engine, "アクメ")) == ["acme"]  # the other tenant's 株式会社アクメ never appears
    assert ids(customers(engine, "会社")) == ["acme", "beta", "gone"]
    assert ids(customers(engine, "アクメ", tenant="u")) == ["acme"]
    assert customers(engine, "アクメ")[0]["email"] == "tanaka@acme.co.jp"  # the super admin's


def test_customers_are_found_by_a_members_e_mail_whatever_its_case(engine: Engine, seeded: dict[str, str]) -> None:
    assert ids(customers(engine, "sato@acme")) == ["acme"]
    assert ids(customers(engine, "INFO@BETA.EXAMPLE")) == ["beta"]
    assert ids(customers(engine, "@")) == ["acme", "beta"]


def test_customers_are_found_by_their_id_a_member_id_or_a_domain_exactly(engine: Engine, seeded: dict[str, str]) -> None:
    assert ids(customers(engine, "gamma")) == ["gamma"]
    assert ids(customers(engine, "gam")) == []  # ids match whole: ガンマ商事 has no "gam" in its name
    assert ids(customers(engine, seeded["member"])) == ["acme"]
    assert ids(customers(engine, seeded["boss"])) == ["acme"]
    assert ids(customers(engine, "beta-group.jp")) == ["beta"]


def test_customers_are_filtered_by_plan_and_status_alone_and_with_a_text(engine: Engine, seeded: dict[str, str]) -> None:
    assert ids(customers(engine, plan="gold")) == ["acme", "gamma"]
    assert ids(customers(engine, plan="free")) == ["beta"]
    assert ids(customers(engine, status="active")) == ["acme", "beta"]
    assert ids(customers(engine, status="trialing")) == ["gamma"]  # cancelled: its paid days left are a trial
    assert ids(customers(engine, status="deleted")) == ["gone"]
    assert ids(customers(engine, "商事", plan="gold", status="trialing")) == ["gamma"]
    assert ids(customers(engine, "商事", plan="gold", status="active")) == []
    assert ids(customers(engine, "商事", plan="free")) == []
    acme = customers(engine, "acme")[0]
    assert (acme["plan"], acme["status"], acme["deleted_on"]) == ("gold", "active", None)


def test_a_wildcard_in_the_text_is_taken_literally(engine: Engine, seeded: dict[str, str]) -> None:
    assert ids(customers(engine, "%")) == []
    assert ids(customers(engine, "_")) == []


def test_customers_come_a_page_at_a_time(engine: Engine, seeded: dict[str, str]) -> None:
    first = customers(engine, limit=2)
    assert ids(first) == ["acme", "beta"]
    assert ids(customers(engine, limit=2, after=first[-1]["row_id"])) == ["gone", "gamma"]


@pytest.mark.parametrize(("args", "code", "param"), [
    (("x", "platinum", None, 10, None), "unknown_plan", "plan"),
    (("x", None, "zombie", 10, None), "invalid_value", "status"),
    (("x", None, None, 0, None), "invalid_value", "limit"),
    (("x", None, None, 101, None), "invalid_value", "limit"),
    (("x", None, None, 10, -1), "invalid_value", "after"),
    (("x" * 201, None, None, 10, None), "invalid_value", "text"),
    (("a\x00b", None, None, 10, None), "invalid_value", "text"),
])
def test_a_bad_customer_search_is_refused_naming_the_field(engine: Engine, bare: None, args: tuple[Any, ...], code: str,
                                                           param: str) -> None:
    assert refusal(engine, lambda uow, row: search_customers(uow, row, *args)) == (code, param)


# ------------------------------------------------------------------ invoices and credit notes
def test_documents_are_found_by_issue_date_range_newest_first(engine: Engine, seeded: dict[str, str]) -> None:
    assert found(docs(engine, issued_from=date(2026, 5, 1), issued_to=date(2026, 5, 31))) == [
        ("credit_note", "acme", "2026-05-20", 900), ("invoice", "gamma", "2026-05-10", 3600),
        ("invoice", "acme", "2026-05-03", 1800)]  # 180 × 20 = 3,600; 180 × 10 = 1,800 (tax included)
    assert found(docs(engine, issued_from=date(2026, 6, 1))) == [("invoice", "acme", "2026-06-03", 1800)]
    assert found(docs(engine, issued_to=date(2026, 5, 3))) == [("invoice", "acme", "2026-05-03", 1800)]


def test_documents_are_found_by_amount_range(engine: Engine, seeded: dict[str, str]) -> None:
    assert found(docs(engine, amount_min=3000)) == [("invoice", "gamma", "2026-05-10", 3600)]
    assert found(docs(engine, amount_max=1000)) == [("credit_note", "acme", "2026-05-20", 900)]
    assert [r["customer"] for r in docs(engine, amount_min=1800, amount_max=1800)] == ["acme", "acme"]


def test_documents_are_found_by_counterparty_name_addressee_or_id(engine: Engine, seeded: dict[str, str]) -> None:
    assert found(docs(engine, counterparty="ガンマ")) == [("invoice", "gamma", "2026-05-10", 3600)]
    acme = docs(engine, counterparty="アクメ")  # the other tenant's 株式会社アクメ and its invoice never appear
    assert [r["kind"] for r in acme] == ["invoice", "credit_note", "invoice"]
    assert {r["counterparty"] for r in acme} == {"アクメ経理部"}  # the recipient each document was written with
    assert docs(engine, counterparty="経理部") == acme
    assert docs(engine, counterparty="acme") == acme  # its id


def test_document_conditions_combine(engine: Engine, seeded: dict[str, str]) -> None:
    assert found(docs(engine, counterparty="アクメ", issued_from=date(2026, 6, 1), amount_min=1000, amount_max=2000,
                      kind="invoice")) == [("invoice", "acme", "2026-06-03", 1800)]
    assert found(docs(engine, counterparty="アクメ", issued_to=date(2026, 5, 31), kind="credit_note")) == [
        ("credit_note", "acme", "2026-05-20", 900)]
    assert docs(engine, counterparty="ガンマ", amount_max=1000) == []
    credit_note = docs(engine, kind="credit_note")[0]
    assert (credit_note["tax"], credit_note["status"]) == (81, "refund")  # floor(900 × 10 ÷ 110) = 81


def test_documents_come_a_page_at_a_time(engine: Engine, seeded: dict[str, str]) -> None:
    everything = docs(engine)
    assert len(everything) == 4
    first = docs(engine, limit=2)
    rest = docs(engine, limit=2, after=first[-1]["cursor"])
    assert first + rest == everything


@pytest.mark.parametrize(("query", "code", "param"), [
    ({"issued_from": date(2026, 6, 1), "issued_to": date(2026, 5, 1)}, "invalid_value", "issued_to"),
    ({"amount_min": 2000, "amount_max": 1000}, "invalid_value", "amount_max"),
    ({"amount_min": -1}, "invalid_value", "amount_min"),
    ({"amount_max": 1.5}, "invalid_value", "amount_max"),
    ({"issued_from": "2026-05-01"}, "invalid_value", "issued_from"),
    ({"kind": "receipt"}, "invalid_value", "kind"),
    ({"limit": 500}, "invalid_value", "limit"),
    ({"after": "yesterday"}, "invalid_cursor", "after"),
    ({"after": "2026-02-30.0.1"}, "invalid_cursor", "after"),
])
def test_a_bad_document_search_is_refused_naming_the_field(engine: Engine, bare: None, query: dict[str, Any], code: str,
                                                           param: str) -> None:
    assert refusal(engine, lambda uow, row: search_documents(uow, row, DocumentQuery(**query))) == (code, param)
    if "after" not in query and "limit" not in query:  # the export checks the same conditions before any row
        assert refusal(engine, lambda uow, row: documents_csv(uow, row, DocumentQuery(**query))) == (code, param)


def test_the_csv_has_a_byte_order_mark_a_header_and_every_match(engine: Engine, seeded: dict[str, str]) -> None:
    with UnitOfWork(engine, readonly=True) as uow:
        text = "".join(documents_csv(uow, open_tenant(uow, "t").row, DocumentQuery(limit=1)))  # limit: pages only
    assert text.startswith("\ufeffnumber,kind,issued_on,counterparty,customer,total,tax,status\r\n")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [(r[1], r[2], r[3], r[5], r[6]) for r in rows[1:]] == [
        ("invoice", "2026-06-03", "アクメ経理部", "1800", "163"),  # floor(1,800 × 10 ÷ 110) = 163
        ("credit_note", "2026-05-20", "アクメ経理部", "900", "81"),
        ("invoice", "2026-05-10", "ガンマ商事", "3600", "327"),  # floor(3,600 × 10 ÷ 110) = 327
        ("invoice", "2026-05-03", "アクメ経理部", "1800", "163")]
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")


def test_a_counterparty_that_looks_like_a_formula_is_written_as_text_in_the_csv(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "カキン", "nipoplus", at(5, 1))
        billing.create_customer(uow, tenant, gateway, "f", '=HYPERLINK("http://x")', at(5, 3), payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "f", at(5, 3), "gold", seats=5)
        text = "".join(documents_csv(uow, open_tenant(uow, "t").row, DocumentQuery()))
    assert list(csv.reader(io.StringIO(text)))[1][3] == "'=HYPERLINK(\"http://x\")"


def test_a_customer_id_in_capitals_is_found_as_typed(engine: Engine, bare: None) -> None:
    with UnitOfWork(engine) as uow:
        billing.create_customer(uow, open_tenant(uow, "t"), CardSimulator(), "ACME-HQ", "本社", at(5, 3))
    assert ids(customers(engine, "ACME-HQ")) == ["ACME-HQ"]
    assert ids(customers(engine, "acme-hq")) == []  # ids are matched exactly
