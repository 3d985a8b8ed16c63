"""One authorization for the API and the portal: the services refuse, whoever calls them (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from test_portal import Portal

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain import errors
from kakin.services import access, authorization, members


@pytest.fixture
def site(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Portal]:
    yield Portal(engine, monkeypatch)


def _seats(site: Portal, cid: str) -> int:
    r = site.api("GET", f"/v1/customers/{cid}")
    return int(r.json()["subscription"]["seats"])


def _principal(site: Portal, cid: str, member: str) -> access.Operator:
    with UnitOfWork(site.engine, readonly=True) as uow:
        tenant_id = uow.conn.execute(select(tables.tenants.c.id).where(tables.tenants.c.code == "nipoplus")).scalar_one()
        return access.portal_principal(uow.tenant_by_id(tenant_id), cid, member)


def test_a_portal_member_reaches_only_its_own_customer_and_the_answer_is_not_found(site: Portal) -> None:
    principal = _principal(site, "acme", site.admin["acme"])
    with UnitOfWork(site.engine) as uow, pytest.raises(errors.NotFound):
        authorization.perform(uow, principal, CardSimulator(), "other", site.clock, "set_seats", seats=6)
    assert _seats(site, "other") == 5


def test_a_portal_super_admin_changes_seats_through_the_same_service_as_the_api(site: Portal) -> None:
    principal = _principal(site, "acme", site.admin["acme"])
    with UnitOfWork(site.engine) as uow:
        authorization.perform(uow, principal, CardSimulator(), "acme", site.clock, "set_seats", seats=12)
    assert _seats(site, "acme") == 12
    log = site.api("GET", "/v1/audit_log").json()["data"]
    assert log[-1]["actor"] == f"portal:{site.admin['acme']}" and log[-1]["member"] == site.admin["acme"]


def test_a_plain_member_may_change_nothing_and_an_admin_not_the_plan(site: Portal) -> None:
    owner = _principal(site, "acme", site.admin["acme"])
    with UnitOfWork(site.engine) as uow:
        plain = members.add_member(uow, owner, "acme", "member@acme.example", "佐藤", "member", site.clock)["id"]
        admin = members.add_member(uow, owner, "acme", "admin2@acme.example", "鈴木", "admin", site.clock)["id"]
    with UnitOfWork(site.engine) as uow, pytest.raises(errors.AdminRequired):
        authorization.perform(uow, _principal(site, "acme", plain), CardSimulator(), "acme", site.clock, "set_seats",
                              seats=11)
    with UnitOfWork(site.engine) as uow, pytest.raises(errors.SuperAdminRequired):
        authorization.perform(uow, _principal(site, "acme", admin), CardSimulator(), "acme", site.clock, "cancel")
    with UnitOfWork(site.engine) as uow:  # an admin may change seats
        authorization.perform(uow, _principal(site, "acme", admin), CardSimulator(), "acme", site.clock, "set_seats",
                              seats=11)
    assert _seats(site, "acme") == 11


def test_a_portal_principal_has_no_operator_permission(site: Portal) -> None:
    principal = _principal(site, "acme", site.admin["acme"])
    for permission in ("read", "write", "review", "manage"):
        with pytest.raises(errors.RoleForbidden):
            principal.require(permission)


def test_a_viewer_key_acting_for_the_super_admin_is_refused_by_the_service(site: Portal) -> None:
    with UnitOfWork(site.engine) as uow:
        viewer = access.authenticate(uow, site.viewer).acting_for(site.admin["acme"])
    with UnitOfWork(site.engine) as uow, pytest.raises(errors.RoleForbidden):
        authorization.perform(uow, viewer, CardSimulator(), "acme", site.clock, "set_seats", seats=20)
    assert _seats(site, "acme") == 10


def test_another_customers_member_cannot_act_through_an_operator_key(site: Portal) -> None:
    r = site.api("POST", "/v1/customers/acme/subscription/seats", {"seats": 20}, member=site.admin["other"])
    assert r.status_code == 404 and r.json()["error"]["param"] == "Kakin-Acting-Member"
    assert _seats(site, "acme") == 10


def test_the_portal_members_role_cannot_be_given_to_an_api_key_or_an_operator(site: Portal) -> None:
    from kakin.services import operators

    with UnitOfWork(site.engine) as uow:
        tenant = access.authenticate(uow, site.key).tenant
        with pytest.raises(errors.InvalidValue) as refused:
            access.create_api_key(uow, tenant, "member", "x", site.clock())
        assert refused.value.param == "role"
        with pytest.raises(errors.InvalidValue) as refused:
            operators.create_operator(uow, tenant, "m@vendor.example", "member", site.clock())
        assert refused.value.param == "role"
