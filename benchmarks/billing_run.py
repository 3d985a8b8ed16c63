"""Billing-run benchmark: renew N active NipoPlus-style subscriptions in the SQLite store.

Prints renewals per second through kakin's due-work run (load accounts in
batches, apply the renewal rule, number, charge with the card simulator, save,
audit) next to a raw-insert floor measured in the same run: the same invoice
rows and their lines written with one ``executemany`` each in one transaction.
Peak memory is measured in a fresh process per size, at N and N/10, so a flat
figure shows that the run streams in batches.

    python benchmarks/billing_run.py            # N = 100,000
    python benchmarks/billing_run.py 20000
    python benchmarks/billing_run.py --database postgresql --workers 1,2,4 200000

On PostgreSQL (a throwaway cluster on 127.0.0.1, or KAKIN_BENCH_POSTGRES_URL)
the run is made by 1, 2 and 4 worker processes at once, each running the
due-work loop until nothing is left for it (``SKIP LOCKED`` shares the
accounts out), on a fresh database per run; the floor writes the same rows
with one ``executemany`` each. Peak memory is the largest worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from kakin.adapters.db import tables
from kakin.adapters.db.bulk import update_many
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import ChargeOutcome
from kakin.domain.account import Account, OpenInvoice
from kakin.domain.invoice import Line, LineKind, TaxPolicy, generate_invoice
from kakin.domain.money import Rounding
from kakin.services.due_run import run_due
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
ANCHOR = date(2026, 5, 3)
RENEWAL = datetime(2026, 6, 3, tzinfo=JST)


def seed(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    """N customers on GOLD with 10 seats, signed up May 3, due June 3 (state as the service leaves it)."""
    now = datetime(2026, 5, 3, 1, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", now)
    due = RENEWAL.astimezone(UTC)
    chunk = 20_000
    with engine.begin() as conn:
        for start in range(0, n, chunk):
            ids = range(start + 1, min(n, start + chunk) + 1)
            conn.execute(insert(tables.customers), [
                {"id": i, "tenant_id": tenant.row.id, "key": f"c{i}", "name": f"顧客{i}", "payment_method": "pm_card_visa",
                 "members": 10, "credit": 0, "next_due_at": due, "created_at": now} for i in ids])
            conn.execute(insert(tables.subscriptions), [
                {"id": i, "tenant_id": tenant.row.id, "customer_id": i, "product": "plan", "plan": "gold",
                 "contract": "monthly", "status": "active", "seats": 10, "anchor": ANCHOR, "period_start": ANCHOR,
                 "period_end": date(2026, 6, 3), "ended": False, "created_at": now,
                 "notified": "charge:2026-06-03"} for i in ids])  # the week-before notice already went out
            conn.execute(insert(tables.subscription_phases), [
                {"subscription_id": i, "start": ANCHOR, "plan": "gold", "contract": "monthly", "seats": 10, "members": 10,
                 "billable": True, "recorded_at": now} for i in ids])


def floor(n: int, folder: Path, url: str = "") -> float:
    """Seconds to write N invoice rows and N line rows, one executemany each, one transaction."""
    engine = make_engine(url or f"sqlite:///{folder}/floor.db")
    migrate(engine)
    now = datetime(2026, 6, 3, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", now)
    with engine.begin() as conn:
        conn.execute(insert(tables.customers), [{"id": 1, "tenant_id": tenant.row.id, "key": "c", "name": "c", "created_at": now}])
    inv = [{"id": i, "tenant_id": tenant.row.id, "customer_id": 1, "seq": i, "number": f"NIPOPLUS-{i:08d}",
            "issued_on": date(2026, 6, 3), "issued_at": now, "period_start": date(2026, 6, 3), "period_end": date(2026, 7, 3),
            "subtotal": 1800, "tax": 163, "total": 1800, "tax_rate": "10%", "tax_inclusive": True, "credit_applied": 0,
            "credit_carried": 0, "status": "paid", "attempts": 0, "paid_at": now} for i in range(1, n + 1)]
    lines = [{"invoice_id": i, "position": 0, "kind": "recurring", "description": "GOLD PLAN（月額契約） 2026-06-03〜2026-07-02",
              "quantity": 10, "amount": 1800, "period_start": date(2026, 6, 3), "period_end": date(2026, 7, 3),
              "formula": "180 × 10 = 1800"} for i in range(1, n + 1)]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(tables.invoices), inv)
        conn.execute(insert(tables.invoice_lines), lines)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds


def measure(n: int) -> dict[str, float]:
    """Seed in a child process, then renew in a fresh child whose peak memory is the run's alone."""
    with tempfile.TemporaryDirectory(prefix="kakin-bench-") as d:
        folder = Path(d)
        subprocess.run([sys.executable, __file__, str(n), "--seed", str(folder)], check=True)
        run = subprocess.run([sys.executable, __file__, str(n), "--run", str(folder)], capture_output=True, text=True, check=True)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["floor_seconds"] = floor(n, folder)
        result["floor_rows_per_s"] = n / result["floor_seconds"]
        return result


