"""Webhooks delivered over real HTTP to a receiver on 127.0.0.1: signatures, retries with backoff, the delivery log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.adapters.webhooks_http import http_post
from kakin.services import billing, webhooks
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")


class Receiver:
    """An HTTP server on loopback that records requests and answers with the status it is told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
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


def subscribe_with_endpoint(engine: Engine, url: str, events: list[str]) -> tuple[str, datetime]:
    now = datetime(2026, 5, 3, 10, tzinfo=JST)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", now)
        endpoint = webhooks.create_endpoint(uow, CommandLine(tenant.row), url, events, now)
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", now, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", now, "gold", seats=10)
    return endpoint["secret"], now


def test_events_arrive_signed_and_a_receiver_can_verify_them(engine: Engine, receiver: Receiver) -> None:
    secret, now = subscribe_with_endpoint(engine, receiver.url, ["*"])
    assert webhooks.deliver_due(engine, now, http_post) >= 3
    types = [json.loads(body)["type"] for _, body in receiver.requests]
    assert "subscription.started" in types and "invoice.finalized" in types and "payment.succeeded" in types
    for headers, body in receiver.requests:
        assert webhooks.verify(secret, headers["Kakin-Signature"], body, now)
        assert not webhooks.verify("whsec_forged", headers["Kakin-Signature"], body, now)
        assert not webhooks.verify(secret, headers["Kakin-Signature"], body + b" ", now)  # tampered body
        assert not webhooks.verify(secret, headers["Kakin-Signature"], body, now + timedelta(hours=1))  # replayed late
    invoice = next(json.loads(b) for _, b in receiver.requests if json.loads(b)["type"] == "invoice.finalized")
    assert invoice["customer"] == "acme" and invoice["data"]["total"] == 1800
    assert webhooks.deliver_due(engine, now, http_post) == 0  # delivered once


def test_an_event_gives_its_time_in_iso_8601_with_the_tenants_offset(engine: Engine, receiver: Receiver) -> None:
    _, now = subscribe_with_endpoint(engine, receiver.url, ["*"])
    webhooks.deliver_due(engine, now, http_post)
    created = {json.loads(body)["created"] for _, body in receiver.requests}
    assert created == {"2026-05-03T10:00:00+09:00"}  # the subscription's instant, in Asia/Tokyo
    assert datetime.fromisoformat(created.pop()) == now


def test_an_endpoint_receives_only_the_events_it_asked_for(engine: Engine, receiver: Receiver) -> None:
    _, now = subscribe_with_endpoint(engine, receiver.url, ["invoice.finalized"])
    webhooks.deliver_due(engine, now, http_post)
    assert [json.loads(b)["type"] for _, b in receiver.requests] == ["invoice.finalized"]


def test_a_failing_receiver_is_retried_with_backoff_and_the_log_keeps_each_outcome(engine: Engine, receiver: Receiver) -> None:
    _, now = subscribe_with_endpoint(engine, receiver.url, ["invoice.finalized"])
    receiver.status = 500
    assert webhooks.deliver_due(engine, now, http_post) == 1
    assert webhooks.deliver_due(engine, now + timedelta(seconds=29), http_post) == 0  # first retry after 30 s
    assert webhooks.deliver_due(engine, now + timedelta(seconds=30), http_post) == 1
    assert webhooks.deliver_due(engine, now + timedelta(seconds=89), http_post) == 0  # then after 60 s more
    receiver.status = 204
    assert webhooks.deliver_due(engine, now + timedelta(seconds=90), http_post) == 1
    with UnitOfWork(engine) as uow:
        endpoint = uow.webhooks.endpoints_of(open_tenant(uow, "nipoplus").row.id)[0]
        log = uow.webhooks.deliveries_of(endpoint["tenant_id"], endpoint["public_id"])
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 3, 204)]
    assert len(receiver.requests) == 3
    bodies = {b for _, b in receiver.requests}
    assert len(bodies) == 1  # the same event each time


def test_an_unreachable_receiver_does_not_stop_delivery(engine: Engine) -> None:
    _, now = subscribe_with_endpoint(engine, "http://127.0.0.1:9/nothing-listens", ["invoice.finalized"])
    assert webhooks.deliver_due(engine, now, http_post) == 1
    with UnitOfWork(engine) as uow:
        endpoint = uow.webhooks.endpoints_of(open_tenant(uow, "nipoplus").row.id)[0]
        (log,) = uow.webhooks.deliveries_of(endpoint["tenant_id"], endpoint["public_id"])
    assert log["status"] == "pending" and log["attempts"] == 1 and "ConnectError" in log["last_error"]


def test_signing_follows_the_documented_formula() -> None:
    import hashlib
    import hmac

    body = b'{"type": "invoice.finalized"}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.sign("whsec_x", 1700000000, body) == f"t=1700000000,v1={expected}"
