"""Invoices and credit notes written before migration 0016 are given the parties their documents showed until then."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alembic import command
from sqlalchemy import select, text

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import alembic_config, make_engine


def upgrade(engine, revision: str) -> None:  # type: ignore[no-untyped-def]
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_earlier_invoices_and_credit_notes_are_backfilled_with_the_vendor_and_billing_profile(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0013")
    now = datetime(2026, 5, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, code, name, catalog, timezone, invoice_prefix, registration_number, "
                          "address, created_at) VALUES (1, 'n', 'NipoPlus', 'nipoplus', 'Asia/Tokyo', 'N', "
                          "'T1040001000003', '東京都港区', :now)"), {"now": now})
        conn.execute(text("INSERT INTO customers (id, tenant_id, key, name, addressee, postal_code, created_at) VALUES "
                          "(1, 1, 'acme', '株式会社アクメ', '経理部 御中', '105-0011', :now), "
                          "(2, 1, 'beta', 'ベータ合同会社', NULL, NULL, :now)"), {"now": now})
        for i in (1, 2):
            conn.execute(text("INSERT INTO invoices (id, tenant_id, customer_id, seq, number, issued_on, issued_at, subtotal, "
                              "tax, total, tax_rate, tax_inclusive, credit_applied, credit_carried, status) VALUES "
                              "(:i, 1, :i, :i, :n, :d, :now, 1800, 163, 1800, '10%', true, 0, 0, 'paid')"),
                         {"i": i, "n": f"N-{i:08d}", "d": date(2026, 5, 3), "now": now})
        conn.execute(text("INSERT INTO credit_notes (tenant_id, customer_id, invoice_id, seq, number, issued_on, issued_at, "
                          "amount, tax, total, reason, settlement) VALUES "
                          "(1, 1, 1, 1, 'N-CN-00000001', :d, :now, 180, 16, 180, '値引き', 'refund')"),
                     {"d": date(2026, 5, 4), "now": now})
    upgrade(engine, "head")
    party = [tables.invoices.c[f] for f in ("issuer_name", "issuer_registration_number", "issuer_address",
                                           "recipient_name", "recipient_postal_code", "recipient_address")]
    with engine.connect() as conn:
        invoices = conn.execute(select(*party).order_by(tables.invoices.c.id)).all()
        note = conn.execute(select(*[tables.credit_notes.c[c.name] for c in party])).one()
        members = conn.execute(select(tables.audit_log.c.member)).all()
    engine.dispose()
    issuer = ("NipoPlus", "T1040001000003", "東京都港区")
    assert [tuple(r) for r in invoices] == [(*issuer, "経理部 御中", "105-0011", ""), (*issuer, "ベータ合同会社", "", "")]
    assert tuple(note) == (*issuer, "経理部 御中", "105-0011", "")
    assert members == []
