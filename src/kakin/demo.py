"""``kakin demo``: the reference vendors' worked examples billed into the default database.

Creates (or upgrades) the database and plays each reference vendor's worked
example into a demo tenant of its own (``demo-nipoplus``, ``demo-lineworks``,
``demo-line-oa``), beside the tenants ``kakin serve`` creates, then prints the
invoices. Each demo's customers live on a test clock that stops where the
example ends, so the worker on the real clock does not bill them on from there.
Running it again reports the demos already billed; a demo left half-played (a
run interrupted) is played again under the next free code (``demo-nipoplus-2``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine, select

from kakin.adapters.db.migrate import database_url, make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.db.tables import audit_log
from kakin.adapters.payments import CardSimulator
from kakin.simulator import load_scenario, play, report

SCENARIOS = Path(__file__).resolve().parent / "demo_scenarios"
REFERENCE = {
    "nipoplus": "nipoplus-seat-increase.toml",
    "lineworks": "lineworks-monthly-members.toml",
    "line-oa": "line-oa-message-quotas.toml",
}
LOADED = "demo.loaded"  # the audit action that marks a demo tenant played to its end


def demo_code(engine: Engine, vendor: str) -> tuple[str, bool]:
    """The demo tenant for ``vendor``: its code and whether it was played to the end already. The first code
    that is free or complete: ``demo-<vendor>``, then ``demo-<vendor>-2``, …"""
    with UnitOfWork(engine, readonly=True) as uow:
        for n in range(1, 1000):
            code = f"demo-{vendor}" if n == 1 else f"demo-{vendor}-{n}"
            row = uow.tenant(code)
            if row is None:
                return code, False
            if uow.conn.execute(select(audit_log.c.id).where(audit_log.c.tenant_id == row.id,
                                                             audit_log.c.action == LOADED)).first() is not None:
                return code, True
    raise RuntimeError(f"no free demo tenant code for {vendor}")


def run_demo(url: str | None, console: Console) -> None:
    from kakin.cli import print_outcome

    url = url or database_url()
    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    for vendor, file in REFERENCE.items():
        scenario = load_scenario(SCENARIOS / file)
        code, done = demo_code(engine, vendor)
        steps = None
        if done:
            console.print(f"demo tenant {code}: billed by an earlier run; its invoices")
        else:
            steps = play(scenario, engine, code, gateway, name=f"{vendor} (demo)", test_clock=True)
            with UnitOfWork(engine) as uow:
                row = uow.tenant(code)
                assert row is not None
                uow.audit([{"tenant_id": row.id, "customer_id": None, "at": datetime.now(UTC), "actor": "demo",
                            "action": LOADED, "before": None, "after": {"scenario": file}}])
            console.print(f"[green]billed[/] the {vendor} worked example ({file}) into demo tenant {code}")
        print_outcome(report(engine, code, code, steps).as_json(), title=code)
    console.print(f"\ndatabase: {url}")
    engine.dispose()
