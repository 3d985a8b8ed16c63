"""The ``kakin`` command."""

from __future__ import annotations

import gc
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kakin.cli_catalog import catalog_app
from kakin.cli_output import err, fail, out

app = typer.Typer(help="kakin (課金): subscription billing for Japanese B2B SaaS vendors.", no_args_is_help=True,
                  add_completion=False)
tenant_app = typer.Typer(help="Manage tenants (vendors).", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(catalog_app, name="catalog")


def _show_version(value: bool) -> None:
    if value:
        from kakin import __version__

        out.print(f"kakin {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print kakin's version and exit.", callback=_show_version,
                                          is_eager=True)] = False,
) -> None:
    """kakin (課金): subscription billing for Japanese B2B SaaS vendors."""


_fail = fail


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="A scenario TOML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    documents: Annotated[Path | None, typer.Option("--documents", help="Write each invoice's qualified invoice "
                                                   "(and each paid one's receipt) as PDF and JSON into this folder.")] = None,
) -> None:
    """Run a scenario on a fresh in-memory store and print the invoices it produces."""
    from kakin.domain.errors import KakinError
    from kakin.simulator import ScenarioError, load_scenario, run_scenario

    try:
        scenario = load_scenario(file)
        outcome = run_scenario(scenario, documents=documents)
    except ScenarioError as exc:
        _fail(str(exc))
        return
    except KakinError as exc:  # the documents could not be written (fonts_missing)
        _fail(f"{exc.code}: {exc.message}")
        return
    if as_json:
        sys.stdout.write(json.dumps(outcome.as_json(), ensure_ascii=False, indent=2) + "\n")
        return
    print_outcome(outcome.as_json(), title=str(file))


def print_outcome(data: dict[str, Any], title: str) -> None:
    inv = Table(title=f"{title} — invoices ({data['tenant']})", show_lines=True)
    inv.add_column("invoice", no_wrap=True)
    inv.add_column("item")
    inv.add_column("amount (¥)", justify="right", no_wrap=True)
    for i in data["invoices"]:
        head = f"{i['number']}\n{i['customer']}\nissued {i['issued_on']}\n{i['status']}"
        items = "\n".join(ln["description"] + ("※" if ln.get("tax_rate", i["tax_rate"]) != i["tax_rate"] else "")
                          for ln in i["lines"])
        amounts = "\n".join(f"{ln['amount']:,}" for ln in i["lines"])
        basis = "内消費税" if data.get("tax_inclusive") else "消費税"
        for t in i.get("taxes") or [{"rate": i["tax_rate"], "tax": i["tax"]}]:
            items += f"\n[dim]{basis} {t['rate']}[/]"
            amounts += f"\n[dim]{t['tax']:,}[/]"
        if i.get("credit_applied"):
            items += "\n充当 credit applied"
            amounts += f"\n−{i['credit_applied']:,}"
        items += "\n[bold]合計 total[/]"
        amounts += f"\n[bold]{i['total']:,}[/]"
        inv.add_row(head, items, amounts)
    out.print(inv)
    if data.get("credit_notes"):
        notes = Table(title="credit notes (適格返還請求書)")
        for col in ("credit note", "customer", "issued", "invoice", "total (¥)", "tax (¥)"):
            notes.add_column(col)
        for n in data["credit_notes"]:
            notes.add_row(n["number"], n["customer"], n["issued_on"], n["invoice"], f"{n['total']:,}", f"{n['tax']:,}")
        out.print(notes)
    steps = Table(title="steps")
    for col in ("at", "action", "result"):
        steps.add_column(col)
    for s in data["steps"]:
        result = "ok" if s["ok"] else f"[red]{s['error']['code']}[/]: {s['error']['message']}"
        steps.add_row(s["at"], s["action"], result)
    if data["steps"]:
        out.print(steps)
    cust = Table(title="customers")
    for col in ("id", "plan", "status", "seats", "members"):
        cust.add_column(col)
    for c in data["customers"]:
        cust.add_row(c["id"], str(c["plan"]), str(c["status"]), str(c["seats"]), str(c["members"]))
    out.print(cust)


