"""What an operator watches, over HTTP: /healthz and /metrics; and a slow gateway webhook that blocks no other request."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from kakin.adapters.db import tables
from kakin.adapters.db.migrate import make_engine
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services import access, billing, due_run
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGN_UP = datetime(2026, 5, 3, 10, tzinfo=JST)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_answers_without_a_key_200_when_the_database_answers(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_with_a_json_body_when_the_database_cannot_be_reached() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed}/kakin")
    with TestClient(create_app(engine)) as client:
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["database"] == "unreachable" and "refused" in r.json()["error"]
    engine.dispose()


def test_metrics_show_backlog_outboxes_charges_renewals_and_latency_by_route_template(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGN_UP)
        for key, card in (("acme", "pm_card_visa"), ("beta", "pm_card_chargeDeclined")):
            account = billing.create_customer(uow, tenant, gateway, key, key, SIGN_UP, payment_method="pm_card_visa")
            assert account.id is not None
            access.add_super_admin(uow, tenant.row, account.id, f"boss@{key}.example", "社長", SIGN_UP)
            billing.subscribe(uow, tenant, gateway, key, SIGN_UP, "gold", seats=10)  # charged; a receipt queued
            billing.set_payment_method(uow, tenant, gateway, key, SIGN_UP, card)
        api_key = create_api_key(uow, tenant.row, "viewer", "test", SIGN_UP)
    june_3_noon = datetime(2026, 6, 3, 12, tzinfo=JST)  # before the first retry (June 4)
    with engine.connect() as conn:
        due_at = conn.execute(select(tables.customers.c.next_due_at)).scalars().all()
    assert len(set(due_at)) == 1  # both: the notice a week before June 3
    with TestClient(create_app(engine, gateway, clock=lambda: june_3_noon)) as client:
        assert client.get("/v1/customers/acme", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
        before = samples(client.get("/metrics").text)
        due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, june_3_noon)  # notices, June 3: one paid, one declined
        after = samples(client.get("/metrics").text)
    assert before[("kakin_due_backlog", ())] == 2
    assert before[("kakin_due_backlog_oldest_age_seconds", ())] == (june_3_noon - due_at[0]).total_seconds()
    assert before[("kakin_outbox_depth", (("kind", "mail"),))] == 2  # the two sign-up receipts
    assert before[("kakin_outbox_oldest_age_seconds", (("kind", "mail"),))] == (june_3_noon - SIGN_UP).total_seconds()
    assert before[("kakin_outbox_depth", (("kind", "webhook"),))] == 0
    assert before[("kakin_charges_total", (("outcome", "succeeded"),))] == 2
    assert before[("kakin_charges_total", (("outcome", "failed"),))] == 0
    assert after[("kakin_charges_total", (("outcome", "succeeded"),))] == 3
    assert after[("kakin_charges_total", (("outcome", "failed"),))] == 1
    assert after[("kakin_renewals_total", ())] - before[("kakin_renewals_total", ())] == 2  # the two June 3 invoices
    assert after[("kakin_due_backlog", ())] == 0
    # 2 receipts + 2 notices + 1 receipt + 1 failed-payment notice, none sent yet
    assert after[("kakin_outbox_depth", (("kind", "mail"),))] == 6
    route = (("method", "GET"), ("route", "/v1/customers/{customer_id}"), ("status", "2xx"))
    assert before[("kakin_http_request_duration_seconds_count", route)] == 1
    assert not any("acme" in str(labels) for _, labels in after)  # the template, never the raw path


class SlowGateway(CardSimulator):
    """A gateway whose webhook check takes a while (a slow signature backend, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def verify_webhook(self, payload: bytes, header: str) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(timeout=5)
        return {"type": "charge.updated"}


def test_a_slow_stripe_webhook_does_not_hold_up_other_requests(engine: Engine) -> None:
    gateway = SlowGateway()
    with TestClient(create_app(engine, gateway)) as client:
        answer: dict[str, Any] = {}
        hook = threading.Thread(target=lambda: answer.update(r=client.post("/v1/gateway/stripe/nipoplus/webhook",
                                                                            content=b"{}")))
        hook.start()
        assert gateway.entered.wait(timeout=5)
        started = time.monotonic()
        assert client.get("/openapi.json").status_code == 200  # served while the webhook is still being checked
        waited = time.monotonic() - started
        gateway.release.set()
        hook.join(timeout=10)
    assert waited < 2.5, f"another request waited {waited:.1f} s behind the webhook"
    assert answer["r"].status_code == 200 and answer["r"].json() == {"received": True, "handled": False}
