"""Fault harness: kakin's promises checked from outside, with workers killed, PostgreSQL restarted and peers failing.

Starts on 127.0.0.1 what it needs: a throwaway PostgreSQL cluster (as the
test suite does), an SMTP sink (aiosmtpd), a fake Stripe that counts charges
by idempotency key and fails on purpose, ``kakin worker`` processes and
``kakin serve``. Then, for 2 and 4 workers, a fresh database of N NipoPlus
customers due for renewal now (real clock) is billed while a random worker is
``kill -9``-ed and restarted every second or so, PostgreSQL is restarted once,
the SMTP server is down for a while, and the gateway times out or drops its
answer after charging for a share of first attempts (the Stripe SDK retries
with the same idempotency key); meanwhile, through ``kakin serve``, the vendor
records bank transfers for a few invoices whose card charge is in flight (the
card payment must be refunded). Last, through ``kakin serve``: 20 concurrent
seat changes on one customer whose renewal is due, replayed serially on a twin
customer, and one POST sent 10 times at once with one ``Idempotency-Key``.

Prints one table of counts and exits 1 when a count is off.

    python benchmarks/faults.py              # N = 3,000 per run, workers 2 and 4
    python benchmarks/faults.py --n 300      # the CI size (tests/integration/test_faults_harness.py)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, insert, select, text

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import access, billing
from kakin.services.mail import message_id
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
Row = tuple[str, str, int, str, bool]
SETTLE = 10.0  # seconds of chaos after the last renewal, while notices go out
KILL_AFTER = 6.0  # seconds a worker runs at least before it may be killed (it starts and migrates in 2-4 s)  # a Row: section, check, count, expected, ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ PostgreSQL
class Postgres:
    """A throwaway cluster on 127.0.0.1 (as the ``postgres`` user when run as root), restartable."""

    def __init__(self) -> None:
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            sys.exit("PostgreSQL is not installed: run ./scripts/system-deps.sh")
        self.bindir = os.path.dirname(initdb[-1])
        self.base = tempfile.mkdtemp(prefix="kakin-faults-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.port = free_port()
        self._as_postgres(f"{self.bindir}/initdb -D {self.base}/data -U postgres -A trust -E UTF8 --locale=C.UTF-8")
        self.options = (f"-o '-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                        f"-c max_connections=100'")
        self._as_postgres(f"{self.bindir}/pg_ctl -D {self.base}/data -l {self.base}/log -w start {self.options}")
        self.server = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, cmd: str) -> None:
        argv = ["su", "postgres", "-c", cmd] if os.geteuid() == 0 else ["bash", "-c", cmd]
        subprocess.run(argv, check=True, capture_output=True)

    def database(self, name: str) -> str:
        admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.server.rsplit("/", 1)[0] + f"/{name}"

    def restart(self) -> None:
        """Stop at once (connections cut, no checkpoint), then start again."""
        self._as_postgres(f"{self.bindir}/pg_ctl -D {self.base}/data -m immediate -w stop")
        self._as_postgres(f"{self.bindir}/pg_ctl -D {self.base}/data -l {self.base}/log -w start {self.options}")

    def stop(self) -> None:
        self._as_postgres(f"{self.bindir}/pg_ctl -D {self.base}/data -m immediate -w stop")
        shutil.rmtree(self.base, ignore_errors=True)


# ------------------------------------------------------------------ peers
class SmtpSink:
    """Counts Message-IDs received; ``down()`` / ``up()`` stop and restart it on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.controller: Controller | None = None
        self.up()

    def up(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.ids[str(message_from_bytes(envelope.content)["Message-ID"])] += 1
        return "250 OK"


class FakeStripe:
    """PaymentIntents by idempotency key, like Stripe: a repeated key replays the first answer and charges nothing.

    For a share of first attempts it charges and then loses the answer (closes the connection) or answers only
    after the client's timeout; the SDK retries with the same key and gets the first answer back.
    """

    def __init__(self, lose: float, slow: float, slow_seconds: float, meanwhile: float = 0.0,
                 on_meanwhile: Callable[[str], None] | None = None) -> None:
        self.on_meanwhile = on_meanwhile  # called with the key before answering, for a share ``meanwhile`` of charges
        self.charges: dict[str, dict[str, Any]] = {}  # idempotency key → the PaymentIntent made for it
        self.refunds: dict[str, dict[str, Any]] = {}  # idempotency key → the Refund made for it
        self.faults: Counter[str] = Counter()
        self.lock = threading.Lock()
        stripe = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                if not self.path.startswith(("/v1/payment_intents", "/v1/refunds")):
                    return self.answer(404, {"error": {"type": "invalid_request_error", "message": "not faked"}})
                key = self.headers.get("Idempotency-Key", "")
                if self.path.startswith("/v1/refunds"):
                    with stripe.lock:
                        refund = stripe.refunds.setdefault(key, {
                            "id": f"re_fake_{len(stripe.refunds) + 1:07d}", "object": "refund", "status": "succeeded",
                            "amount": int(form["amount"]), "currency": "jpy", "payment_intent": form["payment_intent"]})
                    return self.answer(200, refund)
                with stripe.lock:
                    first = key not in stripe.charges
                    if first:
                        stripe.charges[key] = {"id": f"pi_fake_{len(stripe.charges) + 1:07d}", "object": "payment_intent",
                                               "amount": int(form["amount"]), "currency": "jpy", "status": "succeeded",
                                               "customer": form.get("customer"), "payment_method": form.get("payment_method"),
                                               "client_secret": None, "metadata": {"kakin_charge": key}}
                    pi = stripe.charges[key]
                    fault = random.random() if first else 1.0
                if fault < lose:
                    stripe.faults["answer lost after charging"] += 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault < lose + slow:
                    stripe.faults["timed out after charging"] += 1
                    time.sleep(slow_seconds)
                elif fault < lose + slow + meanwhile and stripe.on_meanwhile is not None:
                    stripe.faults["invoice paid by transfer while charging"] += 1
                    stripe.on_meanwhile(key)
                return self.answer(200, pi)

            def do_GET(self) -> None:  # noqa: N802
                ref = self.path.rsplit("/", 1)[-1]
                with stripe.lock:
                    found = [pi for pi in stripe.charges.values() if pi["id"] == ref]
                self.answer(200, found[0]) if found else self.answer(404, {"error": {"type": "invalid_request_error"}})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Request-Id", "req_fake")
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): the charge stands, as at Stripe
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:  # a killed worker's connection: expected
                pass

        self.http = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


