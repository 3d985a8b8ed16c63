"""Concurrent commands on one customer, on SQLite and PostgreSQL: each holds the customer from load to commit, so
the result is that of some serial order (issue 10 item 1); deadlocks are retried and lock waits are bounded.

The NipoPlus customer below has 10 GOLD seats from May 3; its June 3 renewal is due and no worker has run when
the commands arrive on June 20 (13 days to July 3): one more seat for those days is 180 × 13 ÷ 30 = 78 yen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from kakin.adapters.db import store as store_module
from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import CardSimulator
from kakin.domain import errors
from kakin.domain.errors import KakinError
from kakin.services import billing
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGNUP = datetime(2026, 5, 3, 10, tzinfo=JST)
JUNE_20 = datetime(2026, 6, 20, 10, tzinfo=JST)


def seed(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", SIGNUP, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", SIGNUP, "gold", seats=10)


def command(name: str, *args: Any, actor: str = "system") -> Callable[[Engine], None]:
    """One command on customer acme at June 20, in a transaction of its own (as the API runs it)."""
    def run(engine: Engine) -> None:
        def work(uow: UnitOfWork) -> None:
            getattr(billing, name)(uow, open_tenant(uow, "nipoplus"), CardSimulator(), "acme", JUNE_20, *args, actor=actor)
        in_transaction(engine, work)
    return run


def outcome(engine: Engine) -> dict[str, Any]:
    """What the customer was billed and where it stands, comparable across databases."""
    with engine.connect() as conn:
        cid = conn.execute(select(tables.customers.c.id).where(tables.customers.c.key == "acme")).scalar_one()
        items = conn.execute(select(tables.pending_items.c.amount).where(
            tables.pending_items.c.customer_id == cid).order_by(tables.pending_items.c.id)).scalars().all()
        invoices = conn.execute(select(tables.invoices.c.number, tables.invoices.c.total).where(
            tables.invoices.c.customer_id == cid).order_by(tables.invoices.c.seq)).all()
        notes = conn.execute(select(tables.credit_notes.c.total).where(
            tables.credit_notes.c.customer_id == cid).order_by(tables.credit_notes.c.seq)).scalars().all()
        subs = conn.execute(select(tables.subscriptions.c.plan, tables.subscriptions.c.status, tables.subscriptions.c.seats,
                                   tables.subscriptions.c.pending).where(
            tables.subscriptions.c.customer_id == cid, tables.subscriptions.c.ended.is_(False))).all()
        credit = conn.execute(select(tables.customers.c.credit).where(tables.customers.c.id == cid)).scalar_one()
    return {"items": list(items), "invoices": [tuple(r) for r in invoices], "credit_notes": list(notes),
            "subscriptions": sorted(tuple(r) for r in subs), "credit": credit}


def test_two_seat_changes_while_the_renewal_is_due_bill_the_proration_of_one_serial_order(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # The reported race, forced: the first command (10 → 20) has caught up on the June 3 renewal when the second
    # (10 → 15) starts. Before, the first committed the renewal there, so the second ran whole in between and the
    # first then billed from its stale 10 seats: items 780 and 390 for a customer ending at 20 seats.
    seed(engine)
    second = threading.Thread(target=command("set_seats", 15), args=(engine,), name="second")
    caught_up = threading.Event()
    real_catch_up, real_snapshot = billing.catch_up, billing.snapshot

    def catch_up(*args: Any, **kwargs: Any) -> int:
        done = real_catch_up(*args, **kwargs)
        if threading.current_thread().name == "first":
            caught_up.set()
        return done

    def snapshot(account: Any) -> Any:
        if threading.current_thread().name == "first" and caught_up.is_set() and not second.is_alive() \
                and second.ident is None:
            second.start()
            second.join(timeout=2)  # today the second waits for the first's lock: it cannot finish meanwhile
        return real_snapshot(account)

    monkeypatch.setattr(billing, "catch_up", catch_up)
    monkeypatch.setattr(billing, "snapshot", snapshot)
    first = threading.Thread(target=command("set_seats", 20), args=(engine,), name="first")
    first.start()
    first.join(timeout=30)
    assert second.ident is not None
    second.join(timeout=30)
    got = outcome(engine)
    seats = got["subscriptions"][0][2]
    # Either order, each billed as a serial run bills it:
    #   20 first: 180 × 13 ÷ 30 × 10 = 780 for the 10 seats added; 20 → 15 is a credit note, not an item; ends at 15
    #   15 first: 180 × 13 ÷ 30 × 5 = 390, then 15 → 20 another 390; ends at 20
    assert (got["items"], seats) in (([780], 15), ([390, 390], 20)), got
    assert [total for _, total in got["invoices"]] == [1800, 1800]  # the sign-up and the June 3 renewal, once


COMMANDS: list[tuple[str, tuple[Any, ...]]] = [
    ("set_seats", (12,)), ("set_seats", (20,)), ("set_seats", (15,)), ("set_seats", (8,)), ("set_seats", (25,)),
    ("cancel", ()), ("change_plan", ("free",)), ("set_seats", (30,)),
]


def test_seat_changes_plan_changes_and_cancels_racing_on_one_customer_equal_a_serial_replay(
        engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    refused: dict[str, str] = {}

    def racer(i: int) -> None:
        name, args = COMMANDS[i]
        try:
            command(name, *args, actor=f"t{i}")(engine)
        except KakinError as exc:
            refused[f"t{i}"] = exc.code

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(COMMANDS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with engine.connect() as conn:  # the order the commands committed in
        order = conn.execute(select(tables.audit_log.c.actor).where(tables.audit_log.c.actor.like("t%")).order_by(
            tables.audit_log.c.id)).scalars().all()
    assert len(order) == len(set(order)) and set(order).isdisjoint(refused)
    assert len(order) + len(refused) == len(COMMANDS)
    replay = make_engine(f"sqlite:///{tmp_path}/replay.db")
    migrate(replay)
    seed(replay)
    for actor in order:  # the committed commands one after another; a refused one is refused wherever it ran
        name, args = COMMANDS[int(actor[1:])]
        command(name, *args, actor=actor)(replay)
    for actor, code in refused.items():
        name, args = COMMANDS[int(actor[1:])]
        with pytest.raises(KakinError) as caught:
            command(name, *args, actor=actor)(replay)
        assert caught.value.code == code
    assert outcome(engine) == outcome(replay)


def test_a_refused_command_keeps_the_renewal_it_caught_up_on_and_changes_nothing_else(engine: Engine) -> None:
    seed(engine)
    with pytest.raises(errors.SeatsOutOfRange):
        command("set_seats", 1000)(engine)  # GOLD allows 5–999 users
    got = outcome(engine)
    assert [total for _, total in got["invoices"]] == [1800, 1800]  # the June 3 renewal stays billed: 180 × 10
    assert got["items"] == [] and got["subscriptions"][0][2] == 10


def test_a_deadlock_runs_the_transaction_again_and_a_lock_wait_that_runs_out_is_database_busy(engine: Engine) -> None:
    runs: list[int] = []
    pauses: list[float] = []

    def deadlocked_twice(uow: UnitOfWork) -> str:
        runs.append(1)
        if len(runs) <= 2:
            orig = type("Deadlock", (Exception,), {"sqlstate": "40P01"})("deadlock detected")
            raise OperationalError("UPDATE …", {}, orig)
        return "done"

    assert in_transaction(engine, deadlocked_twice, pause=pauses.append) == "done"
    assert len(runs) == 3 and len(pauses) == 2 and 0.005 <= pauses[0] <= 0.015 and 0.01 <= pauses[1] <= 0.03

    def always_deadlocked(uow: UnitOfWork) -> None:
        raise OperationalError("UPDATE …", {}, type("Deadlock", (Exception,), {"sqlstate": "40P01"})("deadlock"))

    with pytest.raises(errors.DatabaseBusy):
        in_transaction(engine, always_deadlocked, pause=pauses.append)

    def lock_timed_out(uow: UnitOfWork) -> None:
        raise OperationalError("SELECT …", {}, type("Timeout", (Exception,), {"sqlstate": "55P03"})("lock timeout"))

    with pytest.raises(errors.DatabaseBusy) as busy:
        in_transaction(engine, lock_timed_out, pause=pauses.append)
    assert busy.value.code == "database_busy"


def test_a_command_waiting_for_a_locked_customer_on_postgresql_gives_up_with_database_busy(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    seed(engine)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_MS", 200)
    with engine.connect() as holder, holder.begin():
        holder.execute(text("SELECT id FROM customers WHERE key = 'acme' FOR UPDATE"))
        with pytest.raises(errors.DatabaseBusy):
            command("set_seats", 20)(engine)
    assert outcome(engine)["subscriptions"][0][2] == 10
    engine.dispose()
