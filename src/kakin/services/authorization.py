"""Who may do what to a customer: one authorization for the API, the portal and anything else that acts.

A request acts as a principal (:class:`~kakin.services.access.Operator`): an API key or a console operator with an
operator role, or a portal session's member. The principal may name the customer's member it acts for
(``Kakin-Acting-Member``; a portal session always does), and a portal principal is confined to its own customer:
any other customer is "not found". Each customer action has one rule here: the operator permission it needs and
the member role (super admin or admin) the acting member must have. Rules: SPEC "Members and roles", the LINE WORKS
seeds (最高管理者 only changes the plan, the contract or the payment method), issue 11.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.account import Account
from kakin.domain.members import require_admin, require_super_admin

from . import billing, official_account
from .access import Operator, acting_role
from .tenancy import Tenant, open_tenant

Clock = Callable[[], datetime]

# action → (the member rule, what the refusal says the member may not do)
RULES: dict[str, tuple[Callable[..., None], str]] = {
    "subscribe": (require_super_admin, "choose the plan"),
    "change_plan": (require_super_admin, "change the plan or the contract"),
    "cancel": (require_super_admin, "cancel the subscription"),
    "delete_customer": (require_super_admin, "delete the organization"),
    "set_payment_method": (require_super_admin, "change the payment method"),
    "set_premium_id": (require_super_admin, "buy a premium ID"),
    "add_domain": (require_super_admin, "register a domain"),
    "verify_domain": (require_super_admin, "verify a domain"),
    "change_primary_domain": (require_super_admin, "change the primary domain"),
    "delete_domain": (require_super_admin, "delete a domain"),
    "apply_eligibility": (require_super_admin, "apply for the plan"),
    "set_billing_profile": (require_super_admin, "change the billing address"),
    "set_seats": (require_admin, "change seats"),
    "set_members": (require_admin, "change registered users"),
    "add_member": (require_admin, "add members"),
    "remove_member": (require_admin, "remove members"),
    "restore_payment": (require_admin, "restore the payment information"),
    "rename_account": (require_super_admin, "change the account name"),
    "request_verification": (require_super_admin, "apply for a verified account"),
}

# refused (upgrade_in_progress) while a plan change the worker completes is pending (services/upgrades.py)
BLOCKED_WHILE_UPGRADING = frozenset({"change_plan", "cancel", "delete_customer", "change_primary_domain", "delete_domain"})

# the billing commands a principal may run through :func:`perform`
COMMANDS: dict[str, Callable[..., Account]] = {
    "subscribe": billing.subscribe,
    "change_plan": billing.change_plan,
    "cancel": billing.cancel,
    "delete_customer": billing.delete_customer,
    "set_payment_method": billing.set_payment_method,
    "set_premium_id": official_account.set_premium_id,  # refused once the account name is locked
    "set_seats": billing.set_seats,
    "set_members": billing.set_members,
}


def customer_for(uow: UnitOfWork, principal: Operator, key: str, clock: Clock) -> dict[str, Any]:
    """The stored row of customer ``key`` as ``principal`` may see it, with ``now``: its test clock's time if it is on
    one, else ``clock()``. A writer locks the customer before reading its clock, so a clock advance meanwhile has
    either not reached it (and waits) or finished with it.

    Raises NotFound (param ``customer_id``) when the tenant has no such customer or a portal principal is confined to
    another one: the same answer either way, so a portal member cannot probe other customers' ids."""
    row = uow.customer_row(principal.tenant, key)
    if row is None or (principal.customer is not None and principal.customer != key):
        raise errors.NotFound(f"no customer {key!r}", param="customer_id")
    row["now"] = clock()
    if row["test_clock_id"]:
        if not uow.readonly:
            uow.lock_customer(row["id"])
        test_clock = uow.test_clocks.by_id(row["test_clock_id"])
        row["test_clock_public_id"], row["now"] = test_clock["public_id"], test_clock["frozen_time"]
    return row


def authorize(uow: UnitOfWork, principal: Operator, customer: dict[str, Any], action: str) -> None:
    """Refuse unless ``principal`` may do ``action`` (a key of :data:`RULES`) to ``customer`` (a row from
    :func:`customer_for`); the audit records the transaction writes then name the acting member.

    Raises RoleForbidden (an operator role without the ``customer`` permission: viewers, reviewers), NotFound (the
    acting member is not one of the customer's), SuperAdminRequired or AdminRequired (the member's role),
    UpgradeInProgress (an action of :data:`BLOCKED_WHILE_UPGRADING` while the customer's upgrade is pending)."""
    principal.require("customer")
    rule, what = RULES[action]
    rule(acting_role(uow, principal.tenant, customer["id"], principal.member), what)
    if action in BLOCKED_WHILE_UPGRADING:
        job = uow.plan_change_jobs.latest_of(customer["id"])
        if job is not None and job["status"] == "pending":
            raise errors.UpgradeInProgress(
                f"the change to {job['plan']!r} is in progress; try again when it is complete", param="plan")
    uow.acting_member = (principal.actor, principal.member) if principal.member else None


def perform(uow: UnitOfWork, principal: Operator, gateway: Any, key: str, clock: Clock, action: str,
            **arguments: Any) -> tuple[Account, dict[str, Any], Tenant]:
    """Load customer ``key``, authorize ``action`` (a key of :data:`COMMANDS`) for ``principal``, run the billing
    command with ``arguments`` at the customer's time; returns (account after, its stored row, the tenant).

    Raises what :func:`customer_for`, :func:`authorize` and the command raise; a refusal changes nothing."""
    row = customer_for(uow, principal, key, clock)
    authorize(uow, principal, row, action)
    tenant = open_tenant(uow, principal.tenant.code)
    account = COMMANDS[action](uow, tenant, gateway, key, row["now"], **arguments, actor=principal.actor)
    return account, row, tenant
