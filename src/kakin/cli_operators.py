"""``kakin operator``: the console's operators from the command line (create with a one-time password, list,
disable)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table


def _fail(message: str) -> None:
    from kakin.cli import _fail as fail

    fail(message)


def _out() -> Any:
    from kakin.cli_output import out

    return out


operator_app = typer.Typer(help="Manage the operators who sign in to the console (/console/).", no_args_is_help=True)


def _tenant_row(uow: Any, code: str) -> Any:
    row = uow.tenant(code)
    if row is None:
        _fail(f"no tenant {code!r}; kakin tenant create makes one")
    return row


@operator_app.command("create")
def operator_create(
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    email: Annotated[str, typer.Option(help="The operator's e-mail address: what the console's sign-in asks for.")],
    role: Annotated[str, typer.Option(help="owner, billing_admin, reviewer or viewer.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                                 "(at least 12 characters) instead of making one.")] = False,
) -> None:
    """Create a console operator and print its one-time password (stored as an Argon2 hash, never shown again)."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.migrate import migrate as run
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services import operators

    given = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    engine = make_engine()
    run(engine)
    try:
        with UnitOfWork(engine) as uow:
            password = operators.create_operator(uow, _tenant_row(uow, tenant), email, role, datetime.now(UTC), given)
    except KakinError as exc:
        _fail(exc.message)
        return
    _out().print(f"operator {email.strip().lower()} ({role}) created for tenant {tenant}; sign in at /console/login",
              highlight=False)
    if not password_stdin:
        _out().print(f"password (shown once; stored hashed): {password}", highlight=False)


@operator_app.command("list")
def operator_list(tenant: Annotated[str, typer.Option(help="The tenant's code.")]) -> None:
    """List a tenant's operators: e-mail, role, last sign-in, locked or disabled."""
    from zoneinfo import ZoneInfo

    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.calendar import instant_text
    from kakin.services import operators

    with UnitOfWork(make_engine(), readonly=True) as uow:
        row = _tenant_row(uow, tenant)
        found = operators.list_operators(uow, row)
    zone = ZoneInfo(row.timezone)
    table = Table("email", "role", "last sign-in", "locked until", "disabled", title=f"operators of {tenant}")
    for o in found:
        table.add_row(o["email"], o["role"], instant_text(o["last_sign_in_at"], zone) if o["last_sign_in_at"] else "—",
                      instant_text(o["locked_until"], zone) if o["locked_until"] else "—",
                      instant_text(o["disabled_at"], zone) if o["disabled_at"] else "—")
    _out().print(table)


@operator_app.command("disable")
def operator_disable(
    tenant: Annotated[str, typer.Option(help="The tenant's code.")],
    email: Annotated[str, typer.Option(help="The operator's e-mail address.")],
) -> None:
    """Disable an operator: it can no longer sign in, and its open console sessions end now."""
    from kakin.adapters.db.migrate import make_engine
    from kakin.adapters.db.store import UnitOfWork
    from kakin.domain.errors import KakinError
    from kakin.services import operators

    try:
        with UnitOfWork(make_engine()) as uow:
            changed = operators.disable_operator(uow, _tenant_row(uow, tenant), email, datetime.now(UTC))
    except KakinError as exc:
        _fail(exc.message)
        return
    _out().print(f"operator {email} disabled" if changed else f"operator {email} was already disabled", highlight=False)