def seed_only(n: int, folder: Path) -> None:
    engine = make_engine(f"sqlite:///{folder}/run.db")
    migrate(engine)
    seed(engine, n)
    engine.dispose()


class ApprovingGateway:
    """Approves every charge and remembers nothing, so the run's memory is kakin's alone."""

    minimum_charge = 50

    def is_known(self, payment_method: str) -> bool:
        return True

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        return ChargeOutcome(ok=True, reference=idempotency_key)


def run_only(n: int, folder: Path) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{folder}/run.db")
    gateway = ApprovingGateway()
    t0 = time.perf_counter()
    done = run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, RENEWAL, batch_size=1000)
    seconds = time.perf_counter() - t0
    with engine.connect() as conn:
        invoices = conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one()
        paid = conn.execute(select(func.sum(tables.invoices.c.total))).scalar_one()
        keys = conn.execute(select(func.count(func.distinct(tables.payment_attempts.c.idempotency_key)))).scalar_one()
    assert done == n and invoices == n and paid == 1800 * n and keys == n, (done, invoices, paid, keys)  # each once
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "seconds": seconds, "renewals_per_s": n / seconds, "peak_rss_mib": peak}


# ------------------------------------------------------------------ PostgreSQL, several workers
def pg_worker(url: str) -> dict[str, float]:
    """A worker process: connect, say ready, wait for "go", renew until nothing is left for it."""
    engine = make_engine(url)
    with engine.connect():
        pass
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    done = run_due(lambda: UnitOfWork(engine), "nipoplus", ApprovingGateway(), RENEWAL, batch_size=1000)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"done": done, "seconds": seconds, "peak_rss_mib": peak_of_this_program()}


