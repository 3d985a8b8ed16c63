"""``kakin demo``: the three reference vendors on the default SQLite database.

Creates (or upgrades) the database, creates the tenants ``nipoplus``,
``lineworks`` and ``line-oa`` from the shipped catalogs, plays each one's
reference scenario into it and prints the invoices. Running it again reuses
what is there: a tenant already loaded is only reported.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from kakin.adapters.db.migrate import database_url, make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.simulator import load_scenario, play, report

SCENARIOS = Path(__file__).resolve().parent / "demo_scenarios"
REFERENCE = {
    "nipoplus": "nipoplus-seat-increase.toml",
    "lineworks": "lineworks-monthly-members.toml",
    "line-oa": "line-oa-message-quotas.toml",
}


def run_demo(url: str | None, console: Console) -> None:
    from kakin.cli import print_outcome

    url = url or database_url()
    engine = make_engine(url)
    migrate(engine)
    gateway = CardSimulator()
    for code, file in REFERENCE.items():
        scenario = load_scenario(SCENARIOS / file)
        with UnitOfWork(engine) as uow:
            exists = uow.tenant(code) is not None
        steps = None
        if not exists:
            steps = play(scenario, engine, code, gateway, name=f"{code} (reference)")
            console.print(f"[green]loaded[/] tenant {code} from {file}")
        else:
            console.print(f"tenant {code} already in the database; reporting it")
        print_outcome(report(engine, code, code, steps).as_json(), title=code)
    console.print(f"\ndatabase: {url}")
    engine.dispose()
