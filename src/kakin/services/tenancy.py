"""Tenants: a vendor, its catalog and its billing engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kakin.adapters.catalog_files import resolve_catalog
from kakin.adapters.db.store import TenantRow, UnitOfWork
from kakin.domain import errors
from kakin.domain.catalog import Catalog
from kakin.domain.documents import validate_registration_number
from kakin.domain.lifecycle import Lifecycle


@dataclass(frozen=True)
class Tenant:
    row: TenantRow
    catalog: Catalog
    lifecycle: Lifecycle

    @property
    def code(self) -> str:
        return self.row.code


def create_tenant(uow: UnitOfWork, code: str, name: str, catalog_ref: str, now: datetime, *,
                  registration_number: str | None = None, address: str | None = None) -> Tenant:
    catalog = resolve_catalog(catalog_ref)
    if registration_number is not None:
        validate_registration_number(registration_number)
    if uow.tenant(code) is not None:
        raise errors.TenantExists(f"a tenant {code!r} already exists; choose another code", param="code")
    row = uow.add_tenant(code, name, catalog_ref, catalog.timezone, now, registration_number, address)
    uow.audit([{"tenant_id": row.id, "customer_id": None, "at": now, "actor": "operator", "action": "tenant.created",
                "before": None, "after": {"catalog": catalog.code}}])
    return Tenant(row, catalog, Lifecycle(catalog))


def open_tenant(uow: UnitOfWork, code: str) -> Tenant:
    row = uow.tenant(code)
    if row is None:
        raise errors.NotFound(f"no tenant {code!r}", param="tenant")
    catalog = resolve_catalog(row.catalog)
    return Tenant(row, catalog, Lifecycle(catalog))


def customer_row(uow: UnitOfWork, tenant: TenantRow, key: str, *, live: bool = False) -> dict[str, Any]:
    """The tenant's customer ``key`` as stored; NotFound if there is none, and with ``live``, CustomerDeleted after 退会."""
    row = uow.customer_row(tenant, key)
    if row is None:
        raise errors.NotFound(f"no customer {key!r}", param="customer_id")
    if live and row["deleted_on"] is not None:
        raise errors.CustomerDeleted(f"customer {key!r} was deleted on {row['deleted_on']}", param="customer_id")
    return row
