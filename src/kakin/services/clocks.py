"""Test clocks: simulated time for chosen customers (Stripe's model).

A clock starts frozen at a time; customers created on it live at that time.
Advancing it runs everything due for them as the clock passes.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from kakin.adapters.db import Engine
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors

from .due_run import run_due


def create_clock(uow: UnitOfWork, tenant: TenantRow, name: str, frozen_time: datetime, now: datetime) -> dict[str, Any]:
    public_id = "clock_" + secrets.token_hex(8)
    uow.test_clocks.add(tenant.id, public_id, name, frozen_time, now)
    return {"id": public_id, "name": name, "frozen_time": frozen_time}


def advance_clock(engine: Engine, tenant: TenantRow, public_id: str, to: datetime, gateway: PaymentGateway) -> dict[str, Any]:
    with UnitOfWork(engine) as uow:
        clock = uow.test_clocks.get(tenant.id, public_id)
        if clock is None:
            raise errors.NotFound(f"no test clock {public_id!r}", param="clock")
        if to < clock["frozen_time"]:
            raise errors.InvalidValue(f"a test clock only moves forward; it is at {clock['frozen_time'].isoformat()}",
                                      param="frozen_time")
        # The clock moves first: a command on one of its customers while the due work runs then happens at the new
        # time and catches up itself, never at the old time on an account the run already moved past it. A run cut
        # short is finished by advancing to the same time again (or by the customers' next commands).
        uow.test_clocks.set_time(clock["id"], to)
    actions = run_due(lambda: UnitOfWork(engine), tenant.code, gateway, to, test_clock_id=clock["id"])
    return {"id": public_id, "name": clock["name"], "frozen_time": to, "actions": actions}
