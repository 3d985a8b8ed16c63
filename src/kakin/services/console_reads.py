"""What the operator console shows that the API has no query for: the dunning list and a customer's timeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork

from .operators import ActingOperator, acting_in
from .tenancy import Tenant

DUNNING_LIMIT = 500
TIMELINE_LIMIT = 100


def past_due(uow: UnitOfWork, tenant: Tenant, op: ActingOperator, now: datetime) -> list[dict[str, Any]]:
    """Every past-due invoice (open, with a failed payment or a bank-transfer due date passed), oldest first, at most
    ``DUNNING_LIMIT``: number, customer (key, name, collection), total (yen), attempts, next retry (an instant, None
    when dunning waits for a new card), the last decline code. ``op`` needs ``read``. Dunning rules: SPEC 3.2."""
    acting_in(op, tenant.row, "read")
    return uow.console_reads.past_due_invoices(tenant.row.id, tenant.lifecycle.today(now), DUNNING_LIMIT)


def timeline(uow: UnitOfWork, tenant: Tenant, op: ActingOperator, customer_id: int) -> list[dict[str, Any]]:
    """The customer's audit records, newest first (at most ``TIMELINE_LIMIT``): at, actor, member, action, the events
    it caused (names only). ``customer_id`` is the stored row's id. ``op`` needs ``read``."""
    acting_in(op, tenant.row, "read")
    out = []
    for r in uow.console_reads.customer_timeline(customer_id, TIMELINE_LIMIT):
        after = json.loads(r["after"]) if r["after"] else None
        events = [e.get("event") for e in after.get("events", [])] if isinstance(after, dict) else []
        out.append({"at": r["at"], "actor": r["actor"], "member": r["member"], "action": r["action"], "events": events})
    return out
