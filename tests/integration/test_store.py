"""The store on SQLite and PostgreSQL: migrations, history, audit, gapless numbers, refusals, crashes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, text

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator, ChargeOutcome
from kakin.domain.errors import SeatsOutOfRange
from kakin.services import billing, due_run, payments
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def setup_nipoplus(engine: Engine, gateway: CardSimulator, customers: int = 1) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
        for i in range(customers):
            billing.create_customer(uow, tenant, gateway, f"c{i}", f"顧客{i}", at(2022, 5, 1), payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, f"c{i}", at(2022, 5, 3, 10), "gold", seats=10)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in tables.metadata.tables.items()}


def test_the_migrations_build_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    only_here = tables.dialect_only(engine.dialect.name)  # migration 0027's trigram indexes, compared below

    def declared(name: str | None, type_: str, parent_names: object) -> bool:
        return name not in only_here.get(type_, set())

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False,
                                                         "include_name": declared})
        differences = compare_metadata(context, tables.metadata)
    assert differences == []


def test_the_migrations_build_the_trigram_indexes_of_this_database_and_nothing_else(engine: Engine) -> None:
    expected = tables.dialect_only(engine.dialect.name)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT type, name FROM sqlite_master WHERE name LIKE '%\\_text%' ESCAPE '\\'"))
            found: dict[str, set[str]] = {"table": set(), "index": set(), "trigger": set()}
            for kind, name in rows:
                found[kind].add(name)
            assert found == expected
        else:
            rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE '%\\_trgm'"))
            indexes = dict(rows.all())
            assert set(indexes) == expected["index"]
            for name, (table, column) in tables.TRIGRAM_INDEXES.items():
                assert f"ON public.{table} USING gin ({column} gin_trgm_ops)" in indexes[name]


def test_the_seed_example_is_stored_with_gapless_numbers_and_history(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    with UnitOfWork(engine) as uow:
        billing.set_seats(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 6, 20, 10), 20)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 8, 3, 23))
    with UnitOfWork(engine) as uow:
        rows = uow.invoices_for(open_tenant(uow, "nipoplus").row)
    assert [r["total"] for r in rows] == [1800, 1800, 4380, 3600]  # the seed's table
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert [r["number"] for r in rows] == [f"NIPOPLUS-0000000{i}" for i in (1, 2, 3, 4)]
    assert [ln["amount"] for ln in rows[2]["lines"]] == [780, 3600]  # 180 × 13 ÷ 30 × 10 = 780
    assert all(r["status"] == "paid" for r in rows)
    with engine.connect() as conn:
        phases = conn.execute(select(tables.subscription_phases.c.start, tables.subscription_phases.c.seats).join(
            tables.subscriptions).where(tables.subscriptions.c.plan == "gold").order_by(tables.subscription_phases.c.id)).all()
        audit = conn.execute(select(tables.audit_log.c.action, tables.audit_log.c.after).order_by(tables.audit_log.c.id)).all()
    assert [(p.start.isoformat(), p.seats) for p in phases] == [("2022-05-03", 10), ("2022-06-20", 20)]
    assert "subscription.set_seats" in [a.action for a in audit]
    noted = [e["event"] for a in audit for e in json.loads(a.after).get("events", [])]
    assert noted.count("invoice.finalized") == 4 and noted.count("payment.succeeded") == 4
    assert len(gateway.charged) == 4


def test_a_refused_command_writes_nothing(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 6, 20))  # what fell due is done first
    before = counts(engine)
    with pytest.raises(SeatsOutOfRange):
        with UnitOfWork(engine) as uow:
            billing.set_seats(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 6, 20), 1000)
    assert counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seats FROM subscriptions WHERE plan = 'gold'")).scalar_one() == 10


def test_work_that_fell_due_stays_done_when_the_command_after_it_is_refused(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    with pytest.raises(SeatsOutOfRange):
        with UnitOfWork(engine) as uow:
            billing.set_seats(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 6, 20), 1000)
    with UnitOfWork(engine) as uow:
        totals = [r["total"] for r in uow.invoices_for(open_tenant(uow, "nipoplus").row)]
    assert totals == [1800, 1800]  # the June 3 renewal, caught up before the refusal


def test_the_audit_log_records_who_what_when_and_before_after(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    with UnitOfWork(engine) as uow:
        billing.set_seats(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 6, 20), 12, actor="admin@acme")
    with engine.connect() as conn:
        row = conn.execute(select(tables.audit_log).where(tables.audit_log.c.action == "subscription.set_seats")).mappings().one()
    assert row["actor"] == "admin@acme"
    assert json.loads(row["before"])["seats"] == 10 and json.loads(row["after"])["seats"] == 12
    assert datetime.fromisoformat(json.loads(row["after"])["events"][0]["at"]) == at(2022, 6, 20)  # ISO 8601
    assert row["at"] == at(2022, 6, 20)


class CrashingGateway(CardSimulator):
    """Dies after a number of charges, as a worker killed in the middle of a run would."""

    def __init__(self, inner: CardSimulator, crash_after: int) -> None:
        super().__init__()
        self.inner, self.left = inner, crash_after

    def is_known(self, payment_method: str) -> bool:
        return self.inner.is_known(payment_method)

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        if self.left == 0:
            raise RuntimeError("worker killed")
        self.left -= 1
        return self.inner.charge(payment_method, amount, idempotency_key)


def test_a_crash_in_the_middle_of_a_billing_run_leaves_every_invoice_exactly_once(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway, customers=7)
    with pytest.raises(RuntimeError, match="worker killed"):
        due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", CrashingGateway(gateway, 4), at(2022, 6, 3, 1), batch_size=3)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 6, 3, 1), batch_size=3)
    # the batch that died had finalized its invoices before charging: the worker's next pass settles their intents
    payments.settle_intents(engine, gateway, at(2022, 6, 3, 1), grace=timedelta(0))
    with UnitOfWork(engine) as uow:
        rows = uow.invoices_for(open_tenant(uow, "nipoplus").row)
    june = [r for r in rows if r["issued_on"].isoformat() == "2022-06-03"]
    assert sorted(r["customer"] for r in june) == [f"c{i}" for i in range(7)]  # one renewal each, none twice
    assert [r["seq"] for r in rows] == list(range(1, 15))  # no gap left by the rolled-back batch
    keys = [k for _, _, k in gateway.charged]
    assert len(keys) == len(set(keys)) == 14  # 7 sign-ups + 7 renewals, each charged once
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 6, 3, 1))
    assert len(gateway.charged) == 14  # running again bills nothing twice


def test_due_work_runs_in_batches_and_resumes_where_it_stopped(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway, customers=5)
    done = due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 6, 3, 1), batch_size=2, max_batches=1)
    assert done == 2
    done += due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, at(2022, 6, 3, 1), batch_size=2)
    assert done == 10  # for each of 5 customers: the notice a week before (May 27), then the June 3 renewal
    with UnitOfWork(engine) as uow:
        june = [r for r in uow.invoices_for(open_tenant(uow, "nipoplus").row) if r["issued_on"].isoformat() == "2022-06-03"]
    assert len(june) == 5
    with engine.connect() as conn:
        due = conn.execute(select(func.min(tables.customers.c.next_due_at))).scalar_one()
    assert due is not None and due.astimezone(JST) == at(2022, 6, 26)  # next: the notice a week before July 3


def test_a_premium_id_in_use_is_unique_per_tenant_in_the_database(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "LINE公式アカウント", "line-oa", at(2025, 3, 1))
        for key in ("a", "b"):
            billing.create_customer(uow, tenant, gateway, key, key, at(2025, 3, 1), payment_method="pm_card_visa")
        billing.set_premium_id(uow, tenant, gateway, "a", at(2025, 3, 2), "@kakin-shop")
    from kakin.domain.errors import PremiumIdTaken

    with pytest.raises(PremiumIdTaken):
        with UnitOfWork(engine) as uow:
            billing.set_premium_id(uow, open_tenant(uow, "oa"), gateway, "b", at(2025, 3, 3), "@kakin-shop")
    with engine.connect() as conn:
        basic = [r[0] for r in conn.execute(select(tables.customers.c.basic_id))]
    assert len(set(basic)) == 2 and all(len(b) == 9 and b[0] == "@" for b in basic)


def test_instants_come_back_timezone_aware_in_utc(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    with engine.connect() as conn:
        due = conn.execute(select(tables.customers.c.next_due_at)).scalar_one()
    assert due.utcoffset() == timedelta(0)
    assert due.astimezone(JST) == at(2022, 5, 27)  # the notice a week before the June 3 charge


def test_two_seat_changes_the_same_day_in_two_commands_leave_one_phase_with_the_last_count(engine: Engine) -> None:
    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    for seats in (20, 15):
        with UnitOfWork(engine) as uow:
            billing.set_seats(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 6, 20, 10 + seats // 10), seats)
    with engine.connect() as conn:
        phases = conn.execute(select(tables.subscription_phases.c.start, tables.subscription_phases.c.seats).join(
            tables.subscriptions).where(tables.subscriptions.c.plan == "gold").order_by(tables.subscription_phases.c.start)).all()
    assert [(p.start.isoformat(), p.seats) for p in phases] == [("2022-05-03", 10), ("2022-06-20", 15)]


def test_the_store_writes_a_days_phase_only_where_the_domain_superseded_the_one_written(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    from kakin.domain.account import Phase

    gateway = CardSimulator()
    setup_nipoplus(engine, gateway)
    with pytest.raises(IntegrityError), UnitOfWork(engine) as uow:  # no deciding in the store: a second row is refused
        tenant = open_tenant(uow, "nipoplus")
        (account,) = uow.load_accounts([uow.account_id(tenant.row, "c0") or 0])
        sub = account.subscriptions[0]
        sub.new_phases.append(Phase(sub.phases[-1].start, "gold", "monthly", 99, 0, True))
        uow.save_accounts(tenant.row, [account], at(2022, 5, 3, 11), next_due={})
    with engine.connect() as conn:
        assert conn.execute(select(tables.subscription_phases.c.seats).join(tables.subscriptions).where(
            tables.subscriptions.c.plan == "gold")).scalars().all() == [10]
