"""Portal page-load benchmark: p50/p99 of every customer-portal page under a small load, next to GET /healthz.

Fills a fresh SQLite file through the services (NipoPlus customers on GOLD, LINE OA customers on the standard plan
with messages sent, LINE WORKS customers on lite: a few thousand in all, default 3,000), starts kakin's app under
uvicorn in a subprocess on 127.0.0.1 (a free port; the card simulator), opens one portal session per client and
customer, then has ``--clients`` concurrent clients (default 4, closed loop: each sends its next request when the
last one answered) load each page ``--requests`` times (default 300) in turn. The baseline, GET /healthz (no session,
no database), is loaded the same way in the same run: the floor the HTTP stack, the client and the machine give.

Every portal GET opens a transaction that reads the session and restarts its idle clock (a write), so on SQLite the
page loads of concurrent clients take turns at the database.

    python benchmarks/portal_pages.py                          # 3,000 customers, 4 clients, 300 requests a page
    python benchmarks/portal_pages.py --customers 6000 --requests 500

The server is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

HOST = "127.0.0.1"
# (tenant, customer, page): every page of the portal a customer of that vendor sees, read-only GETs
PAGES = [
    ("nipoplus", "np-00000", "/portal/"),
    ("nipoplus", "np-00000", "/portal/invoices"),
    ("nipoplus", "np-00000", "/portal/members"),
    ("nipoplus", "np-00000", "/portal/payment"),
    ("nipoplus", "np-00000", "/portal/organization"),
    ("nipoplus", "np-00000", "/portal/organization?seats=20"),  # 人数の変更's preview
    ("nipoplus", "np-00000", "/portal/postal/1000001"),  # the address of a postal code (JSON)
    ("line-oa", "oa-00000", "/portal/"),  # with this month's messages as a bar
    ("line-oa", "oa-00000", "/portal/oa/plan"),
    ("line-oa", "oa-00000", "/portal/oa/plan?plan=light"),  # a downgrade's preview
    ("line-oa", "oa-00000", "/portal/oa/account"),
    ("line-oa", "oa-00000", "/portal/oa/account?prefecture=130001&premium_id=@bench"),
    ("lineworks", "lw-00000", "/portal/"),
    ("lineworks", "lw-00000", "/portal/plans"),  # 商品の契約/変更
    ("lineworks", "lw-00000", "/portal/plans?step=3&plan=basic&contract=monthly"),  # STEP 3: the preview
    ("lineworks", "lw-00000", "/portal/payment"),
    ("lineworks", "lw-00000", "/portal/domains"),
    ("lineworks", "lw-00000", "/portal/members"),
]
SERVER = """
import sys, uvicorn
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
uvicorn.run(create_app(make_engine(sys.argv[1]), CardSimulator()), host=sys.argv[2], port=int(sys.argv[3]),
            log_level="warning")
