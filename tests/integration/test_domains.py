"""Domain verification against a real DNS server on 127.0.0.1 (dnslib), through the API, on SQLite and PostgreSQL.

LINE WORKS customers whose members sign in with a group name (id@group) move from lite to a paid plan only with a
verified domain: they publish a TXT record and kakin looks it up.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dnslib import QTYPE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.dns import TxtResolver
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services import upgrades
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 4, 1, 10, tzinfo=JST)


class Zone(BaseResolver):  # type: ignore[misc]
    """Answers TXT queries from a dict; any other name does not exist."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.queries: list[str] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.queries.append(name)
        if name not in self.txt:
            reply.header.rcode = 3  # NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in self.txt[name]:
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(value), ttl=60))
        return reply


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    resolver = Zone()
    server = DNSServer(resolver, port=0, address="127.0.0.1", logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    try:
        yield resolver, f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(engine: Engine, nameserver: str) -> tuple[TestClient, dict[str, str], dict[str, str]]:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "lineworks", "LINE WORKS", "lineworks", NOW)
        key = create_api_key(uow, tenant.row, "owner", "test", NOW)
    client = TestClient(create_app(engine, CardSimulator(), lambda: NOW, dns=TxtResolver(nameserver, timeout=1.0)))
    admins = {}
    for cid, group in (("sakura", "sakura-kogyo"), ("ume", "ume-group"), ("kiku", None)):
        body: dict[str, Any] = {"id": cid, "name": cid, "payment_method": "pm_card_visa", "users": 5,
                                "super_admin": {"email": f"boss@{cid}.example", "name": "最高管理者"}}
        if group:
            body["sign_in_group"] = group
        r = client.post("/v1/customers", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201, r.text
        admins[cid] = r.json()["super_admin"]["id"]
    return client, {"Authorization": f"Bearer {key}"}, admins


def as_admin(headers: dict[str, str], admins: dict[str, str], cid: str) -> dict[str, str]:
    return {**headers, "Kakin-Acting-Member": admins[cid]}


def test_a_group_sign_in_upgrades_from_lite_only_with_a_verified_domain(engine: Engine, zone: tuple[Zone, str]) -> None:
    dns, nameserver = zone
    client, headers, admins = setup(engine, nameserver)
    with client:
        for cid in ("sakura", "kiku"):
            r = client.post(f"/v1/customers/{cid}/subscription", headers=as_admin(headers, admins, cid),
                            json={"plan": "lite", "contract": "monthly", "trial_days": 0})
            assert r.status_code == 200, r.text
        r = client.post("/v1/customers/sakura/subscription/plan", headers=as_admin(headers, admins, "sakura"),
                        json={"plan": "basic"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "domain_verification_required"
        assert "id@sakura-kogyo" in r.json()["error"]["message"]
        r = client.post("/v1/customers/kiku/subscription/plan", headers=as_admin(headers, admins, "kiku"),
                        json={"plan": "basic"})
        assert r.status_code == 200, r.text  # members of kiku already sign in with a domain
        assert r.json()["upgrade"]["plan"] == "basic"

        r = client.post("/v1/customers/sakura/domains", headers=as_admin(headers, admins, "sakura"),
                        json={"domain": "Sakura-Kogyo.CO.JP"})
        assert r.status_code == 201, r.text
        record = r.json()["txt_record"]
        assert r.json()["domain"] == "sakura-kogyo.co.jp" and not r.json()["verified"]
        assert record["name"] == "sakura-kogyo.co.jp" and record["value"].startswith("kakin-domain-verification=")
        verify = "/v1/customers/sakura/domains/sakura-kogyo.co.jp/verify"
        r = client.post(verify, headers=as_admin(headers, admins, "sakura"))  # not published yet: NXDOMAIN
        assert r.status_code == 409 and r.json()["error"]["code"] == "domain_not_verified"
        dns.txt["sakura-kogyo.co.jp"] = ["v=spf1 -all", "kakin-domain-verification=someone-elses-token"]
        r = client.post(verify, headers=as_admin(headers, admins, "sakura"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "domain_not_verified"
        dns.txt["sakura-kogyo.co.jp"].append(record["value"])
        r = client.post(verify, headers=as_admin(headers, admins, "sakura"))
        assert r.status_code == 200 and r.json()["verified"], r.text
        assert dns.queries.count("sakura-kogyo.co.jp") == 3  # kakin asked the server each time

        r = client.post("/v1/customers/sakura/subscription/plan", headers=as_admin(headers, admins, "sakura"),
                        json={"plan": "premium"})
        assert r.status_code == 200 and r.json()["upgrade"]["status"] == "pending"  # lite → paid: the worker completes it
        assert r.json()["verified_domain"] == "sakura-kogyo.co.jp"
        assert upgrades.run_due(engine, CardSimulator(), NOW) == 2  # kiku's and sakura's
        assert client.get("/v1/customers/sakura", headers=headers).json()["subscription"]["plan"] == "premium"
        listed = client.get("/v1/customers/sakura/domains", headers=headers).json()["data"]
        assert [(d["domain"], d["verified"]) for d in listed] == [("sakura-kogyo.co.jp", True)]
        actions = [e["action"] for e in client.get("/v1/audit_log?limit=100", headers=headers).json()["data"]]
        assert actions.count("domain.added") == 1 and actions.count("domain.verified") == 1


def test_domain_refusals_change_nothing(engine: Engine, zone: tuple[Zone, str]) -> None:
    dns, nameserver = zone
    client, headers, admins = setup(engine, nameserver)
    with client:
        r = client.post("/v1/customers/sakura/domains", headers=headers, json={"domain": "sakura.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"  # no acting member
        for bad in ("localhost", "-bad-.example", "a..example", "exa mple.jp"):
            r = client.post("/v1/customers/sakura/domains", headers=as_admin(headers, admins, "sakura"), json={"domain": bad})
            assert r.status_code == 422 and r.json()["error"]["param"] == "domain", bad
        r = client.post("/v1/customers/sakura/domains/unregistered.example/verify", headers=as_admin(headers, admins, "sakura"))
        assert r.status_code == 404 and r.json()["error"]["param"] == "domain"
        # a domain verified by one customer cannot be verified, or even registered, by another
        value = client.post("/v1/customers/sakura/domains", headers=as_admin(headers, admins, "sakura"),
                            json={"domain": "shared.example"}).json()["txt_record"]["value"]
        theirs = client.post("/v1/customers/ume/domains", headers=as_admin(headers, admins, "ume"),
                             json={"domain": "shared.example"}).json()["txt_record"]["value"]
        dns.txt["shared.example"] = [value, theirs]
        assert client.post("/v1/customers/sakura/domains/shared.example/verify",
                           headers=as_admin(headers, admins, "sakura")).status_code == 200
        r = client.post("/v1/customers/ume/domains/shared.example/verify", headers=as_admin(headers, admins, "ume"))
        assert r.status_code == 409 and r.json()["error"]["code"] == "domain_taken"
        r = client.post("/v1/customers/ume/domains", headers=as_admin(headers, admins, "ume"), json={"domain": "shared.example"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "domain_taken"
        assert client.get("/v1/customers/ume", headers=headers).json()["verified_domain"] is None
        # a Japanese domain is kept in its ASCII (xn--) form
        r = client.post("/v1/customers/ume/domains", headers=as_admin(headers, admins, "ume"), json={"domain": "梅.jp"})
        assert r.status_code == 201 and r.json()["domain"] == "xn--3zv.jp"


def test_when_no_dns_server_answers_the_verification_is_not_refused_but_retried_later(engine: Engine) -> None:
    client, headers, admins = setup(engine, f"127.0.0.1:{free_udp_port()}")  # nothing listens there
    with client:
        assert client.post("/v1/customers/sakura/domains", headers=as_admin(headers, admins, "sakura"),
                           json={"domain": "sakura.example"}).status_code == 201
        r = client.post("/v1/customers/sakura/domains/sakura.example/verify", headers=as_admin(headers, admins, "sakura"))
        assert r.status_code == 503 and r.json()["error"]["code"] == "dns_unavailable"
        listed = client.get("/v1/customers/sakura/domains", headers=headers).json()["data"]
        assert [d["verified"] for d in listed] == [False]
