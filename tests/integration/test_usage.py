"""Usage events and quota grants on SQLite and PostgreSQL: exact counts, duplicates, closed periods, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import KakinError, QuotaExceeded
from kakin.services import billing, due_run, entitlements, usage
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
MARCH = datetime(2025, 3, 1, 0, tzinfo=JST)


def setup_line_oa(engine: Engine, plans: dict[str, str]) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "LINE公式アカウント", "line-oa", MARCH)
        for key, plan in plans.items():
            billing.create_customer(uow, tenant, gateway, key, key, MARCH, payment_method="pm_card_visa")
            if plan != "communication":
                billing.subscribe(uow, tenant, gateway, key, MARCH, plan)


def event(customer: str, txn: str, quantity: int, at: datetime, metric: str = "messages") -> dict[str, object]:
    return {"customer": customer, "metric": metric, "quantity": quantity, "timestamp": at, "transaction_id": txn}


def record(engine: Engine, events: list[dict[str, object]], now: datetime) -> list[dict[str, object]]:
    with UnitOfWork(engine) as uow:
        return usage.record_events(uow, open_tenant(uow, "oa"), events, now)


def used(engine: Engine, customer: str, month: str = "2025-03-01") -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(tables.usage_counters.c.quantity), 0)).join(
            tables.customers).where(tables.customers.c.key == customer,
                                    tables.usage_counters.c.month == datetime.fromisoformat(month).date())).scalar_one())


def test_events_are_counted_once_and_duplicates_are_reported(engine: Engine) -> None:
    setup_line_oa(engine, {"shop": "standard"})
    at = MARCH + timedelta(days=10)
    first = record(engine, [event("shop", "t1", 20000, at), event("shop", "t2", 15000, at), event("shop", "t1", 20000, at)], at)
    assert [r["status"] for r in first] == ["recorded", "recorded", "duplicate"]
    again = record(engine, [event("shop", "t2", 15000, at), event("shop", "t3", 25001, at)], at)
    assert [r["status"] for r in again] == ["duplicate", "recorded"]
    assert used(engine, "shop") == 60001
    due_run.run_due(lambda: UnitOfWork(engine), "oa", CardSimulator(), datetime(2025, 4, 1, 1, tzinfo=JST))
    with UnitOfWork(engine) as uow:
        april = uow.invoices_for(open_tenant(uow, "oa").row)[-1]
    usage_line = next(ln for ln in april["lines"] if ln["kind"] == "usage")
    assert usage_line["amount"] == 88002  # 20,000 × 3 + 10,001 × 2.8 = 88,002.8 → floor once
    assert april["total"] == (15000 + 88002) * 11 // 10


def test_an_event_for_an_invoiced_month_is_refused_not_moved(engine: Engine) -> None:
    setup_line_oa(engine, {"shop": "standard"})
    due_run.run_due(lambda: UnitOfWork(engine), "oa", CardSimulator(), datetime(2025, 4, 1, 1, tzinfo=JST))
    now = datetime(2025, 4, 2, tzinfo=JST)
    results = record(engine, [event("shop", "late", 5, datetime(2025, 3, 31, 23, tzinfo=JST)),
                              event("shop", "ok", 5, datetime(2025, 4, 1, 0, 30, tzinfo=JST)),
                              event("shop", "soon", 5, now + timedelta(hours=1)),
                              event("nobody", "x", 5, now), event("shop", "neg", 0, now),
                              event("shop", "m", 5, now, metric="storage")], now)
    assert [(r["status"], (r.get("error") or {}).get("code")) for r in results] == [
        ("refused", "period_closed"), ("recorded", None), ("refused", "timestamp_in_future"),
        ("refused", "not_found"), ("refused", "invalid_value"), ("refused", "unknown_metric")]
    assert results[0]["error"]["param"] == "timestamp" and "2025-03 is already invoiced" in results[0]["error"]["message"]
    assert used(engine, "shop", "2025-03-01") == 0 and used(engine, "shop", "2025-04-01") == 5


def test_quota_is_granted_whole_or_refused_counting_nothing(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light", "free": "communication", "city": "standard"})
    at = MARCH + timedelta(days=3)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "oa")
        assert usage.consume(uow, tenant, "cafe", "messages", 4990, at)["remaining"] == 10
        with pytest.raises(QuotaExceeded) as refused:
            usage.consume(uow, tenant, "cafe", "messages", 11, at)
        assert refused.value.remaining == 10
        assert usage.consume(uow, tenant, "cafe", "messages", 10, at)["remaining"] == 0
        with pytest.raises(QuotaExceeded):
            usage.consume(uow, tenant, "free", "messages", 201, at)
        assert usage.consume(uow, tenant, "city", "messages", 40000, at)["granted"]  # standard never refuses
        april = datetime(2025, 4, 1, 0, 1, tzinfo=JST)
        assert usage.consume(uow, tenant, "cafe", "messages", 1, april)["used"] == 1  # counts reset on the 1st
    assert used(engine, "cafe") == 5000


def test_a_repeated_consume_transaction_is_counted_once(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light"})
    at = MARCH + timedelta(days=3)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "oa")
        assert usage.consume(uow, tenant, "cafe", "messages", 100, at, transaction_id="send-1")["granted"]
        again = usage.consume(uow, tenant, "cafe", "messages", 100, at, transaction_id="send-1")
    assert again["duplicate"] and not again["granted"]
    assert used(engine, "cafe") == 100


def test_parallel_consumes_never_grant_more_than_the_quota(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light"})
    at = MARCH + timedelta(days=3)
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            try:
                with UnitOfWork(engine) as uow:
                    usage.consume(uow, open_tenant(uow, "oa"), "cafe", "messages", 37, at, transaction_id=f"w{n}-{i}")
                with lock:
                    granted.append(37)
            except QuotaExceeded:
                with lock:
                    refused.append(37)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) <= 5000 and sum(granted) == used(engine, "cafe")
    assert sum(granted) == 5000 // 37 * 37  # 135 sends of 37 fit; every other one was refused
    assert len(granted) + len(refused) == 200


def test_parallel_batches_with_the_same_transaction_ids_count_each_once(engine: Engine) -> None:
    setup_line_oa(engine, {"shop": "standard"})
    at = MARCH + timedelta(days=3)
    batch = [event("shop", f"dup-{i}", 1, at) for i in range(200)]
    errors: list[Exception] = []

    def worker() -> None:
        try:
            record(engine, batch, at)
        except KakinError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert used(engine, "shop") == 200
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.usage_events)).scalar_one() == 200


def test_entitlements_show_features_quotas_and_seat_state(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light"})
    at = MARCH + timedelta(days=3)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "oa")
        usage.consume(uow, tenant, "cafe", "messages", 1200, at)
        ent = entitlements.entitlements(uow, tenant, "cafe", at)
    assert ent["quotas"]["messages"] == {"included": 5000, "used": 1200, "hard_limit": True, "remaining": 3800,
                                         "month": "2025-03-01"}
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipo", "NipoPlus", "nipoplus", MARCH)
        billing.create_customer(uow, tenant, gateway, "acme", "acme", MARCH, payment_method="pm_card_visa", members=7)
        billing.subscribe(uow, tenant, gateway, "acme", MARCH, "gold", seats=5)
        seats = entitlements.entitlements(uow, tenant, "acme", MARCH)["seats"]
    assert seats == {"paid": 5, "users": 7, "over_seats": True, "restricted_features": ["add_staff", "report_export"]}


def test_recorded_events_read_back_exactly_through_the_store_types(engine: Engine) -> None:
    setup_line_oa(engine, {"shop": "standard"})
    at = datetime(2025, 3, 10, 12, 34, 56, 789012, tzinfo=JST)
    record(engine, [event("shop", "exact", 7, at)], at)
    with engine.connect() as conn:
        row = conn.execute(select(tables.usage_events.c.occurred_at, tables.usage_events.c.month,
                                  tables.usage_events.c.quantity)).one()
    assert row.occurred_at == at and row.occurred_at.utcoffset() == timedelta(0)  # stored as UTC, read back aware
    assert row.month.isoformat() == "2025-03-01" and row.quantity == 7


def test_an_event_past_a_hard_limit_is_refused_whole_and_counts_nothing(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light"})
    at = MARCH + timedelta(days=3)
    results = record(engine, [event("cafe", "big", 6000, at)], at)
    assert results[0]["status"] == "refused"
    assert results[0]["error"]["code"] == "quota_exceeded" and results[0]["error"]["remaining"] == 5000
    assert used(engine, "cafe") == 0  # light: 5,000 included, a hard limit; 6,000 > 5,000 is refused whole
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.usage_events)).scalar_one() == 0
    with UnitOfWork(engine) as uow:  # the same cap as a quota grant: the whole 5,000 is still there
        assert usage.consume(uow, open_tenant(uow, "oa"), "cafe", "messages", 5000, at)["remaining"] == 0


def test_events_of_one_batch_count_against_each_other_under_a_hard_limit(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light", "shop": "standard"})
    at = MARCH + timedelta(days=3)
    with UnitOfWork(engine) as uow:
        usage.consume(uow, open_tenant(uow, "oa"), "cafe", "messages", 1000, at)
    results = record(engine, [event("cafe", "a", 2500, at), event("shop", "s", 6000, at), event("cafe", "b", 1600, at),
                              event("cafe", "c", 400, at), event("cafe", "a", 2500, at), event("cafe", "d", 100, at)], at)
    assert [(r["status"], (r.get("error") or {}).get("code")) for r in results] == [
        ("recorded", None), ("recorded", None), ("refused", "quota_exceeded"), ("recorded", None), ("duplicate", None),
        ("recorded", None)]
    assert results[2]["error"]["remaining"] == 1500  # in order: 5,000 − 1,000 − 2,500 = 1,500 left; 1,600 does not fit
    assert used(engine, "cafe") == 4000  # 1,000 + 2,500 + 400 + 100
    assert used(engine, "shop") == 6000  # standard has no hard limit: overage, billed next month
    with engine.connect() as conn:
        ids = set(conn.execute(select(tables.usage_events.c.transaction_id)).scalars())
    assert {"a", "c", "d", "s"} <= ids and "b" not in ids


def test_parallel_event_batches_never_count_past_a_hard_limit(engine: Engine) -> None:
    setup_line_oa(engine, {"cafe": "light"})
    at = MARCH + timedelta(days=3)
    statuses: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(5):
            results = record(engine, [event("cafe", f"w{n}-{i}-{j}", 37, at) for j in range(5)], at)
            with lock:
                statuses.extend(str(r["status"]) for r in results)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(statuses) == 200 and set(statuses) <= {"recorded", "refused"}
    assert statuses.count("recorded") * 37 == used(engine, "cafe") == 5000 // 37 * 37  # 135 events of 37 fit
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.usage_events)).scalar_one() == 135