usage_app = typer.Typer(help="Metered usage.", no_args_is_help=True)
app.add_typer(usage_app, name="usage")


@usage_app.command("import")
def usage_import(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSON lines: customer, metric, quantity, timestamp, transaction_id.")],
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
) -> None:
    """Record usage events from a file in batches of 1,000; duplicates are counted once."""
    from rich.progress import Progress

    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services.tenancy import open_tenant
    from kakin.services.usage import MAX_BATCH, read_events, record_events

    engine = make_engine()
    totals = {"recorded": 0, "duplicate": 0, "refused": 0}
    refused: list[str] = []
    try:
        with UnitOfWork(engine) as uow:
            open_tenant(uow, tenant)
        with file.open(encoding="utf-8") as counting:
            lines = sum(1 for text in counting if text.strip())
        with Progress(console=err) as progress, file.open(encoding="utf-8", newline="") as handle:
            task = progress.add_task(f"importing {file.name}", total=lines)
            for line_no, batch in read_events(handle, MAX_BATCH):
                with UnitOfWork(engine) as uow:
                    results = record_events(uow, open_tenant(uow, tenant), batch, datetime.now(UTC))
                for offset, r in enumerate(results):
                    totals[r["status"]] += 1
                    if r["status"] == "refused" and len(refused) < 20:
                        refused.append(f"line {line_no + offset}: {r['error']['code']}: {r['error']['message']}")
                progress.advance(task, len(batch))
    except FileNotFoundError:
        _fail(f"{file}: no such file")
    except KakinError as exc:
        _fail(f"{file}: {exc.message}")
    except ValueError as exc:
        _fail(f"{file}: {exc}")
    out.print(f"recorded {totals['recorded']:,}, duplicates {totals['duplicate']:,}, refused {totals['refused']:,}")
    for line in refused:
        out.print(f"  {line}")


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (KAKIN_DATABASE_URL, default sqlite:///var/kakin.db)."""
    from kakin.adapters.db.migrate import database_url, make_engine
    from kakin.adapters.db.migrate import migrate as run

    run(make_engine())
    out.print(f"schema up to date: {database_url()}")


@tenant_app.command("create")
def tenant_create(
    code: Annotated[str, typer.Option(help="Short code of the tenant, e.g. acme.")],
    name: Annotated[str, typer.Option(help="The vendor's name.")],
    catalog: Annotated[str, typer.Option(help="A shipped catalog (lineworks, nipoplus, line-oa) or a catalog file.")],
    registration_number: Annotated[str | None, typer.Option(help="Qualified-invoice registration number, T + 13 digits.")] = None,
    address: Annotated[str | None, typer.Option(help="The issuer's address printed on invoices and receipts.")] = None,
) -> None:
    """Create a tenant with its catalog."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services.tenancy import create_tenant

    engine = make_engine()
    run(engine)
    from kakin.services.access import create_api_key

    now = datetime.now(UTC)
    try:
        with UnitOfWork(engine) as uow:
            tenant = create_tenant(uow, code, name, catalog, now, registration_number=registration_number, address=address)
            key = create_api_key(uow, tenant.row, "owner", "created with the tenant", now)
    except KakinError as exc:
        _fail(exc.message)
        return
    out.print(f"tenant {code} created with catalog {catalog}")
    out.print(f"owner API key (shown once; stored hashed): {key}")


@tenant_app.command("update")
def tenant_update(
    code: Annotated[str, typer.Option(help="The tenant's code.")],
    name: Annotated[str | None, typer.Option(help="The vendor's name.")] = None,
    registration_number: Annotated[str | None, typer.Option(help="Qualified-invoice registration number, T + 13 digits.")] = None,
    address: Annotated[str | None, typer.Option(help="The issuer's address printed on invoices and receipts.")] = None,
) -> None:
    """Change a tenant's name, registration number or address; invoices finalized before keep the issuer they show."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError, NotFound
    from kakin.services.tenancy import tenant_view, update_tenant

    if name is None and registration_number is None and address is None:
        _fail("give --name, --registration-number or --address")
    engine = make_engine()
    run(engine)
    from kakin.services.operators import CommandLine

    try:
        with UnitOfWork(engine) as uow:
            row = uow.tenant(code)
            if row is None:
                raise NotFound(f"no tenant {code!r}", param="code")
            view = tenant_view(update_tenant(uow, CommandLine(row), datetime.now(UTC), name=name,
                                             registration_number=registration_number, address=address))
    except KakinError as exc:
        _fail(exc.message)
        return
    out.print(f"tenant {code}: {view['name']}, registration number {view['registration_number'] or '— (not set)'}, "
              f"address {view['address'] or '— (not set)'}")


@app.command("run-due")
def run_due(
    until: Annotated[str, typer.Option(help="ISO instant; everything due up to it is done. Default: now.")] = "",
    tenant: Annotated[str, typer.Option(help="Bill only this tenant (mail, webhooks and the purge are shared).")] = "",
) -> None:
    """One pass of due work, exactly what `kakin worker` does each time: billing (renewals, trial ends, month
    closes, retries), charges left in flight (KAKIN_INTENT_GRACE seconds old, 300 by default), webhook deliveries,
    e-mail, and forgetting idempotency records older than 24 hours."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.gateway_config import gateway_from_env
    from kakin.adapters.mail import SmtpMailer
    from kakin.adapters.webhooks_http import http_post
    from kakin.services.due_work import run_pass

    moment = datetime.now(UTC)
    if until:
        try:
            moment = datetime.fromisoformat(until)
        except ValueError:
            _fail(f"--until {until!r} is not an ISO date-time such as 2026-05-01T00:00:00+09:00")
        if moment.tzinfo is None:
            _fail("--until needs a UTC offset, such as 2026-05-01T00:00:00+09:00")
    done = run_pass(make_engine(), gateway_from_env(), SmtpMailer.from_env(), http_post, moment, tenant=tenant)
    for key, n in done.items():
        out.print(f"{key}: {n} actions" if key not in _OUTBOX_COUNTS else f"{key}: {n}")


_OUTBOX_COUNTS = ("charges settled", "plan changes completed", "domain checks", "webhook deliveries", "mails sent",
                  "dashboard sums saved", "idempotency records purged")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API (docs at /docs) with the three reference tenants; prints an owner API key for each."""
    import uvicorn

    from kakin.adapters.db.migrate import database_url, make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.gateway_config import gateway_from_env
    from kakin.api.app import create_app
    from kakin.serve import demo_console_sign_ins, demo_portal_links, ensure_reference_tenants

    engine = make_engine()
    run(engine)
    gateway = gateway_from_env()
    keys = ensure_reference_tenants(engine, gateway, datetime.now(UTC))
    table = Table(title=f"kakin on http://{host}:{port} — database {database_url()}")
    table.add_column("tenant")
    table.add_column("owner API key (shown once; stored hashed)")
    for code, key in keys:
        table.add_row(code, key)
    out.print(table)
    out.print(f"try: curl -H 'Authorization: Bearer {keys[0][1]}' http://{host}:{port}/v1/customers")
    out.print(f"API docs: http://{host}:{port}/docs   (run `kakin worker` beside it to bill what falls due)")
    out.print("customer portal: a one-time link for a demo super admin, valid 5 minutes (kakin portal-link makes more)")
    for code, customer, url in demo_portal_links(engine, datetime.now(UTC), f"http://{host}:{port}"):
        out.print(f"  {code} ({customer}): {url}", soft_wrap=True, highlight=False)
    out.print(f"operator console: http://{host}:{port}/console/login — a demo owner per vendor (password shown once; "
              "set KAKIN_DEMO_CONSOLE_PASSWORD to keep one; kakin operator create makes more)")
    for code, email, password in demo_console_sign_ins(engine, datetime.now(UTC),
                                                       os.environ.get("KAKIN_DEMO_CONSOLE_PASSWORD") or None):
        out.print(f"  {code}: {email} / {password}", soft_wrap=True, highlight=False)
    out.print("qualified invoices (適格請求書) need the vendor's registration number and address: set them with\n"
              f"  kakin tenant update --code {keys[0][0]} --registration-number T… --address \"…\"\n"
              f"or PATCH http://{host}:{port}/v1/tenant with an owner key; later invoices name the new issuer")
    app = create_app(engine, gateway)
    # What was loaded at start-up is never garbage: keep it out of the collections that pause requests.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning")


@app.command("portal-link")
def portal_link(
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    customer: Annotated[str, typer.Option(help="The customer's id.")],
    member: Annotated[str | None, typer.Option(help="The member (mem_…); the customer's super admin by default.")] = None,
    locale: Annotated[str, typer.Option(help="ja or en.")] = "ja",
    base_url: Annotated[str, typer.Option(help="Where kakin serve answers.")] = "http://127.0.0.1:8000",
) -> None:
    """Print a fresh one-time link (valid 5 minutes) that opens the customer portal for one member."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.domain.errors import KakinError
    from kakin.serve import portal_link as make_link

    try:
        url, expires_at = make_link(make_engine(), tenant, customer, datetime.now(UTC), base_url, member=member, locale=locale)
    except KakinError as e:
        err.print(f"[red]{e.code}[/red]: {e.message}")
        raise typer.Exit(2) from None
    print(url)
    err.print(f"valid until {expires_at.isoformat(timespec='seconds')}, once")


@app.command()
def worker(
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 5.0,
    once: Annotated[bool, typer.Option(help="Do one pass and exit.")] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log one JSON object per line.")] = False,
    batch_size: Annotated[int, typer.Option(help="Accounts per billing batch (one transaction each).", min=1)] = 1000,
) -> None:
    """Do what is due on the real clock, again and again: renewals, trial ends, month closes, retries, webhooks,
    e-mail. Logs a line per batch; waits out database outages; SIGTERM finishes the batch in hand and exits 0."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.gateway_config import gateway_from_env
    from kakin.serve import run_once
    from kakin.worker import main

    engine = make_engine()
    if once:
        run(engine)
        done = run_once(engine, gateway_from_env(), datetime.now(UTC))
        out.print(", ".join(f"{k}: {v}" for k, v in done.items()))
        return
    main(engine, gateway_from_env(), interval, log_json, batch_size)


@app.command("api-key")
def api_key(
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    role: Annotated[str, typer.Option(help="owner, billing_admin, reviewer or viewer.")] = "owner",
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    list_keys: Annotated[bool, typer.Option("--list", help="List the tenant's keys instead (prefix, role, name).")] = False,
    revoke: Annotated[str, typer.Option(help="Revoke the key with this prefix (kk_…) instead.")] = "",
) -> None:
    """Create an API key for a tenant and print it (once: only its hash is stored); or list or revoke keys."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services import access

    try:
        with UnitOfWork(make_engine()) as uow:
            row = uow.tenant(tenant)
            if row is None:
                _fail(f"no tenant {tenant!r}")
                return
            if list_keys:
                from zoneinfo import ZoneInfo

                from kakin.domain.calendar import instant_text

                zone = ZoneInfo(row.timezone)
                table = Table("prefix", "role", "name", "created", "revoked", title=f"API keys of {tenant}")
                for k in access.list_api_keys(uow, row):
                    table.add_row(str(k["prefix"]), str(k["role"]), str(k["name"]), instant_text(k["created_at"], zone),
                                  instant_text(k["revoked_at"], zone) if k["revoked_at"] else "—")
                out.print(table)
                return
            if revoke:
                access.revoke_api_key(uow, row, revoke, datetime.now(UTC), "operator")
                out.print(f"revoked {revoke}")
                return
            key = access.create_api_key(uow, row, role, name, datetime.now(UTC))
    except KakinError as exc:
        _fail(exc.message)
        return
    out.print(key)


@app.command()
def demo(
    database: Annotated[str, typer.Option(help="Database URL (default: KAKIN_DATABASE_URL or sqlite:///var/kakin.db).")] = "",
) -> None:
    """Bill the three reference vendors' worked examples into the database under demo tenants and print the invoices."""
    from kakin.demo import run_demo

    run_demo(database or None, out)


from kakin.cli_operators import operator_app  # noqa: E402 (it uses this module's console and _fail)

app.add_typer(operator_app, name="operator")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
