"""A customer's domains (基本設定 > ドメイン): added, proved with a DNS TXT record, made primary, deleted.

Rules (seed lineworks-upgrade-procedure, pricing FAQ; SPEC "LINE WORKS"; issue 11):

- A customer whose members sign in with a group name (id@group) needs a domain in use before a plan change the
  catalog marks ``needs_verified_domain`` (lite → basic or premium: IDs become id@domain).
- Its own domain: it publishes ``kakin-domain-verification=<token>`` as a TXT record there (and, for mail, the
  catalog's ``[domains] mx_records``). Status: 確認待ち (``pending``) until the record is seen — checked when the
  customer asks, and by the worker every :data:`RECHECK_EVERY` for :data:`CHECK_FOR` after it was added — then
  使用中 (``in_use``); after those 24 hours without it, 期限切れ (``expired``; adding it again starts over).
- The vendor's domain ``GROUP.`` + ``[domains] provided_suffix`` (LINE WORKS ``GROUP.by-works.com``) is in use at
  once; deleted, it is never issued again.
- A domain is in use by one customer of a tenant at a time. The first domain in use becomes the primary domain.
- 「プライマリドメインに変更」 (super admin): every portal session of the customer's members ends, the webhook
  ``customer.primary_domain.changed`` tells the vendor's product to sign its users out, and the primary domain
  cannot change again for :data:`PRIMARY_LOCK` (``primary_domain_locked``). The primary domain cannot be deleted.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from kakin.adapters.db import Engine
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.calendar import instant_text

from . import authorization, portal
from .access import Operator
from .authorization import Clock
from .tenancy import Tenant, customer_row, open_tenant

TXT_PREFIX = "kakin-domain-verification="
RECHECK_EVERY = timedelta(minutes=10)  # the worker's look-ups of a pending domain
CHECK_FOR = timedelta(hours=24)  # "ドメインのステータスは変更されるまでに最大で24時間"
PRIMARY_LOCK = timedelta(hours=24)  # "元のドメインは…24時間は再変更できません"
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


def status(row: dict[str, Any], now: datetime) -> str:
    """``in_use`` (使用中), ``pending`` (確認待ち) or ``expired`` (期限切れ) at ``now``."""
    if row["verified_domain"] is not None:
        return "in_use"
    return "pending" if now < row["created_at"] + CHECK_FOR else "expired"


def _view(row: dict[str, Any], primary: str | None, tenant: Tenant, now: datetime) -> dict[str, Any]:
    provided = bool(row["provided"])
    return {"domain": row["domain"], "status": status(row, now), "verified": row["verified_domain"] is not None,
            "primary": row["domain"] == primary, "provided": provided, "added_at": row["created_at"],
            "verified_at": row["verified_at"], "checked_until": None if provided else row["created_at"] + CHECK_FOR,
            "txt_record": None if provided else {"name": row["domain"], "type": "TXT", "value": TXT_PREFIX + row["token"]},
            "mx_records": [] if provided else [{"name": row["domain"], "type": "MX", "priority": mx.priority,
                                                "value": mx.value} for mx in tenant.catalog.domains.mx_records]}


def _acting(uow: UnitOfWork, principal: Operator, key: str, clock: Clock, action: str) -> tuple[dict[str, Any], Tenant]:
    at = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, at, action)
    customer = customer_row(uow, principal.tenant, key, live=True)
    customer["now"] = at["now"]
    return customer, open_tenant(uow, principal.tenant.code)


def provided_domain(tenant: Tenant, customer: dict[str, Any]) -> str | None:
    """``GROUP.<provided_suffix>`` for a customer signing in with a group name under a catalog that provides one."""
    suffix = tenant.catalog.domains.provided_suffix
    return f"{customer['sign_in_group']}.{suffix}".lower() if suffix and customer["sign_in_group"] else None


def _audit(uow: UnitOfWork, tenant: TenantRow, customer: dict[str, Any], actor: str, action: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    uow.audit([{"tenant_id": tenant.id, "customer_id": customer["id"], "at": customer["now"], "actor": actor,
                "action": action, "before": before, "after": after}])


def add_domain(uow: UnitOfWork, principal: Operator, key: str, domain: str | None, clock: Clock, *,
               provided: bool = False) -> dict[str, Any]:
    """Add a domain to customer ``key`` as ``principal`` (its super admin): ``domain`` (its own; pending until the TXT
    record is seen), or with ``provided`` the vendor's ``GROUP.<suffix>`` (in use at once). Adding one again returns
    it (a pending or expired one starts its 24 hours over). Returns the domain's view: ``{"domain", "status",
    "verified", "primary", "provided", "added_at", "verified_at", "checked_until", "txt_record", "mx_records"}``.
    Raises what :func:`authorization.authorize` raises, InvalidValue (``domain``), DomainTaken (another customer's,
    or a provided domain once deleted)."""
    customer, tenant = _acting(uow, principal, key, clock, "add_domain")
    now, suffix = customer["now"], tenant.catalog.domains.provided_suffix
    if provided:
        name = provided_domain(tenant, customer)
        if name is None:
            raise errors.InvalidValue("this customer has no provided domain: its members do not sign in with a group "
                                      "name, or the vendor provides none; add your own domain", param="domain")
    else:
        name = normalize(domain)
        if suffix and (name == suffix or name.endswith("." + suffix)):
            raise errors.InvalidValue(f"{name} is under the vendor's {suffix}: add your own domain, or use the "
                                      "provided domain", param="domain")
    if uow.domains.retired(tenant.row.id, name):
        raise errors.DomainTaken(f"{name} was deleted and is never issued again; add your own domain", param="domain")
    owner = uow.domains.owner_in_use(tenant.row.id, name)
    if owner is not None and owner != key:
        raise errors.DomainTaken(f"{name} is in use by another customer", param="domain")
    found = uow.domains.get(customer["id"], name)
    if found is None:
        uow.domains.add(tenant.row.id, customer["id"], name, secrets.token_urlsafe(24), now, provided=provided)
        _audit(uow, tenant.row, customer, principal.actor, "domain.added", None, {"domain": name, "provided": provided})
        found = uow.domains.get(customer["id"], name)
        assert found is not None
        if provided:
            found = _use(uow, tenant, customer, found, principal.actor)
    elif status(found, now) == "expired":
        uow.domains.restart(found["id"], now)
        found = {**found, "created_at": now}
    return _view(found, _primary(uow, customer), tenant, now)


def _primary(uow: UnitOfWork, customer: dict[str, Any]) -> str | None:
    row = uow.customer_row(uow.tenant_by_id(customer["tenant_id"]), customer["key"])
    return None if row is None else row["verified_domain"]


def _use(uow: UnitOfWork, tenant: Tenant, customer: dict[str, Any], row: dict[str, Any], actor: str) -> dict[str, Any]:
    """Put a domain in use (the primary one if the customer has none); DomainTaken if another customer got it first."""
    primary = _primary(uow, customer)
    if not uow.domains.set_in_use(row["id"], customer["id"], row["domain"], customer["now"], primary=primary is None):
        raise errors.DomainTaken(f"{row['domain']} is in use by another customer", param="domain")
    after = {"domain": row["domain"], "primary": primary or row["domain"]}
    _audit(uow, tenant.row, customer, actor, "domain.verified", {"domain": row["domain"], "primary": primary}, after)
    return {**row, "verified_domain": row["domain"], "verified_at": customer["now"]}


def domains_of(uow: UnitOfWork, principal: Operator, key: str, clock: Clock) -> dict[str, Any]:
    """Customer ``key``'s domains as ``principal`` may see them: ``{"data": [view, …], "primary_domain",
    "provided_domain" (the vendor's domain it may add, or None), "primary_locked_until" (or None)}``."""
    customer = authorization.customer_for(uow, principal, key, clock)
    tenant, now = open_tenant(uow, principal.tenant.code), customer["now"]
    rows = uow.domains.of_customer(customer["id"])
    offer = provided_domain(tenant, customer)
    if offer is not None and (any(r["domain"] == offer for r in rows) or uow.domains.retired(tenant.row.id, offer)):
        offer = None
    changed = customer["primary_domain_changed_at"]
    locked = changed + PRIMARY_LOCK if changed is not None and now < changed + PRIMARY_LOCK else None
    return {"data": [_view(r, customer["verified_domain"], tenant, now) for r in rows],
            "primary_domain": customer["verified_domain"], "provided_domain": offer, "primary_locked_until": locked}


def verify_domain(uow: UnitOfWork, principal: Operator, key: str, domain: str, resolver: Resolver,
                  clock: Clock) -> dict[str, Any]:
    """Look for the TXT record now (「ドメインの所有権確認」); seen, the domain is in use. Returns its view. Raises what
    :func:`authorization.authorize` raises, NotFound (not added), DomainNotVerified, DomainTaken, DnsUnavailable."""
    name = normalize(domain)
    customer, tenant = _acting(uow, principal, key, clock, "verify_domain")
    found = _own(uow, customer, key, name)
    if found["verified_domain"] is None:
        expected = TXT_PREFIX + found["token"]
        if expected not in resolver.txt(name):
            raise errors.DomainNotVerified(
                f"no TXT record {expected!r} at {name} yet; publish it at your DNS provider and try again "
                "(a new record can take a while to be seen)", param="domain")
        found = _use(uow, tenant, customer, found, principal.actor)
    return _view(found, _primary(uow, customer), tenant, customer["now"])


def _own(uow: UnitOfWork, customer: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    found = uow.domains.get(customer["id"], name)
    if found is None or found["deleted_at"] is not None:
        raise errors.NotFound(f"customer {key!r} has not added {name}; add it first", param="domain")
    return found


def change_primary(uow: UnitOfWork, principal: Operator, key: str, domain: str, clock: Clock) -> dict[str, Any]:
    """「プライマリドメインに変更」: make ``domain`` (in use) customer ``key``'s primary domain. Every portal session of its
    members ends, the webhook ``customer.primary_domain.changed`` ``{"previous", "primary", "sign_in": "id@DOMAIN"}``
    is queued, and the lock starts. Making the primary domain primary changes nothing. Returns the domain's view with
    ``sessions_ended``. Raises what :func:`authorization.authorize` raises, NotFound, DomainNotVerified (not in use),
    PrimaryDomainLocked (changed less than 24 hours ago)."""
    name = normalize(domain)
    customer, tenant = _acting(uow, principal, key, clock, "change_primary_domain")
    now, previous = customer["now"], customer["verified_domain"]
    found = _own(uow, customer, key, name)
    if found["verified_domain"] is None:
        raise errors.DomainNotVerified(f"{name} is not in use yet: confirm its ownership first", param="domain")
    if name == previous:
        return {**_view(found, previous, tenant, now), "sessions_ended": 0}
    changed = customer["primary_domain_changed_at"]
    if changed is not None and now < changed + PRIMARY_LOCK:
        until = instant_text(changed + PRIMARY_LOCK, tenant.lifecycle.zone)
        raise errors.PrimaryDomainLocked(f"the primary domain changed less than 24 hours ago; it can change again from "
                                         f"{until}", param="domain")
    uow.domains.set_primary(customer["id"], name, now)
    ended = portal.revoke_customer_sessions(uow, customer["id"], now)
    _audit(uow, tenant.row, customer, principal.actor, "customer.primary_domain.changed", {"primary_domain": previous},
           {"primary_domain": name})
    _publish(uow, tenant, customer, "customer.primary_domain.changed",
             {"previous": previous, "primary": name, "sign_in": f"id@{name}", "locked_until": instant_text(
                 now + PRIMARY_LOCK, tenant.lifecycle.zone)})
    return {**_view(found, name, tenant, now), "sessions_ended": ended}


def _publish(uow: UnitOfWork, tenant: Tenant, customer: dict[str, Any], kind: str, data: dict[str, Any]) -> None:
    endpoints = [e for e in uow.webhooks.endpoints_of(tenant.row.id) if e["enabled"]]
    event = {"id": "evt_" + secrets.token_hex(12), "type": kind, "customer": customer["key"], "data": data,
             "created": instant_text(customer["now"], tenant.lifecycle.zone)}
    uow.webhooks.record_events(tenant.row.id, [event], customer["now"], endpoints)


def delete_domain(uow: UnitOfWork, principal: Operator, key: str, domain: str, clock: Clock) -> dict[str, Any]:
    """Delete one of customer ``key``'s domains; a provided one is never issued again. Returns ``{"domain",
    "deleted": true}``. Raises what :func:`authorization.authorize` raises, NotFound, DomainIsPrimary."""
    name = normalize(domain)
    customer, tenant = _acting(uow, principal, key, clock, "delete_domain")
    found = _own(uow, customer, key, name)
    if name == customer["verified_domain"]:
        raise errors.DomainIsPrimary(f"{name} is the primary domain: make another domain primary first", param="domain")
    uow.domains.remove(found, customer["now"])
    _audit(uow, tenant.row, customer, principal.actor, "domain.deleted", {"domain": name, "provided": found["provided"]}, None)
    return {"domain": name, "deleted": True}


# ------------------------------------------------------------------ the worker's look-ups
def recheck_pending(engine: Engine, resolver: Resolver | None, now: datetime, limit: int = 100) -> int:
    """Look up the TXT record of pending domains due for it (added less than 24 hours ago), outside any transaction;
    each one seen is put in use (actor ``worker``), the others are looked up again in :data:`RECHECK_EVERY`. Returns
    how many were looked up. ``resolver`` None: ``KAKIN_DNS_NAMESERVER`` or the system's."""
    with UnitOfWork(engine, readonly=True) as uow:
        due = uow.domains.pending_checks(now, now - CHECK_FOR, limit)
    if not due:
        return 0
    if resolver is None:
        from kakin.adapters.dns import TxtResolver

        resolver = TxtResolver.from_env()
    seen: list[dict[str, Any]] = []
    for row in due:
        try:
            if TXT_PREFIX + row["token"] in resolver.txt(row["domain"]):
                seen.append(row)
        except errors.DnsUnavailable:
            pass
    _record_checks(engine, due, seen, now)
    return len(due)


def _record_checks(engine: Engine, due: Sequence[dict[str, Any]], seen: Sequence[dict[str, Any]], now: datetime) -> None:
    ids = {r["id"] for r in seen}
    for row in due:
        with UnitOfWork(engine) as uow:
            current = uow.domains.get(row["customer_id"], row["domain"])
            if current is None or current["verified_domain"] is not None or current["deleted_at"] is not None:
                continue  # deleted or verified meanwhile
            if row["id"] not in ids:
                uow.domains.check_again_at(row["id"], now + RECHECK_EVERY)
                continue
            tenant_row = uow.tenant_by_id(row["tenant_id"])
            customer = customer_row(uow, tenant_row, row["customer_key"])
            customer["now"] = now
            try:
                with uow.savepoint():
                    _use(uow, open_tenant(uow, tenant_row.code), customer, current, "worker")
            except errors.DomainTaken:  # another customer uses it now: stop looking
                uow.domains.check_again_at(row["id"], row["created_at"] + CHECK_FOR)
