"""The REST API under concurrent writes on PostgreSQL: a deadlock or a unique value taken meanwhile is retried inside
kakin, never a 500; concurrent credit notes are counted in turn; one Idempotency-Key has one effect; a database
that cannot be reached is a 503 (issue 10)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")


def test_twenty_seat_changes_racing_a_test_clock_advance_over_the_renewal_get_no_500(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", datetime(2026, 1, 1, tzinfo=JST))
        key = create_api_key(uow, tenant.row, "owner", "owner key", datetime(2026, 1, 1, tzinfo=JST))
    headers = {"Authorization": f"Bearer {key}"}
    statuses: Counter[int] = Counter()
    with TestClient(create_app(engine, CardSimulator(), lambda: datetime(2026, 5, 3, 10, tzinfo=JST))) as client:
        for round_no in range(3):  # each round: a fresh clock and customer, 20 seat changes and one advance at once
            clock = client.post("/v1/test_clocks", headers=headers,
                                json={"name": f"r{round_no}", "frozen_time": "2026-05-03T10:00:00+09:00"}).json()
            cid = f"race{round_no}"
            r = client.post("/v1/customers", headers=headers, json={
                "id": cid, "name": "株式会社レース", "payment_method": "pm_card_visa", "test_clock": clock["id"],
                "super_admin": {"email": f"admin@{cid}.example", "name": "管理者"}})
            assert r.status_code == 201, r.text
            admin = {**headers, "Kakin-Acting-Member": r.json()["super_admin"]["id"]}
            r = client.post(f"/v1/customers/{cid}/subscription", headers=admin, json={"plan": "gold", "seats": 10})
            assert r.status_code == 200, r.text
            start = threading.Barrier(21)

            def seats(n: int, admin: dict[str, str] = admin, cid: str = cid, start: threading.Barrier = start) -> None:
                start.wait()
                statuses[client.post(f"/v1/customers/{cid}/subscription/seats", headers=admin, json={"seats": n}).status_code] += 1

            def advance(clock_id: str = clock["id"], start: threading.Barrier = start) -> None:
                start.wait()
                statuses[client.post(f"/v1/test_clocks/{clock_id}/advance", headers=headers,
                                     json={"frozen_time": "2026-06-20T10:00:00+09:00"}).status_code] += 1

            threads = [threading.Thread(target=seats, args=(11 + i,)) for i in range(20)] + [threading.Thread(target=advance)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            invoices = client.get(f"/v1/customers/{cid}/invoices", headers=headers).json()["data"]
            assert sum(1 for i in invoices if i["issued_on"] == "2026-06-03") == 1  # the June 3 renewal, once
    assert statuses[500] == 0, statuses
    assert statuses[200] == 63, statuses  # 20 seat changes and one advance, three rounds
    engine.dispose()


def at_once(n: int, call: Callable[[int], Response]) -> list[Response]:
    """``call(i)`` for i in 0 … n − 1 from n threads released together; their responses in that order."""
    start = threading.Barrier(n)
    out: list[Response | None] = [None] * n

    def run(i: int) -> None:
        start.wait()
        out[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in out), "a request did not finish"
    return [r for r in out if r is not None]


class Vendor:
    """A NipoPlus tenant with an owner key and customer acme (a super admin, a card), served on PostgreSQL."""

    def __init__(self, pg_url: str) -> None:
        self.engine = make_engine(pg_url)
        migrate(self.engine)
        with UnitOfWork(self.engine) as uow:
            tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", datetime(2026, 1, 1, tzinfo=JST))
            key = create_api_key(uow, tenant.row, "owner", "owner key", datetime(2026, 1, 1, tzinfo=JST))
        self.headers = {"Authorization": f"Bearer {key}"}
        self.gateway = CardSimulator()
        self.client = TestClient(create_app(self.engine, self.gateway, lambda: datetime(2026, 5, 3, 10, tzinfo=JST)))
        r = self.client.post("/v1/customers", headers=self.headers, json={
            "id": "acme", "name": "株式会社アクメ", "payment_method": "pm_card_visa",
            "super_admin": {"email": "admin@acme.example", "name": "管理者"}})
        assert r.status_code == 201, r.text
        self.admin = {**self.headers, "Kakin-Acting-Member": r.json()["super_admin"]["id"]}

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_ten_credit_notes_at_once_on_one_invoice_credit_no_more_than_the_invoice(pg_url: str) -> None:
    # GOLD, 20 seats at sign-up: 180 × 20 = 3,600 yen, paid by card. Three credit notes of 1,000 fit (3,000 ≤ 3,600);
    # a fourth would exceed it. Before, each request read what was credited before taking the customer's lock: all
    # ten passed and 10,000 yen was refunded against a 3,600-yen invoice.
    v = Vendor(pg_url)
    with v.client:
        r = v.client.post("/v1/customers/acme/subscription", headers=v.admin, json={"plan": "gold", "seats": 20})
        assert r.status_code == 200, r.text
        number = v.client.get("/v1/customers/acme/invoices", headers=v.headers).json()["data"][0]["number"]
        answers = at_once(10, lambda i: v.client.post(f"/v1/invoices/{number}/credit_notes", headers=v.headers,
                                                       json={"amount": 1000, "reason": f"値引き {i}"}))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [422] * 7
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 422} == {"credit_exceeds_invoice"}
    with v.engine.connect() as conn:
        assert conn.execute(select(func.sum(tables.credit_notes.c.amount))).scalar_one() == 3000
    assert [amount for _, amount in v.gateway.refunded] == [1000, 1000, 1000]
    v.engine.dispose()


def test_one_idempotency_key_sent_ten_times_at_once_has_one_effect_and_replays_one_answer(pg_url: str) -> None:
    # A sign-up and a credit note, each sent ten times at once with one Idempotency-Key. Before, requests that ran
    # after the first had committed answered 409 already_subscribed instead of its response, and the credit note's
    # refund was made twice at the gateway (its key came from a number read in each transaction).
    v = Vendor(pg_url)
    with v.client:
        signups = at_once(10, lambda i: v.client.post("/v1/customers/acme/subscription", json={"plan": "gold", "seats": 20},
                                                      headers={**v.admin, "Idempotency-Key": "signup-1"}))
        number = v.client.get("/v1/customers/acme/invoices", headers=v.headers).json()["data"][0]["number"]
        notes = at_once(10, lambda i: v.client.post(f"/v1/invoices/{number}/credit_notes", json={"amount": 100, "reason": "値引き"},
                                                    headers={**v.headers, "Idempotency-Key": "note-1"}))
    assert [r.status_code for r in signups] == [200] * 10 and len({r.text for r in signups}) == 1
    assert [r.status_code for r in notes] == [201] * 10 and len({r.text for r in notes}) == 1
    assert v.count(tables.invoices) == 1 and len(v.gateway.charged) == 1  # 3,600 yen, charged once
    assert v.count(tables.credit_notes) == 1 and v.gateway.refunded == [("pi_sim_000001", 100)]  # refunded once
    v.engine.dispose()


def test_ten_customers_created_at_once_with_one_id_get_one_201_and_nine_409_never_a_500(pg_url: str) -> None:
    # Each request checks that the id is free, then inserts; the unique constraint refuses all but one. Before, the
    # refused ones answered 500 internal_error; the transaction now runs again and its check answers 409.
    v = Vendor(pg_url)
    with v.client:
        answers = at_once(10, lambda i: v.client.post("/v1/customers", headers=v.headers, json={
            "id": "twin", "name": f"株式会社ツイン{i}", "super_admin": {"email": f"a{i}@twin.example", "name": "管理者"}}))
    assert sorted(r.status_code for r in answers) == [201] + [409] * 9
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"customer_exists"}
    v.engine.dispose()


def test_a_database_that_cannot_be_reached_is_answered_503_database_unavailable_not_500() -> None:
    import socket

    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://kakin@127.0.0.1:{port}/kakin?connect_timeout=2")
    with TestClient(create_app(engine, CardSimulator(), lambda: datetime(2026, 5, 3, 10, tzinfo=JST))) as client:
        r = client.get("/v1/customers", headers={"Authorization": "Bearer sk_test_anything"})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "database_unavailable"
    engine.dispose()


def test_a_lock_wait_that_runs_out_outside_in_transaction_is_503_database_busy_and_a_bug_still_500(tmp_path: Any) -> None:
    # A page that opens its own unit of work (the console's sign-in) is not under in_transaction's mapping of lock
    # waits; the API's handler answers them the same way. Any other database error stays a logged 500.
    import sqlite3

    from sqlalchemy.exc import OperationalError, ProgrammingError

    engine = make_engine(f"sqlite:///{tmp_path}/k.db")
    app = create_app(engine, CardSimulator(), lambda: datetime(2026, 5, 3, 10, tzinfo=JST))

    @app.get("/locked")
    def locked() -> None:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

    @app.get("/bug")
    def bug() -> None:
        raise ProgrammingError("SELEC 1", {}, sqlite3.ProgrammingError("syntax error"))

    with TestClient(app, raise_server_exceptions=False) as client:
        busy, crash = client.get("/locked"), client.get("/bug")
    assert (busy.status_code, busy.json()["error"]["code"]) == (503, "database_busy")
    assert (crash.status_code, crash.json()["error"]["code"]) == (500, "internal_error")
    engine.dispose()


def test_only_a_lost_or_refused_connection_counts_as_the_database_being_unreachable() -> None:
    import psycopg
    from sqlalchemy.exc import OperationalError

    from kakin.adapters.db.store import is_unreachable

    def wrapped(orig: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, orig)

    assert is_unreachable(wrapped(psycopg.OperationalError("connection failed: Connection refused")))  # no SQLSTATE
    assert is_unreachable(wrapped(psycopg.errors.AdminShutdown("terminating connection")))  # 57P01
    assert not is_unreachable(wrapped(psycopg.errors.DeadlockDetected("deadlock detected")))  # 40P01: retried
    assert not is_unreachable(wrapped(psycopg.errors.QueryCanceled("statement timeout")))  # 57014
    assert not is_unreachable(wrapped(psycopg.errors.DiskFull("no space left")))  # 53100: a 500, logged
