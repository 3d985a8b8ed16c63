"""組織設定 (NipoPlus): the paid plan's sign-up with its billing profile, the head count with a preview, stopping
billing and restoring payment information, each for a principal (a portal member, or an API key acting for one).

Each function authorizes through :mod:`kakin.services.authorization` and runs the same billing commands as the API.
Rules: seed nipoplus-paid-plan (申込手順, 利用人数の変更に伴う過不足金, 解約する, 支払い情報を復元), issue 11 page 4.
"""

from __future__ import annotations

from typing import Any

from kakin.adapters import postal
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import PaymentGateway
from kakin.domain import errors
from kakin.domain.account import Account
from kakin.domain.documents import format_postal_code

from . import authorization, billing, documents, payments, upcoming
from .access import Operator
from .authorization import Clock
from .tenancy import open_tenant


def postal_address(postal_code: str) -> dict[str, str]:
    """The address of a postal code (7 digits, with or without the hyphen) as ``{"postal_code": "100-0001",
    "address": "東京都千代田区千代田"}`` (prefecture, city and town; the customer adds the street number).

    Raises InvalidPostalCode (param ``postal_code``) for anything but 7 digits, or a code Japan Post does not have."""
    formatted = format_postal_code(postal_code)
    address = postal.address_for(formatted.replace("-", ""))
    if address is None:
        raise errors.InvalidPostalCode(f"{formatted} is not a Japan Post postal code: check the 7 digits",
                                       param="postal_code")
    return {"postal_code": formatted, "address": address}


def billing_profile(uow: UnitOfWork, principal: Operator, key: str, clock: Clock) -> dict[str, Any]:
    """The customer's 宛名, postal code, address and billing e-mail as stored (None where not given)."""
    row = authorization.customer_for(uow, principal, key, clock)
    return {"addressee": row["addressee"], "postal_code": row["postal_code"], "address": row["address"],
            "email": row["billing_email"]}


def sign_up(uow: UnitOfWork, principal: Operator, gateway: PaymentGateway, key: str, clock: Clock, *, plan: str,
            seats: int, payment_method: str, postal_code: str, address: str, addressee: str, email: str) -> Account:
    """「申込み開始」: the billing profile printed on receipts, the card, then the paid plan with ``seats`` users,
    charged at once; all or nothing (the caller's transaction). An empty ``address`` is filled from the postal code.

    The principal needs the super admin (RULES ``subscribe``, ``set_payment_method``, ``set_billing_profile``).
    Raises what :func:`authorization.authorize` raises, InvalidPostalCode, InvalidValue (``addressee``, ``email``),
    SeatsOutOfRange (5–999 for GOLD), PaymentMethodUnknown, CardDeclined and what ``billing.subscribe`` raises."""
    row = authorization.customer_for(uow, principal, key, clock)
    for action in ("subscribe", "set_payment_method", "set_billing_profile"):
        authorization.authorize(uow, principal, row, action)
    tenant, now, actor = open_tenant(uow, principal.tenant.code), row["now"], principal.actor
    chosen = tenant.catalog.plan(plan)
    tenant.lifecycle.check_seats(chosen, chosen.prices.get(tenant.catalog.default_contract), seats)
    found = postal_address(postal_code)
    if not addressee.strip():
        raise errors.InvalidValue("write the addressee printed on receipts (宛名): your name or your company's",
                                  param="addressee")
    local, _, domain = email.strip().partition("@")
    if not local or "." not in domain or len(email) > 320:
        raise errors.InvalidValue("write the e-mail address payment notices go to, such as keiri@example.co.jp",
                                  param="email")
    documents.set_billing_profile(uow, tenant.row, key, addressee=addressee.strip(), postal_code=found["postal_code"],
                                  address=address.strip() or found["address"], email=email.strip(), now=now, actor=actor)
    billing.set_payment_method(uow, tenant, gateway, key, now, payment_method, actor=actor)
    return billing.subscribe(uow, tenant, gateway, key, now, plan, seats=seats, actor=actor)


def preview_seats(uow: UnitOfWork, principal: Operator, key: str, clock: Clock, seats: int) -> dict[str, Any]:
    """What 「人数の変更」 to ``seats`` adds to or takes from the next payment, before it is confirmed (see
    :func:`upcoming.preview_set_seats`); reading changes nothing. Needs an admin (RULES ``set_seats``)."""
    row = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, row, "set_seats")
    return upcoming.preview_set_seats(uow, open_tenant(uow, principal.tenant.code), key, row["now"], seats)


def restore_payment(uow: UnitOfWork, principal: Operator, gateway: PaymentGateway, key: str,
                    clock: Clock) -> dict[str, Any]:
    """「支払い情報を復元」 for the principal (an admin, RULES ``restore_payment``): see
    :func:`payments.restore_payment`; returns ``{"customer", "restored": [invoice numbers]}``."""
    row = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, row, "restore_payment")
    return payments.restore_payment(uow, open_tenant(uow, principal.tenant.code), gateway, key, row["now"],
                                    actor=principal.actor)
