"""Catalog versions: publish a catalog as a tenant's next version, read a tenant's versions (issue 13).

A version is stored with its TOML text and parsed once per process (cached by its hash and number), so opening a
tenant on every request costs one small query. Publishing refuses a version that drops plans that still have
subscribers unless its ``[plan_moves]`` moves them (``plan_has_subscribers``), that drops an add-on or add-on billing
that live subscriptions renew on (``addon_has_subscribers``), or that changes what cannot change
under existing prices (the time zone, tax-inclusive prices); a dry run shows the changes and commits nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from kakin.adapters.catalog_files import catalog_path, parse_catalog_text, read_catalog_text
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.calendar import instant_text
from kakin.domain.catalog import Catalog
from kakin.domain.catalog_diff import catalog_diff
from kakin.domain.catalog_versions import CatalogHistory, CatalogVersion, Existing

_PARSED: dict[tuple[str, int, str], Catalog] = {}  # (sha256, number, source) → the parsed catalog of that version
_FIRST_EFFECTIVE = datetime(2000, 1, 1, tzinfo=UTC)  # version 1 of a tenant made before versions were stored


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parsed(sha: str, number: int, source: str, text: str | None) -> Catalog:
    key = (sha, number, source)
    found = _PARSED.get(key)
    if found is None:
        assert text is not None
        if len(_PARSED) > 512:
            _PARSED.clear()
        found = _PARSED[key] = replace(parse_catalog_text(text, source), version=number)
    return found


def history_of(uow: UnitOfWork, row: TenantRow) -> CatalogHistory:
    """Every published version of the tenant. A tenant made before versions were stored gets version 1 from its
    catalog file now (stored, unless the unit of work only reads)."""
    heads = uow.catalog_versions.heads(row.id)
    if not heads:
        return _first_version(uow, row)
    missing = [h["number"] for h in heads if (h["sha256"], h["number"], h["source"]) not in _PARSED]
    texts = uow.catalog_versions.contents(row.id, missing)
    return CatalogHistory([
        CatalogVersion(h["number"], _parsed(h["sha256"], h["number"], h["source"], texts.get(h["number"])),
                       h["effective_at"], Existing(h["existing"])) for h in heads])


def _first_version(uow: UnitOfWork, row: TenantRow) -> CatalogHistory:
    path = catalog_path(row.catalog)
    text = read_catalog_text(path)
    sha = sha256_of(text)
    catalog = _parsed(sha, 1, row.catalog, text)
    if not uow.readonly:
        uow.catalog_versions.add(row.id, content=text, sha256=sha, source=row.catalog, published_by="migration",
                                 published_at=row.created_at or _FIRST_EFFECTIVE, effective_at=_FIRST_EFFECTIVE,
                                 existing=Existing.NEXT_PERIOD.value, plan_moves={})
    return CatalogHistory([CatalogVersion(1, catalog, _FIRST_EFFECTIVE, Existing.NEXT_PERIOD)])


def publish_first(uow: UnitOfWork, row: TenantRow, text: str, source: str, actor: str, now: datetime) -> Catalog:
    """Version 1 of a new tenant, in effect from ``now`` (the tenant's creation); its parsed catalog."""
    sha = sha256_of(text)
    catalog = _parsed(sha, 1, source, text)
    uow.catalog_versions.add(row.id, content=text, sha256=sha, source=source, published_by=actor,
                             published_at=now, effective_at=now, existing=Existing.NEXT_PERIOD.value, plan_moves={})
    return catalog


def publish(uow: UnitOfWork, row: TenantRow, text: str, source: str, *, effective_at: datetime, existing: str,
            actor: str, now: datetime, dry_run: bool = False) -> dict[str, Any]:
    """Publish ``text`` (a catalog file's TOML) as the tenant's next version, in effect from ``effective_at`` for new
    subscriptions; existing ones move at their first period starting on or after it (``next_period``) or keep
    their version (``never``).

    Returns ``{"version", "sha256", "effective_at", "existing", "dry_run", "changes" (lines of
    :func:`~kakin.domain.catalog_diff.catalog_diff` against the latest version), "subscribers" (live subscriptions
    per plan), "plan_moves"}``; with ``dry_run`` nothing is written. Raises CatalogError (malformed, or a time zone
    or tax-inclusive change), InvalidValue (``existing``, a naive instant), PlanHasSubscribers (a dropped plan with
    subscribers and no ``[plan_moves]`` entry), AddonHasSubscribers (a dropped add-on, or add-on billing, with live
    subscriptions). Source: issue 13, SPEC 4.
    """
    try:
        policy = Existing(existing)
    except ValueError:
        raise errors.InvalidValue(f"existing must be one of: {', '.join(e.value for e in Existing)}",
                                  param="existing") from None
    if effective_at.tzinfo is None:
        raise errors.InvalidValue("effective must be an instant with a UTC offset, such as 2026-06-01T00:00:00+09:00",
                                  param="effective")
    new = parse_catalog_text(text, source)
    history = history_of(uow, row)
    latest = history.latest.catalog
    for key, old_value, new_value in (("vendor.timezone", latest.timezone, new.timezone),
                                      ("tax.inclusive", latest.tax_inclusive, new.tax_inclusive)):
        if old_value != new_value:
            raise errors.CatalogError(source, key, f"is {new_value!r} but version {history.latest.number} has "
                                      f"{old_value!r}: it cannot change between versions of one tenant's catalog")
    counts = uow.catalog_versions.plan_subscribers(row.id)
    per_plan: dict[str, int] = {}
    for (plan, _), n in counts.items():
        per_plan[plan] = per_plan.get(plan, 0) + n
    dropped = {plan: n for plan, n in sorted(per_plan.items()) if plan not in new.plans and plan not in new.plan_moves}
    if dropped:
        listed = ", ".join(f"{plan} ({n})" for plan, n in dropped.items())
        raise errors.PlanHasSubscribers(
            f"this version drops plans that still have subscribers: {listed}; keep them, or move their subscribers "
            f"with [plan_moves] old = \"new\" in the file; nothing was published", plans=dropped)
    lost = {f"{code}.{billing}": n for (code, billing), n in sorted(uow.catalog_versions.addon_subscribers(row.id).items())
            if code not in new.addons or billing not in new.addons[code].prices}
    if lost:
        listed = ", ".join(f"{name} ({n})" for name, n in lost.items())
        raise errors.AddonHasSubscribers(
            f"this version drops add-ons that live subscriptions renew on: {listed}; keep them in [addons] (with that "
            f"billing's price), or end those add-on subscriptions first; nothing was published", addons=lost)
    for (plan, contract), n in sorted(counts.items()):
        target = new.plans.get(new.plan_moves.get(plan, ""))
        if target is not None and target.prices and contract not in target.prices:
            raise errors.CatalogError(source, f"plan_moves.{plan}", f"moves {n} {contract} subscriber(s) to "
                                      f"{target.code!r}, which has no {contract!r} price")
    number = history.latest.number + 1
    sha = sha256_of(text)
    zone = history.latest.catalog.timezone
    out = {"version": number, "sha256": sha, "effective_at": instant_text(effective_at, ZoneInfo(zone)),
           "existing": policy.value, "dry_run": dry_run,
           "changes": [c.text() for c in catalog_diff(latest, new)],
           "subscribers": {plan: n for plan, n in sorted(per_plan.items())}, "plan_moves": dict(new.plan_moves)}
    if dry_run:
        return out
    number = uow.catalog_versions.add(row.id, content=text, sha256=sha, source=source, published_by=actor,
                                      published_at=now, effective_at=effective_at, existing=policy.value,
                                      plan_moves=dict(new.plan_moves))
    uow.audit([{"tenant_id": row.id, "customer_id": None, "at": now, "actor": actor, "action": "catalog.published",
                "before": {"version": history.latest.number},
                "after": {"version": number, "sha256": sha, "effective_at": out["effective_at"],
                          "existing": policy.value, "plan_moves": dict(new.plan_moves)}}])
    return {**out, "version": number}


def versions_view(uow: UnitOfWork, row: TenantRow, now: datetime) -> list[dict[str, Any]]:
    """The tenant's versions, oldest first: number, hash, source, who published it and when, when it takes effect,
    what it does to existing subscriptions, its plan moves, and ``in_force`` for the one new subscriptions take."""
    history = history_of(uow, row)
    current = history.in_force(now).version
    zone = ZoneInfo(history.latest.catalog.timezone)
    return [{"version": h["number"], "sha256": h["sha256"], "source": h["source"], "published_by": h["published_by"],
             "published_at": instant_text(h["published_at"], zone), "effective_at": instant_text(h["effective_at"], zone),
             "existing": h["existing"], "plan_moves": h["plan_moves"], "in_force": h["number"] == current}
            for h in uow.catalog_versions.heads(row.id)]


def version_catalog(uow: UnitOfWork, row: TenantRow, number: int) -> Catalog:
    """The catalog of version ``number``; NotFound (param ``version``) when the tenant has no such version."""
    try:
        return history_of(uow, row).catalog(number)
    except KeyError:
        raise errors.NotFound(f"the tenant has no catalog version {number}", param="version") from None