# ------------------------------------------------------------------ seeding
def month_ago(now: datetime) -> datetime:
    """A sign-up time whose first renewal (same day next month, 00:00 JST) is already due on the real clock."""
    today = now.astimezone(JST).date()
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return datetime.combine(date(y, m, min(today.day, 28)), datetime.min.time(), JST) + timedelta(minutes=30)


def seed_renewals(url: str, n: int, signup: datetime) -> str:
    """A NipoPlus tenant with n GOLD customers (10 seats, a super admin each), one made by the services, the rest clones;
    returns an owner API key of the tenant."""
    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", signup)
        key = access.create_api_key(uow, tenant.row, "owner", "faults", signup)
        account = billing.create_customer(uow, tenant, gateway, "c000000", "顧客0", signup, payment_method="pm_card_visa")
        assert account.id is not None
        access.add_super_admin(uow, tenant.row, account.id, "admin@c000000.example", "管理者", signup)
        billing.subscribe(uow, tenant, gateway, "c000000", signup, "gold", seats=10)
    c, s, p, mem = tables.customers, tables.subscriptions, tables.subscription_phases, tables.members
    with engine.begin() as conn:
        first = conn.execute(select(c).where(c.c.key == "c000000")).mappings().one()
        subs = conn.execute(select(s).where(s.c.customer_id == first["id"]).order_by(s.c.id)).mappings().all()
        admin = conn.execute(select(mem).where(mem.c.customer_id == first["id"])).mappings().one()
        for start in range(1, n, 5000):
            keys = [f"c{i:06d}" for i in range(start, min(n, start + 5000))]
            row = {k: v for k, v in first.items() if k not in ("id", "key", "name", "gateway_customer")}
            conn.execute(insert(c), [{**row, "key": k, "name": f"顧客{k[1:]}", "gateway_customer": f"cus_{k}"} for k in keys])
            ids = dict(conn.execute(select(c.c.key, c.c.id).where(c.c.key.in_(keys))).all())
            conn.execute(insert(mem), [{**{k: v for k, v in admin.items() if k not in ("id", "customer_id", "public_id", "email")},
                                        "customer_id": ids[k], "public_id": f"mem_{k}", "email": f"admin@{k}.example"}
                                       for k in keys])
            for sub in subs:
                conn.execute(insert(s), [{**{k: v for k, v in sub.items() if k not in ("id", "customer_id")}, "customer_id": i}
                                         for i in ids.values()])
                clones = [i for (i,) in conn.execute(select(s.c.id).where(s.c.customer_id.in_(list(ids.values())),
                                                                           s.c.plan == sub["plan"]))]
                phases = conn.execute(select(p).where(p.c.subscription_id == sub["id"])).mappings().all()
                conn.execute(insert(p), [{**{k: v for k, v in ph.items() if k not in ("id", "subscription_id")},
                                          "subscription_id": si} for si in clones for ph in phases])
        conn.execute(c.update().where(c.c.key == "c000000").values(gateway_customer="cus_c000000"))
    engine.dispose()
    return key


