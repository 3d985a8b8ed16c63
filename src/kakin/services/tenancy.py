"""Tenants: a vendor, its catalog and its billing engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kakin.adapters.catalog_files import resolve_catalog
from kakin.adapters.db.store import TenantRow, UnitOfWork
from kakin.domain import errors
from kakin.domain.catalog import Catalog
from kakin.domain.documents import validate_registration_number
from kakin.domain.lifecycle import Lifecycle

if TYPE_CHECKING:
    from .operators import ActingOperator


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
    """Create a vendor with its catalog (a shipped code or a file). Raises CatalogError, InvalidRegistrationNumber,
    TenantExists."""
    catalog = resolve_catalog(catalog_ref)
    if registration_number is not None:
        validate_registration_number(registration_number)
    if uow.tenant(code) is not None:
        raise errors.TenantExists(f"a tenant {code!r} already exists; choose another code", param="code")
    row = uow.add_tenant(code, name, catalog_ref, catalog.timezone, now, registration_number, address)
    uow.audit([{"tenant_id": row.id, "customer_id": None, "at": now, "actor": "operator", "action": "tenant.created",
                "before": None, "after": {"catalog": catalog.code}}])
    return Tenant(row, catalog, Lifecycle(catalog))


def update_tenant(uow: UnitOfWork, op: ActingOperator, now: datetime, *, name: str | None = None,
                  registration_number: str | None = None, address: str | None = None) -> Tenant:
    """Change the vendor's name, qualified-invoice registration number (T + 13 digits with the corporate-number
    check digit, SPEC 1) or address; a field left None stays as it is.

    Documents finalized before keep the issuer they were written with; the change applies to later ones. The tenant
    is ``op``'s, who needs the ``manage`` permission (RoleForbidden, owners only). Raises InvalidValue for an empty
    name, InvalidRegistrationNumber; a change is audit-logged under ``op``, a call that changes nothing writes nothing.
    """
    op.require("manage")
    code = op.tenant.code
    actor = op.actor
    row = uow.tenant(code)
    if row is None:
        raise errors.NotFound(f"no tenant {code!r}", param="code")
    if name is not None and not name.strip():
        raise errors.InvalidValue("the vendor's name cannot be empty", param="name")
    if registration_number is not None:
        validate_registration_number(registration_number)
    before = {"name": row.name, "registration_number": row.registration_number, "address": row.address}
    after = {**before, **{k: v for k, v in (("name", name.strip() if name is not None else None),
                                             ("registration_number", registration_number), ("address", address))
                          if v is not None}}
    if after != before:
        row = uow.update_tenant(row, after)
        uow.audit([{"tenant_id": row.id, "customer_id": None, "at": now, "actor": actor, "action": "tenant.updated",
                    "before": before, "after": after}])
    return open_tenant(uow, code)


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    """The vendor as the API shows it: what its qualified invoices name as the issuer, its catalog and time zone."""
    row = tenant.row
    return {"code": row.code, "name": row.name, "registration_number": row.registration_number, "address": row.address,
            "catalog": tenant.catalog.code, "timezone": row.timezone,
            "qualified_invoices": row.registration_number is not None}


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
