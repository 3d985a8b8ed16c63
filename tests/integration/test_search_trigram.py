"""The console's substring searches through the trigram indexes of migration 0027 (issue 12's 200 ms at 100,000
customers): a text of 3+ characters is looked up in the index (SQLite: the FTS5 trigram tables; PostgreSQL: GIN
``gin_trgm_ops``), shorter ones are scanned, and either way the customers found are exactly those the plain
LIKE / ILIKE scan finds: Japanese names, Latin letters in any case, ``%`` and ``_`` literal, quotes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, or_, select, text, union

from kakin.adapters.db import reports_repo, tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.reports_repo import ReportRepository
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import access, billing, documents, members
from kakin.services.search import DocumentQuery, search_customers, search_documents
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
MAY_3 = datetime(2026, 5, 3, 10, tzinfo=JST)

# customer id → (name, super admin's e-mail, addressee); each subscribes to NipoPlus GOLD, so each has an invoice
CUSTOMERS = {
    "acme": ("株式会社アクメ", "tanaka@acme.co.jp", None),
    "akuame": ("アクアメ商店", "info@akuame.example", None),
    "acme-en": ("ACME Trading", "Info@ACME-Trading.example", "経理部 Accounts Payable"),
    "pct": ("100%_Corp", "a_b@pct.example", None),
    "thousand": ("1000 Corp", "axb@thousand.example", None),
    "apfel": ("Äpfel GmbH", "x@apfel.example", "ÄPFEL Buchhaltung"),
    "wide": ("ＡＢＣ商事", "abc@wide.example", None),
    "quote": ('Say "Hi" 合同会社', "hi@quote.example", None),
}


def seed(engine: Engine) -> Engine:
    """The customers above in tenant ``t``; tenant ``u`` has a 株式会社アクメ (and an ACME Trading) of its own."""
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "t", "nipoplus", MAY_3)
        other = create_tenant(uow, "u", "u", "nipoplus", MAY_3)
        for t, chosen in ((tenant, CUSTOMERS), (other, {k: CUSTOMERS[k] for k in ("acme", "acme-en")})):
            for key, (name, email, addressee) in chosen.items():
                row = billing.create_customer(uow, t, gateway, key, name, MAY_3, payment_method="pm_card_visa")
                access.add_super_admin(uow, t.row, row.id or 0, email, "担当", MAY_3)
                if addressee:
                    documents.set_billing_profile(uow, t.row, key, addressee=addressee, postal_code=None, address=None,
                                                  email=None, now=MAY_3, actor="operator")
                billing.subscribe(uow, t, gateway, key, MAY_3, "gold", seats=5)
    return engine


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    return seed(engine)


class Statements:
    """The SELECT statements a block runs on ``engine`` (with their parameters)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.seen = engine, []

    def __enter__(self) -> list[tuple[str, Any]]:
        event.listen(self.engine, "before_cursor_execute", self._keep)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._keep)

    def _keep(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.seen.append((statement, parameters))


def plans(engine: Engine, statements: list[tuple[str, Any]], text_: str) -> str:
    """SQLite: the query plans of ``statements``. PostgreSQL: the plans of ILIKE ``text_`` on each column the searches
    match by fragment, with sequential and plain index scans turned off, so that they show whether the ILIKE can be
    answered from an index at all (on these tiny tables the planner rightly prefers the tenant's rows)."""
    found = []
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
                conn.exec_driver_sql(f"SET {setting} = off")
            for column in (tables.customers.c.name, tables.customers.c.addressee, tables.members.c.email):
                q = select(column.table.c.id).where(ReportRepository(conn)._contains(column, text_))
                found += [r[0] for r in conn.execute(text("EXPLAIN " + str(q.compile(
                    conn, compile_kwargs={"literal_binds": True}))))]
        else:
            for statement, parameters in statements:
                found += [" ".join(str(c) for c in r)
                          for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        conn.rollback()
    return "\n".join(found)


def customers(engine: Engine, text_: str, tenant: str = "t") -> tuple[list[str], str]:
    """The customer ids the console's search finds for ``text_``, and the plans of its queries."""
    with Statements(engine) as seen, UnitOfWork(engine, readonly=True) as uow:
        found = [r["id"] for r in search_customers(uow, open_tenant(uow, tenant).row, text_, None, None, 100, None)]
    return found, plans(engine, seen, text_)


def counterparties(engine: Engine, text_: str) -> tuple[list[str], str]:
    """The customers whose documents the document search by counterparty ``text_`` finds, and its queries' plans."""
    with Statements(engine) as seen, UnitOfWork(engine, readonly=True) as uow:
        found = search_documents(uow, open_tenant(uow, "t").row, DocumentQuery(counterparty=text_, limit=100))
    return sorted({r["customer"] for r in found}), plans(engine, seen, text_)


def scanned(engine: Engine, text_: str, columns: list[Any]) -> list[str]:
    """The reference: tenant t's customers whose ``columns`` (customers' or members' e-mail) contain ``text_`` by the
    plain LIKE (SQLite) / ILIKE (PostgreSQL) scan the searches made before the trigram indexes, or whose id is it."""
    with engine.connect() as conn:
        tid = conn.execute(select(tables.tenants.c.id).where(tables.tenants.c.code == "t")).scalar_one()
        by_name = [c for c in columns if c.table is tables.customers]
        ids = [select(tables.customers.c.id).where(tables.customers.c.tenant_id == tid, tables.customers.c.key == text_)]
        if by_name:
            ids.append(select(tables.customers.c.id).where(tables.customers.c.tenant_id == tid, or_(
                *(ReportRepository(conn)._contains(c, text_) for c in by_name))))
        if tables.members.c.email in columns:
            ids.append(select(tables.members.c.customer_id).where(
                tables.members.c.tenant_id == tid, ReportRepository(conn)._contains(tables.members.c.email, text_)))
        keys = conn.execute(select(tables.customers.c.key).where(tables.customers.c.id.in_(union(*ids)))).scalars()
        return sorted(keys)


def served_by_trigrams(engine: Engine, plan: str) -> bool:
    if engine.dialect.name == "sqlite":
        return "customers_text VIRTUAL TABLE" in plan or "members_text VIRTUAL TABLE" in plan
    return all(f"Bitmap Index Scan on {name}" in plan for name in tables.TRIGRAM_INDEXES)


# text → the customers found by name or e-mail (in row order), and by counterparty (name or addressee, sorted)
CASES = [
    ("アクメ", ["acme"], ["acme"]),  # not アクアメ商店, nor the other tenant's 株式会社アクメ
    ("株式会社アクメ", ["acme"], ["acme"]),
    ("acme", ["acme", "acme-en"], ["acme", "acme-en"]),  # a customer id too (acme exactly); ACME Trading any case
    ("aCmE tRaDiNg", ["acme-en"], ["acme-en"]),
    ("accounts payable", [], ["acme-en"]),  # an addressee: the counterparty, not the customer search
    ("0%_", ["pct"], ["pct"]),  # % and _ literal: not 1000 Corp
    ("a_b", ["pct"], []),  # a member's e-mail a_b@…, not axb@…
    ("_corp", ["pct"], ["pct"]),
    ('"Hi" 合同', ["quote"], ["quote"]),  # a double quote, which FTS5's query syntax would otherwise read
    ("ＡＢＣ", ["wide"], ["wide"]),
    ("@acme", ["acme", "acme-en"], []),  # tanaka@acme.co.jp and Info@ACME-Trading.example
]


@pytest.mark.parametrize(("text_", "by_name_or_email", "by_counterparty"), CASES, ids=[c[0] for c in CASES])
def test_a_text_of_three_or_more_characters_finds_through_the_trigram_index_exactly_what_the_scan_found(
        seeded: Engine, text_: str, by_name_or_email: list[str], by_counterparty: list[str]) -> None:
    found, plan = customers(seeded, text_)
    assert found == by_name_or_email
    assert sorted(found) == scanned(seeded, text_, [tables.customers.c.name, tables.members.c.email])
    assert served_by_trigrams(seeded, plan), plan
    found, plan = counterparties(seeded, text_)
    assert found == by_counterparty
    assert found == scanned(seeded, text_, [tables.customers.c.name, tables.customers.c.addressee])
    assert served_by_trigrams(seeded, plan), plan


@pytest.mark.parametrize("text_", ["äpfel", "ÄPFEL", "ａｂｃ", "abc", "Buchhaltung", "%", "_", "ア", "メ", "ac", "AC",
                                    "1%", "0_", "\"", "@"])
def test_a_letter_any_case_or_a_text_of_one_or_two_characters_finds_what_the_scan_found(seeded: Engine,
                                                                                        text_: str) -> None:
    """Letters beyond Latin (Ä, full-width Ａ) are matched the way each database's LIKE / ILIKE always did: the
    trigram index folds more cases than SQLite's LIKE, so its rows are checked by the LIKE again. A text of 1 or 2
    characters has no trigram: SQLite scans (PostgreSQL's planner decides)."""
    found, plan = customers(seeded, text_)
    assert sorted(found) == scanned(seeded, text_, [tables.customers.c.name, tables.members.c.email])
    by_counterparty, counterparty_plan = counterparties(seeded, text_)
    assert by_counterparty == scanned(seeded, text_, [tables.customers.c.name, tables.customers.c.addressee])
    if len(text_) < reports_repo.TRIGRAM:
        assert not served_by_trigrams(seeded, plan) or seeded.dialect.name == "postgresql", plan
    else:
        assert served_by_trigrams(seeded, plan) and served_by_trigrams(seeded, counterparty_plan), plan
    if seeded.dialect.name == "sqlite" and text_ in ("äpfel", "ａｂｃ"):
        assert found == []  # SQLite's LIKE folds Latin letters only, though FTS5's trigrams fold Ä and Ａ too


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/kakin.db")
    migrate(engine)
    yield engine
    engine.dispose()


def test_on_sqlite_the_trigram_tables_follow_every_insert_update_and_delete(sqlite_engine: Engine) -> None:
    engine = seed(sqlite_engine)

    def indexed(fts: str, phrase: str) -> list[int]:
        with engine.connect() as conn:
            return list(conn.execute(text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q"), {"q": f'"{phrase}"'}).scalars())

    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        documents.set_billing_profile(uow, tenant.row, "acme-en", addressee="新しい宛名部", postal_code=None,
                                      address=None, email=None, now=MAY_3, actor="operator")
        boss = uow.conn.execute(select(tables.members.c.public_id).where(
            tables.members.c.email == "Info@ACME-Trading.example")).scalars().first()
        added = members.add_member(uow, access.Operator(tenant.row, "owner", "test").acting_for(boss or ""),
                                   "acme-en", "Yamada@Shinki.example", "山田", "member", lambda: MAY_3)
    assert len(indexed("customers_text", "新しい宛名")) == 1
    assert len(indexed("customers_text", "Accounts Payable")) == 1  # tenant u's ACME Trading still; t's changed
    assert len(indexed("members_text", "yamada@shinki")) == 1
    assert counterparties(engine, "新しい宛名")[0] == ["acme-en"] and counterparties(engine, "payable")[0] == []
    assert customers(engine, "shinki.example")[0] == ["acme-en"]
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        members.remove_member(uow, access.Operator(tenant.row, "owner", "test").acting_for(boss or ""), "acme-en",
                              added["id"], lambda: MAY_3)
    assert indexed("members_text", "yamada@shinki") == []
    assert customers(engine, "shinki.example")[0] == []
