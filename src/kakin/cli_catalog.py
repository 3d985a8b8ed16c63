"""``kakin catalog``: check a catalog file, show a tenant's price page, compare catalogs, publish a version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kakin.cli_output import fail as _fail
from kakin.cli_output import out

catalog_app = typer.Typer(help="Check, show, compare and publish catalogs.", no_args_is_help=True)


def _price_page(catalog: Any) -> None:
    """Print a catalog's plans and prices as a price page would."""
    from kakin.domain.money import format_rate

    table = Table(title=f"{catalog.name} ({catalog.code}) — {'税込' if catalog.tax_inclusive else '税抜'}, "
                        f"tax {format_rate(catalog.tax_rate)}, trial {catalog.trial_days} days")
    for col in ("plan", "rank", "contract", "price", "billing", "seats", "usage"):
        table.add_column(col)
    for plan in sorted(catalog.plans.values(), key=lambda p: p.rank):
        seats = f"{plan.min_seats or ''}–{plan.max_seats or ''}" if plan.min_seats or plan.max_seats else ""
        usage = ", ".join(f"{m}: {'unlimited' if u.included is None else u.included}"
                          f"{' (hard limit)' if u.hard_limit else f' + {len(u.tiers)} tiers' if u.tiers else ''}"
                          f"{f' ※{format_rate(u.tax_rate)}' if u.tax_rate is not None else ''}"
                          for m, u in plan.usage.items())
        if not plan.prices:
            table.add_row(f"{plan.code} {plan.name_ja}", str(plan.rank), "—", "0", "", seats, usage)
        for contract, price in plan.prices.items():
            table.add_row(f"{plan.code} {plan.name_ja}", str(plan.rank), contract, f"{price.unit_amount:,} / {price.basis}"
                          f"{f' ※{format_rate(price.tax_rate)}' if price.tax_rate is not None else ''}",
                          f"{price.timing}, {price.alignment}", seats, usage)
    out.print(table)


@catalog_app.command("check")
def catalog_check(ref: Annotated[str, typer.Argument(help="A catalog file, or a shipped catalog code.")]) -> None:
    """Validate a catalog and show its plans and prices as a price page would."""
    from kakin.adapters.catalog_files import resolve_catalog
    from kakin.domain.errors import CatalogError

    try:
        catalog = resolve_catalog(ref)
    except CatalogError as exc:
        _fail(str(exc))
        return
    _price_page(catalog)
    out.print(f"ok: {catalog.source}")


def _stored_catalog(ref: str) -> Any:
    """A catalog by reference: ``CODE@N`` is tenant CODE's version N in the database, anything else a file or a
    shipped catalog."""
    import re

    from kakin.adapters.catalog_files import resolve_catalog

    found = re.fullmatch(r"([a-z][a-z0-9_-]*)@([0-9]+)", ref)
    if found is None:
        return resolve_catalog(ref)
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain import errors
    from kakin.services.catalogs import version_catalog

    with UnitOfWork(make_engine(), readonly=True) as uow:
        row = uow.tenant(found.group(1))
        if row is None:
            raise errors.NotFound(f"no tenant {found.group(1)!r}", param="tenant")
        return version_catalog(uow, row, int(found.group(2)))


