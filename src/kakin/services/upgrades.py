"""Plan changes the worker completes: LINE WORKS lite → basic or premium (アップグレード中).

SPEC "LINE WORKS": "Lite → other takes effect through an asynchronous job during which the customer is in a
restricted state; basic → premium is immediate and keeps sessions"; pricing FAQ: the upgrade from lite takes about
10 minutes and the service is restricted meanwhile. A change whose catalog rule is ``needs_verified_domain`` (the
one that moves members' IDs from id@group to id@domain) is such a change, for every customer.

The request is checked in full at once (every refusal the change itself would give, on a copy of the account), then
stored as a pending job; the answer shows the customer still on its plan with ``upgrade: {"status": "pending", …}``.
Meanwhile the entitlements are restricted and the actions of ``authorization.BLOCKED_WHILE_UPGRADING`` are
refused (``upgrade_in_progress``). The
worker's pass (:func:`run_due`, in ``services/due_work.run_pass``) makes the change at the customer's time, as the
member who asked, and ends every portal session of a customer whose members signed in with a group name (their IDs
changed). A change refused by then (the card was removed, say) ends the job ``failed`` with the refusal's code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kakin.adapters.db import Engine
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors
from kakin.domain.account import Account

from . import authorization, billing, portal, upcoming
from .access import Operator
from .authorization import Clock
from .tenancy import Tenant, open_tenant


def pending(uow: UnitOfWork, customer_id: int) -> dict[str, Any] | None:
    """The customer's latest plan-change job as ``{"id", "status", "plan", "contract", "requested_at",
    "finished_at", "error_code"}`` while it is pending or after it failed (until the next request), else None."""
    job = uow.plan_change_jobs.latest_of(customer_id)
    if job is None or job["status"] == "completed":
        return None
    return {"id": f"upg_{job['id']}", "status": job["status"], "plan": job["plan"], "contract": job["contract"],
            "requested_at": job["requested_at"], "finished_at": job["finished_at"], "error_code": job["error_code"]}


def runs_in_background(tenant: Tenant, account: Account, plan: str, contract: str | None) -> bool:
    """Whether the change of ``account`` to ``plan`` (``contract``) is done by the worker: its catalog rule is
    ``needs_verified_domain`` and the plan changes."""
    sub = account.plan_subscription
    if sub is None or plan == sub.plan:
        return False
    rule = tenant.catalog.change_rule(sub.plan, sub.contract, plan, contract or sub.contract)
    return rule is not None and rule.needs_verified_domain


def change_plan(uow: UnitOfWork, principal: Operator, gateway: PaymentGateway, key: str, clock: Clock, plan: str, *,
                contract: str | None = None, seats: int | None = None) -> tuple[Account, dict[str, Any], Tenant,
                                                                                  dict[str, Any] | None]:
    """Change customer ``key``'s plan as ``principal`` (its super admin): at once, or — for a change the worker
    completes — checked now and queued. Returns (account, stored row, tenant, the pending job's view or None).
    Raises what :func:`authorization.authorize` and the change raise (UpgradeInProgress while one is pending)."""
    row = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, row, "change_plan")
    tenant = open_tenant(uow, principal.tenant.code)
    account = billing.load(uow, tenant, key, lock=False)
    if not runs_in_background(tenant, account, plan, contract):
        account = billing.change_plan(uow, tenant, gateway, key, row["now"], plan=plan, contract=contract, seats=seats,
                                      actor=principal.actor)
        return account, row, tenant, None
    upcoming.preview_change_plan(uow, tenant, key, row["now"], plan, contract=contract, seats=seats)  # refusals now
    uow.plan_change_jobs.add({"tenant_id": tenant.row.id, "customer_id": row["id"], "plan": plan,
                              "contract": contract, "seats": seats, "actor": principal.actor,
                              "member": principal.member, "requested_at": row["now"]})
    uow.audit([{"tenant_id": tenant.row.id, "customer_id": row["id"], "at": row["now"], "actor": principal.actor,
                "action": "subscription.upgrade_requested", "before": {"plan": account.plan_subscription.plan
                                                                       if account.plan_subscription else None},
                "after": {"plan": plan, "contract": contract, "seats": seats}}])
    return account, row, tenant, pending(uow, row["id"])


def run_due(engine: Engine, gateway: PaymentGateway, now: datetime, limit: int = 50) -> int:
    """Complete pending plan-change jobs, oldest first, each in a transaction of its own (claimed ``FOR UPDATE SKIP
    LOCKED`` on PostgreSQL, so workers share them); returns how many ended (completed or failed)."""
    done = 0
    while done < limit:
        try:
            if in_transaction(engine, lambda uow: _complete_one(uow, gateway, now)) is None:
                return done
        except _Refused as refused:  # the change was rolled back; the job ends failed with the refusal's code
            with UnitOfWork(engine) as uow:
                uow.plan_change_jobs.finish(refused.job["id"], "failed", refused.at, refused.code)
        done += 1
    return done


class _Refused(Exception):
    """A job's change was refused: carries the refusal's code and the job out of the rolled-back transaction."""

    def __init__(self, code: str, job: dict[str, Any], at: datetime) -> None:
        super().__init__(code)
        self.code, self.job, self.at = code, job, at


def _complete_one(uow: UnitOfWork, gateway: PaymentGateway, now: datetime) -> Any:
    jobs = uow.plan_change_jobs.due(1)
    if not jobs:
        return None
    job = jobs[0]
    tenant_row = uow.tenant_by_id(job["tenant_id"])
    tenant = open_tenant(uow, tenant_row.code)
    worker = Operator(tenant_row, "owner", "worker")
    row = authorization.customer_for(uow, worker, job["customer_key"], lambda: now)
    try:
        uow.acting_member = (job["actor"], job["member"]) if job["member"] else None
        billing.change_plan(uow, tenant, gateway, job["customer_key"], row["now"], plan=job["plan"],
                            contract=job["contract"], seats=job["seats"], actor=job["actor"])
    except errors.KakinError as error:  # raised on: the transaction is rolled back
        raise _Refused(error.code, job, row["now"]) from error
    uow.plan_change_jobs.finish(job["id"], "completed", row["now"])
    if row["sign_in_group"]:
        portal.revoke_customer_sessions(uow, row["id"], row["now"])  # IDs became id@domain: everyone signs in again
    return job
