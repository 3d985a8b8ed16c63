"""Billing workers on a real database: racing workers and a worker killed with SIGKILL.

Customers are cloned from one the services created (so they are in exactly the
state a sign-up leaves), all due for renewal on the same day. Workers run as
separate processes, as they do in production. Whatever the interleaving or the
crash, every customer gets exactly one renewal invoice, invoice numbers run
1..N with no gap and no repeat, and no payment idempotency key is used twice.
Last, the payment gateway's side of a killed batch: what it charged must match
what the database records as paid, card by card.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, insert, select

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator, ChargeOutcome
from kakin.services import billing, due_run, payments
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGNUP = datetime(2026, 5, 3, 10, tzinfo=JST)
RENEWAL_DAY = date(2026, 6, 3)
UNTIL = "2026-06-03T01:00:00+09:00"  # the renewal is due at 00:00 JST; nothing else falls due by then
BY_SERVICE = 3  # customers created through the services; the rest are clones of the first


# ------------------------------------------------------------------ databases
@pytest.fixture(params=["sqlite", "postgresql"])
def file_or_pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database that outlives a process: a SQLite file, or PostgreSQL (conftest's pg_url)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/kakin.db"
        return
    yield request.getfixturevalue("pg_url")


# ------------------------------------------------------------------ seeding
def seed(url: str, n: int) -> Engine:
    """A NipoPlus tenant with n GOLD customers (10 seats) signed up on May 3, all due on June 3.

    The first few go through the services (sign-up invoice, charge, audit); the
    rest are bulk-inserted copies of the first one's customer, subscription and
    phase rows, so seeding thousands takes well under a second.
    """
    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        for i in range(BY_SERVICE):
            billing.create_customer(uow, tenant, gateway, f"c{i:05d}", f"顧客{i}", SIGNUP, payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, f"c{i:05d}", SIGNUP, "gold", seats=10)
    # the notice a week before June 3 goes out first, so only renewals are left due on June 3
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2026, 5, 28, tzinfo=JST))
    c, s, p = tables.customers, tables.subscriptions, tables.subscription_phases
    with engine.begin() as conn:
        for t in (tables.pending_items, tables.usage_counters):  # nothing else to copy
            assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 0
        first = conn.execute(select(c).where(c.c.key == "c00000")).mappings().one()
        assert first["next_due_at"].astimezone(JST) == datetime(2026, 6, 3, tzinfo=JST)
        keys = [f"c{i:05d}" for i in range(BY_SERVICE, n)]
        row = {k: v for k, v in first.items() if k not in ("id", "key", "name")}
        conn.execute(insert(c), [{**row, "key": k, "name": f"顧客{k[1:]}"} for k in keys])
        ids = [i for (i,) in conn.execute(select(c.c.id).where(c.c.key.in_(keys)))]
        subs = conn.execute(select(s).where(s.c.customer_id == first["id"]).order_by(s.c.id)).mappings().all()
        assert [x["plan"] for x in subs] == ["free", "gold"]  # the sign-up plan, ended, then GOLD
        for sub in subs:
            conn.execute(insert(s), [{**{k: v for k, v in sub.items() if k not in ("id", "customer_id")}, "customer_id": i}
                                     for i in ids])
            clones = [i for (i,) in conn.execute(select(s.c.id).where(s.c.customer_id.in_(ids), s.c.plan == sub["plan"]))]
            phases = conn.execute(select(p).where(p.c.subscription_id == sub["id"]).order_by(p.c.id)).mappings().all()
            conn.execute(insert(p), [{**{k: v for k, v in ph.items() if k not in ("id", "subscription_id")},
                                      "subscription_id": si} for si in clones for ph in phases])
    return engine


# ------------------------------------------------------------------ checks
def renewals_done(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.invoices).where(
            tables.invoices.c.issued_on == RENEWAL_DAY)).scalar_one()


def check_billed_exactly_once(engine: Engine, n: int) -> None:
    """Each customer: one sign-up (the service-made ones) and exactly one June renewal; numbers gapless; keys unique."""
    inv, pa, c = tables.invoices, tables.payment_attempts, tables.customers
    with engine.connect() as conn:
        rows = conn.execute(select(inv.c.customer_id, inv.c.seq, inv.c.number, inv.c.issued_on, inv.c.total, inv.c.status,
                                   inv.c.billing_key, inv.c.period_start).order_by(inv.c.seq)).all()
        keys = [k for (k,) in conn.execute(select(pa.c.idempotency_key))]
        attempts_per_invoice = conn.execute(select(pa.c.invoice_id, func.count()).group_by(pa.c.invoice_id)).all()
        customers = conn.execute(select(c.c.id, c.c.next_due_at)).all()
        worker_audits = conn.execute(select(func.count()).select_from(tables.audit_log).where(
            tables.audit_log.c.actor == "worker", tables.audit_log.c.action != "notice.upcoming_charge")).scalar_one()
    total = BY_SERVICE + n
    assert len(customers) == n
    june = [r for r in rows if r.issued_on == RENEWAL_DAY]
    per_customer: dict[int, int] = {}
    for r in june:
        per_customer[r.customer_id] = per_customer.get(r.customer_id, 0) + 1
    twice = {cid: k for cid, k in per_customer.items() if k > 1}
    assert not twice, f"customers billed more than once for June: {sorted(twice.items())[:10]}"
    assert len(per_customer) == n, f"{n - len(per_customer)} customers not renewed"
    assert len(rows) == total
    seqs = [r.seq for r in rows]
    assert seqs == list(range(1, total + 1)), "invoice numbers gap or repeat"
    assert [r.number for r in rows] == [f"NIPOPLUS-{i:08d}" for i in range(1, total + 1)]
    assert all(r.status == "paid" and r.total == 1800 for r in rows)
    assert {(r.billing_key, r.period_start) for r in june} == {("plan:2026-05-03:2026-06-03", RENEWAL_DAY)}
    assert len(keys) == len(set(keys)) == total, "a payment idempotency key was used twice"
    assert all(k == 1 for _, k in attempts_per_invoice) and len(attempts_per_invoice) == total
    assert {due.astimezone(JST) for _, due in customers} == {datetime(2026, 6, 26, tzinfo=JST)}  # July 3's notice
    assert worker_audits == 2 * n  # per renewal: the renewal, then its payment; none from rolled-back batches


# ------------------------------------------------------------------ processes
def env_for(url: str) -> dict[str, str]:
    return {**os.environ, "KAKIN_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}


# A worker process: run_due with a small batch size. It connects, then waits for
# "go" on stdin, so both workers start claiming at the same moment. After its
# first batch is committed it waits (up to 15 s) until the other worker has
# committed one too, so each is sure to do part of the work; after that they race.
WORKER = r"""
import sys, time
from datetime import datetime
from pathlib import Path
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator, ChargeOutcome
from kakin.services.due_run import run_due

