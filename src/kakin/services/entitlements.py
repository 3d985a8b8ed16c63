"""What a customer may do now: its plan's features, this month's quotas, storage, seat state.

While a plan change the worker completes is pending (LINE WORKS lite → paid, services/upgrades.py) the customer is
アップグレード中: ``upgrade`` shows the job and ``restricted`` is true, every feature false (pricing FAQ:
"アップグレード中にはサービスの利用が制限されます"); otherwise ``upgrade`` is None (or the failed job) and ``restricted`` false.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kakin.adapters.db.store import UnitOfWork
from kakin.domain.calendar import local_date, month_start
from kakin.domain.catalog import Basis
from kakin.domain.messaging import remaining

from .billing import load
from .tenancy import Tenant
from .upgrades import pending


def entitlements(uow: UnitOfWork, tenant: Tenant, key: str, now: datetime) -> dict[str, Any]:
    account = load(uow, tenant, key, lock=False)
    sub = account.plan_subscription
    month = month_start(local_date(now, tenant.lifecycle.zone))
    if sub is None or sub.status.value in ("canceled", "suspended", "incomplete"):
        return {"customer": key, "plan": sub.plan if sub else None, "status": sub.status.value if sub else None,
                "active": False, "features": {}, "quotas": {}, "storage": {}, "seats": None, "upgrade": None,
                "restricted": False}
    plan = tenant.lifecycle.catalog_of(sub).plans[sub.plan]
    users = account.members
    quotas = {}
    for metric, usage in plan.usage.items():
        used = account.used(metric, month)
        quotas[metric] = {"included": usage.included, "used": used, "hard_limit": usage.hard_limit,
                          "remaining": remaining(usage.included, used),
                          "month": month.isoformat()}
    storage = {}
    for name, value in plan.features.items():
        if name.endswith("_per_user"):
            storage[name.removesuffix("_per_user") + "_total"] = value if isinstance(value, str) else value * users
    price = plan.prices.get(sub.contract)
    seats = None
    if price is not None and price.basis is Basis.SEAT:
        over = users > sub.seats
        seats = {"paid": sub.seats, "users": users, "over_seats": over,
                 "restricted_features": list(plan.over_seat_restricts) if over else []}
    features = dict(plan.features)
    if seats and seats["over_seats"]:
        for name in plan.over_seat_restricts:
            features[name] = False
    upgrade = pending(uow, account.id) if account.id is not None else None
    restricted = upgrade is not None and upgrade["status"] == "pending"
    if restricted:
        features = dict.fromkeys(features, False)
    return {"customer": key, "plan": plan.code, "status": sub.status.value, "active": True, "features": features,
            "quotas": quotas, "storage": storage, "seats": seats, "upgrade": upgrade, "restricted": restricted}
