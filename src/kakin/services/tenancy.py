"""Tenants: a vendor, its catalog and its billing engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kakin.adapters.catalog_files import catalog_path, parse_catalog_text, read_catalog_text
from kakin.adapters.clock import utc_now
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.catalog import Catalog
from kakin.domain.catalog_versions import CatalogHistory
from kakin.domain.documents import validate_registration_number
from kakin.domain.lifecycle import Lifecycle

from .catalogs import history_of, publish_first

if TYPE_CHECKING:
    from .operators import ActingOperator


@dataclass(frozen=True)
class Tenant:
    """A vendor opened for work: ``catalog`` is the version in force when it was opened (the price page's), and
    ``lifecycle`` prices each subscription with its own version (issue 13)."""

    row: TenantRow
    catalog: Catalog
    lifecycle: Lifecycle

    @property
    def code(self) -> str:
        return self.row.code


def create_tenant(uow: UnitOfWork, code: str, name: str, catalog_ref: str, now: datetime, *,
                  registration_number: str | None = None, address: str | None = None) -> Tenant:
    """Create a vendor with its catalog (a shipped code or a file), published as catalog version 1 in effect from
    ``now`` (issue 13: later edits of the file change nothing until published). Raises CatalogError,
    InvalidRegistrationNumber, TenantExists."""
    path = catalog_path(catalog_ref)
    text = read_catalog_text(path)
    catalog = parse_catalog_text(text, str(path))
    if registration_number is not None:
        validate_registration_number(registration_number)
    if uow.tenant(code) is not None:
        raise errors.TenantExists(f"a tenant {code!r} already exists; choose another code", param="code")
    row = uow.add_tenant(code, name, catalog_ref, catalog.timezone, now, registration_number, address)
    catalog = publish_first(uow, row, text, catalog_ref, "operator", now)
    uow.audit([{"tenant_id": row.id, "customer_id": None, "at": now, "actor": "operator", "action": "tenant.created",
                "before": None, "after": {"catalog": catalog.code, "catalog_version": 1}}])
    return Tenant(row, catalog, Lifecycle(catalog, CatalogHistory.single(catalog, now)))


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
            "catalog": tenant.catalog.code, "catalog_version": tenant.catalog.version, "timezone": row.timezone,
            "qualified_invoices": row.registration_number is not None}


def open_tenant(uow: UnitOfWork, code: str, now: datetime | None = None) -> Tenant:
    """The tenant with its published catalog versions; ``catalog`` is the version in force at ``now`` (by default
    the real clock's: a test clock's commands pass theirs to the life cycle). Raises NotFound."""
    row = uow.tenant(code)
    if row is None:
        raise errors.NotFound(f"no tenant {code!r}", param="tenant")
    history = history_of(uow, row)
    catalog = history.in_force(now or utc_now())
    return Tenant(row, catalog, Lifecycle(catalog, history))


def customer_row(uow: UnitOfWork, tenant: TenantRow, key: str, *, live: bool = False) -> dict[str, Any]:
    """The tenant's customer ``key`` as stored; NotFound if there is none, and with ``live``, CustomerDeleted after 退会."""
    row = uow.customer_row(tenant, key)
    if row is None:
        raise errors.NotFound(f"no customer {key!r}", param="customer_id")
    if live and row["deleted_on"] is not None:
        raise errors.CustomerDeleted(f"customer {key!r} was deleted on {row['deleted_on']}", param="customer_id")
    return row