def writes_worker(url: str, first: int, count: int) -> dict[str, float]:
    """A process writing, for customers ``first`` … ``first + count - 1`` in batches of 1,000, every row a renewal
    writes on PostgreSQL, through the store's own writers and in the run's two transactions per batch, with no
    loads, no billing rules and no gateway: the customer's due time and version, the subscription's period, the
    tenant's counter, the invoice and its line, the payment intent and the audit record; then the intent's outcome,
    the invoice paid, the payment log and the second audit record. What a renewal costs the database alone."""
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "nipoplus")
    draft, _ = generate_invoice(
        [Line(LineKind.RECURRING, "GOLD PLAN（月額契約） 2026-06-03〜2026-07-02", 10, 1800, date(2026, 6, 3),
              date(2026, 7, 3), "180 × 10 = 1800")], issued_on=date(2026, 6, 3), credit_balance=0,
        tax=TaxPolicy(Fraction(1, 10), True, Rounding.FLOOR), period_start=date(2026, 6, 3), period_end=date(2026, 7, 3))
    now, due = RENEWAL.astimezone(UTC), datetime(2026, 7, 3, tzinfo=JST).astimezone(UTC)
    state = {"members": 10, "credit": 0, "payment_method": True, "collection": "card", "plan": "gold",
             "contract": "monthly", "status": "active", "seats": 10}
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for start in range(first, first + count, 1000):
        ids = list(range(start, min(first + count, start + 1000)))
        keys = [f"nipoplus:c{i}:plan:2026-05-03:2026-06-03:1" for i in ids]
        with UnitOfWork(engine) as uow:
            update_many(uow.conn, tables.customers, ("next_due_at", "version"), [(i, {"next_due_at": due, "version": 1})
                                                                                  for i in ids])
            update_many(uow.conn, tables.subscriptions, ("period_start", "period_end"),
                        [(i, {"period_start": date(2026, 6, 3), "period_end": date(2026, 7, 3)}) for i in ids])
            seq = uow.reserve_invoice_numbers(tenant.row, len(ids))
            invoice_ids = uow.add_invoices(tenant.row, seq, [(Account(key=f"c{i}", name="", id=i), draft,
                                                              OpenInvoice(0, "", draft.total)) for i in ids], now,
                                           tax_inclusive=True, tax_rate=Fraction(1, 10))
            uow.intents.add([{"tenant_id": tenant.row.id, "customer_id": i, "invoice_id": inv, "amount": 1800,
                              "payment_method": "pm_card_visa", "idempotency_key": key, "status": "pending", "at": now}
                             for i, inv, key in zip(ids, invoice_ids, keys, strict=True)])
            uow.audit([{"tenant_id": tenant.row.id, "customer_id": i, "at": now, "actor": "worker",
                        "action": "invoice.finalized", "before": None,
                        "after": {**state, "events": [{"event": "invoice.finalized", "at": now, "total": 1800, "tax": 163,
                                                       "number": uow.invoice_number(tenant.row, seq + k)}]}}
                       for k, i in enumerate(ids)])
        with UnitOfWork(engine) as uow:
            uow.intents.record_outcomes([(key, "succeeded", None, key) for key in keys], now)
            uow.mark_invoices_paid(invoice_ids, now)
            uow.add_payment_attempts([{"invoice_id": inv, "at": now, "customer_id": i, "payment_method": "pm_card_visa",
                                       "amount": 1800, "outcome": "succeeded", "code": None, "idempotency_key": key,
                                       "reference": key} for i, inv, key in zip(ids, invoice_ids, keys, strict=True)])
            uow.audit([{"tenant_id": tenant.row.id, "customer_id": i, "at": now, "actor": "worker",
                        "action": "payment.succeeded", "before": None,
                        "after": {**state, "events": [{"event": "payment.succeeded", "at": now, "amount": 1800,
                                                       "number": uow.invoice_number(tenant.row, seq + k)}]}}
                       for k, i in enumerate(ids)])
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"done": count, "seconds": seconds}