@catalog_app.command("show")
def catalog_show(
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    version: Annotated[int | None, typer.Option(help="A version number (default: the version in force now).")] = None,
    versions: Annotated[bool, typer.Option("--versions", help="List the tenant's published versions instead.")] = False,
) -> None:
    """Show a tenant's catalog as its price page does: the version in force now, or another one; or its versions."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services.catalogs import version_catalog, versions_view
    from kakin.services.tenancy import open_tenant

    try:
        with UnitOfWork(make_engine(), readonly=True) as uow:
            opened = open_tenant(uow, tenant, datetime.now(UTC))
            if versions:
                table = Table(title=f"{tenant}: catalog versions")
                for col in ("version", "effective", "existing", "published", "by", "sha256", "plan moves", "in force"):
                    table.add_column(col)
                for v in versions_view(uow, opened.row, datetime.now(UTC)):
                    table.add_row(str(v["version"]), v["effective_at"], v["existing"], v["published_at"],
                                  v["published_by"], v["sha256"][:12],
                                  ", ".join(f"{a} → {b}" for a, b in v["plan_moves"].items()), "✓" if v["in_force"] else "")
                out.print(table)
                return
            catalog = opened.catalog if version is None else version_catalog(uow, opened.row, version)
    except KakinError as exc:
        _fail(exc.message)
        return
    _price_page(catalog)
    out.print(f"{tenant}: catalog version {catalog.version}")


@catalog_app.command("diff")
def catalog_diff_command(
    old: Annotated[str, typer.Argument(help="A catalog file, a shipped catalog code, or TENANT@N (a published version).")],
    new: Annotated[str, typer.Argument(help="The same kinds of reference.")],
) -> None:
    """Print what changes for customers from OLD to NEW: prices, included quantities, tiers, plans added or removed,
    change rules. Exit status 0 either way; 2 when a reference cannot be read."""
    from kakin.domain.catalog_diff import catalog_diff
    from kakin.domain.errors import KakinError

    try:
        changes = catalog_diff(_stored_catalog(old), _stored_catalog(new))
    except KakinError as exc:
        _fail(exc.message)
        return
    for change in changes:
        out.print(change.text(), highlight=False, markup=False)
    if not changes:
        out.print("no changes that matter to customers", highlight=False)


@catalog_app.command("publish")
def catalog_publish(
    file: Annotated[Path, typer.Argument(help="The catalog file (TOML) to publish.")],
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    effective: Annotated[str, typer.Option(help="When new subscriptions take it: an ISO 8601 instant with an offset, "
                                           "e.g. 2026-06-01T00:00:00+09:00.")],
    existing: Annotated[str, typer.Option(help="next_period: existing subscriptions move at their first period "
                                          "starting on or after --effective; never: they keep their version.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes and the subscribers; publish nothing.")] = False,
) -> None:
    """Publish a catalog file as the tenant's next catalog version; editing the file changes nothing until then."""
    from kakin.adapters.catalog_files import read_catalog_text
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.db.store import UnitOfWork, in_transaction
    from kakin.domain.errors import KakinError
    from kakin.services.catalogs import publish

    try:
        at = datetime.fromisoformat(effective)
    except ValueError:
        _fail(f"--effective {effective!r} is not an ISO 8601 instant such as 2026-06-01T00:00:00+09:00")
        return
    if at.tzinfo is None:
        _fail(f"--effective {effective!r} needs a UTC offset, such as 2026-06-01T00:00:00+09:00")
    engine = make_engine()
    run(engine)
    try:
        text = read_catalog_text(file)

        def work(uow: UnitOfWork) -> dict[str, Any]:
            row = uow.tenant(tenant)
            if row is None:
                from kakin.domain.errors import NotFound

                raise NotFound(f"no tenant {tenant!r}", param="tenant")
            return publish(uow, row, text, str(file), effective_at=at, existing=existing, actor="operator",
                           now=datetime.now(UTC), dry_run=dry_run)

        done = in_transaction(engine, work)
    except KakinError as exc:
        _fail(exc.message)
        return
    for line in done["changes"] or ["no changes that matter to customers"]:
        out.print(line, highlight=False, markup=False)
    subscribers = ", ".join(f"{plan} {n}" for plan, n in done["subscribers"].items()) or "none"
    out.print(f"subscribers: {subscribers}", highlight=False)
    verb = "would be published as" if dry_run else "published as"
    out.print(f"{file} {verb} {tenant} catalog version {done['version']}, effective {done['effective_at']}, "
              f"existing subscriptions: {done['existing']} (sha256 {done['sha256'][:12]})", highlight=False)