"""


def fill(url: str, customers: int, clients: int, now: datetime) -> dict[tuple[str, str], list[str]]:
    """Create the tenants and ``customers`` customers (half NipoPlus, a quarter each LINE OA and LINE WORKS); return
    one fresh portal link token per client for each customer the pages name."""
    from kakin.adapters.db.migrate import make_engine, migrate
    from kakin.adapters.db.store import UnitOfWork
    from kakin.adapters.payments import CardSimulator
    from kakin.services import access, billing, portal, usage
    from kakin.services.tenancy import create_tenant

    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    shares = {"nipoplus": customers // 2, "line-oa": customers // 4, "lineworks": customers - customers // 2 - customers // 4}
    prefix = {"nipoplus": "np", "line-oa": "oa", "lineworks": "lw"}
    admins: dict[tuple[str, str], str] = {}
    for code, n in shares.items():
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, code, code, code, now)
        for start in range(0, n, 500):
            with UnitOfWork(engine) as uow:
                from kakin.services.tenancy import open_tenant

                tenant = open_tenant(uow, code)
                for i in range(start, min(n, start + 500)):
                    key = f"{prefix[code]}-{i:05d}"
                    account = billing.create_customer(uow, tenant, gateway, key, f"顧客 {i}", now,
                                                      payment_method="pm_card_visa", members=5)
                    assert account.id is not None
                    admins[(code, key)] = access.add_super_admin(uow, tenant.row, account.id, f"a{i}@{code}.example",
                                                                 "管理者", now)
                    if code == "nipoplus":
                        billing.subscribe(uow, tenant, gateway, key, now, "gold", seats=10)
                    elif code == "line-oa":
                        billing.change_plan(uow, tenant, gateway, key, now, "standard")
                        usage.consume(uow, tenant, key, "messages", 1250, now)
                    else:
                        billing.subscribe(uow, tenant, gateway, key, now, "lite", contract="monthly")
        print(f"  {code}: {n:,} customers", file=sys.stderr)
    links: dict[tuple[str, str], list[str]] = {}
    with UnitOfWork(engine) as uow:
        for code, key, _ in PAGES:
            if (code, key) not in links:
                tenant_row = uow.tenant(code)
                assert tenant_row is not None
                links[(code, key)] = [portal.create_link(uow, tenant_row, key, admins[(code, key)], "ja",
                                                         "https://app.example/", now)[0] for _ in range(clients)]
    engine.dispose()
    return links


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def load(base: str, path: str, sessions: list[httpx.Client], requests: int) -> tuple[list[float], int]:
    """``requests`` GETs of ``path`` shared by the clients (one thread each, closed loop); (latencies in s, errors)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    left = [requests]

    def client(http: httpx.Client) -> None:
        nonlocal errors
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            r = http.get(base + path)
            spent = time.perf_counter() - t0
            with lock:
                latencies.append(spent)
                errors += r.status_code != 200
    threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=300, help="requests per page (and for the baseline)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'kakin.db'}"
        print(f"filling {url} with {args.customers:,} customers…", file=sys.stderr)
        t0 = time.perf_counter()
        links = fill(url, args.customers, args.clients, datetime.now(UTC))
        print(f"  filled in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        port = free_port()
        base = f"http://{HOST}:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-c", SERVER, url, HOST, str(port)], env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
            rows = []
            plain = [httpx.Client(timeout=30) for _ in range(args.clients)]
            for c in plain:  # warm-up
                c.get(base + "/healthz")
            lat, err = load(base, "/healthz", plain, args.requests)
            rows.append(("(baseline)", "GET /healthz", lat, err))
            sessions: dict[tuple[str, str], list[httpx.Client]] = {}
            for (code, key), tokens in links.items():
                sessions[(code, key)] = []
                for token in tokens:
                    c = httpx.Client(timeout=30)
                    r = c.get(f"{base}/portal/open/{token}", follow_redirects=False)
                    assert r.status_code == 303, r.text
                    sessions[(code, key)].append(c)
            for code, key, path in PAGES:
                for c in sessions[(code, key)]:  # warm-up: templates compiled, caches filled
                    c.get(base + path)
                lat, err = load(base, path, sessions[(code, key)], args.requests)
                rows.append((code, path, lat, err))
            print(f"\nportal pages: {args.customers:,} customers on SQLite, {args.clients} concurrent clients, "
                  f"{args.requests} requests a page ({platform.python_implementation()} {platform.python_version()}, "
                  f"{os.cpu_count()} CPUs)")
            print(f"{'vendor':<11} {'page':<56} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}")
            for code, path, lat, err in rows:
                print(f"{code:<11} {path:<56} {percentile(lat, 50) * 1000:8.1f} {percentile(lat, 99) * 1000:8.1f} "
                      f"{max(lat) * 1000:8.1f} {err:6d}")
            for group in sessions.values():
                for c in group:
                    c.close()
            return 0 if all(err == 0 for *_, err in rows) else 1
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