me, other, until, batch = Path(sys.argv[1]), Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])
engine = make_engine()
with engine.connect():
    pass
print("ready", flush=True)
sys.stdin.readline()
batches = []

def rendezvous(n):
    batches.append(n)
    if len(batches) == 1:
        me.touch()
        deadline = time.monotonic() + 15
        while not other.exists() and time.monotonic() < deadline:
            time.sleep(0.005)

done = run_due(lambda: UnitOfWork(engine), "nipoplus", CardSimulator(), until, batch_size=batch, on_batch=rendezvous)
print("done", done, len(batches), flush=True)
"""


def test_two_workers_racing_over_the_same_renewals_bill_each_customer_once(pg_url: str, tmp_path: Path) -> None:
    n = 300
    engine = seed(pg_url, n)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / me), str(tmp_path / other), UNTIL, "7"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env_for(pg_url))
               for me, other in (("a", "b"), ("b", "a"))]
    try:
        for w in workers:
            assert w.stdout is not None and w.stderr is not None
            assert w.stdout.readline().strip() == "ready", w.stderr.read() if w.poll() is not None else "no ready"
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, (_, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, err
    done = [int(out.split()[-2]) for out, _ in results]
    assert sum(done) == n  # every renewal done once between them
    assert all(d > 0 for d in done), f"one worker did everything: {done}"
    check_billed_exactly_once(engine, n)
    engine.dispose()


RUN_DUE = [sys.executable, "-m", "kakin.cli", "run-due", "--until", UNTIL]


def run_due_cli(url: str) -> subprocess.CompletedProcess[str]:
    # charges a killed run left in flight are settled at once (a worker waits KAKIN_INTENT_GRACE, 5 minutes)
    return subprocess.run(RUN_DUE, capture_output=True, text=True, timeout=120,
                          env={**env_for(url), "KAKIN_INTENT_GRACE": "0"})


def actions(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    m = re.search(r"nipoplus: (\d+) actions", result.stdout)
    assert m, result.stdout
    return int(m.group(1))


def test_a_worker_killed_in_the_middle_of_a_run_is_redone_without_double_billing(file_or_pg_url: str) -> None:
    n = 3000
    url = file_or_pg_url
    seed(url, n).dispose()
    # Watch with a plain engine: make_engine's SQLite transactions begin immediate, and such a reader
    # would queue for the write lock behind the worker's batches instead of seeing each commit.
    engine = create_engine(url)
    proc = subprocess.Popen(RUN_DUE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(url))
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and proc.poll() is None:
            seen = renewals_done(engine)
            if seen > 0:
                break
            time.sleep(0.002)
        assert proc.poll() is None, f"the run finished before it could be killed ({seen} seen): make n bigger"
        assert 0 < seen < n
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = renewals_done(engine)
    assert 0 < committed < n, committed  # the kill left part of the run committed and part undone
    engine.dispose()  # SQLite: the next process recovers the file the killed one left
    assert actions(run_due_cli(url)) == n - committed  # the rerun does what is left, and only that
    engine = make_engine(url)
    check_billed_exactly_once(engine, n)
    assert actions(run_due_cli(url)) == 0  # and a third run finds nothing due
    engine.dispose()


def test_two_run_due_commands_at_once_bill_each_customer_once(pg_url: str) -> None:
    """Two `kakin run-due` processes (batches of 1,000) over 3,000 due renewals, started together."""
    n = 3000
    engine = seed(pg_url, n)
    procs = [subprocess.Popen(RUN_DUE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(pg_url))
             for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = [subprocess.CompletedProcess(p.args, p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
    assert sum(actions(r) for r in results) == n
    check_billed_exactly_once(engine, n)
    engine.dispose()


# ------------------------------------------------------------------ the gateway's view of a killed batch
class Gateway(CardSimulator):
    """A card gateway that, like a real one, outlives the worker: one card per customer, keys remembered."""

    def is_known(self, payment_method: str) -> bool:
        return payment_method.startswith("pm_cust_")

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        if idempotency_key in self._seen:  # a repeated key returns the first outcome and charges nothing
            return self._seen[idempotency_key]
        outcome = ChargeOutcome(ok=True, reference=f"ch_{len(self._seen) + 1:06d}")
        self._seen[idempotency_key] = outcome
        self.charged.append((payment_method, amount, idempotency_key))
        return outcome


class Killed(BaseException):
    """The worker process is gone (not an Exception: nothing in kakin may catch it)."""


class KilledAfterCharging:
    """The worker process dies right after the gateway accepted its n-th charge, before the batch commits."""

    def __init__(self, inner: Gateway, n: int) -> None:
        self.inner, self.left = inner, n
        self.minimum_charge = inner.minimum_charge

    def is_known(self, payment_method: str) -> bool:
        return self.inner.is_known(payment_method)

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        outcome = self.inner.charge(payment_method, amount, idempotency_key)
        self.left -= 1
        if self.left == 0:
            raise Killed("kill -9")
        return outcome


def test_a_charge_made_by_a_killed_batch_is_never_credited_to_another_customer(engine: Engine) -> None:
    """What the gateway charged must match what the database says was paid, card by card.

    A killed batch has already charged cards when it dies, after committing its
    invoices and their payment intents; the worker's next pass settles those at
    the gateway with the same keys. A key names the customer and what is billed,
    never an invoice number alone, so a key the gateway has seen never comes back
    for a different customer's invoice.
    """
    gateway = Gateway()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        for i in range(6):
            billing.create_customer(uow, tenant, gateway, f"c{i}", f"顧客{i}", SIGNUP, payment_method=f"pm_cust_{i}")
            billing.subscribe(uow, tenant, gateway, f"c{i}", SIGNUP, "gold", seats=10)
    until = datetime.fromisoformat(UNTIL)
    with pytest.raises(Killed):  # batch 1 (c0-c2) is done; batch 2 (c3-c5) is finalized, then dies charging c3's card
        due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", KilledAfterCharging(gateway, 4), until, batch_size=3)
    # Before the worker is restarted, the service goes on: a customer signs up and is billed.
    later = datetime(2026, 6, 3, 0, 30, tzinfo=JST)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "nipoplus")
        billing.create_customer(uow, tenant, gateway, "new", "新規", later, payment_method="pm_cust_new")
        billing.subscribe(uow, tenant, gateway, "new", later, "gold", seats=10)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, until, batch_size=3)
    payments.settle_intents(engine, gateway, until, grace=timedelta(0))  # the charges the killed batch left in flight

    inv, pa, c = tables.invoices, tables.payment_attempts, tables.customers
    with engine.connect() as conn:
        paid = conn.execute(select(c.c.payment_method, pa.c.amount, pa.c.idempotency_key).select_from(
            pa.join(inv, inv.c.id == pa.c.invoice_id).join(c, c.c.id == inv.c.customer_id)).where(
            pa.c.outcome == "succeeded")).all()
        seqs = [s for (s,) in conn.execute(select(inv.c.seq).order_by(inv.c.seq))]
    assert seqs == list(range(1, 14))  # 7 sign-ups and 6 renewals, numbers gapless
    charged = Counter(pm for pm, _, _ in gateway.charged)
    recorded = Counter(pm for pm, _, _ in paid)
    assert charged == recorded, (
        f"cards charged at the gateway {dict(charged)} != payments recorded {dict(recorded)}; "
        f"charged {sorted(gateway.charged, key=lambda r: r[2])}; recorded {sorted(paid, key=lambda r: r[2])}")
