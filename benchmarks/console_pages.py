"""Console pages benchmark: the service calls behind the operator console's pages on a large tenant.

Seeds one LINE OA tenant with 100,000 customers (each with its super admin, a main subscription, every tenth a
premium ID, the paying ones a year of messages, one usage event a month) and 1,000,000 invoices (ten a customer, one a month from
September 2025 to June 2026, each with its audit record) and 10,000 credit notes, by bulk inserts, plus a small
second tenant. Then it times,
each in a fresh read-only unit of work, as a page would call them:

- ``dashboard`` (``services.analytics.dashboard``);
- customer search by a name fragment, by an e-mail fragment, by a customer id (``services.search``);
- document search by an issue-date range (a week), an amount range, a counterparty, all three combined, and the
  first page of the CSV export (the header and the first 1,000 rows);

and prints p50 and p99 of each next to two baselines measured in the same run on the same data: a primary-key
lookup of a customer and ``SELECT count(*)`` of the invoices table. With ``--compare`` it first drops the indexes
of migration 0022, times everything, creates them again and times it again (before / after).

Before timing, the dashboard's monthly sums are saved as the worker's pass saves them (``analytics.save_sums``, by
an engine of its own, as another process; on PostgreSQL twice, a second apart, so the rows settle), and the
dashboard's first call is timed on an engine that has not read anything yet (a new process).

Then the console's HTML pages through the ASGI app (Starlette's TestClient, an owner signed in through the form;
a new engine, so the dashboard page's first request is a new process's): the dashboard, the customers list, a
customer search by a name fragment, one customer's page, an invoice search by counterparty, dunning and the review
queue, p50/p99 next to ``GET /healthz`` through the same app and the ``count(*)`` baseline.

    python benchmarks/console_pages.py                          # SQLite file, 100,000 / 1,000,000
    python benchmarks/console_pages.py --compare
    python benchmarks/console_pages.py --database postgresql --compare   # throwaway cluster or KAKIN_BENCH_POSTGRES_URL
    python benchmarks/console_pages.py --customers 10000 --repeat 20     # smaller and quicker

Target (issue 12): every call under 200 ms p99.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Index, func, select, text

from kakin.adapters.db import tables
from kakin.adapters.db.bulk import insert_many
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.services import analytics, operators, search
from kakin.services.tenancy import create_tenant

TODAY = date(2026, 6, 20)
NOW = datetime(2026, 6, 20, 1, 0, tzinfo=UTC)  # 10:00 JST on TODAY: the console's clock
OPERATOR, PASSWORD = "owner@line-oa.example", "console benchmark password"
MONTHS = [date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1),
          date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1), date(2026, 6, 1)]
COUNTER_MONTHS = [date(2025, 7, 1), date(2025, 8, 1), *MONTHS]
SURNAMES = ["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林", "加藤", "吉田", "山本"]
KINDS = ["商事", "工業", "製作所", "物産", "システムズ", "食品", "建設", "運輸"]
CHUNK = 20_000
FINALIZED = '{"events": [{"event": "invoice.finalized"}]}'  # each invoice's audit record (the customer's timeline)
# the indexes migration 0022 adds for the console's figures and searches (dropped for the "before" figures)
CONSOLE_INDEXES = ("ix_customers_tenant_created", "ix_invoices_tenant_issued", "ix_invoices_tenant_total",
                   "ix_invoices_open", "ix_invoices_void", "ix_credit_notes_tenant_issued", "ix_credit_notes_tenant_total",
                   "ix_credit_notes_customer", "ix_subscriptions_tenant_plans", "ix_subscriptions_tenant_canceled",
                   "ix_customers_tenant_names", "ix_members_tenant_email")


def _name(i: int) -> str:
    return f"株式会社{SURNAMES[i % len(SURNAMES)]}{KINDS[(i // 12) % len(KINDS)]}{i}"


def seed(engine: Engine, customers: int, invoices_each: int, out: Callable[[str], None]) -> int:
    """The data set described in the module docstring; returns the tenant's id."""
    rng = random.Random(12)
    t0 = time.perf_counter()
    created = datetime(2025, 6, 1, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", created).row
        other = create_tenant(uow, "other", "Other", "line-oa", created).row
    span = (datetime(2026, 6, 19, tzinfo=UTC) - created).total_seconds()
    seq = cn_seq = 0
    months = MONTHS[-invoices_each:]
    with engine.begin() as conn:
        for tenant_id, count, first in ((tenant.id, customers, 1), (other.id, 1000, customers + 1)):
            for start in range(first, first + count, CHUNK):
                ids = range(start, min(first + count, start + CHUNK))
                cust, mem, subs, events, inv, notes, audit = [], [], [], [], [], [], []
                for i in ids:
                    at = created + timedelta(seconds=span * ((i * 7919) % count) / count)
                    day = 1 + i % 28
                    plan = "communication" if i % 10 < 5 else "light" if i % 10 < 8 else "standard"
                    status = "past_due" if i % 97 == 0 else "canceled" if i % 53 == 0 else "active"
                    cust.append({"id": i, "tenant_id": tenant_id, "key": f"c{i:06d}", "name": _name(i), "members": 1 + i % 40,
                                 "credit": 0, "collection": "card", "created_at": at})
                    mem.append({"tenant_id": tenant_id, "customer_id": i, "public_id": f"mem_{i:016x}",
                                "email": f"admin{i}@corp{i}.example.jp", "name": f"管理者{i}", "role": "super_admin",
                                "created_at": at})
                    subs.append({"tenant_id": tenant_id, "customer_id": i, "product": "plan", "plan": plan,
                                 "contract": "monthly", "status": status, "seats": 0, "anchor": date(2025, 9, 1),
                                 "period_start": date(2026, 6, 1), "period_end": date(2026, 7, 1),
                                 "canceled_on": date(2026, 6, day) if status == "canceled" else None,
                                 "ended": status == "canceled", "created_at": at})
                    if i % 10 == 9:
                        subs.append({"tenant_id": tenant_id, "customer_id": i, "product": "premium_id", "plan": plan,
                                     "contract": "monthly", "status": "active", "seats": 0, "anchor": date(2025, 9, 1),
                                     "period_start": date(2026, 6, 1), "period_end": date(2026, 7, 1),
                                     "value": f"@shop{i}", "canceled_on": None, "ended": False, "created_at": at})
                    if plan != "communication":  # a month's messages as one event (the counters are their sums)
                        events += [{"tenant_id": tenant_id, "customer_id": i, "metric": "messages",
                                    "quantity": rng.randrange(100, 40_000), "occurred_at": created, "month": m,
                                    "transaction_id": f"m{i}-{m}", "recorded_at": created} for m in COUNTER_MONTHS]
                    gross = 5500 if plan == "light" else 16500 if plan == "standard" else 110
                    for n, month in enumerate(months):
                        seq += 1
                        amount = gross + (rng.randrange(0, 30) * 330 if plan == "standard" else 0)
                        last = n == len(months) - 1
                        state = "open" if last and i % 29 == 0 else "paid"
                        inv.append({"id": seq, "tenant_id": tenant_id, "customer_id": i, "seq": seq,
                                    "number": f"LINEOA-{seq:08d}", "issued_on": month.replace(day=day),
                                    "issued_at": created, "period_start": month, "period_end": month,
                                    "subtotal": amount * 10 // 11, "tax": amount - amount * 10 // 11, "total": amount,
                                    "tax_rate": "10%", "tax_inclusive": False, "credit_applied": 0, "credit_carried": 0,
                                    "status": state, "attempts": 0, "credited": 0, "deferred": False,
                                    "first_failed_at": created if state == "open" and i % 3 == 0 else None,
                                    "recipient_name": _name(i)})
                        audit.append({"tenant_id": tenant_id, "customer_id": i, "at": created, "actor": "worker",
                                      "action": "billing.run_due", "after": FINALIZED})
                    if i % 10 == 3:
                        cn_seq += 1
                        notes.append({"tenant_id": tenant_id, "customer_id": i, "invoice_id": seq, "seq": cn_seq,
                                      "number": f"LINEOA-CN-{cn_seq:08d}", "issued_on": months[-1].replace(day=day),
                                      "issued_at": created, "amount": 500, "tax": 50, "total": 550, "reason": "返金",
                                      "settlement": "refund", "recipient_name": _name(i)})
                for table, rows in ((tables.customers, cust), (tables.members, mem), (tables.subscriptions, subs),
                                    (tables.usage_events, events), (tables.invoices, inv), (tables.credit_notes, notes),
                                    (tables.audit_log, audit)):
                    insert_many(conn, table, rows)
                out(f"  seeded {start + len(ids) - first:,} / {count:,} customers of tenant {tenant_id} "
                    f"({time.perf_counter() - t0:.0f} s)")
    analyze(engine)
    out(f"  seeded {customers + 1000:,} customers, {seq:,} invoices, {cn_seq:,} credit notes in "
        f"{time.perf_counter() - t0:.0f} s")
    return tenant.id


def analyze(engine: Engine) -> None:
    """Statistics for the planner, as a running database has them (PostgreSQL's autovacuum; SQLite's ANALYZE)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def console_indexes() -> list[Index]:
    found = {ix.name: ix for t in tables.metadata.tables.values() for ix in t.indexes}
    return [found[name] for name in CONSOLE_INDEXES if name in found]


def drop_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for ix in console_indexes():
            ix.drop(conn, checkfirst=True)
    analyze(engine)


def create_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for ix in console_indexes():
            ix.create(conn, checkfirst=True)
    analyze(engine)


def calls(engine: Engine, tenant_id: int, customers: int) -> dict[str, Callable[[int], Any]]:
    """What to time: name → a call taking the repetition number (so each repetition asks something else)."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = next(t for t in uow.tenants() if t.id == tenant_id)

    def read(fn: Callable[[UnitOfWork], Any]) -> Any:
        with UnitOfWork(engine, readonly=True) as uow:
            return fn(uow)

    def some(k: int) -> int:
        return 1 + (k * 7717) % customers

    def week(k: int) -> tuple[date, date]:
        start = date(2025, 9, 1) + timedelta(days=(k * 37) % 280)
        return start, start + timedelta(days=6)

    def csv_first_page(uow: UnitOfWork) -> int:
        chunks = search.documents_csv(uow, row, search.DocumentQuery(issued_from=date(2026, 1, 1)))
        return len(next(chunks)) + len(next(chunks))  # the header, then the first 1,000 rows

    invoices = tables.invoices
    return {
        "baseline: customer by primary key": lambda k: read(lambda u: u.conn.execute(
            select(tables.customers).where(tables.customers.c.id == some(k))).first()),
        "baseline: SELECT count(*) FROM invoices": lambda k: read(lambda u: u.conn.execute(
            select(func.count()).select_from(invoices)).scalar()),
        "dashboard": lambda k: read(lambda u: analytics.dashboard(u, row, TODAY)),
        "customers: name fragment": lambda k: read(lambda u: search.search_customers(
            u, row, f"{SURNAMES[k % 12]}{KINDS[k % 8]}{some(k) % 1000}", None, None, 50, None)),
        "customers: e-mail fragment": lambda k: read(lambda u: search.search_customers(
            u, row, f"admin{some(k)}@", None, None, 50, None)),
        "customers: customer id": lambda k: read(lambda u: search.search_customers(
            u, row, f"c{some(k):06d}", None, None, 50, None)),
        "customers: plan and status filter": lambda k: read(lambda u: search.search_customers(
            u, row, None, "standard", "past_due", 50, None)),
        "documents: issue-date range (a week)": lambda k: read(lambda u: search.search_documents(
            u, row, search.DocumentQuery(issued_from=week(k)[0], issued_to=week(k)[1]))),
        "documents: amount range": lambda k: read(lambda u: search.search_documents(
            u, row, search.DocumentQuery(amount_min=16500 + 330 * (k % 29), amount_max=16500 + 330 * (k % 29) + 330))),
        "documents: counterparty": lambda k: read(lambda u: search.search_documents(
            u, row, search.DocumentQuery(counterparty=_name(some(k))))),
        "documents: date, amount and counterparty": lambda k: read(lambda u: search.search_documents(
            u, row, search.DocumentQuery(issued_from=date(2026, 1, 1), issued_to=date(2026, 6, 30), amount_min=5000,
                                         amount_max=20000, counterparty=f"{SURNAMES[k % 12]}{KINDS[k % 8]}"))),
        "documents: first CSV page (1,000 rows)": lambda k: read(csv_first_page),
    }


COLD: list[str] = []  # the dashboard was called in this process (its series are kept from then on)


def save_sums(url: str, tenant_id: int, out: Callable[[str], None]) -> None:
    """What the worker's pass does for the dashboard (``analytics.save_sums``), from an engine of its own."""
    engine = make_engine(url)
    t0 = time.perf_counter()
    passes = 2 if engine.dialect.name == "postgresql" else 1  # PostgreSQL: rows settle at a pass a second later
    for n in range(passes):
        if n:
            time.sleep(1.1)
        analytics.save_sums(lambda readonly: UnitOfWork(engine, readonly=readonly), [tenant_id])
    out(f"  the worker saved the dashboard's sums in {time.perf_counter() - t0:.1f} s ({passes} pass(es); once, "
        "not per process)")
    engine.dispose()


def sample(call: Callable[[int], Any], repeat: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``repeat`` calls of ``call(k)``."""
    samples = []
    for k in range(1, repeat + 1):
        t0 = time.perf_counter()
        call(k)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def count_invoices(engine: Engine) -> int:
    with UnitOfWork(engine, readonly=True) as uow:
        return int(uow.conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one())


def page_timings(url: str, tenant_id: int, customers: int, repeat: int, out: Callable[[str], None]) -> None:
    """The console's HTML pages through the ASGI app, signed in as an owner (see the module docstring)."""
    import re

    from fastapi.testclient import TestClient

    from kakin.adapters.payments import CardSimulator
    from kakin.api.app import create_app

    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        row = next(t for t in uow.tenants() if t.id == tenant_id)
        operators.create_operator(uow, row, OPERATOR, "owner", NOW, PASSWORD)
    client = TestClient(create_app(engine, CardSimulator(), clock=lambda: NOW), base_url="http://testserver")
    token = re.search(r'name="csrftoken" value="([^"]+)"', client.get("/console/login").text)
    assert token, "no CSRF token on the sign-in form"
    signed = client.post("/console/login", data={"email": OPERATOR, "password": PASSWORD,
                                                 "csrftoken": token.group(1)}, follow_redirects=False)
    assert signed.status_code == 303, signed.text

    def some(k: int) -> int:
        return 1 + (k * 7717) % customers

    def get(path: str) -> Callable[[int], Any]:
        def call(k: int) -> Any:
            r = client.get(path.format(k=k, some=some(k), name=_name(some(k)), surname=SURNAMES[k % 12],
                                       kind=KINDS[k % 8], frag=some(k) % 1000))
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            return r
        return call

    pages = {
        "baseline: GET /healthz": get("/healthz"),
        "baseline: SELECT count(*) FROM invoices": lambda k: count_invoices(engine),
        "page: dashboard": get("/console/"),
        "page: customers (first page)": get("/console/customers"),
        "page: customers, name search": get("/console/customers?q={surname}{kind}{frag}"),
        "page: one customer": get("/console/customers/c{some:06d}"),
        "page: invoices by counterparty": get("/console/invoices?counterparty={name}"),
        "page: dunning": get("/console/dunning"),
        "page: review queue": get("/console/review"),
    }
    for name, call in pages.items():
        t0 = time.perf_counter()
        call(0)
        if name == "page: dashboard":
            out(f"  {'page: dashboard, first request':<42} {(time.perf_counter() - t0) * 1000:8.1f} ms (a new "
                "process: the saved sums and the rows above them)")
        p50, p99 = sample(call, repeat)
        out(f"  {name:<42} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms" + ("" if p99 < 200 or "baseline" in name else "   > 200 ms"))
    client.close()
    engine.dispose()


def timings(engine: Engine, tenant_id: int, customers: int, repeat: int, out: Callable[[str], None]) -> dict[str, tuple[float, float]]:
    results = {}
    for name, call in calls(engine, tenant_id, customers).items():
        t0 = time.perf_counter()
        call(0)  # warm: the catalog, the connection pool, the page cache (and the dashboard's series, read whole once)
        if name == "dashboard" and not COLD:
            COLD.append(name)
            out(f"  {'dashboard, first call in this process':<42} {(time.perf_counter() - t0) * 1000:8.1f} ms (the "
                "saved sums and the rows above their mark)")
        p50, p99 = sample(call, repeat)
        results[name] = (p50, p99)
        out(f"  {name:<42} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms" + ("" if p99 < 200 or "baseline" in name else "   > 200 ms"))
    return results


def run(url: str, label: str, customers: int, invoices_each: int, repeat: int, compare: bool) -> None:
    def out(line: str) -> None:
        print(line, flush=True)

    engine = make_engine(url)
    migrate(engine)
    out(f"console pages on {label}: {customers:,} customers, {customers * invoices_each:,} invoices "
        f"(load average {os.getloadavg()[0]:.1f} at start)")
    tenant_id = seed(engine, customers, invoices_each, out)
    save_sums(url, tenant_id, out)
    if compare:
        out("without the indexes of migration 0022:")
        drop_indexes(engine)
        timings(engine, tenant_id, customers, repeat, out)
        create_indexes(engine)
        out("with them:")
    timings(engine, tenant_id, customers, repeat, out)
    out(f"  ({repeat} calls each after one warm-up; load average {os.getloadavg()[0]:.1f}; "
        f"target: every call under 200 ms p99)")
    out("the console's pages (HTTP through the ASGI app, an owner signed in):")
    page_timings(url, tenant_id, customers, repeat, out)
    out(f"  ({repeat} requests each after one warm-up; load average {os.getloadavg()[0]:.1f} at the end)")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--invoices-each", type=int, default=10, choices=range(1, len(MONTHS) + 1),
                        help="invoices per customer, one a month (default 10: 1,000,000 for 100,000 customers)")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls of each (default 50)")
    parser.add_argument("--compare", action="store_true", help="time without migration 0022's indexes first")
    args = parser.parse_args()
    if args.database == "postgresql":
        sys.path.insert(0, str(Path(__file__).parent))
        from faults import Postgres  # the throwaway cluster the fault harness starts

        given = os.environ.get("KAKIN_BENCH_POSTGRES_URL")
        server = None if given else Postgres()
        try:
            url = given or server.database("console_pages")  # type: ignore[union-attr]
            run(url, "PostgreSQL", args.customers, args.invoices_each, args.repeat, args.compare)
        finally:
            if server is not None:
                server.stop()
        return
    with tempfile.TemporaryDirectory(prefix="kakin-console-") as d:
        run(f"sqlite:///{d}/console.db", "SQLite (a file)", args.customers, args.invoices_each, args.repeat, args.compare)


if __name__ == "__main__":
    main()