def transfer_recorder(url: str, since: date, done: set[str]) -> Callable[[Api, str], None]:
    """What the vendor does while a card is being charged (the fake Stripe holds its answer): it records a bank
    transfer for the same renewal invoice (``POST /v1/invoices/{number}/mark_paid``). The card payment must then be
    refunded by a later worker pass: the customer never pays twice. ``done`` collects the invoices marked paid."""
    inv = tables.invoices

    def record(api: Api, key: str) -> None:
        customer_id = int(key.split(":")[1][1:])  # nipoplus:c<customer id>:plan:<period>:<attempt>
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                number = conn.execute(select(inv.c.number).where(
                    inv.c.customer_id == customer_id, inv.c.issued_on >= since, inv.c.status == "open")).scalar()
            if number is not None and api.call("POST", f"/v1/invoices/{number}/mark_paid",
                                               {"reference": f"振込 {number}"})[0] == 200:
                done.add(number)
        except Exception:  # PostgreSQL restarting, the server busy: this charge goes on as a plain one
            pass
        finally:
            engine.dispose()

    return record


# ------------------------------------------------------------------ the billing run
def worker_env(url: str, smtp: SmtpSink, stripe: FakeStripe) -> dict[str, str]:
    return {**os.environ, "KAKIN_DATABASE_URL": url, "KAKIN_SMTP_HOST": "127.0.0.1", "KAKIN_SMTP_PORT": str(smtp.port),
            "KAKIN_STRIPE_API_KEY": "sk_test_faults", "KAKIN_STRIPE_API_BASE": stripe.url, "KAKIN_STRIPE_TIMEOUT": "1",
            "PYTHONUNBUFFERED": "1"}


