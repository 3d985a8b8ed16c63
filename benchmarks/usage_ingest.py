"""Usage-ingest benchmark: metered events and quota grants on SQLite, through the library and over HTTP.

Prints, each next to a baseline measured in the same run:

1. events/s through ``usage.record_events`` (batches of 1,000, one transaction
   each, as ``kakin usage import`` runs them) over N events spread over ~100
   LINE OA customers on the standard plan, next to a raw SQLite insert floor:
   the same event rows written with one ``executemany`` per 1,000 in one
   transaction (sqlite3), and beside it the same committing every 1,000 and
   the same through SQLAlchemy Core;
2. events/s through ``POST /v1/usage_events`` (1,000 events a request, a few
   concurrent clients) against ``kakin serve`` started in a subprocess on
   127.0.0.1 (free port, fresh SQLite file), next to the same server's
   round trip for an empty-ish request (GET /v1/customers?limit=1);
3. quota-consume latency p50/p99 at a fixed open-loop rate on a standard-plan
   customer (never refused) and on a light-plan customer near its limit
   (refusals), measured from each request's scheduled send time.

It then checks the counts: every monthly counter equals the sum of its recorded
events, equals what the client sent, and a replayed batch counts nothing twice.
Heavy phases run in fresh processes; the server is stopped at the end.

    python benchmarks/usage_ingest.py                  # N = 200,000
    python benchmarks/usage_ingest.py 50000 --http-events 20000 --seconds 5
    python benchmarks/usage_ingest.py 50000 --only library --profile
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
MARCH = datetime(2025, 3, 1, tzinfo=JST)
LIB_NOW = datetime(2025, 3, 31, 23, tzinfo=JST)
BATCH = 1000
HOST = "127.0.0.1"
TARGET_LIB, TARGET_HTTP, TARGET_P99_MS = 100_000, 20_000, 10.0


# ----------------------------------------------------------------- library path (child process)
def library_events(n: int, customers: int, seed: int = 7) -> list[dict[str, Any]]:
    """N messages events over `customers` standard-plan customers, spread over March (JST), unique ids."""
    rng = random.Random(seed)
    span = int((LIB_NOW - MARCH).total_seconds())
    return [{"customer": f"c{i % customers:03d}", "metric": "messages", "quantity": rng.randint(1, 20),
             "timestamp": MARCH + timedelta(seconds=rng.randrange(span)), "transaction_id": f"ev-{i:09d}"}
            for i in range(n)]


def setup_library_db(path: Path, customers: int):  # type: ignore[no-untyped-def]
    from kakin.adapters.db.migrate import make_engine, migrate
    from kakin.adapters.db.store import UnitOfWork
    from kakin.adapters.payments import CardSimulator
    from kakin.services import billing
    from kakin.services.tenancy import create_tenant

    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "LINE公式アカウント", "line-oa", MARCH)
        for i in range(customers):
            key = f"c{i:03d}"
            billing.create_customer(uow, tenant, gateway, key, key, MARCH, payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, key, MARCH, "standard")
    return engine


def run_library(n: int, customers: int, folder: Path, profile: bool) -> dict[str, Any]:
    from sqlalchemy import func, select

    from kakin.adapters.db import tables
    from kakin.adapters.db.store import UnitOfWork
    from kakin.services.tenancy import open_tenant
    from kakin.services.usage import record_events

    engine = setup_library_db(folder / "library.db", customers)
    events = library_events(n, customers)
    batches = [events[i:i + BATCH] for i in range(0, n, BATCH)]
    statuses = {"recorded": 0, "duplicate": 0, "refused": 0}

    def ingest() -> None:
        for batch in batches:
            with UnitOfWork(engine) as uow:
                for r in record_events(uow, open_tenant(uow, "oa"), batch, LIB_NOW):
                    statuses[r["status"]] += 1

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    ingest()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profiler is not None:
        import io
        import pstats
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue(), file=sys.stderr)

    # replay: a whole old batch and a batch mixing old ids, repeats and new ids count only the new ones
    replay_old = batches[len(batches) // 2]
    fresh = [dict(e, transaction_id=f"late-{j}") for j, e in enumerate(events[:10])]
    mixed = events[:5] + fresh + fresh[:3] + events[-5:]
    with UnitOfWork(engine) as uow:
        again = [r["status"] for r in record_events(uow, open_tenant(uow, "oa"), replay_old, LIB_NOW)]
    with UnitOfWork(engine) as uow:
        mixed_statuses = [r["status"] for r in record_events(uow, open_tenant(uow, "oa"), mixed, LIB_NOW)]

    expected: dict[str, int] = {}
    for e in [*events, *fresh]:
        expected[e["customer"]] = expected.get(e["customer"], 0) + e["quantity"]
    with engine.connect() as conn:
        counters = dict(conn.execute(
            select(tables.customers.c.key, func.sum(tables.usage_counters.c.quantity))
            .join(tables.customers).group_by(tables.customers.c.key)).all())
        by_events = dict(conn.execute(
            select(tables.customers.c.key, func.sum(tables.usage_events.c.quantity))
            .join(tables.customers).group_by(tables.customers.c.key)).all())
        rows = conn.execute(select(func.count()).select_from(tables.usage_events)).scalar_one()
        months = conn.execute(select(func.count(func.distinct(tables.usage_counters.c.month)))).scalar_one()
    engine.dispose()
    checks = {
        "all recorded once": statuses == {"recorded": n, "duplicate": 0, "refused": 0},
        "replayed batch all duplicates": again == ["duplicate"] * len(replay_old),
        "mixed batch: only new ids recorded": mixed_statuses == ["duplicate"] * 5 + ["recorded"] * 10 + ["duplicate"] * 8,
        "one event row per id": rows == n + len(fresh),
        "counters = sum of events, per customer": counters == by_events,
        "counters = quantities sent, per customer": {k: int(v) for k, v in counters.items()} == expected,
        "one month (March)": months == 1,
    }
    return {"n": n, "seconds": seconds, "events_per_s": n / seconds, "cpu_seconds": cpu, "quantity": sum(expected.values()),
            "checks": checks}


# ----------------------------------------------------------------- raw insert floor (child process)
def run_floor(n: int, customers: int, folder: Path) -> dict[str, Any]:
    """Seconds to write the same N event rows with one executemany per 1,000: sqlite3 in one transaction (the
    floor), sqlite3 committing each 1,000 (the floor for a transaction per batch), SQLAlchemy Core in one transaction."""
    from sqlalchemy import insert

    from kakin.adapters.db import tables
    from kakin.domain.calendar import local_date, month_start

    events = library_events(n, customers)
    results: dict[str, Any] = {"n": n}
    for kind in ("sqlite3", "sqlite3_per_batch", "core"):
        path = folder / f"floor-{kind}.db"
        engine = setup_library_db(path, customers)
        with engine.connect() as conn:
            ids = dict(conn.execute(tables.customers.select().with_only_columns(
                tables.customers.c.key, tables.customers.c.id)).all())
            tenant_id = conn.execute(tables.tenants.select().with_only_columns(tables.tenants.c.id)).scalar_one()
        recorded_at = LIB_NOW.astimezone(UTC).replace(tzinfo=None)
        dict_rows = [{"tenant_id": tenant_id, "customer_id": ids[e["customer"]], "metric": e["metric"],
                      "quantity": e["quantity"], "occurred_at": e["timestamp"],
                      "month": month_start(local_date(e["timestamp"], JST)), "transaction_id": e["transaction_id"],
                      "recorded_at": LIB_NOW} for e in events]
        if kind.startswith("sqlite3"):
            engine.dispose()
            tuples = [(r["tenant_id"], r["customer_id"], r["metric"], r["quantity"],
                       r["occurred_at"].astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
                       r["month"].isoformat(), r["transaction_id"], recorded_at.isoformat(" ", "microseconds"))
                      for r in dict_rows]
            db = sqlite3.connect(path, isolation_level=None)
            for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
                db.execute(f"PRAGMA {pragma}")
            sql = ("INSERT INTO usage_events (tenant_id, customer_id, metric, quantity, occurred_at, month, "
                   "transaction_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            each = kind == "sqlite3_per_batch"
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            for i in range(0, n, BATCH):
                db.executemany(sql, tuples[i:i + BATCH])
                if each and i + BATCH < n:
                    db.execute("COMMIT")
                    db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")
            seconds = time.perf_counter() - t0
            assert db.execute("SELECT count(*) FROM usage_events").fetchone()[0] == n
            db.close()
        else:
            t0 = time.perf_counter()
            with engine.begin() as conn:
                for i in range(0, n, BATCH):
                    conn.execute(insert(tables.usage_events), dict_rows[i:i + BATCH])
            seconds = time.perf_counter() - t0
            engine.dispose()
        results[kind] = {"seconds": seconds, "events_per_s": n / seconds}
    return results


# ----------------------------------------------------------------- HTTP (server subprocess, clients here)
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """``kakin serve`` on 127.0.0.1 with a fresh SQLite file; always stopped on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "http.db"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def __enter__(self) -> Server:
        env = dict(os.environ, KAKIN_DATABASE_URL=f"sqlite:///{self.db}", COLUMNS="200")
        self.out = (self.folder / "serve.out").open("wb")
        self.err = (self.folder / "serve.err").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "kakin.cli", "serve", "--host", HOST, "--port", str(self.port)],
                                     stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kakin serve exited ({self.proc.returncode}): {self.log()}")
            if not self.key:
                found = re.search(r"line-oa\W+(kk_[0-9a-f]{12}_[A-Za-z0-9_-]{32})", (self.folder / "serve.out").read_text("utf-8"))
                self.key = found.group(1) if found else ""
            if self.key:
                probe = Client(self.port, self.key)
                try:
                    if probe.request("GET", "/v1/customers?limit=1")[0] == 200:
                        return self
                except (OSError, http.client.HTTPException):
                    pass
                finally:
                    probe.close()
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"kakin serve did not answer on {HOST}:{self.port} within 90 s: {self.log()}")

    def log(self) -> str:
        return ((self.folder / "serve.out").read_text("utf-8", "replace")[-2000:] + "\n"
                + (self.folder / "serve.err").read_text("utf-8", "replace")[-2000:])

    def __exit__(self, *_: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.out.close()
        self.err.close()


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM should this process die without stopping it."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Client:
    """One keep-alive connection; bodies are bytes encoded beforehand."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def json(self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, data = self.request(method, path, None if payload is None else json.dumps(payload).encode(), headers)
        return status, json.loads(data)

    def close(self) -> None:
        self.conn.close()


def make_customers(client: Client, keys: list[str], plan: str) -> None:
    for key in keys:
        status, body = client.json("POST", "/v1/customers", {
            "id": key, "name": key, "payment_method": "pm_card_visa",
            "super_admin": {"email": f"admin@{key}.example", "name": key}})
        assert status == 201, (status, body)
        status, body = client.json("POST", f"/v1/customers/{key}/subscription", {"plan": plan},
                                   {"Kakin-Acting-Member": body["super_admin"]["id"]})
        assert status == 200, (status, body)


def http_batches(n: int, keys: list[str], prefix: str, seed: int = 11) -> list[tuple[bytes, dict[str, int]]]:
    """N events in bodies of 1,000, timestamped in the last minute (never before this JST month); quantities per customer."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    month = now.astimezone(JST).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    for b in range(0, n, BATCH):
        events, sums = [], {}
        for i in range(b, min(n, b + BATCH)):
            key, q = keys[i % len(keys)], rng.randint(1, 20)
            at = max(month, now - timedelta(seconds=rng.uniform(0, 60)))
            events.append({"customer": key, "metric": "messages", "quantity": q, "timestamp": at.isoformat(),
                           "transaction_id": f"{prefix}-{i:09d}"})
            sums[key] = sums.get(key, 0) + q
        out.append((json.dumps({"events": events}).encode(), sums))
    return out


def post_batches(port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, list[dict[str, int]], int]:
    """POST every body with `clients` concurrent connections; (seconds, per-body counts, non-200 responses)."""
    todo = queue.SimpleQueue()  # type: ignore[var-annotated]
    for i in range(len(bodies)):
        todo.put(i)
    counts: list[dict[str, int]] = [{} for _ in bodies]
    failures = [0]

    def worker() -> None:
        c = Client(port, key)
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    status, data = c.request("POST", "/v1/usage_events", bodies[i])
                except (OSError, http.client.HTTPException):
                    status, data = 0, b""
                    c.close()
                    c = Client(port, key)
                if status != 200:
                    failures[0] += 1
                    continue
                answer = json.loads(data)
                counts[i] = {s: answer[s] for s in ("recorded", "duplicate", "refused")}
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, counts, failures[0]


def open_loop(port: int, key: str, path: str, body: bytes, rate: float, seconds: float, workers: int = 16) -> dict[str, Any]:
    """Send at a fixed rate whatever the answers do; latency counts from each request's scheduled time."""
    total = int(rate * seconds)
    todo = queue.SimpleQueue()  # type: ignore[var-annotated]
    latency: list[float] = []
    service: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        c = Client(port, key)
        c.request("GET", "/v1/customers?limit=1")  # open the connection before the clock starts
        ready.release()
        try:
            while True:
                scheduled = todo.get()
                if scheduled is None:
                    return
                sent = time.perf_counter()
                try:
                    status, _ = c.request("POST", path, body)
                except (OSError, http.client.HTTPException):
                    status = 0
                    c.close()
                    c = Client(port, key)
                done = time.perf_counter()
                with lock:
                    latency.append(done - scheduled)
                    service.append(done - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            c.close()

    ready = threading.Semaphore(0)
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for _ in threads:
        ready.acquire()
    start = time.perf_counter() + 0.05
    behind = 0.0
    for i in range(total):
        scheduled = start + i / rate
        wait = scheduled - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            behind = max(behind, -wait)
        todo.put(scheduled)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    return {"requests": total, "achieved_rate": total / elapsed, "statuses": statuses, "dispatch_behind_ms": behind * 1000,
            "p50_ms": pct(latency, 50), "p99_ms": pct(latency, 99), "max_ms": max(latency) * 1000,
            "service_p50_ms": pct(service, 50), "service_p99_ms": pct(service, 99),
            "mean_ms": statistics.fmean(latency) * 1000}


def run_http(folder: Path, n: int, customers: int, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    keys = [f"hb{i:03d}" for i in range(customers)]
    out: dict[str, Any] = {}
    with Server(folder) as server:
        setup = Client(server.port, server.key)
        make_customers(setup, keys, "standard")
        # round trip of a small authenticated request: the server's floor per request
        t0 = time.perf_counter()
        for _ in range(200):
            assert setup.request("GET", "/v1/customers?limit=1")[0] == 200
        out["small_request_ms"] = (time.perf_counter() - t0) / 200 * 1000
        warm = http_batches(BATCH, ["shop"], "warm", seed=3)  # first request pays imports and caches; counted, not timed
        status, answer = setup.request("POST", "/v1/usage_events", warm[0][0])
        assert status == 200 and json.loads(answer)["recorded"] == BATCH, (status, answer[:300])
        setup.close()

        batches = http_batches(n, keys, "http")
        bodies = [b for b, _ in batches]
        secs, counts, failures = post_batches(server.port, server.key, bodies, clients)
        out["batches"] = {"n": n, "seconds": secs, "events_per_s": n / secs, "clients": clients, "failures": failures,
                          "recorded": sum(c.get("recorded", 0) for c in counts),
                          "duplicate": sum(c.get("duplicate", 0) for c in counts),
                          "refused": sum(c.get("refused", 0) for c in counts)}
        _, replay, replay_failures = post_batches(server.port, server.key, [bodies[0]], 1)  # counted once, not twice
        out["replay"] = replay[0]

        consume = json.dumps({"count": 1}).encode()
        out["standard"] = open_loop(server.port, server.key, "/v1/customers/shop/usage/messages/consume", consume, rate, seconds)
        c = Client(server.port, server.key)
        status, body = c.json("GET", "/v1/customers/cafe/entitlements")
        assert status == 200, body
        quota = body["quotas"]["messages"]
        headroom = 10
        prefill = quota["remaining"] - headroom
        status, body = c.json("POST", "/v1/customers/cafe/usage/messages/consume", {"count": prefill})
        assert status == 200 and body["remaining"] == headroom, (status, body)
        c.close()
        out["light"] = open_loop(server.port, server.key, "/v1/customers/cafe/usage/messages/consume", consume, rate, seconds)
        out["light"]["included"], out["light"]["prefill"] = quota["included"], prefill
    # the server is stopped: read its file
    expected: dict[str, int] = {"shop": sum(warm[0][1].values())}
    for (_, sums), cnt in zip(batches, counts, strict=True):
        if cnt.get("recorded") == BATCH:
            for k, q in sums.items():
                expected[k] = expected.get(k, 0) + q
    expected["shop"] += out["standard"]["statuses"].get(200, 0)
    expected["cafe"] = out["light"]["prefill"] + out["light"]["statuses"].get(200, 0)
    db = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)
    q = ("SELECT c.key, {} FROM customers c JOIN tenants t ON t.id = c.tenant_id AND t.code = 'line-oa' "
         "LEFT JOIN {} u ON u.customer_id = c.id GROUP BY c.key")
    counters = {k: v or 0 for k, v in db.execute(q.format("sum(u.quantity)", "usage_counters"))}
    by_events = {k: v or 0 for k, v in db.execute(q.format("sum(u.quantity)", "usage_events"))}
    rows = db.execute("SELECT count(*), count(DISTINCT transaction_id) FROM usage_events").fetchone()
    db.close()
    std, light = out["standard"], out["light"]
    out["checks"] = {
        "every batch answered 200": out["batches"]["failures"] == 0 and replay_failures == 0,
        "every event recorded once": out["batches"]["recorded"] == n and out["batches"]["duplicate"] == 0,
        "replayed batch all duplicates": out["replay"] == {"recorded": 0, "duplicate": BATCH, "refused": 0},
        "standard: every consume granted": std["statuses"] == {200: std["requests"]},
        "light: granted up to the limit, the rest refused (409)": light["statuses"] == {
            200: headroom, 409: light["requests"] - headroom},
        "counters = sum of events, per customer": counters == by_events,
        "counters = quantities sent and granted, per customer": counters == {k: expected.get(k, 0) for k in counters},
        "light counter exactly at its limit": counters.get("cafe") == light["included"],
        "one event row per transaction id": rows[0] == rows[1],
    }
    return out


# ----------------------------------------------------------------- orchestration
def child(n: int, *args: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, __file__, str(n), *args], stdout=subprocess.PIPE, text=True, check=True,
                         timeout=600 + n / 1000)
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200_000, help="events through the library path (default 200,000)")
    parser.add_argument("--customers", type=int, default=100, help="standard-plan customers for the library path")
    parser.add_argument("--http-events", type=int, default=100_000, help="events through POST /v1/usage_events")
    parser.add_argument("--http-customers", type=int, default=20, help="standard-plan customers made over HTTP")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP batch clients")
    parser.add_argument("--rate", type=float, default=200, help="consume requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of consume load per customer")
    parser.add_argument("--only", choices=("library", "http"), help="run one part")
    parser.add_argument("--profile", action="store_true", help="cProfile the library path (to stderr)")
    parser.add_argument("--library", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n < BATCH or args.http_events < BATCH:
        parser.error(f"N and --http-events must be at least {BATCH:,}")
    if args.library:
        print(json.dumps(run_library(args.n, args.customers, args.library, args.profile)))
        return
    if args.floor:
        print(json.dumps(run_floor(args.n, args.customers, args.floor)))
        return

    checks: dict[str, bool] = {}
    print(f"usage ingest on SQLite ({Path(sys.executable).name} {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start; batches of {BATCH:,})")
    lib: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kakin-usage-bench-") as d:
        folder = Path(d)
        if args.only in (None, "library"):
            extra = ["--profile"] if args.profile else []
            lib = child(args.n, "--customers", str(args.customers), "--library", str(folder), *extra)
            floor = child(args.n, "--customers", str(args.customers), "--floor", str(folder))
            raw, each, core = floor["sqlite3"], floor["sqlite3_per_batch"], floor["core"]
            print(f"1. library path, usage.record_events: N = {args.n:,} events over {args.customers} standard-plan customers, "
                  "one transaction per batch")
            print(f"   {lib['events_per_s']:>9,.0f} events/s ({lib['seconds']:.2f} s; {args.n / lib['cpu_seconds']:,.0f} per CPU-second)"
                  f"   [target ≥ {TARGET_LIB:,}: {mark(lib['events_per_s'] >= TARGET_LIB)}]")
            print(f"   raw insert floor, sqlite3 executemany per 1,000, one transaction: {raw['events_per_s']:>9,.0f} events/s "
                  f"({raw['seconds']:.2f} s); the library path is {raw['events_per_s'] / lib['events_per_s']:.1f}× the floor")
            print(f"   the same, committing every 1,000 (as the library path does):  {each['events_per_s']:>9,.0f} events/s "
                  f"({each['seconds']:.2f} s)")
            print(f"   the same rows through SQLAlchemy Core executemany:             {core['events_per_s']:>9,.0f} events/s "
                  f"({core['seconds']:.2f} s)")
            checks.update({f"library: {k}": v for k, v in lib["checks"].items()})
        if args.only in (None, "http"):
            h = run_http(folder, args.http_events, args.http_customers, args.clients, args.rate, args.seconds)
            b = h["batches"]
            print(f"2. HTTP batches, POST /v1/usage_events: {b['n']:,} events over {args.http_customers} standard-plan customers, "
                  f"{BATCH:,} a request, {b['clients']} concurrent clients")
            vs_lib = f"; the library path above did {lib['events_per_s']:,.0f}" if lib else ""
            print(f"   {b['events_per_s']:>9,.0f} events/s ({b['seconds']:.2f} s, {b['seconds'] / (b['n'] / BATCH) * 1000:.0f} ms "
                  f"a request end to end{vs_lib})   [target ≥ {TARGET_HTTP:,}: {mark(b['events_per_s'] >= TARGET_HTTP)}]")
            print(f"   baseline, the same server: GET /v1/customers?limit=1 takes {h['small_request_ms']:.1f} ms (one client)")
            light = h["light"]
            print(f"3. quota consume over HTTP, open loop at {args.rate:g} requests/s for {args.seconds:g} s each, count 1; "
                  "latency from the scheduled send (service time from the actual send)")
            for label, r in (("standard plan (shop, never refused)", h["standard"]),
                             (f"light plan (cafe, {light['included'] - light['prefill']:,} left of {light['included']:,})", light)):
                codes = ", ".join(f"{n:,}× {s}" for s, n in sorted(r["statuses"].items()))
                print(f"   {label}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms "
                      f"(service p50 {r['service_p50_ms']:.1f}, p99 {r['service_p99_ms']:.1f}); {codes}; "
                      f"{r['achieved_rate']:.0f} requests/s   [p99 ≤ {TARGET_P99_MS:g} ms: {mark(r['p99_ms'] <= TARGET_P99_MS)}]")
            checks.update({f"http: {k}": v for k, v in h["checks"].items()})
    print(f"targets: ≥ {TARGET_LIB:,} events/s library path, ≥ {TARGET_HTTP:,} events/s HTTP batches, "
          f"consume p99 ≤ {TARGET_P99_MS:g} ms at 200 requests/s (load average {os.getloadavg()[0]:.1f} at the end)")
    failed = [k for k, ok in checks.items() if not ok]
    print(f"correctness: {len(checks) - len(failed)} of {len(checks)} checks hold")
    for k, ok in checks.items():
        print(f"   {'ok  ' if ok else 'FAIL'} {k}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
