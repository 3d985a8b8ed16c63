"""Catalog versions as stored (``catalog_versions``): ``uow.catalog_versions``.

A version row holds the published TOML text, its SHA-256, who published it and when, the instant it takes
effect, what it does to existing subscriptions and its plan moves. Parsing is the caller's
(:mod:`kakin.services.catalogs`); this module only reads and writes rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from kakin.domain import errors

from .tables import catalog_versions, subscriptions

_HEAD = (catalog_versions.c.number, catalog_versions.c.sha256, catalog_versions.c.source,
         catalog_versions.c.published_by, catalog_versions.c.published_at, catalog_versions.c.effective_at,
         catalog_versions.c.existing, catalog_versions.c.plan_moves)


class CatalogVersionRepository:
    """A tenant's catalog versions (``catalog_versions``; services/catalogs.py), on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def heads(self, tenant_id: int) -> list[dict[str, Any]]:
        """Every version of the tenant without its content, in number order (one small query per open)."""
        rows = self.conn.execute(select(*_HEAD).where(catalog_versions.c.tenant_id == tenant_id).order_by(
            catalog_versions.c.number)).mappings()
        return [{**r, "plan_moves": json.loads(r["plan_moves"] or "{}")} for r in rows]

    def contents(self, tenant_id: int, numbers: Iterable[int]) -> dict[int, str]:
        """The TOML text of these versions, by number."""
        wanted = list(numbers)
        if not wanted:
            return {}
        rows = self.conn.execute(select(catalog_versions.c.number, catalog_versions.c.content).where(
            catalog_versions.c.tenant_id == tenant_id, catalog_versions.c.number.in_(wanted)))
        return {int(n): str(text) for n, text in rows}

    def add(self, tenant_id: int, *, content: str, sha256: str, source: str, published_by: str,
            published_at: datetime, effective_at: datetime, existing: str, plan_moves: dict[str, str]) -> int:
        """Write the tenant's next version and return its number (1 for the first). Two publishers at once cannot both
        take a number: ``(tenant_id, number)`` is unique, and the later one is refused with
        :class:`~kakin.domain.errors.Conflict` (nothing published; try again)."""
        latest = self.conn.execute(select(func.max(catalog_versions.c.number)).where(
            catalog_versions.c.tenant_id == tenant_id)).scalar_one_or_none()
        number = int(latest or 0) + 1
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(catalog_versions).values(
                    tenant_id=tenant_id, number=number, content=content, sha256=sha256, source=source[:500],
                    published_by=published_by[:200], published_at=published_at, effective_at=effective_at,
                    existing=existing, plan_moves=json.dumps(plan_moves, sort_keys=True)))
        except IntegrityError:
            raise errors.Conflict(f"catalog version {number} was published by someone else meanwhile; nothing was "
                                  "published: look at the versions and try again", param="version") from None
        return number

    def addon_subscribers(self, tenant_id: int) -> dict[tuple[str, str], int]:
        """How many live add-on subscriptions (not ended) each (add-on code, billing) has, in any catalog version."""
        rows = self.conn.execute(select(subscriptions.c.product, subscriptions.c.contract, func.count()).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.product != "plan",
            subscriptions.c.ended.is_(False)).group_by(subscriptions.c.product, subscriptions.c.contract)).all()
        return {(str(p), str(c)): int(n) for p, c, n in rows}

    def plan_subscribers(self, tenant_id: int) -> dict[tuple[str, str], int]:
        """How many live main subscriptions (not ended) each (plan, contract) has, in any catalog version."""
        rows = self.conn.execute(select(subscriptions.c.plan, subscriptions.c.contract, func.count()).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.product == "plan",
            subscriptions.c.ended.is_(False)).group_by(subscriptions.c.plan, subscriptions.c.contract))
        return {(str(p), str(c)): int(n) for p, c, n in rows}
