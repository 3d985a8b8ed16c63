"""The hot paths' bulk writes (``adapters/db/bulk.py``) on SQLite and PostgreSQL: what is written through the driver
(executemany, or one COPY on PostgreSQL from ``COPY_FROM`` rows) reads back through the tables' types unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from kakin.adapters.db import tables
from kakin.adapters.db.bulk import COPY_FROM, in_ids, insert_many, update_many
from kakin.adapters.db.intents_repo import PaymentIntentRepository
from kakin.adapters.db.store import UnitOfWork
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 6, 3, 0, 0, 0, 123456, tzinfo=JST)
AWKWARD = 'tab\there, "quotes", back\\slash, new\nline, \\N, 顧客・株式会社'  # what COPY's text format must escape


def _tenant_and_customer(engine: Engine) -> tuple[int, int]:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", NOW).row
    with engine.begin() as conn:
        customer = conn.execute(tables.customers.insert().values(
            tenant_id=tenant.id, key="c1", name="顧客", created_at=NOW).returning(tables.customers.c.id)).scalar_one()
    return tenant.id, customer


@pytest.mark.parametrize("rows", [3, COPY_FROM + 10])
def test_bulk_inserted_rows_read_back_as_written(engine: Engine, rows: int) -> None:
    tenant_id, customer_id = _tenant_and_customer(engine)
    written = [{"tenant_id": tenant_id, "customer_id": customer_id if i % 2 else None,
                "at": NOW + timedelta(seconds=i), "actor": f"worker {i}", "member": None,
                "action": "invoice.finalized", "before": None if i % 3 else AWKWARD, "after": f'{{"n": {i}}}'}
               for i in range(rows)]
    with engine.begin() as conn:
        insert_many(conn, tables.audit_log, written)
    with engine.connect() as conn:
        back = [dict(r) for r in conn.execute(select(tables.audit_log).where(
            tables.audit_log.c.actor.like("worker %")).order_by(tables.audit_log.c.id)).mappings()]
    assert [{k: r[k] for k in written[0]} for r in back] == [{**w, "at": w["at"].astimezone(UTC)} for w in written]
    assert all(r["at"].tzinfo is not None for r in back)


def test_a_naive_instant_is_refused_by_a_bulk_insert(engine: Engine) -> None:
    tenant_id, _ = _tenant_and_customer(engine)
    naive = [{"tenant_id": tenant_id, "at": datetime(2026, 6, 3), "actor": "w", "action": "a"}] * (COPY_FROM + 1)
    with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
        insert_many(conn, tables.audit_log, naive)


def _intent(tenant_id: int, customer_id: int, key: str, amount: int) -> dict[str, object]:
    return {"tenant_id": tenant_id, "customer_id": customer_id, "invoice_id": None, "covers": None, "purchase": None,
            "amount": amount, "payment_method": "pm_card_visa", "gateway_customer": None, "idempotency_key": key,
            "status": "pending", "at": NOW}


def test_a_batch_of_intents_leaves_a_key_recorded_meanwhile_as_it_is_and_writes_the_others(engine: Engine) -> None:
    tenant_id, customer_id = _tenant_and_customer(engine)
    with engine.begin() as conn:
        PaymentIntentRepository(conn).add([_intent(tenant_id, customer_id, "k7", 999)])
        PaymentIntentRepository(conn).record_outcome("k7", "succeeded", None, "ch_1", NOW)
    batch = [_intent(tenant_id, customer_id, f"k{i}", 1800) for i in range(COPY_FROM + 10)]  # k7 among them
    with engine.begin() as conn:
        PaymentIntentRepository(conn).add(batch)
    with engine.connect() as conn:
        stored = PaymentIntentRepository(conn).by_keys([f"k{i}" for i in range(COPY_FROM + 10)])
    assert len(stored) == COPY_FROM + 10
    assert (stored["k7"]["amount"], stored["k7"]["status"], stored["k7"]["reference"]) == (999, "succeeded", "ch_1")
    assert {r["amount"] for k, r in stored.items() if k != "k7"} == {1800}
    assert {r["status"] for k, r in stored.items() if k != "k7"} == {"pending"}


def test_a_batch_of_ids_selects_exactly_those_rows(engine: Engine) -> None:
    tenant_id, _ = _tenant_and_customer(engine)
    with engine.begin() as conn:
        insert_many(conn, tables.customers, [{"tenant_id": tenant_id, "key": f"b{i}", "name": f"n{i}", "created_at": NOW}
                                             for i in range(1500)])
        ids = list(conn.execute(select(tables.customers.c.id).order_by(tables.customers.c.id)).scalars())
        wanted = ids[::7]
        found = conn.execute(select(tables.customers.c.id).where(in_ids(conn, tables.customers.c.id, wanted)).order_by(
            tables.customers.c.id)).scalars().all()
    assert found == wanted


@pytest.mark.parametrize("rows", [3, COPY_FROM + 10])
def test_bulk_updates_set_exactly_the_rows_and_columns_given(engine: Engine, rows: int) -> None:
    tenant_id, _ = _tenant_and_customer(engine)
    with engine.begin() as conn:
        insert_many(conn, tables.customers, [{"tenant_id": tenant_id, "key": f"u{i}", "name": AWKWARD, "created_at": NOW}
                                             for i in range(rows + 5)])
        ids = list(conn.execute(select(tables.customers.c.id).where(tables.customers.c.key.like("u%")).order_by(
            tables.customers.c.id)).scalars())
        changed = {i: {"next_due_at": None if n % 4 == 0 else NOW + timedelta(days=n), "version": n,
                       "deleted_on": (NOW + timedelta(days=n)).date() if n % 2 else None, "name": f"変更 {n}\t\\"}
                   for n, i in enumerate(ids[:rows])}
        update_many(conn, tables.customers, ("next_due_at", "version", "deleted_on", "name"), list(changed.items()))
    with engine.connect() as conn:
        back = {r["id"]: r for r in conn.execute(select(tables.customers).where(
            tables.customers.c.id.in_(ids))).mappings()}
    for i, values in changed.items():
        assert {k: back[i][k] for k in values} == values, i
    for i in ids[rows:]:  # the rows not named are as they were
        assert (back[i]["name"], back[i]["version"], back[i]["next_due_at"]) == (AWKWARD, 0, None)


def test_many_outcomes_are_recorded_each_on_its_own_intent(engine: Engine) -> None:
    tenant_id, customer_id = _tenant_and_customer(engine)
    keys = [f"o{i}" for i in range(COPY_FROM + 10)]
    with engine.begin() as conn:
        PaymentIntentRepository(conn).add([_intent(tenant_id, customer_id, k, 1800) for k in keys])
        PaymentIntentRepository(conn).record_outcomes(
            [(k, "failed" if i % 3 == 0 else "succeeded", "card_declined" if i % 3 == 0 else None,
              None if i % 3 == 0 else f"ch_{i}") for i, k in enumerate(keys[:-1])], NOW)  # the last one not answered
    with engine.connect() as conn:
        stored = PaymentIntentRepository(conn).by_keys(keys)
    for i, k in enumerate(keys[:-1]):
        row = stored[k]
        want = ("failed", "card_declined", None) if i % 3 == 0 else ("succeeded", None, f"ch_{i}")
        assert (row["status"], row["code"], row["reference"], row["attempts"]) == (*want, 1), k
    assert (stored[keys[-1]]["status"], stored[keys[-1]]["attempts"]) == ("pending", 0)