def peak_of_this_program() -> float:
    """Peak RSS in MiB since exec (VmHWM): ru_maxrss would keep the parent's peak from before the fork."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pg_measure(server: Any, n: int, workers: int, label: str, writes_only: bool = False) -> dict[str, float]:
    """N renewals by ``workers`` processes on a fresh database: kakin's due-work run, or (``writes_only``) the rows
    it writes and nothing else (:func:`writes_worker`, the customers shared out in equal ranges)."""
    url = server.database(f"bench_{label}")
    engine = make_engine(url)
    migrate(engine)
    seed(engine, n)
    engine.dispose()
    share = -(-n // workers)
    commands = ([[str(n), "--writes-url", url, "--first", str(1 + k * share), "--count", str(max(0, min(share, n - k * share)))]
                 for k in range(workers)] if writes_only else [[str(n), "--worker-url", url]] * workers)
    procs = [subprocess.Popen([sys.executable, __file__, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for command in commands]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [json.loads(p.communicate(timeout=7200)[0].strip().splitlines()[-1]) for p in procs]
    seconds = time.perf_counter() - t0
    engine = make_engine(url)
    with engine.connect() as conn:
        invoices = conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one()
        seqs = conn.execute(select(func.min(tables.invoices.c.seq), func.max(tables.invoices.c.seq))).one()
        keys = conn.execute(select(func.count(func.distinct(tables.payment_attempts.c.idempotency_key)))).scalar_one()
    engine.dispose()
    done = sum(int(o["done"]) for o in outs)
    assert done == n and invoices == n and tuple(seqs) == (1, n) and keys == n, (done, invoices, seqs, keys)  # each once
    return {"n": n, "workers": workers, "seconds": seconds, "renewals_per_s": n / seconds,
            "peak_rss_mib": max(o.get("peak_rss_mib", 0) for o in outs), "split": [int(o["done"]) for o in outs]}


def postgres_main(n: int, worker_counts: list[int]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from faults import Postgres  # the throwaway cluster the fault harness starts

    class Given:
        def __init__(self, server: str) -> None:
            self.server = server

        def database(self, name: str) -> str:
            from sqlalchemy import create_engine, text

            admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            return self.server.rsplit("/", 1)[0] + f"/{name}"

        def stop(self) -> None:
            pass

    given = os.environ.get("KAKIN_BENCH_POSTGRES_URL")
    server: Any = Given(given) if given else Postgres()
    try:
        print(f"billing run, NipoPlus renewals on PostgreSQL (batch 1,000; load average {os.getloadavg()[0]:.1f} at start)")
        with tempfile.TemporaryDirectory() as d:
            floor_s = floor(n, Path(d), server.database("bench_floor"))
        print(f"  floor: N = {n:,} invoices and lines, one executemany each: {n / floor_s:,.0f} invoices/s ({floor_s:.1f} s)")
        for k in worker_counts:
            small = pg_measure(server, max(1, n // 10), k, f"w{k}_small")
            big = pg_measure(server, n, k, f"w{k}")
            writes = pg_measure(server, n, k, f"w{k}_writes", writes_only=True)
            print(f"  {k} worker(s): N = {n:>9,}: {big['renewals_per_s']:>7,.0f} renewals/s ({big['seconds']:.1f} s, "
                  f"split {big['split']}); {(n / floor_s) / big['renewals_per_s']:.1f}× the floor; peak RSS per worker "
                  f"{small['peak_rss_mib']:.0f} MiB at N = {small['n']:,}, {big['peak_rss_mib']:.0f} MiB at N = {n:,}")
            print(f"    the rows alone: {writes['renewals_per_s']:>7,.0f} renewals/s by {k} process(es) writing every "
                  f"row a renewal writes, in its two transactions, with no loads and no billing rules "
                  f"({writes['seconds']:.1f} s)")
        print(f"  load average at the end {os.getloadavg()[0]:.1f}; targets: ≥ 5,000 renewals/s with 2 workers at N = 200,000")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="subscriptions to renew (default 100,000)")
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", default="1,2,4", help="PostgreSQL: worker processes per run (default 1,2,4)")
    parser.add_argument("--worker-url", help=argparse.SUPPRESS)
    parser.add_argument("--writes-url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writes_url:
        print(json.dumps(writes_worker(args.writes_url, args.first, args.count)), flush=True)
        return
    if args.worker_url:
        print(json.dumps(pg_worker(args.worker_url)), flush=True)
        return
    if args.database == "postgresql":
        postgres_main(args.n, [int(k) for k in args.workers.split(",")])
        return
    if args.seed:
        seed_only(args.n, args.seed)
        return
    if args.run:
        print(json.dumps(run_only(args.n, args.run)))
        return
    results = [measure(n) for n in (max(1, args.n // 10), args.n)]
    small, big = results
    print(f"billing run, NipoPlus renewals on SQLite ({Path(sys.executable).name}, batch 1,000)")
    for r in results:
        print(f"  N = {r['n']:>9,}: {r['renewals_per_s']:>9,.0f} renewals/s ({r['seconds']:.2f} s); "
              f"raw-insert floor {r['floor_rows_per_s']:>9,.0f} invoices/s ({r['floor_seconds']:.2f} s); "
              f"{r['floor_rows_per_s'] / r['renewals_per_s']:.1f}× the floor; peak RSS of the run {r['peak_rss_mib']:.0f} MiB")
    print(f"  memory: {small['peak_rss_mib']:.0f} MiB at N = {small['n']:,} vs {big['peak_rss_mib']:.0f} MiB at N = {big['n']:,}")
    print("  targets: ≥ 5,000 renewals/s, within 5× of the floor, memory flat in N")


if __name__ == "__main__":
    main()
