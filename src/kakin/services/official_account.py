"""LINE Official Account settings: the account name's and premium ID's lock, the premium ID's availability and price.

Once verification (認証済アカウント) or the local-government plan is applied for, the account name and the premium ID
can no longer be changed (``account_name_locked``, the rule in :func:`kakin.domain.eligibility.require_account_unlocked`):
the premium ID command here checks it before :func:`kakin.services.billing.set_premium_id`, and
:func:`kakin.services.eligibility.rename_account` before renaming. Sources: seed line-oa-local-government-plan
(プレミアムIDについて, Q&A), SPEC 3.3, issue 11 page 8.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.domain.account import Account
from kakin.domain.eligibility import require_account_unlocked
from kakin.domain.messaging import PREMIUM_ID

from . import billing as commands  # a command's ``billing`` argument (monthly/annual) would shadow the module
from .tenancy import Tenant, customer_row

ADDON = "premium_id"


def account_state(uow: UnitOfWork, tenant: TenantRow, customer: dict[str, Any]) -> dict[str, Any]:
    """The account's verification (``"unverified"``, ``"requested"`` or ``"verified"``), whether it applied for an
    eligibility-gated plan, and whether its name and premium ID are ``locked``. ``customer`` is its stored row."""
    applied = bool(uow.applications.find(tenant.id, customer_id=customer["id"]))
    verification = ("verified" if customer["verified_at"] is not None
                    else "requested" if customer["verification_requested_at"] is not None else "unverified")
    return {"name": customer["name"], "verification": verification, "applied": applied,
            "locked": verification != "unverified" or applied}


def require_unlocked(uow: UnitOfWork, tenant: TenantRow, customer: dict[str, Any], what: str, param: str) -> None:
    """Raise AccountNameLocked (``param``) when the customer's ``what`` (account name, premium ID) is fixed."""
    state = account_state(uow, tenant, customer)
    require_account_unlocked(verification_requested=state["verification"] == "requested",
                             verified=state["verification"] == "verified", applied=state["applied"], what=what,
                             param=param)


def set_premium_id(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, key: str, now: datetime, *,
                   premium_id: str, billing: str = "monthly", actor: str = "system") -> Account:
    """Take a premium ID (the ``set_premium_id`` command): refused with AccountNameLocked once verification or the
    local-government plan was applied for, else as :func:`kakin.services.billing.set_premium_id` decides
    (InvalidPremiumId, PremiumIdTaken, PremiumIdLocked, PaymentMethodRequired, CardDeclined)."""
    require_unlocked(uow, tenant.row, customer_row(uow, tenant.row, key), "premium ID", "premium_id")
    return commands.set_premium_id(uow, tenant, gateway, key, now, premium_id=premium_id, billing=billing, actor=actor)


def premium_id_check(uow: UnitOfWork, tenant: Tenant, value: str) -> dict[str, Any]:
    """Whether ``value`` is a well-formed premium ID (``@`` + 4–18 of a-z, 0-9, ``_``, ``-``) and free to take:
    ``{"premium_id", "valid", "available"}``. Reading changes nothing; taking it is still checked then."""
    valid = bool(PREMIUM_ID.match(value))
    return {"premium_id": value, "valid": valid,
            "available": valid and not uow.addon_value_taken(tenant.row, ADDON, value)}


def premium_id_prices(tenant: Tenant, plan: str | None) -> dict[str, int]:
    """The premium ID's price per billing (``monthly``, ``annual``) in integer yen before tax, on plan ``plan`` (free
    under the local-government plan); empty when the catalog has no premium ID."""
    addon = tenant.catalog.addons.get(ADDON)
    if addon is None:
        return {}
    return {contract: addon.unit_amount(contract, plan or "") for contract in addon.prices}


def plan_choices(tenant: Tenant, plan: str | None, contract: str | None) -> list[dict[str, Any]]:
    """The plans a customer on ``plan`` (``contract``) sees, by rank, each as ``{"plan", "name_ja", "name_en", "fee"
    (integer yen per month before tax), "included"`` (messages a month; None: unlimited)``, "change"}``: ``"current"``,
    ``"immediate"`` (an upgrade), ``"end_of_period"`` (a downgrade, on the 1st), or None when the catalog's
    ``[[plan_changes]]`` refuse it. Plans that need an eligibility application are left out (they are applied for)."""
    contract = contract or tenant.catalog.default_contract
    out = []
    for p in sorted(tenant.catalog.plans.values(), key=lambda p: p.rank):
        if p.eligibility:
            continue
        price = p.prices.get(contract)
        usage = p.usage.get("messages")
        change: str | None = "current" if p.code == plan else None
        if change is None and plan is not None:
            when = tenant.catalog.change_policy(plan, contract, p.code, contract)
            change = None if when.value == "refused" else when.value
        out.append({"plan": p.code, "name_ja": p.name_ja, "name_en": p.name_en,
                    "fee": price.unit_amount if price else 0, "included": usage.included if usage else None,
                    "change": change})
    return out
