"""Outbox delivery benchmark: N notices and N webhooks sent by 1, 2 and 4 deliverer processes at once.

Each deliverer is a separate process calling ``services.mail.deliver_mail`` /
``services.webhooks.deliver_due`` until nothing is left, as ``kakin worker``
processes do. The peers are an SMTP sink (aiosmtpd) and an HTTP receiver on
127.0.0.1 that count what arrives. Prints, per kind and number of deliverers:
rows marked sent, messages received, distinct ids received (Message-ID,
Kakin-Delivery-Id), extra messages (received − N), and messages per second.
Without a crash the extra messages must be 0 and the distinct ids N.

    python benchmarks/outbox_delivery.py                                    # SQLite, N = 1,000
    python benchmarks/outbox_delivery.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres 2000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import delete, func, insert, select

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import billing, webhooks
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant

NOW = datetime(2026, 5, 3, 1, tzinfo=UTC)
DELIVERER = r"""
import sys
from datetime import datetime
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.webhooks_http import http_post
from kakin.services import mail, webhooks

url, kind, port, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), datetime.fromisoformat(sys.argv[4])
engine = make_engine(url)
with engine.connect():
    pass
print("ready", flush=True)
sys.stdin.readline()
mailer = SmtpMailer("127.0.0.1", port)
while (sum(mail.deliver_mail(engine, now, mailer).values()) if kind == "mail" else webhooks.deliver_due(engine, now, http_post)):
    pass
"""


class Peers:
    """An SMTP sink and an HTTP receiver on loopback, counting the ids that arrive."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.smtp_port = int(s.getsockname()[1])
        self.smtp = Controller(self, hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        peers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                with peers.lock:
                    peers.ids[str(self.headers["Kakin-Delivery-Id"])] += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hooks"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.ids[str(message_from_bytes(envelope.content)["Message-ID"])] += 1
        return "250 OK"

    def stop(self) -> None:
        self.smtp.stop()
        self.http.shutdown()


def seed(url: str, receiver: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    with UnitOfWork(engine) as uow:
        if uow.tenant("bench") is None:
            tenant = create_tenant(uow, "bench", "Bench", "nipoplus", NOW)
            billing.create_customer(uow, tenant, CardSimulator(), "acme", "株式会社アクメ", NOW)
            webhooks.create_endpoint(uow, CommandLine(tenant.row), receiver, ["*"], NOW)
    engine.dispose()


def refill(url: str, kind: str, n: int, round_: int) -> None:
    """An outbox of n due rows of ``kind`` (the rows of earlier rounds are removed)."""
    engine = make_engine(url)
    with UnitOfWork(engine) as uow:
        tenant = uow.tenant("bench")
        assert tenant is not None
        customer = uow.conn.execute(select(tables.customers.c.id)).scalar_one()
        if kind == "mail":
            uow.conn.execute(delete(tables.outbox))
            uow.conn.execute(insert(tables.outbox), [
                {"tenant_id": tenant.id, "customer_id": customer, "kind": "payment.succeeded", "dedupe_key": f"r{round_}n{i}",
                 "to_address": "boss@acme.example", "subject": f"notice {i}", "body": "本文\n", "status": "pending",
                 "attempts": 0, "next_attempt_at": NOW, "created_at": NOW} for i in range(n)])
        else:
            uow.conn.execute(delete(tables.webhook_deliveries))
            uow.conn.execute(delete(tables.webhook_events))
            events = [{"id": f"evt_r{round_}_{i}", "type": "invoice.finalized"} for i in range(n)]
            uow.webhooks.record_events(tenant.id, events, NOW, uow.webhooks.endpoints_of(tenant.id))
    engine.dispose()


def sent_rows(url: str, kind: str) -> int:
    engine = make_engine(url)
    t = tables.outbox if kind == "mail" else tables.webhook_deliveries
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(t).where(t.c.status.in_(("sent", "delivered")))).scalar_one())
    engine.dispose()
    return n


def run(url: str, kind: str, deliverers: int, peers: Peers) -> tuple[int, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", DELIVERER, url, kind, str(peers.smtp_port), NOW.isoformat()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in range(deliverers)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0] * deliverers, codes
    return sent_rows(url, kind), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000, help="notices (and webhooks) per round")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--deliverers", default="1,2,4")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='kakin-outbox-')}/kakin.db"
    peers = Peers()
    try:
        seed(url, peers.url)
        print(f"{make_engine(url).dialect.name}, N = {args.n:,} per round")
        print(f"{'kind':8} {'deliverers':>10} {'marked sent':>12} {'received':>9} {'distinct':>9} {'extra':>6} {'per s':>8}")
        bad = 0
        for round_, (kind, k) in enumerate((kind, int(k)) for kind in ("mail", "webhook") for k in args.deliverers.split(",")):
            refill(url, kind, args.n, round_)
            peers.ids.clear()
            marked, seconds = run(url, kind, k, peers)
            received, distinct = sum(peers.ids.values()), len(peers.ids)
            bad += received != args.n or distinct != args.n
            print(f"{kind:8} {k:>10} {marked:>12,} {received:>9,} {distinct:>9,} {received - args.n:>6,} "
                  f"{received / seconds:>8,.0f}")
    finally:
        peers.stop()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
