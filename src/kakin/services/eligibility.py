"""Applications for eligibility-gated plans (LINE OA 地方公共団体プラン) and their review.

The automatic checks (:mod:`kakin.domain.eligibility`) run when the
application is made: one that fails them is refused at once; one that passes
waits for a reviewer (an operator key with the ``review`` permission), due
within five business days. The applicant is e-mailed on receipt and on the
decision. Why an application was refused is kept for operators: the
applicant's view and e-mails never say. Re-applying is allowed.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from typing import Any

import jpholiday

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.adapters.reference_data import local_governments
from kakin.domain import errors, plan_changes
from kakin.domain.eligibility import Applicant, automatic_checks, review_due

from . import authorization, billing, mail, official_account
from .access import Operator
from .authorization import Clock
from .operators import ActingOperator, acting_in
from .tenancy import Tenant, customer_row, open_tenant


def _holiday(day: date) -> bool:
    return bool(jpholiday.is_holiday(day))


def local_government_choices(prefecture: str | None) -> dict[str, Any]:
    """What the application form offers: ``{"prefectures": [{"code", "name"}], "municipalities": [{"code", "name"}]}``
    (the prefecture's own code first, then its municipalities, in code order; none without a known ``prefecture``
    code). Source: ``kakin/data/local_governments.csv`` (JIS X 0402)."""
    bodies = sorted(local_governments().by_code.values(), key=lambda b: b.code)
    prefectures = [{"code": b.code, "name": b.prefecture} for b in bodies if not b.municipality]
    chosen = next((p["name"] for p in prefectures if p["code"] == prefecture), None)
    return {"prefectures": prefectures,
            "municipalities": [{"code": b.code, "name": b.municipality or b.prefecture}
                               for b in bodies if chosen is not None and b.prefecture == chosen]}


def applicant_view(row: dict[str, Any]) -> dict[str, Any]:
    """What the customer sees: the status, never the reasons."""
    return {"id": row["public_id"], "plan": row["plan"], "local_government_code": row["code"], "status": row["status"],
            "submitted_at": row["submitted_at"], "decided_at": row["decided_at"]}


def operator_view(row: dict[str, Any], today: Any) -> dict[str, Any]:
    body = local_governments().get(row["code"])
    return {**applicant_view(row), "customer": row["customer"], "applicant_email": row["applicant_email"],
            "local_government": body.prefecture + body.municipality if body else None, "via_agency": row["via_agency"],
            "email_needs_review": row["email_needs_review"], "reasons": json.loads(row["reasons"]),
            "review_due": row["review_due"], "decided_by": row["decided_by"],
            "overdue": row["status"] == "pending" and row["review_due"] is not None and today > row["review_due"]}


def apply(uow: UnitOfWork, principal: Operator, key: str, plan_code: str, code: str, applicant_email: str,
          via_agency: bool, clock: Clock) -> dict[str, Any]:
    """Apply for an eligibility-gated plan for customer ``key`` as ``principal`` (its super admin); the automatic
    checks run at once. Returns the applicant's view (never the reasons). Raises what
    :func:`authorization.authorize` raises, InvalidValue (``plan``; ``local_government_code`` not 6 digits;
    ``applicant_email`` not an address), ApplicationPending, AlreadyGranted.

    Applications sent at once are checked one after the other: the customer is locked before its applications are
    read (one pending at a time), then the tenant row, last in the store's lock order, before the body's (one
    account per body: the lock serializes the tenant's applications)."""
    at = authorization.customer_for(uow, principal, key, clock)
    uow.lock_customer(at["id"])
    authorization.authorize(uow, principal, at, "apply_eligibility")
    tenant, now, actor = open_tenant(uow, principal.tenant.code), at["now"], principal.actor
    if not (isinstance(code, str) and len(code) == 6 and code.isascii() and code.isdigit()):
        raise errors.InvalidValue("choose the local government (a 6-digit local-government code)",
                                  param="local_government_code")
    local, _, domain = applicant_email.partition("@") if isinstance(applicant_email, str) else ("", "", "")
    if not local or "." not in domain:
        raise errors.InvalidValue("write the applicant's e-mail address, such as kouhou@city.example.lg.jp",
                                  param="applicant_email")
    plan = tenant.catalog.plan(plan_code)
    if plan.eligibility is None:
        raise errors.InvalidValue(f"plan {plan.code!r} needs no application; subscribe to it", param="plan")
    customer = customer_row(uow, tenant.row, key, live=True)
    mine = uow.applications.find(tenant.row.id, customer_id=customer["id"])
    if any(a["status"] == "pending" for a in mine):
        raise errors.ApplicationPending("an application is already waiting for review; wait for its result", param="plan")
    if any(a["status"] == "approved" and a["plan"] == plan.code for a in mine):
        raise errors.AlreadyGranted(f"plan {plan.code!r} was already granted", param="plan")
    uow.lock_tenant(tenant.row)
    others = [a for a in uow.applications.find(tenant.row.id, code=code)
              if a["customer_id"] != customer["id"] and a["status"] in ("pending", "approved")]
    checks = automatic_checks(local_governments(), Applicant(
        account_name=customer["name"], code=code, email=applicant_email, via_agency=via_agency,
        account_verified=customer["verified_at"] is not None, other_account_has_it=bool(others)))
    today = tenant.lifecycle.today(now)
    row = {"tenant_id": tenant.row.id, "customer_id": customer["id"], "public_id": "elg_" + secrets.token_hex(8),
           "plan": plan.code, "code": code, "applicant_email": applicant_email, "via_agency": via_agency,
           "status": "pending" if checks.passed else "refused", "email_needs_review": checks.email_needs_review,
           "reasons": json.dumps([{"check": c, "reason": r} for c, r in checks.failures], ensure_ascii=False),
           "review_due": review_due(today, _holiday) if checks.passed else None, "submitted_at": now,
           "decided_at": None if checks.passed else now, "decided_by": None if checks.passed else "automatic checks"}
    uow.applications.add(row)
    uow.audit([{"tenant_id": tenant.row.id, "customer_id": customer["id"], "at": now, "actor": actor,
                "action": "eligibility.applied", "before": None,
                "after": {"application": row["public_id"], "plan": plan.code, "code": code, "status": row["status"]}}])
    context = {"customer": customer["name"], "plan_name": plan.name_ja, "review_due": row["review_due"]}
    kind = "eligibility.received" if checks.passed else "eligibility.refused"
    mail.queue(uow, tenant, customer["id"], kind, applicant_email, context, row["public_id"], now)
    return applicant_view({**row, "submitted_at": now})


def review_queue(uow: UnitOfWork, tenant: Tenant, op: ActingOperator, now: datetime,
                 status: str | None = None) -> list[dict[str, Any]]:
    """The applications (with ``status``: only those) as operators see them: reasons, due dates, overdue flags.
    ``op`` needs the ``review`` permission (RoleForbidden)."""
    acting_in(op, tenant.row, "review")
    today = tenant.lifecycle.today(now)
    return [operator_view(a, today) for a in uow.applications.find(tenant.row.id, status=status)]


def decide(uow: UnitOfWork, tenant: Tenant, gateway: PaymentGateway, op: ActingOperator, public_id: str, approve: bool,
           reason: str | None, now: datetime) -> dict[str, Any]:
    """A reviewer's decision on a pending application. Approval grants the plan; a refusal's reason stays with operators.

    ``op`` needs the ``review`` permission (RoleForbidden); NotFound, ApplicationDecided, CustomerDeleted (approving a
    deleted customer), InvalidValue (a refusal without a reason, ``param`` reason). Audit-logged under ``op``."""
    acting_in(op, tenant.row, "review")
    reviewer = op.actor
    found = uow.applications.get(tenant.row.id, public_id)
    if found is None:
        raise errors.NotFound(f"no application {public_id!r}", param="application_id")
    if found["status"] != "pending":
        raise errors.ApplicationDecided(f"application {public_id} was already decided ({found['status']})",
                                         param="application_id")
    customer = uow.customer_row(tenant.row, found["customer"])
    assert customer is not None
    if approve and customer["deleted_on"] is not None:
        raise errors.CustomerDeleted(f"customer {found['customer']!r} was deleted on {customer['deleted_on']}; "
                                     "refuse the application instead", param="application_id")
    if not approve and not (reason and reason.strip()):
        raise errors.InvalidValue("give the reason for a refusal (operators see it; the applicant never does)",
                                  param="reason")
    reasons = json.loads(found["reasons"]) + ([] if approve else [{"check": "review", "reason": reason}])
    uow.applications.decide(found["id"], "approved" if approve else "refused",
                            json.dumps(reasons, ensure_ascii=False), now, reviewer)
    plan = tenant.catalog.plan(found["plan"])
    effective = None
    if approve:
        account = billing.load(uow, tenant, found["customer"])
        billing.catch_up(uow, tenant, gateway, account, now)
        before = billing.snapshot(account)
        result = plan_changes.grant_plan(tenant.lifecycle, account, plan.code, now)
        effective = str(result.events[-1][1]["effective_on"])
        billing.settle(uow, tenant, gateway, [(account, result)], now, reviewer, "eligibility.approved",
                       {account.id or 0: before})
    else:
        uow.audit([{"tenant_id": tenant.row.id, "customer_id": customer["id"], "at": now, "actor": reviewer,
                    "action": "eligibility.refused", "before": {"application": public_id, "status": "pending"},
                    "after": {"application": public_id, "status": "refused"}}])
    today = tenant.lifecycle.today(now)
    context = {"customer": customer["name"], "plan_name": plan.name_ja,
               "effective_on": effective if effective and effective != today.isoformat() else None}
    mail.queue(uow, tenant, customer["id"], "eligibility.approved" if approve else "eligibility.refused",
               found["applicant_email"], context, public_id, now)
    decided = uow.applications.get(tenant.row.id, public_id)
    assert decided is not None
    return operator_view(decided, today)


def verify_account(uow: UnitOfWork, tenant: Tenant, op: ActingOperator, key: str, now: datetime) -> dict[str, Any]:
    """認証済アカウント: a reviewer marks the account verified (once; doing it again changes nothing). ``op`` needs the
    ``review`` permission (RoleForbidden); NotFound for an unknown customer."""
    acting_in(op, tenant.row, "review")
    reviewer = op.actor
    customer = customer_row(uow, tenant.row, key)
    if customer["verified_at"] is None:
        uow.customer_records.set_verified(customer["id"], now)
        uow.audit([{"tenant_id": tenant.row.id, "customer_id": customer["id"], "at": now, "actor": reviewer,
                    "action": "customer.verified", "before": {"verified": False}, "after": {"verified": True}}])
    return {"customer": key, "verified": True, "verified_at": customer["verified_at"] or now}


def rename_account(uow: UnitOfWork, principal: Operator, key: str, name: str, clock: Clock) -> dict[str, Any]:
    """Change the account name (LINE OA: the name the local-government plan checks) as ``principal`` (the super
    admin, RULES ``rename_account``). Returns :func:`official_account.account_state` after. Raises what
    :func:`authorization.authorize` raises, InvalidValue (``name``: empty or over 300 characters), CustomerDeleted,
    AccountNameLocked once verification or the plan was applied for. Renaming to the same name changes nothing."""
    at = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, at, "rename_account")
    customer = customer_row(uow, principal.tenant, key, live=True)
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 300:
        raise errors.InvalidValue("write the account name (1–300 characters)", param="name")
    official_account.require_unlocked(uow, principal.tenant, customer, "account name", "name")
    if name != customer["name"]:
        uow.customer_records.set_name(customer["id"], name)
        uow.audit([{"tenant_id": principal.tenant.id, "customer_id": customer["id"], "at": at["now"],
                    "actor": principal.actor, "action": "customer.renamed", "before": {"name": customer["name"]},
                    "after": {"name": name}}])
    return official_account.account_state(uow, principal.tenant, {**customer, "name": name})


def request_verification(uow: UnitOfWork, principal: Operator, key: str, clock: Clock) -> dict[str, Any]:
    """Apply for 認証済アカウント as ``principal`` (the super admin, RULES ``request_verification``): a reviewer
    grants it (:func:`verify_account`); from now on the account name and premium ID are fixed. Applying again, or
    for a verified account, changes nothing. Returns :func:`official_account.account_state` after."""
    at = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, at, "request_verification")
    customer = customer_row(uow, principal.tenant, key, live=True)
    if customer["verification_requested_at"] is None and customer["verified_at"] is None:
        uow.customer_records.request_verification(customer["id"], at["now"])
        uow.audit([{"tenant_id": principal.tenant.id, "customer_id": customer["id"], "at": at["now"],
                    "actor": principal.actor, "action": "customer.verification_requested",
                    "before": {"verification": "unverified"}, "after": {"verification": "requested"}}])
        customer = {**customer, "verification_requested_at": at["now"]}
    return official_account.account_state(uow, principal.tenant, customer)
