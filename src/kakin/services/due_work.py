"""One pass of due work: what ``kakin worker`` does on each tick and ``kakin run-due`` does once.

In order: billing for every tenant (renewals, trial ends, month closes,
month-start plan changes, payment retries), one batch at a time, the tenants
taking turns (round-robin: one batch of each tenant with due work, then the
next round), so a tenant with a million due accounts delays one with ten by
at most one batch per tenant (issue 10, item 4); charges left in flight
(:func:`~kakin.services.payments.settle_intents`, issue 10 item 3); plan changes the worker
completes (LINE WORKS lite → paid, ``services/upgrades.py``); the DNS look-ups
of pending domains (``services/domains.py``); webhook
deliveries; e-mail; saving the dashboard's monthly sums (``analytics.save_sums``); forgetting idempotency records older than
:data:`IDEMPOTENCY_RETENTION` (README, "Idempotency"). Between batches the
pass asks ``stop()`` and returns early when it says so, so a worker told to
stop finishes the batch in hand and nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db import Engine
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.gateway_config import intent_grace_from_env
from kakin.adapters.payments import PaymentGateway

from . import analytics, domains, due_run, mail, payments, upgrades, webhooks

IDEMPOTENCY_RETENTION = timedelta(hours=24)  # a retried request replays its first response for this long
OUTBOX_BATCH = 100  # mails or webhook attempts per batch
Log = Callable[[dict[str, Any]], None]


def _never() -> bool:
    return False


def _quiet(_: dict[str, Any]) -> None:
    return None


def run_pass(engine: Engine, gateway: PaymentGateway, mailer: mail.Mailer, post: webhooks.Poster, now: datetime, *,
             tenant: str = "", batch_size: int = 1000, stop: Callable[[], bool] = _never, log: Log = _quiet,
             timer: Callable[[], float] = time.monotonic, dns: domains.Resolver | None = None,
             intent_grace: timedelta | None = None) -> dict[str, int]:
    """Do everything due by ``now``; returns counts: actions per tenant code, ``charges settled`` (intents left in
    flight ``intent_grace`` before ``now``, settled at the gateway), ``plan changes completed``, ``domain checks``,
    ``webhook deliveries`` (attempts), ``mails sent``, ``dashboard sums saved`` (series), ``idempotency records purged``. ``dns`` answers the domains'
    TXT look-ups (None: ``KAKIN_DNS_NAMESERVER`` or the system's resolver).

    ``intent_grace``: by default ``KAKIN_INTENT_GRACE`` (seconds) or :data:`~kakin.services.payments.INTENT_GRACE`.
    ``tenant`` limits the billing to one tenant's code (the outboxes and the
    purge are shared by all tenants). ``log`` receives one dict per batch
    (``work``, what was done, ``seconds``); ``stop`` is asked before each batch.
    """
    with UnitOfWork(engine, readonly=True) as uow:
        codes = [t.code for t in uow.tenants() if not tenant or t.code == tenant]
    done: dict[str, int] = dict.fromkeys(codes, 0)
    waiting = list(codes)  # tenants that may still have due accounts, served in turn
    while waiting and not stop():
        code = waiting.pop(0)
        started = timer()
        n = due_run.run_due(lambda: UnitOfWork(engine), code, gateway, now, batch_size=batch_size, max_batches=1)
        if n == 0:  # nothing due, or all of it claimed by other workers (SKIP LOCKED): out of this pass
            continue
        done[code] += n
        waiting.append(code)
        log({"work": "billing", "tenant": code, "actions": n, "seconds": round(timer() - started, 3)})
    done["charges settled"] = 0
    grace = intent_grace if intent_grace is not None else intent_grace_from_env()
    if grace is None:
        grace = payments.INTENT_GRACE
    while not stop():  # batches of payments.INTENT_BATCH until none is left in flight
        started = timer()
        settled = payments.settle_intents(engine, gateway, now, grace=grace)
        if any(settled.values()):
            done["charges settled"] += settled["settled"] + settled["refunded"]
            log({"work": "charges", **settled, "seconds": round(timer() - started, 3)})
        if sum(settled.values()) < payments.INTENT_BATCH:
            break
    done["plan changes completed"] = done["domain checks"] = 0
    if not stop():
        done["plan changes completed"] = upgrades.run_due(engine, gateway, now)
        if done["plan changes completed"]:
            log({"work": "plan changes", "completed": done["plan changes completed"]})
    if not stop():
        done["domain checks"] = domains.recheck_pending(engine, dns, now)
        if done["domain checks"]:
            log({"work": "domain checks", "looked_up": done["domain checks"]})
    done["webhook deliveries"] = done["mails sent"] = 0
    while not stop():  # batches of OUTBOX_BATCH until what is due is done
        started = timer()
        n = webhooks.deliver_due(engine, now, post, limit=OUTBOX_BATCH)
        if n:
            done["webhook deliveries"] += n
            log({"work": "webhooks", "attempts": n, "seconds": round(timer() - started, 3)})
        if n < OUTBOX_BATCH:
            break
    while not stop():
        started = timer()
        sent = mail.deliver_mail(engine, now, mailer, limit=OUTBOX_BATCH)
        if sent["sent"] or sent["failed"]:
            done["mails sent"] += sent["sent"]
            log({"work": "mail", **sent, "seconds": round(timer() - started, 3)})
        if sent["sent"] + sent["failed"] < OUTBOX_BATCH:
            break
    if stop():
        return done
    with UnitOfWork(engine, readonly=True) as uow:
        tenant_ids = [t.id for t in uow.tenants() if not tenant or t.code == tenant]
    done["dashboard sums saved"] = analytics.save_sums(lambda readonly: UnitOfWork(engine, readonly=readonly),
                                                      tenant_ids)
    with UnitOfWork(engine) as uow:
        done["idempotency records purged"] = uow.idempotency.purge(now - IDEMPOTENCY_RETENTION)
    if done["idempotency records purged"]:
        log({"work": "idempotency purge", "purged": done["idempotency records purged"]})
    return done
