"""``kakin worker``: passes of due work on the real clock, a log line per batch, and staying up through outages.

Each pass is ``services.due_work.run_pass``, the same function ``kakin run-due``
calls once. The worker logs one line per batch (``key=value`` text, or JSON
with ``--log-json``). When the database cannot be reached it logs one line,
retries with a doubling, jittered delay (1 s up to 60 s), and logs one line
when it is back, instead of a traceback per pass. SIGTERM or SIGINT lets the
batch in hand finish, then the worker exits with status 0.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from kakin.adapters.db.migrate import migrate
from kakin.adapters.payments import PaymentGateway
from kakin.services import due_work, mail, webhooks

MAX_BACKOFF_SECONDS = 60.0


class Log:
    """One line per event on ``stream``: ``2026-05-01T00:00:00Z worker batch work=billing …`` or a JSON object."""

    def __init__(self, stream: TextIO, as_json: bool, clock: Callable[[], datetime]) -> None:
        self.stream, self.as_json, self.clock = stream, as_json, clock

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        at = self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.as_json:
            line = json.dumps({"ts": at, "event": event, **fields}, ensure_ascii=False, default=str)
        else:
            line = " ".join([at, "worker", event] + [f"{k}={_text(v)}" for k, v in fields.items()])
        print(line, file=self.stream, flush=True)


def _text(value: Any) -> str:
    s = str(value)
    return json.dumps(s, ensure_ascii=False) if (" " in s or '"' in s or not s) else s


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (refused, closed, restarting), not a bug in kakin."""
    return isinstance(exc, OperationalError | InterfaceError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def work_forever(engine: Engine, gateway: PaymentGateway, mailer: mail.Mailer, post: webhooks.Poster, interval: float,
                 log: Log, stop: threading.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC), *,
                 batch_size: int = 1000, sleep_jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.0)) -> None:
    """Migrate, then run passes every ``interval`` seconds until ``stop`` is set (returns after the batch in hand)."""
    migrated = False
    outage_since: datetime | None = None
    delay = 1.0
    log("started", {"interval": interval, "batch_size": batch_size})
    while not stop.is_set():
        try:
            if not migrated:
                migrate(engine)
                migrated = True
            now = clock()
            done = due_work.run_pass(engine, gateway, mailer, post, now, batch_size=batch_size, stop=stop.is_set,
                                     log=lambda fields: log("batch", fields))
        except Exception as exc:
            if not lost_connection(exc):
                raise
            engine.dispose()  # the pool's connections are dead: start afresh when the database is back
            if outage_since is None:
                outage_since = clock()
                log("database_unreachable", {"error": _first_line(exc), "retrying": "with backoff, up to 60 s apart"})
            stop.wait(delay * sleep_jitter())
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            continue
        if outage_since is not None:
            log("database_reachable", {"after_seconds": round((clock() - outage_since).total_seconds(), 1)})
            outage_since, delay = None, 1.0
        if any(done.values()):
            log("pass", {k.replace(" ", "_"): v for k, v in done.items() if v})
        stop.wait(interval)
    log("stopped", {})


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def main(engine: Engine, gateway: PaymentGateway, interval: float, log_json: bool, batch_size: int) -> None:
    """``kakin worker``: SMTP and HTTP from the environment, the log on standard output."""
    from kakin.adapters.mail import SmtpMailer
    from kakin.adapters.webhooks_http import http_post

    log = Log(sys.stdout, log_json, lambda: datetime.now(UTC))
    work_forever(engine, gateway, SmtpMailer.from_env(), http_post, interval, log, stop_on_signals(), batch_size=batch_size)