class Worker:
    """One ``kakin worker`` process at a time in one slot, each with its own log file."""

    def __init__(self, env: dict[str, str], folder: str, name: str) -> None:
        self.env, self.folder, self.name, self.generation = env, folder, name, 0
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.generation += 1
        self.log = f"{self.folder}/{self.name}-{self.generation}.log"
        with open(self.log, "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "kakin.cli", "worker", "--interval", "0.5"],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def working(self) -> bool:
        """Whether this process has done at least one batch (on a loaded machine starting takes seconds)."""
        with open(self.log, "rb") as f:
            return b" batch " in f.read()

    def restart(self) -> None:
        self.proc.wait()
        self.proc = self._spawn()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


BILLED = "nipoplus"  # the tenant billed; ``kakin serve`` adds the other reference tenants to the same database


def billed_tenant(conn: Any) -> int:
    return int(conn.execute(select(tables.tenants.c.id).where(tables.tenants.c.code == BILLED)).scalar_one())


def progress(url: str, since: date) -> tuple[int, int]:
    """(renewal invoices issued, notices not yet sent)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            renewed = conn.execute(select(func.count()).select_from(tables.invoices).where(
                tables.invoices.c.tenant_id == billed_tenant(conn), tables.invoices.c.issued_on >= since)).scalar_one()
            unsent = conn.execute(select(func.count()).select_from(tables.outbox).where(
                tables.outbox.c.status != "sent")).scalar_one()
        return int(renewed), int(unsent)
    except Exception:  # PostgreSQL restarting
        return -1, -1
    finally:
        engine.dispose()


def billing_run(pg: Postgres, workers: int, n: int, timeout: float, folder: str) -> list[Row]:
    now = datetime.now(UTC)
    signup = month_ago(now)
    renewal_day = signup.date().replace(month=signup.month % 12 + 1, year=signup.year + (signup.month == 12))
    url = pg.database(f"faults_w{workers}")
    key = seed_renewals(url, n, signup)
    smtp = SmtpSink()
    transfers: set[str] = set()
    record_transfer = transfer_recorder(url, renewal_day, transfers)
    api: Api | None = None
    stripe = FakeStripe(lose=0.02, slow=0.02, slow_seconds=1.5, meanwhile=0.01,
                        on_meanwhile=lambda charge: record_transfer(api, charge) if api is not None else None)
    env = worker_env(url, smtp, stripe)
    with serving(url, folder) as base:  # up before the workers start: the chaos begins with them
        api = Api(base, key)
        procs = [Worker(env, folder, f"w{workers}-{i}") for i in range(workers)]
        started = time.monotonic()
        kills, exits, restarted, smtp_outage = chaos(pg, url, n, renewal_day, procs, started, timeout, smtp)
        # Notices a killed worker had claimed wait for their lease (5 min); those the SMTP outage failed, for their
        # retry; charges left in flight wait for their grace period (5 min), and a refund is made on the pass after
        # the one that finds its invoice paid otherwise. Passes on a clock 30 minutes on (`kakin run-due --until`)
        # do all of it, as a worker would by then; bank transfers are recorded during all but the last.
        leftover = progress(url, renewal_day)[1]
        later = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
        for last in (False, False, True):
            if last:
                api = None
            subprocess.run([sys.executable, "-m", "kakin.cli", "run-due", "--until", later], env=env,
                           capture_output=True, timeout=300)
    smtp.down()
    stripe.http.shutdown()
    seconds = time.monotonic() - started
    rows = check_billing(url, n, renewal_day, smtp, stripe, crashes=kills + exits + restarted, transfers=transfers)
    after = next(i for i, row in enumerate(rows) if row[1].startswith("notices queued")) + 1
    rows.insert(after, ("", "notices left to a later pass (claimed by a killed worker, or failed)", leftover, "any", True))
    section = (f"{workers} workers, N={n:,} ({seconds:.0f} s, {kills} kill -9, {exits} exits, "
               f"PG restart {'yes' if restarted else 'no'}, SMTP down 3 s {'yes' if smtp_outage else 'no'}, "
               f"gateway {dict(stripe.faults)})")
    return [(section, *r[1:]) for r in rows]  # type: ignore[misc]


def chaos(pg: Postgres, url: str, n: int, renewal_day: date, procs: list[Worker], started: float, timeout: float,
          smtp: SmtpSink) -> tuple[int, int, bool, bool]:
    """Until every customer is renewed and its notices are out: kill -9 a worker at work every second or so (and
    restart it), restart PostgreSQL once, take the SMTP server down for 3 s. Returns (kills, exits, PostgreSQL
    restarted, SMTP outage done)."""
    kills = exits = 0
    restarted = smtp_outage = False
    renewed, unsent = 0, 1
    billed_at = 0.0
    try:
        while time.monotonic() - started < timeout:
            time.sleep(random.uniform(0.2, 1.5))
            renewed, unsent = progress(url, renewal_day)
            # on a machine fast enough to bill everything before the first look, the restart and the outage still
            # happen (below) before the loop ends: every run has them
            if renewed == n and restarted and smtp_outage and (
                    unsent == 0 or billed_at and time.monotonic() - billed_at > SETTLE):
                break
            if renewed == n and not billed_at:
                billed_at = time.monotonic()
            for w in procs:
                if w.proc.poll() is not None:  # it stopped by itself: counted, and restarted
                    exits += 1
                    w.restart()
            working = [w for w in procs if w.working()]
            if working:  # kill -9 one that is at work, at a random moment of it
                victim = random.choice(working)
                victim.proc.send_signal(signal.SIGKILL)
                kills += 1
                victim.restart()
            if not restarted and renewed >= n // 3:
                pg.restart()
                restarted = True
            if not smtp_outage and renewed >= n // 2:
                smtp.down()
                time.sleep(3)
                smtp.up()
                smtp_outage = True
    finally:
        for w in procs:
            w.stop()
    return kills, exits, restarted, smtp_outage


def check_billing(url: str, n: int, renewal_day: date, smtp: SmtpSink, stripe: FakeStripe, crashes: int,
                  transfers: set[str]) -> list[Row]:
    inv, pa, c, ob = tables.invoices, tables.payment_attempts, tables.customers, tables.outbox
    engine = create_engine(url)
    with engine.connect() as conn:
        tid = billed_tenant(conn)
        ours = set(conn.execute(select(c.c.gateway_customer).where(c.c.tenant_id == tid)).scalars())
        per_period = conn.execute(select(inv.c.customer_id, inv.c.billing_key, func.count()).where(
            inv.c.tenant_id == tid).group_by(inv.c.customer_id, inv.c.billing_key)).all()
        renewed = conn.execute(select(func.count(func.distinct(inv.c.customer_id))).where(
            inv.c.tenant_id == tid, inv.c.issued_on >= renewal_day)).scalar_one()
        seqs = [s for (s,) in conn.execute(select(inv.c.seq).where(inv.c.tenant_id == tid).order_by(inv.c.seq))]
        transferred = dict(conn.execute(select(inv.c.number, c.c.gateway_customer).select_from(
            inv.join(c, c.c.id == inv.c.customer_id)).where(inv.c.number.in_(sorted(transfers)))).all())
        paid = conn.execute(select(c.c.gateway_customer, pa.c.idempotency_key).select_from(
            pa.join(inv, inv.c.id == pa.c.invoice_id).join(c, c.c.id == inv.c.customer_id)).where(
            pa.c.outcome == "succeeded", inv.c.tenant_id == tid, inv.c.issued_on >= renewal_day)).all()
        unpaid = conn.execute(select(func.count()).select_from(inv).where(
            inv.c.tenant_id == tid, inv.c.issued_on >= renewal_day, inv.c.status != "paid")).scalar_one()
        outbox = conn.execute(select(ob.c.tenant_id, ob.c.id, ob.c.status)).all()
        pi = tables.payment_intents
        in_flight = conn.execute(select(func.count()).select_from(pi).where(pi.c.status.in_(("pending", "unknown")))
                                 ).scalar_one()  # every tenant's
    engine.dispose()
    made = {key: pi for key, pi in stripe.charges.items() if pi["customer"] in ours}  # the billed tenant's charges
    refunds = Counter(r["payment_intent"] for r in stripe.refunds.values())  # PaymentIntent id → refunds made
    charged = Counter(pi["customer"] for pi in made.values())  # gateway customer → charges
    kept = Counter(pi["customer"] for pi in made.values() if not refunds[pi["id"]])  # charges not refunded
    by_card = {cust for cust, key in paid if key in made}
    by_transfer = set(transferred.values())
    recorded = {key for _, key in paid}
    refunded_keys = {key for key, pi in made.items() if refunds[pi["id"]]}
    wrong_customer = sum(1 for cust, key in paid if key in stripe.charges and stripe.charges[key]["customer"] != cust)
    ids = {message_id(t, i): status for t, i, status in outbox}  # every tenant's: all are delivered
    billed = [i for t, i, _ in outbox if t == tid]
    received = smtp.ids
    twice = sum(k - 1 for mid, k in received.items() if mid in ids and k > 1)
    return [
        ("", "customers renewed (expected N)", renewed, str(n), renewed == n),
        ("", "invoices more than once per customer and period", sum(1 for *_, k in per_period if k > 1), "0",
         all(k == 1 for *_, k in per_period)),
        ("", "invoice number gaps or repeats", sum(1 for i, s in enumerate(seqs, 1) if s != i), "0",
         seqs == list(range(1, len(seqs) + 1))),
        ("", "renewal invoices not paid", unpaid, "0", unpaid == 0),
        ("", "customers charged ≠ once at the gateway (paid by card)", sum(1 for cust in by_card if charged[cust] != 1)
         + sum(1 for cust in kept if cust not in by_card), "0",
         all(charged[cust] == 1 for cust in by_card) and set(kept) <= by_card),
        ("", "gateway charges neither recorded as paid nor refunded",
         sum(1 for key in made if key not in recorded and key not in refunded_keys), "0",
         all(key in recorded or key in refunded_keys for key in made)),
        ("", "invoices paid by transfer while their card charge was in flight", len(transfers), "any", True),
        ("", "  their customers' card charges not refunded exactly once",
         sum(1 for cust in by_transfer if charged[cust] != 1 or kept[cust] != 0), "0",
         all(charged[cust] == 1 and kept[cust] == 0 for cust in by_transfer)),
        ("", "card charges refunded more than once, or refunded though they paid", sum(k - 1 for k in refunds.values())
         + sum(1 for key in refunded_keys if key in recorded), "0",
         all(k == 1 for k in refunds.values()) and not refunded_keys & recorded),
        ("", "payments recorded on another customer", wrong_customer, "0", wrong_customer == 0),
        ("", "charges left in flight (payment intents pending or unknown)", in_flight, "0", in_flight == 0),
        ("", "notices queued (a notice and a receipt each, and the sign-up's receipt)", len(billed), "2N+1",
         len(billed) == 2 * n + 1),
        ("", "notices not delivered", sum(1 for mid in ids if mid not in received), "0",
         all(mid in received for mid in ids)),
        ("", "notices received twice (allowed: ≤ crashes)", twice, f"≤ {crashes}", twice <= crashes),
        ("", "messages with an unknown Message-ID", sum(k for mid, k in received.items() if mid not in ids), "0",
         all(mid in ids for mid in received)),
    ]


# ------------------------------------------------------------------ the HTTP API
class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()

    def call(self, method: str, path: str, body: Any = None, member: str | None = None,
             idem: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        if member:
            headers["Kakin-Acting-Member"] = member
        if idem:
            headers["Idempotency-Key"] = idem
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, payload = r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, payload = e.code, json.loads(e.read() or b"null")
        with self.lock:
            self.statuses[status] += 1
        return status, payload


def at_once(calls: list[Any]) -> list[Any]:
    """Run the calls in threads released together."""
    gate = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        gate.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@contextmanager
def serving(url: str, folder: str) -> Iterator[str]:
    port = free_port()
    log = open(f"{folder}/serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "kakin.cli", "serve", "--port", str(port)],
                            env={**os.environ, "KAKIN_DATABASE_URL": url}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kakin serve did not answer /healthz in 180 s: see {folder}/serve.log") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def http_checks(pg: Postgres, folder: str) -> list[Row]:
    url = pg.database("faults_http")
    engine = make_engine(url)
    migrate(engine)
    signup = month_ago(datetime.now(UTC))  # both customers' renewals are due: the first command catches them up
    gateway = CardSimulator()
    admins = {}
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "faults", "Faults", "nipoplus", signup)
        key = access.create_api_key(uow, tenant.row, "owner", "faults", signup)
        for cid in ("racing", "serial"):
            account = billing.create_customer(uow, tenant, gateway, cid, cid, signup, payment_method="pm_card_visa")
            assert account.id is not None
            admins[cid] = access.add_super_admin(uow, tenant.row, account.id, f"admin@{cid}.example", "管理者", signup)
            billing.subscribe(uow, tenant, gateway, cid, signup, "gold", seats=10)
    rows: list[Row] = []
    with serving(url, folder) as base:
        api = Api(base, key)
        wanted = random.sample(range(5, 41), 20)
        path = "/v1/customers/{}/subscription/seats"
        results = at_once([lambda s=s: api.call("POST", path.format("racing"), {"seats": s}, admins["racing"])
                           for s in wanted])
        applied = [s for s, (status, _) in zip(wanted, results, strict=True) if status == 200]
        order = seat_order(engine, "racing", applied)
        for s in order:
            api.call("POST", path.format("serial"), {"seats": s}, admins["serial"])
        racing, serial = money_of(engine, "racing"), money_of(engine, "serial")
        differ = sum(1 for k in racing if racing[k] != serial[k])
        rows.append(("HTTP: 20 concurrent seat changes", f"quantities ≠ a serial replay ({racing} vs {serial})",
                     differ, "0", differ == 0))
        refused = sum(1 for status, _ in results if status not in (200, 500))
        rows.append(("HTTP: 20 concurrent seat changes", "refused (409 conflict etc.: the client retries)", refused, "any",
                     True))
        fives = sum(1 for status, _ in results if status >= 500)
        rows.append(("HTTP: 20 concurrent seat changes", "HTTP 500", fives, "0", fives == 0))
        body = {"name": "冪等株式会社", "payment_method": "pm_card_visa",
                "super_admin": {"email": "admin@idem.example", "name": "管理者"}}
        answers = at_once([lambda: api.call("POST", "/v1/customers", body, idem="faults-idem-1") for _ in range(10)])
        with engine.connect() as conn:
            made = conn.execute(select(func.count()).select_from(tables.customers).where(
                tables.customers.c.name == "冪等株式会社")).scalar_one()
        rows.append(("HTTP: one POST ×10, one Idempotency-Key", "customers created", int(made), "1", made == 1))
        ids = {payload.get("id") for status, payload in answers if status == 201}
        rows.append(("HTTP: one POST ×10, one Idempotency-Key", "distinct customers answered", len(ids), "1",
                     len(ids) == 1))
        other = sum(k for status, k in api.statuses.items() if status >= 500)
        rows.append(("HTTP: all requests", f"HTTP 500 ({sum(api.statuses.values())} requests)", other, "0",
                     other == 0))
    engine.dispose()
    return rows


def seat_order(engine: Any, key: str, applied: list[int]) -> list[int]:
    """The seat changes as they were committed: the customer's audit records, oldest first."""
    a, c = tables.audit_log, tables.customers
    with engine.connect() as conn:
        records = conn.execute(select(a.c.action, a.c.after).select_from(a.join(c, c.c.id == a.c.customer_id)).where(
            c.c.key == key).order_by(a.c.id)).all()
    order = []
    for action, after in records:
        data = json.loads(after) if isinstance(after, str) else (after or {})
        seats = data.get("seats") if isinstance(data, dict) else None
        if "seat" in action and seats in applied:
            order.append(int(seats))
    return order or applied


def money_of(engine: Any, key: str) -> dict[str, int]:
    inv, cn, c, s = tables.invoices, tables.credit_notes, tables.customers, tables.subscriptions
    with engine.connect() as conn:
        cid = conn.execute(select(c.c.id).where(c.c.key == key)).scalar_one()
        invoiced = conn.execute(select(func.count(), func.coalesce(func.sum(inv.c.total), 0)).where(
            inv.c.customer_id == cid)).one()
        credited = conn.execute(select(func.coalesce(func.sum(cn.c.total), 0)).where(cn.c.customer_id == cid)).scalar_one()
        seats = conn.execute(select(s.c.seats).where(s.c.customer_id == cid, s.c.plan == "gold")).scalar_one()
    return {"seats": int(seats), "invoices": int(invoiced[0]), "invoiced": int(invoiced[1]), "credited": int(credited)}


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="customers renewed per billing run (default 3,000)")
    parser.add_argument("--workers", default="2,4", help="worker counts, one billing run each")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a billing run may take")
    parser.add_argument("--seed", type=int, default=None, help="random seed (kill moments, gateway faults)")
    args = parser.parse_args()
    random.seed(args.seed)
    folder = tempfile.mkdtemp(prefix="kakin-faults-")
    pg = Postgres()
    rows: list[Row] = []
    try:
        for k in (int(w) for w in args.workers.split(",")):
            rows += billing_run(pg, k, args.n, args.timeout, folder)
        rows += http_checks(pg, folder)
    finally:
        pg.stop()
    bad = 0
    section = None
    print(f"{'check':58} {'count':>7} {'expected':>10}  result")
    for sec, check, count, expected, ok in rows:
        if sec and sec != section:
            print(sec)
            section = sec
        bad += not ok
        mark = "ok" if ok else "FAIL"
        print(f"  {check:56} {count:>7,} {expected:>10}  {mark}")
    print(f"logs in {folder}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
