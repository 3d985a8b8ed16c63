"""Billing-run benchmark: renew N active NipoPlus-style subscriptions in the SQLite store.

Prints renewals per second through kakin's due-work run (load accounts in
batches, apply the renewal rule, number, charge with the card simulator, save,
audit) next to a raw-insert floor measured in the same run: the same invoice
rows and their lines written with one ``executemany`` each in one transaction.
Peak memory is measured in a fresh process per size, at N and N/10, so a flat
figure shows that the run streams in batches.

    python benchmarks/billing_run.py            # N = 100,000
    python benchmarks/billing_run.py 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import ChargeOutcome
from kakin.services.billing import run_due
from kakin.services.tenancy import create_tenant

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


def floor(n: int, folder: Path) -> float:
    """Seconds to write N invoice rows and N line rows, one executemany each, one transaction."""
    engine = make_engine(f"sqlite:///{folder}/floor.db")
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
    accounts_per_batch = 1000

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="subscriptions to renew (default 100,000)")
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
