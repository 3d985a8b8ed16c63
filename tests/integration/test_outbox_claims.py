"""Outboxes worked by several deliverers at once, through outages and a crash, on SQLite and PostgreSQL.

A few hundred notices (and webhook deliveries) are sent by 4 concurrent
deliverers to an SMTP sink (aiosmtpd) and an HTTP receiver on 127.0.0.1. Each
arrives exactly once; an outage of the peer loses nothing and sends nothing
twice; a deliverer killed between sending and recording causes exactly one
copy, with the same Message-ID (or event and delivery ids) as the first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, insert, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.payments import CardSimulator
from kakin.adapters.webhooks_http import http_post
from kakin.services import billing, mail, webhooks
from kakin.services.delivery import work_outbox
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 5, 3, 10, tzinfo=JST)
MANY = 300
DELIVERERS = 4


# ------------------------------------------------------------------ seeding
def seed_notices(engine: Engine, n: int) -> list[int]:
    """A tenant, one customer and n queued notices; returns their outbox ids."""
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", NOW)
        account = billing.create_customer(uow, tenant, CardSimulator(), "acme", "株式会社アクメ", NOW)
        uow.conn.execute(insert(tables.outbox), [
            {"tenant_id": tenant.row.id, "customer_id": account.id, "kind": "payment.succeeded", "dedupe_key": f"n{i}",
             "to_address": "boss@acme.example", "subject": f"notice {i}", "body": f"本文 {i}\n", "status": "pending",
             "attempts": 0, "next_attempt_at": NOW, "created_at": NOW} for i in range(n)])
        return [i for (i,) in uow.conn.execute(select(tables.outbox.c.id).order_by(tables.outbox.c.id))]


def seed_deliveries(engine: Engine, url: str, n: int) -> list[str]:
    """A tenant with one endpoint and n events queued for it; returns the event ids."""
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", NOW)
        webhooks.create_endpoint(uow, CommandLine(tenant.row), url, ["*"], NOW)
        endpoints = uow.webhooks.endpoints_of(tenant.row.id)
        events = [{"id": f"evt_{i:05d}", "type": "invoice.finalized", "customer": "acme"} for i in range(n)]
        uow.webhooks.record_events(tenant.row.id, events, NOW, endpoints)
    return [e["id"] for e in events]


def tenant_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(tables.tenants.c.id)).scalar_one())


def statuses(engine: Engine, table: Any) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(s for (s,) in conn.execute(select(table.c.status)))


# ------------------------------------------------------------------ peers on loopback
class Sink:
    """An SMTP server that keeps each message's Message-ID; ``refuse`` answers 421 (a server that is down)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.refuse = False
        self.on_message: Callable[[], None] | None = None
        self.lock = threading.Lock()
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            self.port = int(free.getsockname()[1])
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "421 4.3.0 service not available, try again later"
        with self.lock:
            self.ids.append(str(message_from_bytes(envelope.content)["Message-ID"]))
        if self.on_message is not None:
            self.on_message()
        return "250 OK"

    def start(self) -> int:
        self.controller.start()
        return self.port


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    s = Sink()
    port = s.start()
    yield s, port
    s.controller.stop()


class Receiver:
    """An HTTP server that keeps each request's event and delivery ids; ``status`` is its answer."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.status = 200
        self.on_request: Callable[[], None] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.status
                if status == 200:
                    receiver.seen.append((self.headers["Kakin-Event-Id"], str(self.headers.get("Kakin-Delivery-Id"))))
                    if receiver.on_request is not None:
                        receiver.on_request()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


# ------------------------------------------------------------------ deliverers
def side_by_side(n: int, work: Callable[[], int]) -> None:
    """Run ``work`` in n threads started together, each until a call of its does nothing."""
    start = threading.Barrier(n)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            while work():
                pass
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures


def mail_pass(engine: Engine, port: int, now: datetime) -> Callable[[], int]:
    mailer = SmtpMailer("127.0.0.1", port, "billing@nipoplus.example", timeout=5)

    def work() -> int:
        done = mail.deliver_mail(engine, now, mailer, limit=20)
        return done["sent"] + done["failed"]
    return work


def webhook_pass(engine: Engine, now: datetime) -> Callable[[], int]:
    return lambda: webhooks.deliver_due(engine, now, http_post, limit=20)


DELIVER_ONE_PASS = r"""
import sys
from datetime import datetime
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.webhooks_http import http_post
from kakin.services import mail, webhooks

