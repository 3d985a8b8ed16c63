"""Domains a customer proves it owns, with a DNS TXT record.

A customer whose members sign in with a group name (id@group) needs a verified
domain before a plan change the catalog marks ``needs_verified_domain`` (LINE
WORKS: lite → basic or premium, when the IDs become id@domain). The customer
registers the domain, publishes ``kakin-domain-verification=<token>`` as a TXT
record at it, and asks kakin to check. A domain is verified for one customer
of a tenant at a time.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Protocol

from kakin.adapters.db import service_store
from kakin.adapters.db.store import TenantRow, UnitOfWork
from kakin.domain import errors

from . import authorization
from .access import Operator
from .authorization import Clock
from .tenancy import customer_row

TXT_PREFIX = "kakin-domain-verification="
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class Resolver(Protocol):
    def txt(self, name: str) -> list[str]: ...


def normalize(domain: object) -> str:
    """The domain in lowercase ASCII (a Japanese domain in its xn-- form), or InvalidValue naming what is wrong."""
    if not isinstance(domain, str) or not domain.strip():
        raise errors.InvalidValue("give a domain such as example.co.jp", param="domain")
    name = domain.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise errors.InvalidValue(f"{domain!r} is not a domain name", param="domain") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise errors.InvalidValue(f"{domain!r} is not a domain name: give one such as example.co.jp", param="domain")
    return ascii_name


def _view(row: dict[str, Any], verified_domain: str | None) -> dict[str, Any]:
    return {"domain": row["domain"], "verified": row["verified_at"] is not None and row["domain"] == verified_domain,
            "verified_at": row["verified_at"],
            "txt_record": {"name": row["domain"], "type": "TXT", "value": TXT_PREFIX + row["token"]}}


def add_domain(uow: UnitOfWork, principal: Operator, key: str, domain: str, clock: Clock) -> dict[str, Any]:
    """Register a domain to verify for customer ``key`` as ``principal`` (its super admin); returns the TXT record to
    publish. Registering it again returns the same record. Raises what :func:`authorization.authorize` raises,
    InvalidValue (``domain``), DomainTaken."""
    name = normalize(domain)
    at = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, at, "add_domain")
    tenant, now, actor = principal.tenant, at["now"], principal.actor
    customer = customer_row(uow, tenant, key, live=True)
    owner = service_store.verified_domain_owner(uow.conn, tenant.id, name)
    if owner is not None and owner != key:
        raise errors.DomainTaken(f"{name} is verified by another customer", param="domain")
    found = service_store.domain_verification(uow.conn, customer["id"], name)
    if found is None:
        service_store.add_domain_verification(uow.conn, tenant.id, customer["id"], name, secrets.token_urlsafe(24), now)
        uow.audit([{"tenant_id": tenant.id, "customer_id": customer["id"], "at": now, "actor": actor,
                    "action": "domain.added", "before": None, "after": {"domain": name}}])
        found = service_store.domain_verification(uow.conn, customer["id"], name)
        assert found is not None
    return _view(found, customer["verified_domain"])


def domains_of(uow: UnitOfWork, tenant: TenantRow, key: str) -> list[dict[str, Any]]:
    row = customer_row(uow, tenant, key)
    return [_view(r, row["verified_domain"]) for r in service_store.domain_verifications_of(uow.conn, row["id"])]


def verify_domain(uow: UnitOfWork, principal: Operator, key: str, domain: str, resolver: Resolver,
                  clock: Clock) -> dict[str, Any]:
    """Look for the TXT record; when it is there, the domain becomes the customer's verified domain. Raises what
    :func:`authorization.authorize` raises, NotFound (not registered), DomainNotVerified, DomainTaken."""
    name = normalize(domain)
    at = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, at, "verify_domain")
    tenant, now, actor = principal.tenant, at["now"], principal.actor
    customer = customer_row(uow, tenant, key, live=True)
    found = service_store.domain_verification(uow.conn, customer["id"], name)
    if found is None:
        raise errors.NotFound(f"customer {key!r} has not registered {name}; register it first", param="domain")
    expected = TXT_PREFIX + found["token"]
    if expected not in resolver.txt(name):
        raise errors.DomainNotVerified(
            f"no TXT record {expected!r} at {name} yet; publish it at your DNS provider and try again "
            "(a new record can take a while to be seen)", param="domain")
    if not service_store.set_verified_domain(uow.conn, found["id"], customer["id"], name, now):
        raise errors.DomainTaken(f"{name} is verified by another customer", param="domain")
    uow.audit([{"tenant_id": tenant.id, "customer_id": customer["id"], "at": now, "actor": actor, "action": "domain.verified",
                "before": {"verified_domain": customer["verified_domain"]}, "after": {"verified_domain": name}}])
    return _view({**found, "verified_at": now}, name)
