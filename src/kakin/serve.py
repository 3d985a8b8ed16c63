"""``kakin serve`` and ``kakin worker``: the service on the real clock.

``serve`` brings the database up to date, makes sure the three reference
tenants exist with a few demo customers, prints a fresh owner API key for each
(keys are stored hashed, so a key can only be shown when it is made) and
serves the API. ``worker`` does what is due, again and again.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from kakin.adapters.db import service_store
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.payments import PaymentGateway
from kakin.services import access, billing, mail, webhooks
from kakin.services.tenancy import create_tenant

DEMO: dict[str, list[dict[str, Any]]] = {
    "nipoplus": [
        {"id": "acme", "name": "株式会社アクメ", "admin": "owner@acme.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "gold", "seats": 10}},
        {"id": "beta", "name": "ベータ合同会社", "admin": "boss@beta.example", "pm": None, "subscribe": None},
    ],
    "lineworks": [
        {"id": "sakura", "name": "さくら工業株式会社", "admin": "it@sakura.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "basic", "contract": "monthly", "members": 15}},
    ],
    "line-oa": [
        {"id": "shop", "name": "青葉ベーカリー", "admin": "shop@aoba.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "standard"}},
        {"id": "cafe", "name": "喫茶みどり", "admin": "cafe@midori.example", "pm": "pm_card_visa",
         "subscribe": {"plan": "light"}},
    ],
}
NAMES = {"nipoplus": "NipoPlus", "lineworks": "LINE WORKS", "line-oa": "LINE公式アカウント"}


def ensure_reference_tenants(engine: Engine, gateway: PaymentGateway, now: datetime) -> list[tuple[str, str]]:
    """Create missing reference tenants with demo customers; return (tenant, new owner key) pairs."""
    keys = []
    for code, customers in DEMO.items():
        with UnitOfWork(engine) as uow:
            row = uow.tenant(code)
            if row is None:
                tenant = create_tenant(uow, code, NAMES[code], code, now)
                for c in customers:
                    account = billing.create_customer(uow, tenant, gateway, c["id"], c["name"], now, payment_method=c["pm"])
                    assert account.id is not None
                    access.add_super_admin(uow, tenant.row, account.id, c["admin"], c["name"], now)
                    if c["subscribe"]:
                        s = dict(c["subscribe"])
                        billing.subscribe(uow, tenant, gateway, c["id"], now, s.pop("plan"), **s)
                row = tenant.row
            keys.append((code, access.create_api_key(uow, row, "owner", f"serve {now:%Y-%m-%d %H:%M}", now)))
    return keys


IDEMPOTENCY_RETENTION = timedelta(hours=24)  # a retried request replays its first response for this long


def run_once(engine: Engine, gateway: PaymentGateway, now: datetime) -> dict[str, int]:
    """One pass of due work on the real clock: billing for every tenant, webhook deliveries, e-mail, and
    forgetting the responses of requests older than :data:`IDEMPOTENCY_RETENTION`."""
    done = {}
    with UnitOfWork(engine) as uow:
        codes = [t.code for t in uow.tenants()]
    for code in codes:
        done[code] = billing.run_due(lambda: UnitOfWork(engine), code, gateway, now)
    done["webhook deliveries"] = webhooks.deliver_due(engine, now)
    done["mails sent"] = mail.deliver_mail(engine, now, SmtpMailer.from_env())["sent"]
    with UnitOfWork(engine) as uow:
        done["idempotency records purged"] = service_store.purge_idempotency_records(uow.conn, now - IDEMPOTENCY_RETENTION)
    return done


def work_forever(engine: Engine, gateway: PaymentGateway, interval: float, console: Console) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"kakin worker: a pass every {interval:g} s; Ctrl-C to stop")
    while not stop.is_set():
        done = run_once(engine, gateway, datetime.now(UTC))
        if any(done.values()):
            console.print(", ".join(f"{k}: {v}" for k, v in done.items() if v))
        stop.wait(interval)