engine, now = make_engine(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
if sys.argv[3] == "mail":
    print(mail.deliver_mail(engine, now, SmtpMailer("127.0.0.1", int(sys.argv[4]), timeout=30)))
else:
    print(webhooks.deliver_due(engine, now, http_post))
"""


def deliverer_process(engine: Engine, kind: str, *args: str) -> subprocess.Popen[str]:
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.Popen([sys.executable, "-c", DELIVER_ONE_PASS, url, NOW.isoformat(), kind, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


# ------------------------------------------------------------------ mail
def test_four_deliverers_send_each_notice_of_one_outbox_exactly_once(engine: Engine, sink: tuple[Sink, int]) -> None:
    server, port = sink
    ids = seed_notices(engine, MANY)
    side_by_side(DELIVERERS, mail_pass(engine, port, NOW))
    assert Counter(server.ids) == Counter(mail.message_id(tenant_of(engine), i) for i in ids)  # 300 messages, each once
    assert statuses(engine, tables.outbox) == {"sent": MANY}


def test_an_smtp_outage_then_recovery_loses_nothing_and_sends_nothing_twice(engine: Engine, sink: tuple[Sink, int]) -> None:
    server, port = sink
    ids = seed_notices(engine, MANY)
    accepted = 0

    def go_down_after_a_hundred() -> None:
        nonlocal accepted
        accepted += 1
        if accepted >= 100:
            server.refuse = True  # the server goes down in the middle of the run
    server.on_message = go_down_after_a_hundred
    side_by_side(DELIVERERS, mail_pass(engine, port, NOW))
    assert 100 <= len(server.ids) < MANY and statuses(engine, tables.outbox)["pending"] == MANY - len(server.ids)
    server.refuse, server.on_message = False, None
    side_by_side(DELIVERERS, mail_pass(engine, port, NOW + timedelta(seconds=59)))  # still backing off: nothing
    assert len(server.ids) < MANY
    side_by_side(DELIVERERS, mail_pass(engine, port, NOW + timedelta(minutes=1)))  # retried after 1 min
    assert sorted(server.ids) == sorted(mail.message_id(tenant_of(engine), i) for i in ids)  # each once, by its own id
    assert statuses(engine, tables.outbox) == {"sent": MANY}


def test_a_deliverer_killed_between_sending_and_recording_causes_one_copy_with_the_same_message_id(
        engine: Engine, sink: tuple[Sink, int]) -> None:
    server, port = sink
    seed_notices(engine, 5)
    proc = deliverer_process(engine, "mail", str(port))
    server.on_message = lambda: os.kill(proc.pid, signal.SIGKILL)  # the message is in; its sender dies before recording
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.communicate()
    server.on_message = None
    assert len(server.ids) == 1
    assert mail.deliver_mail(engine, NOW + timedelta(minutes=1), SmtpMailer("127.0.0.1", port)) == {"sent": 0, "failed": 0}
    assert statuses(engine, tables.outbox) == {"sending": 5}  # the dead deliverer's claim holds until its lease ends
    assert mail.deliver_mail(engine, NOW + timedelta(minutes=5), SmtpMailer("127.0.0.1", port)) == {"sent": 5, "failed": 0}
    copies = Counter(server.ids)
    assert len(server.ids) == 6 and len(copies) == 5  # five notices, one of them twice
    assert [n for n in copies.values() if n > 1] == [2] and copies.most_common(1)[0][0] == server.ids[0]
    assert statuses(engine, tables.outbox) == {"sent": 5}


class Watching:
    """A mailer and poster that note, at each send, how many database connections the engine has handed out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.held: list[int] = []

    def send(self, message: EmailMessage) -> None:
        self.held.append(self.engine.pool.checkedout())

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.held.append(self.engine.pool.checkedout())
        return 200


def test_mail_and_webhooks_are_sent_with_no_database_connection_held(engine: Engine) -> None:
    seed_notices(engine, 3)
    with UnitOfWork(engine) as uow:
        endpoint_tenant = uow.tenant("nipoplus")
        assert endpoint_tenant is not None
        webhooks.create_endpoint(uow, CommandLine(endpoint_tenant), "http://127.0.0.1:9/unused", ["*"], NOW)
        uow.webhooks.record_events(endpoint_tenant.id, [{"id": "evt_1", "type": "invoice.finalized"}],
                                   NOW, uow.webhooks.endpoints_of(endpoint_tenant.id))
    watching = Watching(engine)
    assert mail.deliver_mail(engine, NOW, watching) == {"sent": 3, "failed": 0}
    assert webhooks.deliver_due(engine, NOW, watching) == 1
    assert watching.held == [0, 0, 0, 0]  # no transaction open while a peer is waited for


# ------------------------------------------------------------------ webhooks
def test_four_deliverers_post_each_webhook_exactly_once_with_a_stable_delivery_id(engine: Engine, receiver: Receiver) -> None:
    events = seed_deliveries(engine, receiver.url, MANY)
    side_by_side(DELIVERERS, webhook_pass(engine, NOW))
    assert sorted(e for e, _ in receiver.seen) == events  # each event once
    assert len({d for _, d in receiver.seen}) == MANY and all(d.startswith("whd_") for _, d in receiver.seen)
    assert statuses(engine, tables.webhook_deliveries) == {"delivered": MANY}


def test_a_receiver_outage_then_recovery_loses_no_webhook_and_posts_none_twice(engine: Engine, receiver: Receiver) -> None:
    events = seed_deliveries(engine, receiver.url, MANY)
    taken = 0

    def go_down_after_a_hundred() -> None:
        nonlocal taken
        taken += 1
        if taken >= 100:
            receiver.status = 503
    receiver.on_request = go_down_after_a_hundred
    side_by_side(DELIVERERS, webhook_pass(engine, NOW))
    assert 100 <= len(receiver.seen) < MANY
    receiver.status, receiver.on_request = 200, None
    side_by_side(DELIVERERS, webhook_pass(engine, NOW + timedelta(seconds=30)))  # the first retry is 30 s later
    assert sorted(e for e, _ in receiver.seen) == events
    assert len({d for _, d in receiver.seen}) == MANY  # and each delivery id once
    assert statuses(engine, tables.webhook_deliveries) == {"delivered": MANY}


def test_a_deliverer_killed_between_posting_and_recording_causes_one_copy_with_the_same_ids(
        engine: Engine, receiver: Receiver) -> None:
    seed_deliveries(engine, receiver.url, 5)
    proc = deliverer_process(engine, "webhook")
    receiver.on_request = lambda: os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.communicate()
    receiver.on_request = None
    assert len(receiver.seen) == 1
    assert webhooks.deliver_due(engine, NOW + timedelta(minutes=1), http_post) == 0  # the dead deliverer's claim holds
    assert webhooks.deliver_due(engine, NOW + timedelta(minutes=5), http_post) == 5  # until its lease ends
    copies = Counter(receiver.seen)
    assert len(receiver.seen) == 6 and len(copies) == 5
    assert copies[receiver.seen[0]] == 2  # the same event id and delivery id both times
    assert statuses(engine, tables.webhook_deliveries) == {"delivered": 5}


def test_a_deliverer_that_has_used_half_its_lease_hands_the_rest_back_unsent(engine: Engine) -> None:
    ids = seed_notices(engine, 3)
    ticks = iter([0.0, 0.0, 151.0])  # the claim's start, before the first send, before the second: past 300 s ÷ 2
    sent: list[int] = []

    def attempt(row: dict[str, Any]) -> dict[str, Any]:
        sent.append(row["id"])
        return {"status": "sent", "sent_at": NOW, "next_attempt_at": None}

    outcomes = work_outbox(engine, "mail", NOW, lambda uow, ids: uow.outboxes.claimed_mail(ids), attempt, limit=10, chunk=10,
                           lease=timedelta(minutes=5), max_attempts=20, timer=lambda: next(ticks))
    assert sent == ids[:1] and [o["recorded"] for o in outcomes] == [True]
    with engine.connect() as conn:
        rows = conn.execute(select(tables.outbox.c.status, tables.outbox.c.attempts, tables.outbox.c.claim,
                                   tables.outbox.c.next_attempt_at).order_by(tables.outbox.c.id)).all()
    assert [(r.status, r.attempts, r.claim) for r in rows] == [("sent", 1, None), ("pending", 0, None), ("pending", 0, None)]
    assert rows[1].next_attempt_at == NOW  # due again at once, for this or another worker
