"""`kakin worker` and `kakin run-due` as processes: one pass for both, a log line per batch, SIGTERM, database outages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select
from test_workers import SIGNUP, UNTIL, renewals_done, seed

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import access, billing
from kakin.services.tenancy import create_tenant

KAKIN = [sys.executable, "-m", "kakin.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines:
    """A process's standard output, read line by line in the background."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for(self, event: str, timeout: float = 30.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for e in self.events() if e["event"] == event) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} in time; output so far: {self.lines[-20:]}")


def worker(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KAKIN_DATABASE_URL": url, "PYTHONUNBUFFERED": "1", "KAKIN_SMTP_PORT": str(free_port())}
    return subprocess.Popen([*KAKIN, "worker", "--log-json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture(params=["sqlite", "postgresql"])
def file_or_pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/kakin.db"
        return
    yield request.getfixturevalue("pg_url")


# ------------------------------------------------------------------ one pass
class Inbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


def test_run_due_does_what_a_worker_pass_does_mail_and_the_idempotency_purge_included(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kakin.db"
    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        for key in ("acme", "beta"):
            account = billing.create_customer(uow, tenant, gateway, key, key, SIGNUP, payment_method="pm_card_visa")
            assert account.id is not None
            access.add_super_admin(uow, tenant.row, account.id, f"boss@{key}.example", "社長", SIGNUP)
            billing.subscribe(uow, tenant, gateway, key, SIGNUP, "gold", seats=10)  # queues a receipt
        uow.idempotency.save(tenant.row.id, "old", "h", 200, "{}", SIGNUP)
    port = free_port()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        result = subprocess.run([*KAKIN, "run-due", "--until", UNTIL], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "KAKIN_DATABASE_URL": url, "KAKIN_SMTP_PORT": str(port)})
    finally:
        smtp.stop()
    assert result.returncode == 0, result.stderr
    # each customer: the notice a week before June 3, then the June 3 renewal
    assert "nipoplus: 4 actions" in result.stdout, result.stdout
    assert inbox.count == 6  # the 2 sign-up receipts, the 2 notices and the 2 receipts of the renewals
    assert "mails sent: 6" in result.stdout and "idempotency records purged: 1" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(select(tables.idempotency_keys)).all() == []
        assert {s for (s,) in conn.execute(select(tables.outbox.c.status))} == {"sent"}
    engine.dispose()


# ------------------------------------------------------------------ SIGTERM
def test_sigterm_finishes_the_batch_in_hand_logs_each_batch_and_exits_0(file_or_pg_url: str) -> None:
    n = 10_000
    seed(file_or_pg_url, n).dispose()
    watch = create_engine(file_or_pg_url)  # a plain engine: sees each commit without queueing for SQLite's write lock
    proc = worker(file_or_pg_url, "--batch-size", "20", "--interval", "60")
    out = Lines(proc)
    try:
        out.wait_for("batch", timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.reader.join(timeout=10)
    batches = [e for e in out.events() if e["event"] == "batch"]
    assert batches and all(e["work"] == "billing" and e["tenant"] == "nipoplus" and e["actions"] == 20 for e in batches)
    done = renewals_done(watch)
    assert done == 20 * len(batches) < n  # every batch begun was finished and logged, and no more were begun
    assert out.events()[-1]["event"] == "stopped"
    watch.dispose()


# ------------------------------------------------------------------ database outages
class Forwarder:
    """A TCP relay on 127.0.0.1:port to the database, which can be cut (every connection closed) and restored."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(50)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close() alone would not
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.sockets = []


def test_a_worker_waits_out_database_outages_with_one_line_each_and_no_traceback(pg_url: str) -> None:
    seed(pg_url, 50).dispose()
    real = make_engine(pg_url)
    host, port = real.url.host or "127.0.0.1", int(real.url.port or 5432)
    relay = Forwarder(free_port(), (host, port))
    through_relay = real.url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    proc = worker(through_relay, "--interval", "0.2")
    out = Lines(proc)
    try:
        out.wait_for("database_unreachable")  # down when the worker starts
        time.sleep(2.5)  # retried with backoff meanwhile: 1 s, then 2 s
        relay.start()
        out.wait_for("database_reachable", timeout=20)
        out.wait_for("batch")  # the due renewals, now
        assert renewals_done(real) == 50
        relay.cut()  # down again while it runs
        out.wait_for("database_unreachable", count=2)
        time.sleep(2.5)
        relay.start()
        out.wait_for("database_reachable", count=2, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        relay.cut()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.reader.join(timeout=10)
    stderr = proc.stderr.read() if proc.stderr else ""
    events = [e["event"] for e in out.events()]
    assert events.count("database_unreachable") == 2 and events.count("database_reachable") == 2  # one line per outage
    assert "Traceback" not in stderr and not [line for line in out.lines if not line.startswith("{")], (stderr, out.lines)
    real.dispose()


def test_the_plain_log_is_one_key_value_line_per_event() -> None:
    import io

    from kakin.worker import Log

    stream = io.StringIO()
    Log(stream, False, lambda: datetime(2026, 5, 1, tzinfo=UTC))("batch", {"work": "billing", "tenant": "nipoplus", "actions": 20})
    assert stream.getvalue() == "2026-05-01T00:00:00.000Z worker batch work=billing tenant=nipoplus actions=20\n"
