"""Checks that count what is stored and then write, run by concurrent requests on SQLite and PostgreSQL: each takes
a row lock before it reads, so requests at once are counted one after the other, as if sent one at a time.

Each racer runs in a transaction of its own (as the API, the portal and the console run them), all released at once
by a barrier. Before the locks, on PostgreSQL every racer read the same count: 8 wrong passwords at once were all
"wrong password" and never locked the operator, 10 admins were added under a limit of 2, and one customer (or one
local-government body) got several pending applications.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from kakin.adapters.catalog_files import catalog_path
from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import KakinError
from kakin.services import access, billing, eligibility, members, operators
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 16, 10, tzinfo=JST)  # a Monday
PASSWORD = "correct horse battery staple"


def at_once(n: int, racer: Callable[[int], str]) -> Counter[str]:
    """Run ``racer(0)`` … ``racer(n - 1)`` in n threads released together; what each returned, or the code of the
    KakinError it raised, counted."""
    barrier = threading.Barrier(n)
    outcomes: list[str | None] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = racer(i)
        except KakinError as exc:
            outcomes[i] = exc.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert None not in outcomes, outcomes  # every racer finished with an answer
    return Counter(str(o) for o in outcomes)


def slowed(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> None:
    """Make ``module.name``, called between a check's read and its write, take 50 ms longer: without a lock every
    racer reads before any commits (the race every time, not by chance); with one they wait for each other."""
    real = getattr(module, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)


def test_wrong_passwords_sent_at_once_lock_the_operator_after_the_fifth_and_then_refuse_the_right_one(
        engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", NOW)
        operators.create_operator(uow, tenant.row, "guard@vendor.example", "owner", NOW, PASSWORD)

    def attempt(i: int, password: str | None = None) -> str:
        with UnitOfWork(engine) as uow:  # as the console's sign-in page runs it
            outcome = operators.sign_in(uow, "guard@vendor.example", password or f"wrong-{i}", NOW)
        return outcome.refused or "signed_in"

    # one after the other: wrong passwords 1–4 are refused as such, the 5th locks (MAX_FAILURES), the 6th–8th find
    # the operator locked out
    assert at_once(8, attempt) == {"sign_in_failed": 4, "operator_locked": 4}
    assert attempt(0, PASSWORD) == "operator_locked"  # the right password too, for LOCKOUT


def admin_limit_catalog(folder: Path, limit: int) -> str:
    """The NipoPlus catalog with ``[vendor] admin_limit = limit`` (the shipped one has no limit), as a file."""
    text = catalog_path("nipoplus").read_text(encoding="utf-8")
    path = folder / "nipoplus-admins.toml"
    path.write_text(text.replace('currency = "JPY"\n', f'currency = "JPY"\nadmin_limit = {limit}\n', 1), encoding="utf-8")
    return str(path)


def test_admins_added_at_once_stop_at_the_catalogs_admin_limit(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", admin_limit_catalog(tmp_path, 2), NOW)
        assert tenant.catalog.admin_limit == 2
        account = billing.create_customer(uow, tenant, CardSimulator(), "acme", "株式会社アクメ", NOW)
        assert account.id is not None
        boss = access.add_super_admin(uow, tenant.row, account.id, "boss@acme.example", "社長", NOW)
    principal = access.Operator(tenant.row, "owner", "test").acting_for(boss)
    slowed(monkeypatch, members, "check_new_role")  # after the admins are counted, before the new one is written

    def add(i: int) -> str:
        return in_transaction(engine, lambda uow: members.add_member(
            uow, principal, "acme", f"admin{i}@acme.example", f"管理者{i}", "admin", lambda: NOW))["role"]

    assert at_once(10, add) == {"admin": 2, "admin_limit_reached": 8}
    with engine.connect() as conn:
        admins = conn.execute(select(func.count()).select_from(tables.members).where(
            tables.members.c.customer_id == account.id, tables.members.c.role == "admin")).scalar_one()
    assert admins == 2


def line_oa_customers(engine: Engine, names: dict[str, str]) -> dict[str, access.Operator]:
    """A LINE OA tenant with verified customers (key → account name); each one's super admin as a principal."""
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "line-oa", "LINE公式アカウント", "line-oa", NOW)
        principals = {}
        for key, name in names.items():
            account = billing.create_customer(uow, tenant, CardSimulator(), key, name, NOW, payment_method="pm_card_visa")
            assert account.id is not None
            boss = access.add_super_admin(uow, tenant.row, account.id, f"admin@{key}.example", "管理者", NOW)
            eligibility.verify_account(uow, tenant, CommandLine(tenant.row), key, NOW)
            principals[key] = access.Operator(tenant.row, "owner", "test").acting_for(boss)
    return principals


def pending_applications(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.eligibility_applications).where(
            tables.eligibility_applications.c.status == "pending")).scalar_one())


def test_one_customers_applications_sent_at_once_leave_one_pending_and_refuse_the_others(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    principal = line_oa_customers(engine, {"yokohama": "横浜市"})["yokohama"]
    slowed(monkeypatch, eligibility, "automatic_checks")  # after the applications are read, before this one is written

    def apply(i: int) -> str:
        return in_transaction(engine, lambda uow: eligibility.apply(
            uow, principal, "yokohama", "local_government", "141003", "kouhou@city.yokohama.lg.jp", False,
            lambda: NOW))["status"]

    assert at_once(8, apply) == {"pending": 1, "application_pending": 7}
    assert pending_applications(engine) == 1


def test_customers_applying_at_once_for_one_local_government_leave_one_pending_and_the_others_refused(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    principals = line_oa_customers(engine, {f"tokyo{i}": "東京都" for i in range(8)})
    slowed(monkeypatch, eligibility, "automatic_checks")  # after the body's applications are read, before writing

    def apply(i: int) -> str:
        return in_transaction(engine, lambda uow: eligibility.apply(
            uow, principals[f"tokyo{i}"], f"tokyo{i}", "local_government", "130001", "kouhou@metro.tokyo.lg.jp",
            False, lambda: NOW))["status"]

    # one account per body: the first application waits for a reviewer, the automatic check refuses the others
    assert at_once(8, apply) == {"pending": 1, "refused": 7}
    assert pending_applications(engine) == 1
